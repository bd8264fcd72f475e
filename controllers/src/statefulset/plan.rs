//! One reconcile's decisions for a StatefulSet, as a pure function of the set and its pods
//! by ordinal (upstream's `updateStatefulSet`), so every ordering rule is unit-tested.
//!
//! The steps, in order; under `OrderedReady` the first step taken, or the first pod that
//! is not yet Running, Ready and available (`minReadySeconds`), ends the plan:
//! 1. ordinals `[start, start + replicas)` ascending: a missing pod is created (from the
//!    current revision below the partition, else from the update revision); a Failed or
//!    Succeeded pod is deleted, to be recreated under the same name once it is gone;
//! 2. pods outside that range ("condemned"), highest ordinal first: deleted, under
//!    `OrderedReady` one at a time, only once every pod in range is ready, and an unready
//!    condemned pod only if it is the lowest unhealthy one (upstream's rule);
//! 3. `RollingUpdate`: from the highest ordinal down to `start + partition`, the first pod
//!    not at the update revision is deleted (step 1 recreates it at the update revision);
//!    an unhealthy pod on the way stops the plan: at most one pod is down for the update.
//!
//! `Parallel` skips the waits of steps 1 and 2 (all creates and deletes at once); step 3
//! is the same for both policies. A set being deleted gets no steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::pods::{replicas, revision_of, start};
use crate::pod::{self, is_finished, is_running_and_ready, is_terminating, running_availability, Availability};

/// Which revision a new pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum From {
    Current,
    Update,
}

/// Why a pod is deleted (it picks the log line and the event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Failed or Succeeded: replaced under the same name.
    Finished,
    /// Its ordinal is outside the range.
    ScaledDown,
    /// Not at the update revision (a rolling update).
    Update,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create pod `ordinal` (its claims first).
    Create {
        ordinal: i32,
        from: From,
    },
    Delete {
        pod: Arc<Pod>,
        why: Why,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// A ready pod the plan waits on becomes available after this long: check again then.
    pub recheck: Option<Duration>,
}

/// Whether pods are managed in parallel (`podManagementPolicy: Parallel`).
pub fn parallel(set: &StatefulSet) -> bool {
    set.spec.as_ref().and_then(|s| s.pod_management_policy.as_deref()) == Some("Parallel")
}

/// Whether the update strategy is RollingUpdate (the default).
pub fn rolling(set: &StatefulSet) -> bool {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    strategy.and_then(|s| s.type_.as_deref()).is_none_or(|t| t == "RollingUpdate")
}

/// `rollingUpdate.partition` (0 when unset).
pub fn partition(set: &StatefulSet) -> i32 {
    let strategy = set.spec.as_ref().and_then(|s| s.update_strategy.as_ref());
    strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.partition).unwrap_or(0).max(0)
}

pub fn min_ready(set: &StatefulSet) -> Duration {
    pod::min_ready(set.spec.as_ref().and_then(|s| s.min_ready_seconds))
}

/// The revision pod `ordinal` is made from: below the partition of a rolling update the
/// current one, else the update one (OnDelete recreates deleted pods at the update).
pub fn from(set: &StatefulSet, ordinal: i32) -> From {
    if rolling(set) && ordinal < start(set).saturating_add(partition(set)) {
        From::Current
    } else {
        From::Update
    }
}

fn healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// The steps for `set`, whose pods are `pods` (by ordinal, in range or not), given the
/// update revision's name and the time.
pub fn plan(set: &StatefulSet, pods: &BTreeMap<i32, Arc<Pod>>, update_revision: &str, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    if set.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let ordered = !parallel(set);
    let (first, end) = (start(set), start(set).saturating_add(replicas(set)));
    // 1. Every ordinal in range has a live pod.
    for ordinal in first..end {
        match pods.get(&ordinal) {
            None => {
                plan.steps.push(Step::Create { ordinal, from: from(set, ordinal) });
                if ordered {
                    return plan;
                }
            }
            Some(pod) if is_finished(pod) && !is_terminating(pod) => {
                plan.steps.push(Step::Delete { pod: pod.clone(), why: Why::Finished });
                if ordered {
                    return plan;
                }
            }
            Some(_) if !ordered => {}
            Some(pod) if is_terminating(pod) => return plan,
            Some(pod) => match running_availability(pod, min_ready(set), now) {
                Availability::Available => {}
                Availability::In(wait) => {
                    plan.recheck = Some(wait);
                    return plan;
                }
                Availability::Unavailable => return plan,
            },
        }
    }
    // 2. Condemned pods go, highest ordinal first.
    let condemned: Vec<&Arc<Pod>> = pods.range(..first).chain(pods.range(end..)).map(|(_, p)| p).collect();
    let first_unhealthy = condemned.iter().find(|p| !healthy(p)).map(|p| p.metadata.name.clone());
    for pod in condemned.iter().rev() {
        if is_terminating(pod) {
            if ordered {
                return plan;
            }
            continue;
        }
        if ordered && !is_running_and_ready(pod) && first_unhealthy != Some(pod.metadata.name.clone()) {
            return plan;
        }
        plan.steps.push(Step::Delete { pod: (*pod).clone(), why: Why::ScaledDown });
        if ordered {
            return plan;
        }
    }
    if !rolling(set) {
        return plan;
    }
    // 3. One pod at a time to the update revision, highest ordinal first.
    let update_min = first.saturating_add(partition(set));
    for ordinal in (update_min..end).rev() {
        let Some(pod) = pods.get(&ordinal) else { return plan };
        if revision_of(pod) != Some(update_revision) && !is_terminating(pod) {
            plan.steps.push(Step::Delete { pod: pod.clone(), why: Why::Update });
            return plan;
        }
        if !healthy(pod) {
            return plan;
        }
    }
    plan
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
