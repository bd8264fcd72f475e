//! The namespace controller: empties a terminating namespace, then releases it.
//!
//! `DELETE namespaces/<name>` only marks a namespace (`deletionTimestamp`, phase
//! `Terminating`) while its `spec.finalizers` holds `kubernetes`. This controller then, as
//! upstream's does:
//! 1. deletes every object in the namespace, kind by kind over every namespaced resource the
//!    API serves ([`RESOURCES`]), with the default options (Background propagation, the
//!    pod's own grace period);
//! 2. requeues itself until none remain — objects held by finalizers wait for whoever owns
//!    them (the garbage collector for `orphan`/`foregroundDeletion`), and a pod bound to a
//!    node lingers until that node's agent has stopped it (no grace period 0 here: as
//!    upstream, the namespace controller leaves graceful termination to the node);
//! 3. clears `spec.finalizers` through `namespaces/<name>/finalize` (a CAS on the
//!    namespace's resourceVersion), and the registry removes the namespace.
//!
//! Lists and deletes go to the API, not to caches: the namespace must be seen empty at a
//! revision after the deletes, and new objects cannot appear in it meanwhile (the registry
//! refuses creates in a terminating namespace). Every delete carries the object's uid as a
//! precondition, so a stale list never deletes a different object of the same name.

use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::registry::{DeleteOptions, ListOptions};
use flotilla_apiserver::resources::{Resource, RESOURCES};
use flotilla_apiserver::ApiError;
use futures::FutureExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Event, Namespace, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{Action, Controller, ControllerConfig, Key, Object, Reconciler, Store};

/// The `spec.finalizers` entry this controller owns.
pub const FINALIZER: &str = "kubernetes";
/// How soon a namespace that still has content is looked at again.
const RECHECK: Duration = Duration::from_millis(500);

/// The namespace controller as a leader component.
pub fn component() -> Component {
    std::sync::Arc::new(|ctx: LeaderContext| run(ctx).boxed())
}

async fn run(ctx: LeaderContext) {
    let namespaces = ctx.informers.store::<Namespace>();
    let reconciler = NamespaceReconciler { namespaces: namespaces.clone(), client: ctx.client.clone() };
    Controller::new("namespace", reconciler, &namespaces, ControllerConfig::default()).run(ctx.cancel.clone()).await;
}

/// Empties and finalizes terminating namespaces.
pub struct NamespaceReconciler {
    pub namespaces: Store<Namespace>,
    pub client: Client,
}

impl Reconciler for NamespaceReconciler {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> Result<Action, ApiError> {
        let Some(ns) = self.namespaces.get_key(key) else { return Ok(Action::Done) };
        let held =
            ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|f| f == FINALIZER));
        if ns.metadata.deletion_timestamp.is_none() || !held {
            return Ok(Action::Done);
        }
        let mut remaining = 0;
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            remaining += purge_resource(&self.client, res, &key.name).await?;
        }
        if remaining > 0 {
            tracing::debug!(namespace = %key.name, remaining, "namespace not empty yet");
            return Ok(Action::RequeueAfter(RECHECK));
        }
        let rv = ns.metadata.resource_version.clone().unwrap_or_default();
        match self.client.finalize_namespace(&key.name, &rv).await {
            Ok(_) | Err(ApiError::NotFound(_)) => Ok(Action::Done),
            Err(e) => Err(e),
        }
    }
}

/// Delete the objects of `res` in namespace `ns`; returns how many still exist.
///
/// Fails for a namespaced resource without a typed purge below, so a resource added to the
/// API but not here keeps namespaces from being released instead of leaking its objects.
pub async fn purge_resource(client: &Client, res: &Resource, ns: &str) -> Result<usize, ApiError> {
    match res.plural {
        "pods" => purge::<Pod>(client, ns).await,
        "services" => purge::<Service>(client, ns).await,
        "endpoints" => purge::<Endpoints>(client, ns).await,
        "configmaps" => purge::<ConfigMap>(client, ns).await,
        "secrets" => purge::<Secret>(client, ns).await,
        "serviceaccounts" => purge::<ServiceAccount>(client, ns).await,
        "events" => purge::<Event>(client, ns).await,
        "persistentvolumeclaims" => purge::<PersistentVolumeClaim>(client, ns).await,
        "deployments" => purge::<Deployment>(client, ns).await,
        "replicasets" => purge::<ReplicaSet>(client, ns).await,
        "statefulsets" => purge::<StatefulSet>(client, ns).await,
        "daemonsets" => purge::<DaemonSet>(client, ns).await,
        "controllerrevisions" => purge::<ControllerRevision>(client, ns).await,
        "jobs" => purge::<Job>(client, ns).await,
        "leases" => purge::<Lease>(client, ns).await,
        "poddisruptionbudgets" => purge::<PodDisruptionBudget>(client, ns).await,
        "roles" => purge::<Role>(client, ns).await,
        "rolebindings" => purge::<RoleBinding>(client, ns).await,
        other => Err(ApiError::Internal(format!("namespace controller cannot delete {other}: no typed purge"))),
    }
}

/// List `K` in `ns`, delete what is not already being deleted, and count what is left.
async fn purge<K: Object>(client: &Client, ns: &str) -> Result<usize, ApiError> {
    let api = client.api::<K>(Some(ns));
    let (items, _) = api.list(&ListOptions::default()).await?;
    let mut remaining = 0;
    for obj in &items {
        let meta = obj.metadata();
        let name = meta.name.as_deref().unwrap_or_default();
        if meta.deletion_timestamp.is_some() {
            remaining += 1;
            continue;
        }
        let opts = DeleteOptions { precondition_uid: meta.uid.clone(), ..Default::default() };
        match api.delete(name, &opts).await {
            Ok(d) if d.gone => {}
            Ok(_) => remaining += 1,
            // Gone already, or replaced by another object of the same name: the next
            // pass lists again.
            Err(ApiError::NotFound(_)) => {}
            Err(ApiError::PreconditionFailed(..)) => remaining += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(remaining)
}
