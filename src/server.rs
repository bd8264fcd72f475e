//! `flotilla server`: one control-plane replica. Flags are named as etcd's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use flotilla_apiserver::registry::allocator::ServiceRanges;
use flotilla_store::node::Bootstrap;
use flotilla_store::raft::network::LinkControl;
use flotilla_store::replica::Replica;
use flotilla_store::{ids, Config, Node, NodeId};
use tokio::net::TcpListener;

use crate::store_security::all_https;
use crate::urls;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// A TOML file of flags (`name = "n1"`, `initial-cluster = "…"`); flags given on the
    /// command line win.
    #[arg(long, value_name = "FILE")]
    #[allow(dead_code)] // read by `config_file::expand` before parsing
    config: Option<PathBuf>,
    /// Human-readable name of this member.
    #[arg(long, env = "FLOTILLA_NAME", default_value = "default")]
    name: String,
    /// Where the Raft log, state and snapshots live [default: <name>.flotilla].
    #[arg(long, env = "FLOTILLA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URLs to serve the etcd v3 API on (comma-separated).
    #[arg(long, env = "FLOTILLA_LISTEN_CLIENT_URLS", default_value = "https://127.0.0.1:2379")]
    listen_client_urls: String,
    /// Client URLs to advertise to the cluster [default: --listen-client-urls].
    #[arg(long, env = "FLOTILLA_ADVERTISE_CLIENT_URLS")]
    advertise_client_urls: Option<String>,
    /// URL to serve Raft and forwarding to other members on.
    #[arg(long, env = "FLOTILLA_LISTEN_PEER_URLS", default_value = "https://127.0.0.1:2380")]
    listen_peer_urls: String,
    /// Peer URL to advertise to the cluster [default: --listen-peer-urls].
    #[arg(long, env = "FLOTILLA_INITIAL_ADVERTISE_PEER_URLS")]
    initial_advertise_peer_urls: Option<String>,
    /// Founding members, `name=peer-url,...` [default: this member alone].
    #[arg(long, env = "FLOTILLA_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// `new` to found a cluster, `existing` to join one that already lists this member.
    #[arg(long, env = "FLOTILLA_INITIAL_CLUSTER_STATE", value_enum, default_value = "new")]
    initial_cluster_state: ClusterState,
    /// Cluster token: members of one cluster must share it.
    #[arg(long, env = "FLOTILLA_INITIAL_CLUSTER_TOKEN", default_value = "flotilla-cluster")]
    initial_cluster_token: String,
    /// Leader heartbeat interval in milliseconds.
    #[arg(long, env = "FLOTILLA_HEARTBEAT_INTERVAL", default_value_t = 100)]
    heartbeat_interval: u64,
    /// Election timeout in milliseconds.
    #[arg(long, env = "FLOTILLA_ELECTION_TIMEOUT", default_value_t = 1000)]
    election_timeout: u64,
    /// URL to serve the Kubernetes API on: `https://` (with --tls-cert-file and
    /// --tls-private-key-file, or --auto-pki) or, with --insecure-plaintext, `http://`;
    /// `--listen-api-url ''` turns it off.
    #[arg(long, env = "FLOTILLA_LISTEN_API_URL", default_value = "https://127.0.0.1:6443")]
    listen_api_url: String,
    /// Seal Secrets at rest with these keys: `name=<base64 of 32 random bytes>` per line, the
    /// first sealing new writes, all opening (rotation: prepend a new key, restart every
    /// replica; the leader re-seals old Secrets). Every replica needs the same file.
    #[arg(long, env = "FLOTILLA_ENCRYPTION_KEY_FILE", value_name = "FILE")]
    encryption_key_file: Option<PathBuf>,
    /// Append one JSON line per mutating Kubernetes API request to this file (kube-apiserver's
    /// audit log at level Metadata: who, what, when, result).
    #[arg(long, env = "FLOTILLA_AUDIT_LOG_PATH", value_name = "FILE")]
    audit_log_path: Option<PathBuf>,
    /// The address pods reach this replica's API on, published in the `kubernetes` Service's
    /// Endpoints [default: the --listen-api-url address, or the peer URL's when that one
    /// listens on every interface].
    #[arg(long, env = "FLOTILLA_ADVERTISE_API_ADDRESS")]
    advertise_api_address: Option<std::net::IpAddr>,
    /// Addresses for Service cluster IPs (the first one is reserved for the `kubernetes`
    /// Service).
    #[arg(long, env = "FLOTILLA_SERVICE_CLUSTER_IP_RANGE", default_value = "10.96.0.0/16")]
    service_cluster_ip_range: String,
    /// Ports for Service node ports.
    #[arg(long, env = "FLOTILLA_SERVICE_NODE_PORT_RANGE", default_value = "30000-32767")]
    service_node_port_range: String,
    /// Log entries between snapshots.
    #[arg(long, env = "FLOTILLA_SNAPSHOT_COUNT", default_value_t = 10_000)]
    snapshot_count: u64,
    /// Raise the NOSPACE alarm, and refuse writes that add data, once the store's database
    /// exceeds this many bytes (0: 2 GiB; negative: no quota). As etcd's flag.
    #[arg(long, env = "FLOTILLA_QUOTA_BACKEND_BYTES", default_value_t = 0, allow_negative_numbers = true)]
    quota_backend_bytes: i64,
    /// How often the leader compacts the store's history, to the revision it had one
    /// interval earlier (upstream's `--etcd-compaction-interval`); `0s` turns it off.
    #[arg(long, env = "FLOTILLA_COMPACTION_INTERVAL", default_value = "5m", value_parser = interval_or_off)]
    compaction_interval: Duration,
    /// Seconds a node may go without renewing its Lease before it is marked unreachable
    /// (upstream's `--node-monitor-grace-period`).
    #[arg(long, env = "FLOTILLA_NODE_MONITOR_GRACE_PERIOD", default_value_t = 40)]
    node_monitor_grace_period: u64,
    /// Read-only Kubernetes API requests served at once; more are refused with 429 (watches,
    /// logs, exec, attach, port-forward and proxy do not count; 0: no limit). As upstream's.
    #[arg(long, env = "FLOTILLA_MAX_REQUESTS_INFLIGHT", default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating (POST, PUT, PATCH, DELETE) Kubernetes API requests served at once; more are
    /// refused with 429 (0: no limit). As upstream's.
    #[arg(long, env = "FLOTILLA_MAX_MUTATING_REQUESTS_INFLIGHT", default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Open watches one client (for now: one IP address) may hold; more are refused with 429
    /// until one closes (0: no limit; upstream has no such bound).
    #[arg(long, env = "FLOTILLA_MAX_WATCHES_PER_CLIENT", default_value_t = 0)]
    max_watches_per_client: usize,
    /// Kubernetes API requests per second one client (for now: one IP address) may make,
    /// bursting to one second's worth; more are refused with 429 and a Retry-After (0: no
    /// limit; upstream has no such flag).
    #[arg(long, env = "FLOTILLA_MAX_REQUESTS_PER_CLIENT_PER_SECOND", default_value_t = 0)]
    max_requests_per_client_per_second: u32,
    /// How long a Kubernetes API request (not a watch, log or exec) may take before it is
    /// answered 504 and abandoned (`0s`: no limit). As upstream's.
    #[arg(long, env = "FLOTILLA_REQUEST_TIMEOUT", default_value = "60s", value_parser = interval_or_off)]
    request_timeout: Duration,
    /// Join a running cluster through any of its members' client URLs (comma-separated):
    /// this replica adds itself as a learner and promotes itself to a voter once it has
    /// caught up. Ignored once the data dir holds state (a restart rejoins by itself).
    #[arg(long, env = "FLOTILLA_JOIN", value_name = "URLS", conflicts_with = "force_new_cluster")]
    join: Option<String>,
    /// UNSAFE disaster recovery when a majority is lost for good: make this member, with its
    /// data, the only member of the cluster (as etcd's flag). Entries the lost members
    /// committed but this one never received are gone. Remove the flag after one start.
    #[arg(long, env = "FLOTILLA_FORCE_NEW_CLUSTER")]
    force_new_cluster: bool,
    /// Save a snapshot of the store to --snapshot-dir this often (`0s`: never).
    #[arg(long, env = "FLOTILLA_SNAPSHOT_INTERVAL", default_value = "0s", value_parser = interval_or_off)]
    snapshot_interval: Duration,
    /// Scheduled snapshots to keep (the oldest beyond this are deleted).
    #[arg(long, env = "FLOTILLA_SNAPSHOT_RETAIN", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    snapshot_retain: u32,
    /// Where scheduled snapshots go [default: <data-dir>/snapshots].
    #[arg(long, env = "FLOTILLA_SNAPSHOT_DIR")]
    snapshot_dir: Option<PathBuf>,
    /// UNSAFE, for the fault-injection harness's self-check only: serve linearizable reads
    /// locally, without a read-index round (stale reads under partitions).
    #[arg(long, hide = true)]
    unsafe_local_reads: bool,
    #[command(flatten)]
    api_security: crate::api_security::ApiSecurityArgs,
    #[command(flatten)]
    store_security: crate::store_security::StoreSecurityArgs,
    #[command(flatten)]
    auto_pki: crate::auto_pki::AutoPkiArgs,
    /// Allow plain http:// URLs: no TLS and no authentication on those ports. For local
    /// experiments only; said loudly on stderr.
    #[arg(long, env = "FLOTILLA_INSECURE_PLAINTEXT", default_value_t = false)]
    insecure_plaintext: bool,
}

/// How long SIGTERM waits for the replica to stop before the process exits anyway.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(mut args: ServerArgs) -> anyhow::Result<()> {
    let peer_url = args.initial_advertise_peer_urls.clone().unwrap_or_else(|| args.listen_peer_urls.clone());
    if urls::list(&peer_url).len() != 1 || urls::list(&args.listen_peer_urls).len() != 1 {
        bail!("exactly one peer URL is supported");
    }
    let client_listen = urls::list(&args.listen_client_urls);
    if client_listen.is_empty() {
        bail!("--listen-client-urls is empty");
    }
    let advertise = args.advertise_client_urls.as_deref().map(urls::list).unwrap_or_else(|| client_listen.clone());
    for u in advertise.iter().chain([&peer_url]) {
        urls::socket_addr_tls(u)?;
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.flotilla", args.name)));
    let every_url: Vec<&String> = [&peer_url, &args.listen_peer_urls, &args.listen_api_url]
        .into_iter()
        .chain(&client_listen)
        .chain(&advertise)
        .filter(|u| !u.is_empty())
        .collect();
    crate::plaintext::check("URL", &every_url, args.insecure_plaintext)?;
    crate::auto_pki::imply(
        &mut args.auto_pki,
        &every_url,
        args.join.is_some(),
        &args.store_security,
        &args.api_security,
    )?;
    let plan = crate::auto_pki::Plan {
        data_dir: &data_dir,
        urls: [&peer_url, &args.listen_peer_urls]
            .into_iter()
            .chain(&client_listen)
            .chain(&advertise)
            .cloned()
            .collect(),
        api_url: args.listen_api_url.clone(),
        joining: args.join.is_some(),
    };
    let auto_pki =
        crate::auto_pki::prepare(&args.auto_pki, &plan, &mut args.store_security, &mut args.api_security).await?;
    let peer_https = all_https("peer URLs", &[peer_url.as_str(), args.listen_peer_urls.as_str()])?;
    let client_urls: Vec<&str> = client_listen.iter().chain(&advertise).map(String::as_str).collect();
    let store_tls = args.store_security.resolve(peer_https, all_https("client URLs", &client_urls)?)?;
    let token = args.initial_cluster_token.clone();
    let cfg = Config {
        name: args.name.clone(),
        data_dir: data_dir.clone(),
        heartbeat_interval: Duration::from_millis(args.heartbeat_interval),
        election_timeout: Duration::from_millis(args.election_timeout),
        snapshot_logs: args.snapshot_count,
        cluster_token: token.clone(),
        unsafe_local_reads: args.unsafe_local_reads,
        quota_backend_bytes: args.quota_backend_bytes,
        ..Config::default()
    };
    if cfg.unsafe_local_reads {
        tracing::warn!("--unsafe-local-reads: linearizable reads are served locally and may be STALE; testing only");
    }
    cfg.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let me = Node { name: args.name.clone(), peer_url: peer_url.clone(), client_urls: advertise };
    let bootstrap = bootstrap(&args, &cfg, &me).await?;
    let peer = bind(&args.listen_peer_urls).await?;
    let mut clients = Vec::new();
    for u in &client_listen {
        clients.push(bind(u).await?);
    }
    let ranges = ServiceRanges::parse(&args.service_cluster_ip_range, &args.service_node_port_range)
        .map_err(|e| anyhow::anyhow!(e))?;
    let encryption = match &args.encryption_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let enc = flotilla_apiserver::encryption::Encryption::parse(&text)
                .map_err(|e| anyhow::anyhow!("--encryption-key-file {}: {e}", path.display()))?;
            tracing::info!(key = enc.current(), "Secrets are sealed at rest");
            Some(enc)
        }
        None => None,
    };
    let audit = match &args.audit_log_path {
        Some(path) => Some(
            flotilla_apiserver::http::audit::AuditLog::open(path)
                .with_context(|| format!("--audit-log-path {}", path.display()))?,
        ),
        None => None,
    };
    let api = match args.listen_api_url.as_str() {
        "" => None,
        url => {
            let (addr, https) = urls::socket_addr_tls(url)?;
            let security = args.api_security.resolve(https)?;
            let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {url}"))?;
            Some((listener, addr, advertised_api(&args, addr, &peer_url)?, security))
        }
    };
    let data_dir = cfg.data_dir.clone();
    let replica = Replica::start(cfg, me, bootstrap, peer, clients, LinkControl::new(), store_tls)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(name = %args.name, peer = %replica.peer_addr, clients = ?replica.client_addrs, "serving");
    // Every group a replica may update, registered now so that /metrics lists them all
    // (the scheduler's and controllers' at zero until this replica leads).
    let _ = (flotilla_metrics::api(), flotilla_metrics::scheduler(), flotilla_metrics::controllers());
    let _metrics = flotilla_store::metrics::export(&replica.node);
    let background = tokio_util::sync::CancellationToken::new();
    let _stop_background = background.clone().drop_guard();
    if args.join.is_some() {
        tokio::spawn(crate::join::promote_when_caught_up(replica.node.clone(), background.clone()));
    }
    if let Some((_, hosts)) = &auto_pki {
        let (dir, validity) = (data_dir.join("pki"), args.auto_pki.auto_pki_validity);
        tokio::spawn(crate::auto_pki::renew(dir, hosts.clone(), validity, background.clone()));
    }
    if !args.snapshot_interval.is_zero() {
        let schedule = crate::snapshot::Schedule {
            dir: args.snapshot_dir.clone().unwrap_or_else(|| data_dir.join("snapshots")),
            every: args.snapshot_interval,
            retain: args.snapshot_retain as usize,
            name: args.name.clone(),
        };
        tokio::spawn(schedule.run(replica.node.clone(), background.clone()));
    }
    let api_cancel = tokio_util::sync::CancellationToken::new();
    // Pods get ServiceAccount tokens when this replica signs them; the leader's controllers
    // then keep each namespace's `default` ServiceAccount and CA ConfigMap.
    let (issues_tokens, root_ca) = match &api {
        Some((_, _, _, security)) => {
            (security.service_accounts.as_ref().is_some_and(|a| a.signer.is_some()), security.root_ca.clone())
        }
        None => (false, None),
    };
    let api_task = api.map(|(listener, addr, advertise, security)| {
        let config = flotilla_apiserver::ApiConfig {
            server_address: addr.to_string(),
            advertise: Some(advertise),
            limits: flotilla_apiserver::http::limits::LimitsConfig {
                max_requests_inflight: args.max_requests_inflight,
                max_mutating_requests_inflight: args.max_mutating_requests_inflight,
                max_watches_per_client: args.max_watches_per_client,
                max_requests_per_client_per_second: args.max_requests_per_client_per_second,
                request_timeout: args.request_timeout,
            },
            audit: audit.clone(),
            tls: security.tls,
            authn: security.authn,
            node_tls: security.node_tls,
            signer: security.signer,
            service_accounts: security.service_accounts,
            cluster_pki: auto_pki.as_ref().map(|(pki, _)| pki.clone()),
            ..Default::default()
        };
        let registry = flotilla_apiserver::registry(replica.node.clone(), ranges.clone(), encryption.clone())
            .with_service_account_tokens(issues_tokens);
        tokio::spawn(flotilla_apiserver::serve(listener, registry, config, api_cancel.clone()))
    });
    let node_lifecycle = node_lifecycle_config(&args)?;
    // The leader-only components follow this replica's Raft role.
    let leadership = flotilla_controllers::leadership::Leadership::new(replica.node.clone(), args.name.clone(), ranges)
        .with("scheduler", flotilla_scheduler::scheduling_loop::component())
        .with("replicaset", flotilla_controllers::replicaset::component())
        .with("deployment", flotilla_controllers::deployment::component())
        .with("job", flotilla_controllers::job::component())
        .with("statefulset", flotilla_controllers::statefulset::component())
        .with("daemonset", flotilla_controllers::daemonset::component())
        .with("persistentvolume-binder", flotilla_controllers::volume::component())
        .with("garbage-collector", flotilla_controllers::garbage_collector::component())
        .with("namespace", flotilla_controllers::namespace::component())
        .with("endpoints", flotilla_controllers::endpoints::component())
        .with("disruption", flotilla_controllers::disruption::component())
        .with("node-lifecycle", flotilla_controllers::node_lifecycle::component_with(node_lifecycle));
    let leadership = match &encryption {
        Some(enc) => leadership
            .with_encryption(Some(enc.clone()))
            .with("secrets-reencrypt", flotilla_controllers::reencrypt::component(replica.node.clone(), enc.clone())),
        None => leadership,
    };
    let leadership = match (issues_tokens, root_ca) {
        (true, Some(ca)) => leadership
            .with_service_account_tokens(true)
            .with("serviceaccount", flotilla_controllers::serviceaccount::component(ca)),
        (true, None) => anyhow::bail!("--service-account-signing-key-file needs --root-ca-file or --client-ca-file"),
        (false, _) => leadership,
    };
    let leadership = match args.compaction_interval {
        Duration::ZERO => leadership,
        every => leadership.with("compactor", flotilla_controllers::compactor::component(replica.node.clone(), every)),
    };
    let leader_task = tokio::spawn(leadership.run(api_cancel.clone()));
    wait_for_signal().await?;
    tracing::info!("stopping");
    api_cancel.cancel();
    let _ = leader_task.await;
    if let Some(task) = api_task {
        // Open watches would hold a graceful shutdown forever; give it a moment, then drop them.
        if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
            tracing::debug!("kubernetes API connections dropped at shutdown");
        }
    }
    if tokio::time::timeout(SHUTDOWN_DEADLINE, replica.stop()).await.is_err() {
        tracing::warn!("replica did not stop in time; exiting anyway");
    }
    Ok(())
}

/// How this replica starts: joining through `--join`, as an existing member, or as a
/// founding member (after `--force-new-cluster` rewrote its data, if asked).
async fn bootstrap(args: &ServerArgs, cfg: &Config, me: &Node) -> anyhow::Result<Bootstrap> {
    let id = ids::member_id(&me.peer_url, &cfg.cluster_token);
    if args.force_new_cluster {
        let forced = flotilla_store::recovery::force_new_cluster(&cfg.data_dir, id, me.clone())
            .await
            .map_err(|e| anyhow::anyhow!("--force-new-cluster: {e}"))?;
        if forced {
            tracing::warn!(
                "--force-new-cluster: this member is now the only member of its cluster; writes the lost members \
                 committed but this one never received are gone. Remove the flag before the next restart."
            );
        }
        return Ok(Bootstrap::Existing);
    }
    if let Some(join) = &args.join {
        let tls = args.store_security.join_tls()?;
        crate::join::register(&urls::list(join), &me.peer_url, &cfg.data_dir, tls).await?;
        return Ok(Bootstrap::Existing);
    }
    match args.initial_cluster_state {
        ClusterState::Existing => Ok(Bootstrap::Existing),
        ClusterState::New => {
            let listed = match &args.initial_cluster {
                Some(s) => urls::cluster(s)?,
                None => BTreeMap::from([(args.name.clone(), me.peer_url.clone())]),
            };
            if listed.get(&args.name) != Some(&me.peer_url) {
                bail!("--initial-cluster must list this member as {}={}", args.name, me.peer_url);
            }
            all_https("--initial-cluster", &listed.values().collect::<Vec<_>>())?;
            Ok(Bootstrap::New(founding_members(listed, &cfg.cluster_token)))
        }
    }
}

/// The founding membership from `--initial-cluster`'s names and peer URLs. Every founding
/// member must propose the very same one, so client URLs are left out here; each member
/// publishes its own once it has joined.
pub fn founding_members(listed: BTreeMap<String, String>, token: &str) -> BTreeMap<NodeId, Node> {
    listed
        .into_iter()
        .map(|(name, url)| (ids::member_id(&url, token), Node { name, peer_url: url, client_urls: Vec::new() }))
        .collect()
}

/// Where pods reach this replica's API: `--advertise-api-address` on the listening port, or
/// the listening address itself, or (listening everywhere) the peer URL's address.
fn advertised_api(args: &ServerArgs, listen: SocketAddr, peer_url: &str) -> anyhow::Result<SocketAddr> {
    let ip = match args.advertise_api_address {
        Some(ip) => ip,
        None if !listen.ip().is_unspecified() => listen.ip(),
        None => urls::socket_addr_tls(peer_url)?.0.ip(),
    };
    if ip.is_unspecified() {
        bail!("--listen-api-url listens on every interface: set --advertise-api-address to the one pods should use");
    }
    Ok(SocketAddr::new(ip, listen.port()))
}

async fn bind(url: &str) -> anyhow::Result<TcpListener> {
    let (addr, _) = urls::socket_addr_tls(url)?;
    TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {url}"))
}

/// Resolve on SIGINT or SIGTERM.
pub async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

/// The node lifecycle controller's settings from the flags (startup grace: 1.5 × grace, as
/// upstream's 60 s to 40 s).
fn node_lifecycle_config(
    args: &ServerArgs,
) -> anyhow::Result<flotilla_controllers::node_lifecycle::NodeLifecycleConfig> {
    let grace = Duration::from_secs(args.node_monitor_grace_period);
    let config = flotilla_controllers::node_lifecycle::NodeLifecycleConfig {
        grace_period: grace,
        startup_grace_period: grace + grace / 2,
        ..Default::default()
    };
    config.validate().map_err(|e| anyhow::anyhow!("--node-monitor-grace-period: {e}"))?;
    Ok(config)
}

/// A duration like `30s` or `5m`, or `0s` (off).
fn interval_or_off(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        other => crate::bench_api::parse_duration(other),
    }
}
