//! Filters: can this pod run on this node at all?
//!
//! [`PodQuery::new`] is upstream's PreFilter: it reads the pod once (requests, ports,
//! compiled selectors, volume and inter-pod state) so that [`PodQuery::filter`] is cheap per
//! node. Filters run in upstream's default-profile order and stop at the first that fails,
//! whose reasons (one, or several for resources) are what the node contributes to the
//! `FailedScheduling` message:
//!
//! 1. NodeUnschedulable — cordoned (`spec.unschedulable`), unless the pod tolerates
//!    `node.kubernetes.io/unschedulable:NoSchedule`;
//! 2. NodeName — a pod that already names a node fits only that node;
//! 3. TaintToleration — `NoSchedule`/`NoExecute` taints, including the not-ready and
//!    unreachable taints the Ready condition implies (see [`crate::taints`]);
//! 4. NodeAffinity — `nodeSelector` and required node affinity;
//! 5. NodePorts — host port conflicts;
//! 6. NodeResourcesFit — pod count, cpu, memory, ephemeral storage, extended resources;
//! 7. VolumeBinding — bound PVs' node affinity;
//! 8. InterPodAffinity — required pod affinity and anti-affinity, both directions.

use std::sync::OnceLock;

use flotilla_apiserver::selector::node::{NodeTerm, RequiredNodeAffinity};
use flotilla_apiserver::selector::toleration::{
    find_untolerated, forbids_scheduling, tolerated, NO_SCHEDULE, TAINT_NODE_UNSCHEDULABLE,
};
use flotilla_controllers::runtime::owner;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Taint, Toleration};

use crate::affinity::InterPodState;
use crate::error::Reason;
use crate::ports::{pod_host_ports, HostPort};
use crate::resources::PodRequests;
use crate::snapshot::{pod_key, NodeInfo, Snapshot};
use crate::volumes::VolumeState;

/// A pod read once for one scheduling attempt.
#[derive(Debug)]
pub(crate) struct PodQuery<'p> {
    pub key: String,
    pub tolerations: &'p [Toleration],
    pub requests: PodRequests,
    pub preferred: Vec<(i64, NodeTerm)>,
    pub owner: Option<&'p str>,
    wanted_node: Option<&'p str>,
    tolerates_unschedulable: bool,
    node_affinity: RequiredNodeAffinity<'p>,
    ports: Vec<HostPort>,
    volumes: VolumeState,
    inter_pod: InterPodState,
}

impl<'p> PodQuery<'p> {
    /// Reads the pod; `Err` is a reason that rules out every node (upstream PreFilter).
    pub fn new(pod: &'p Pod, snap: &Snapshot) -> Result<Self, String> {
        static NO_SPEC: OnceLock<PodSpec> = OnceLock::new();
        let spec = pod.spec.as_ref().unwrap_or_else(|| NO_SPEC.get_or_init(Default::default));
        let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
        let unschedulable =
            Taint { key: TAINT_NODE_UNSCHEDULABLE.into(), effect: NO_SCHEDULE.into(), ..Default::default() };
        let node_affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let preferred = node_affinity
            .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_deref())
            .unwrap_or(&[])
            .iter()
            .filter(|t| t.weight != 0)
            .filter_map(|t| Some((i64::from(t.weight), NodeTerm::new(&t.preference)?)))
            .collect();
        Ok(PodQuery {
            key: pod_key(pod),
            tolerations,
            requests: PodRequests::of(spec),
            preferred,
            owner: owner::controller_ref(&pod.metadata).map(|r| r.uid.as_str()),
            wanted_node: spec.node_name.as_deref().filter(|n| !n.is_empty()),
            tolerates_unschedulable: tolerated(tolerations, &unschedulable),
            node_affinity: RequiredNodeAffinity::new(spec),
            ports: pod_host_ports(spec),
            volumes: VolumeState::new(pod, snap)?,
            inter_pod: InterPodState::new(pod, snap),
        })
    }

    /// Runs the filters on `node` (in `slot`); on failure pushes the first failing filter's reasons to
    /// `out` and returns false.
    pub fn filter<'s>(&'s self, slot: u32, node: &'s NodeInfo, out: &mut Vec<Reason<'s>>) -> bool {
        let reason = self.first_failure(node);
        if let Some(reason) = reason {
            out.push(reason);
            return false;
        }
        let before = out.len();
        self.fit_resources(node, out);
        if out.len() > before {
            return false;
        }
        if !self.volumes.is_trivial() {
            if let Some(reason) = self.volumes.check(&node.labels, &node.name) {
                out.push(reason);
                return false;
            }
        }
        if !self.inter_pod.is_trivial() {
            if let Some(reason) = self.inter_pod.check(slot, &node.labels) {
                out.push(reason);
                return false;
            }
        }
        true
    }

    /// Filters 1–5, each of which gives a single reason.
    fn first_failure<'s>(&'s self, node: &'s NodeInfo) -> Option<Reason<'s>> {
        if node.unschedulable && !self.tolerates_unschedulable {
            return Some(Reason::Unschedulable);
        }
        if self.wanted_node.is_some_and(|n| n != node.name) {
            return Some(Reason::NodeName);
        }
        if !node.taints.is_empty() {
            if let Some(taint) = find_untolerated(&node.taints, self.tolerations, forbids_scheduling) {
                return Some(Reason::UntoleratedTaint { key: &taint.key, value: taint.value.as_deref().unwrap_or("") });
            }
        }
        if !self.node_affinity.matches(&node.labels, &node.name) {
            return Some(Reason::NodeAffinity);
        }
        if !node.ports.is_empty() && self.ports.iter().any(|p| node.ports.conflicts(p)) {
            return Some(Reason::HostPorts);
        }
        None
    }

    /// Upstream's `fitsRequest`: every shortfall is a reason of its own.
    fn fit_resources<'s>(&'s self, node: &'s NodeInfo, out: &mut Vec<Reason<'s>>) {
        if node.pod_count + 1 > node.allowed_pods {
            out.push(Reason::TooManyPods);
        }
        let want = &self.requests.actual;
        if want.is_zero() {
            return;
        }
        let (have, used) = (&node.allocatable, &node.requested);
        if want.milli_cpu > 0 && want.milli_cpu > have.milli_cpu - used.milli_cpu {
            out.push(Reason::Insufficient("cpu"));
        }
        if want.memory > 0 && want.memory > have.memory - used.memory {
            out.push(Reason::Insufficient("memory"));
        }
        if want.ephemeral_storage > 0 && want.ephemeral_storage > have.ephemeral_storage - used.ephemeral_storage {
            out.push(Reason::Insufficient("ephemeral-storage"));
        }
        for (name, amount) in &want.scalar {
            if *amount > 0 && *amount > have.scalar(name) - used.scalar(name) {
                out.push(Reason::Insufficient(name));
            }
        }
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
