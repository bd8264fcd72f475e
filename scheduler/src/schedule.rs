//! One placement decision: prefilter, filter every node, score the feasible ones, pick.
//!
//! Deterministic: the same pod and the same snapshot contents give the same node, whatever
//! order the snapshot was built in. Nodes are visited in name order; among the nodes with
//! the highest total score the winner is the one with the smallest tie-break value — the
//! FNV-1a hashes of the pod key and of the node name, mixed by SplitMix64's finaliser — then
//! the smallest name. Hashing rather than taking the first name keeps equally good nodes
//! equally likely across pods (upstream picks at random), while a given pod always gets the
//! same answer.
//!
//! Every node is evaluated (upstream samples a percentage of large clusters; a full pass
//! here stays well within the throughput goal and gives the best node, not a good one).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;

use crate::error::{FitError, Reason};
use crate::filter::PodQuery;
use crate::score::total_scores;
use crate::snapshot::Snapshot;

/// Chooses a node for `pod`, or says why none fits. Pure: reads `snap`, changes nothing;
/// the caller binds and then calls [`Snapshot::assume`]. The pod should not be placed in
/// `snap` already (the loop schedules only pods without `spec.nodeName`); if it is, its own
/// requests count against its node.
pub fn schedule(pod: &Pod, snap: &Snapshot) -> Result<String, FitError> {
    let num_all_nodes = snap.node_count();
    if num_all_nodes == 0 {
        return Err(FitError::NoNodes);
    }
    let query = PodQuery::new(pod, snap).map_err(|message| FitError::PreFilter { num_all_nodes, message })?;

    let mut feasible = Vec::with_capacity(num_all_nodes);
    let mut histogram: HashMap<Reason<'_>, usize> = HashMap::new();
    let mut reasons = Vec::new();
    for (slot, node) in snap.nodes() {
        reasons.clear();
        if query.filter(slot, node, &mut reasons) {
            feasible.push((slot, node));
        } else {
            reasons.iter().for_each(|r| *histogram.entry(*r).or_insert(0) += 1);
        }
    }
    if feasible.is_empty() {
        let reasons: BTreeMap<String, usize> = histogram.into_iter().map(|(r, n)| (r.to_string(), n)).collect();
        return Err(FitError::Unschedulable { num_all_nodes, reasons });
    }
    if let [(_, only)] = feasible.as_slice() {
        return Ok(only.name.clone());
    }

    let scores = total_scores(&query, snap, &feasible);
    let seed = fnv1a(query.key.bytes());
    let mut best: Option<(i64, u64, &str)> = None;
    for ((_, node), &score) in feasible.iter().zip(&scores) {
        let candidate = (score, tie_break(seed, node.name_hash), node.name.as_str());
        let better = match best {
            None => true,
            // Highest score, then lowest tie-break value, then lowest name.
            Some((s, t, n)) => score > s || (score == s && (candidate.1, candidate.2) < (t, n)),
        };
        if better {
            best = Some(candidate);
        }
    }
    Ok(best.expect("feasible is not empty").2.to_string())
}

/// FNV-1a over `bytes`.
pub(crate) fn fnv1a(bytes: impl Iterator<Item = u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.fold(OFFSET, |hash, b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Mixes the pod's hash with the node's (SplitMix64's finaliser), so each pod ranks equally
/// good nodes in its own order; the node's half is computed once, when the node is added.
fn tie_break(pod_hash: u64, node_hash: u64) -> u64 {
    let mut z = pod_hash ^ node_hash.rotate_left(32);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
