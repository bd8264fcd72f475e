//! A minimal HTTP/1.1 JSON client over a tokio `TcpStream`, enough for the Kubernetes API of
//! the cluster under test (plain `http://`, no TLS, no auth).
//!
//! One request per connection (`Connection: close`), the body read to EOF, `Content-Length`
//! or `chunked` bodies decoded. The error says whether the request may have reached the
//! server: [`HttpError::Connect`] means nothing was sent (a write definitely did not
//! happen), anything else after sending is indeterminate for a write.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bound on a response body: a pod list of a few dozen pods is far below it.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The connection was not established: nothing was sent.
    #[error("connecting to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// The request may have been sent; no usable answer came back.
    #[error("request to {addr}: {reason}")]
    Lost { addr: String, reason: String },
}

impl HttpError {
    /// True when the request never left this machine.
    pub fn not_sent(&self) -> bool {
        matches!(self, HttpError::Connect { .. })
    }
}

/// A status code and a JSON body (`Null` when the body is empty or not JSON).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Sends `method path` to `base` (`http://host:port`) with an optional JSON body.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<Response, HttpError> {
    let addr = base.trim_start_matches("http://").trim_end_matches('/').to_string();
    let connect = tokio::time::timeout(timeout, TcpStream::connect(&addr)).await;
    let mut stream = match connect {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(HttpError::Connect { addr, reason: e.to_string() }),
        Err(_) => return Err(HttpError::Connect { addr, reason: "timed out".into() }),
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(payload.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream).take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(HttpError::Lost { addr, reason: e.to_string() }),
        Err(_) => return Err(HttpError::Lost { addr, reason: "timed out".into() }),
    };
    parse(&raw).ok_or_else(|| HttpError::Lost { addr, reason: "malformed response".into() })
}

/// Parses a whole HTTP/1.1 response.
fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    Some(Response { status, body })
}

/// Decodes a `chunked` body (extensions and trailers ignored).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"a\":1}\n";
        let r = parse(plain).expect("parses");
        assert_eq!((r.status, r.body["a"].as_i64()), (200, Some(1)));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        let r = parse(chunked).expect("parses");
        assert_eq!((r.status, r.body["a"].as_i64()), (404, Some(2)));
        assert!(parse(b"garbage").is_none());
    }
}
