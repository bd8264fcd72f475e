//! Pairs the streams of one session into port-forward requests and runs them.
//!
//! kubectl opens, per local connection, an `error` stream then a `data` stream, both with
//! headers `streamtype`, `port` and `requestid`. Invariants:
//! - every stream is answered at once: SYN_REPLY when its headers are valid (kubectl
//!   waits for it before opening the next stream), RST_STREAM otherwise;
//! - a request runs ([`forward`]) when both of its streams are there; one whose partner
//!   does not come within [`PAIR_TIMEOUT`] is dropped, with a message on its error
//!   stream if it has one (as the kubelet does);
//! - when the session ends, the accept channel closes and every running forward is
//!   aborted, which closes its pod connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::forward::forward;
use super::frame::rst;
use super::stream::Stream;

/// How long the first stream of a request waits for its partner (the kubelet's
/// default stream creation timeout).
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

struct Waiting {
    pair: Pair,
    deadline: Instant,
}

/// Accepts streams until the session ends, forwarding each complete pair to
/// `pod_ip:port`.
pub(super) async fn dispatch(mut accept: mpsc::Receiver<Stream>, pod_ip: IpAddr) {
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        let next_deadline = waiting.values().map(|w| w.deadline).min();
        tokio::select! {
            stream = accept.recv() => match stream {
                Some(stream) => {
                    if let Some((data, error, port)) = on_stream(&mut waiting, stream) {
                        tasks.spawn(forward(data, error, SocketAddr::new(pod_ip, port)));
                    }
                }
                None => break,
            },
            () = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)), if next_deadline.is_some() => {
                expire(&mut waiting, &mut tasks);
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

/// Files `stream` under its request; returns the request once both streams are there.
fn on_stream(waiting: &mut HashMap<String, Waiting>, stream: Stream) -> Option<(Stream, Stream, u16)> {
    let (kind, port) = match classify(&stream) {
        Ok(found) => found,
        Err(why) => {
            tracing::debug!(stream = stream.id(), why, "refusing port-forward stream");
            stream.reset(rst::PROTOCOL_ERROR);
            return None;
        }
    };
    let request = request_id(&stream, kind);
    stream.reply();
    let entry = waiting
        .entry(request.clone())
        .or_insert_with(|| Waiting { pair: Pair::default(), deadline: Instant::now() + PAIR_TIMEOUT });
    let slot = match kind {
        Kind::Error => &mut entry.pair.error,
        Kind::Data => &mut entry.pair.data,
    };
    if slot.is_some() {
        tracing::debug!(stream = stream.id(), request, "duplicate port-forward stream");
        stream.reset(rst::STREAM_IN_USE);
        return None;
    }
    *slot = Some(stream);
    let pair = &entry.pair;
    let (Some(data), Some(_)) = (&pair.data, &pair.error) else { return None };
    let data_port = classify(data).map(|(_, p)| p).unwrap_or(port);
    let done = waiting.remove(&request).expect("entry exists").pair;
    Some((done.data.expect("checked"), done.error.expect("checked"), data_port))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Error,
    Data,
}

fn classify(stream: &Stream) -> Result<(Kind, u16), &'static str> {
    let headers = stream.headers();
    let port: u16 = headers.get("port").ok_or("missing port header")?.parse().map_err(|_| "port is not a number")?;
    if port == 0 {
        return Err("port must be > 0");
    }
    let kind = match headers.get("streamtype").ok_or("missing streamtype header")? {
        "error" => Kind::Error,
        "data" => Kind::Data,
        _ => return Err("streamtype is neither error nor data"),
    };
    Ok((kind, port))
}

/// The `requestid` header; clients older than it send the error stream then the data
/// stream with consecutive odd ids, so the error stream's id names the request.
fn request_id(stream: &Stream, kind: Kind) -> String {
    match stream.headers().get("requestid") {
        Some(id) => id.to_owned(),
        None if kind == Kind::Error => stream.id().to_string(),
        None => stream.id().saturating_sub(2).to_string(),
    }
}

fn expire(waiting: &mut HashMap<String, Waiting>, tasks: &mut JoinSet<()>) {
    let now = Instant::now();
    let expired: Vec<String> = waiting.iter().filter(|(_, w)| w.deadline <= now).map(|(k, _)| k.clone()).collect();
    for request in expired {
        let pair = waiting.remove(&request).expect("listed above").pair;
        tracing::debug!(request, "port-forward request timed out waiting for its streams");
        if let Some(error) = pair.error {
            let message = format!("timed out waiting for the streams of port-forward request {request}");
            tasks.spawn(async move {
                let _ = error.send_and_finish(Bytes::from(message)).await;
            });
        }
        if let Some(data) = pair.data {
            data.reset(rst::CANCEL);
        }
    }
}
