//! A Kubernetes watch read line by line over one HTTP/1.1 connection, and the list that
//! starts it.
//!
//! Both end-to-end benches (`bench-scheduler`, `bench-handover`) time *when* something
//! becomes visible through the API, so they list first (for a resourceVersion and for what
//! already exists) and then watch from that version: nothing that happens after the list
//! can be missed, and a stream that ends early is resumed by listing again.

use anyhow::{ensure, Context};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::bench_api::client::{resource_version, Conn, Lines};

/// An open watch stream.
pub struct WatchStream {
    /// Kept so the connection stays open while the body is read.
    _conn: Conn,
    body: Incoming,
    lines: Lines,
}

impl WatchStream {
    /// Opens `GET {collection}?watch=true&resourceVersion={rv}` plus `query` (e.g.
    /// `labelSelector=a%3Db`), and returns once the server has answered 200.
    pub async fn open(url: &str, collection: &str, query: &str, rv: &str) -> anyhow::Result<Self> {
        let mut conn = Conn::connect(url).await?;
        let sep = if query.is_empty() { "" } else { "&" };
        let path = format!("{collection}?watch=true&resourceVersion={rv}{sep}{query}");
        let resp = conn.send(Method::GET, &path, None).await.with_context(|| format!("opening watch {path}"))?;
        ensure!(resp.status() == StatusCode::OK, "watch {path} answered HTTP {}", resp.status());
        Ok(WatchStream { _conn: conn, body: resp.into_body(), lines: Lines::default() })
    }

    /// Reads the next chunk and calls `each` with every complete event line in it.
    /// `Ok(false)` when the server ended the stream.
    pub async fn next_lines(&mut self, each: impl FnMut(&[u8])) -> anyhow::Result<bool> {
        loop {
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.lines.push(&data, each);
                        return Ok(true);
                    }
                }
                Some(Err(e)) => return Err(anyhow::Error::new(e).context("watch stream failed")),
                None => return Ok(false),
            }
        }
    }
}

/// Lists `collection` (with `query`); returns its resourceVersion and items.
pub async fn list(url: &str, collection: &str, query: &str) -> anyhow::Result<(String, Vec<Value>)> {
    let mut conn = Conn::connect(url).await?;
    let path = if query.is_empty() { collection.to_string() } else { format!("{collection}?{query}") };
    let mut list = conn.call_json(Method::GET, &path, None, StatusCode::OK).await?;
    let rv = resource_version(&list)?;
    let items = match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    Ok((rv, items))
}
