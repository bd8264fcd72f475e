//! Running one resolved [`Action`] with its timeout: exec in the container through the
//! runtime, an HTTP GET (hyper 1, one connection per run), a TCP connect.
//!
//! Invariants:
//! - A run never outlives its timeout; running out of time is a [`Outcome::Failure`]
//!   (upstream counts exec timeouts as failures since 1.20).
//! - What could not be tried at all (unsupported action, a runtime without exec, a
//!   container the runtime no longer knows) is [`Outcome::Unknown`]: it says nothing
//!   about the container's health.
//! - HTTP: 200–399 is success (redirects are not followed; a redirect is a success, as
//!   upstream treats a redirect to another host); the body is not read.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::{ACCEPT, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::action::Action;
use super::state::Outcome;
use crate::runtime::{Runtime, RuntimeError};

/// The User-Agent of HTTP probes, as upstream sends it.
const PROBE_USER_AGENT: &str = "kube-probe/1.32";
/// Bytes of an exec's output kept in a failure message.
const OUTPUT_SHOWN: usize = 256;

/// Run `action` for container `container_id`, giving up after `timeout`.
pub async fn run(runtime: &dyn Runtime, container_id: &str, action: &Action, timeout: Duration) -> Outcome {
    let work = async {
        match action {
            Action::Exec(command) => exec(runtime, container_id, command).await,
            Action::Http { host, port, path, headers } => http_get(host, *port, path, headers).await,
            Action::Tcp { host, port } => match TcpStream::connect((host.as_str(), *port)).await {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            },
            Action::Sleep(d) => {
                tokio::time::sleep(*d).await;
                Outcome::Success
            }
            Action::Unsupported(why) => Outcome::Unknown(why.clone()),
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failure(format!("timed out after {}s", timeout.as_secs_f64())),
    }
}

async fn exec(runtime: &dyn Runtime, container_id: &str, command: &[String]) -> Outcome {
    match runtime.exec(container_id, command).await {
        Ok((0, _)) => Outcome::Success,
        Ok((code, output)) => {
            let shown = String::from_utf8_lossy(&output[..output.len().min(OUTPUT_SHOWN)]).trim().to_string();
            Outcome::Failure(format!("command {command:?} exited with {code}: {shown}"))
        }
        Err(e @ (RuntimeError::NotSupported { .. } | RuntimeError::NotFound { .. })) => Outcome::Unknown(e.to_string()),
        Err(e) => Outcome::Failure(format!("exec {command:?}: {e}")),
    }
}

async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Outcome {
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let url = format!("http://{authority}{path}");
    let stream = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get {url}: dial tcp {authority}: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return Outcome::Failure(format!("Get {url}: {e}")),
    };
    let mut request = hyper::Request::get(path).header(USER_AGENT, PROBE_USER_AGENT).header(ACCEPT, "*/*");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        request = request.header(HOST, &authority);
    }
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = match request.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return Outcome::Unknown(format!("Get {url}: cannot build the request: {e}")),
    };
    // The connection is driven in this same future: no task outlives the probe.
    let send = sender.send_request(request);
    tokio::pin!(send);
    let response = tokio::select! {
        response = &mut send => response,
        ended = conn => match ended {
            // A server that closes after answering ends the connection first.
            Ok(()) => send.await,
            Err(e) => return Outcome::Failure(format!("Get {url}: {e}")),
        },
    };
    match response {
        Ok(r) if (200..400).contains(&r.status().as_u16()) => Outcome::Success,
        Ok(r) => Outcome::Failure(format!("HTTP probe failed with statuscode: {}", r.status().as_u16())),
        Err(e) => Outcome::Failure(format!("Get {url}: {e}")),
    }
}

#[cfg(test)]
mod tests;
