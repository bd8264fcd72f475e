//! The disruption controller: keeps each PodDisruptionBudget's status current, so that the
//! eviction subresource (`kubectl drain`) can tell whether one more pod may go.
//!
//! Reconcile of one PDB, after upstream's `pkg/controller/disruption`:
//! 1. the pods it selects (policy/v1: an empty selector selects every pod of the namespace,
//!    a missing one none);
//! 2. `expectedPods` and `desiredHealthy`: with an integer `minAvailable`, the pods found
//!    and `minAvailable`; with a percentage `minAvailable` or any `maxUnavailable`, the
//!    summed scale of the pods' controllers (a Deployment through its ReplicaSet, a bare
//!    ReplicaSet, a StatefulSet), each counted once — a selected pod without a supported
//!    controller makes the budget unusable (`SyncFailed`, no disruption allowed);
//! 3. `currentHealthy`: selected pods that are Ready, not terminating and not in
//!    `disruptedPods` (evicted but not yet seen deleted);
//! 4. `disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`, the
//!    `DisruptionAllowed` condition, and `observedGeneration` (the eviction subresource
//!    refuses budgets whose status is older than their spec).
//!
//! Invariants: `disruptedPods` only shrinks here — an entry leaves when its pod is gone or
//! terminating, or [`DELETION_TIMEOUT`] after the eviction (the pod was evicted but never
//! deleted); the status is written only when it changed, as a CAS through the fenced
//! client, so a write based on a stale cache (or by a deposed leader) fails and retries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::selector::LabelSelector;
use flotilla_apiserver::ApiError;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::Resource;

use crate::deployment::rollout::scaled;
use crate::leadership::{Component, LeaderContext};
use crate::pod;
use crate::runtime::{owner, Action, Change, Controller, ControllerConfig, Key, Reconciler, Store};

/// How long an evicted pod may stay undeleted before it counts again (upstream's
/// `DeletionTimeout`): an eviction whose delete never happened must not block the budget
/// for ever.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// The condition type the eviction subresource and `kubectl describe pdb` show.
pub const CONDITION: &str = "DisruptionAllowed";

/// The leader-only component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| run(ctx).boxed())
}

async fn run(ctx: LeaderContext) {
    let caches = Caches {
        pdbs: ctx.informers.store(),
        pods: ctx.informers.store(),
        replicasets: ctx.informers.store(),
        deployments: ctx.informers.store(),
        statefulsets: ctx.informers.store(),
    };
    let (by_pod, by_rs, by_deployment, by_sts) =
        (caches.pdbs.clone(), caches.pdbs.clone(), caches.pdbs.clone(), caches.pdbs.clone());
    let reconciler = Reconcile { client: ctx.client.clone(), caches: caches.clone() };
    let controller = Controller::new("disruption", reconciler, &caches.pdbs, ControllerConfig::default())
        .watches(&caches.pods, move |change| selecting(&by_pod, change))
        .watches(&caches.replicasets, move |c: &Change<ReplicaSet>| keys_in(&by_rs, c.key.namespace()))
        .watches(&caches.deployments, move |c: &Change<Deployment>| keys_in(&by_deployment, c.key.namespace()))
        .watches(&caches.statefulsets, move |c: &Change<StatefulSet>| keys_in(&by_sts, c.key.namespace()));
    controller.run(ctx.cancel.clone()).await;
}

#[derive(Clone)]
struct Caches {
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
}

/// Every budget of `ns` (a workload's scale feeds the budgets of its namespace).
fn keys_in(pdbs: &Store<PodDisruptionBudget>, ns: Option<&str>) -> Vec<Key> {
    ns.map(|ns| pdbs.list_in(ns).iter().map(|p| Key::of(p.as_ref())).collect()).unwrap_or_default()
}

/// The budgets that select the pod before or after the change.
fn selecting(pdbs: &Store<PodDisruptionBudget>, change: &Change<Pod>) -> Vec<Key> {
    let Some(ns) = change.key.namespace() else { return Vec::new() };
    let mut keys = BTreeSet::new();
    for pdb in pdbs.list_in(ns) {
        let Some(sel) = selector(&pdb) else { continue };
        if change.objects().any(|p| sel.matches(&p.metadata.labels.clone().unwrap_or_default())) {
            keys.insert(Key::of(pdb.as_ref()));
        }
    }
    keys.into_iter().collect()
}

/// The budget's pod selector; None (selects nothing) when absent or invalid.
fn selector(pdb: &PodDisruptionBudget) -> Option<LabelSelector> {
    let sel = serde_json::to_value(pdb.spec.as_ref()?.selector.as_ref()?).ok()?;
    LabelSelector::from_label_selector(&sel).ok()
}

struct Reconcile {
    client: Client,
    caches: Caches,
}

impl Reconciler for Reconcile {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(pdb) = self.caches.pdbs.get_key(key) else { return Ok(Action::Done) };
        let ns = key.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = match selector(&pdb) {
            Some(sel) => self
                .caches
                .pods
                .list_in(ns)
                .into_iter()
                .filter(|p| sel.matches(&p.metadata.labels.clone().unwrap_or_default()))
                .collect(),
            None => Vec::new(),
        };
        let now = Timestamp::now();
        let scale = |pod: &Pod| self.controller_scale(ns, pod);
        let (status, recheck) = budget_status(&pdb, &pods, scale, now);
        if pdb.status.as_ref() != Some(&status) {
            let mut updated = (*pdb).clone();
            updated.status = Some(status);
            self.client.api::<PodDisruptionBudget>(Some(ns)).update_status(&key.name, &updated).await?;
        }
        Ok(recheck.map_or(Action::Done, Action::RequeueAfter))
    }
}

impl Reconcile {
    /// The pod's scaling controller as (uid, replicas), following a ReplicaSet up to its
    /// Deployment; None when it has none that this controller knows.
    fn controller_scale(&self, ns: &str, pod: &Pod) -> Option<(String, i32)> {
        let r = owner::controller_ref(&pod.metadata)?;
        let replicas = |spec: Option<i32>| spec.unwrap_or(1);
        match r.kind.as_str() {
            k if k == ReplicaSet::KIND => {
                let rs = self
                    .caches
                    .replicasets
                    .get(Some(ns), &r.name)
                    .filter(|rs| rs.metadata.uid.as_ref() == Some(&r.uid))?;
                if let Some(d) = owner::controller_key::<Deployment>(&rs.metadata) {
                    let d = self.caches.deployments.get_key(&d)?;
                    return Some((d.metadata.uid.clone()?, replicas(d.spec.as_ref()?.replicas)));
                }
                Some((r.uid.clone(), replicas(rs.spec.as_ref()?.replicas)))
            }
            k if k == StatefulSet::KIND => {
                let sts = self
                    .caches
                    .statefulsets
                    .get(Some(ns), &r.name)
                    .filter(|s| s.metadata.uid.as_ref() == Some(&r.uid))?;
                Some((r.uid.clone(), replicas(sts.spec.as_ref()?.replicas)))
            }
            _ => None,
        }
    }
}

/// The status `pdb` should have over the pods it selects, and when to look again (the
/// earliest expiry of a `disruptedPods` entry). `scale` names a pod's controller and its
/// desired replicas.
pub fn budget_status(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale: impl Fn(&Pod) -> Option<(String, i32)>,
    now: Timestamp,
) -> (PodDisruptionBudgetStatus, Option<Duration>) {
    let old = pdb.status.clone().unwrap_or_default();
    let (disrupted, recheck) = still_disrupted(old.disrupted_pods.as_ref(), pods, now);
    let current_healthy = pods
        .iter()
        .filter(|p| !pod::is_terminating(p) && pod::is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .count() as i32;
    let generation = pdb.metadata.generation;
    let (expected, desired) = match expected_and_desired(pdb, pods, scale) {
        Ok(v) => v,
        Err(why) => {
            let status = PodDisruptionBudgetStatus {
                observed_generation: generation,
                disruptions_allowed: 0,
                current_healthy,
                desired_healthy: old.desired_healthy,
                expected_pods: old.expected_pods,
                disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
                conditions: Some(condition(&old, false, "SyncFailed", &why, now)),
            };
            return (status, recheck);
        }
    };
    let allowed = (current_healthy - desired).max(0);
    let reason = if allowed > 0 { "SufficientPods" } else { "InsufficientPods" };
    let status = PodDisruptionBudgetStatus {
        observed_generation: generation,
        disruptions_allowed: allowed,
        current_healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        conditions: Some(condition(&old, allowed > 0, reason, "", now)),
    };
    (status, recheck)
}

/// `(expectedPods, desiredHealthy)`, or why they cannot be known.
fn expected_and_desired(
    pdb: &PodDisruptionBudget,
    pods: &[Arc<Pod>],
    scale: impl Fn(&Pod) -> Option<(String, i32)>,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(IntOrString::Int(min)) = spec.min_available {
        return Ok((pods.len() as i32, min));
    }
    let mut controllers = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let (uid, replicas) = scale(pod).ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
        controllers.insert(uid, replicas);
    }
    let expected: i32 = controllers.values().sum();
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => scaled(Some(min), 0, expected, true),
        (None, Some(max)) => (expected - scaled(Some(max), 0, expected, true)).max(0),
        (None, None) => return Err("the budget sets neither minAvailable nor maxUnavailable".into()),
    };
    Ok((expected, desired))
}

/// The `disruptedPods` entries that still hold, and when the earliest of them expires.
fn still_disrupted(
    old: Option<&BTreeMap<String, Time>>,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let mut kept = BTreeMap::new();
    let mut recheck: Option<Duration> = None;
    let timeout = jiff::SignedDuration::try_from(DELETION_TIMEOUT).expect("small duration");
    for (name, at) in old.into_iter().flatten() {
        let Some(pod) = pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)) else { continue };
        if pod::is_terminating(pod) {
            continue;
        }
        let expires = at.0.checked_add(timeout).unwrap_or(at.0);
        let Ok(left) = Duration::try_from(expires.duration_since(now)) else { continue };
        if left.is_zero() {
            continue;
        }
        recheck = Some(recheck.map_or(left, |r| r.min(left)));
        kept.insert(name.clone(), at.clone());
    }
    (kept, recheck)
}

/// The `DisruptionAllowed` condition, keeping its transition time while its status holds.
fn condition(
    old: &PodDisruptionBudgetStatus,
    allowed: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Vec<Condition> {
    let status = if allowed { "True" } else { "False" };
    let previous = old.conditions.iter().flatten().find(|c| c.type_ == CONDITION);
    let since = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    vec![Condition {
        type_: CONDITION.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, ready: bool) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(Pod {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta { name: Some("web".into()), generation: Some(4), ..Default::default() },
            spec: Some(PodDisruptionBudgetSpec { min_available: min, max_unavailable: max, ..Default::default() }),
            status: None,
        }
    }

    /// Every pod belongs to one controller that wants `replicas`.
    fn one_controller(replicas: i32) -> impl Fn(&Pod) -> Option<(String, i32)> {
        move |_| Some(("rs-uid".into(), replicas))
    }

    fn condition_of(s: &PodDisruptionBudgetStatus) -> (String, String) {
        let c = &s.conditions.as_ref().expect("conditions")[0];
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn an_integer_min_available_counts_the_selected_pods() {
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let (s, recheck) = budget_status(&pdb(Some(IntOrString::Int(2)), None), &pods, |_| None, Timestamp::now());
        assert_eq!((s.expected_pods, s.desired_healthy, s.current_healthy, s.disruptions_allowed), (3, 2, 3, 1));
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(condition_of(&s), ("True".into(), "SufficientPods".into()));
        assert_eq!(recheck, None);
    }

    #[test]
    fn max_unavailable_and_percentages_use_the_controllers_scale() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let (s, _) = budget_status(&pdb(None, Some(IntOrString::Int(1))), &pods, one_controller(3), Timestamp::now());
        assert_eq!((s.expected_pods, s.desired_healthy, s.current_healthy, s.disruptions_allowed), (3, 2, 2, 0));
        assert_eq!(condition_of(&s), ("False".into(), "InsufficientPods".into()));

        let min = Some(IntOrString::String("50%".into()));
        let (s, _) = budget_status(&pdb(min, None), &pods, one_controller(3), Timestamp::now());
        assert_eq!((s.expected_pods, s.desired_healthy, s.disruptions_allowed), (3, 2, 0), "50% of 3 rounds up");
        let max = Some(IntOrString::String("50%".into()));
        let (s, _) = budget_status(&pdb(None, max), &pods, one_controller(4), Timestamp::now());
        assert_eq!((s.expected_pods, s.desired_healthy, s.disruptions_allowed), (4, 2, 0));
    }

    #[test]
    fn a_pod_without_a_controller_makes_max_unavailable_unusable() {
        let pods = [pod("a", true), pod("b", true)];
        let (s, _) = budget_status(&pdb(None, Some(IntOrString::Int(1))), &pods, |_| None, Timestamp::now());
        assert_eq!(s.disruptions_allowed, 0);
        assert_eq!(s.observed_generation, Some(4), "the failure is observed, so evictions report it");
        assert_eq!(condition_of(&s), ("False".into(), "SyncFailed".into()));
        assert!(s.conditions.unwrap()[0].message.contains("found no controllers for pod \"a\""));
    }

    #[test]
    fn disrupted_pods_do_not_count_until_deleted_or_expired() {
        let now = Timestamp::now();
        let ago = |secs: i64| Time(now.checked_sub(jiff::SignedDuration::from_secs(secs)).unwrap());
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        let disrupted = BTreeMap::from([
            ("a".to_string(), ago(10)),   // evicted 10 s ago: still counts as disrupted
            ("b".to_string(), ago(500)),  // past the deletion timeout: healthy again
            ("gone".to_string(), ago(1)), // pod no longer exists
        ]);
        budget.status = Some(PodDisruptionBudgetStatus { disrupted_pods: Some(disrupted), ..Default::default() });
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let (s, recheck) = budget_status(&budget, &pods, |_| None, now);
        assert_eq!(s.current_healthy, 2);
        assert_eq!(s.disrupted_pods.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>()), Some(vec!["a".into()]));
        let recheck = recheck.expect("a recheck when a's entry expires");
        assert!(recheck <= DELETION_TIMEOUT - Duration::from_secs(9), "{recheck:?}");

        let mut deleting = (*pods[0]).clone();
        deleting.metadata.deletion_timestamp = Some(Time(now));
        let (s, recheck) = budget_status(&budget, &[Arc::new(deleting), pods[2].clone()], |_| None, now);
        assert_eq!((s.disrupted_pods, recheck), (None, None), "a terminating pod leaves disruptedPods");
        assert_eq!(s.current_healthy, 1);
    }

    #[test]
    fn an_unchanged_budget_keeps_its_condition_time() {
        let pods = [pod("a", true), pod("b", true)];
        let mut budget = pdb(Some(IntOrString::Int(1)), None);
        let (first, _) = budget_status(&budget, &pods, |_| None, Timestamp::now());
        budget.status = Some(first.clone());
        let later = Timestamp::now().checked_add(jiff::SignedDuration::from_secs(60)).unwrap();
        let (second, _) = budget_status(&budget, &pods, |_| None, later);
        assert_eq!(first, second, "no write when nothing changed");
    }
}
