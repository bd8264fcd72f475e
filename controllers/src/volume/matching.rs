//! Which PersistentVolume a claim may bind to (upstream's `findMatchingVolume`).
//!
//! Pure functions over cached objects. A volume *satisfies* a claim when its capacity is at
//! least the request, its access modes include every requested mode, and its volume mode
//! equals the claim's (Filesystem when unset). Among the volumes that satisfy a claim:
//! - one already pre-bound to it (`spec.claimRef` names the claim, with its uid or without
//!   one) wins outright, whatever its phase, class or labels: that is a binding someone
//!   (a user, a provisioner, or this controller before a restart) has begun;
//! - otherwise only Available volumes with no `claimRef`, of the claim's class (`""` matches
//!   only `""`), whose labels the claim's selector matches, and not being deleted count;
//!   the smallest capacity wins (ties: the first by name).
//!
//! Quantities are compared exactly, parsed by the apiserver's single quantity parser; a
//! quantity that does not parse never satisfies anything.

use std::sync::Arc;

use flotilla_apiserver::selector::LabelSelector;
use flotilla_apiserver::validation::quantity::Quantity;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

/// The annotation that predates `storageClassName` and still wins over it, for claims and
/// volumes alike.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The volume mode of a claim or volume that does not name one.
pub const FILESYSTEM: &str = "Filesystem";

/// The claim's class: the beta annotation, else `spec.storageClassName`; None when neither
/// is set (a claim the default class may still be given to). `Some("")` asks for no class.
pub fn claim_class(claim: &PersistentVolumeClaim) -> Option<&str> {
    let annotated = claim.metadata.annotations.as_ref().and_then(|a| a.get(BETA_STORAGE_CLASS));
    annotated.map(String::as_str).or_else(|| claim.spec.as_ref()?.storage_class_name.as_deref())
}

/// The volume's class (`""` when it has none).
pub fn volume_class(pv: &PersistentVolume) -> &str {
    let annotated = pv.metadata.annotations.as_ref().and_then(|a| a.get(BETA_STORAGE_CLASS));
    annotated.map(String::as_str).or_else(|| pv.spec.as_ref()?.storage_class_name.as_deref()).unwrap_or("")
}

/// The claim's storage request.
pub fn requested(claim: &PersistentVolumeClaim) -> Option<Quantity> {
    let requests = claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    Quantity::parse(&requests.get("storage")?.0).ok()
}

/// The volume's storage capacity.
pub fn capacity(pv: &PersistentVolume) -> Option<Quantity> {
    Quantity::parse(&pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?.0).ok()
}

/// The volume the claim names in `spec.volumeName` (None when empty).
pub fn volume_name(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim.spec.as_ref()?.volume_name.as_deref().filter(|n| !n.is_empty())
}

/// Whether `pv.spec.claimRef` names `claim`: same namespace and name, and the same uid or
/// none (a volume pre-bound by name to a claim not created yet).
pub fn is_bound_to(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return false };
    let ns = claim.metadata.namespace.as_deref();
    let same_name = r.name.as_deref() == claim.metadata.name.as_deref() && r.namespace.as_deref() == ns;
    let uid = r.uid.as_deref().filter(|u| !u.is_empty());
    same_name && (uid.is_none() || uid == claim.metadata.uid.as_deref())
}

/// Why `pv` cannot hold `claim` (capacity, access modes, volume mode); None when it can.
pub fn unsatisfied(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<String> {
    let (Some(spec), Some(want)) = (pv.spec.as_ref(), claim.spec.as_ref()) else {
        return Some("volume or claim has no spec".into());
    };
    match (capacity(pv), requested(claim)) {
        (Some(have), Some(need)) if have >= need => {}
        _ => return Some("requested PV is too small".into()),
    }
    let have_modes = spec.access_modes.as_deref().unwrap_or_default();
    if !want.access_modes.iter().flatten().all(|m| have_modes.contains(m)) {
        return Some("incompatible accessMode".into());
    }
    let mode = |m: &Option<String>| m.as_deref().unwrap_or(FILESYSTEM).to_string();
    if mode(&spec.volume_mode) != mode(&want.volume_mode) {
        return Some("incompatible volumeMode".into());
    }
    None
}

/// Why the claim's user-chosen volume (`spec.volumeName`, with no claimRef yet) cannot be
/// bound to it: [`unsatisfied`], or another class (upstream's `checkVolumeSatisfyClaim`).
pub fn cannot_bind_requested(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<String> {
    let class = claim_class(claim).unwrap_or("");
    if volume_class(pv) != class {
        return Some(format!("storageClassName does not match (volume {:?}, claim {class:?})", volume_class(pv)));
    }
    unsatisfied(pv, claim)
}

/// The volume `claim` should bind to, as the module doc describes. With `delay_binding`
/// (a WaitForFirstConsumer class) only a volume pre-bound to the claim is returned.
pub fn best_match(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    delay_binding: bool,
) -> Option<Arc<PersistentVolume>> {
    let class = claim_class(claim).unwrap_or("");
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => None,
        // An invalid selector selects nothing (validation should have refused it).
        Some(sel) => Some(serde_json::to_value(sel).ok().and_then(|v| LabelSelector::from_label_selector(&v).ok())?),
    };
    let mut best: Option<(Quantity, &Arc<PersistentVolume>)> = None;
    for pv in volumes {
        if pv.metadata.deletion_timestamp.is_some() || unsatisfied(pv, claim).is_some() {
            continue;
        }
        if is_bound_to(pv, claim) {
            return Some(pv.clone());
        }
        let spec = pv.spec.as_ref().expect("unsatisfied() rejects a volume without spec");
        let available = pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        let labels = pv.metadata.labels.clone().unwrap_or_default();
        if delay_binding
            || !available
            || spec.claim_ref.is_some()
            || volume_class(pv) != class
            || selector.as_ref().is_some_and(|s| !s.matches(&labels))
        {
            continue;
        }
        let size = capacity(pv).expect("unsatisfied() rejects a volume without capacity");
        if best.as_ref().is_none_or(|(smallest, _)| size < *smallest) {
            best = Some((size, pv));
        }
    }
    best.map(|(_, pv)| pv.clone())
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
