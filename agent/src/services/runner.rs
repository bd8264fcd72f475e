//! The services loop of one node: Services, Endpoints and the node's own pods watched into
//! a [`Snapshot`], the snapshot programmed into nftables and served by the cluster DNS.
//!
//! Invariants:
//! - Nothing is programmed before every kind has been listed once: an agent restarting
//!   with its old table in place never wipes it with a half-known (empty) snapshot.
//! - Bursts of events are coalesced: the snapshot is rebuilt once per drained batch, and
//!   [`sync`] programs only the newest one.
//! - On shutdown the table is removed at once (the watches are abandoned, not awaited), so
//!   a stopped agent leaves no rules behind, and its owner record goes with it; the DNS
//!   server stops with it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::Resource;
use tokio::sync::{mpsc, watch as latest};
use tokio_util::sync::CancellationToken;

use super::dns::{self, DnsConfig, DnsServer};
use super::model::Snapshot;
use super::proxy::owners::Owners;
use super::proxy::{self, DnsRedirect, ProxyOptions};
use super::sync;
use crate::api::watch::{self, Event, Selector};
use crate::api::ApiPool;
use crate::config::ServicesConfig;
use crate::pods::dns::Resolv;

/// Events buffered per watched kind.
const EVENT_BUFFER: usize = 1024;
/// How long the DNS answers' records live in caches.
const DNS_TTL: u32 = 5;

/// The nft table of the agent with runtime scope `scope` (one per agent, so agents sharing
/// a host do not collide).
pub fn table_name(scope: &str) -> String {
    let clean: String = scope.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("flotilla-svc-{clean}")
}

/// The nft table of the agent for node `node` with data directory `data_dir` (what tools
/// outside the agent use to find its rules).
pub fn agent_table(node: &str, data_dir: &std::path::Path) -> std::io::Result<String> {
    Ok(table_name(&crate::runtime::scope(node, data_dir)?))
}

/// Run until `cancel` fires; then remove this node's rules.
/// `host` is the host's resolver configuration, whose nameservers the DNS forwards to.
pub async fn run(pool: Arc<ApiPool>, config: ServicesConfig, node: String, host: Resolv, cancel: CancellationToken) {
    if let Err(e) = proxy::enable_route_localnet() {
        tracing::warn!(error = %e, "cannot enable route_localnet; node ports do not answer on 127.0.0.1");
    }
    let (snapshots, latest_rx) = latest::channel(Arc::new(Snapshot::default()));
    let dns = start_dns(&config, &host, latest_rx.clone()).await;
    let opts = ProxyOptions {
        table: table_name(&config.scope),
        dns: dns.as_ref().map(|_| DnsRedirect { cluster_ip: config.cluster_dns, local_port: config.dns_port }),
    };
    let owners = Owners::default();
    let proxy = tokio::spawn(sync::program(latest_rx, opts.clone(), owners.clone(), cancel.clone()));
    follow(pool, &node, snapshots, cancel.clone()).await;
    let _ = proxy.await;
    match proxy::remove(&opts.table).await {
        Ok(()) => owners.release(&opts.table),
        Err(e) => tracing::warn!(table = opts.table, error = %e, "cannot remove the service rules"),
    }
    if let Some(server) = dns {
        server.shutdown().await;
    }
}

async fn start_dns(
    config: &ServicesConfig,
    host: &Resolv,
    snapshots: latest::Receiver<Arc<Snapshot>>,
) -> Option<DnsServer> {
    let upstreams = dns::host_upstreams(&host.nameservers);
    let dns_config = DnsConfig { domain: config.cluster_domain.clone(), upstreams, ttl: DNS_TTL };
    let bind = SocketAddr::from((Ipv4Addr::UNSPECIFIED, config.dns_port));
    match DnsServer::start(bind, dns_config, snapshots).await {
        Ok(server) => {
            tracing::info!(address = %server.local_addr(), cluster_dns = %config.cluster_dns, "cluster DNS serving");
            Some(server)
        }
        Err(e) => {
            tracing::error!(%bind, error = %e, "cannot start the cluster DNS server; pods get no cluster DNS");
            None
        }
    }
}

/// Watch Services, Endpoints and this node's pods, and publish every changed snapshot.
async fn follow(pool: Arc<ApiPool>, node: &str, snapshots: latest::Sender<Arc<Snapshot>>, cancel: CancellationToken) {
    let (svc_tx, mut svc_rx) = mpsc::channel(EVENT_BUFFER);
    let (ep_tx, mut ep_rx) = mpsc::channel(EVENT_BUFFER);
    let (pod_tx, mut pod_rx) = mpsc::channel(EVENT_BUFFER);
    let local = Selector { fields: Some(format!("spec.nodeName={node}")), ..Selector::default() };
    let svc_watch = tokio::spawn(watch::run::<Service>(pool.clone(), Selector::default(), svc_tx, cancel.clone()));
    let ep_watch = tokio::spawn(watch::run::<Endpoints>(pool.clone(), Selector::default(), ep_tx, cancel.clone()));
    let pod_watch = tokio::spawn(watch::run::<Pod>(pool, local, pod_tx, cancel.clone()));
    let (mut services, mut endpoints, mut pods) = (Objects::default(), Objects::default(), Objects::default());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(event) = svc_rx.recv() => services.apply(event),
            Some(event) = ep_rx.recv() => endpoints.apply(event),
            Some(event) = pod_rx.recv() => pods.apply(event),
            else => break,
        }
        while let Ok(event) = svc_rx.try_recv() {
            services.apply(event);
        }
        while let Ok(event) = ep_rx.try_recv() {
            endpoints.apply(event);
        }
        while let Ok(event) = pod_rx.try_recv() {
            pods.apply(event);
        }
        if !(services.listed && endpoints.listed && pods.listed) {
            continue;
        }
        let mut snapshot = Snapshot::build(services.objects.values(), endpoints.objects.values());
        snapshot.local_pods = pods
            .objects
            .values()
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref()?.parse::<Ipv4Addr>().ok())
            .collect();
        snapshots.send_if_modified(|current| {
            let changed = **current != snapshot;
            if changed {
                *current = Arc::new(snapshot);
            }
            changed
        });
    }
    // A watch may be waiting out a request to a replica that is gone (the whole cluster is
    // often stopping at once); the rules must come off before the agent's shutdown deadline.
    for watch in [svc_watch, ep_watch, pod_watch] {
        watch.abort();
    }
}

/// The objects of one kind, by namespace/name, as the watch reports them.
struct Objects<K> {
    objects: BTreeMap<(String, String), K>,
    listed: bool,
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Self { objects: BTreeMap::new(), listed: false }
    }
}

impl<K: Resource + k8s_openapi::Metadata<Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>> Objects<K> {
    fn apply(&mut self, event: Event<K>) {
        let key = |k: &K| {
            let meta = k.metadata();
            (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
        };
        match event {
            Event::Listed(items) => {
                self.objects = items.into_iter().map(|k| (key(&k), k)).collect();
                self.listed = true;
            }
            Event::Applied(k) => {
                self.objects.insert(key(&k), k);
            }
            Event::Deleted(k) => {
                self.objects.remove(&key(&k));
            }
        }
    }
}
