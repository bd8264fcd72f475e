//! Resource amounts: what a pod requests and what a node can give.
//!
//! A pod's request follows upstream's `resource.PodRequests`: the sum over its containers,
//! plus restartable ("sidecar") init containers, which keep running; then the maximum with
//! each ordinary init container (which runs alone, next to the sidecars started before it);
//! then `spec.overhead`. The same rule with 100m CPU / 200Mi memory put in for a missing
//! request gives the *non-zero* request that the least-allocated score uses, so that pods
//! without requests still spread (upstream's `NonMissingContainerRequests`).
//!
//! A quantity that does not parse counts as zero: the API server validates quantities, and
//! a scheduler that refused a pod over one bad field would leave it pending with no reason.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{parse_milli, parse_units};

/// CPU assumed for a container without a CPU request when scoring (upstream default).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container without a memory request when scoring (upstream default).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of every resource the scheduler accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
    /// Bytes.
    pub ephemeral_storage: i64,
    /// Extended and hugepages resources by name, in whole units; zero entries are dropped.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list (`requests`, `allocatable`, `overhead`). `pods` is not a
    /// request and is read separately from allocatable.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut out = Resources::default();
        for (name, quantity) in list {
            let text = quantity.0.as_str();
            match name.as_str() {
                "cpu" => out.milli_cpu = parse_milli(text).unwrap_or(0),
                "memory" => out.memory = parse_units(text).unwrap_or(0),
                "ephemeral-storage" => out.ephemeral_storage = parse_units(text).unwrap_or(0),
                "pods" => {}
                _ => {
                    let value = parse_units(text).unwrap_or(0);
                    if value != 0 {
                        out.scalar.insert(name.clone(), value);
                    }
                }
            }
        }
        out
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_insert(0);
            *slot = slot.saturating_add(*value);
        }
    }

    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            if let Some(slot) = self.scalar.get_mut(name) {
                *slot = slot.saturating_sub(*value);
                if *slot == 0 {
                    self.scalar.remove(name);
                }
            }
        }
    }

    /// Raises every amount to at least `other`'s.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, value) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_insert(0);
            *slot = (*slot).max(*value);
        }
    }

    /// True when nothing is requested (upstream skips the resource checks then).
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.is_empty()
    }

    /// The amount of a scalar resource, zero when absent.
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.get(name).copied().unwrap_or(0)
    }
}

/// What one pod asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// The requests as written (plus init-container maxima and overhead): what must fit.
    pub actual: Resources,
    /// CPU for scoring, with the default put in for containers that request none.
    pub non_zero_milli_cpu: i64,
    /// Memory for scoring, with the default put in for containers that request none.
    pub non_zero_memory: i64,
}

impl PodRequests {
    pub fn of(spec: &PodSpec) -> Self {
        let actual = pod_total(spec, false);
        let non_zero = pod_total(spec, true);
        PodRequests { actual, non_zero_milli_cpu: non_zero.milli_cpu, non_zero_memory: non_zero.memory }
    }
}

fn container_requests(container: &Container, non_zero: bool) -> Resources {
    let list = container.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut out = list.map(Resources::from_list).unwrap_or_default();
    if non_zero {
        if !list.is_some_and(|l| l.contains_key("cpu")) {
            out.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.is_some_and(|l| l.contains_key("memory")) {
            out.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    out
}

fn pod_total(spec: &PodSpec, non_zero: bool) -> Resources {
    let mut total = Resources::default();
    for container in &spec.containers {
        total.add(&container_requests(container, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for init in spec.init_containers.iter().flatten() {
        let requests = container_requests(init, non_zero);
        if init.restart_policy.as_deref() == Some("Always") {
            total.add(&requests);
            sidecars.add(&requests);
            init_peak.max_with(&sidecars);
        } else {
            let mut running = requests;
            running.add(&sidecars);
            init_peak.max_with(&running);
        }
    }
    total.max_with(&init_peak);
    if let Some(overhead) = &spec.overhead {
        total.add(&Resources::from_list(overhead));
    }
    total
}

/// What a node offers: `status.allocatable`, or `status.capacity` for a node that reports
/// no allocatable (simulated nodes often set only one of them).
pub fn node_allocatable(node: &Node) -> (Resources, i64) {
    let status = node.status.as_ref();
    let list = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
    let Some(list) = list else { return (Resources::default(), 0) };
    let pods = list.get("pods").and_then(|q| parse_units(&q.0).ok()).unwrap_or(0);
    (Resources::from_list(list), pods)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeStatus, ResourceRequirements};

    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect()
    }

    fn container(requests: &[(&str, &str)], restart_policy: Option<&str>) -> Container {
        let requests = (!requests.is_empty()).then(|| list(requests));
        Container {
            resources: Some(ResourceRequirements { requests, ..Default::default() }),
            restart_policy: restart_policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn containers_are_summed_and_parsed() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "250m"), ("memory", "64Mi")], None),
                container(&[("cpu", "1.5"), ("memory", "1G"), ("nvidia.com/gpu", "1")], None),
            ],
            ..Default::default()
        };
        let r = PodRequests::of(&spec);
        assert_eq!(r.actual.milli_cpu, 1750);
        assert_eq!(r.actual.memory, 64 * 1024 * 1024 + 1_000_000_000);
        assert_eq!(r.actual.scalar("nvidia.com/gpu"), 1);
        assert_eq!((r.non_zero_milli_cpu, r.non_zero_memory), (1750, r.actual.memory));
    }

    #[test]
    fn init_containers_count_by_their_peak_and_sidecars_add_up() {
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "500m")], None)],
            init_containers: Some(vec![
                container(&[("cpu", "2")], None),
                container(&[("cpu", "100m")], Some("Always")),
                container(&[("cpu", "1")], None),
            ]),
            overhead: Some(list(&[("cpu", "10m")])),
            ..Default::default()
        };
        // Running: 500m + sidecar 100m = 600m. Init peaks: 2000m alone; 100m sidecar; 1000m +
        // 100m sidecar. Max = 2000m, plus 10m overhead.
        assert_eq!(PodRequests::of(&spec).actual.milli_cpu, 2010);
    }

    #[test]
    fn missing_requests_get_defaults_only_for_scoring() {
        let spec = PodSpec {
            containers: vec![container(&[], None), container(&[("cpu", "0"), ("memory", "1Mi")], None)],
            ..Default::default()
        };
        let r = PodRequests::of(&spec);
        assert!(r.actual.milli_cpu == 0 && r.actual.memory == 1024 * 1024);
        // The first container requests nothing: defaults. The second's explicit 0 stays 0.
        assert_eq!(r.non_zero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(r.non_zero_memory, DEFAULT_MEMORY_REQUEST + 1024 * 1024);
    }

    #[test]
    fn unparseable_quantities_count_as_zero() {
        let spec = PodSpec { containers: vec![container(&[("cpu", "lots")], None)], ..Default::default() };
        assert_eq!(PodRequests::of(&spec).actual.milli_cpu, 0);
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let mut node = Node {
            status: Some(NodeStatus { capacity: Some(list(&[("cpu", "4"), ("pods", "110")])), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(node_allocatable(&node).0.milli_cpu, 4000);
        assert_eq!(node_allocatable(&node).1, 110);
        node.status.as_mut().unwrap().allocatable = Some(list(&[("cpu", "3500m"), ("memory", "2Gi")]));
        let (res, pods) = node_allocatable(&node);
        assert_eq!((res.milli_cpu, res.memory, pods), (3500, 2 << 30, 0));
        assert_eq!(node_allocatable(&Node::default()), (Resources::default(), 0));
    }

    #[test]
    fn add_and_subtract_round_trip() {
        let mut a = Resources::from_list(&list(&[("cpu", "1"), ("example.com/foo", "3")]));
        let b = Resources::from_list(&list(&[("cpu", "250m"), ("example.com/foo", "3"), ("memory", "1Ki")]));
        let before = a.clone();
        a.add(&b);
        assert_eq!((a.milli_cpu, a.memory, a.scalar("example.com/foo")), (1250, 1024, 6));
        a.subtract(&b);
        assert_eq!(a, before);
    }
}
