//! Starting a container's process, and the task that waits for it to exit.
//!
//! Invariants:
//! - A container starts from Created only, and leaves Created at once: Running with its
//!   pid and start time recorded, or — when there is nothing to run or the program cannot
//!   be executed — Exited with code 128 and reason `StartError` (containerd's answer), the
//!   message appended to its log. The sync core then restarts it with back-off.
//! - The process sees only the container's env (plus a default `PATH` and `HOSTNAME`, as
//!   an image would give it), not the agent's.
//! - Exactly one task waits for each started process; it records the exit code, kills
//!   the leftovers of the process group and announces the exit. Meanwhile it stamps the
//!   log's growth ([`super::stamps`]), a last time after the exit.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use tokio::process::{Child, Command};

use super::record::{ContainerRecord, ProcessId};
use super::stamps::{Stamper, STAMP_INTERVAL};
use super::{pid, Shared, UNKNOWN_EXIT_CODE, UNKNOWN_REASON};
use crate::runtime::{ContainerState, RuntimeError};

/// `PATH` of a container that sets none. No image supplies one here, so Debian's default.
pub(super) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exit code of a container whose process could not be started (as containerd reports).
const START_ERROR_EXIT_CODE: i32 = 128;
const START_ERROR_REASON: &str = "StartError";

/// Start container `id`'s process. See the module doc.
pub(super) fn start(shared: &Arc<Shared>, id: &str) -> Result<(), RuntimeError> {
    let mut guard = shared.state();
    let s = &mut *guard;
    let r = s.containers.get(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
    if r.info.state != ContainerState::Created {
        return Err(RuntimeError::Failed(format!("container {id} is not in state created")));
    }
    let hostname =
        s.sandboxes.get(&r.sandbox).ok_or_else(|| RuntimeError::not_found("sandbox", &r.sandbox))?.hostname.clone();
    let cwd = r.working_dir.as_ref().map_or_else(|| shared.dirs.pod(&r.info.pod_uid), PathBuf::from);
    let log = shared.dirs.log(id);
    let child = match spawn(r, &hostname, &cwd, &log) {
        Ok(child) => child,
        Err(message) => {
            tracing::warn!(container = id, error = message, "container cannot start");
            let noted = OpenOptions::new().create(true).append(true).open(&log);
            if let Err(e) = noted.and_then(|mut f| writeln!(f, "flotilla process runtime: {message}")) {
                tracing::warn!(container = id, error = %e, "cannot write a container's log");
            }
            shared.finish(s, id, START_ERROR_EXIT_CODE, Some(START_ERROR_REASON))?;
            return Err(RuntimeError::Failed(message));
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).expect("a child not yet waited for has a pid");
    // Zero if /proc cannot tell: an adopter then never mistakes another process for it.
    let start_ticks = pid::stat(pid).map_or(0, |st| st.start_ticks);
    let r = s.containers.get_mut(id).expect("looked up under the same lock");
    r.info.state = ContainerState::Running { started_at: Timestamp::now() };
    r.process = Some(ProcessId { pid, start_ticks });
    let saved = shared.save(r);
    s.children.insert(id.to_string());
    tracing::info!(container = id, pid, pod_uid = r.info.pod_uid, "container process started");
    drop(guard);
    wait(Arc::clone(shared), id.to_string(), pid, child, log);
    saved
}

/// Spawn `r`'s process in its own process group, output appended to `log`.
fn spawn(r: &ContainerRecord, hostname: &str, cwd: &Path, log: &Path) -> Result<Child, String> {
    let Some((program, args)) = r.argv.split_first() else {
        return Err(format!(
            "container {:?} has no command: the process runtime has no image to take a default command from",
            r.info.name
        ));
    };
    let open = || OpenOptions::new().create(true).append(true).open(log);
    let (stdout, stderr) =
        open().and_then(|f| Ok((f.try_clone()?, f))).map_err(|e| format!("opening {}: {e}", log.display()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOSTNAME", hostname)
        .envs(r.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(false);
    command.spawn().map_err(|e| format!("cannot run {program:?} in {}: {e}", cwd.display()))
}

/// Wait for `child` (container `id`, process `pid`) in a task of its own.
fn wait(shared: Arc<Shared>, id: String, pid: i32, mut child: Child, log: PathBuf) {
    tokio::spawn(async move {
        let mut stamper = Stamper::new(log);
        let mut tick = tokio::time::interval(STAMP_INTERVAL);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = tick.tick() => stamper.observe(),
            }
        };
        stamper.observe();
        // Just reaped: `-pid` can only name what is left of this container's group.
        pid::signal_group(pid, libc::SIGKILL);
        let (code, reason) = match status {
            Ok(status) => (pid::exit_code(status), None),
            Err(e) => {
                tracing::warn!(container = id, pid, error = %e, "cannot wait for a container's process");
                (UNKNOWN_EXIT_CODE, Some(UNKNOWN_REASON))
            }
        };
        let mut s = shared.state();
        s.children.remove(&id);
        if s.containers.get(&id).is_some_and(|r| r.process.is_some_and(|p| p.pid == pid)) {
            if let Err(e) = shared.finish(&mut s, &id, code, reason) {
                tracing::warn!(container = id, error = %e, "cannot record a container's exit");
            }
        }
    });
}
