//! Storage object in-use protection (upstream's pvc-protection and pv-protection
//! controllers) and the claim ↔ pod relation the binder also needs for its first consumer.
//!
//! - Every live claim gets the `kubernetes.io/pvc-protection` finalizer and every live
//!   volume `kubernetes.io/pv-protection` (upstream adds them at admission; here the
//!   controller adds them, so an object deleted before its first reconcile has none).
//! - A deleted claim keeps its finalizer while a pod that [`uses`] it is scheduled and not
//!   finished (phase Succeeded/Failed), as upstream: an unscheduled pod cannot start with a
//!   claim being deleted, so it does not hold it. The cache says "in use" cheaply; "not in
//!   use" is confirmed by a linearizable list of the namespace's pods before the finalizer
//!   goes, so a pod the cache has not shown yet is never overlooked.
//! - A deleted volume keeps its finalizer while it is Bound.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::pod;

/// Whether `pod` mounts the claim `name` (of the pod's namespace): a `persistentVolumeClaim`
/// volume naming it, or a generic ephemeral volume, whose claim is `<pod>-<volume>`.
pub fn uses(pod: &Pod, name: &str) -> bool {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    volumes.iter().any(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
        (Some(source), _) => source.claim_name == name,
        (None, Some(_)) => format!("{pod_name}-{}", v.name) == name,
        (None, None) => false,
    })
}

/// The claims `pod` mounts, by name.
pub fn claims_of(pod: &Pod) -> impl Iterator<Item = String> + '_ {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    volumes.iter().filter_map(move |v| match (&v.persistent_volume_claim, &v.ephemeral) {
        (Some(source), _) => Some(source.claim_name.clone()),
        (None, Some(_)) => Some(format!("{pod_name}-{}", v.name)),
        (None, None) => None,
    })
}

/// The node of `pod` if it is scheduled and not finished.
pub fn running_on(pod: &Pod) -> Option<&str> {
    let node = pod.spec.as_ref()?.node_name.as_deref().filter(|n| !n.is_empty())?;
    (!pod::is_finished(pod)).then_some(node)
}

/// The node of the first (by name) scheduled, unfinished pod among `pods` that uses `claim`.
pub fn consumer_node<'a>(pods: impl IntoIterator<Item = &'a Pod>, claim: &PersistentVolumeClaim) -> Option<String> {
    let name = claim.metadata.name.as_deref()?;
    pods.into_iter().filter(|p| uses(p, name)).find_map(running_on).map(String::from)
}

pub fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers.as_ref().is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// `meta` with `finalizer` added (when `add`) or removed.
pub fn set_finalizer(meta: &mut ObjectMeta, finalizer: &str, add: bool) {
    let list = meta.finalizers.get_or_insert_with(Vec::new);
    list.retain(|f| f != finalizer);
    if add {
        list.push(finalizer.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EphemeralVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec, PodStatus, Volume,
    };

    fn pod(name: &str, node: Option<&str>, phase: &str, volumes: Vec<Volume>) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(PodSpec { node_name: node.map(String::from), volumes: Some(volumes), ..Default::default() }),
            status: Some(PodStatus { phase: Some(phase.into()), ..Default::default() }),
        }
    }

    fn claim_volume(claim: &str) -> Volume {
        let source = PersistentVolumeClaimVolumeSource { claim_name: claim.into(), read_only: None };
        Volume { name: "data".into(), persistent_volume_claim: Some(source), ..Default::default() }
    }

    #[test]
    fn claims_are_found_by_name_and_for_ephemeral_volumes_by_pod_and_volume() {
        let eph =
            Volume { name: "scratch".into(), ephemeral: Some(EphemeralVolumeSource::default()), ..Default::default() };
        let p = pod("web-0", Some("n1"), "Running", vec![claim_volume("data"), eph]);
        assert!(uses(&p, "data") && uses(&p, "web-0-scratch") && !uses(&p, "scratch"));
        assert_eq!(claims_of(&p).collect::<Vec<_>>(), ["data", "web-0-scratch"]);
    }

    #[test]
    fn only_scheduled_unfinished_pods_consume() {
        let claim = crate::volume::fixtures::pvc("data", "1Gi", None, &["ReadWriteOnce"]);
        let pending = pod("a", None, "Pending", vec![claim_volume("data")]);
        let done = pod("b", Some("n1"), "Succeeded", vec![claim_volume("data")]);
        let other = pod("c", Some("n2"), "Running", vec![claim_volume("logs")]);
        let running = pod("d", Some("n3"), "Running", vec![claim_volume("data")]);
        assert_eq!(consumer_node([&pending, &done, &other], &claim), None);
        assert_eq!(consumer_node([&pending, &done, &other, &running], &claim).as_deref(), Some("n3"));
    }

    #[test]
    fn finalizers_are_added_once_and_removed() {
        let mut meta = ObjectMeta { finalizers: Some(vec!["x".into()]), ..Default::default() };
        set_finalizer(&mut meta, "p", true);
        set_finalizer(&mut meta, "p", true);
        assert_eq!(meta.finalizers.as_deref().unwrap(), ["x", "p"]);
        assert!(has_finalizer(&meta, "p"));
        set_finalizer(&mut meta, "p", false);
        assert_eq!(meta.finalizers.as_deref().unwrap(), ["x"]);
    }
}
