//! The control-plane checker: a Deployment scaled up and down under faults.
//!
//! The history carries two kinds of op (written by `workload::control_plane`):
//! - scale ops: `Call::Write { value: replicas }` on key [`SCALE_KEY`] (the create counts as
//!   the first one); `Ok` acknowledged, `Fail` definitely not applied, `Info` unknown;
//! - observations: `Call::Observe` on key [`OBSERVE_KEY`] carrying the JSON of an
//!   [`Observation`]; the op's invoke/complete bracket the linearizable pod list it reports.
//!
//! Properties checked, each conservative (a false alarm is a checker bug):
//! 1. convergence: the last final-phase observation has exactly the desired number of
//!    Running, non-terminating pods, where desired is the last acknowledged value or the
//!    value of an indeterminate scale issued after it, and the ReplicaSet agrees;
//! 2. no pod uid is ever seen bound to two different nodes;
//! 3. surge: when an observation shows pods not seen before (so pods were created), its
//!    non-terminating pods number at most `max_surge` + the largest desired value that may
//!    have been in effect from [`Config::controller_lag`] before the previous observation
//!    to the end of this one. Terminating pods never count; an in-flight or indeterminate
//!    scale counts with its value; a controller acting on a cache older than the lag is
//!    the one case this may flag without a real surge.
//! 4. node liveness: a node of the agent (listed in an observation) may be seen with Ready
//!    `False`/`Unknown` or tainted `node.kubernetes.io/unreachable`/`not-ready` only if the
//!    agent process had exited at least [`Config::node_down_after`] before that observation
//!    completed. The agent's run is one op on [`AGENT_KEY`] carrying an [`AgentRun`]; the
//!    exit is dated by the last time the process was seen running (the earliest it can have
//!    stopped). Without an exit the agent ran all along and no node may ever go down: the
//!    lifecycle controller judges by when *it* saw the Lease move, a new leader gives every
//!    node a fresh grace, and a leader cut off from a majority stops its controllers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Validity, Verdict};
use crate::history::{Call, History, Op, Outcome};

/// Key of scale ops.
pub const SCALE_KEY: &str = "control-plane/scale";
/// Key of observations.
pub const OBSERVE_KEY: &str = "control-plane/observe";
/// Key of the op recording the agent's run.
pub const AGENT_KEY: &str = "control-plane/agent";
/// The taints the node lifecycle controller puts on a node it judges down.
pub const DOWN_TAINTS: [&str; 2] = ["node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"];

/// Settings of the check.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Deployment's `maxSurge`.
    pub max_surge: u32,
    /// How stale a controller's view of the desired replicas may be.
    pub controller_lag: Duration,
    /// How long after the agent stopped its nodes may first be seen down.
    pub node_down_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        // controller_lag 10 s: longer than the faults the presets inject (3-6 s) plus an
        // election. node_down_after 20 s: the server marks a node Unknown 40 s
        // (`--node-monitor-grace-period`) after it saw the Lease move, and the agent renews
        // every 10 s, so the earliest a node can go down is ~30 s after the agent stopped;
        // 20 s leaves 10 s for a slow renewal and the observation's own latency.
        Self { max_surge: 1, controller_lag: Duration::from_secs(10), node_down_after: Duration::from_secs(20) }
    }
}

/// One pod as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSeen {
    pub name: String,
    pub uid: String,
    /// `spec.nodeName`, empty when unbound.
    pub node: String,
    pub phase: String,
    /// The owning ReplicaSet's name, empty when none.
    pub owner: String,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

/// One ReplicaSet as listed (final phase only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetSeen {
    pub name: String,
    pub spec_replicas: u32,
    pub status_replicas: u32,
}

/// One of the agent's nodes as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSeen {
    pub name: String,
    /// The Ready condition's status (`True`/`False`/`Unknown`), empty when absent.
    pub ready: String,
    /// The keys of its taints that are among [`DOWN_TAINTS`].
    pub down_taints: Vec<String>,
}

impl NodeSeen {
    /// Seen as down by the node lifecycle controller (or by itself).
    pub fn down(&self) -> bool {
        matches!(self.ready.as_str(), "False" | "Unknown") || !self.down_taints.is_empty()
    }
}

/// The agent's run: the op on [`AGENT_KEY`] spans its start to its teardown (or to when its
/// exit was noticed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRun {
    /// Set when the process exited on its own before teardown.
    pub exit: Option<AgentExit>,
}

/// An unexpected exit of the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentExit {
    /// The last time (history clock) the process was seen running: it exited after this.
    pub last_running_ns: u64,
    /// When the exit was noticed.
    pub noticed_ns: u64,
    /// The exit status as the OS reported it.
    pub status: String,
}

impl AgentRun {
    /// The op call that carries this run.
    pub fn to_call(&self) -> Call {
        Call::Observe { data: serde_json::to_string(self).expect("an agent run serializes to JSON") }
    }
}

/// One poll of the deployment's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Taken after the faults healed (the convergence wait).
    pub final_phase: bool,
    /// The desired replicas the workload last had acknowledged when it polled.
    pub acked_desired: u32,
    pub pods: Vec<PodSeen>,
    #[serde(default)]
    pub replica_sets: Vec<ReplicaSetSeen>,
    /// The agent's nodes (names with the workload's prefix).
    #[serde(default)]
    pub nodes: Vec<NodeSeen>,
}

impl Observation {
    /// Pods that count toward the replicas: not terminating.
    pub fn live(&self) -> impl Iterator<Item = &PodSeen> {
        self.pods.iter().filter(|p| !p.terminating)
    }

    /// The op call that carries this observation.
    pub fn to_call(&self) -> Call {
        Call::Observe { data: serde_json::to_string(self).expect("an observation serializes to JSON") }
    }
}

/// A scale op as the checker sees it.
#[derive(Debug, Clone, Copy)]
struct Scale {
    value: u32,
    invoke_ns: u64,
    complete_ns: u64,
    ok: bool,
}

/// Judges a control-plane history.
pub fn check(history: &History, config: &Config) -> Verdict {
    let scales = scales(history);
    let observations: Vec<(&Op, Observation)> = history
        .ops
        .iter()
        .filter_map(|op| match &op.call {
            Call::Observe { data } if op.key == OBSERVE_KEY => Some((op, data)),
            _ => None,
        })
        .filter_map(|(op, json)| serde_json::from_str(json).ok().map(|o| (op, o)))
        .collect();
    let mut anomalies = Vec::new();
    anomalies.extend(double_bound(&observations));
    anomalies.extend(surges(&observations, &scales, config));
    anomalies.extend(convergence(&observations, &scales));
    let exit = agent_exit(history);
    anomalies.extend(nodes_down(&observations, exit.as_ref(), config));
    let valid = if anomalies.is_empty() { Validity::Valid } else { Validity::Invalid };
    let details = serde_json::json!({
        "scale_ops": scales.len(),
        "observations": observations.len(),
        "agent_exit": exit,
        "anomalies": anomalies,
    });
    Verdict::new("control_plane", valid, details)
}

fn scales(history: &History) -> Vec<Scale> {
    history
        .ops
        .iter()
        .filter(|op| op.key == SCALE_KEY)
        .filter_map(|op| match (&op.call, &op.outcome) {
            (Call::Write { value }, Outcome::Ok(_) | Outcome::Info) => Some(Scale {
                value: u32::try_from(*value).unwrap_or(u32::MAX),
                invoke_ns: op.invoke_ns,
                complete_ns: op.complete_ns,
                ok: op.is_ok(),
            }),
            _ => None,
        })
        .collect()
}

/// Property 2: one uid, one node.
fn double_bound(observations: &[(&Op, Observation)]) -> Vec<String> {
    let mut nodes: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    let mut anomalies = Vec::new();
    for (_, obs) in observations {
        for pod in obs.pods.iter().filter(|p| !p.node.is_empty()) {
            match nodes.get(pod.uid.as_str()) {
                Some((_, node)) if *node != pod.node => {
                    anomalies.push(format!("pod {} (uid {}) seen on {} and on {}", pod.name, pod.uid, node, pod.node))
                }
                Some(_) => {}
                None => {
                    nodes.insert(&pod.uid, (&pod.name, &pod.node));
                }
            }
        }
    }
    anomalies
}

/// The largest desired value that may have been in effect at some time in `[from, to]`:
/// every non-failed scale invoked before `to` that no acknowledged later scale replaced
/// before `from`. An indeterminate scale is never known to be replaced.
fn max_desired(scales: &[Scale], from_ns: u64, to_ns: u64) -> Option<u32> {
    scales
        .iter()
        .enumerate()
        .filter(|(_, s)| s.invoke_ns < to_ns)
        .filter(|(i, s)| {
            !s.ok
                || !scales[i + 1..]
                    .iter()
                    .any(|later| later.ok && later.invoke_ns > s.complete_ns && later.complete_ns < from_ns)
        })
        .map(|(_, s)| s.value)
        .max()
}

/// Property 3: no more live pods than desired + maxSurge whenever pods were created.
fn surges(observations: &[(&Op, Observation)], scales: &[Scale], config: &Config) -> Vec<String> {
    let lag_ns = u64::try_from(config.controller_lag.as_nanos()).unwrap_or(u64::MAX);
    let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut window_start: u64 = 0;
    let mut anomalies = Vec::new();
    for (op, obs) in observations {
        let created = obs.pods.iter().any(|p| !seen.contains(p.uid.as_str()));
        let live = obs.live().count();
        let from_ns = window_start.saturating_sub(lag_ns);
        let bound = max_desired(scales, from_ns, op.complete_ns).map(|d| d as usize + config.max_surge as usize);
        if created && bound.is_some_and(|b| live > b) {
            anomalies.push(format!(
                "{live} live pods at {}..{} ns, more than desired + maxSurge = {}",
                op.invoke_ns,
                op.complete_ns,
                bound.unwrap_or_default()
            ));
        }
        seen.extend(obs.pods.iter().map(|p| p.uid.as_str()));
        window_start = op.invoke_ns;
    }
    anomalies
}

/// The agent's unexpected exit, if the history records one.
fn agent_exit(history: &History) -> Option<AgentExit> {
    history
        .ops
        .iter()
        .filter(|op| op.key == AGENT_KEY)
        .filter_map(|op| match &op.call {
            Call::Observe { data } => serde_json::from_str::<AgentRun>(data).ok(),
            _ => None,
        })
        .find_map(|run| run.exit)
}

/// Property 4: nodes go down only well after the agent stopped.
fn nodes_down(observations: &[(&Op, Observation)], exit: Option<&AgentExit>, config: &Config) -> Vec<String> {
    let after_ns = u64::try_from(config.node_down_after.as_nanos()).unwrap_or(u64::MAX);
    let allowed_from_ns = exit.map_or(u64::MAX, |e| e.last_running_ns.saturating_add(after_ns));
    let mut anomalies = Vec::new();
    for (op, obs) in observations.iter().filter(|(op, _)| op.complete_ns < allowed_from_ns) {
        for node in obs.nodes.iter().filter(|n| n.down()) {
            let agent = match exit {
                Some(e) => format!("the agent was last seen running at {} ns", e.last_running_ns),
                None => "the agent ran all along".to_string(),
            };
            anomalies.push(format!(
                "node {} down (Ready {:?}, taints {:?}) at {}..{} ns, but {agent}",
                node.name, node.ready, node.down_taints, op.invoke_ns, op.complete_ns
            ));
        }
    }
    anomalies
}

/// The values the deployment may finally want: the last acknowledged scale, and any
/// indeterminate scale issued after it.
pub fn final_desired(values: &[(u32, bool)]) -> Vec<u32> {
    let last_ok = values.iter().rposition(|(_, ok)| *ok);
    let mut allowed: Vec<u32> = last_ok.map(|i| values[i].0).into_iter().collect();
    let after = last_ok.map_or(0, |i| i + 1);
    allowed.extend(values[after..].iter().map(|(v, _)| *v));
    allowed
}

/// Property 1: converged after healing.
fn convergence(observations: &[(&Op, Observation)], scales: &[Scale]) -> Vec<String> {
    let values: Vec<(u32, bool)> = scales.iter().map(|s| (s.value, s.ok)).collect();
    let allowed = final_desired(&values);
    match observations.iter().rev().find(|(_, o)| o.final_phase) {
        Some((_, last)) => converged(last, &allowed),
        None => vec!["no observation after the faults healed".to_string()],
    }
}

/// Why `obs` is not converged to one of `allowed` (empty when it is): its Running,
/// non-terminating pods number one of `allowed`, and exactly one ReplicaSet wants pods and
/// reports that many.
pub fn converged(obs: &Observation, allowed: &[u32]) -> Vec<String> {
    let running = obs.live().filter(|p| p.phase == "Running").count() as u32;
    let mut anomalies = Vec::new();
    if !allowed.contains(&running) {
        anomalies.push(format!("not converged: {running} running pods, desired one of {allowed:?}"));
    }
    let active: Vec<&ReplicaSetSeen> = obs.replica_sets.iter().filter(|rs| rs.spec_replicas > 0).collect();
    match active.as_slice() {
        [rs] if rs.spec_replicas == running && rs.status_replicas == running => {}
        _ => anomalies.push(format!("replica sets do not match {running} running pods: {:?}", obs.replica_sets)),
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::final_desired;

    #[test]
    fn final_desired_takes_the_last_ack_and_later_unknowns() {
        assert_eq!(final_desired(&[(5, true), (3, true)]), vec![3]);
        assert_eq!(final_desired(&[(5, true), (3, true), (7, false)]), vec![3, 7]);
        assert_eq!(final_desired(&[(5, true), (7, false), (3, true)]), vec![3]);
        assert!(final_desired(&[]).is_empty());
    }
}
