//! `GET /exec/{namespace}/{pod}/{container}?command=…&stdin&stdout&stderr&tty`: `kubectl
//! exec` over a websocket speaking `v5.channel.k8s.io` (or `v4.channel.k8s.io`).
//!
//! Protocol: every binary message starts with its channel byte — 0 stdin (client to
//! server), 1 stdout, 2 stderr, 3 error (one `metav1.Status` JSON at the end), 4 resize
//! (`{"Width":..,"Height":..}`), and in v5 255 "close channel" (`[255, 0]`: stdin is done).
//!
//! Invariants:
//! - Everything checkable before the upgrade is checked before it (parameters, the
//!   container exists and runs), so those failures are plain HTTP Status answers. Once
//!   upgraded, every outcome — a runtime refusing, a failed command, success — is one
//!   Status on channel 3, then the websocket is closed, as the kubelet does.
//! - Stdin is written by a task of its own through a bounded channel, so a command that
//!   does not read its stdin never stops its output from being forwarded.
//! - The client going away ends the session: stdin and the output stream are dropped.

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::error::ServerError;
use super::query::Params;
use super::{lookup, Shared};
use crate::runtime::{ExecOutput, ExecRequest, ExecSession};

/// The subprotocols served, preferred first. v4 differs from v5 only in lacking channel 255.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// Stdin chunks buffered for the writer task; a full buffer stops reading the websocket,
/// which pushes back on the client instead of growing memory.
const STDIN_BUFFER: usize = 16;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// What a request asks to run, and which streams it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exec {
    pub request: ExecRequest,
    pub stdout: bool,
    pub stderr: bool,
}

pub fn parse(params: &Params) -> Result<Exec, ServerError> {
    let command = params.all("command");
    if command.is_empty() || command[0].is_empty() {
        return Err(ServerError::BadRequest("you must specify at least one command for the container".into()));
    }
    let (stdin, stdout, stderr, tty) =
        (params.flag("stdin")?, params.flag("stdout")?, params.flag("stderr")?, params.flag("tty")?);
    if !(stdin || stdout || stderr) {
        return Err(ServerError::BadRequest("you must specify at least 1 of stdin, stdout, stderr".into()));
    }
    if tty && stderr {
        return Err(ServerError::BadRequest(
            "stdout and stderr are one stream with a tty: stderr must be false".into(),
        ));
    }
    Ok(Exec { request: ExecRequest { command, stdin, tty }, stdout, stderr })
}

pub async fn handle(
    _: super::Authorized,
    State(shared): State<Arc<Shared>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServerError> {
    let exec = parse(&Params::parse(raw.as_deref()))?;
    let Ok(upgrade) = upgrade else {
        return Err(ServerError::BadRequest(format!("exec needs a websocket upgrade ({})", PROTOCOLS.join(" or "))));
    };
    let found = lookup::container(shared.runtime.as_ref(), &namespace, &pod, &container, false).await?;
    if !found.is_running() {
        return Err(ServerError::BadRequest(format!("container {container} is not running")));
    }
    tracing::info!(pod = format!("{namespace}/{pod}"), container, command = ?exec.request.command, "exec");
    Ok(upgrade.protocols(PROTOCOLS).on_upgrade(move |socket| session(socket, shared, found.id, exec)))
}

/// One upgraded exec: start it, pump it, report how it ended, close.
async fn session(mut socket: WebSocket, shared: Arc<Shared>, container: String, exec: Exec) {
    let v5 = socket.protocol().is_some_and(|p| p.as_bytes() == PROTOCOLS[0].as_bytes());
    let status = match shared.runtime.exec_stream(&container, &exec.request).await {
        Ok(session) => pump(&mut socket, &shared, session, &exec, v5).await,
        Err(e) => Some(failure(&ServerError::from(e).to_string())),
    };
    if let Some(status) = status {
        let mut frame = vec![ERROR];
        frame.extend_from_slice(status.to_string().as_bytes());
        let _ = socket.send(Message::Binary(frame.into())).await;
    }
    // A normal closure (1000): kubectl treats any other close, even 1005 "no status", as
    // a broken stream and would not report the command's exit code.
    let normal = CloseFrame { code: close_code::NORMAL, reason: "".into() };
    let _ = socket.send(Message::Close(Some(normal))).await;
}

/// Forward output and input until the command's output ends; the Status to send, or None
/// when the client went away.
async fn pump(socket: &mut WebSocket, shared: &Shared, session: ExecSession, exec: &Exec, v5: bool) -> Option<Value> {
    let ExecSession { id, stdin, mut output } = session;
    let mut stdin_tx = stdin.map(|writer| {
        let (tx, rx) = mpsc::channel::<Bytes>(STDIN_BUFFER);
        tokio::spawn(write_stdin(writer, rx));
        tx
    });
    loop {
        tokio::select! {
            chunk = output.next() => match chunk {
                Some(Ok(ExecOutput::Stdout(b))) if exec.stdout => send(socket, STDOUT, &b).await.ok()?,
                Some(Ok(ExecOutput::Stderr(b))) if exec.stderr => send(socket, STDERR, &b).await.ok()?,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Some(failure(&e.to_string())),
                None => break,
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(b))) => match (b.first(), b.get(1)) {
                    (Some(&STDIN), _) => {
                        if let Some(tx) = &stdin_tx {
                            let _ = tx.send(b.slice(1..)).await;
                        }
                    }
                    (Some(&RESIZE), _) => resize(shared, &id, &b[1..]).await,
                    (Some(&CLOSE), Some(&STDIN)) if v5 => stdin_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    tracing::debug!(exec = id, "exec client went away");
                    return None;
                }
                Some(Ok(_)) => {}
            },
        }
    }
    drop(stdin_tx);
    Some(match shared.runtime.exec_exit_code(&id).await {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => exited(&exec.request.command, code),
        Err(e) => failure(&e.to_string()),
    })
}

async fn send(socket: &mut WebSocket, channel: u8, data: &[u8]) -> Result<(), axum::Error> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    socket.send(Message::Binary(frame.into())).await
}

async fn write_stdin(mut writer: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(chunk) = rx.recv().await {
        if writer.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

async fn resize(shared: &Shared, id: &str, body: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    match serde_json::from_slice::<Size>(body) {
        Ok(s) => {
            if let Err(e) = shared.runtime.exec_resize(id, s.width, s.height).await {
                tracing::debug!(exec = id, error = %e, "terminal resize refused");
            }
        }
        Err(e) => tracing::debug!(exec = id, error = %e, "bad resize message"),
    }
}

/// The Status of a command that exited with `code` != 0, as the kubelet writes it.
pub fn exited(command: &[String], code: i32) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: command '{}' exited with {code}", command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status of an exec that could not run or broke.
pub fn failure(message: &str) -> Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_are_refused() {
        let e =
            parse(&Params::parse(Some("command=sh&command=-c&command=x&stdin=true&stdout=true&stderr=true"))).unwrap();
        assert_eq!(e.request.command, ["sh", "-c", "x"]);
        assert!(e.request.stdin && !e.request.tty && e.stdout && e.stderr);
        assert!(parse(&Params::parse(Some("stdout=true"))).is_err());
        assert!(parse(&Params::parse(Some("command=ls"))).is_err());
        assert!(parse(&Params::parse(Some("command=ls&stdout=true&stderr=true&tty=true"))).is_err());
    }

    #[test]
    fn exit_status_matches_the_kubelet() {
        let s = exited(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0], json!({"reason": "ExitCode", "message": "3"}));
    }
}
