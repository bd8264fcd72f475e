//! [`NodeLease`]: the heartbeat Lease `kube-node-lease/<node>` that the control plane's
//! node lifecycle controller judges the node's liveness by (it watches `renewTime` move).
//!
//! Invariants:
//! - Each renewal writes `holderIdentity` = the node name, `leaseDurationSeconds` and a
//!   fresh `renewTime`, and is a compare-and-swap on the Lease last written; on a conflict
//!   (or with no cached Lease) the Lease is read again first, and created if missing.
//! - The Lease is owned by its Node, so deleting the Node garbage-collects it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;

use crate::api::ApiPool;
use crate::error::AgentError;

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// One node's heartbeat Lease.
pub struct NodeLease {
    pool: Arc<ApiPool>,
    node: String,
    /// The owning Node's uid, once known.
    node_uid: Option<String>,
    duration: Duration,
    /// The Lease as last written (for the next CAS).
    cached: Option<Lease>,
}

impl NodeLease {
    pub fn new(pool: Arc<ApiPool>, node: &str, duration: Duration) -> Self {
        Self { pool, node: node.to_string(), node_uid: None, duration, cached: None }
    }

    pub fn set_owner(&mut self, node_uid: &str) {
        self.node_uid = Some(node_uid.to_string());
    }

    fn api(client: kube::Client) -> kube::Api<Lease> {
        kube::Api::namespaced(client, LEASE_NAMESPACE)
    }

    fn fill(&self, lease: &mut Lease, now: Timestamp) {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node.clone());
        spec.lease_duration_seconds = Some(self.duration.as_secs() as i32);
        spec.renew_time = Some(MicroTime(now));
        if let Some(uid) = &self.node_uid {
            lease.metadata.owner_references = Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: self.node.clone(),
                uid: uid.clone(),
                ..OwnerReference::default()
            }]);
        }
    }

    /// Renew the Lease (creating it if missing).
    pub async fn renew(&mut self) -> Result<(), AgentError> {
        let now = Timestamp::now();
        if let Some(mut lease) = self.cached.take() {
            self.fill(&mut lease, now);
            match self.replace(&lease).await {
                Ok(written) => {
                    self.cached = Some(written);
                    return Ok(());
                }
                Err(e) if e.is_conflict() || e.is_not_found() => {}
                Err(e) => {
                    self.cached = Some(lease);
                    return Err(e);
                }
            }
        }
        let name = self.node.clone();
        let name_ref = &name;
        let current = match self.pool.call(move |c| async move { Self::api(c).get(name_ref).await }).await {
            Ok(lease) => Some(lease),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let written = match current {
            Some(mut lease) => {
                self.fill(&mut lease, now);
                self.replace(&lease).await?
            }
            None => {
                let mut lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                };
                self.fill(&mut lease, now);
                let (pp, lease) = (&PostParams::default(), &lease);
                self.pool.call(move |c| async move { Self::api(c).create(pp, lease).await }).await?
            }
        };
        self.cached = Some(written);
        Ok(())
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, AgentError> {
        let (pp, node) = (&PostParams::default(), &self.node);
        self.pool.call(move |c| async move { Self::api(c).replace(node, pp, lease).await }).await
    }
}
