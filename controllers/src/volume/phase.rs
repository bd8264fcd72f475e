//! The binder's decisions, as pure functions of cached state (upstream's `syncClaim` and
//! `syncVolume`); `claims.rs` and `volumes.rs` carry them out.
//!
//! Claim phases: `Pending` until bound; `Bound` once its volume names it back; `Lost` when
//! the volume it was bound to is gone or names another claim. Volume phases: `Pending`
//! (just created) then `Available` while it has no claim (or is pre-bound by name only);
//! `Bound` once its claim names it back; `Released` when its claim is gone (or, for a
//! provisioned volume, bound elsewhere); `Failed` when its reclaim policy cannot be applied.
//! A Released or Failed volume is never bound again by this controller: an admin clears
//! its claimRef to reuse it.
//!
//! A claim counts as bound once it carries `pv.kubernetes.io/bind-completed`; until then
//! every binding step is redone from scratch, which is what completes a half-finished one.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus};
use k8s_openapi::api::storage::v1::StorageClass;

use super::matching::{self, best_match, cannot_bind_requested, is_bound_to, volume_name};
use super::{ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY, ANN_SELECTED_NODE};
use crate::runtime::EventType;
use flotilla_apiserver::bootstrap::LOCAL_PATH_PROVISIONER;

pub const PENDING: &str = "Pending";
pub const AVAILABLE: &str = "Available";
pub const BOUND: &str = "Bound";
pub const RELEASED: &str = "Released";
pub const FAILED: &str = "Failed";
pub const LOST: &str = "Lost";

/// The provisioner name of classes for volumes that admins create by hand.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// An Event to record about the object being reconciled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    fn normal(reason: &'static str, message: impl Into<String>) -> Option<Self> {
        Some(Self { type_: EventType::Normal, reason, message: message.into() })
    }

    fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self { type_: EventType::Warning, reason, message: message.into() }
    }
}

/// What a claim's reconcile sees.
pub struct ClaimFacts<'a> {
    pub claim: &'a PersistentVolumeClaim,
    /// Every cached volume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// The claim's StorageClass, when the claim names one that exists.
    pub class: Option<&'a StorageClass>,
    /// The default StorageClass's name, if there is one.
    pub default_class: Option<&'a str>,
    /// The node of a scheduled, running pod that uses the claim.
    pub consumer_node: Option<&'a str>,
}

/// What to do for a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimStep {
    /// Give a claim without any class the default class.
    AssignClass(String),
    /// Bind to this volume, or finish or re-check its binding (idempotent).
    Bind(Arc<PersistentVolume>),
    /// Record the first consumer's node (`volume.kubernetes.io/selected-node`).
    SelectNode(String),
    /// Provision a local-path volume on this node, then bind to it.
    Provision(String),
    /// Stay (or become) Pending, recording the event if any.
    Pending(Option<Note>),
    /// The bound volume is not in the cache: confirm it is gone before calling the claim Lost.
    VolumeMissing(String),
    Lost(Note),
}

/// Whether the claim has been bound before (upstream's `bind-completed` annotation).
pub fn bind_completed(claim: &PersistentVolumeClaim) -> bool {
    claim.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED))
}

fn annotation<'a>(meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The step for a claim (see the module doc).
pub fn claim_step(f: &ClaimFacts) -> ClaimStep {
    let claim = f.claim;
    if !bind_completed(claim) {
        return unbound_claim_step(f);
    }
    let Some(name) = volume_name(claim) else {
        return ClaimStep::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ));
    };
    match f.volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name)) {
        None => ClaimStep::VolumeMissing(name.to_string()),
        // Its claimRef was cleared (by hand): take it back, as upstream does.
        Some(pv) if pv.spec.as_ref().is_none_or(|s| s.claim_ref.is_none()) => ClaimStep::Bind(pv.clone()),
        Some(pv) if is_bound_to(pv, claim) => ClaimStep::Bind(pv.clone()),
        Some(_) => ClaimStep::Lost(Note::warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

fn unbound_claim_step(f: &ClaimFacts) -> ClaimStep {
    let claim = f.claim;
    if claim.metadata.deletion_timestamp.is_some() {
        return ClaimStep::Pending(None);
    }
    // Upstream's retroactive default class: only for claims with no class at all.
    if let (None, None, Some(default)) = (matching::claim_class(claim), volume_name(claim), f.default_class) {
        return ClaimStep::AssignClass(default.to_string());
    }
    if let Some(name) = volume_name(claim) {
        // The user chose the volume.
        let Some(pv) = f.volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name)) else {
            return ClaimStep::Pending(None);
        };
        if is_bound_to(pv, claim) {
            return ClaimStep::Bind(pv.clone());
        }
        if pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some()) {
            let message = format!("volume {name:?} already bound to a different claim.");
            return ClaimStep::Pending(Note::normal("FailedBinding", message));
        }
        return match cannot_bind_requested(pv, claim) {
            Some(why) => ClaimStep::Pending(Some(Note::warning(
                "VolumeMismatch",
                format!("Cannot bind to requested volume {name:?}: {why}"),
            ))),
            None => ClaimStep::Bind(pv.clone()),
        };
    }
    let delay = f.class.is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    if let Some(pv) = best_match(claim, f.volumes, delay) {
        return ClaimStep::Bind(pv);
    }
    let class_name = matching::claim_class(claim).unwrap_or("");
    if delay {
        return match (annotation(&claim.metadata, ANN_SELECTED_NODE), f.consumer_node) {
            (Some(node), _) => provision_step(f.class, Some(node)),
            (None, Some(node)) => ClaimStep::SelectNode(node.to_string()),
            (None, None) => ClaimStep::Pending(Note::normal(
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            )),
        };
    }
    if class_name.is_empty() {
        let message = "no persistent volumes available for this claim and no storage class is set";
        return ClaimStep::Pending(Note::normal("FailedBinding", message));
    }
    if f.class.is_none() {
        let message = format!("storageclass.storage.k8s.io {class_name:?} not found");
        return ClaimStep::Pending(Some(Note::warning("ProvisioningFailed", message)));
    }
    provision_step(f.class, annotation(&claim.metadata, ANN_SELECTED_NODE))
}

/// Provision with the class's provisioner when it is ours; wait for another one otherwise.
fn provision_step(class: Option<&StorageClass>, node: Option<&str>) -> ClaimStep {
    let provisioner = class.map(|c| c.provisioner.as_str()).unwrap_or_default();
    match (provisioner, node) {
        (LOCAL_PATH_PROVISIONER, Some(node)) => ClaimStep::Provision(node.to_string()),
        // Upstream local-path-provisioner's answer to an Immediate class.
        (LOCAL_PATH_PROVISIONER, None) => {
            ClaimStep::Pending(Some(Note::warning("ProvisioningFailed", "configuration error, no node was specified")))
        }
        (NO_PROVISIONER, _) => ClaimStep::Pending(Some(Note::warning(
            "ProvisioningFailed",
            format!("no volume plugin matched name: {NO_PROVISIONER}"),
        ))),
        (other, _) => ClaimStep::Pending(Note::normal(
            "ExternalProvisioning",
            format!("waiting for a volume to be created, either by external provisioner {other:?} or manually created by system administrator"),
        )),
    }
}

/// A claim's status once bound to `pv`: phase Bound with the volume's capacity and modes.
pub fn bound_claim_status(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> PersistentVolumeClaimStatus {
    let spec = pv.spec.clone().unwrap_or_default();
    PersistentVolumeClaimStatus {
        phase: Some(BOUND.into()),
        capacity: spec.capacity,
        access_modes: spec.access_modes,
        ..claim.status.clone().unwrap_or_default()
    }
}

/// A claim's status in `phase` without a volume (Pending or Lost).
pub fn unbound_claim_status(claim: &PersistentVolumeClaim, phase: &str) -> PersistentVolumeClaimStatus {
    PersistentVolumeClaimStatus {
        phase: Some(phase.into()),
        capacity: None,
        access_modes: None,
        ..claim.status.clone().unwrap_or_default()
    }
}

/// What to do for a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeStep {
    /// Make sure the phase is this (Available or Bound).
    Phase(&'static str),
    /// Its claim is not bound yet: the claim's reconcile finishes the binding.
    Wait,
    /// No claim with the claimRef's uid in the cache: confirm, then release and reclaim.
    ClaimGone,
    /// The controller bound it to a claim that got another volume: make it Available again.
    Unbind,
    /// Provisioned for a claim that got another volume: release and reclaim it.
    Release,
}

/// The step for a volume, given the cached claim its claimRef names (by namespace/name).
pub fn volume_step(pv: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> VolumeStep {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return VolumeStep::Phase(AVAILABLE);
    };
    if r.uid.as_deref().is_none_or(str::is_empty) {
        // Pre-bound by name to a claim that may not exist yet.
        return VolumeStep::Phase(AVAILABLE);
    }
    let Some(claim) = claim.filter(|c| c.metadata.uid == r.uid) else { return VolumeStep::ClaimGone };
    match volume_name(claim) {
        None => VolumeStep::Wait,
        Some(name) if Some(name) == pv.metadata.name.as_deref() => VolumeStep::Phase(BOUND),
        Some(_) if annotation(&pv.metadata, ANN_PROVISIONED_BY).is_some() && reclaim_policy(pv) == "Delete" => {
            VolumeStep::Release
        }
        Some(_) => VolumeStep::Unbind,
    }
}

fn reclaim_policy(pv: &PersistentVolume) -> &str {
    pv.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()).unwrap_or("Retain")
}

/// `pv` unbound from its claim: a claimRef this controller set goes; one a user set keeps
/// naming the claim but loses the uid (upstream's `unbindVolume`).
pub fn unbound(pv: &PersistentVolume) -> PersistentVolume {
    let mut pv = pv.clone();
    let by_controller = pv.metadata.annotations.as_mut().and_then(|a| a.remove(ANN_BOUND_BY_CONTROLLER)).is_some();
    let spec = pv.spec.get_or_insert_with(Default::default);
    if by_controller {
        spec.claim_ref = None;
    } else if let Some(r) = spec.claim_ref.as_mut() {
        r.uid = None;
        r.resource_version = None;
    }
    pv
}

/// What a released volume's reclaim policy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reclaim {
    /// Leave it Released (Retain, or another provisioner's volume, which that one deletes).
    Keep,
    /// Delete the PV object (a local-path volume: the node agent removes its directory).
    Delete,
    /// The policy cannot be carried out: phase Failed with this message.
    Fail(&'static str, String),
}

pub fn reclaim(pv: &PersistentVolume) -> Reclaim {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    match (reclaim_policy(pv), annotation(&pv.metadata, ANN_PROVISIONED_BY)) {
        ("Delete", Some(LOCAL_PATH_PROVISIONER)) => Reclaim::Delete,
        ("Delete", Some(_)) | ("Retain", _) => Reclaim::Keep,
        ("Delete", None) => Reclaim::Fail(
            "VolumeFailedDelete",
            format!("error getting deleter volume plugin for volume {name:?}: no deletable volume plugin matched"),
        ),
        ("Recycle", _) => Reclaim::Fail(
            "VolumeFailedRecycle",
            format!("error getting recycler volume plugin for volume {name:?}: no recyclable volume plugin matched"),
        ),
        (other, _) => Reclaim::Fail(
            "VolumeUnknownReclaimPolicy",
            format!("Volume has unrecognized PersistentVolumeReclaimPolicy {other:?}"),
        ),
    }
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod tests;
