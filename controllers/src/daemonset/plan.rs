//! One reconcile's decisions for a DaemonSet, as pure functions of its nodes and pods
//! (upstream's `manage` and `rollingUpdate`), so every rule is unit-tested.
//!
//! [`manage`], per node:
//! - should run and has no daemon pod (terminating ones count as present): create one;
//! - may continue running: Failed pods are handed back for deletion (with backoff), Succeeded
//!   ones deleted; of several running pods the oldest is kept (with surge: the oldest
//!   updated and the oldest old one);
//! - may not continue: every daemon pod there is deleted;
//! - pods for nodes that no longer exist are deleted (bound ones with no grace period: no
//!   kubelet is left to confirm, as upstream's pod GC does).
//!
//! [`rolling`] (RollingUpdate, only when `manage` changed nothing): without surge, old pods
//! are deleted only while the nodes without an available daemon pod stay within
//! `maxUnavailable` (an old pod that is unavailable anyway may always go); with `maxSurge`,
//! a new pod is created next to an old one (at most `maxSurge` at once, or at once where
//! the old one is unavailable), and the old one goes once the new one is available.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

use super::eligibility::Fit;
use crate::history::REVISION_HASH_LABEL;
use crate::pod::{is_terminating, phase, running_availability, Availability};

/// One node's view: whether the daemon pod fits it and the daemon pods meant for it.
#[derive(Debug, Clone)]
pub struct NodePods {
    /// None: the node does not exist (any more).
    pub fit: Option<Fit>,
    pub pods: Vec<Arc<Pod>>,
}

/// Writes one reconcile decides on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Writes {
    /// Nodes that get a new daemon pod.
    pub create_on: Vec<String>,
    /// Pods to delete; the flag says "no grace period" (its node is gone).
    pub delete: Vec<(Arc<Pod>, bool)>,
    /// Failed pods to delete once their node's backoff allows, with the node's name.
    pub failed: Vec<(Arc<Pod>, String)>,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty() && self.failed.is_empty()
    }
}

/// Whether `pod` is at the revision whose hash is `hash`.
pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata.labels.as_ref().and_then(|l| l.get(REVISION_HASH_LABEL)).is_some_and(|h| h == hash)
}

/// Oldest first, then the name (upstream's `podByCreationTimestampAndPhase`, whose phase
/// rule only matters for equal timestamps).
pub(super) fn by_age(pods: &mut [Arc<Pod>]) {
    pods.sort_by(|a, b| {
        let key = |p: &Pod| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.metadata.name.clone());
        key(a).cmp(&key(b))
    });
}

/// The creates and deletes that give every node exactly its daemon pod.
pub fn manage(nodes: &BTreeMap<String, NodePods>, hash: &str, surge: bool) -> Writes {
    let mut w = Writes::default();
    for (name, node) in nodes {
        let Some(fit) = node.fit else {
            let unbound = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty);
            let live = node.pods.iter().filter(|p| !is_terminating(p) || !unbound(p));
            w.delete.extend(live.map(|p| (p.clone(), !unbound(p))));
            continue;
        };
        if fit.should_run && node.pods.is_empty() {
            w.create_on.push(name.clone());
        } else if fit.may_continue {
            let mut running = Vec::new();
            for pod in node.pods.iter().filter(|p| !is_terminating(p)) {
                match phase(pod) {
                    Some("Failed") => w.failed.push((pod.clone(), name.clone())),
                    Some("Succeeded") => w.delete.push((pod.clone(), false)),
                    _ => running.push(pod.clone()),
                }
            }
            by_age(&mut running);
            let (mut kept_new, mut kept_old) = (false, false);
            for (i, pod) in running.into_iter().enumerate() {
                let keep = if surge {
                    let slot = if is_updated(&pod, hash) { &mut kept_new } else { &mut kept_old };
                    !std::mem::replace(slot, true)
                } else {
                    i == 0
                };
                if !keep {
                    w.delete.push((pod, false));
                }
            }
        } else {
            w.delete.extend(node.pods.iter().filter(|p| !is_terminating(p)).map(|p| (p.clone(), false)));
        }
    }
    w
}

/// A node's live updated pod and live old pod, either possibly absent.
type NewAndOld = (Option<Arc<Pod>>, Option<Arc<Pod>>);

/// The one updated and the one old live pod of a node; None when it has more than one of
/// either (`manage` cleans that up first).
fn split(pods: &[Arc<Pod>], hash: &str) -> Option<NewAndOld> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().filter(|p| !is_terminating(p)) {
        let slot = if is_updated(pod, hash) { &mut new } else { &mut old };
        if slot.replace(pod.clone()).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// Bounds and clock of one rolling step.
#[derive(Debug, Clone, Copy)]
pub struct Rolling {
    pub max_unavailable: usize,
    pub max_surge: usize,
    pub min_ready: Duration,
    pub now: Timestamp,
}

/// One rolling-update step over the nodes that exist.
pub fn rolling(nodes: &BTreeMap<String, NodePods>, hash: &str, r: Rolling) -> Writes {
    let available = |p: &Pod| running_availability(p, r.min_ready, r.now) == Availability::Available;
    let mut w = Writes::default();
    let existing = nodes.iter().filter(|(_, n)| n.fit.is_some() && !n.pods.is_empty());
    if r.max_surge == 0 {
        let (mut unavailable, mut candidates) = (0usize, Vec::new());
        for (_, node) in existing {
            match split(&node.pods, hash) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => unavailable += usize::from(!available(&new)),
                Some((None, Some(old))) if !available(&old) => w.delete.push((old, false)),
                Some((None, Some(old))) => candidates.push(old),
            }
        }
        let room = r.max_unavailable.saturating_sub(unavailable);
        w.delete.extend(candidates.into_iter().take(room).map(|p| (p, false)));
        return w;
    }
    let (mut surging, mut candidates) = (0usize, Vec::new());
    for (name, node) in existing {
        let should_run = node.fit.is_some_and(|f| f.should_run);
        match split(&node.pods, hash) {
            None => surging += 1,
            Some((_, None)) => {}
            Some((None, Some(old))) if !should_run && !available(&old) => w.delete.push((old, false)),
            Some((None, Some(_))) if !should_run => {}
            Some((None, Some(old))) if !available(&old) => w.create_on.push(name.clone()),
            Some((None, Some(_))) => candidates.push(name.clone()),
            Some((Some(new), Some(_))) if !available(&new) => surging += 1,
            Some((Some(_), Some(old))) => w.delete.push((old, false)),
        }
    }
    let room = r.max_surge.saturating_sub(surging);
    w.create_on.extend(candidates.into_iter().take(room));
    w
}

/// The revision hashes the pods still use (their revisions are kept).
pub fn live_hashes(nodes: &BTreeMap<String, NodePods>) -> BTreeSet<String> {
    let labels = nodes.values().flat_map(|n| n.pods.iter()).filter_map(|p| p.metadata.labels.as_ref());
    labels.filter_map(|l| l.get(REVISION_HASH_LABEL).cloned()).collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
