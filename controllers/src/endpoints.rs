//! The Endpoints controller: for every Service with a selector, an Endpoints object of the
//! same name listing the pods behind it.
//!
//! Data flow: informers on Services, Pods and Endpoints. A Service change queues its key; a
//! Pod change queues every Service of its namespace whose selector matches the pod before or
//! after the change; an Endpoints change queues its key only while a Service of that name
//! exists (a stray user-made Endpoints object is none of this controller's business).
//!
//! Reconcile of `ns/name`:
//! - Service gone: delete the Endpoints of that name (as upstream does), CAS on its
//!   resourceVersion.
//! - Service without a selector: nothing (its Endpoints are managed by the user).
//! - Otherwise compute the desired subsets: each selected pod with a `status.podIP`, not
//!   terminating and not finished, contributes one address (ip, nodeName, targetRef) to
//!   `addresses` when Ready (condition Ready=True, or `publishNotReadyAddresses`) and to
//!   `notReadyAddresses` otherwise, under the ports it resolves (a numeric `targetPort` as
//!   is, a named one through the pod's container ports; a pod lacking the name is left out
//!   of that port). Addresses with equal port sets share one subset.
//! - Create the Endpoints when missing; update it (CAS on the cached resourceVersion) only
//!   when its normalised subsets or labels differ. A stale cache makes the write fail with a
//!   conflict, and the runtime retries with backoff.
//!
//! Desired state is built in a canonical order (ports, addresses and subsets sorted), and
//! the stored state is normalised the same way before comparing, so an unchanged cluster
//! causes no writes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::leadership::{Component, LeaderContext};
use crate::pod;
use crate::runtime::{Action, Change, Controller, ControllerConfig, Key, Reconciler, Store};

/// Label upstream sets on the Endpoints of a headless Service (clusterIP None).
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The leader-only component: informers plus the controller, until leadership ends.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| run(ctx).boxed())
}

async fn run(ctx: LeaderContext) {
    let (svc_store, pod_store, ep_store) =
        (ctx.informers.store::<Service>(), ctx.informers.store::<Pod>(), ctx.informers.store::<Endpoints>());
    let reconciler = EndpointsReconciler {
        services: svc_store.clone(),
        pods: pod_store.clone(),
        endpoints: ep_store.clone(),
        client: ctx.client.clone(),
    };
    let by_pod = svc_store.clone();
    let by_endpoints = svc_store.clone();
    let controller = Controller::new("endpoints", reconciler, &svc_store, ControllerConfig::default())
        .watches(&pod_store, move |change| services_selecting(&by_pod, change))
        .watches(&ep_store, move |change: &Change<Endpoints>| {
            by_endpoints.get_key(&change.key).map(|_| change.key.clone()).into_iter().collect()
        });
    controller.run(ctx.cancel.clone()).await;
}

/// The Services (in the pod's namespace) whose selector matches the pod before or after.
fn services_selecting(services: &Store<Service>, change: &Change<Pod>) -> Vec<Key> {
    let Some(ns) = change.key.namespace() else { return Vec::new() };
    let mut keys = BTreeSet::new();
    for svc in services.list_in(ns) {
        let Some(selector) = selector_of(&svc) else { continue };
        if change.objects().any(|pod| selects(selector, &pod.metadata)) {
            keys.insert(Key::of(svc.as_ref()));
        }
    }
    keys.into_iter().collect()
}

/// A Service's selector; an absent or empty one means "no selector" (user-managed).
fn selector_of(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

fn selects(selector: &BTreeMap<String, String>, meta: &ObjectMeta) -> bool {
    let labels = meta.labels.as_ref();
    selector.iter().all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Keeps each selecting Service's Endpoints current.
pub struct EndpointsReconciler {
    pub services: Store<Service>,
    pub pods: Store<Pod>,
    pub endpoints: Store<Endpoints>,
    pub client: Client,
}

impl Reconciler for EndpointsReconciler {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(ns) = key.namespace() else { return Ok(Action::Done) };
        let api = self.client.api::<Endpoints>(Some(ns));
        let current = self.endpoints.get_key(key);
        let Some(svc) = self.services.get_key(key) else {
            if let Some(ep) = current {
                let opts = DeleteOptions {
                    precondition_resource_version: ep.metadata.resource_version.clone(),
                    ..Default::default()
                };
                match api.delete(&key.name, &opts).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(Action::Done);
        };
        let Some(selector) = selector_of(&svc) else { return Ok(Action::Done) };
        let pods: Vec<Arc<Pod>> =
            self.pods.list_in(ns).into_iter().filter(|p| selects(selector, &p.metadata)).collect();
        let subsets = desired_subsets(&svc, &pods);
        let labels = desired_labels(&svc);
        match current {
            None => {
                let ep = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(key.name.clone()),
                        namespace: Some(ns.to_string()),
                        labels: (!labels.is_empty()).then_some(labels),
                        ..Default::default()
                    },
                    subsets: (!subsets.is_empty()).then_some(subsets),
                };
                api.create(&ep).await?;
            }
            Some(ep) => {
                let have_labels = ep.metadata.labels.clone().unwrap_or_default();
                if normalise(ep.subsets.clone().unwrap_or_default()) == subsets && have_labels == labels {
                    return Ok(Action::Done);
                }
                let mut ep = (*ep).clone();
                ep.metadata.labels = (!labels.is_empty()).then_some(labels);
                ep.subsets = (!subsets.is_empty()).then_some(subsets);
                // CAS on the cached resourceVersion: a stale cache conflicts and is retried.
                api.update(&key.name, &ep).await?;
            }
        }
        Ok(Action::Done)
    }
}

/// The Service's labels, plus the headless marker when it has no cluster IP (as upstream).
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    let headless = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None");
    if headless {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels
}

/// The pod's IP, if it is listed at all: it has one and is active (not terminating, not
/// finished).
fn listed(pod: &Pod) -> Option<&str> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref().filter(|ip| !ip.is_empty())?;
    pod::is_active(pod).then_some(ip)
}

/// The port a Service port reaches on `pod`: a number as is (the service port when unset),
/// a name through the pod's container ports; None when the pod has no such named port.
pub fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
            containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|cp| {
                let same =
                    cp.name.as_deref() == Some(name.as_str()) && cp.protocol.as_deref().unwrap_or("TCP") == protocol;
                same.then_some(cp.container_port)
            })
        }
    }
}

fn address(pod: &Pod, ip: &str, svc_name: &str) -> EndpointAddress {
    let spec = pod.spec.as_ref();
    // Upstream publishes the pod's hostname when its subdomain names this Service.
    let hostname = spec
        .filter(|s| s.subdomain.as_deref() == Some(svc_name))
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty());
    EndpointAddress {
        ip: ip.to_string(),
        hostname,
        node_name: spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    }
}

/// Sort key of an EndpointPort: (name, port, protocol).
type PortKey = (String, i32, String);

/// The subsets the Service's Endpoints should hold given the selected `pods`, canonical.
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
    let ports = spec.ports.unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    // Port set → (ready, not ready) addresses.
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for pod in pods {
        let Some(ip) = listed(pod) else { continue };
        let port_set: BTreeSet<PortKey> = ports
            .iter()
            .filter_map(|p| {
                let target = resolve_port(p, pod)?;
                Some((p.name.clone().unwrap_or_default(), target, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
            })
            .collect();
        // A pod that serves none of the ports is not an endpoint, except for a headless
        // Service that declares no ports (DNS only needs the addresses).
        if port_set.is_empty() && !(ports.is_empty() && headless) {
            continue;
        }
        let group = groups.entry(port_set.into_iter().collect()).or_default();
        let addr = address(pod, ip, svc_name);
        if publish_not_ready || pod::is_ready(pod) {
            group.0.push(addr);
        } else {
            group.1.push(addr);
        }
    }
    let subsets = groups.into_iter().map(|(ports, (ready, not_ready))| EndpointSubset {
        addresses: Some(ready),
        not_ready_addresses: Some(not_ready),
        ports: Some(
            ports
                .into_iter()
                .map(|(name, port, protocol)| EndpointPort {
                    name: (!name.is_empty()).then_some(name),
                    port,
                    protocol: Some(protocol),
                    app_protocol: None,
                })
                .collect(),
        ),
    });
    normalise(subsets.collect())
}

/// Canonical form: empty lists absent, addresses sorted by (ip, target name), ports by
/// (name, port, protocol), subsets by their ports; empty subsets dropped.
pub fn normalise(subsets: Vec<EndpointSubset>) -> Vec<EndpointSubset> {
    let addr_key = |a: &EndpointAddress| (a.ip.clone(), a.target_ref.as_ref().and_then(|r| r.name.clone()));
    let port_key =
        |p: &EndpointPort| (p.name.clone().unwrap_or_default(), p.port, p.protocol.clone().unwrap_or_default());
    let mut out: Vec<EndpointSubset> = subsets
        .into_iter()
        .map(|mut s| {
            let sorted = |v: Option<Vec<EndpointAddress>>| {
                let mut v = v.unwrap_or_default();
                v.sort_by_key(addr_key);
                (!v.is_empty()).then_some(v)
            };
            s.addresses = sorted(s.addresses);
            s.not_ready_addresses = sorted(s.not_ready_addresses);
            let mut ports = s.ports.unwrap_or_default();
            ports.sort_by_key(port_key);
            s.ports = (!ports.is_empty()).then_some(ports);
            s
        })
        .filter(|s| s.addresses.is_some() || s.not_ready_addresses.is_some())
        .collect();
    out.sort_by_key(|s| s.ports.iter().flatten().map(port_key).collect::<Vec<_>>());
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServiceSpec;
    use serde_json::json;

    use super::*;

    fn pod(name: &str, ip: Option<&str>, is_ready: bool, ports: &[(&str, i32)]) -> Arc<Pod> {
        let ports: Vec<_> = ports.iter().map(|(n, p)| json!({"name": n, "containerPort": p})).collect();
        let ready = if is_ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"name": "c", "ports": ports}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": ready}]},
            }))
            .expect("a valid pod"),
        )
    }

    fn service(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
            spec: Some(ServiceSpec { ports: Some(ports), ..Default::default() }),
            ..Default::default()
        }
    }

    fn port(name: &str, target: IntOrString) -> ServicePort {
        ServicePort { name: Some(name.into()), port: 80, target_port: Some(target), ..Default::default() }
    }

    fn ips(addrs: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addrs.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_split_and_pods_without_ip_are_left_out() {
        let svc = service(vec![port("http", IntOrString::Int(8080))]);
        let pods = [
            pod("b", Some("10.0.0.2"), true, &[]),
            pod("a", Some("10.0.0.1"), true, &[]),
            pod("c", Some("10.0.0.3"), false, &[]),
            pod("d", None, true, &[]),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.0.0.3"]);
        let ports = subsets[0].ports.clone().unwrap_or_default();
        assert_eq!(
            (ports[0].name.as_deref(), ports[0].port, ports[0].protocol.as_deref()),
            (Some("http"), 8080, Some("TCP"))
        );
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_group_pods_by_port_set() {
        let svc = service(vec![port("http", IntOrString::String("web".into()))]);
        let pods = [
            pod("a", Some("10.0.0.1"), true, &[("web", 8080)]),
            pod("b", Some("10.0.0.2"), true, &[("web", 9090)]),
            pod("c", Some("10.0.0.3"), true, &[("other", 1)]),
        ];
        let subsets = desired_subsets(&svc, &pods);
        let got: Vec<(i32, Vec<&str>)> =
            subsets.iter().map(|s| (s.ports.as_ref().unwrap()[0].port, ips(&s.addresses))).collect();
        assert_eq!(got, vec![(8080, vec!["10.0.0.1"]), (9090, vec!["10.0.0.2"])]);
    }

    #[test]
    fn normalising_a_stored_form_equals_the_desired_one() {
        let svc = service(vec![port("http", IntOrString::Int(8080)), port("admin", IntOrString::Int(9000))]);
        let pods = [pod("a", Some("10.0.0.1"), true, &[]), pod("b", Some("10.0.0.2"), false, &[])];
        let want = desired_subsets(&svc, &pods);
        let mut shuffled = want.clone();
        for s in &mut shuffled {
            s.ports.as_mut().unwrap().reverse();
            s.addresses.get_or_insert_with(Vec::new);
        }
        assert_eq!(normalise(shuffled), want);
    }
}
