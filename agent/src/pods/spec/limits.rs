//! The runtime-facing parts of a container's `resources` and `securityContext`.
//!
//! Invariants:
//! - Limits are passed on exactly as written (`limits.cpu` in millicores, rounded up;
//!   `limits.memory` in bytes); requests only schedule, except `requests.cpu`, which a
//!   runtime may turn into CPU shares.
//! - The pod's `securityContext.runAsUser`/`runAsGroup` are defaults that a container's
//!   own `securityContext` overrides, as upstream merges them.
//! - A privileged container is refused unless the node allows it, so a runtime never sees
//!   `privileged: true` on a node that did not opt in.

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::quantity::Quantity;
use crate::runtime::{Resources, Security};

/// The message a refused privileged container waits with.
pub const PRIVILEGED_REFUSED: &str =
    "privileged containers are not allowed on this node (start the agent with --allow-privileged)";

/// `resources.limits` and `requests.cpu` of `container`; `Err` names a malformed quantity.
pub fn resources(container: &Container) -> Result<Resources, String> {
    let r = container.resources.as_ref();
    let limits = r.and_then(|r| r.limits.as_ref());
    let requests = r.and_then(|r| r.requests.as_ref());
    let get = |map: Option<&std::collections::BTreeMap<String, K8sQuantity>>, key: &str| {
        map.and_then(|m| m.get(key)).map(|q| Quantity::parse(&q.0).map_err(|e| format!("resources.{key}: {e}")))
    };
    let non_negative = |v: i128| u64::try_from(v.max(0)).unwrap_or(u64::MAX);
    Ok(Resources {
        cpu_millis: get(limits, "cpu").transpose()?.map(|q| non_negative(q.milli_value())),
        memory_bytes: get(limits, "memory").transpose()?.map(|q| non_negative(q.value())),
        cpu_request_millis: get(requests, "cpu").transpose()?.map(|q| non_negative(q.milli_value())),
    })
}

/// The merged security settings of `container` in `pod`; `Err` when it asks to be
/// privileged and `allow_privileged` is false.
pub fn security(pod: &Pod, container: &Container, allow_privileged: bool) -> Result<Security, String> {
    let pod_level = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let own = container.security_context.as_ref();
    let privileged = own.and_then(|s| s.privileged).unwrap_or(false);
    if privileged && !allow_privileged {
        return Err(PRIVILEGED_REFUSED.to_string());
    }
    Ok(Security {
        run_as_user: own.and_then(|s| s.run_as_user).or_else(|| pod_level.and_then(|s| s.run_as_user)),
        run_as_group: own.and_then(|s| s.run_as_group).or_else(|| pod_level.and_then(|s| s.run_as_group)),
        read_only_root_filesystem: own.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        privileged,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext};

    use super::*;

    fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, K8sQuantity>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), K8sQuantity(v.to_string()))).collect())
    }

    #[test]
    fn limits_and_the_cpu_request_are_converted() {
        let c = Container {
            resources: Some(ResourceRequirements {
                limits: quantities(&[("cpu", "1.5"), ("memory", "128Mi")]),
                requests: quantities(&[("cpu", "250m"), ("memory", "64Mi")]),
                ..Default::default()
            }),
            ..Container::default()
        };
        let r = resources(&c).unwrap();
        assert_eq!(
            r,
            Resources { cpu_millis: Some(1500), memory_bytes: Some(128 << 20), cpu_request_millis: Some(250) }
        );
        assert_eq!(resources(&Container::default()).unwrap(), Resources::default());
        let bad = Container {
            resources: Some(ResourceRequirements { limits: quantities(&[("memory", "lots")]), ..Default::default() }),
            ..Container::default()
        };
        assert!(resources(&bad).unwrap_err().contains("resources.memory"));
    }

    #[test]
    fn the_container_context_overrides_the_pod_and_privileged_needs_permission() {
        let pod_ctx = PodSecurityContext { run_as_user: Some(1000), run_as_group: Some(2000), ..Default::default() };
        let pod =
            Pod { spec: Some(PodSpec { security_context: Some(pod_ctx), ..PodSpec::default() }), ..Pod::default() };
        let plain = Container::default();
        let s = security(&pod, &plain, false).unwrap();
        assert_eq!((s.run_as_user, s.run_as_group, s.privileged), (Some(1000), Some(2000), false));
        let own = Container {
            security_context: Some(SecurityContext {
                run_as_user: Some(0),
                read_only_root_filesystem: Some(true),
                privileged: Some(true),
                ..Default::default()
            }),
            ..Container::default()
        };
        assert_eq!(security(&pod, &own, false).unwrap_err(), PRIVILEGED_REFUSED);
        let s = security(&pod, &own, true).unwrap();
        assert_eq!(
            s,
            Security {
                run_as_user: Some(0),
                run_as_group: Some(2000),
                read_only_root_filesystem: true,
                privileged: true
            }
        );
    }
}
