//! Unit tests of the StatefulSet plan: ordering, scale-down, rolling update, partition.

use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::history::REVISION_HASH_LABEL;
use crate::pod::fixtures;

const NEW: &str = "web-new";
const OLD: &str = "web-old";

fn now() -> Timestamp {
    fixtures::at(0)
}

fn set(replicas: i32, policy: &str, strategy: &str, partition: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta { name: Some("web".into()), uid: Some("u".into()), ..Default::default() },
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            pod_management_policy: Some(policy.into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some(strategy.into()),
                rolling_update: (strategy == "RollingUpdate")
                    .then_some(RollingUpdateStatefulSetStrategy { partition: Some(partition), max_unavailable: None }),
            }),
            ..Default::default()
        }),
        status: None,
    }
}

fn ordered(replicas: i32) -> StatefulSet {
    set(replicas, "OrderedReady", "RollingUpdate", 0)
}

#[derive(Clone, Copy)]
enum State {
    Ready,
    NotReady,
    Failed,
    Terminating,
}

fn pod(ordinal: i32, state: State, revision: &str) -> (i32, Arc<Pod>) {
    let ready = matches!(state, State::Ready | State::Terminating);
    let phase = if matches!(state, State::Failed) { "Failed" } else { "Running" };
    let mut pod = fixtures::pod(phase, ready.then_some(0));
    pod.metadata = ObjectMeta {
        name: Some(format!("web-{ordinal}")),
        labels: Some([(REVISION_HASH_LABEL.to_string(), revision.to_string())].into()),
        deletion_timestamp: matches!(state, State::Terminating).then(|| Time(now())),
        ..Default::default()
    };
    (ordinal, Arc::new(pod))
}

fn pods(list: &[(i32, State)], revision: &str) -> BTreeMap<i32, Arc<Pod>> {
    list.iter().map(|(o, s)| pod(*o, *s, revision)).collect()
}

/// The plan's steps as short strings: `+2` (create, `+2c` from current), `-3` (delete).
fn steps(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .map(|s| match s {
            Step::Create { ordinal, from: From::Update } => format!("+{ordinal}"),
            Step::Create { ordinal, from: From::Current } => format!("+{ordinal}c"),
            Step::Delete { pod, .. } => {
                format!("-{}", pod.metadata.name.as_deref().unwrap().trim_start_matches("web-"))
            }
        })
        .collect()
}

#[test]
fn ordered_ready_creates_one_pod_after_the_previous_is_ready() {
    let s = ordered(3);
    assert_eq!(steps(&plan(&s, &pods(&[], NEW), NEW, now())), ["+0"]);
    assert!(steps(&plan(&s, &pods(&[(0, State::NotReady)], NEW), NEW, now())).is_empty(), "wait for web-0");
    assert_eq!(steps(&plan(&s, &pods(&[(0, State::Ready)], NEW), NEW, now())), ["+1"]);
    assert_eq!(steps(&plan(&s, &pods(&[(0, State::Ready), (1, State::Ready)], NEW), NEW, now())), ["+2"]);
    let gap = pods(&[(0, State::Ready), (2, State::Ready)], NEW);
    assert_eq!(steps(&plan(&s, &gap, NEW, now())), ["+1"], "a deleted pod is recreated under its name");
}

#[test]
fn parallel_creates_and_deletes_all_at_once() {
    let s = set(3, "Parallel", "RollingUpdate", 0);
    assert_eq!(steps(&plan(&s, &pods(&[(1, State::NotReady)], NEW), NEW, now())), ["+0", "+2"]);
    let many =
        pods(&[(0, State::Ready), (1, State::Ready), (2, State::Ready), (3, State::NotReady), (4, State::Ready)], NEW);
    assert_eq!(steps(&plan(&set(2, "Parallel", "RollingUpdate", 0), &many, NEW, now())), ["-4", "-3", "-2"]);
}

#[test]
fn ordered_scale_down_takes_the_highest_first_once_all_are_ready() {
    let s = ordered(2);
    let all_ready = pods(&[(0, State::Ready), (1, State::Ready), (2, State::Ready), (3, State::Ready)], NEW);
    assert_eq!(steps(&plan(&s, &all_ready, NEW, now())), ["-3"]);
    let unready_kept = pods(&[(0, State::NotReady), (1, State::Ready), (2, State::Ready)], NEW);
    assert!(steps(&plan(&s, &unready_kept, NEW, now())).is_empty(), "a kept pod is not ready: wait");
    let terminating = pods(&[(0, State::Ready), (1, State::Ready), (2, State::Ready), (3, State::Terminating)], NEW);
    assert!(steps(&plan(&s, &terminating, NEW, now())).is_empty(), "one at a time");
    let lowest_unhealthy = pods(&[(0, State::Ready), (1, State::Ready), (2, State::Ready), (3, State::NotReady)], NEW);
    assert_eq!(steps(&plan(&s, &lowest_unhealthy, NEW, now())), ["-3"], "the lowest unhealthy may go");
    let blocked = pods(&[(0, State::Ready), (1, State::Ready), (2, State::NotReady), (3, State::NotReady)], NEW);
    assert!(steps(&plan(&s, &blocked, NEW, now())).is_empty(), "an unhealthy pod above it: wait");
}

#[test]
fn a_failed_pod_is_deleted_to_be_recreated() {
    let s = ordered(2);
    let failed = pods(&[(0, State::Failed), (1, State::Ready)], NEW);
    let p = plan(&s, &failed, NEW, now());
    assert_eq!(steps(&p), ["-0"]);
    assert!(matches!(p.steps[0], Step::Delete { why: Why::Finished, .. }));
}

#[test]
fn a_rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
    let s = set(3, "OrderedReady", "RollingUpdate", 1);
    let all_old = pods(&[(0, State::Ready), (1, State::Ready), (2, State::Ready)], OLD);
    let p = plan(&s, &all_old, NEW, now());
    assert_eq!(steps(&p), ["-2"]);
    assert!(matches!(p.steps[0], Step::Delete { why: Why::Update, .. }));

    let mut two_new = all_old.clone();
    two_new.extend([pod(2, State::NotReady, NEW)]);
    assert!(steps(&plan(&s, &two_new, NEW, now())).is_empty(), "wait for the updated pod");
    two_new.extend([pod(2, State::Ready, NEW)]);
    assert_eq!(steps(&plan(&s, &two_new, NEW, now())), ["-1"]);
    two_new.extend([pod(1, State::Ready, NEW)]);
    assert!(steps(&plan(&s, &two_new, NEW, now())).is_empty(), "web-0 is below the partition");
    two_new.remove(&0);
    assert_eq!(steps(&plan(&s, &two_new, NEW, now())), ["+0c"], "below the partition: the current revision");
}

#[test]
fn on_delete_replaces_nothing_and_recreates_at_the_update_revision() {
    let s = set(2, "OrderedReady", "OnDelete", 0);
    let old = pods(&[(0, State::Ready), (1, State::Ready)], OLD);
    assert!(steps(&plan(&s, &old, NEW, now())).is_empty());
    let mut deleted = old;
    deleted.remove(&1);
    assert_eq!(steps(&plan(&s, &deleted, NEW, now())), ["+1"]);
}

#[test]
fn min_ready_seconds_holds_the_next_pod_and_asks_for_a_recheck() {
    let mut s = ordered(2);
    s.spec.as_mut().unwrap().min_ready_seconds = Some(30);
    let p = plan(&s, &pods(&[(0, State::Ready)], NEW), NEW, now());
    assert!(p.steps.is_empty());
    assert_eq!(p.recheck, Some(Duration::from_secs(30)));
}

#[test]
fn a_set_being_deleted_gets_no_steps() {
    let mut s = ordered(2);
    s.metadata.deletion_timestamp = Some(Time(now()));
    assert!(plan(&s, &pods(&[], NEW), NEW, now()).steps.is_empty());
}
