//! The `default/kubernetes` Service: how pods reach the API servers.
//!
//! As upstream's lease endpoint reconciler (`--endpoint-reconciler-type=lease`):
//! - every replica serving the API holds a store lease ([`LEASE_TTL`] seconds, renewed every
//!   [`RENEW`]) carrying the key `/registry/masterleases/<ip>:<port>` of the address it
//!   advertises;
//! - every replica reconciles the Service and its Endpoints: the Service is created once
//!   (the first address of the service range, port 443 named `https`, no selector); the
//!   Endpoints list exactly the addresses that hold a live master lease, one subset per API
//!   port (replicas sharing a host listen on different ports);
//! - a replica that stops revokes its lease and takes itself out; one that dies drops out
//!   when its lease expires (the TTL plus at most an election later): the store deletes the
//!   key and every surviving replica's watch on the prefix reconciles at once.
//!
//! Invariants:
//! - after a reconcile the Endpoints equal the live master leases it read; writes are CAS on
//!   resourceVersion, so replicas racing each other converge (a loser reconciles again on
//!   the next change or tick, and computes the same answer from the same leases);
//! - the Service is create-if-absent: a user's change to it stays, as upstream only
//!   re-creates a deleted one;
//! - nothing here writes unless the Endpoints differ from the leases, so idle replicas
//!   cost one lease renewal per [`RENEW`] each.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use flotilla_store::pb::PbPutRequest;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};
use crate::registry::{Part, Registry, WriteOptions};
use crate::resources::{self, Resource};
use crate::storage::Storage;

/// Where the master leases live (upstream's key prefix).
pub const MASTER_LEASES: &str = "/registry/masterleases/";
/// Seconds a master lease outlives its replica (upstream's lease reconciler uses 15 s).
pub const LEASE_TTL: i64 = 15;
/// How often a replica renews its lease and reconciles even without changes.
pub const RENEW: Duration = Duration::from_secs(5);
/// How long a stopping replica spends taking itself out.
const GOODBYE: Duration = Duration::from_secs(2);

pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";
/// The Service port's name, which the Endpoints' ports repeat (the proxy matches by it).
const PORT_NAME: &str = "https";

/// Keep this replica's master lease and the `kubernetes` Service in step until `cancel`
/// fires, then take this replica out of the Endpoints.
pub async fn run(registry: Registry, advertise: SocketAddr, cancel: CancellationToken) {
    let mut me = MasterLease { key: format!("{MASTER_LEASES}{advertise}").into_bytes(), id: None };
    let storage = registry.storage().clone();
    let prefix = MASTER_LEASES.as_bytes();
    let mut watcher = storage.watch(prefix, storage.current_revision() + 1);
    let mut tick = tokio::time::interval(RENEW);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {
                if let Err(e) = me.renew(&registry).await {
                    tracing::debug!(error = %e, "master lease not renewed yet");
                }
            }
            item = watcher.next() => {
                if item.is_none() || matches!(item, Some(flotilla_store::watch::WatchItem::Compacted { .. })) {
                    watcher = storage.watch(prefix, storage.current_revision() + 1);
                }
            }
        }
        if let Err(e) = reconcile(&registry, advertise.port()).await {
            tracing::debug!(error = %e, "kubernetes service not reconciled yet");
        }
    }
    let goodbye = async {
        me.revoke(&registry).await;
        let _ = reconcile(&registry, advertise.port()).await;
    };
    if tokio::time::timeout(GOODBYE, goodbye).await.is_err() {
        tracing::debug!("left the kubernetes endpoints to lease expiry");
    }
}

/// This replica's lease and the key on it.
struct MasterLease {
    key: Vec<u8>,
    id: Option<i64>,
}

impl MasterLease {
    /// Keep the lease alive, granting a new one (and re-putting the key) when it is gone.
    async fn renew(&mut self, registry: &Registry) -> ApiResult<()> {
        let node = registry.storage().node();
        if let Some(id) = self.id {
            if node.lease_keep_alive(id).await.is_ok_and(|ttl| ttl > 0) {
                return Ok(());
            }
        }
        let (id, _) = node.lease_grant(0, LEASE_TTL).await?;
        self.id = Some(id);
        node.put(PbPutRequest { key: self.key.clone(), value: b"{}".to_vec(), lease: id, ..Default::default() })
            .await?;
        Ok(())
    }

    async fn revoke(&mut self, registry: &Registry) {
        if let Some(id) = self.id.take() {
            if let Err(e) = registry.storage().node().lease_revoke(id).await {
                tracing::debug!(error = %e, "master lease not revoked; it expires");
            }
        }
    }
}

/// Make the Service exist and its Endpoints list the live master leases.
pub async fn reconcile(registry: &Registry, port: u16) -> ApiResult<()> {
    ensure_service(registry, port).await?;
    let page = registry.storage().list(MASTER_LEASES.as_bytes(), None, 0, 0).await?;
    let leases: Vec<SocketAddr> = page
        .items
        .iter()
        .filter_map(|s| std::str::from_utf8(&s.key).ok()?.strip_prefix(MASTER_LEASES)?.parse().ok())
        .collect();
    let res = endpoints();
    let want = subsets(&leases);
    let current = match registry.get(res, Some(NAMESPACE), NAME).await {
        Ok(obj) => Some(obj),
        Err(ApiError::NotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let mut obj = current.clone().unwrap_or_else(|| json!({"metadata": {"name": NAME, "namespace": NAMESPACE}}));
    if current.is_some() && obj.get("subsets").unwrap_or(&json!([])) == &want {
        return Ok(());
    }
    obj["subsets"] = want;
    registry.update(res, Some(NAMESPACE), NAME, obj, Part::Main, &WriteOptions::default()).await?;
    tracing::info!(endpoints = ?leases, "kubernetes service endpoints updated");
    Ok(())
}

/// One subset per port, addresses sorted: the same leases always give the same value.
fn subsets(leases: &[SocketAddr]) -> Value {
    let mut by_port: BTreeMap<u16, Vec<IpAddr>> = BTreeMap::new();
    for a in leases {
        by_port.entry(a.port()).or_default().push(a.ip());
    }
    let subsets: Vec<Value> = by_port
        .into_iter()
        .map(|(port, mut ips)| {
            ips.sort();
            ips.dedup();
            let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
            json!({"addresses": addresses, "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]})
        })
        .collect();
    json!(subsets)
}

/// Create the Service unless it exists (a user's change to it stays).
async fn ensure_service(registry: &Registry, port: u16) -> ApiResult<()> {
    let res = resources::lookup("", "v1", "services").expect("services are served");
    let key = Storage::key(res, Some(NAMESPACE), NAME);
    if registry.storage().get(&key).await?.is_some() {
        return Ok(());
    }
    let ip = registry.ranges().api_ip().to_string();
    let svc = json!({
        "metadata": {"name": NAME, "namespace": NAMESPACE,
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "type": "ClusterIP", "sessionAffinity": "None", "ports": [
            {"name": PORT_NAME, "port": 443, "protocol": "TCP", "targetPort": port}
        ]},
    });
    match registry.create(res, Some(NAMESPACE), svc, &WriteOptions::default()).await {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn endpoints() -> &'static Resource {
    resources::lookup("", "v1", "endpoints").expect("endpoints are served")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_group_by_port_and_sort_addresses() {
        let leases: Vec<SocketAddr> =
            ["127.0.0.1:6445", "10.0.0.2:6443", "10.0.0.1:6443", "127.0.0.1:6444"].map(|a| a.parse().unwrap()).into();
        let got = subsets(&leases);
        assert_eq!(
            got,
            json!([
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6444, "protocol": "TCP"}]},
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 6445, "protocol": "TCP"}]},
            ])
        );
    }
}
