//! The claim controller: carries out [`phase::claim_step`] for one claim per reconcile.
//!
//! Order of a binding (upstream's): the volume's `claimRef` (CAS), then the claim's
//! `volumeName` with `bind-completed` (CAS), then the volume's phase Bound, then the claim's
//! status (Bound, capacity, access modes). Each write uses the object the previous write
//! returned, so a binding runs without self-inflicted conflicts; a conflict with anyone
//! else fails the reconcile, which is retried with backoff over fresher caches. Each step
//! is skipped when already done, so a reconcile dropped anywhere is finished by the next.
//!
//! Writes other than bindings: the default class (retroactively, as upstream since 1.28),
//! the first consumer's node, the `kubernetes.io/pvc-protection` finalizer, and a
//! local-path volume (see [`super::provision`]).

use std::sync::Arc;

use flotilla_apiserver::error::Subject;
use flotilla_apiserver::registry::ListOptions;
use flotilla_apiserver::ApiError;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use super::matching::{claim_class, is_bound_to, volume_name};
use super::phase::{self, bind_completed, ClaimFacts, ClaimStep, Note, BOUND, LOST, PENDING};
use super::protection::{self, has_finalizer, set_finalizer};
use super::provision::local_path_volume;
use super::{Binder, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE, PVC_PROTECTION};
use crate::runtime::{Action, EventType, Key, Reconciler};

/// Reconciles claims (keys `namespace/name`).
pub struct ClaimReconciler(pub Arc<Binder>);

impl Reconciler for ClaimReconciler {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        self.0.sync_claim(key).await.map(|()| Action::Done)
    }
}

/// Whether the volume's claimRef carries a uid (is bound, not merely pre-bound by name).
fn has_claim_uid(pv: &PersistentVolume) -> bool {
    pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).and_then(|r| r.uid.as_deref()).is_some_and(|u| !u.is_empty())
}

impl Binder {
    /// One claim reconcile (see the module doc).
    pub async fn sync_claim(&self, key: &Key) -> Result<(), ApiError> {
        let Some(cached) = self.caches.claims.get_key(key) else { return Ok(()) };
        if cached.metadata.deletion_timestamp.is_some() {
            return self.release_claim(&cached).await;
        }
        let claim = self.protect_claim(&cached).await?;
        let ns = key.namespace().unwrap_or_default();
        let class = claim_class(&claim).filter(|c| !c.is_empty()).and_then(|c| self.caches.classes.get(None, c));
        let default_class = self.caches.default_class();
        let pods = self.caches.pods.list_in(ns);
        let consumer = protection::consumer_node(pods.iter().map(|p| p.as_ref()), &claim);
        let volumes = self.caches.volumes.list();
        let step = phase::claim_step(&ClaimFacts {
            claim: &claim,
            volumes: &volumes,
            class: class.as_deref(),
            default_class: default_class.as_deref(),
            consumer_node: consumer.as_deref(),
        });
        let api = self.client.api::<PersistentVolumeClaim>(Some(ns));
        match step {
            ClaimStep::AssignClass(name) => {
                let mut c = claim.clone();
                c.spec.get_or_insert_with(Default::default).storage_class_name = Some(name.clone());
                api.update(&key.name, &c).await?;
                tracing::info!(storage_class = %name, "assigned the default storage class");
            }
            ClaimStep::Bind(pv) => self.bind(&claim, &pv, false).await?,
            ClaimStep::SelectNode(node) => {
                let mut c = claim.clone();
                c.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(ANN_SELECTED_NODE.into(), node.clone());
                api.update(&key.name, &c).await?;
                tracing::info!(%node, "first consumer scheduled; node selected");
            }
            ClaimStep::Provision(node) => self.provision(&claim, class.as_deref(), &node).await?,
            ClaimStep::Pending(note) => {
                self.note(&claim, note);
                self.set_claim_status(&claim, phase::unbound_claim_status(&claim, PENDING)).await?;
            }
            ClaimStep::VolumeMissing(name) => match self.client.api::<PersistentVolume>(None).get(&name).await {
                // The volume cache lags; the volume's arrival there queues this claim again.
                Ok(_) => {}
                Err(ApiError::NotFound(_)) => {
                    let message = "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
                    self.lose(&claim, Note { type_: EventType::Warning, reason: "ClaimLost", message: message.into() })
                        .await?
                }
                Err(e) => return Err(e),
            },
            ClaimStep::Lost(note) => self.lose(&claim, note).await?,
        }
        Ok(())
    }

    fn note(&self, claim: &PersistentVolumeClaim, note: Option<Note>) {
        match note {
            Some(Note { type_: EventType::Normal, reason, message }) => self.events.normal(claim, reason, message),
            Some(Note { type_: EventType::Warning, reason, message }) => self.events.warning(claim, reason, message),
            None => {}
        }
    }

    async fn lose(&self, claim: &PersistentVolumeClaim, note: Note) -> Result<(), ApiError> {
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some(LOST) {
            tracing::warn!(reason = note.reason, "claim lost its volume");
        }
        self.note(claim, Some(note));
        self.set_claim_status(claim, phase::unbound_claim_status(claim, LOST)).await
    }

    /// Bind `claim` to `pv` in upstream's order, skipping what is already done. `fresh`: `pv`
    /// was just read linearizably or written by us (no confirming read needed).
    async fn bind(&self, claim: &PersistentVolumeClaim, pv: &PersistentVolume, fresh: bool) -> Result<(), ApiError> {
        let claim_done = bind_completed(claim) && volume_name(claim) == pv.metadata.name.as_deref();
        let pv = self.bind_volume(claim, pv, fresh || claim_done).await?;
        let claim = match claim_done {
            true => claim.clone(),
            false => self.bind_claim(claim, &pv).await?,
        };
        let pv = self.set_volume_phase(&pv, BOUND, None).await?;
        self.set_claim_status(&claim, phase::bound_claim_status(&claim, &pv)).await
    }

    /// Make `pv.spec.claimRef` name `claim` with its uid, and return the volume as stored.
    async fn bind_volume(
        &self,
        claim: &PersistentVolumeClaim,
        pv: &PersistentVolume,
        trusted: bool,
    ) -> Result<PersistentVolume, ApiError> {
        let api = self.client.api::<PersistentVolume>(None);
        let name = pv.metadata.name.clone().unwrap_or_default();
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let conflict =
            |name| ApiError::Conflict(Subject { group: String::new(), resource: "persistentvolumes".into(), name });
        if claim_ref.is_some() && !is_bound_to(pv, claim) {
            // Another claim's volume: never taken over (the caller's view was stale).
            return Err(conflict(name));
        }
        if has_claim_uid(pv) {
            if trusted {
                return Ok(pv.clone());
            }
            // The cache says it is ours; confirm before the claim commits to it.
            let current = api.get(&name).await?;
            return match is_bound_to(&current, claim) && has_claim_uid(&current) {
                true => Ok(current),
                false => Err(conflict(name)),
            };
        }
        let mut bound = pv.clone();
        if claim_ref.is_none() {
            bound
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        bound.spec.get_or_insert_with(Default::default).claim_ref = Some(crate::runtime::events::reference(claim));
        let stored = api.update(&name, &bound).await?;
        tracing::info!(volume = %name, "volume bound to claim");
        Ok(stored)
    }

    /// Make the claim name `pv` and mark the binding complete; return the claim as stored.
    async fn bind_claim(
        &self,
        claim: &PersistentVolumeClaim,
        pv: &PersistentVolume,
    ) -> Result<PersistentVolumeClaim, ApiError> {
        let mut c = claim.clone();
        let annotations = c.metadata.annotations.get_or_insert_with(Default::default);
        if volume_name(claim).is_none() {
            annotations.insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        annotations.insert(ANN_BIND_COMPLETED.into(), "yes".into());
        c.spec.get_or_insert_with(Default::default).volume_name = pv.metadata.name.clone();
        let ns = claim.metadata.namespace.as_deref();
        let stored = self
            .client
            .api::<PersistentVolumeClaim>(ns)
            .update(claim.metadata.name.as_deref().unwrap_or_default(), &c)
            .await?;
        tracing::info!(volume = ?pv.metadata.name, "claim bound to volume");
        Ok(stored)
    }

    /// Provision a local-path volume for `claim` on `node`, then bind to it.
    async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        class: Option<&StorageClass>,
        node: &str,
    ) -> Result<(), ApiError> {
        let Some(class) = class else { return Ok(()) };
        let volume = match local_path_volume(claim, class, node, self.caches.nodes.get(None, node).as_deref()) {
            Ok(v) => v,
            Err(why) => {
                self.events.warning(claim, "ProvisioningFailed", why);
                return self.set_claim_status(claim, phase::unbound_claim_status(claim, PENDING)).await;
            }
        };
        let (ns, name) = (
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            claim.metadata.name.as_deref().unwrap_or_default(),
        );
        self.events.normal(
            claim,
            "Provisioning",
            format!("External provisioner is provisioning volume for claim \"{ns}/{name}\""),
        );
        let api = self.client.api::<PersistentVolume>(None);
        let pv_name = volume.metadata.name.clone().unwrap_or_default();
        let pv = match api.create(&volume).await {
            Ok(pv) => {
                tracing::info!(volume = %pv_name, %node, "provisioned local-path volume");
                self.events.normal(
                    claim,
                    "ProvisioningSucceeded",
                    format!("Successfully provisioned volume {pv_name}"),
                );
                pv
            }
            Err(ApiError::AlreadyExists(_)) => api.get(&pv_name).await?,
            Err(e) => {
                self.events.warning(claim, "ProvisioningFailed", format!("failed to provision volume: {e}"));
                return Err(e);
            }
        };
        self.bind(claim, &pv, true).await
    }

    async fn set_claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        status: PersistentVolumeClaimStatus,
    ) -> Result<(), ApiError> {
        if claim.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut c = claim.clone();
        c.status = Some(status);
        let api = self.client.api::<PersistentVolumeClaim>(claim.metadata.namespace.as_deref());
        api.update_status(claim.metadata.name.as_deref().unwrap_or_default(), &c).await.map(drop)
    }

    /// Add the protection finalizer to a live claim; returns the claim as stored.
    async fn protect_claim(&self, claim: &PersistentVolumeClaim) -> Result<PersistentVolumeClaim, ApiError> {
        if has_finalizer(&claim.metadata, PVC_PROTECTION) {
            return Ok(claim.clone());
        }
        let mut c = claim.clone();
        set_finalizer(&mut c.metadata, PVC_PROTECTION, true);
        let api = self.client.api::<PersistentVolumeClaim>(claim.metadata.namespace.as_deref());
        api.update(claim.metadata.name.as_deref().unwrap_or_default(), &c).await
    }

    /// A deleted claim: drop its finalizer once no scheduled, unfinished pod uses it.
    async fn release_claim(&self, claim: &PersistentVolumeClaim) -> Result<(), ApiError> {
        if !has_finalizer(&claim.metadata, PVC_PROTECTION) {
            return Ok(());
        }
        let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
        let cached = self.caches.pods.list_in(ns);
        if protection::consumer_node(cached.iter().map(|p| p.as_ref()), claim).is_some() {
            return Ok(()); // the pod's going queues this claim again
        }
        let (live, _) = self.client.api::<Pod>(Some(ns)).list(&ListOptions::default()).await?;
        if let Some(node) = protection::consumer_node(&live, claim) {
            tracing::debug!(%node, "claim still in use by a pod the cache has not shown yet");
            return Ok(());
        }
        let mut c = claim.clone();
        set_finalizer(&mut c.metadata, PVC_PROTECTION, false);
        let api = self.client.api::<PersistentVolumeClaim>(Some(ns));
        match api.update(claim.metadata.name.as_deref().unwrap_or_default(), &c).await {
            Ok(_) | Err(ApiError::NotFound(_)) => {
                tracing::info!("claim no longer in use; protection removed");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
