//! The volume controller: carries out [`phase::volume_step`] for one volume per reconcile,
//! and its `kubernetes.io/pv-protection` finalizer.
//!
//! - Phases Available and Bound follow the claimRef and the claim (see [`phase`]).
//! - Release: when no claim with the claimRef's uid exists — the cache says so, then a
//!   linearizable read confirms it — the volume turns Released and its reclaim policy
//!   applies: Retain keeps it Released; Delete deletes a local-path volume's PV object (the
//!   node agent removes the directory once the PV is gone) and leaves another provisioner's
//!   volume to it; a policy that cannot be carried out turns the volume Failed with a
//!   Warning event. A Released or Failed volume is not examined again until its claimRef
//!   changes.
//! - Unbind: a volume this controller bound to a claim that ended up with another volume
//!   is made Available again.
//! - Protection: a live volume gets the finalizer; a deleted one loses it once not Bound.

use std::sync::Arc;

use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::phase::{self, Reclaim, VolumeStep, AVAILABLE, BOUND, FAILED, RELEASED};
use super::protection::{has_finalizer, set_finalizer};
use super::{Binder, PV_PROTECTION};
use crate::runtime::{Action, Key, Reconciler};

/// Reconciles volumes (cluster-scoped keys).
pub struct VolumeReconciler(pub Arc<Binder>);

impl Reconciler for VolumeReconciler {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        self.0.sync_volume(key).await.map(|()| Action::Done)
    }
}

fn phase_of(pv: &PersistentVolume) -> Option<&str> {
    pv.status.as_ref()?.phase.as_deref()
}

impl Binder {
    /// One volume reconcile (see the module doc).
    pub async fn sync_volume(&self, key: &Key) -> Result<(), ApiError> {
        let Some(cached) = self.caches.volumes.get_key(key) else { return Ok(()) };
        let deleting = cached.metadata.deletion_timestamp.is_some();
        let mut pv = match deleting {
            true => (*cached).clone(),
            false => self.protect_volume(&cached).await?,
        };
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.clone());
        let claim = claim_ref
            .as_ref()
            .and_then(|r| self.caches.claims.get(r.namespace.as_deref(), r.name.as_deref().unwrap_or_default()));
        pv = match phase::volume_step(&pv, claim.as_deref()) {
            VolumeStep::Phase(p) => self.set_volume_phase(&pv, p, None).await?,
            VolumeStep::Wait => pv,
            VolumeStep::ClaimGone => {
                if !self.claim_gone(&pv).await? {
                    return Ok(()); // the claim cache lags; the claim's arrival queues this volume
                }
                self.release(pv).await?
            }
            VolumeStep::Unbind => {
                let stored = self.client.api::<PersistentVolume>(None).update(&key.name, &phase::unbound(&pv)).await?;
                tracing::info!("claim bound elsewhere; volume unbound");
                self.set_volume_phase(&stored, AVAILABLE, None).await?
            }
            VolumeStep::Release => self.release(pv).await?,
        };
        if deleting && phase_of(&pv) != Some(BOUND) && has_finalizer(&pv.metadata, PV_PROTECTION) {
            set_finalizer(&mut pv.metadata, PV_PROTECTION, false);
            match self.client.api::<PersistentVolume>(None).update(&key.name, &pv).await {
                Ok(_) | Err(ApiError::NotFound(_)) => tracing::info!("volume not bound; protection removed"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Whether the claim the volume's claimRef names (by uid) is gone: known already when
    /// the volume is Released or Failed, else confirmed by a linearizable read.
    async fn claim_gone(&self, pv: &PersistentVolume) -> Result<bool, ApiError> {
        if matches!(phase_of(pv), Some(RELEASED | FAILED)) {
            return Ok(true);
        }
        let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return Ok(true) };
        let api = self.client.api::<PersistentVolumeClaim>(r.namespace.as_deref());
        match api.get(r.name.as_deref().unwrap_or_default()).await {
            Ok(claim) => Ok(claim.metadata.uid != r.uid),
            Err(ApiError::NotFound(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Mark the volume Released (unless already Released or Failed) and apply its policy.
    async fn release(&self, pv: PersistentVolume) -> Result<PersistentVolume, ApiError> {
        let pv = match phase_of(&pv) {
            Some(RELEASED | FAILED) => pv,
            _ => {
                tracing::info!("claim gone; volume released");
                self.set_volume_phase(&pv, RELEASED, None).await?
            }
        };
        match phase::reclaim(&pv) {
            Reclaim::Keep => Ok(pv),
            Reclaim::Delete if pv.metadata.deletion_timestamp.is_some() => Ok(pv),
            Reclaim::Delete => {
                let name = pv.metadata.name.clone().unwrap_or_default();
                let opts = DeleteOptions { precondition_uid: pv.metadata.uid.clone(), ..Default::default() };
                match self.client.api::<PersistentVolume>(None).delete(&name, &opts).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => {
                        tracing::info!("released volume deleted (reclaim policy Delete)")
                    }
                    Err(e) => return Err(e),
                }
                Ok(pv)
            }
            Reclaim::Fail(_, _) if phase_of(&pv) == Some(FAILED) => Ok(pv),
            Reclaim::Fail(reason, message) => {
                tracing::warn!(%message, "reclaim policy cannot be applied; volume failed");
                self.events.warning(&pv, reason, message.clone());
                self.set_volume_phase(&pv, FAILED, Some(message)).await
            }
        }
    }

    /// Write the volume's phase (and message) if it differs; returns the volume as stored.
    pub(super) async fn set_volume_phase(
        &self,
        pv: &PersistentVolume,
        phase: &str,
        message: Option<String>,
    ) -> Result<PersistentVolume, ApiError> {
        let status = pv.status.clone().unwrap_or_default();
        if status.phase.as_deref() == Some(phase) && status.message == message {
            return Ok(pv.clone());
        }
        let changed = status.phase.as_deref() != Some(phase);
        let mut v = pv.clone();
        v.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            message,
            last_phase_transition_time: match changed {
                true => Some(Time(k8s_openapi::jiff::Timestamp::now())),
                false => status.last_phase_transition_time,
            },
            ..status
        });
        self.client
            .api::<PersistentVolume>(None)
            .update_status(pv.metadata.name.as_deref().unwrap_or_default(), &v)
            .await
    }

    /// Add the protection finalizer to a live volume; returns the volume as stored.
    async fn protect_volume(&self, pv: &PersistentVolume) -> Result<PersistentVolume, ApiError> {
        if has_finalizer(&pv.metadata, PV_PROTECTION) {
            return Ok(pv.clone());
        }
        let mut v = pv.clone();
        set_finalizer(&mut v.metadata, PV_PROTECTION, true);
        self.client.api::<PersistentVolume>(None).update(pv.metadata.name.as_deref().unwrap_or_default(), &v).await
    }
}
