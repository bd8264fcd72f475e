//! Unit tests of the DaemonSet plan: per-node management and rolling-update steps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::pod::fixtures::{self, at};

const NEW: &str = "new";
const OLD: &str = "old";
const RUNS: Option<Fit> = Some(Fit { should_run: true, may_continue: true });
const STAYS: Option<Fit> = Some(Fit { should_run: false, may_continue: true });
const EVICTED: Option<Fit> = Some(Fit { should_run: false, may_continue: false });

#[derive(Clone, Copy, PartialEq)]
enum S {
    Ready,
    NotReady,
    Failed,
    Done,
    Terminating,
}

fn pod(name: &str, hash: &str, state: S, created: i64) -> Arc<Pod> {
    let ready = matches!(state, S::Ready | S::Terminating);
    let phase = match state {
        S::Failed => "Failed",
        S::Done => "Succeeded",
        _ => "Running",
    };
    let mut pod = fixtures::pod(phase, ready.then_some(0));
    pod.metadata = ObjectMeta {
        name: Some(name.into()),
        creation_timestamp: Some(Time(at(created))),
        labels: Some([(REVISION_HASH_LABEL.to_string(), hash.to_string())].into()),
        deletion_timestamp: (state == S::Terminating).then(|| Time(at(50))),
        ..Default::default()
    };
    Arc::new(pod)
}

/// A node's name, fit and pods.
type Row<'a> = (&'a str, Option<Fit>, Vec<Arc<Pod>>);

fn nodes(list: Vec<Row>) -> BTreeMap<String, NodePods> {
    list.into_iter().map(|(n, fit, pods)| (n.to_string(), NodePods { fit, pods })).collect()
}

fn deleted(w: &Writes) -> Vec<String> {
    w.delete.iter().map(|(p, _)| p.metadata.name.clone().unwrap()).collect()
}

fn step(max_unavailable: usize, max_surge: usize) -> Rolling {
    Rolling { max_unavailable, max_surge, min_ready: Duration::ZERO, now: at(100) }
}

#[test]
fn every_fitting_node_without_a_pod_gets_one_and_misplaced_pods_go() {
    let n = nodes(vec![
        ("a", RUNS, vec![]),
        ("b", RUNS, vec![pod("b1", NEW, S::Terminating, 0)]),
        ("c", STAYS, vec![pod("c1", NEW, S::Ready, 0)]),
        ("d", EVICTED, vec![pod("d1", NEW, S::Ready, 0)]),
        ("e", STAYS, vec![]),
        ("gone", None, vec![pod("g1", NEW, S::Ready, 0)]),
    ]);
    let w = manage(&n, NEW, false);
    assert_eq!(w.create_on, ["a"], "b waits for its terminating pod; e should not run one");
    assert_eq!(deleted(&w), ["d1", "g1"]);
    let unbound_gone = w.delete.iter().find(|(p, _)| p.metadata.name.as_deref() == Some("g1")).unwrap().1;
    assert!(!unbound_gone, "an unbound pod needs no forced delete");
}

#[test]
fn failed_pods_are_handed_back_finished_ones_deleted_extras_trimmed() {
    let n = nodes(vec![
        ("a", RUNS, vec![pod("a1", NEW, S::Failed, 0)]),
        ("b", RUNS, vec![pod("b1", NEW, S::Done, 0)]),
        ("c", RUNS, vec![pod("c2", NEW, S::Ready, 5), pod("c1", NEW, S::Ready, 1), pod("c3", OLD, S::Ready, 9)]),
    ]);
    let w = manage(&n, NEW, false);
    assert_eq!(
        w.failed.iter().map(|(p, n)| (p.metadata.name.clone().unwrap(), n.clone())).collect::<Vec<_>>(),
        [("a1".to_string(), "a".to_string())]
    );
    assert_eq!(deleted(&w), ["b1", "c2", "c3"], "the oldest running pod is kept");
    let surge = manage(&n, NEW, true);
    assert_eq!(deleted(&surge), ["b1", "c2"], "with surge one old and one new pod may share a node");
}

#[test]
fn a_rolling_step_keeps_unavailable_nodes_within_max_unavailable() {
    let all_old = nodes(vec![
        ("a", RUNS, vec![pod("a1", OLD, S::Ready, 0)]),
        ("b", RUNS, vec![pod("b1", OLD, S::Ready, 0)]),
        ("c", RUNS, vec![pod("c1", OLD, S::Ready, 0)]),
    ]);
    assert_eq!(deleted(&rolling(&all_old, NEW, step(1, 0))), ["a1"]);
    assert_eq!(deleted(&rolling(&all_old, NEW, step(2, 0))), ["a1", "b1"]);

    let in_progress = nodes(vec![
        ("a", RUNS, vec![pod("a2", NEW, S::NotReady, 0)]),
        ("b", RUNS, vec![pod("b1", OLD, S::Ready, 0)]),
        ("c", RUNS, vec![pod("c1", OLD, S::NotReady, 0)]),
        ("d", RUNS, vec![pod("d1", OLD, S::Terminating, 0)]),
    ]);
    let w = rolling(&in_progress, NEW, step(2, 0));
    assert_eq!(deleted(&w), ["c1"], "an unavailable old pod may always go; a and d use the budget");
    let w = rolling(&in_progress, NEW, step(3, 0));
    assert_eq!(deleted(&w), ["c1", "b1"]);
}

#[test]
fn a_surging_step_creates_beside_old_pods_and_removes_them_once_replaced() {
    let n = nodes(vec![
        ("a", RUNS, vec![pod("a1", OLD, S::Ready, 0), pod("a2", NEW, S::Ready, 1)]),
        ("b", RUNS, vec![pod("b1", OLD, S::Ready, 0), pod("b2", NEW, S::NotReady, 1)]),
        ("c", RUNS, vec![pod("c1", OLD, S::Ready, 0)]),
        ("d", RUNS, vec![pod("d1", OLD, S::NotReady, 0)]),
        ("e", RUNS, vec![pod("e1", OLD, S::Ready, 0)]),
    ]);
    let w = rolling(&n, NEW, step(0, 2));
    assert_eq!(deleted(&w), ["a1"], "a's new pod is available");
    assert_eq!(w.create_on, ["d", "c"], "d's old pod is unavailable; one surge slot left (b surges)");
}

#[test]
fn live_hashes_are_those_pods_carry() {
    let n = nodes(vec![("a", RUNS, vec![pod("a1", OLD, S::Ready, 0)]), ("b", RUNS, vec![pod("b1", NEW, S::Ready, 0)])]);
    assert_eq!(live_hashes(&n), [NEW.to_string(), OLD.to_string()].into());
}
