//! The scheduler's view of the cluster: nodes with running totals, placed pods, volumes.
//!
//! Built once from lists, then kept current one object at a time (`upsert_*`, `remove_*`)
//! and by the loop's own decisions ([`Snapshot::assume`] right after choosing a node, so the
//! next pod sees the capacity taken before the binding's watch event arrives;
//! [`Snapshot::forget`] if the binding fails). Every node carries the aggregates the filters
//! and scores read — requested resources, pod count, host ports — and controller owners
//! are indexed to the nodes holding their pods, so placing one pod costs O(nodes), not
//! O(pods).
//!
//! Invariants: a node's aggregates are exactly the sum over the placed pods whose
//! `spec.nodeName` is that node; a pod is placed at most once (keyed by [`pod_key`]);
//! terminal pods (`Succeeded`, `Failed`) hold nothing, as upstream's informer drops them.
//! Nodes live in stable slots and are visited in name order, which with the tie-break in
//! [`mod@crate::schedule`] makes placement independent of the order the lists came in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flotilla_controllers::pod;
use flotilla_controllers::runtime::owner;
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, Taint};

use crate::affinity::{required_terms, NamespaceLabels, PodTerm};
use crate::ports::{pod_host_ports, HostPort, PortSet};
use crate::resources::{node_allocatable, PodRequests, Resources};
use crate::taints::effective_taints;

/// The key a pod is known by: its uid, or `namespace/name` for an object without one.
pub fn pod_key(pod: &Pod) -> String {
    match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or("")
        ),
    }
}

/// A node and the totals of the pods placed on it.
#[derive(Debug, Clone)]
pub(crate) struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.taints` plus the taint the Ready condition implies.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub pod_count: i64,
    pub ports: PortSet,
    /// FNV-1a of the name, mixed with each pod's seed to break ties (see `schedule`).
    pub name_hash: u64,
}

impl NodeInfo {
    fn new(node: &Node) -> Self {
        let (allocatable, allowed_pods) = node_allocatable(node);
        let name = node.metadata.name.clone().unwrap_or_default();
        NodeInfo {
            name_hash: crate::schedule::fnv1a(name.bytes()),
            name,
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: effective_taints(node),
            unschedulable: node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable,
            allowed_pods,
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pod_count: 0,
            ports: PortSet::default(),
        }
    }

    fn add(&mut self, pod: &PlacedPod) {
        self.requested.add(&pod.requests.actual);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.pod_count += 1;
        pod.ports.iter().for_each(|p| self.ports.add(p));
    }

    fn remove(&mut self, pod: &PlacedPod) {
        self.requested.subtract(&pod.requests.actual);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        self.pod_count -= 1;
        pod.ports.iter().for_each(|p| self.ports.remove(p));
    }
}

/// What the snapshot keeps of a placed pod.
#[derive(Debug, Clone)]
pub(crate) struct PlacedPod {
    pub node: String,
    pub slot: Option<u32>,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub requests: PodRequests,
    pub ports: Vec<HostPort>,
    pub owner: Option<String>,
    pub anti_affinity: Vec<PodTerm>,
}

/// The cluster as the placement core sees it. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    slots: Vec<Option<NodeInfo>>,
    free_slots: Vec<u32>,
    /// Occupied slots sorted by node name: the order nodes are visited in.
    order: Vec<u32>,
    by_name: HashMap<String, u32>,
    /// Label key → value → slots of the nodes carrying it: turns a topology domain into its
    /// nodes without scanning them all.
    by_label: HashMap<String, HashMap<String, Vec<u32>>>,
    pods: HashMap<String, PlacedPod>,
    /// Controller uid → node slot → how many of its pods are there.
    owners: HashMap<String, HashMap<u32, u32>>,
    /// How many placed pods name a node the snapshot does not have (so adding a node scans
    /// the pods only when some are waiting for one).
    detached: usize,
    /// Keys of placed pods with required anti-affinity terms (for the symmetric check).
    with_anti_affinity: BTreeSet<String>,
    pvs: HashMap<String, PersistentVolume>,
    pvcs: HashMap<(String, String), PersistentVolumeClaim>,
    namespaces: HashMap<String, BTreeMap<String, String>>,
}

impl Snapshot {
    /// A snapshot of these objects. Pods without `spec.nodeName`, and terminal pods, are
    /// ignored: they hold nothing on any node.
    pub fn new(nodes: &[Node], pods: &[Pod], pvs: &[PersistentVolume], pvcs: &[PersistentVolumeClaim]) -> Self {
        let mut snap = Snapshot::default();
        nodes.iter().for_each(|n| snap.upsert_node(n));
        pods.iter().for_each(|p| snap.upsert_pod(p));
        pvs.iter().for_each(|pv| snap.upsert_pv(pv));
        pvcs.iter().for_each(|pvc| snap.upsert_pvc(pvc));
        snap
    }

    pub fn node_count(&self) -> usize {
        self.order.len()
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The node a placed pod is on.
    pub fn pod_node(&self, key: &str) -> Option<&str> {
        self.pods.get(key).map(|p| p.node.as_str())
    }

    /// Adds or updates a node, keeping the totals of the pods already placed on it.
    pub fn upsert_node(&mut self, node: &Node) {
        let info = NodeInfo::new(node);
        if let Some(&slot) = self.by_name.get(&info.name) {
            let old = self.slots[slot as usize].take().expect("indexed slots are occupied");
            self.unindex_labels(slot, &old.labels);
            self.index_labels(slot, &info.labels);
            let NodeInfo { requested, non_zero_milli_cpu, non_zero_memory, pod_count, ports, .. } = old;
            self.slots[slot as usize] =
                Some(NodeInfo { requested, non_zero_milli_cpu, non_zero_memory, pod_count, ports, ..info });
            return;
        }
        let name = info.name.clone();
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 nodes")
        });
        self.index_labels(slot, &info.labels);
        self.slots[slot as usize] = Some(info);
        let at = self.order.partition_point(|s| self.slot_name(*s) < name.as_str());
        self.order.insert(at, slot);
        self.by_name.insert(name.clone(), slot);
        if self.detached == 0 {
            return;
        }
        let waiting: Vec<String> = self.pods.iter().filter(|(_, p)| p.node == name).map(|(k, _)| k.clone()).collect();
        for key in waiting {
            let mut pod = self.pods.remove(&key).expect("key just listed");
            self.attach(&mut pod, slot);
            self.detached -= 1;
            self.pods.insert(key, pod);
        }
    }

    /// Removes a node; its pods stay known and count again if the node comes back.
    pub fn remove_node(&mut self, name: &str) {
        let Some(slot) = self.by_name.remove(name) else { return };
        let node = self.slots[slot as usize].take().expect("indexed slots are occupied");
        self.unindex_labels(slot, &node.labels);
        for pod in self.pods.values_mut().filter(|p| p.slot == Some(slot)) {
            pod.slot = None;
            self.detached += 1;
        }
        for per_node in self.owners.values_mut() {
            per_node.remove(&slot);
        }
        self.owners.retain(|_, per_node| !per_node.is_empty());
        self.free_slots.push(slot);
        self.order.retain(|s| *s != slot);
    }

    /// Follows a pod from a watch: placed and running pods are (re)placed, others forgotten.
    pub fn upsert_pod(&mut self, pod: &Pod) {
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
            Some(node) if !pod::is_finished(pod) => self.assume(pod, node),
            _ => {
                self.forget(&pod_key(pod));
            }
        }
    }

    /// Places `pod` on `node` (replacing any earlier placement of the same pod). The node
    /// need not be known yet; its totals include the pod once it is.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        let key = pod_key(pod);
        self.forget(&key);
        let spec = pod.spec.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let mut placed = PlacedPod {
            node: node.to_string(),
            slot: None,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: PodRequests::of(&spec),
            ports: pod_host_ports(&spec),
            owner: owner::controller_ref(&pod.metadata).map(|r| r.uid.clone()),
            anti_affinity: required_terms(pod).1,
            namespace,
        };
        match self.by_name.get(node) {
            Some(&slot) => self.attach(&mut placed, slot),
            None => self.detached += 1,
        }
        if !placed.anti_affinity.is_empty() {
            self.with_anti_affinity.insert(key.clone());
        }
        self.pods.insert(key, placed);
    }

    /// Drops a pod's placement (deleted, finished, or a binding that failed). Returns
    /// whether the pod was placed.
    pub fn forget(&mut self, key: &str) -> bool {
        let Some(pod) = self.pods.remove(key) else { return false };
        self.with_anti_affinity.remove(key);
        if pod.slot.is_none() {
            self.detached -= 1;
        }
        if let Some(slot) = pod.slot {
            self.slots[slot as usize].as_mut().expect("placed on an occupied slot").remove(&pod);
            if let Some(owner) = &pod.owner {
                let per_node = self.owners.get_mut(owner).expect("owner counted when attached");
                let count = per_node.get_mut(&slot).expect("slot counted when attached");
                *count -= 1;
                if *count == 0 {
                    per_node.remove(&slot);
                    if per_node.is_empty() {
                        self.owners.remove(owner);
                    }
                }
            }
        }
        true
    }

    pub fn upsert_pv(&mut self, pv: &PersistentVolume) {
        self.pvs.insert(pv.metadata.name.clone().unwrap_or_default(), pv.clone());
    }

    pub fn remove_pv(&mut self, name: &str) {
        self.pvs.remove(name);
    }

    pub fn upsert_pvc(&mut self, pvc: &PersistentVolumeClaim) {
        let namespace = pvc.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        self.pvcs.insert((namespace, pvc.metadata.name.clone().unwrap_or_default()), pvc.clone());
    }

    pub fn remove_pvc(&mut self, namespace: &str, name: &str) {
        self.pvcs.remove(&(namespace.to_string(), name.to_string()));
    }

    /// Records a namespace's labels, for pod affinity terms with a `namespaceSelector`.
    pub fn upsert_namespace(&mut self, namespace: &Namespace) {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        self.namespaces.insert(name, namespace.metadata.labels.clone().unwrap_or_default());
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    fn attach(&mut self, pod: &mut PlacedPod, slot: u32) {
        pod.slot = Some(slot);
        self.slots[slot as usize].as_mut().expect("attaching to an occupied slot").add(pod);
        if let Some(owner) = &pod.owner {
            *self.owners.entry(owner.clone()).or_default().entry(slot).or_insert(0) += 1;
        }
    }

    fn index_labels(&mut self, slot: u32, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            self.by_label.entry(key.clone()).or_default().entry(value.clone()).or_default().push(slot);
        }
    }

    fn unindex_labels(&mut self, slot: u32, labels: &BTreeMap<String, String>) {
        for (key, value) in labels {
            let Some(values) = self.by_label.get_mut(key) else { continue };
            if let Some(slots) = values.get_mut(value) {
                slots.retain(|s| *s != slot);
                if slots.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(key);
            }
        }
    }

    /// The slots of the nodes labelled `key=value`.
    pub(crate) fn nodes_with_label(&self, key: &str, value: &str) -> &[u32] {
        self.by_label.get(key).and_then(|values| values.get(value)).map_or(&[], Vec::as_slice)
    }

    fn slot_name(&self, slot: u32) -> &str {
        self.slots[slot as usize].as_ref().map_or("", |n| n.name.as_str())
    }

    /// Nodes in name order, with their slots.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = (u32, &NodeInfo)> + '_ {
        self.order.iter().map(|&s| (s, self.slots[s as usize].as_ref().expect("ordered slots are occupied")))
    }

    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).and_then(|&s| self.slots[s as usize].as_ref())
    }

    pub(crate) fn node_of(&self, pod: &PlacedPod) -> Option<&NodeInfo> {
        pod.slot.and_then(|s| self.slots[s as usize].as_ref())
    }

    pub(crate) fn placed_pods(&self) -> impl Iterator<Item = &PlacedPod> + '_ {
        self.pods.values()
    }

    pub(crate) fn pods_with_anti_affinity(&self) -> impl Iterator<Item = &PlacedPod> + '_ {
        self.with_anti_affinity.iter().filter_map(|k| self.pods.get(k))
    }

    /// Where the pods of one controller are: slot → count.
    pub(crate) fn owner_spread(&self, owner: &str) -> Option<&HashMap<u32, u32>> {
        self.owners.get(owner)
    }

    pub(crate) fn pv(&self, name: &str) -> Option<&PersistentVolume> {
        self.pvs.get(name)
    }

    pub(crate) fn pvc(&self, namespace: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.pvcs.get(&(namespace.to_string(), name.to_string()))
    }

    pub(crate) fn namespace_labels<'a>(&'a self, name: &'a str) -> NamespaceLabels<'a> {
        NamespaceLabels { name, labels: self.namespaces.get(name) }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
