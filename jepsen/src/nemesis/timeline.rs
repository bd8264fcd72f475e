//! The record of what the nemesis did and when, for the report to shade.
//!
//! Times are milliseconds since the run's origin (the same origin the history uses).
//! Invariant: once [`super::Nemesis::run`] returns, every event has an `end_ms` — every fault
//! injected was healed, or the event says healing failed.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::Kind;

/// One fault, from injection to heal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub kind: Kind,
    /// What was done, e.g. "isolate the leader".
    pub what: String,
    /// Names of the nodes the fault acted on, as resolved at injection (e.g. the leader).
    pub nodes: Vec<String>,
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    /// Why injecting or healing failed, if it did.
    pub error: Option<String>,
}

/// Every event of a run, in injection order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    pub events: Vec<Event>,
}

impl Timeline {
    /// Start an event; returns its index for [`Timeline::end`].
    pub fn begin(&mut self, kind: Kind, what: String, nodes: Vec<String>, at: Duration) -> usize {
        self.events.push(Event { kind, what, nodes, start_ms: millis(at), end_ms: None, error: None });
        self.events.len() - 1
    }

    pub fn end(&mut self, event: usize, at: Duration) {
        self.events[event].end_ms = Some(millis(at));
    }

    pub fn fail(&mut self, event: usize, error: &anyhow::Error) {
        let e = &mut self.events[event];
        e.error = Some(match e.error.take() {
            Some(prev) => format!("{prev}; {error:#}"),
            None => format!("{error:#}"),
        });
    }

    /// Write as JSON lines (one event per line).
    pub fn write_jsonl(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = String::new();
        for e in &self.events {
            out.push_str(&serde_json::to_string(e)?);
            out.push('\n');
        }
        std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
