//! Test builders for nodes and pods, so each test states only what it is about.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, Node, NodeAffinity, NodeCondition, NodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, NodeSpec, NodeStatus, PersistentVolumeClaimVolumeSource, Pod, PodAffinity, PodAffinityTerm,
    PodAntiAffinity, PodSpec, PreferredSchedulingTerm, ResourceRequirements, Taint, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};

pub const HOSTNAME: &str = "kubernetes.io/hostname";

pub struct NodeBuilder(pub Node);

/// A Ready node with 4 cpu, 8Gi memory, 110 pods, labelled with its hostname.
pub fn node(name: &str) -> NodeBuilder {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some(BTreeMap::from([(HOSTNAME.to_string(), name.to_string())]));
    let ready = NodeCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() };
    n.spec = Some(NodeSpec::default());
    n.status = Some(NodeStatus { conditions: Some(vec![ready]), ..Default::default() });
    NodeBuilder(n).allocatable("cpu", "4").allocatable("memory", "8Gi").allocatable("pods", "110")
}

impl NodeBuilder {
    pub fn allocatable(mut self, resource: &str, amount: &str) -> Self {
        let status = self.0.status.as_mut().expect("built with a status");
        status.allocatable.get_or_insert_with(BTreeMap::new).insert(resource.into(), Quantity(amount.into()));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        let taint = Taint { key: key.into(), value: Some(value.into()), effect: effect.into(), ..Default::default() };
        self.0.spec.as_mut().expect("built with a spec").taints.get_or_insert_with(Vec::new).push(taint);
        self
    }

    pub fn ready(mut self, status: &str) -> Self {
        let conditions = self.0.status.as_mut().and_then(|s| s.conditions.as_mut()).expect("built with conditions");
        conditions[0].status = status.into();
        self
    }

    pub fn unschedulable(mut self) -> Self {
        self.0.spec.as_mut().expect("built with a spec").unschedulable = Some(true);
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

pub struct PodBuilder(pub Pod);

/// A pod in `default` with uid `uid-<name>` and one container without requests.
pub fn pod(name: &str) -> PodBuilder {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("default".into());
    p.metadata.uid = Some(format!("uid-{name}"));
    p.spec = Some(PodSpec {
        containers: vec![Container { name: "main".into(), ..Default::default() }],
        ..Default::default()
    });
    PodBuilder(p)
}

pub fn expr(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
    let values = (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect());
    NodeSelectorRequirement { key: key.into(), operator: op.into(), values }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A pod affinity term selecting `key=value` pods over `topology_key`.
pub fn pod_term(key: &str, value: &str, topology_key: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector { match_labels: Some(labels(&[(key, value)])), ..Default::default() }),
        topology_key: topology_key.into(),
        ..Default::default()
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().expect("built with a spec")
    }

    fn affinity(&mut self) -> &mut Affinity {
        self.spec().affinity.get_or_insert_with(Default::default)
    }

    pub fn request(mut self, resource: &str, amount: &str) -> Self {
        let resources = self.spec().containers[0].resources.get_or_insert_with(ResourceRequirements::default);
        resources.requests.get_or_insert_with(BTreeMap::new).insert(resource.into(), Quantity(amount.into()));
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.metadata.labels.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.into());
        self
    }

    pub fn on(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.into());
        self
    }

    pub fn owner(mut self, uid: &str) -> Self {
        let owner =
            OwnerReference { uid: uid.into(), controller: Some(true), kind: "ReplicaSet".into(), ..Default::default() };
        self.0.metadata.owner_references = Some(vec![owner]);
        self
    }

    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.spec().node_selector.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
        self
    }

    pub fn toleration(mut self, key: &str, operator: &str, value: &str, effect: &str) -> Self {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let t = Toleration {
            key: opt(key),
            operator: opt(operator),
            value: opt(value),
            effect: opt(effect),
            ..Default::default()
        };
        self.spec().tolerations.get_or_insert_with(Vec::new).push(t);
        self
    }

    pub fn host_port(mut self, port: i32, ip: Option<&str>, protocol: Option<&str>) -> Self {
        let p = ContainerPort {
            container_port: port,
            host_port: Some(port),
            host_ip: ip.map(str::to_string),
            protocol: protocol.map(str::to_string),
            ..Default::default()
        };
        self.spec().containers[0].ports.get_or_insert_with(Vec::new).push(p);
        self
    }

    /// Adds a required node affinity term (terms are ORed).
    pub fn required_term(mut self, exprs: Vec<NodeSelectorRequirement>) -> Self {
        let na = self.affinity().node_affinity.get_or_insert_with(NodeAffinity::default);
        let selector = na.required_during_scheduling_ignored_during_execution.get_or_insert_with(NodeSelector::default);
        selector.node_selector_terms.push(NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None });
        self
    }

    pub fn preferred_term(mut self, weight: i32, exprs: Vec<NodeSelectorRequirement>) -> Self {
        let na = self.affinity().node_affinity.get_or_insert_with(NodeAffinity::default);
        let preference = NodeSelectorTerm { match_expressions: Some(exprs), match_fields: None };
        na.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(PreferredSchedulingTerm { preference, weight });
        self
    }

    pub fn anti_affinity(mut self, term: PodAffinityTerm) -> Self {
        let anti = self.affinity().pod_anti_affinity.get_or_insert_with(PodAntiAffinity::default);
        anti.required_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term);
        self
    }

    pub fn pod_affinity(mut self, term: PodAffinityTerm) -> Self {
        let affinity = self.affinity().pod_affinity.get_or_insert_with(PodAffinity::default);
        affinity.required_during_scheduling_ignored_during_execution.get_or_insert_with(Vec::new).push(term);
        self
    }

    pub fn claim(mut self, volume: &str, claim: &str) -> Self {
        let source = PersistentVolumeClaimVolumeSource { claim_name: claim.into(), read_only: None };
        let v = Volume { name: volume.into(), persistent_volume_claim: Some(source), ..Default::default() };
        self.spec().volumes.get_or_insert_with(Vec::new).push(v);
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}
