//! The first moment something shows up through the API, seen from the replicas that survive
//! a leader kill.
//!
//! A [`Sighting`] is opened *before* the kill: it lists the collection (nothing in it may
//! match yet) and opens a watch from that list's resourceVersion, so no later change can be
//! missed. [`Sighting::wait`] reads events until one matches and returns the instant it was
//! read. The kill may break the stream (or the replica may refuse reads while there is no
//! leader); then it lists again on the next surviving replica — a match in that list counts
//! as seen now — and watches from there, until the deadline.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use serde_json::Value;

use crate::bench_scheduler::watch::{list, WatchStream};

/// Longest one list-and-watch attempt may take while the cluster elects a leader; then the
/// next surviving replica is tried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed attempt, so a replica that refuses at once is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Whether a watched object is the one waited for.
pub type Matcher = Box<dyn Fn(&Value) -> bool + Send + Sync>;

pub struct Sighting {
    /// Replicas to read from, the first one first.
    urls: Vec<String>,
    collection: String,
    query: String,
    matches: Matcher,
    stream: Option<WatchStream>,
    /// Streams re-established after the first.
    pub reopens: usize,
}

impl Sighting {
    /// Lists and watches `collection` (with `query`) on `urls[0]`; fails if something already
    /// matches.
    pub async fn open(urls: Vec<String>, collection: String, query: String, matches: Matcher) -> anyhow::Result<Self> {
        let (rv, items) = list(&urls[0], &collection, &query).await?;
        ensure!(!items.iter().any(&matches), "{collection}?{query}: already matches before the kill");
        let stream = WatchStream::open(&urls[0], &collection, &query, &rv).await?;
        Ok(Sighting { urls, collection, query, matches, stream: Some(stream), reopens: 0 })
    }

    /// The instant a matching object was first read, or an error at `deadline`.
    pub async fn wait(&mut self, deadline: Instant) -> anyhow::Result<Instant> {
        let mut attempt = 0;
        loop {
            if Instant::now() > deadline {
                bail!("{}?{}: nothing matched before the deadline", self.collection, self.query);
            }
            if let Some(stream) = self.stream.as_mut() {
                let mut seen = false;
                let read = tokio::time::timeout_at(
                    deadline.into(),
                    stream.next_lines(|line| seen |= event_matches(line, &self.matches)),
                )
                .await;
                if seen {
                    return Ok(Instant::now());
                }
                if matches!(read, Ok(Ok(true))) {
                    continue;
                }
                self.stream = None;
            }
            let url = self.urls[attempt % self.urls.len()].clone();
            attempt += 1;
            match tokio::time::timeout(ATTEMPT_TIMEOUT, self.relist(&url)).await {
                Ok(Ok(Some(at))) => return Ok(at),
                Ok(Ok(None)) => self.reopens += 1,
                Ok(Err(e)) => tracing::debug!(url, error = %e, "list and watch failed; trying the next replica"),
                Err(_) => tracing::debug!(url, "list and watch timed out; trying the next replica"),
            }
            if self.stream.is_none() {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    /// Lists on `url`: `Some(now)` if something matches, else opens the watch from the list.
    async fn relist(&mut self, url: &str) -> anyhow::Result<Option<Instant>> {
        let (rv, items) = list(url, &self.collection, &self.query).await?;
        if items.iter().any(|o| (self.matches)(o)) {
            return Ok(Some(Instant::now()));
        }
        self.stream = Some(WatchStream::open(url, &self.collection, &self.query, &rv).await?);
        Ok(None)
    }
}

/// An ADDED or MODIFIED event whose object matches.
fn event_matches(line: &[u8], matches: &Matcher) -> bool {
    let Ok(ev) = serde_json::from_slice::<Value>(line) else { return false };
    let kind = ev.get("type").and_then(Value::as_str);
    matches!(kind, Some("ADDED" | "MODIFIED")) && ev.get("object").is_some_and(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_added_or_modified_matching_objects_count() {
        let named_a: Matcher = Box::new(|o| o.pointer("/metadata/name") == Some(&Value::from("a")));
        assert!(event_matches(br#"{"type":"ADDED","object":{"metadata":{"name":"a"}}}"#, &named_a));
        assert!(event_matches(br#"{"type":"MODIFIED","object":{"metadata":{"name":"a"}}}"#, &named_a));
        assert!(!event_matches(br#"{"type":"DELETED","object":{"metadata":{"name":"a"}}}"#, &named_a));
        assert!(!event_matches(br#"{"type":"ADDED","object":{"metadata":{"name":"b"}}}"#, &named_a));
        assert!(!event_matches(b"not json", &named_a));
    }
}
