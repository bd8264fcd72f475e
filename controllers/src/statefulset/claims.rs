//! A StatefulSet's PersistentVolumeClaims: created before the pod that mounts them, kept
//! across pod deletion and recreation, and owned per the claim retention policy.
//!
//! Retention (`persistentVolumeClaimRetentionPolicy`, both fields default `Retain`), by the
//! ownerReferences upstream puts on each claim so the garbage collector does the deleting:
//! - `whenDeleted: Delete`: the claim is controlled by the set (deleted with it);
//! - `whenScaled: Delete`: the claim of an ordinal outside the range is controlled by its
//!   pod (deleted once the scaled-down pod is gone); with both `Delete`, an ordinal in
//!   range keeps the set reference;
//! - `Retain` for both: neither reference.
//!
//! Invariants: references to this set and pod are rewritten only; a claim controlled by
//! anything else keeps that controller and gets none of ours (upstream's "unexpected
//! controller" rule). A claim being deleted is never reused: its pod is not created
//! until the claim is gone and made afresh.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::Resource;

use crate::runtime::owner::controller_reference;

/// `Delete` for the retention policy field `field`; anything else (the default) retains.
fn deletes(
    set: &StatefulSet,
    field: fn(&k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy) -> Option<&String>,
) -> bool {
    let policy = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    policy.and_then(field).map(String::as_str) == Some("Delete")
}

fn refers_to(r: &OwnerReference, kind: &str, name: Option<&String>, uid: Option<&String>) -> bool {
    Some(&r.uid) == uid || (r.kind == kind && Some(&r.name) == name)
}

/// The ownerReferences a claim of `pod` (of `set`) should have, from its current ones;
/// `scaled_down` says the pod's ordinal is outside the set's range.
pub fn owner_refs(set: &StatefulSet, pod: &Pod, scaled_down: bool, current: &[OwnerReference]) -> Vec<OwnerReference> {
    let ours = |r: &OwnerReference| {
        refers_to(r, StatefulSet::KIND, set.metadata.name.as_ref(), set.metadata.uid.as_ref())
            || refers_to(r, Pod::KIND, pod.metadata.name.as_ref(), pod.metadata.uid.as_ref())
    };
    let mut refs: Vec<OwnerReference> = current.iter().filter(|r| !ours(r)).cloned().collect();
    if refs.iter().any(|r| r.controller == Some(true)) {
        return refs;
    }
    let when_deleted = deletes(set, |p| p.when_deleted.as_ref());
    let when_scaled = deletes(set, |p| p.when_scaled.as_ref());
    if when_scaled && scaled_down {
        refs.push(controller_reference(pod));
    } else if when_deleted {
        refs.push(controller_reference(set));
    }
    refs
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn set(when_deleted: &str, when_scaled: &str) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta { name: Some("web".into()), uid: Some("sts-uid".into()), ..Default::default() },
            spec: Some(StatefulSetSpec {
                persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(when_deleted.into()),
                    when_scaled: Some(when_scaled.into()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some("web-2".into()), uid: Some("pod-uid".into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn uids(refs: &[OwnerReference]) -> Vec<&str> {
        refs.iter().map(|r| r.uid.as_str()).collect()
    }

    #[test]
    fn each_policy_gives_upstreams_references() {
        let p = pod();
        for (deleted, scaled, in_range, scaled_down) in [
            ("Retain", "Retain", vec![], vec![]),
            ("Delete", "Retain", vec!["sts-uid"], vec!["sts-uid"]),
            ("Retain", "Delete", vec![], vec!["pod-uid"]),
            ("Delete", "Delete", vec!["sts-uid"], vec!["pod-uid"]),
        ] {
            let s = set(deleted, scaled);
            assert_eq!(uids(&owner_refs(&s, &p, false, &[])), in_range, "{deleted}/{scaled} in range");
            assert_eq!(uids(&owner_refs(&s, &p, true, &[])), scaled_down, "{deleted}/{scaled} scaled down");
        }
        let refs = owner_refs(&set("Delete", "Retain"), &p, false, &[]);
        assert_eq!((refs[0].kind.as_str(), refs[0].controller), ("StatefulSet", Some(true)));
    }

    #[test]
    fn stale_references_are_replaced_and_a_foreign_controller_is_respected() {
        let p = pod();
        let s = set("Retain", "Delete");
        let stale =
            OwnerReference { kind: "Pod".into(), name: "web-2".into(), uid: "old-uid".into(), ..Default::default() };
        let other =
            OwnerReference { kind: "ConfigMap".into(), name: "x".into(), uid: "cm".into(), ..Default::default() };
        assert_eq!(uids(&owner_refs(&s, &p, true, &[stale.clone(), other.clone()])), ["cm", "pod-uid"]);
        assert_eq!(uids(&owner_refs(&s, &p, false, &[stale])), Vec::<&str>::new(), "back in range: released");
        let foreign = OwnerReference { controller: Some(true), ..other };
        assert_eq!(uids(&owner_refs(&s, &p, true, &[foreign])), ["cm"]);
    }
}
