//! The scaling decisions of a rollout, as pure functions of replica counts (after upstream's
//! `rolling.go` and `recreate.go`).
//!
//! Inputs are each ReplicaSet's desired replicas (`spec.replicas`) and available replicas.
//! An RS's available count is taken as `min(status.availableReplicas, spec.replicas)`:
//! when its spec was just lowered, the pods above the new spec are about to go, so they
//! must not count towards the availability a further scale-down relies on.
//!
//! Invariants, for a RollingUpdate with `replicas`, `maxSurge` and `maxUnavailable`:
//! - the new RS never takes the total desired replicas above `replicas + maxSurge`;
//! - old RSs are scaled down only by pods that are unavailable, or by as many available
//!   pods as exceed `replicas - maxUnavailable`, so availability never drops below it;
//! - when both bounds resolve to 0, `maxUnavailable` becomes 1, or no rollout could move.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// One ReplicaSet's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// `spec.replicas`.
    pub desired: i32,
    /// Available pods, at most `desired`.
    pub available: i32,
}

/// Resolve an int-or-percent bound against `total`: percentages round up for maxSurge
/// and down for maxUnavailable, as upstream. An unparsable value counts as 0.
pub fn scaled(value: Option<&IntOrString>, default_percent: i32, total: i32, round_up: bool) -> i32 {
    let percent = match value {
        Some(IntOrString::Int(n)) => return (*n).max(0),
        Some(IntOrString::String(s)) => match s.strip_suffix('%').and_then(|p| p.trim().parse::<i64>().ok()) {
            Some(p) => p,
            None => return s.trim().parse::<i32>().unwrap_or(0).max(0),
        },
        None => i64::from(default_percent),
    };
    let product = percent.max(0) * i64::from(total.max(0));
    let v = if round_up { (product + 99) / 100 } else { product / 100 };
    v.min(i64::from(i32::MAX)) as i32
}

/// `(maxSurge, maxUnavailable)` for `replicas` (defaults 25% each).
pub fn fenceposts(surge: Option<&IntOrString>, unavailable: Option<&IntOrString>, replicas: i32) -> (i32, i32) {
    let max_surge = scaled(surge, 25, replicas, true);
    let max_unavailable = scaled(unavailable, 25, replicas, false).min(replicas.max(0));
    if max_surge == 0 && max_unavailable == 0 {
        return (0, 1);
    }
    (max_surge, max_unavailable)
}

/// The new RS's desired replicas in a rolling update: up towards `replicas` within the
/// surge allowance, or straight down when it has more than `replicas`.
pub fn new_rs_replicas(replicas: i32, max_surge: i32, new: i32, all_desired: i32) -> i32 {
    if new >= replicas {
        return replicas;
    }
    let max_total = replicas + max_surge;
    if all_desired >= max_total {
        return new;
    }
    new + (max_total - all_desired).min(replicas - new)
}

/// The old RSs' desired replicas after one rolling scale-down step; `olds` oldest first.
pub fn old_rs_replicas(replicas: i32, max_unavailable: i32, new: Counts, olds: &[Counts]) -> Vec<i32> {
    let mut targets: Vec<i32> = olds.iter().map(|o| o.desired).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.desired - new.available;
    let max_scaled_down = old_total + new.desired - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    // Unavailable pods of old RSs go first: removing them costs no availability.
    let mut cleaned = 0;
    for (t, o) in targets.iter_mut().zip(olds) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = o.desired - o.available;
        if unhealthy > 0 {
            let n = unhealthy.min(max_scaled_down - cleaned);
            *t -= n;
            cleaned += n;
        }
    }
    // Then available pods, as many as exceed the minimum availability.
    let available: i32 = new.available + olds.iter().map(|o| o.available).sum::<i32>();
    let mut excess = available - min_available;
    for t in targets.iter_mut() {
        if excess <= 0 {
            break;
        }
        let n = (*t).min(excess);
        *t -= n;
        excess -= n;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn percentages_round_like_upstream() {
        assert_eq!(fenceposts(None, None, 10), (3, 2));
        assert_eq!(fenceposts(Some(&s("50%")), Some(&IntOrString::Int(0)), 3), (2, 0));
        assert_eq!(fenceposts(Some(&IntOrString::Int(0)), Some(&s("10%")), 3), (0, 1), "both zero: one unavailable");
        assert_eq!(fenceposts(Some(&s("2")), Some(&s("1")), 3), (2, 1));
    }

    /// Simulate a whole rollout where every desired pod becomes available at once, and
    /// check the bounds at each step.
    #[test]
    fn a_simulated_rollout_stays_within_its_bounds_and_finishes() {
        for (replicas, surge, unavailable) in [(4, 1, 1), (10, 3, 2), (3, 0, 1), (5, 2, 0), (1, 1, 0)] {
            let mut new = Counts::default();
            let mut old = Counts { desired: replicas, available: replicas };
            for step in 0..100 {
                if new.desired == replicas && old.desired == 0 {
                    break;
                }
                assert!(step < 99, "rollout {replicas}/{surge}/{unavailable} stuck");
                new.desired = new_rs_replicas(replicas, surge, new.desired, new.desired + old.desired);
                assert!(new.desired + old.desired <= replicas + surge);
                old.desired = old_rs_replicas(replicas, unavailable, new, &[old])[0];
                old.available = old.available.min(old.desired);
                assert!(new.available + old.available >= replicas - unavailable, "step {step}");
                new.available = new.desired;
            }
        }
    }

    #[test]
    fn unavailable_old_pods_are_removed_first() {
        let olds = [Counts { desired: 3, available: 1 }, Counts { desired: 2, available: 2 }];
        // replicas 5, maxUnavailable 2, 3 available: only the two unavailable pods may go.
        assert_eq!(old_rs_replicas(5, 2, Counts::default(), &olds), vec![1, 2]);
        // maxUnavailable 0 with pods already unavailable: nothing may go.
        assert_eq!(old_rs_replicas(5, 0, Counts::default(), &olds), vec![3, 2]);
    }
}
