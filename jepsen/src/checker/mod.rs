//! Checkers: pure functions from a [`History`] to a [`Verdict`].
//!
//! Every checker answers with the same [`Verdict`]: `Valid`, `Invalid` (with the evidence in
//! `details`), or `Unknown` when it could not decide (search budget exceeded, nothing to
//! check against). [`check_all`] runs a chosen set and is valid overall only when every
//! verdict is `Valid`; one `Invalid` makes the whole run invalid, otherwise one `Unknown`
//! makes it unknown. No checker does I/O, so a saved history can be checked again offline.

pub mod control_plane;
pub mod lease;
pub mod linearizable;
pub mod set;
pub mod watch;

use serde::{Deserialize, Serialize};

use crate::history::History;

/// A checker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Invalid,
    Unknown,
}

impl Validity {
    /// Combines answers: any `Invalid` wins, then any `Unknown`; `Valid` only if all are
    /// (and for none at all).
    pub fn all(items: impl IntoIterator<Item = Validity>) -> Validity {
        items.into_iter().fold(Validity::Valid, |acc, v| match (acc, v) {
            (Validity::Invalid, _) | (_, Validity::Invalid) => Validity::Invalid,
            (Validity::Unknown, _) | (_, Validity::Unknown) => Validity::Unknown,
            _ => Validity::Valid,
        })
    }
}

/// One checker's verdict on a history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Which checker ("linearizable", "set", "watch", "lease").
    pub checker: String,
    pub valid: Validity,
    /// Checker-specific evidence: counts, anomalies, the failing window.
    pub details: serde_json::Value,
}

impl Verdict {
    pub fn new(checker: &str, valid: Validity, details: impl Serialize) -> Self {
        // The details types of this crate are plain data: serializing them cannot fail.
        let details = serde_json::to_value(details).expect("checker details serialize to JSON");
        Self { checker: checker.to_string(), valid, details }
    }
}

/// A checker to run over a history, with its settings.
#[derive(Debug, Clone)]
pub enum Checker {
    Linearizable(linearizable::Config),
    Set,
    Watch,
    Lease(lease::Config),
    ControlPlane(control_plane::Config),
}

/// The verdicts of [`check_all`] and their combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub valid: Validity,
    pub verdicts: Vec<Verdict>,
}

/// Runs every checker in `checkers` over `history`, in order.
pub fn check_all(history: &History, checkers: &[Checker]) -> Summary {
    let verdicts: Vec<Verdict> = checkers
        .iter()
        .map(|checker| match checker {
            Checker::Linearizable(config) => linearizable::check(history, config),
            Checker::Set => set::check(history),
            Checker::Watch => watch::check(history),
            Checker::Lease(config) => lease::check(history, config),
            Checker::ControlPlane(config) => control_plane::check(history, config),
        })
        .collect();
    Summary { valid: Validity::all(verdicts.iter().map(|v| v.valid)), verdicts }
}
