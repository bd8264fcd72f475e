//! The API server's side of the agent endpoint: where a node's agent listens, the shared
//! token, and a small HTTP/1.1 client over a TCP or TLS connection that streams a response
//! body through, or performs an upgrade handshake and splices the two connections.
//!
//! Invariants:
//! - Every request to an agent carries `Authorization: Bearer <token>`, the token of the
//!   Secret `kube-system/flotilla-node-proxy-token` (created here if missing, with
//!   create-if-absent semantics shared with the agents).
//! - A TLS API server calls agents over TLS, presenting its own certificate: TLS agents
//!   admit only replicas' and admins' certificates, so nodes (which can read the token)
//!   cannot call one another. The agents' self-signed certificates are not verified, as
//!   kube-apiserver's default without `--kubelet-certificate-authority`.
//! - Nothing is buffered beyond [`MAX_HEAD_BYTES`] of response head and
//!   [`MAX_ERROR_BODY_BYTES`] of a non-success body; a success body is passed through chunk
//!   by chunk, so `follow` streams, and the agent connection is dropped with the client's.
//! - An agent that answers anything but success is answered to the client as it was
//!   (code, content type, body): its `metav1.Status` reaches kubectl unchanged.
//!
//! Why a hand-written client: this crate's dependencies give it axum's server only; a
//! request head, chunked decoding and a byte splice are all the agent protocol needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, WriteOptions};
use crate::resources;

pub const TOKEN_NAMESPACE: &str = "kube-system";
pub const TOKEN_SECRET: &str = "flotilla-node-proxy-token";
pub const TOKEN_KEY: &str = "token";
/// How long connecting to an agent may take before the request fails (503).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an agent may take to answer a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response head accepted from an agent.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest error body relayed from an agent (a Status is a few hundred bytes).
pub const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// Largest chunk-size line of a chunked body.
const MAX_CHUNK_LINE: u64 = 64;

fn unavailable(what: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(what.to_string())
}

/// The node proxy token, creating its Secret if none exists yet.
pub async fn token(registry: &Registry) -> ApiResult<String> {
    let res = resources::lookup("", "v1", "secrets").expect("secrets are served");
    let found = match registry.get(res, Some(TOKEN_NAMESPACE), TOKEN_SECRET).await {
        Ok(secret) => secret,
        Err(ApiError::NotFound(_)) => {
            let fresh: String = rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
            let encoded = base64::engine::general_purpose::STANDARD.encode(fresh.as_bytes());
            let secret = json!({
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": TOKEN_SECRET, "namespace": TOKEN_NAMESPACE},
                "data": {TOKEN_KEY: encoded},
            });
            match registry.create(res, Some(TOKEN_NAMESPACE), secret, &WriteOptions::default()).await {
                Err(ApiError::AlreadyExists(_)) => registry.get(res, Some(TOKEN_NAMESPACE), TOKEN_SECRET).await?,
                other => other?,
            }
        }
        Err(e) => return Err(e),
    };
    let encoded = found.pointer(&format!("/data/{TOKEN_KEY}")).and_then(Value::as_str).unwrap_or_default();
    let token = base64::engine::general_purpose::STANDARD.decode(encoded).ok().and_then(|b| String::from_utf8(b).ok());
    token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unavailable(format!("secret {TOKEN_NAMESPACE}/{TOKEN_SECRET} holds no usable {TOKEN_KEY:?}")))
}

/// A response head from an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn parse(raw: &str) -> Option<Self> {
        let mut lines = raw.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Self { status, headers })
    }
}

/// A connection to an agent: plain TCP, or TLS.
pub trait AgentIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AgentIo for T {}
pub type AgentConn = Box<dyn AgentIo>;

/// Where an agent listens, and the TLS to speak to it (a TLS API server presents its own
/// certificate, which the agent requires; see `flotilla_pki::client_config_any_server`).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub addr: SocketAddr,
    pub tls: Option<&'a Arc<rustls::ClientConfig>>,
}

async fn connect(target: Target<'_>) -> ApiResult<AgentConn> {
    let addr = target.addr;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unavailable(format!("the node agent at {addr} did not accept a connection in time")))?
        .map_err(|e| unavailable(format!("cannot reach the node agent at {addr}: {e}")))?;
    let Some(tls) = target.tls else { return Ok(Box::new(tcp)) };
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp))
            .await
            .map_err(|_| unavailable(format!("the node agent at {addr} did not finish the TLS handshake in time")))?
            .map_err(|e| unavailable(format!("TLS with the node agent at {addr}: {e}")))?;
    Ok(Box::new(stream))
}

/// Open a connection to the agent at `target`, send `GET path` with the token and `extra`
/// headers, and read the response head.
pub async fn request(
    target: Target<'_>,
    path: &str,
    token: &str,
    extra: &[(String, String)],
) -> ApiResult<(Head, BufReader<AgentConn>)> {
    let addr = target.addr;
    let stream = connect(target).await?;
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(head.as_bytes()).await.map_err(|e| unavailable(format!("node agent at {addr}: {e}")))?;
    let head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut reader))
        .await
        .map_err(|_| unavailable(format!("the node agent at {addr} did not answer in time")))?
        .ok_or_else(|| unavailable(format!("the node agent at {addr} sent no valid response")))?;
    Ok((head, reader))
}

async fn read_head<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> Option<Head> {
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        let n = (&mut *reader).take((MAX_HEAD_BYTES - raw.len()) as u64).read_until(b'\n', &mut raw).await.ok()?;
        if n == 0 || raw.len() >= MAX_HEAD_BYTES {
            return None;
        }
    }
    Head::parse(std::str::from_utf8(&raw).ok()?.trim_end())
}

/// The agent's response to `GET path` as a response to the client: see [`relay`].
pub async fn get(target: Target<'_>, path: &str, token: &str) -> ApiResult<Response> {
    let (head, reader) = request(target, path, token, &[("Connection".into(), "close".into())]).await?;
    relay(head, reader).await
}

/// An agent's response as a response to the client: a success body streamed through,
/// anything else read (up to [`MAX_ERROR_BODY_BYTES`]) and relayed.
pub async fn relay<R: AsyncRead + Unpin + Send + 'static>(head: Head, reader: BufReader<R>) -> ApiResult<Response> {
    let chunked = head.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"));
    let length = head.header("content-length").and_then(|l| l.parse::<u64>().ok());
    let code = StatusCode::from_u16(head.status).map_err(|_| unavailable("the node agent sent a bad status"))?;
    let body = if code.is_success() {
        body_stream(reader, chunked, length)
    } else {
        let mut all = Vec::new();
        let mut stream = body_stream(reader, chunked, length.or(Some(0))).into_data_stream();
        while let Some(Ok(chunk)) = futures::StreamExt::next(&mut stream).await {
            all.extend_from_slice(&chunk);
            if all.len() as u64 >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        Body::from(all)
    };
    let content_type = head.header("content-type").unwrap_or("text/plain").to_string();
    let mut response = Response::new(body);
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(response)
}

/// Where a body is: in a chunk (bytes left), between chunks, or done.
enum Framing {
    Chunked { left: u64 },
    Length { left: u64 },
    UntilClose,
    Done,
}

/// The body after a head, decoded, as a streaming [`Body`].
fn body_stream<R: AsyncRead + Unpin + Send + 'static>(
    reader: BufReader<R>,
    chunked: bool,
    length: Option<u64>,
) -> Body {
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked { left: 0 },
        (false, Some(n)) => Framing::Length { left: n },
        (false, None) => Framing::UntilClose,
    };
    let stream = futures::stream::unfold((reader, framing), |(mut reader, framing)| async move {
        let (chunk, framing) = match next_chunk(&mut reader, framing).await {
            Ok(Some(step)) => step,
            Ok(None) => return None,
            Err(e) => return Some((Err(e), (reader, Framing::Done))),
        };
        Some((Ok(chunk), (reader, framing)))
    });
    Body::from_stream(stream)
}

async fn next_chunk<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    framing: Framing,
) -> std::io::Result<Option<(Bytes, Framing)>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut buf = vec![0; 16 * 1024];
    match framing {
        Framing::Done => Ok(None),
        Framing::Chunked { left: 0 } => {
            let mut line = String::new();
            (&mut *reader).take(MAX_CHUNK_LINE).read_line(&mut line).await?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size from the node agent"))?;
            if size == 0 {
                return Ok(None);
            }
            Box::pin(next_chunk(reader, Framing::Chunked { left: size })).await
        }
        Framing::Chunked { left } | Framing::Length { left } if left > 0 => {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
            let n = reader.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(bad("the node agent closed the connection mid-body"));
            }
            buf.truncate(n);
            let left = left - n as u64;
            let next = match framing {
                Framing::Chunked { .. } if left == 0 => {
                    let mut crlf = [0u8; 2];
                    reader.read_exact(&mut crlf).await?;
                    Framing::Chunked { left: 0 }
                }
                Framing::Chunked { .. } => Framing::Chunked { left },
                _ => Framing::Length { left },
            };
            Ok(Some((Bytes::from(buf), next)))
        }
        Framing::Length { .. } => Ok(None),
        Framing::UntilClose => {
            let n = reader.read(&mut buf).await?;
            buf.truncate(n);
            Ok((n > 0).then(|| (Bytes::from(buf), Framing::UntilClose)))
        }
        Framing::Chunked { .. } => unreachable!("chunked with 0 left is matched above"),
    }
}

/// Copy bytes both ways between an upgraded client connection and the agent's until
/// either side closes.
pub async fn splice<C, A>(mut client: C, mut agent: A)
where
    C: AsyncRead + AsyncWrite + Unpin,
    A: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::io::copy_bidirectional(&mut client, &mut agent).await {
        Ok((up, down)) => tracing::debug!(up, down, "node proxy connection closed"),
        Err(e) => tracing::debug!(error = %e, "node proxy connection ended"),
    }
}

#[cfg(test)]
mod tests;
