//! A minimal Kubernetes API client for the benchmark: one HTTP/1.1 keep-alive connection per
//! client, JSON in and out, and streamed watch bodies.
//!
//! One connection per benchmark client (not a shared pool) so that "32 clients" means 32
//! requests in flight on 32 connections, as 32 kubectl or controller processes would have.
//! A connection that fails is dropped and dialled again on the next request; the failed
//! request is counted as an error by the caller.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::dial::{ClientTls, Target};

/// Longest a non-watch request may take before it counts as failed; far above any latency
/// worth reporting, short enough that a stuck server does not hang the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of an error body goes into an error message.
const ERROR_BODY_CHARS: usize = 300;

/// One HTTP/1.1 connection to one replica's Kubernetes API, plain or TLS.
pub struct Conn {
    target: Target,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `base` (`http://host:port`), dialled now so set-up is not timed.
    pub async fn connect(base: &str) -> anyhow::Result<Self> {
        Self::connect_with(base, None).await
    }

    /// A connection to `base`, `http://` or, with `tls`, `https://`.
    pub async fn connect_with(base: &str, tls: Option<&ClientTls>) -> anyhow::Result<Self> {
        let mut conn = Conn { target: Target::new(base, tls)?, sender: None };
        conn.sender().await?;
        Ok(conn)
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = self.target.dial().await?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            // The connection future does the socket I/O; it ends when the sender is dropped.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("set just above"))
    }

    /// Sends a request and returns the response head with its body still unread.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response<Incoming>> {
        let host = self.target.addr.to_string();
        let mut req =
            Request::builder().method(method).uri(path).header("host", host).header("accept", "application/json");
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Full::new(Bytes::from(serde_json::to_vec(v)?))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body)?;
        let sender = self.sender().await?;
        sender.ready().await?;
        match sender.send_request(req).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                self.sender = None;
                Err(e.into())
            }
        }
    }

    /// Sends a request, reads the whole body, and fails unless the status is `want`.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> anyhow::Result<Bytes> {
        let what = format!("{method} {path}");
        let exchange = async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        };
        let (status, bytes) = match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(e.context(what));
            }
            Err(_) => {
                self.sender = None;
                bail!("{what}: no answer within {REQUEST_TIMEOUT:?}");
            }
        };
        if status != want {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(ERROR_BODY_CHARS).collect();
            bail!("{what}: HTTP {status} (wanted {want}): {text}");
        }
        Ok(bytes)
    }

    /// Like [`Conn::call`], with the body parsed as JSON.
    pub async fn call_json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> anyhow::Result<Value> {
        let bytes = self.call(method, path, body, want).await?;
        serde_json::from_slice(&bytes).context("response body is not JSON")
    }
}

/// `metadata.resourceVersion` of an object or list.
pub fn resource_version(v: &Value) -> anyhow::Result<String> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(String::from)
        .context("response has no metadata.resourceVersion")
}

/// Splits a streamed body into newline-terminated lines.
#[derive(Default)]
pub struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// Appends `chunk` and calls `each` with every complete line (without the newline).
    pub fn push(&mut self, chunk: &[u8], mut each: impl FnMut(&[u8])) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(n) = self.buf[start..].iter().position(|b| *b == b'\n') {
            each(&self.buf[start..start + n]);
            start += n + 1;
        }
        self.buf.drain(..start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks() {
        let mut lines = Lines::default();
        let mut got: Vec<String> = Vec::new();
        lines.push(b"{\"a\":1}\n{\"b\"", |l| got.push(String::from_utf8_lossy(l).into()));
        assert_eq!(got, ["{\"a\":1}"]);
        lines.push(b":2}\n\n{\"c\":3}\n", |l| got.push(String::from_utf8_lossy(l).into()));
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}", "", "{\"c\":3}"]);
        assert!(lines.buf.is_empty());
    }

    #[test]
    fn resource_version_is_read_from_metadata() {
        let v = serde_json::json!({"metadata": {"resourceVersion": "42"}});
        assert_eq!(resource_version(&v).unwrap(), "42");
        assert!(resource_version(&serde_json::json!({})).is_err());
    }
}
