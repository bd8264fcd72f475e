//! Pod sandboxes: a named network namespace with the pod network in it, and a record of
//! it on disk.
//!
//! Invariants:
//! - A sandbox is a network namespace `flotilla-<id>` (`ip netns`, so it is bind-mounted
//!   under `/var/run/netns` and outlives every process in it) plus
//!   `<state>/sandboxes/<id>.json`, written atomically once the network is up, and
//!   `<state>/sandboxes/<id>/{hosts,hostname}`, bind-mounted into its containers.
//! - Creation undoes itself on failure (CNI DEL, namespace and files removed), so a failed
//!   sandbox leaves nothing behind. Removal is CNI DEL with the recorded ADD result, then
//!   the namespace, then the record: a sandbox is listed until all of it is gone.
//! - The records are the truth after an agent restart: listing reads the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use k8s_openapi::serde_json::{self, json, Value};
use tokio::process::Command;

use super::cni::{self, Network};
use crate::runtime::{PortMapping, RuntimeError, SandboxInfo, SandboxSpec};

/// Where `ip netns` keeps named network namespaces.
const NETNS_DIR: &str = "/var/run/netns";

/// A sandbox as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    pub info: SandboxInfo,
    pub hostname: String,
    pub ports: Vec<PortMapping>,
    /// The CNI ADD result of eth0.
    pub cni_result: Value,
}

impl Sandbox {
    pub fn netns_name(id: &str) -> String {
        format!("flotilla-{id}")
    }

    pub fn netns_path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(Self::netns_name(&self.info.id))
    }

    fn encode(&self) -> Value {
        let ports: Vec<Value> =
            self.ports.iter().map(|p| json!([p.container_port, p.host_port, p.protocol, p.host_ip])).collect();
        json!({
            "id": self.info.id, "pod_uid": self.info.pod_uid, "ip": self.info.ip,
            "labels": self.info.labels, "hostname": self.hostname, "ports": ports, "cni_result": self.cni_result,
        })
    }

    fn decode(v: &Value) -> Option<Self> {
        let text = |k: &str| v[k].as_str().map(str::to_string);
        let labels: BTreeMap<String, String> = serde_json::from_value(v["labels"].clone()).ok()?;
        let port = |p: &Value| {
            Some(PortMapping {
                container_port: u16::try_from(p[0].as_u64()?).ok()?,
                host_port: u16::try_from(p[1].as_u64()?).ok()?,
                protocol: p[2].as_str()?.to_string(),
                host_ip: p[3].as_str().map(str::to_string),
            })
        };
        Some(Self {
            info: SandboxInfo { id: text("id")?, pod_uid: text("pod_uid")?, ip: text("ip"), labels },
            hostname: text("hostname")?,
            ports: v["ports"].as_array()?.iter().map(port).collect::<Option<_>>()?,
            cni_result: v["cni_result"].clone(),
        })
    }
}

/// The sandboxes of one runtime: their records under `dir`, their network.
pub struct Sandboxes {
    pub dir: PathBuf,
    pub network: Network,
}

fn io_failed(what: &str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::Failed(format!("{what} {}: {e}", path.display()))
}

impl Sandboxes {
    /// Create sandbox `id` for `spec`. See the module doc.
    pub async fn create(&self, id: &str, spec: &SandboxSpec) -> Result<Sandbox, RuntimeError> {
        ip_netns(&["add", &Sandbox::netns_name(id)]).await?;
        let netns = Path::new(NETNS_DIR).join(Sandbox::netns_name(id));
        let made = self.set_up(id, spec, &netns).await;
        if made.is_err() {
            let _ = self.network.del(id, Some(&netns), &spec.ports, None).await;
            let _ = ip_netns(&["delete", &Sandbox::netns_name(id)]).await;
            let _ = fs::remove_dir_all(self.dir.join(id));
        }
        made
    }

    async fn set_up(&self, id: &str, spec: &SandboxSpec, netns: &Path) -> Result<Sandbox, RuntimeError> {
        let result = self.network.add(id, netns, &spec.ports).await?;
        let ip = cni::pod_ip(&result);
        let files = self.dir.join(id);
        fs::create_dir_all(&files).map_err(|e| io_failed("creating", &files, e))?;
        let hosts = format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{}\t{}\n",
            ip.as_deref().unwrap_or("127.0.1.1"),
            spec.hostname
        );
        write_atomic(&files.join("hosts"), hosts.as_bytes())?;
        write_atomic(&files.join("hostname"), format!("{}\n", spec.hostname).as_bytes())?;
        let info = SandboxInfo { id: id.to_string(), pod_uid: spec.pod_uid.clone(), ip, labels: spec.labels.clone() };
        let sandbox = Sandbox { info, hostname: spec.hostname.clone(), ports: spec.ports.clone(), cni_result: result };
        let bytes = serde_json::to_vec_pretty(&sandbox.encode()).expect("JSON encodes");
        write_atomic(&self.dir.join(format!("{id}.json")), &bytes)?;
        Ok(sandbox)
    }

    /// The files bind-mounted into sandbox `id`'s containers: (host path, container path).
    pub fn etc_files(&self, id: &str) -> [(PathBuf, &'static str); 2] {
        let files = self.dir.join(id);
        [(files.join("hosts"), "/etc/hosts"), (files.join("hostname"), "/etc/hostname")]
    }

    /// Remove sandbox `id`; a missing one is not an error.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let Some(sandbox) = self.get(id)? else { return Ok(()) };
        let netns = sandbox.netns_path();
        let present = netns.exists().then_some(netns.as_path());
        self.network.del(id, present, &sandbox.ports, Some(sandbox.cni_result.clone())).await?;
        if present.is_some() {
            ip_netns(&["delete", &Sandbox::netns_name(id)]).await?;
        }
        let files = self.dir.join(id);
        if let Err(e) = fs::remove_dir_all(&files) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io_failed("removing", &files, e));
            }
        }
        let record = self.dir.join(format!("{id}.json"));
        fs::remove_file(&record).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(io_failed("removing", &record, e)),
        })
    }

    /// Sandbox `id`, if it is recorded.
    pub fn get(&self, id: &str) -> Result<Option<Sandbox>, RuntimeError> {
        let path = self.dir.join(format!("{id}.json"));
        match fs::read(&path) {
            Ok(bytes) => Ok(decode(&path, &bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_failed("reading", &path, e)),
        }
    }

    /// Every recorded sandbox.
    pub fn list(&self) -> Result<Vec<Sandbox>, RuntimeError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_failed("reading", &self.dir, e))?;
        let mut all = Vec::new();
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = fs::read(&path).map_err(|e| io_failed("reading", &path, e))?;
                all.extend(decode(&path, &bytes));
            }
        }
        Ok(all)
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Option<Sandbox> {
    let decoded = serde_json::from_slice(bytes).ok().and_then(|v| Sandbox::decode(&v));
    if decoded.is_none() {
        tracing::warn!(path = %path.display(), "skipping an unreadable sandbox record");
    }
    decoded
}

/// Write `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(|e| io_failed("creating", &tmp, e))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io_failed("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| io_failed("renaming", &tmp, e))
}

async fn ip_netns(args: &[&str]) -> Result<(), RuntimeError> {
    let out = Command::new("ip").arg("netns").args(args).output().await;
    let out = out.map_err(|e| RuntimeError::Failed(format!("ip netns {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(RuntimeError::Failed(format!("ip netns {}: {}", args.join(" "), stderr.trim())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_record_survives_its_json() {
        let sandbox = Sandbox {
            info: SandboxInfo {
                id: "s1".into(),
                pod_uid: "u1".into(),
                ip: Some("10.245.0.9".into()),
                labels: BTreeMap::from([("io.flotilla.pod.uid".into(), "u1".into())]),
            },
            hostname: "web".into(),
            ports: vec![PortMapping { container_port: 80, host_port: 8080, protocol: "TCP".into(), host_ip: None }],
            cni_result: json!({ "ips": [{ "address": "10.245.0.9/16" }] }),
        };
        assert_eq!(Sandbox::decode(&sandbox.encode()), Some(sandbox.clone()));
        assert_eq!(sandbox.netns_path(), Path::new("/var/run/netns/flotilla-s1"));
    }
}
