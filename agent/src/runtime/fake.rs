//! [`FakeRuntime`]: an in-memory runtime. Containers "run" (nothing executes) until they
//! are stopped or a test makes them exit; simulated nodes use it like kubemark's hollow
//! nodes, and the pod sync tests use it as their in-memory runtime.
//!
//! Invariants:
//! - Behaves like a real runtime where the agent can tell: ids are unique, a container
//!   starts only from Created, a stopped container reports an exit code, removing a
//!   running container or a sandbox with containers fails, and state survives the agent
//!   (the same `FakeRuntime` handed to a new agent is a runtime that outlived its agent).
//! - Every state change a container makes by itself (an injected exit) is announced on
//!   [`Runtime::events`].
//! - Pod IPs come from the runtime's own /24 and are unique among live sandboxes.
//! - Every image is present unless a test marks it missing.
//! - Exec works in running containers only; every exec is recorded ([`FakeRuntime::execs`])
//!   and answers exit 0 unless a test scripts another code or a hang for that container
//!   (so probe and hook tests run real exec calls).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::broadcast;

use super::{labels, ContainerInfo, ContainerSpec, ContainerState, Runtime, RuntimeError, RuntimeEvent};
use super::{ExecOutput, ExecRequest, ExecSession, SandboxInfo, SandboxSpec};

/// Buffered runtime events; a subscriber that lags this far behind resyncs everything.
const EVENT_BUFFER: usize = 1024;
/// Exit code of a container stopped by the agent (128 + SIGTERM: it honoured the signal).
pub const STOPPED_EXIT_CODE: i32 = 143;

#[derive(Default)]
struct State {
    next_id: u64,
    sandboxes: BTreeMap<String, SandboxInfo>,
    containers: BTreeMap<String, ContainerInfo>,
    missing_images: BTreeSet<String>,
    /// Containers of these images exit with this code as soon as they start.
    exit_on_start: BTreeMap<String, i32>,
    /// Host parts of the pod IPs in use.
    ips: BTreeSet<u8>,
    starts: u64,
    /// Scripted exec behaviour by (pod uid, container name).
    exec_scripts: BTreeMap<(String, String), ExecScript>,
    /// Every exec, in order.
    execs: Vec<ExecCall>,
    /// Exit codes of finished execs, by exec id.
    exec_codes: BTreeMap<String, i32>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ExecScript {
    exit_code: i32,
    /// The exec's output never ends (a command that hangs).
    hang: bool,
}

/// One exec the fake runtime was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCall {
    pub pod_uid: String,
    pub container: String,
    /// The container's id (which attempt was exec'd into).
    pub id: String,
    pub command: Vec<String>,
}

/// The in-memory runtime. See the module doc.
pub struct FakeRuntime {
    state: Mutex<State>,
    /// The first three octets of the pod addresses (a /24).
    network: [u8; 3],
    events: broadcast::Sender<RuntimeEvent>,
}

impl FakeRuntime {
    /// A runtime whose pods get addresses in `network`/24 (the last octet is ignored).
    pub fn new(network: Ipv4Addr) -> Self {
        let [a, b, c, _] = network.octets();
        Self { state: Mutex::default(), network: [a, b, c], events: broadcast::channel(EVENT_BUFFER).0 }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake runtime state lock poisoned")
    }

    /// Make `image` absent (`true`) or present again (`false`).
    pub fn set_image_missing(&self, image: &str, missing: bool) {
        let mut s = self.state();
        if missing {
            s.missing_images.insert(image.to_string());
        } else {
            s.missing_images.remove(image);
        }
    }

    /// Containers of `image` started from now on exit at once with `code` (None: run).
    pub fn set_exit_on_start(&self, image: &str, code: Option<i32>) {
        let mut s = self.state();
        match code {
            Some(code) => s.exit_on_start.insert(image.to_string(), code),
            None => s.exit_on_start.remove(image),
        };
    }

    /// The running container `name` of pod `pod_uid` exits with `code`. False if there is
    /// no such running container.
    pub fn exit(&self, pod_uid: &str, name: &str, code: i32) -> bool {
        let mut s = self.state();
        let Some(c) = s.containers.values_mut().find(|c| c.pod_uid == pod_uid && c.name == name && c.is_running())
        else {
            return false;
        };
        exit_container(c, code, None);
        drop(s);
        let _ = self.events.send(RuntimeEvent { pod_uid: pod_uid.to_string() });
        true
    }

    /// Execs in container `name` of pod `pod_uid` exit with `exit_code` from now on.
    pub fn set_exec_result(&self, pod_uid: &str, name: &str, exit_code: i32) {
        self.state().exec_scripts.entry((pod_uid.to_string(), name.to_string())).or_default().exit_code = exit_code;
    }

    /// Execs in container `name` of pod `pod_uid` hang (`true`: their output never ends).
    pub fn set_exec_hang(&self, pod_uid: &str, name: &str, hang: bool) {
        self.state().exec_scripts.entry((pod_uid.to_string(), name.to_string())).or_default().hang = hang;
    }

    /// Every exec so far, in order.
    pub fn execs(&self) -> Vec<ExecCall> {
        self.state().execs.clone()
    }

    /// How many containers were ever started (to tell adoption from restarts).
    pub fn starts(&self) -> u64 {
        self.state().starts
    }

    fn allocate_ip(&self, s: &mut State) -> Result<String, RuntimeError> {
        let host = (2..=254u8).find(|h| !s.ips.contains(h)).ok_or_else(|| {
            RuntimeError::Failed(format!(
                "no free pod address in {}.{}.{}.0/24",
                self.network[0], self.network[1], self.network[2]
            ))
        })?;
        s.ips.insert(host);
        let [a, b, c] = self.network;
        Ok(Ipv4Addr::new(a, b, c, host).to_string())
    }
}

fn exit_container(c: &mut ContainerInfo, exit_code: i32, reason: Option<String>) {
    let started_at = match c.state {
        ContainerState::Running { started_at } => Some(started_at),
        _ => None,
    };
    c.state = ContainerState::Exited { exit_code, started_at, finished_at: Timestamp::now(), reason };
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(env!("CARGO_PKG_VERSION").to_string())
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        Ok((!self.state().missing_images.contains(image)).then(|| super::made_up_image_id(image)))
    }

    async fn create_sandbox(&self, spec: &SandboxSpec) -> Result<SandboxInfo, RuntimeError> {
        let mut s = self.state();
        let ip = self.allocate_ip(&mut s)?;
        s.next_id += 1;
        let id = format!("sandbox-{:08x}", s.next_id);
        let info =
            SandboxInfo { id: id.clone(), pod_uid: spec.pod_uid.clone(), ip: Some(ip), labels: spec.labels.clone() };
        s.sandboxes.insert(id, info.clone());
        Ok(info)
    }

    async fn remove_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        if s.containers.values().any(|c| c.labels.get(SANDBOX_LABEL).map(String::as_str) == Some(id)) {
            return Err(RuntimeError::Failed(format!("sandbox {id} still has containers")));
        }
        if let Some(sandbox) = s.sandboxes.remove(id) {
            let host = sandbox.ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()).map(|ip| ip.octets()[3]);
            if let Some(host) = host {
                s.ips.remove(&host);
            }
        }
        Ok(())
    }

    async fn list_sandboxes(&self, pod_uid: Option<&str>) -> Result<Vec<SandboxInfo>, RuntimeError> {
        let s = self.state();
        Ok(s.sandboxes.values().filter(|b| pod_uid.is_none_or(|u| b.pod_uid == u)).cloned().collect())
    }

    async fn create_container(&self, sandbox: &str, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut s = self.state();
        if !s.sandboxes.contains_key(sandbox) {
            return Err(RuntimeError::not_found("sandbox", sandbox));
        }
        if s.missing_images.contains(&spec.image) {
            return Err(RuntimeError::ImageMissing(spec.image.clone()));
        }
        s.next_id += 1;
        let id = format!("{:016x}", s.next_id);
        let mut labels = spec.labels.clone();
        labels.insert(SANDBOX_LABEL.to_string(), sandbox.to_string());
        labels.insert(labels::ATTEMPT.to_string(), spec.attempt.to_string());
        let info = ContainerInfo {
            id: id.clone(),
            pod_uid: spec.pod_uid.clone(),
            name: spec.name.clone(),
            attempt: spec.attempt,
            image: spec.image.clone(),
            image_id: super::made_up_image_id(&spec.image),
            state: ContainerState::Created,
            labels,
        };
        s.containers.insert(id.clone(), info);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        let exit_on_start = s.containers.get(id).and_then(|c| s.exit_on_start.get(&c.image).copied());
        let c = s.containers.get_mut(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
        if c.state != ContainerState::Created {
            return Err(RuntimeError::Failed(format!("container {id} is not in state created")));
        }
        c.state = ContainerState::Running { started_at: Timestamp::now() };
        if let Some(code) = exit_on_start {
            exit_container(c, code, None);
        }
        s.starts += 1;
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        let mut s = self.state();
        let c = s.containers.get_mut(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
        match c.state {
            ContainerState::Running { .. } => exit_container(c, STOPPED_EXIT_CODE, None),
            ContainerState::Created => exit_container(c, STOPPED_EXIT_CODE, Some("ContainerCannotRun".into())),
            ContainerState::Exited { .. } => {}
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        if s.containers.get(id).is_some_and(ContainerInfo::is_running) {
            return Err(RuntimeError::Failed(format!("container {id} is running")));
        }
        s.containers.remove(id);
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        self.state().containers.get(id).cloned().ok_or_else(|| RuntimeError::not_found("container", id))
    }

    async fn list_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        let s = self.state();
        Ok(s.containers.values().filter(|c| pod_uid.is_none_or(|u| c.pod_uid == u)).cloned().collect())
    }

    async fn exec_stream(&self, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        let mut s = self.state();
        let c = s.containers.get(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
        if !c.is_running() {
            return Err(RuntimeError::Failed(format!("container {id} is not running")));
        }
        let call = ExecCall {
            pod_uid: c.pod_uid.clone(),
            container: c.name.clone(),
            id: id.to_string(),
            command: request.command.clone(),
        };
        let script = s.exec_scripts.get(&(call.pod_uid.clone(), call.container.clone())).copied().unwrap_or_default();
        let output = format!("fake exec {:?}\n", call.command);
        s.execs.push(call);
        let exec_id = format!("exec-{}", s.execs.len());
        let output: ExecStream = if script.hang {
            Box::pin(futures::stream::pending())
        } else {
            s.exec_codes.insert(exec_id.clone(), script.exit_code);
            Box::pin(futures::stream::iter([Ok(ExecOutput::Stdout(output.into()))]))
        };
        let stdin = request.stdin.then(|| Box::pin(tokio::io::sink()) as _);
        Ok(ExecSession { id: exec_id, stdin, output })
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        self.state().exec_codes.get(exec_id).copied().ok_or_else(|| RuntimeError::not_found("exec", exec_id))
    }

    fn events(&self) -> Option<broadcast::Receiver<RuntimeEvent>> {
        Some(self.events.subscribe())
    }
}

/// An exec's output as [`ExecSession`] carries it.
type ExecStream = std::pin::Pin<Box<dyn futures::Stream<Item = Result<ExecOutput, RuntimeError>> + Send>>;

/// The fake's own label: which sandbox a container lives in.
const SANDBOX_LABEL: &str = "io.flotilla.fake.sandbox";

#[cfg(test)]
mod tests;
