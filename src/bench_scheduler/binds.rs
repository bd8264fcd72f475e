//! Watches the run's namespace and records when each pod is first seen bound.
//!
//! Data flow: the caller lists the (empty) namespace for a resourceVersion and opens the
//! watch from it *before* the first create ([`BindWatch::open`]); [`BindWatch::run`] then reads
//! events, and the first event that shows pod `p-<i>` with a `spec.nodeName` sets bind time i
//! (the instant the event was read). It returns when every pod is
//! bound or `cancel` fires. If the server ends the stream (a lagging watcher is cut off, or
//! the watch times out), the namespace is listed again — pods bound in it count as bound
//! now — and the watch resumes from that list, at most [`MAX_REOPENS`] times.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::objects::{pod_index, pods};
use super::watch::{list, WatchStream};

/// How often a run may lose its watch and recover by listing before it gives up.
const MAX_REOPENS: usize = 5;

/// When each pod was first seen bound.
pub struct BindTimes {
    /// Per pod index: when the first event showing it bound was read.
    pub bound: Vec<Option<Instant>>,
    /// Watch events read.
    pub events: u64,
    /// Times the watch had to be re-established.
    pub reopens: usize,
}

pub struct BindWatch {
    url: String,
    ns: String,
    stream: WatchStream,
    out: BindTimes,
    remaining: usize,
}

impl BindWatch {
    /// Lists `ns` on `url` and opens the watch; `pods` pods will be created.
    pub async fn open(url: &str, ns: &str, pods: usize) -> anyhow::Result<Self> {
        let (rv, items) = list(url, &super::objects::pods(ns), "").await?;
        anyhow::ensure!(items.is_empty(), "namespace {ns} is not empty");
        let stream = WatchStream::open(url, &super::objects::pods(ns), "", &rv).await?;
        let out = BindTimes { bound: vec![None; pods], events: 0, reopens: 0 };
        Ok(BindWatch { url: url.to_string(), ns: ns.to_string(), stream, out, remaining: pods })
    }

    /// Reads until every pod is bound or `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<BindTimes> {
        while self.remaining > 0 {
            let more = tokio::select! {
                _ = cancel.cancelled() => break,
                more = self.stream.next_lines(|line| {
                    self.out.events += 1;
                    if let Some(i) = bound_pod(line) {
                        record(&mut self.out.bound, &mut self.remaining, i, Instant::now());
                    }
                }) => more,
            };
            let lost = match more {
                Ok(true) => continue,
                Ok(false) => anyhow::anyhow!("the server ended the watch stream"),
                Err(e) => e,
            };
            self.reopen(lost).await?;
        }
        Ok(self.out)
    }

    /// Lists the namespace (recording pods bound in it) and watches again from there.
    async fn reopen(&mut self, cause: anyhow::Error) -> anyhow::Result<()> {
        self.out.reopens += 1;
        anyhow::ensure!(self.out.reopens <= MAX_REOPENS, "the pod watch failed {MAX_REOPENS} times; last: {cause:#}");
        tracing::warn!(error = %cause, reopens = self.out.reopens, "pod watch lost; listing and watching again");
        let (rv, items) = list(&self.url, &pods(&self.ns), "").await?;
        let now = Instant::now();
        for item in &items {
            let name = item.pointer("/metadata/name").and_then(|n| n.as_str()).unwrap_or_default();
            let node = item.pointer("/spec/nodeName").and_then(|n| n.as_str()).unwrap_or_default();
            if let (Some(i), false) = (pod_index(name), node.is_empty()) {
                record(&mut self.out.bound, &mut self.remaining, i, now);
            }
        }
        self.stream = WatchStream::open(&self.url, &pods(&self.ns), "", &rv).await?;
        Ok(())
    }
}

fn record(bound: &mut [Option<Instant>], remaining: &mut usize, i: usize, at: Instant) {
    if let Some(slot @ None) = bound.get_mut(i) {
        *slot = Some(at);
        *remaining -= 1;
    }
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    object: EventPod<'a>,
}

#[derive(Deserialize)]
struct EventPod<'a> {
    #[serde(borrow)]
    metadata: PodMeta<'a>,
    #[serde(default, borrow)]
    spec: Option<PodSpec<'a>>,
}

#[derive(Deserialize)]
struct PodMeta<'a> {
    #[serde(default, borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct PodSpec<'a> {
    #[serde(default, rename = "nodeName", borrow)]
    node_name: Option<Cow<'a, str>>,
}

/// The index of the pod an ADDED or MODIFIED event shows bound, if it does.
fn bound_pod(line: &[u8]) -> Option<usize> {
    let ev: Event = serde_json::from_slice(line).ok()?;
    if ev.kind != "ADDED" && ev.kind != "MODIFIED" {
        return None;
    }
    ev.object.spec?.node_name.filter(|n| !n.is_empty())?;
    pod_index(&ev.object.metadata.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bound_pods_count() {
        let line = |kind: &str, node: &str| {
            format!(
                r#"{{"type":"{kind}","object":{{"metadata":{{"name":"p-42"}},"spec":{{"nodeName":"{node}","containers":[]}}}}}}"#
            )
        };
        assert_eq!(bound_pod(line("MODIFIED", "n1").as_bytes()), Some(42));
        assert_eq!(bound_pod(line("ADDED", "n1").as_bytes()), Some(42));
        assert_eq!(bound_pod(line("MODIFIED", "").as_bytes()), None);
        assert_eq!(bound_pod(line("DELETED", "n1").as_bytes()), None);
        assert_eq!(bound_pod(br#"{"type":"ADDED","object":{"metadata":{"name":"p-1"},"spec":{}}}"#), None);
        assert_eq!(bound_pod(br#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}"#), None);
    }

    #[test]
    fn first_sighting_wins() {
        let (mut bound, mut remaining) = (vec![None; 2], 2);
        let first = Instant::now();
        let later = first + std::time::Duration::from_millis(4);
        record(&mut bound, &mut remaining, 1, first);
        record(&mut bound, &mut remaining, 1, later);
        record(&mut bound, &mut remaining, 7, later);
        assert_eq!((bound, remaining), (vec![None, Some(first)], 1));
    }
}
