//! Exec: an extra process in a running container's task, with fifos for its stdio.
//!
//! Invariants:
//! - An exec runs with the container's process settings (user, env, cwd, capabilities)
//!   and the requested args and terminal; the session id is `<container id>/<exec id>`,
//!   so resizing and collecting the exit code need no table.
//! - Output readers open their fifos before the exec is created (blocking, in a blocking
//!   thread, released when the shim opens the write end) and end at end of file; the
//!   session's output ends when every reader has. With a terminal there is one stream.
//! - The exit code is collected once: waiting, then deleting the process and its fifos.
//!   A failed start deletes whatever was made.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest, WaitRequest,
};
use k8s_openapi::serde_json::{self, json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::client::{self, failed, Api};
use super::{container, logfile, Inner};
use crate::runtime::{ExecOutput, ExecRequest, ExecSession, RuntimeError};

/// Output chunks buffered between the fifo readers and the session's consumer.
const OUTPUT_BUFFER: usize = 64;
const CHUNK: usize = 32 * 1024;

fn split_session(session: &str) -> Result<(&str, &str), RuntimeError> {
    session.split_once('/').ok_or_else(|| RuntimeError::not_found("exec", session))
}

/// Start `request` in container `id`. See the module doc.
pub async fn start(inner: &Inner, id: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
    let c = container::get(inner, id).await?.ok_or_else(|| RuntimeError::not_found("container", id))?;
    let spec: Value = c.spec.as_ref().and_then(|s| serde_json::from_slice(&s.value).ok()).unwrap_or_default();
    let mut process = spec["process"].clone();
    if !process.is_object() || request.command.is_empty() {
        return Err(RuntimeError::Failed(format!("cannot exec in container {id}: no command or no process spec")));
    }
    process["args"] = json!(request.command);
    process["terminal"] = json!(request.tty);
    let exec_id = format!("x{:016x}", rand::random::<u64>());
    let dir = inner.exec_dir(&exec_id);
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", dir.display())))?;
    match launch(inner, id, &exec_id, &dir, request, process).await {
        Ok(session) => Ok(session),
        Err(e) => {
            for f in ["stdout", "stderr"] {
                logfile::unblock(&dir.join(f));
            }
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

async fn launch(
    inner: &Inner,
    id: &str,
    exec_id: &str,
    dir: &Path,
    request: &ExecRequest,
    process: Value,
) -> Result<ExecSession, RuntimeError> {
    let path = |s: &str| dir.join(s).display().to_string();
    let streams: &[&str] = if request.tty { &["stdout"] } else { &["stdout", "stderr"] };
    let (tx, rx) = mpsc::channel(OUTPUT_BUFFER);
    for stream in streams {
        logfile::mkfifo(&dir.join(stream))?;
        tokio::spawn(read_output(dir.join(stream), *stream == "stderr", tx.clone()));
    }
    drop(tx);
    if request.stdin {
        logfile::mkfifo(&dir.join("stdin"))?;
    }
    let mut exec = ExecProcessRequest {
        container_id: id.into(),
        stdin: if request.stdin { path("stdin") } else { String::new() },
        stdout: path("stdout"),
        stderr: if request.tty { String::new() } else { path("stderr") },
        terminal: request.tty,
        spec: Some(Default::default()),
        exec_id: exec_id.into(),
    };
    if let Some(any) = exec.spec.as_mut() {
        any.type_url = client::PROCESS_TYPE_URL.into();
        any.value = serde_json::to_vec(&process).expect("JSON encodes");
    }
    let api = &inner.api;
    api.tasks().exec(api.req(exec)).await.map_err(|s| failed("task", id, s))?;
    let stdin = match request.stdin {
        true => {
            let sender = tokio::net::unix::pipe::OpenOptions::new().read_write(true).open_sender(dir.join("stdin"));
            let sender = sender.map_err(|e| RuntimeError::Failed(format!("opening exec stdin: {e}")))?;
            let closer = Some((inner.api.clone(), id.to_string(), exec_id.to_string()));
            Some(Box::pin(Stdin { sender: Some(sender), closer })
                as std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>)
        }
        false => None,
    };
    let started = api.tasks().start(api.req(StartRequest { container_id: id.into(), exec_id: exec_id.into() })).await;
    if let Err(s) = started {
        delete_process(inner, id, exec_id).await;
        return Err(failed("exec", exec_id, s));
    }
    let output = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    Ok(ExecSession { id: format!("{id}/{exec_id}"), stdin, output: Box::pin(output) })
}

/// An exec's stdin. The shim keeps a write end of the fifo open itself, so closing ours
/// is not enough: shutting it down (or dropping it) also asks containerd to close the
/// process's stdin (CloseIO), which it does once the fifo is drained.
struct Stdin {
    sender: Option<tokio::net::unix::pipe::Sender>,
    /// The API and the container and exec ids, until CloseIO is sent.
    closer: Option<(Api, String, String)>,
}

impl Stdin {
    fn close(&mut self) {
        self.sender = None;
        let Some((api, id, exec_id)) = self.closer.take() else { return };
        let Ok(tokio) = tokio::runtime::Handle::try_current() else { return };
        tokio.spawn(async move {
            let request = CloseIoRequest { container_id: id.clone(), exec_id, stdin: true };
            if let Err(s) = api.tasks().close_io(api.req(request)).await {
                tracing::debug!(container = id, error = %s.message(), "closing an exec's stdin failed");
            }
        });
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        self.close();
    }
}

impl tokio::io::AsyncWrite for Stdin {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match &mut self.get_mut().sender {
            Some(sender) => Pin::new(sender).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().close();
        Poll::Ready(Ok(()))
    }
}

/// Forward fifo `fifo` into `tx` until its end.
async fn read_output(fifo: std::path::PathBuf, stderr: bool, tx: mpsc::Sender<Result<ExecOutput, RuntimeError>>) {
    let opened = tokio::task::spawn_blocking(move || std::fs::File::open(fifo)).await;
    let pipe = match opened
        .map_err(std::io::Error::other)
        .and_then(|f| f)
        .and_then(tokio::net::unix::pipe::Receiver::from_file)
    {
        Ok(pipe) => pipe,
        Err(e) => {
            let _ = tx.send(Err(RuntimeError::Failed(format!("opening exec output: {e}")))).await;
            return;
        }
    };
    let mut pipe = pipe;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let chunk = match pipe.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => Bytes::copy_from_slice(&buf[..n]),
            Err(e) => {
                let _ = tx.send(Err(RuntimeError::Failed(format!("reading exec output: {e}")))).await;
                return;
            }
        };
        let out = if stderr { ExecOutput::Stderr(chunk) } else { ExecOutput::Stdout(chunk) };
        if tx.send(Ok(out)).await.is_err() {
            return;
        }
    }
}

async fn delete_process(inner: &Inner, id: &str, exec_id: &str) {
    let api = &inner.api;
    let request = DeleteProcessRequest { container_id: id.into(), exec_id: exec_id.into() };
    if let Err(s) = client::optional(api.tasks().delete_process(api.req(request)).await) {
        tracing::warn!(container = id, exec_id, error = %s.message(), "cannot delete an exec process");
    }
}

/// Resize the terminal of exec `session`.
pub async fn resize(inner: &Inner, session: &str, width: u16, height: u16) -> Result<(), RuntimeError> {
    let (id, exec_id) = split_session(session)?;
    let api = &inner.api;
    let request = ResizePtyRequest {
        container_id: id.into(),
        exec_id: exec_id.into(),
        width: u32::from(width),
        height: u32::from(height),
    };
    api.tasks().resize_pty(api.req(request)).await.map_err(|s| failed("exec", session, s))?;
    Ok(())
}

/// The exit code of exec `session`, once; its process and fifos are then deleted.
pub async fn exit_code(inner: &Inner, session: &str) -> Result<i32, RuntimeError> {
    let (id, exec_id) = split_session(session)?;
    let api = &inner.api;
    let waited = api.tasks().wait(api.req(WaitRequest { container_id: id.into(), exec_id: exec_id.into() })).await;
    let status = waited.map_err(|s| failed("exec", session, s))?.into_inner().exit_status;
    delete_process(inner, id, exec_id).await;
    let _ = std::fs::remove_dir_all(inner.exec_dir(exec_id));
    Ok(i32::try_from(status).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_names_the_container_and_the_exec() {
        assert_eq!(split_session("c1/x2").unwrap(), ("c1", "x2"));
        assert!(matches!(split_session("bare"), Err(RuntimeError::NotFound { .. })));
    }
}
