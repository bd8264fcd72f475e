//! Indexed completion mode: each index in `0..completions` must succeed once; pods carry
//! their index ([`super::pods::COMPLETION_INDEX_KEY`]).
//!
//! Invariants:
//! - Succeeded indexes are a set: `status.completedIndexes` (`"0-2,5"`) holds the indexes
//!   already counted, and a succeeded pod adds its index only if it is not there yet, so
//!   no pod is counted twice however often its outcome is seen. `status.succeeded` is the
//!   size of that set.
//! - At most one active pod per index: duplicates and pods without a valid index are
//!   deleted (the one kept is the last in deletion order); new pods take the lowest indexes
//!   that are neither succeeded nor active.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::pods;
use crate::pod;

/// Parse `completedIndexes` (`"1,3-5"`), keeping indexes below `completions`. Malformed
/// parts are skipped: the string is the controller's own, so they never occur in practice.
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        let (Ok(from), Ok(to)) = (from, to) else { continue };
        out.extend(from.max(0)..=to.min(completions - 1));
    }
    out
}

/// Format indexes as ordered intervals: `{0,1,2,5}` → `"0-2,5"`.
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
    }
    parts.join(",")
}

/// Indexes of succeeded pods that still hold the tracking finalizer (not yet counted).
pub fn newly_succeeded(pods: &[Arc<Pod>], completions: i32) -> BTreeSet<i32> {
    pods.iter()
        .filter(|p| pods::is_succeeded(p) && pods::has_tracking_finalizer(p))
        .filter_map(|p| pods::completion_index(p))
        .filter(|ix| *ix < completions)
        .collect()
}

/// Active pods to delete whatever the counts: those without a valid index, and all but one
/// of the pods sharing an index. Returns (to delete, the rest).
pub fn duplicates(active: &[Arc<Pod>], completions: i32) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
    let mut by_index: BTreeMap<i32, Vec<Arc<Pod>>> = BTreeMap::new();
    let mut remove = Vec::new();
    for pod in active {
        match pods::completion_index(pod).filter(|ix| *ix < completions) {
            Some(ix) => by_index.entry(ix).or_default().push(pod.clone()),
            None => remove.push(pod.clone()),
        }
    }
    let mut keep = Vec::new();
    for (_, mut group) in by_index {
        pod::deletion_order(&mut group);
        let last = group.pop().expect("groups are never empty");
        remove.extend(group);
        keep.push(last);
    }
    (remove, keep)
}

/// The `n` lowest indexes below `completions` that are neither succeeded nor held by an
/// active pod.
pub fn pending(active: &[Arc<Pod>], succeeded: &BTreeSet<i32>, completions: i32, n: usize) -> Vec<i32> {
    let running: BTreeSet<i32> = active.iter().filter_map(|p| pods::completion_index(p)).collect();
    (0..completions).filter(|ix| !succeeded.contains(ix) && !running.contains(ix)).take(n).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod(name: &str, index: Option<&str>) -> Arc<Pod> {
        let annotations = index.map(|ix| [(pods::COMPLETION_INDEX_KEY.to_string(), ix.to_string())].into());
        Arc::new(Pod {
            metadata: ObjectMeta { name: Some(name.into()), annotations, ..Default::default() },
            ..Default::default()
        })
    }

    fn set(v: &[i32]) -> BTreeSet<i32> {
        v.iter().copied().collect()
    }

    #[test]
    fn intervals_round_trip_and_clip_to_completions() {
        assert_eq!(format(&set(&[0, 1, 2, 5, 7, 8])), "0-2,5,7-8");
        assert_eq!(format(&set(&[])), "");
        assert_eq!(parse("0-2,5,7-8", 10), set(&[0, 1, 2, 5, 7, 8]));
        assert_eq!(parse("3-9", 5), set(&[3, 4]), "indexes beyond completions are dropped");
        assert_eq!(parse("x,2,,4-3", 10), set(&[2]), "malformed and empty parts are skipped");
    }

    #[test]
    fn one_active_pod_per_valid_index_and_pending_takes_the_lowest_free() {
        let active =
            vec![pod("a", Some("0")), pod("b", Some("0")), pod("c", Some("9")), pod("d", None), pod("e", Some("2"))];
        let (remove, keep) = duplicates(&active, 5);
        let names = |v: &[Arc<Pod>]| v.iter().map(|p| pods::name(p).to_string()).collect::<BTreeSet<_>>();
        assert_eq!(remove.len(), 3, "one of the two index-0 pods, the out-of-range and the unindexed");
        assert!(names(&remove).contains("c") && names(&remove).contains("d"));
        assert_eq!(keep.len(), 2);
        assert_eq!(pending(&keep, &set(&[1]), 5, 10), vec![3, 4]);
        assert_eq!(pending(&keep, &set(&[]), 5, 1), vec![1]);
    }
}
