//! Scores: which feasible node is best. Each score is 0–100; the total is their weighted sum.
//!
//! | score | weight | what it rewards (upstream plugin) |
//! |---|---|---|
//! | taint toleration | 3 | fewer untolerated `PreferNoSchedule` taints (TaintToleration) |
//! | node affinity | 2 | higher sum of matching preferred-term weights (NodeAffinity) |
//! | owner spread | 2 | fewer pods of the same controller on the node (the default spreading of PodTopologySpread, weight 2) |
//! | least allocated | 1 | more cpu/memory left after placing the pod (NodeResourcesFit) |
//! | balanced allocation | 1 | cpu and memory used in equal proportion (NodeResourcesBalancedAllocation) |
//!
//! Taint toleration and node affinity are normalised over the feasible nodes as upstream's
//! `DefaultNormalizeScore` does (the best node gets 100, integer arithmetic). Owner spread
//! is upstream's old SelectorSpread on nodes: `100 * (max - count) / max`, where `max` is
//! the largest count among feasible nodes. Least allocated uses the non-zero requests (a pod
//! without requests still counts as 100m/200Mi), balanced allocation the requests as
//! written, both including the pod being placed — as upstream.

use crate::filter::PodQuery;
use crate::resources::PodRequests;
use crate::snapshot::{NodeInfo, Snapshot};
use crate::taints::untolerated_preferences;

pub const MAX_NODE_SCORE: i64 = 100;
pub const WEIGHT_TAINT_TOLERATION: i64 = 3;
pub const WEIGHT_NODE_AFFINITY: i64 = 2;
pub const WEIGHT_OWNER_SPREAD: i64 = 2;
pub const WEIGHT_LEAST_ALLOCATED: i64 = 1;
pub const WEIGHT_BALANCED_ALLOCATION: i64 = 1;

/// `(free after placement) / allocatable`, averaged over cpu and memory with equal weights;
/// a resource the node does not report is left out.
pub(crate) fn least_allocated(node: &NodeInfo, pod: &PodRequests) -> i64 {
    let resources = [
        (node.non_zero_milli_cpu + pod.non_zero_milli_cpu, node.allocatable.milli_cpu),
        (node.non_zero_memory + pod.non_zero_memory, node.allocatable.memory),
    ];
    let (mut sum, mut weights) = (0, 0);
    for (requested, capacity) in resources.into_iter().filter(|(_, capacity)| *capacity > 0) {
        let free = if requested > capacity { 0 } else { (capacity - requested) * MAX_NODE_SCORE / capacity };
        sum += free;
        weights += 1;
    }
    if weights == 0 {
        0
    } else {
        sum / weights
    }
}

/// `100 * (1 - |cpu fraction - memory fraction| / 2)`, fractions capped at 1.
pub(crate) fn balanced_allocation(node: &NodeInfo, pod: &PodRequests) -> i64 {
    let resources = [
        (node.requested.milli_cpu + pod.actual.milli_cpu, node.allocatable.milli_cpu),
        (node.requested.memory + pod.actual.memory, node.allocatable.memory),
    ];
    let mut fractions = [0.0f64; 2];
    let mut reported = 0;
    for (requested, capacity) in resources.into_iter().filter(|(_, capacity)| *capacity > 0) {
        fractions[reported] = (requested as f64 / capacity as f64).min(1.0);
        reported += 1;
    }
    // With fewer than two resources there is nothing to balance.
    let std_dev = if reported == 2 { ((fractions[0] - fractions[1]) / 2.0).abs() } else { 0.0 };
    ((1.0 - std_dev) * MAX_NODE_SCORE as f64) as i64
}

/// Upstream's `DefaultNormalizeScore`: scale so the highest is 100 (`reverse`: lowest is
/// 100); all zero stays zero (or becomes 100 when reversed).
pub(crate) fn normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores.iter_mut() {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse { MAX_NODE_SCORE - scaled } else { scaled };
    }
}

/// Same-owner pod counts to scores: none anywhere → all 100.
pub(crate) fn spread(counts: &mut [i64]) {
    let max = counts.iter().copied().max().unwrap_or(0);
    for count in counts.iter_mut() {
        *count = if max == 0 { MAX_NODE_SCORE } else { MAX_NODE_SCORE * (max - *count) / max };
    }
}

/// The weighted total of every score for each feasible node, in the order given.
pub(crate) fn total_scores(query: &PodQuery<'_>, snap: &Snapshot, feasible: &[(u32, &NodeInfo)]) -> Vec<i64> {
    let owner_by_slot: Vec<i64> = match query.owner.and_then(|o| snap.owner_spread(o)) {
        Some(per_slot) => {
            let mut by_slot = vec![0i64; snap.slot_count()];
            per_slot.iter().for_each(|(slot, count)| by_slot[*slot as usize] = i64::from(*count));
            by_slot
        }
        None => Vec::new(),
    };
    // Raw values first (normalisation needs their maxima), with the common cases — no
    // taints, no preferences, no owner — costing nothing.
    let mut taints = Vec::with_capacity(feasible.len());
    let mut affinity = Vec::with_capacity(feasible.len());
    let mut owners = Vec::with_capacity(feasible.len());
    let mut totals = Vec::with_capacity(feasible.len());
    for (slot, node) in feasible {
        taints.push(if node.taints.is_empty() { 0 } else { untolerated_preferences(&node.taints, query.tolerations) });
        let preferred = query.preferred.iter().filter(|(_, t)| t.matches(&node.labels, &node.name));
        affinity.push(if query.preferred.is_empty() { 0 } else { preferred.map(|(w, _)| w).sum() });
        owners.push(owner_by_slot.get(*slot as usize).copied().unwrap_or(0));
        totals.push(
            WEIGHT_LEAST_ALLOCATED * least_allocated(node, &query.requests)
                + WEIGHT_BALANCED_ALLOCATION * balanced_allocation(node, &query.requests),
        );
    }
    normalize(&mut taints, true);
    normalize(&mut affinity, false);
    spread(&mut owners);
    for (i, total) in totals.iter_mut().enumerate() {
        *total +=
            WEIGHT_TAINT_TOLERATION * taints[i] + WEIGHT_NODE_AFFINITY * affinity[i] + WEIGHT_OWNER_SPREAD * owners[i];
    }
    totals
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
