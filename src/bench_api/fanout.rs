//! Watch fan-out: many watchers on one namespace's pods while one writer changes pods at a
//! fixed rate; how long after a write is acknowledged does each watcher read its event, and
//! does every watcher see every event?
//!
//! Data flow: list the (empty) namespace for a resourceVersion R; open `watchers` watches
//! (`?watch=true&resourceVersion=R`, watcher i on replica i mod n) and wait until each has its
//! response head; then [`writer`](super::writer) issues `rate` writes per second, cycling per
//! pod `w-<k>` through create (write 3k, event ADDED), update (3k+1, MODIFIED) and delete
//! (3k+2, DELETED). The writer records when each write was sent and when its response
//! arrived; each watcher records when it parsed each event. Both clocks are one `Instant`
//! base in this process, so delay = read − acknowledged needs no clock sync. An event can be
//! read before its write's response arrives; such events count as delay 0 and are reported
//! as `read_before_ack`. For context the report also gives the delay from when the write
//! was *sent* (`send_*_ms`), which includes the write's own latency.
//!
//! Events are matched to writes by (type, pod name); ADDED and MODIFIED also carry the write
//! number in an annotation, which must agree. A pod's events must arrive in write order;
//! different pods' writes run concurrently, so their relative order is not checked. After the last write, watchers get
//! [`DRAIN_TIMEOUT`] to catch up; anything still unseen is reported missing.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{resource_version, Conn, Lines};
use super::objects::path;
use super::ops::Recorder;
use super::procfs::CpuUse;
use super::stats::{round2, Summary};
use super::writer::{self, Ack, Writes};

/// Longest the watchers may take to open their streams.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after the last write the watchers get to deliver the remaining events.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between checks of the watchers' progress while draining.
const DRAIN_POLL: Duration = Duration::from_millis(20);

pub struct FanoutConfig {
    pub urls: Vec<String>,
    pub target: String,
    pub ns: String,
    pub watchers: usize,
    /// Writes per second.
    pub rate: u32,
    pub duration: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub measure: &'static str,
    pub target: String,
    pub watchers: usize,
    /// Watchers whose stream opened with HTTP 200.
    pub watchers_started: usize,
    pub write_rate: u32,
    pub writes: u64,
    pub write_errors: u64,
    /// Writes per second the writer achieved.
    pub write_rate_achieved: f64,
    pub write_p99_ms: f64,
    /// Acknowledged writes × watchers (a watcher that failed to start misses them all).
    pub events_expected: u64,
    /// Events of acknowledged writes read by watchers (each counted once per watcher).
    pub events_received: u64,
    pub missing_events: u64,
    pub duplicate_events: u64,
    pub out_of_order_events: u64,
    /// Lines that were not an event of a write (bad JSON, ERROR, unknown pod, wrong seq).
    pub unexpected_lines: u64,
    pub read_before_ack: u64,
    /// Watchers that saw every acknowledged write.
    pub watchers_complete: usize,
    pub every_watcher_saw_every_event: bool,
    /// Event read − write acknowledged (0 when read first).
    #[serde(flatten)]
    pub delay: Summary,
    /// Event read − write sent.
    pub send_p50_ms: f64,
    pub send_p99_ms: f64,
    pub send_max_ms: f64,
    /// Filled in by the caller.
    #[serde(flatten)]
    pub cpu: CpuUse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

pub async fn run(cfg: FanoutConfig) -> anyhow::Result<FanoutReport> {
    let total = (f64::from(cfg.rate) * cfg.duration.as_secs_f64()).round().max(1.0) as u64;
    let mut conn = Conn::connect(&cfg.urls[0]).await?;
    let pods = path(&cfg.ns, "pods", None);
    let list = conn.call_json(Method::GET, &pods, None, StatusCode::OK).await?;
    let rv = resource_version(&list)?;
    let watch_path = format!("{pods}?watch=true&resourceVersion={rv}");

    let t0 = Instant::now();
    let cancel = CancellationToken::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(cfg.watchers);
    let mut tasks = JoinSet::new();
    let mut progress = Vec::with_capacity(cfg.watchers);
    for i in 0..cfg.watchers {
        let p = Arc::new(Progress::default());
        progress.push(p.clone());
        let w = Watcher { url: cfg.urls[i % cfg.urls.len()].clone(), path: watch_path.clone(), t0, total, progress: p };
        tasks.spawn(w.run(ready_tx.clone(), cancel.clone()));
    }
    drop(ready_tx);
    let mut started = 0;
    let ready_deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    while let Ok(Some(ok)) = tokio::time::timeout_at(ready_deadline, ready_rx.recv()).await {
        started += usize::from(ok);
    }

    let Writes { acks, recorder: write_rec, elapsed: write_elapsed } =
        writer::write_pods(&cfg.urls, &cfg.ns, cfg.rate, total, t0).await?;
    let acked = acks.iter().filter(|a| a.is_some()).count() as u64;
    let drain_deadline = Instant::now() + DRAIN_TIMEOUT;
    while Instant::now() < drain_deadline && progress.iter().any(|p| p.waiting_for(acked)) {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    cancel.cancel();
    let mut outs = Vec::new();
    while let Some(r) = tasks.join_next().await {
        outs.push(r.context("a watcher panicked")?);
    }
    let writes = Recorder::report(vec![write_rec], "write", &cfg.target, 1, write_elapsed);
    Ok(summarise(&cfg, &acks, outs, started, writes))
}

struct Watcher {
    url: String,
    path: String,
    t0: Instant,
    /// Number of writes the writer will make.
    total: u64,
    progress: Arc<Progress>,
}

/// How far one watcher has come, for the drain loop.
#[derive(Default)]
struct Progress {
    /// Distinct writes seen.
    seen: AtomicU64,
    /// The watcher has stopped reading (its stream failed or ended).
    ended: AtomicBool,
}

impl Progress {
    fn waiting_for(&self, writes: u64) -> bool {
        !self.ended.load(Ordering::Relaxed) && self.seen.load(Ordering::Relaxed) < writes
    }
}

/// What one watcher observed.
#[derive(Default)]
struct WatcherOut {
    /// Per write number: its event has been read.
    seen: Vec<bool>,
    /// (write number, read time in ns since t0), in arrival order, first sighting only.
    reads: Vec<(u64, u64)>,
    duplicates: u64,
    out_of_order: u64,
    unexpected: u64,
    error: Option<String>,
}

impl WatcherOut {
    fn new(total: u64) -> Self {
        WatcherOut { seen: vec![false; total as usize], ..Default::default() }
    }

    /// Tallies one watch line read at `now`; true if it is the first sighting of a write.
    fn observe(&mut self, line: &[u8], now: u64) -> bool {
        let total = self.seen.len() as u64;
        let Some(idx) = classify(line).filter(|i| *i < total) else {
            self.unexpected += 1;
            return false;
        };
        if std::mem::replace(&mut self.seen[idx as usize], true) {
            self.duplicates += 1;
            return false;
        }
        let pod_last = (3 * (idx / 3) + 2).min(total - 1);
        if (idx + 1..=pod_last).any(|later| self.seen[later as usize]) {
            self.out_of_order += 1;
        }
        self.reads.push((idx, now));
        true
    }
}

impl Watcher {
    async fn run(self, ready: tokio::sync::mpsc::Sender<bool>, cancel: CancellationToken) -> WatcherOut {
        let out = self.read(ready, cancel).await;
        self.progress.ended.store(true, Ordering::Relaxed);
        out
    }

    async fn read(&self, ready: tokio::sync::mpsc::Sender<bool>, cancel: CancellationToken) -> WatcherOut {
        let mut out = WatcherOut::new(self.total);
        let resp = async {
            let mut conn = Conn::connect(&self.url).await?;
            let resp = conn.send(Method::GET, &self.path, None).await?;
            anyhow::ensure!(resp.status() == StatusCode::OK, "watch answered HTTP {}", resp.status());
            anyhow::Ok((conn, resp))
        };
        let (_conn, resp) = match resp.await {
            Ok(r) => r,
            Err(e) => {
                out.error = Some(format!("{e:#}"));
                let _ = ready.send(false).await;
                return out;
            }
        };
        let _ = ready.send(true).await;
        drop(ready);
        let mut body = resp.into_body();
        let mut lines = Lines::default();
        loop {
            let frame = tokio::select! {
                _ = cancel.cancelled() => return out,
                f = body.frame() => f,
            };
            let chunk = match frame {
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Some(Err(e)) => {
                    out.error = Some(format!("watch stream failed: {e}"));
                    return out;
                }
                None => {
                    out.error = Some("the server ended the watch stream".into());
                    return out;
                }
            };
            let now = self.t0.elapsed().as_nanos() as u64;
            lines.push(&chunk, |line| {
                if out.observe(line, now) {
                    self.progress.seen.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
}

#[derive(Deserialize)]
struct EventLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: EventObject<'a>,
}

#[derive(Deserialize)]
struct EventObject<'a> {
    #[serde(default, borrow)]
    metadata: EventMeta<'a>,
}

#[derive(Deserialize, Default)]
struct EventMeta<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    annotations: Annotations<'a>,
}

#[derive(Deserialize, Default)]
struct Annotations<'a> {
    /// `objects::SEQ_ANNOTATION`; serde needs the literal.
    #[serde(rename = "bench.flotilla.dev/seq", borrow)]
    seq: Option<Cow<'a, str>>,
}

/// The write number of one watch line, or `None` for anything that is not a write's event.
fn classify(line: &[u8]) -> Option<u64> {
    let ev: EventLine = serde_json::from_slice(line).ok()?;
    let k: u64 = ev.object.metadata.name.strip_prefix("w-")?.parse().ok()?;
    let idx = match ev.kind.as_ref() {
        "ADDED" => 3 * k,
        "MODIFIED" => 3 * k + 1,
        "DELETED" => return Some(3 * k + 2),
        _ => return None,
    };
    let seq: u64 = ev.object.metadata.annotations.seq?.parse().ok()?;
    (seq == idx).then_some(idx)
}

fn summarise(
    cfg: &FanoutConfig,
    acks: &[Option<Ack>],
    outs: Vec<WatcherOut>,
    started: usize,
    writes: super::ops::OpReport,
) -> FanoutReport {
    let acked = acks.iter().filter(|a| a.is_some()).count() as u64;
    let (mut delays, mut from_send) = (Vec::new(), Vec::new());
    let (mut received, mut duplicates, mut out_of_order, mut unexpected, mut before, mut complete) = (0, 0, 0, 0, 0, 0);
    let mut first_error = writes.first_error.clone();
    for out in &outs {
        let mut mine = 0;
        for &(idx, read) in &out.reads {
            if let Some(ack) = acks[idx as usize] {
                mine += 1;
                before += u64::from(read < ack.acked);
                delays.push(Duration::from_nanos(read.saturating_sub(ack.acked)));
                from_send.push(Duration::from_nanos(read.saturating_sub(ack.sent)));
            }
        }
        received += mine;
        complete += usize::from(out.error.is_none() && mine == acked);
        duplicates += out.duplicates;
        out_of_order += out.out_of_order;
        unexpected += out.unexpected;
        if first_error.is_none() {
            first_error.clone_from(&out.error);
        }
    }
    let expected = acked * cfg.watchers as u64;
    let s = Summary::of(&mut delays);
    let send = Summary::of(&mut from_send);
    FanoutReport {
        measure: "watch",
        target: cfg.target.clone(),
        watchers: cfg.watchers,
        watchers_started: started,
        write_rate: cfg.rate,
        writes: writes.requests,
        write_errors: writes.errors,
        write_rate_achieved: round2(writes.requests as f64 / writes.elapsed_s.max(1e-9)),
        write_p99_ms: writes.latency.p99_ms,
        events_expected: expected,
        events_received: received,
        missing_events: expected.saturating_sub(received),
        duplicate_events: duplicates,
        out_of_order_events: out_of_order,
        unexpected_lines: unexpected,
        read_before_ack: before,
        watchers_complete: complete,
        every_watcher_saw_every_event: complete == cfg.watchers && writes.errors == 0,
        delay: Summary { p50_ms: round2(s.p50_ms), p99_ms: round2(s.p99_ms), max_ms: round2(s.max_ms) },
        send_p50_ms: round2(send.p50_ms),
        send_p99_ms: round2(send.p99_ms),
        send_max_ms: round2(send.max_ms),
        cpu: CpuUse::default(),
        first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::super::objects::SEQ_ANNOTATION;
    use super::*;

    #[test]
    fn events_map_to_write_numbers() {
        let added =
            br#"{"type":"ADDED","object":{"metadata":{"name":"w-4","annotations":{"bench.flotilla.dev/seq":"12"}}}}"#;
        assert_eq!(classify(added), Some(12));
        let modified = br#"{"type":"MODIFIED","object":{"metadata":{"name":"w-4","annotations":{"bench.flotilla.dev/seq":"13"}},"spec":{}}}"#;
        assert_eq!(classify(modified), Some(13));
        // A DELETED event carries the last state, so its annotation is the update's number.
        let deleted =
            br#"{"type":"DELETED","object":{"metadata":{"name":"w-4","annotations":{"bench.flotilla.dev/seq":"13"}}}}"#;
        assert_eq!(classify(deleted), Some(14));
    }

    #[test]
    fn foreign_lines_are_not_events() {
        let wrong_seq =
            br#"{"type":"ADDED","object":{"metadata":{"name":"w-4","annotations":{"bench.flotilla.dev/seq":"9"}}}}"#;
        assert_eq!(classify(wrong_seq), None);
        assert_eq!(classify(br#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#), None);
        assert_eq!(classify(br#"{"type":"ADDED","object":{"metadata":{"name":"other"}}}"#), None);
        assert_eq!(classify(b"not json"), None);
    }

    fn line(kind: &str, pod: u64, seq: u64) -> Vec<u8> {
        let name = format!("w-{pod}");
        let v = serde_json::json!({"type": kind, "object": {"metadata": {"name": name,
            "annotations": {SEQ_ANNOTATION: seq.to_string()}}}});
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn tally_counts_duplicates_reordering_and_strangers() {
        let mut out = WatcherOut::new(6);
        assert!(out.observe(&line("ADDED", 0, 0), 10));
        assert!(!out.observe(&line("ADDED", 0, 0), 11), "a second sighting is a duplicate");
        // Pod 1's update before its create: the create arrives out of order.
        assert!(out.observe(&line("MODIFIED", 1, 4), 12));
        assert!(out.observe(&line("ADDED", 1, 3), 13));
        // Pod 0's delete before its update, but different pods may interleave freely.
        assert!(out.observe(&line("DELETED", 0, 1), 14));
        assert!(out.observe(&line("MODIFIED", 0, 1), 15));
        assert!(!out.observe(&line("ADDED", 9, 27), 16), "beyond the writes made");
        assert_eq!((out.duplicates, out.out_of_order, out.unexpected), (1, 2, 1));
        assert_eq!(out.reads, [(0, 10), (4, 12), (3, 13), (2, 14), (1, 15)]);
    }

    #[test]
    fn the_annotation_name_matches_the_struct() {
        let v = serde_json::json!({"bench.flotilla.dev/seq": "1"});
        assert!(v.get(SEQ_ANNOTATION).is_some());
    }
}
