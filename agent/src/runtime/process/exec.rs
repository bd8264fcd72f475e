//! `kubectl exec` for the process runtime: the command runs as another host process with
//! the container's env, working directory and hostname — no more isolated than the
//! container itself.
//!
//! Invariants:
//! - Only a running container can exec. The exec joins the container's process group
//!   when it can, so stopping the container (or its exit) ends its execs too, as in a
//!   real container; if the group cannot be joined (a container adopted from an agent in
//!   another session) the exec gets a group of its own.
//! - No terminal: a `tty` exec is refused with `NotSupported`; stdin, stdout and stderr are
//!   pipes. The output stream ends when both stdout and stderr are closed.
//! - An exec's exit code is kept until [`Execs::exit_code`] reads it, for at most
//!   [`MAX_EXECS`] execs: beyond that the oldest finished ones are forgotten.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

use super::{pid, spawn::DEFAULT_PATH, Shared};
use crate::runtime::{ContainerState, ExecOutput, ExecRequest, ExecSession, RuntimeError};

/// Exit codes kept for execs whose code was not read yet. Every finished `kubectl exec`
/// reads its own at once, so only abandoned sessions accumulate.
pub const MAX_EXECS: usize = 1024;
/// Bytes read from an exec's stdout or stderr per chunk.
const READ_CHUNK: usize = 16 * 1024;

/// An exec's exit code: None while it runs.
type ExitCode = watch::Receiver<Option<i32>>;

/// The execs of one runtime: the last id handed out, and their exit codes.
#[derive(Default)]
pub struct Execs {
    next: Mutex<(u64, BTreeMap<u64, ExitCode>)>,
}

/// What an exec in container `id` inherits from it.
struct Inherited {
    env: Vec<(String, String)>,
    cwd: PathBuf,
    hostname: String,
    group: i32,
}

fn inherited(shared: &Shared, id: &str) -> Result<Inherited, RuntimeError> {
    let mut s = shared.state();
    shared.refresh(&mut s, id)?;
    let r = s.containers.get(id).ok_or_else(|| RuntimeError::not_found("container", id))?;
    let (ContainerState::Running { .. }, Some(process)) = (&r.info.state, r.process) else {
        return Err(RuntimeError::Failed(format!("container {id} is not running")));
    };
    let hostname = s.sandboxes.get(&r.sandbox).map(|b| b.hostname.clone()).unwrap_or_default();
    let cwd = r.working_dir.as_ref().map_or_else(|| shared.dirs.pod(&r.info.pod_uid), PathBuf::from);
    Ok(Inherited { env: r.env.clone(), cwd, hostname, group: process.pid })
}

impl Execs {
    /// Start `request` in container `id`.
    pub fn start(&self, shared: &Shared, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
        if request.tty {
            return Err(RuntimeError::NotSupported { what: "exec with a terminal (tty)", runtime: "process" });
        }
        let Some((program, args)) = request.command.split_first() else {
            return Err(RuntimeError::Failed("exec needs a command".into()));
        };
        let c = inherited(shared, id)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOSTNAME", &c.hostname)
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&c.cwd)
            .stdin(if request.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.process_group(c.group).spawn().or_else(|_| command.process_group(0).spawn());
        let mut child =
            child.map_err(|e| RuntimeError::Failed(format!("cannot run {program:?} in {}: {e}", c.cwd.display())))?;
        let (tx, rx) = watch::channel(None);
        let exec_id = self.register(rx);
        tracing::info!(container = id, exec = exec_id, command = ?request.command, "exec started");
        let stdin = child.stdin.take().map(|w| Box::pin(w) as _);
        let stdout = chunks(child.stdout.take().expect("stdout is piped")).map(|r| r.map(ExecOutput::Stdout));
        let stderr = chunks(child.stderr.take().expect("stderr is piped")).map(|r| r.map(ExecOutput::Stderr));
        tokio::spawn(async move {
            let code = match child.wait().await {
                Ok(status) => pid::exit_code(status),
                Err(e) => {
                    tracing::warn!(exec = exec_id, error = %e, "cannot wait for an exec");
                    super::UNKNOWN_EXIT_CODE
                }
            };
            let _ = tx.send(Some(code));
        });
        let output = Box::pin(futures::stream::select(stdout, stderr));
        Ok(ExecSession { id: exec_id.to_string(), stdin, output })
    }

    fn register(&self, rx: ExitCode) -> u64 {
        let mut guard = self.next.lock().expect("exec table lock poisoned");
        let (next, table) = &mut *guard;
        *next += 1;
        if table.len() >= MAX_EXECS {
            let finished: Vec<u64> = table.iter().filter(|(_, r)| r.borrow().is_some()).map(|(k, _)| *k).collect();
            for k in finished.into_iter().take(table.len() + 1 - MAX_EXECS) {
                table.remove(&k);
            }
        }
        table.insert(*next, rx);
        *next
    }

    /// The exit code of exec `exec_id`, waiting for it to exit; read once.
    pub async fn exit_code(&self, exec_id: &str) -> Result<i32, RuntimeError> {
        let key = exec_id.parse::<u64>().ok();
        let rx = key.and_then(|k| self.next.lock().expect("exec table lock poisoned").1.get(&k).cloned());
        let mut rx = rx.ok_or_else(|| RuntimeError::not_found("exec", exec_id))?;
        let code = rx.wait_for(Option::is_some).await.map(|c| c.expect("waited for Some")).ok();
        if let Some(k) = key {
            self.next.lock().expect("exec table lock poisoned").1.remove(&k);
        }
        code.ok_or_else(|| RuntimeError::Failed(format!("exec {exec_id} vanished without an exit code")))
    }
}

/// `reader` as a stream of chunks, ending at end of file.
fn chunks(reader: impl AsyncRead + Unpin + Send + 'static) -> impl Stream<Item = Result<Bytes, RuntimeError>> + Send {
    futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0; READ_CHUNK];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(reader)))
            }
            Err(e) => Some((Err(RuntimeError::Failed(format!("reading an exec's output: {e}"))), None)),
        }
    })
}
