//! The PersistentVolume binder and the local-path provisioner: upstream's PV controller
//! (`pkg/controller/volume/persistentvolume`), its pvc/pv-protection controllers, and
//! rancher's local-path-provisioner, as one leader component.
//!
//! Invariants:
//! - **A volume is bound to at most one claim.** A claim is bound (annotation
//!   `pv.kubernetes.io/bind-completed`, phase Bound) to volume X only after X's
//!   `spec.claimRef` names it *with its uid*. That claimRef is written as a CAS on X's
//!   resourceVersion, and only over an empty claimRef or one naming this claim by name
//!   alone, so of any number of claims racing for X (in two workers, or across a leader
//!   change) exactly one write succeeds; the others fail with a conflict and look again.
//!   The claim's own `spec.volumeName` is written after X's claimRef (our own CAS result,
//!   or else a linearizable read of X, shows it naming the claim), again as a CAS.
//! - A claimRef is only taken from claim C when C is gone (a linearizable read shows no
//!   claim of that uid) or C's `volumeName` names another volume; `volumeName` is immutable
//!   once set, so C can never complete a binding to X afterwards.
//! - A half-finished binding (X names C, C names nothing) is finished by C's next reconcile:
//!   a volume pre-bound to a claim is its first match. If C got another volume meanwhile, X
//!   is unbound (Available again); if C is gone, X is Released like any volume whose claim
//!   was deleted.
//! - A cache that lags never causes a destructive step: a volume is Released (and
//!   reclaimed) and a claim is called Lost only after a linearizable read confirms the
//!   other object is gone; a protection finalizer goes only after a linearizable list of
//!   pods (see [`protection`]).
//! - Provisioning is idempotent: the volume for claim uid U is named `pvc-U`.
//!
//! Data flow: the term's shared informers over claims, volumes, StorageClasses, pods and
//! nodes feed two
//! controllers (upstream's two queues). The claim controller ([`claims`]) reconciles a
//! claim on its own changes, on changes of the volume naming it (or named by it, or of any
//! free volume when it is unbound), of a pod mounting it, and of its StorageClass; it
//! assigns the default class, binds, records the first consumer's node
//! (`volume.kubernetes.io/selected-node`) and provisions. The volume controller
//! ([`volumes`]) reconciles a volume on its changes and its claim's; it keeps the volume's
//! phase and releases and reclaims it. Both decide through the pure [`phase`] functions.

pub mod claims;
pub mod matching;
pub mod phase;
pub mod protection;
pub mod provision;
pub mod volumes;

#[cfg(test)]
mod fixtures;

use std::sync::Arc;

use flotilla_apiserver::bootstrap::DEFAULT_CLASS_ANNOTATION;
use flotilla_apiserver::client::Client;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{Change, Controller, ControllerConfig, Key, Recorder, Store};
use matching::volume_name;

/// Set on a claim once the controller has bound it (upstream's name and value `yes`).
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a claim whose `volumeName`, or a volume whose `claimRef`, this controller wrote.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The node of a WaitForFirstConsumer claim's first pod: where to provision.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Names the provisioner that made a volume.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The pre-GA default-class annotation, still honoured as upstream does.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// Event source of the binder (upstream's component name).
pub const COMPONENT: &str = "persistentvolume-controller";

/// The caches the binder reads.
#[derive(Clone)]
pub struct Caches {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
    pub pods: Store<Pod>,
    pub nodes: Store<Node>,
}

impl Caches {
    /// The default StorageClass: the newest one annotated as default (ties: last by name).
    pub fn default_class(&self) -> Option<String> {
        let is_default = |c: &StorageClass| {
            let a = c.metadata.annotations.as_ref();
            [DEFAULT_CLASS_ANNOTATION, BETA_DEFAULT_CLASS_ANNOTATION]
                .iter()
                .any(|k| a.and_then(|a| a.get(*k)).is_some_and(|v| v == "true"))
        };
        let classes = self.classes.list();
        let newest = classes
            .iter()
            .filter(|c| is_default(c) && c.metadata.deletion_timestamp.is_none())
            .max_by_key(|c| (c.metadata.creation_timestamp.clone().map(|t| t.0), c.metadata.name.clone()))?;
        newest.metadata.name.clone()
    }
}

/// The binder's state, shared by its two reconcilers.
pub struct Binder {
    client: Client,
    caches: Caches,
    events: Recorder,
}

impl Binder {
    /// A binder writing through `client` and Events as replica `identity`.
    pub fn new(client: Client, caches: Caches, identity: impl Into<String>) -> Arc<Self> {
        let events = Recorder::new(client.clone(), COMPONENT, identity);
        Arc::new(Self { client, caches, events })
    }
}

/// The binder as a leader-only component.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| run(ctx).boxed())
}

/// Run the two controllers over the term's shared informers until leadership ends.
pub async fn run(ctx: LeaderContext) {
    let caches = Caches {
        claims: ctx.informers.store(),
        volumes: ctx.informers.store(),
        classes: ctx.informers.store(),
        pods: ctx.informers.store(),
        nodes: ctx.informers.store(),
    };
    let binder = Binder::new(ctx.client.clone(), caches.clone(), ctx.identity.clone());
    let config = ControllerConfig::default();
    let (c1, c2, c3) = (caches.claims.clone(), caches.claims.clone(), caches.volumes.clone());
    let claim_controller = Controller::new(
        "persistentvolumeclaim-binder",
        claims::ClaimReconciler(binder.clone()),
        &caches.claims,
        config,
    )
    .watches(&caches.volumes, move |change| volume_to_claims(&c1, change))
    .watches(&caches.pods, pod_to_claims)
    .watches(&caches.classes, move |change| class_to_claims(&c2, change))
    .reads(&caches.nodes);
    let volume_controller =
        Controller::new("persistentvolume-binder", volumes::VolumeReconciler(binder), &caches.volumes, config)
            .watches(&caches.claims, move |change| claim_to_volumes(&c3, change));
    futures::join!(claim_controller.run(ctx.cancel.clone()), volume_controller.run(ctx.cancel.clone()));
}

fn sorted(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort();
    keys.dedup();
    keys
}

/// Whether `claim` still waits for a volume (and may take any free one).
fn unbound(claim: &PersistentVolumeClaim) -> bool {
    !phase::bind_completed(claim) && volume_name(claim).is_none()
}

/// Claims to reconcile after a volume change: the claim its claimRef names, claims naming
/// it, and, while it is free, every unbound claim (it may fit one).
fn volume_to_claims(claims: &Store<PersistentVolumeClaim>, change: &Change<PersistentVolume>) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut free = false;
    for pv in change.objects() {
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if let Some(r) = claim_ref {
            keys.push(Key::namespaced(r.namespace.clone().unwrap_or_default(), r.name.clone().unwrap_or_default()));
        }
        free |= claim_ref.is_none_or(|r| r.uid.as_deref().is_none_or(str::is_empty));
    }
    let names: Vec<&str> = change.objects().filter_map(|pv| pv.metadata.name.as_deref()).collect();
    for claim in claims.list() {
        let names_it = volume_name(&claim).is_some_and(|n| names.contains(&n));
        if names_it || (free && unbound(&claim)) {
            keys.push(Key::of(claim.as_ref()));
        }
    }
    sorted(keys)
}

/// Claims to reconcile after a pod change: those it mounts.
fn pod_to_claims(change: &Change<Pod>) -> Vec<Key> {
    let keys = change.objects().flat_map(|pod| {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        protection::claims_of(pod).map(move |name| Key::namespaced(ns.clone(), name))
    });
    sorted(keys.collect())
}

/// Claims to reconcile after a StorageClass change: unbound claims of that class, or of
/// none (the default class may have changed).
fn class_to_claims(claims: &Store<PersistentVolumeClaim>, change: &Change<StorageClass>) -> Vec<Key> {
    let names: Vec<&str> = change.objects().filter_map(|c| c.metadata.name.as_deref()).collect();
    let keys = claims
        .list()
        .into_iter()
        .filter(|c| unbound(c) && matching::claim_class(c).is_none_or(|class| names.contains(&class)));
    sorted(keys.map(|c| Key::of(c.as_ref())).collect())
}

/// Volumes to reconcile after a claim change: the one it names and those naming it.
fn claim_to_volumes(volumes: &Store<PersistentVolume>, change: &Change<PersistentVolumeClaim>) -> Vec<Key> {
    let mut keys: Vec<Key> = change.objects().filter_map(volume_name).map(Key::cluster).collect();
    let claims: Vec<(Option<&str>, Option<&str>)> =
        change.objects().map(|c| (c.metadata.namespace.as_deref(), c.metadata.name.as_deref())).collect();
    for pv in volumes.list() {
        let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { continue };
        if claims.contains(&(r.namespace.as_deref(), r.name.as_deref())) {
            keys.push(Key::of(pv.as_ref()));
        }
    }
    sorted(keys)
}
