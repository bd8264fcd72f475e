//! A StatefulSet's pods and claims as pure values: names, ordinals and identity (the pod
//! states the controller decides on are [`crate::pod`]'s). No I/O.
//!
//! Invariants (upstream's):
//! - Pod `<set>-<ordinal>` exists for each ordinal in `[start, start + replicas)`; it is the
//!   only pod with that name, so identity survives rescheduling: hostname `<set>-<ordinal>`,
//!   subdomain `spec.serviceName`, labels `statefulset.kubernetes.io/pod-name` and
//!   `apps.kubernetes.io/pod-index`, and `controller-revision-hash` = the revision's name.
//! - Claim `<template>-<set>-<ordinal>` belongs to ordinal `ordinal` for good: a pod
//!   recreated under the same name mounts the same claim.
//! - A pod name is accepted as the set's only in its canonical form (`web-01` is not
//!   ordinal 1 of `web`), so one ordinal never has two pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::history::REVISION_HASH_LABEL;
use crate::pod;

/// The label naming a StatefulSet pod (so a Service can select exactly one).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label holding a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// `<set>-<ordinal>`.
pub fn pod_name(set: &str, ordinal: i32) -> String {
    format!("{set}-{ordinal}")
}

/// The ordinal of pod `pod` of set `set`, if the name is `<set>-<ordinal>` exactly.
pub fn ordinal_of(set: &str, pod: &str) -> Option<i32> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    let ordinal: i32 = digits.parse().ok().filter(|n| *n >= 0)?;
    (pod_name(set, ordinal) == pod).then_some(ordinal)
}

/// `<template>-<set>-<ordinal>`: the claim of `ordinal` from the volume claim template.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or_default()
}

/// `spec.ordinals.start` (0 when unset).
pub fn start(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0)
}

/// `spec.replicas` (1 when unset, as defaulted).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// Whether `ordinal` is one the set should have a pod for.
pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start(set);
    ordinal >= start && ordinal < start.saturating_add(replicas(set))
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL).map(String::as_str)
}

/// The claims ordinal `ordinal` mounts, one per volume claim template: the template with the
/// per-ordinal name, the set's namespace, and the selector's labels added.
pub fn claims(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let Some(spec) = set.spec.as_ref() else { return Vec::new() };
    let selector_labels = spec.selector.match_labels.clone().unwrap_or_default();
    spec.volume_claim_templates
        .iter()
        .flatten()
        .map(|t| {
            let template = t.metadata.name.as_deref().unwrap_or_default();
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(selector_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(template, name(set), ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// Pod `ordinal` of `set` from `template` (the template of revision `revision`): identity,
/// claim volumes (replacing template volumes of the same name), controller reference.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ordinal: i32, revision: &str) -> Pod {
    let pod_name = pod_name(name(set), ordinal);
    let mut pod = pod::from_template(template, set);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name.clone());
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(REVISION_HASH_LABEL.into(), revision.to_string());
    let mut spec = pod.spec.take().unwrap_or_default();
    spec.hostname = Some(pod_name.clone());
    spec.subdomain = set.spec.as_ref().and_then(|s| s.service_name.clone()).filter(|s| !s.is_empty());
    let templates = set.spec.as_ref().and_then(|s| s.volume_claim_templates.as_deref()).unwrap_or(&[]);
    let mut volumes: Vec<Volume> = templates
        .iter()
        .map(|t| {
            let template = t.metadata.name.clone().unwrap_or_default();
            Volume {
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim_name(&template, name(set), ordinal),
                    read_only: None,
                }),
                name: template,
                ..Default::default()
            }
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !volumes.iter().any(|c| c.name == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    pod.spec = Some(spec);
    pod
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
