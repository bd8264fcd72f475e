//! The watch fan-out's writer: pod writes at a fixed rate, open loop.
//!
//! Write i is due at `start + i / rate`. Pod `w-<k>` gets writes 3k (create), 3k+1 (update:
//! a PUT of the created object with a new sequence annotation, so a CAS on its
//! resourceVersion) and 3k+2 (delete; the pod is unbound, so it goes at once). The pod's
//! three writes must happen in order, so pod k belongs to one of [`WRITERS`] connections
//! (k mod WRITERS), which issues each write when it is due or, if the previous one is still
//! running, as soon as it returns. Other pods' writes go on meanwhile, so a slow write does
//! not lower the rate unless all connections are busy.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::task::JoinSet;

use super::client::Conn;
use super::objects::{path, watch_pod, SEQ_ANNOTATION};
use super::ops::Recorder;

/// Writer connections. At 100 writes/s a connection's next pod is due 32 × 30 ms = 960 ms
/// after its previous one, so the rate holds while writes take up to ~300 ms each: the
/// writer stays open-loop even when the server is saturated, and the delays show it.
pub const WRITERS: usize = 32;

/// When one successful write was sent and acknowledged, in ns since the run's time base.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub sent: u64,
    pub acked: u64,
}

/// What the writers did.
pub struct Writes {
    /// Per write number: its times, `None` if it failed.
    pub acks: Vec<Option<Ack>>,
    pub recorder: Recorder,
    /// From the first write's due time to the last write's answer.
    pub elapsed: Duration,
}

/// Makes `total` writes at `rate` per second in namespace `ns`; writer j talks to
/// `urls[j mod len]`. Times are ns since `t0`.
pub async fn write_pods(urls: &[String], ns: &str, rate: u32, total: u64, t0: Instant) -> anyhow::Result<Writes> {
    let mut conns = Vec::with_capacity(WRITERS);
    for j in 0..WRITERS {
        conns.push(Conn::connect(&urls[j % urls.len()]).await?);
    }
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (j, conn) in conns.into_iter().enumerate() {
        let w = PodWriter { conn, ns: ns.to_string(), rate, t0, start };
        let writes: Vec<u64> = (0..total).filter(|i| (i / 3) as usize % WRITERS == j).collect();
        tasks.spawn(w.run(writes));
    }
    let mut acks = vec![None; total as usize];
    let mut recorder = Recorder::default();
    while let Some(done) = tasks.join_next().await {
        let (mine, rec) = done?;
        for (i, ack) in mine {
            acks[i as usize] = ack;
        }
        recorder.merge(rec);
    }
    Ok(Writes { acks, recorder, elapsed: start.elapsed() })
}

struct PodWriter {
    conn: Conn,
    ns: String,
    rate: u32,
    t0: Instant,
    start: Instant,
}

impl PodWriter {
    /// Issues `writes` (ascending write numbers of this writer's pods) in order.
    async fn run(mut self, writes: Vec<u64>) -> (Vec<(u64, Option<Ack>)>, Recorder) {
        let mut out = Vec::with_capacity(writes.len());
        let mut rec = Recorder::default();
        let mut current: Option<Value> = None;
        for i in writes {
            let due = self.start + Duration::from_secs_f64(i as f64 / f64::from(self.rate));
            tokio::time::sleep_until(due.into()).await;
            let t = Instant::now();
            let sent = t.duration_since(self.t0).as_nanos() as u64;
            match self.one(i, current.take()).await {
                Ok(obj) => {
                    out.push((i, Some(Ack { sent, acked: self.t0.elapsed().as_nanos() as u64 })));
                    current = Some(obj);
                    rec.record(t, Ok(()));
                }
                Err(e) => {
                    out.push((i, None));
                    rec.record(t, Err(e));
                }
            }
        }
        (out, rec)
    }

    /// Write `i`; `current` is the pod as the previous write of it returned it.
    async fn one(&mut self, i: u64, current: Option<Value>) -> anyhow::Result<Value> {
        let name = format!("w-{}", i / 3);
        let (pods, pod) = (path(&self.ns, "pods", None), path(&self.ns, "pods", Some(&name)));
        match i % 3 {
            0 => self.conn.call_json(Method::POST, &pods, Some(&watch_pod(&name, i)), StatusCode::CREATED).await,
            1 => {
                let Some(mut obj) = current else { anyhow::bail!("update of {name} skipped: its create failed") };
                obj["metadata"]["annotations"][SEQ_ANNOTATION] = Value::String(i.to_string());
                self.conn.call_json(Method::PUT, &pod, Some(&obj), StatusCode::OK).await
            }
            _ => self.conn.call_json(Method::DELETE, &pod, None, StatusCode::OK).await,
        }
    }
}
