//! Object builders for the volume module's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    PersistentVolumeStatus, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub fn strings(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

fn storage(size: &str) -> Option<BTreeMap<String, Quantity>> {
    Some(BTreeMap::from([("storage".to_string(), Quantity(size.into()))]))
}

/// An Available volume `name` of `size`, class `class`, access modes `modes`.
pub fn pv(name: &str, size: &str, class: &str, modes: &[&str]) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta { name: Some(name.into()), uid: Some(format!("uid-{name}")), ..Default::default() },
        spec: Some(PersistentVolumeSpec {
            capacity: storage(size),
            access_modes: strings(modes),
            storage_class_name: (!class.is_empty()).then(|| class.to_string()),
            persistent_volume_reclaim_policy: Some("Retain".into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus { phase: Some("Available".into()), ..Default::default() }),
    }
}

/// A claim `ns/name` (uid `uid-<name>`) asking for `size` of class `class` (None: unset).
pub fn pvc(name: &str, size: &str, class: Option<&str>, modes: &[&str]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: strings(modes),
            resources: Some(VolumeResourceRequirements { requests: storage(size), ..Default::default() }),
            storage_class_name: class.map(String::from),
            ..Default::default()
        }),
        status: None,
    }
}

/// `pv` with its claimRef naming `claim` (with its uid when `with_uid`).
pub fn claimed(mut pv: PersistentVolume, claim: &PersistentVolumeClaim, with_uid: bool) -> PersistentVolume {
    pv.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
        kind: Some("PersistentVolumeClaim".into()),
        namespace: claim.metadata.namespace.clone(),
        name: claim.metadata.name.clone(),
        uid: if with_uid { claim.metadata.uid.clone() } else { None },
        ..Default::default()
    });
    pv
}

pub fn with_phase(mut pv: PersistentVolume, phase: &str) -> PersistentVolume {
    pv.status.get_or_insert_with(Default::default).phase = Some(phase.into());
    pv
}

pub fn annotate<K: k8s_openapi::Metadata<Ty = ObjectMeta>>(mut obj: K, key: &str, value: &str) -> K {
    obj.metadata_mut().annotations.get_or_insert_with(BTreeMap::new).insert(key.into(), value.into());
    obj
}

/// A StorageClass `name` with `provisioner` and binding `mode`.
pub fn class(name: &str, provisioner: &str, mode: &str) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        provisioner: provisioner.into(),
        volume_binding_mode: Some(mode.into()),
        reclaim_policy: Some("Delete".into()),
        ..Default::default()
    }
}
