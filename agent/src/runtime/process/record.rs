//! The process runtime's records on disk: one JSON file per sandbox and per container, so
//! that a restarted agent finds its pods' processes again.
//!
//! Invariants:
//! - A record file is replaced atomically (written to a temporary file, then renamed), so
//!   a crash leaves the old record or the new one, never half of one.
//! - A file that does not decode is skipped with a warning, never trusted: the agent then
//!   sees no such container and the sync core starts a new attempt.
//! - A running container's record names its process by pid *and* start time (clock ticks
//!   since boot, `/proc/<pid>/stat` field 22): a pid alone could be reused by a stranger.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::serde_json::{self, json, Value};

use crate::runtime::{ContainerInfo, ContainerState, RuntimeError, SandboxInfo};

/// A sandbox: bookkeeping only (the pod shares the host's network; its IP is the host's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    pub info: SandboxInfo,
    pub hostname: String,
}

/// The process of a running container: pid and start time, which together name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

/// A container: what it was created from, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub info: ContainerInfo,
    pub sandbox: String,
    /// `command` followed by `args`.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// Set while the container runs.
    pub process: Option<ProcessId>,
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Failed(format!("{what} {}: {e}", path.display()))
}

/// Write `value` to `dir/<id>.json`, atomically.
pub fn save(dir: &Path, id: &str, value: &Value) -> Result<(), RuntimeError> {
    let path = dir.join(format!("{id}.json"));
    let tmp = dir.join(format!(".{id}.json.tmp"));
    let bytes = serde_json::to_vec_pretty(value).expect("a JSON value always encodes");
    let mut file = fs::File::create(&tmp).map_err(|e| failed("creating", &tmp, e))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| failed("writing", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| failed("renaming", &tmp, e))
}

/// Remove `dir/<id>.json`; a missing file is not an error.
pub fn remove(dir: &Path, id: &str) -> Result<(), RuntimeError> {
    let path = dir.join(format!("{id}.json"));
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed("removing", &path, e)),
        _ => Ok(()),
    }
}

/// Every record in `dir` that `decode` accepts; others are logged and skipped.
pub fn load<T>(dir: &Path, decode: fn(&Value) -> Option<T>) -> Result<Vec<T>, RuntimeError> {
    let entries = fs::read_dir(dir).map_err(|e| failed("reading", dir, e))?;
    let mut records = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let value = fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        match value.as_ref().and_then(decode) {
            Some(record) => records.push(record),
            None => tracing::warn!(path = %path.display(), "skipping an unreadable runtime record"),
        }
    }
    Ok(records)
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)?.as_str().map(str::to_string)
}

fn time(v: &Value, key: &str) -> Option<Timestamp> {
    v.get(key)?.as_str()?.parse().ok()
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_string)).collect()
}

fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    v.as_object()?.iter().map(|(k, s)| Some((k.clone(), s.as_str()?.to_string()))).collect()
}

impl SandboxRecord {
    pub fn encode(&self) -> Value {
        json!({
            "id": self.info.id,
            "pod_uid": self.info.pod_uid,
            "ip": self.info.ip,
            "hostname": self.hostname,
            "labels": self.info.labels,
        })
    }

    pub fn decode(v: &Value) -> Option<Self> {
        let info = SandboxInfo {
            id: text(v, "id")?,
            pod_uid: text(v, "pod_uid")?,
            ip: text(v, "ip"),
            labels: string_map(v.get("labels")?)?,
        };
        Some(Self { info, hostname: text(v, "hostname")? })
    }
}

fn encode_state(state: &ContainerState) -> Value {
    match state {
        ContainerState::Created => json!({ "phase": "created" }),
        ContainerState::Running { started_at } => json!({ "phase": "running", "started_at": started_at.to_string() }),
        ContainerState::Exited { exit_code, started_at, finished_at, reason } => json!({
            "phase": "exited",
            "exit_code": exit_code,
            "started_at": started_at.map(|t| t.to_string()),
            "finished_at": finished_at.to_string(),
            "reason": reason,
        }),
    }
}

fn decode_state(v: &Value) -> Option<ContainerState> {
    match v.get("phase")?.as_str()? {
        "created" => Some(ContainerState::Created),
        "running" => Some(ContainerState::Running { started_at: time(v, "started_at")? }),
        "exited" => Some(ContainerState::Exited {
            exit_code: i32::try_from(v.get("exit_code")?.as_i64()?).ok()?,
            started_at: time(v, "started_at"),
            finished_at: time(v, "finished_at")?,
            reason: text(v, "reason"),
        }),
        _ => None,
    }
}

impl ContainerRecord {
    pub fn encode(&self) -> Value {
        let i = &self.info;
        json!({
            "id": i.id,
            "pod_uid": i.pod_uid,
            "name": i.name,
            "attempt": i.attempt,
            "image": i.image,
            "image_id": i.image_id,
            "state": encode_state(&i.state),
            "labels": i.labels,
            "sandbox": self.sandbox,
            "argv": self.argv,
            "env": self.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "working_dir": self.working_dir,
            "pid": self.process.map(|p| p.pid),
            "start_ticks": self.process.map(|p| p.start_ticks),
        })
    }

    pub fn decode(v: &Value) -> Option<Self> {
        let info = ContainerInfo {
            id: text(v, "id")?,
            pod_uid: text(v, "pod_uid")?,
            name: text(v, "name")?,
            attempt: u32::try_from(v.get("attempt")?.as_u64()?).ok()?,
            image: text(v, "image")?,
            image_id: text(v, "image_id")?,
            state: decode_state(v.get("state")?)?,
            labels: string_map(v.get("labels")?)?,
        };
        let env = v.get("env")?.as_array()?.iter().map(|pair| {
            let pair = strings(pair)?;
            let [k, v] = <[String; 2]>::try_from(pair).ok()?;
            Some((k, v))
        });
        let process = match (v.get("pid").and_then(Value::as_i64), v.get("start_ticks").and_then(Value::as_u64)) {
            (Some(pid), Some(start_ticks)) => Some(ProcessId { pid: i32::try_from(pid).ok()?, start_ticks }),
            _ => None,
        };
        Some(Self {
            info,
            sandbox: text(v, "sandbox")?,
            argv: strings(v.get("argv")?)?,
            env: env.collect::<Option<_>>()?,
            working_dir: text(v, "working_dir"),
            process,
        })
    }
}

/// The directories of a process runtime rooted at `root`.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub sandboxes: PathBuf,
    pub containers: PathBuf,
    pub logs: PathBuf,
    /// `pods/<uid>/`: a pod's default working directory.
    pub pods: PathBuf,
}

impl Dirs {
    /// The layout under `root`, created if missing.
    pub fn create(root: &Path) -> Result<Self, RuntimeError> {
        let dirs = Self {
            sandboxes: root.join("sandboxes"),
            containers: root.join("containers"),
            logs: root.join("logs"),
            pods: root.join("pods"),
        };
        for dir in [&dirs.sandboxes, &dirs.containers, &dirs.logs, &dirs.pods] {
            fs::create_dir_all(dir).map_err(|e| failed("creating", dir, e))?;
        }
        Ok(dirs)
    }

    pub fn log(&self, id: &str) -> PathBuf {
        self.logs.join(format!("{id}.log"))
    }

    pub fn pod(&self, uid: &str) -> PathBuf {
        self.pods.join(uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_record_survives_its_json() {
        let info = ContainerInfo {
            id: "c1".into(),
            pod_uid: "u1".into(),
            name: "app".into(),
            attempt: 2,
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            state: ContainerState::Exited {
                exit_code: 137,
                started_at: Some(Timestamp::from_second(1_700_000_000).unwrap()),
                finished_at: Timestamp::from_second(1_700_000_100).unwrap(),
                reason: Some("ContainerStatusUnknown".into()),
            },
            labels: BTreeMap::from([("io.flotilla.pod.uid".to_string(), "u1".to_string())]),
        };
        let record = ContainerRecord {
            info,
            sandbox: "s1".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: Some("/tmp".into()),
            process: Some(ProcessId { pid: 42, start_ticks: 7 }),
        };
        assert_eq!(ContainerRecord::decode(&record.encode()), Some(record));
    }

    #[test]
    fn a_record_missing_a_field_is_rejected() {
        let mut v = json!({ "id": "s1", "pod_uid": "u", "ip": "10.0.0.1", "hostname": "h", "labels": {} });
        assert!(SandboxRecord::decode(&v).is_some());
        v.as_object_mut().unwrap().remove("pod_uid");
        assert_eq!(SandboxRecord::decode(&v), None);
    }
}
