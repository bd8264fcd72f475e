//! The Deployment controller's writes to ReplicaSets: claim (adopt orphans), create the
//! new RS, scale, keep revisions, and delete history beyond `revisionHistoryLimit`.
//!
//! Every write is a compare-and-swap on the resourceVersion read from the cache, and its
//! result is recorded in [`Expectations`]: until the cache shows that version (or a newer
//! one), the Deployment is not reconciled again, so no decision rests on a cache that
//! does not yet show the controller's own last write (upstream's "expectations").

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use flotilla_apiserver::client::Api;
use flotilla_apiserver::registry::DeleteOptions;
use flotilla_apiserver::ApiResult;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::Instant;

use super::template::{self, HASH_LABEL};
use crate::runtime::store::Store;
use crate::runtime::{owner, Key, Recorder};

/// The annotation holding a revision, on the Deployment and on each of its ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// How long an unmet expectation holds back a Deployment: past this, the write it waits
/// for is presumed superseded (e.g. the RS was deleted by someone else meanwhile).
const EXPECTATION_TTL: Duration = Duration::from_secs(30);
/// Deployment annotations not copied to its ReplicaSets (upstream's list).
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
];

/// One write the cache must show: the RS name, its resourceVersion, when it was written.
type Expected = (String, i64, Instant);

/// Per Deployment, the ReplicaSet versions this controller wrote and the cache must show.
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<Key, Vec<Expected>>>,
}

impl Expectations {
    pub fn record(&self, deployment: &Key, rs: &ReplicaSet) {
        let (Some(name), Some(rv)) = (rs.metadata.name.clone(), rv(rs)) else { return };
        let mut pending = self.pending.lock().expect("expectations lock poisoned");
        let list = pending.entry(deployment.clone()).or_default();
        list.retain(|(n, _, _)| *n != name);
        list.push((name, rv, Instant::now()));
    }

    pub fn forget(&self, deployment: &Key) {
        self.pending.lock().expect("expectations lock poisoned").remove(deployment);
    }

    /// Whether `cache` shows every write recorded for `deployment` (met ones are dropped).
    pub fn met(&self, deployment: &Key, cache: &Store<ReplicaSet>) -> bool {
        let mut pending = self.pending.lock().expect("expectations lock poisoned");
        let Some(list) = pending.get_mut(deployment) else { return true };
        list.retain(|(name, want, at)| {
            let seen = cache.get(deployment.namespace(), name).and_then(|rs| rv(&rs));
            seen.is_none_or(|s| s < *want) && at.elapsed() < EXPECTATION_TTL
        });
        list.is_empty()
    }
}

fn rv(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata.resource_version.as_deref()?.parse().ok()
}

/// An RS's revision (0 when absent or malformed).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).and_then(|r| r.parse().ok()).unwrap_or(0)
}

pub fn desired(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// The ReplicaSet writes of one reconcile of Deployment `key`.
pub struct Writes<'a> {
    pub api: Api<ReplicaSet>,
    pub key: &'a Key,
    pub expect: &'a Expectations,
    /// Records each scaling as a `ScalingReplicaSet` Event on the Deployment.
    pub events: &'a Recorder,
}

impl Writes<'_> {
    async fn update(&self, rs: &ReplicaSet) -> ApiResult<ReplicaSet> {
        let written = self.api.update(rs.metadata.name.as_deref().unwrap_or_default(), rs).await?;
        self.expect.record(self.key, &written);
        Ok(written)
    }

    /// Make `orphan` (no controller, labels matching) a ReplicaSet of `d`.
    pub async fn adopt(&self, d: &Deployment, orphan: &ReplicaSet) -> ApiResult<ReplicaSet> {
        let mut rs = orphan.clone();
        rs.metadata.owner_references.get_or_insert_with(Vec::new).push(owner::controller_reference(d));
        self.update(&rs).await
    }

    /// Create the new RS of `d` with `replicas` and `revision`. `AlreadyExists` passes up:
    /// the caller decides between a stale cache and a hash collision.
    pub async fn create(&self, d: &Deployment, replicas: i32, revision: i64) -> ApiResult<ReplicaSet> {
        let spec = d.spec.clone().unwrap_or_default();
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template::hash(&spec.template, collisions);
        let mut t = spec.template.clone();
        let labels = t.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(BTreeMap::new);
        labels.insert(HASH_LABEL.into(), hash.clone());
        let labels = labels.clone();
        let mut selector = spec.selector.clone();
        selector.match_labels.get_or_insert_with(BTreeMap::new).insert(HASH_LABEL.into(), hash.clone());
        let mut annotations = copied_annotations(d);
        annotations.insert(REVISION.into(), revision.to_string());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default())),
                namespace: d.metadata.namespace.clone(),
                labels: Some(labels),
                annotations: Some(annotations),
                owner_references: Some(vec![owner::controller_reference(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(t),
            }),
            status: None,
        };
        let created = self.api.create(&rs).await?;
        self.expect.record(self.key, &created);
        self.scaled(d, &created, 0, replicas);
        Ok(created)
    }

    /// Set `rs` (of `d`) to `replicas`.
    pub async fn scale(&self, d: &Deployment, rs: &ReplicaSet, replicas: i32) -> ApiResult<ReplicaSet> {
        let from = desired(rs);
        let mut rs = rs.clone();
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        let written = self.update(&rs).await?;
        self.scaled(d, &written, from, replicas);
        Ok(written)
    }

    /// The `ScalingReplicaSet` Event `kubectl describe deployment` shows, worded as upstream.
    fn scaled(&self, d: &Deployment, rs: &ReplicaSet, from: i32, to: i32) {
        let direction = if to >= from { "up" } else { "down" };
        let name = rs.metadata.name.as_deref().unwrap_or_default();
        let message = format!("Scaled {direction} replica set {name} from {from} to {to}");
        self.events.normal(d, "ScalingReplicaSet", message);
    }

    /// Give the (re-)selected new RS `revision` and the Deployment's annotations.
    pub async fn set_revision(&self, d: &Deployment, rs: &ReplicaSet, revision: i64) -> ApiResult<ReplicaSet> {
        let mut rs = rs.clone();
        let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
        annotations.extend(copied_annotations(d));
        annotations.insert(REVISION.into(), revision.to_string());
        self.update(&rs).await
    }

    /// Delete the oldest of `olds` (scaled to zero, oldest first) beyond `limit`.
    pub async fn cleanup(&self, olds: &[&ReplicaSet], limit: usize) -> ApiResult<()> {
        let idle: Vec<&&ReplicaSet> = olds
            .iter()
            .filter(|rs| {
                desired(rs) == 0
                    && rs.status.as_ref().map_or(0, |s| s.replicas) == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        for rs in idle.iter().take(idle.len().saturating_sub(limit)) {
            let opts = DeleteOptions {
                precondition_resource_version: rs.metadata.resource_version.clone(),
                ..Default::default()
            };
            match self.api.delete(rs.metadata.name.as_deref().unwrap_or_default(), &opts).await {
                Ok(_) | Err(flotilla_apiserver::ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The annotations a Deployment passes on to its new ReplicaSet (`kubernetes.io/change-cause`
/// among them, which `kubectl rollout history` prints).
fn copied_annotations(d: &Deployment) -> BTreeMap<String, String> {
    let mut a = d.metadata.annotations.clone().unwrap_or_default();
    a.retain(|k, _| !NOT_COPIED.contains(&k.as_str()));
    a
}
