//! Downward API values: `fieldRef` (the pod's own fields) and `resourceFieldRef` (a
//! container's requests and limits), for env vars and `downwardAPI` volume files alike.
//!
//! Invariants:
//! - Values are computed from the Pod as the agent last saw it plus what only the node
//!   knows (pod and host IPs, allocatable); nothing here does I/O.
//! - An unset limit reads as the node's allocatable amount, like the kubelet, so a
//!   container can size itself to what it may really use.
//! - Values round up to whole divisors (`1.5` CPUs with divisor `1` reads `2`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};

use crate::pods::spec::quantity::Quantity;

/// What the node knows about a pod that the Pod object may not show yet.
#[derive(Debug, Clone, Default)]
pub struct NodeFacts {
    /// The pod's IPs, the primary first (its sandbox's address).
    pub pod_ips: Vec<String>,
    pub host_ip: String,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`).
    pub allocatable: BTreeMap<String, Quantity>,
}

/// The value of `selector.fieldPath` for `pod`; `Err` says why there is none.
pub fn pod_field(pod: &Pod, selector: &ObjectFieldSelector, facts: &NodeFacts) -> Result<String, String> {
    let path = selector.field_path.as_str();
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some((map, key)) = subscript(path) {
        let source = match map {
            "metadata.labels" => meta.labels.as_ref(),
            "metadata.annotations" => meta.annotations.as_ref(),
            _ => return Err(format!("unsupported fieldPath: {path}")),
        };
        return Ok(source.and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => facts.host_ip.clone(),
        "status.hostIPs" => facts.host_ip.clone(),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        _ => return Err(format!("unsupported fieldPath: {path}")),
    };
    Ok(value)
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn subscript(path: &str) -> Option<(&str, &str)> {
    let (map, rest) = path.split_once("['")?;
    Some((map, rest.strip_suffix("']")?))
}

/// A label or annotation map as downward API files show it: `key="value"` lines, sorted,
/// values quoted the way Go's `%q` does.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    let lines: Vec<String> = map.into_iter().flatten().map(|(k, v)| format!("{k}={}", quote(v))).collect();
    lines.join("\n")
}

fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of `selector` for container `own` of `pod` (`selector.containerName`, when
/// set, names another container of the pod); `Err` says why there is none.
pub fn resource(
    pod: &Pod,
    own: Option<&Container>,
    selector: &ResourceFieldSelector,
    facts: &NodeFacts,
) -> Result<String, String> {
    let container = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => {
            let spec = pod.spec.as_ref();
            let all = spec.into_iter().flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()));
            all.clone().find(|c| c.name == name).ok_or_else(|| format!("container {name:?} not found in the pod"))?
        }
        None => own.ok_or_else(|| "resourceFieldRef needs a containerName here".to_string())?,
    };
    let (kind, name) = selector.resource.split_once('.').ok_or_else(|| unsupported(&selector.resource))?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") || !matches!(kind, "limits" | "requests") {
        return Err(unsupported(&selector.resource));
    }
    let amount = amount(container, kind, name, facts)?;
    let divisor = match &selector.divisor {
        Some(d) => Quantity::parse(&d.0)?,
        None => Quantity::from_units(1),
    };
    let divisor = if divisor.is_zero() { Quantity::from_units(1) } else { divisor };
    let value = if name == "cpu" {
        ceil_div(amount.milli_value(), divisor.milli_value())
    } else {
        ceil_div(amount.value(), divisor.value())
    };
    Ok(value.to_string())
}

fn unsupported(resource: &str) -> String {
    format!("unsupported container resource: {resource}")
}

/// The container's `kind` (limits/requests) of `name`: an unset limit is the node's
/// allocatable; an unset request is the limit if one is set (API defaulting), else 0.
fn amount(container: &Container, kind: &str, name: &str, facts: &NodeFacts) -> Result<Quantity, String> {
    let r = container.resources.as_ref();
    let get = |which: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
        which.and_then(|m| m.get(name)).map(|q| Quantity::parse(&q.0)).transpose()
    };
    let limit = get(r.and_then(|r| r.limits.as_ref()))?;
    if kind == "requests" {
        return Ok(get(r.and_then(|r| r.requests.as_ref()))?.or(limit).unwrap_or(Quantity::from_units(0)));
    }
    match limit {
        Some(l) => Ok(l),
        None => facts.allocatable.get(name).copied().ok_or_else(|| format!("the node's allocatable {name} is unknown")),
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b <= 0 {
        return a;
    }
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        let app = Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: Some([("cpu".to_string(), K8sQuantity("1500m".into()))].into()),
                requests: Some([("memory".to_string(), K8sQuantity("64Mi".into()))].into()),
                ..Default::default()
            }),
            ..Container::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string()), ("tier".to_string(), "a\"b".to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![app],
                node_name: Some("n1".into()),
                service_account_name: Some("default".into()),
                ..PodSpec::default()
            }),
            status: None,
        }
    }

    fn facts() -> NodeFacts {
        NodeFacts {
            pod_ips: vec!["10.0.0.5".into(), "fd00::5".into()],
            host_ip: "192.0.2.1".into(),
            allocatable: [
                ("cpu".to_string(), Quantity::parse("4").unwrap()),
                ("memory".to_string(), Quantity::parse("8Gi").unwrap()),
            ]
            .into(),
        }
    }

    fn field(path: &str) -> Result<String, String> {
        pod_field(&pod(), &ObjectFieldSelector { field_path: path.into(), api_version: None }, &facts())
    }

    #[test]
    fn pod_fields_read_metadata_spec_and_node_facts() {
        assert_eq!(field("metadata.name").unwrap(), "p");
        assert_eq!(field("metadata.namespace").unwrap(), "ns");
        assert_eq!(field("metadata.uid").unwrap(), "u-1");
        assert_eq!(field("metadata.labels['app']").unwrap(), "web");
        assert_eq!(field("metadata.labels['missing']").unwrap(), "");
        assert_eq!(field("metadata.labels").unwrap(), "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(field("spec.nodeName").unwrap(), "n1");
        assert_eq!(field("spec.serviceAccountName").unwrap(), "default");
        assert_eq!(field("status.podIP").unwrap(), "10.0.0.5");
        assert_eq!(field("status.podIPs").unwrap(), "10.0.0.5,fd00::5");
        assert_eq!(field("status.hostIP").unwrap(), "192.0.2.1");
        assert_eq!(field("spec.bogus").unwrap_err(), "unsupported fieldPath: spec.bogus");
    }

    fn res(resource: &str, divisor: Option<&str>) -> Result<String, String> {
        let p = pod();
        let selector = ResourceFieldSelector {
            container_name: None,
            resource: resource.into(),
            divisor: divisor.map(|d| K8sQuantity(d.into())),
        };
        resource_of(&p, &selector)
    }

    fn resource_of(p: &Pod, selector: &ResourceFieldSelector) -> Result<String, String> {
        resource(p, p.spec.as_ref().map(|s| &s.containers[0]), selector, &facts())
    }

    #[test]
    fn resources_round_up_by_divisor_and_unset_limits_are_allocatable() {
        assert_eq!(res("limits.cpu", None).unwrap(), "2", "1.5 cores round up");
        assert_eq!(res("limits.cpu", Some("1m")).unwrap(), "1500");
        assert_eq!(res("requests.cpu", Some("1m")).unwrap(), "1500", "an unset request is the limit");
        assert_eq!(res("limits.memory", Some("1Mi")).unwrap(), "8192", "no limit: allocatable");
        assert_eq!(res("requests.memory", Some("1Mi")).unwrap(), "64");
        assert_eq!(res("requests.memory", Some("0")).unwrap(), (64u64 << 20).to_string(), "divisor 0 is 1");
        assert!(res("limits.ephemeral-storage", None).unwrap_err().contains("allocatable"));
        assert!(res("limits.gpu", None).is_err());
        let named =
            ResourceFieldSelector { container_name: Some("nope".into()), resource: "limits.cpu".into(), divisor: None };
        assert!(resource_of(&pod(), &named).unwrap_err().contains("nope"));
    }
}
