//! The Deployment controller: each Deployment's pods run through ReplicaSets named
//! `<deployment>-<pod-template-hash>`, one per distinct template, of which exactly one —
//! the *new* RS, whose template equals the Deployment's — is scaled up while the others
//! are scaled down, by the Deployment's strategy.
//!
//! Data flow: informers on Deployments and ReplicaSets; an RS change queues its
//! controlling Deployment (and an orphan RS queues the Deployments whose selector matches
//! it). One reconcile, for a Deployment:
//! 1. claims its RSs: those it controls, plus orphans its selector matches (adopted);
//!    RSs controlled by anything else are ignored;
//! 2. finds the new RS by semantic template equality ([`template`]), so `rollout undo`
//!    re-selects the old RS instead of creating a third one;
//! 3. unless paused, takes one step of the strategy ([`rollout`]): Recreate scales every
//!    old RS to 0 and waits for their pods to go before creating/scaling the new one;
//!    RollingUpdate grows the new RS within maxSurge, else shrinks old RSs within
//!    maxUnavailable. When the new RS is the only one with replicas, it is set to
//!    `spec.replicas` directly (a plain scale). With several active RSs, a replica change
//!    is absorbed by the rolling bounds rather than spread proportionally as upstream does;
//! 4. keeps revisions: the new RS has `deployment.kubernetes.io/revision` = 1 + the highest
//!    revision of the others (bumped when an old RS becomes new again), and the Deployment
//!    carries the same value;
//! 5. deletes the oldest idle old RSs beyond `revisionHistoryLimit`;
//! 6. writes the status ([`status`]) and, while a progress deadline runs, requeues at it.
//!
//! RS writes wait for the cache to show them before the next step ([`replicasets`]), and a
//! name taken by an RS that is not the new one bumps `status.collisionCount`, which changes
//! the hash. The selector is immutable in apps/v1, so owned RSs are never released.

pub mod replicasets;
pub mod rollout;
pub mod status;
mod step;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use flotilla_apiserver::client::Client;
use flotilla_apiserver::selector::LabelSelector;
use flotilla_apiserver::{ApiError, ApiResult};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use crate::leadership::{Component, LeaderContext};
use crate::runtime::{owner, Action, Change, Controller, ControllerConfig, Key, Reconciler};
use crate::runtime::{Recorder, Store};
use replicasets::{revision, Expectations, Writes};
use step::Step;

/// Retry delay while the cache has not caught up with this controller's own writes (the
/// awaited change normally queues the key sooner).
const CACHE_LAG_RETRY: Duration = Duration::from_millis(200);

/// The leader-only component: informers on Deployments and ReplicaSets and the controller.
pub fn component() -> Component {
    Arc::new(|ctx: LeaderContext| Box::pin(run(ctx)))
}

/// Run the Deployment controller until `ctx.cancel` fires.
pub async fn run(ctx: LeaderContext) {
    let (d_store, rs_store) = (ctx.informers.store::<Deployment>(), ctx.informers.store::<ReplicaSet>());
    let reconciler = DeploymentController {
        client: ctx.client.clone(),
        deployments: d_store.clone(),
        replicasets: rs_store.clone(),
        expect: Expectations::default(),
        events: Recorder::new(ctx.client.clone(), EVENT_SOURCE, ctx.identity.clone()),
    };
    let selecting = d_store.clone();
    let controller = Controller::new("deployment", reconciler, &d_store, ControllerConfig::default())
        .owns(&rs_store)
        .watches(&rs_store, move |change| orphan_owners(&selecting, change));
    controller.run(ctx.cancel.clone()).await;
}

/// The Deployments whose selector matches a changed RS that has no controller.
fn orphan_owners(deployments: &Store<Deployment>, change: &Change<ReplicaSet>) -> Vec<Key> {
    let mut keys = Vec::new();
    for rs in change.objects().filter(|rs| owner::controller_ref(&rs.metadata).is_none()) {
        let Some(ns) = rs.metadata.namespace.as_deref() else { continue };
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        for d in deployments.list_in(ns) {
            if selector(&d).is_some_and(|s| s.matches(&labels)) {
                keys.push(Key::of(d.as_ref()));
            }
        }
    }
    keys.dedup();
    keys
}

/// A Deployment's selector; None when it is missing, invalid or empty (selects nothing).
fn selector(d: &Deployment) -> Option<LabelSelector> {
    let v = serde_json::to_value(&d.spec.as_ref()?.selector).ok()?;
    LabelSelector::from_label_selector(&v).ok().filter(|s| !s.is_everything())
}

pub struct DeploymentController {
    client: Client,
    deployments: Store<Deployment>,
    replicasets: Store<ReplicaSet>,
    expect: Expectations,
    events: Recorder,
}

/// Who reports the controller's Events, as upstream's controller-manager names it.
pub const EVENT_SOURCE: &str = "deployment-controller";

impl Reconciler for DeploymentController {
    type Error = ApiError;

    async fn reconcile(&self, key: &Key) -> ApiResult<Action> {
        let Some(d) = self.deployments.get_key(key) else {
            self.expect.forget(key);
            return Ok(Action::Done);
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Action::Done);
        }
        let Some(sel) = selector(&d) else {
            tracing::warn!("deployment has no usable selector; nothing to manage");
            return Ok(Action::Done);
        };
        if !self.expect.met(key, &self.replicasets) {
            return Ok(Action::RequeueAfter(CACHE_LAG_RETRY));
        }
        let api = self.client.api::<ReplicaSet>(key.namespace());
        let writes = Writes { api, key, expect: &self.expect, events: &self.events };
        // 1. Claim.
        let mut rss: Vec<ReplicaSet> = Vec::new();
        for rs in self.replicasets.list_in(key.namespace().unwrap_or_default()) {
            match owner::controller_ref(&rs.metadata) {
                Some(r) if Some(&r.uid) == d.metadata.uid.as_ref() => rss.push((*rs).clone()),
                None if rs.metadata.deletion_timestamp.is_none()
                    && sel.matches(&rs.metadata.labels.clone().unwrap_or_default()) =>
                {
                    rss.push(writes.adopt(&d, &rs).await?)
                }
                _ => {}
            }
        }
        rss.sort_by_key(|rs| (revision(rs), rs.metadata.creation_timestamp.clone(), rs.metadata.name.clone()));
        let deployments = self.client.api::<Deployment>(key.namespace());
        Step { d: (*d).clone(), rss, writes, deployments, note: None }.run().await
    }
}
