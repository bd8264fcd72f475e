//! Creating a workload's pods in slow-start batches (upstream's `slowStartBatch`), shared by
//! the ReplicaSet, DaemonSet and Job controllers.
//!
//! Batches grow 1, 2, 4, …; the creates of one batch run at once. The first batch with a
//! failed create ends the run: when one create fails (a quota, an admission rule) the others
//! most likely would too, and a burst of doomed writes is what slow start exists to avoid.
//!
//! Invariants: every pod the server created is in the owner's [`Expectations`] before the
//! run returns (so a cache that has not shown it yet cannot cause a duplicate), and is
//! reported by a `SuccessfulCreate` Event on the owner; every failure by `FailedCreate`.

use flotilla_apiserver::client::Api;
use flotilla_apiserver::ApiError;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};

use super::expectations::Expectations;
use crate::runtime::{Key, Recorder};

/// Where a run's writes and records go: the namespace's pod API, the owner's Events and the
/// controller's expectations.
pub struct Creates<'a> {
    pub api: &'a Api<Pod>,
    pub events: &'a Recorder,
    pub expectations: &'a Expectations,
}

impl Creates<'_> {
    /// Create `pods` for `owner` (queued under `key`) in slow-start batches; how many were
    /// created, and the error that stopped the run early, if one did.
    pub async fn run<K>(&self, owner: &K, key: &Key, pods: &[Pod]) -> (usize, Option<ApiError>)
    where
        K: Resource + Metadata<Ty = ObjectMeta>,
    {
        let (mut created, mut rest, mut batch) = (0, pods, 1);
        while !rest.is_empty() {
            let (now, later) = rest.split_at(batch.min(rest.len()));
            let mut first_error = None;
            for result in join_all(now.iter().map(|pod| self.api.create(pod))).await {
                match result {
                    Ok(pod) => {
                        let name = pod.metadata.name.unwrap_or_default();
                        tracing::debug!(pod = %name, "created pod");
                        self.events.normal(owner, "SuccessfulCreate", format!("Created pod: {name}"));
                        self.expectations.created(key, name);
                        created += 1;
                    }
                    Err(e) => {
                        self.events.warning(owner, "FailedCreate", format!("Error creating: {e}"));
                        first_error = first_error.or(Some(e));
                    }
                }
            }
            if first_error.is_some() {
                return (created, first_error);
            }
            (rest, batch) = (later, batch * 2);
        }
        (created, None)
    }
}
