//! `flotilla agent`: run the node agent for this machine, or `--simulate N` hollow nodes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use flotilla_agent::api::certificate::NodeCertificate;
use flotilla_agent::api::ApiTls;
use flotilla_agent::config::{parse_labels, parse_taints, ServerConfig, ServicesConfig};
use flotilla_agent::node::host::{self, Host, SimulatedHost};
use flotilla_agent::simulate::{self, Simulation};
use flotilla_agent::{Agent, AgentConfig, NodeConfig};
use tokio_util::sync::CancellationToken;

mod runtime;

use runtime::{RuntimeArgs, RuntimeKind};

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// A TOML file of flags (`server = ["https://…:6443", …]`, `node-ip = "…"`); flags given
    /// on the command line win.
    #[arg(long, value_name = "FILE")]
    #[allow(dead_code)] // read by `config_file::expand` before parsing
    config: Option<PathBuf>,
    /// Every API server replica's URL (repeat the flag or separate with commas).
    #[arg(
        long = "server",
        env = "FLOTILLA_AGENT_SERVERS",
        value_delimiter = ',',
        default_value = "https://127.0.0.1:6443"
    )]
    servers: Vec<String>,
    /// Allow plain http:// --server URLs: no TLS, no authentication, and the agent's own
    /// endpoint guarded only by a token every node can read. For local experiments only;
    /// said loudly on stderr.
    #[arg(long, env = "FLOTILLA_INSECURE_PLAINTEXT", default_value_t = false)]
    insecure_plaintext: bool,
    /// The CA that signed the API servers' certificates (PEM); the agent speaks TLS to
    /// https:// --server URLs with --api-cert-file and --api-key-file, or with its own
    /// certificate, got with --token and kept in DATA_DIR/pki.
    #[arg(long, env = "FLOTILLA_API_CA_FILE", value_name = "FILE")]
    api_ca_file: Option<PathBuf>,
    /// A bootstrap token (`flotilla token create`): the agent makes a key, has the cluster
    /// CA certify it as system:node:<node name>, keeps it in DATA_DIR/pki and renews it
    /// before it expires. Needed only until it has a certificate.
    #[arg(
        long,
        env = "FLOTILLA_TOKEN",
        hide_env_values = true,
        conflicts_with_all = ["api_cert_file", "api_key_file"],
        requires = "api_ca_file"
    )]
    token: Option<String>,
    /// The node's client certificate (PEM), for user system:node:<node name> in group
    /// system:nodes (`flotilla pki issue --user system:node:NAME --group system:nodes`).
    #[arg(long, env = "FLOTILLA_API_CERT_FILE", value_name = "FILE", requires_all = ["api_ca_file", "api_key_file"])]
    api_cert_file: Option<PathBuf>,
    /// The private key of --api-cert-file (PEM).
    #[arg(long, env = "FLOTILLA_API_KEY_FILE", value_name = "FILE", requires_all = ["api_ca_file", "api_cert_file"])]
    api_key_file: Option<PathBuf>,
    /// The Node's name [default: this machine's host name].
    #[arg(long, env = "FLOTILLA_NODE_NAME")]
    node_name: Option<String>,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Run containers that ask for `securityContext.privileged` (refused by default).
    #[arg(long, env = "FLOTILLA_ALLOW_PRIVILEGED")]
    allow_privileged: bool,
    /// Extra node labels, `key=value,...`.
    #[arg(long, env = "FLOTILLA_NODE_LABELS", default_value = "")]
    labels: String,
    /// Node taints, `key=value:Effect,...` (Effect: NoSchedule, PreferNoSchedule, NoExecute).
    #[arg(long, env = "FLOTILLA_NODE_TAINTS", default_value = "")]
    taints: String,
    /// The `pods` capacity of the node.
    #[arg(long, env = "FLOTILLA_MAX_PODS", default_value_t = 110)]
    max_pods: u32,
    /// Where the agent keeps its files; its file system is the node's ephemeral storage.
    #[arg(long, env = "FLOTILLA_AGENT_DATA_DIR", default_value = "flotilla-agent.data")]
    data_dir: PathBuf,
    /// The node's InternalIP [default: the address of this machine's default route].
    #[arg(long, env = "FLOTILLA_NODE_IP")]
    node_ip: Option<String>,
    /// Run this many simulated nodes (fake runtime only) instead of one real node.
    #[arg(long)]
    simulate: Option<usize>,
    /// Simulated nodes are named `<prefix><i>`.
    #[arg(long, default_value = "sim-")]
    node_name_prefix: String,
    /// CPUs each simulated node reports.
    #[arg(long, default_value_t = 4)]
    sim_cpus: u64,
    /// Memory each simulated node reports, in GiB.
    #[arg(long, default_value_t = 16)]
    sim_memory_gib: u64,
    /// Ephemeral storage each simulated node reports, in GiB.
    #[arg(long, default_value_t = 100)]
    sim_storage_gib: u64,
    /// Port of the endpoint API servers proxy logs, exec and port-forward to (0: any free
    /// port, advertised in the node status). Simulated nodes serve nothing.
    #[arg(long, env = "FLOTILLA_AGENT_PORT", default_value_t = flotilla_agent::config::DEFAULT_SERVER_PORT)]
    port: u16,
    /// Address that endpoint listens on.
    #[arg(long, env = "FLOTILLA_AGENT_ADDRESS", default_value = "0.0.0.0")]
    address: std::net::IpAddr,
    /// Seconds between syncs of an idle pod (events trigger syncs at once).
    #[arg(long, default_value_t = 10)]
    pod_resync_seconds: u64,
    /// The cluster DNS address pods use (the `kube-dns` Service's ClusterIP).
    #[arg(long, env = "FLOTILLA_CLUSTER_DNS", default_value = "10.96.0.10")]
    cluster_dns: std::net::Ipv4Addr,
    /// The cluster domain.
    #[arg(long, env = "FLOTILLA_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Host port of this agent's DNS server (UDP and TCP); the service rules send the
    /// cluster DNS address there.
    #[arg(long, env = "FLOTILLA_DNS_PORT", default_value_t = 53)]
    dns_port: u16,
    /// Run neither the service proxy (nftables) nor the cluster DNS. They run by default
    /// with the docker and containerd runtimes when the agent is root and `nft` is
    /// installed, never with process or fake.
    #[arg(long)]
    no_services: bool,
}

/// How long SIGTERM waits for the agent's loops to stop (containers keep running).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    crate::plaintext::check("--server", &args.servers, args.insecure_plaintext)?;
    let mut config = AgentConfig {
        servers: args.servers.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        pod_resync: Duration::from_secs(args.pod_resync_seconds),
        allow_privileged: args.allow_privileged,
        api_tls: given_tls(&args)?,
        ..AgentConfig::default()
    };
    let labels = parse_labels(&args.labels)?;
    let taints = parse_taints(&args.taints)?;
    let cancel = CancellationToken::new();
    let task = match args.simulate {
        Some(_) if !matches!(args.runtime.runtime, RuntimeKind::Fake) => {
            anyhow::bail!("--simulate runs hollow nodes: it needs --runtime fake")
        }
        Some(_) if args.api_ca_file.is_some() && config.api_tls.is_none() => {
            anyhow::bail!("--simulate needs --api-cert-file and --api-key-file: simulated nodes share one certificate")
        }
        Some(count) => {
            let host = SimulatedHost {
                cpu_millis: args.sim_cpus * 1000,
                memory_bytes: args.sim_memory_gib << 30,
                storage_bytes: args.sim_storage_gib << 30,
            };
            let sim =
                Simulation { count, prefix: args.node_name_prefix, host, labels, taints, max_pods: args.max_pods };
            config.validate()?;
            sim.validate()?;
            tokio::spawn(simulate::run(config, sim, cancel.clone()))
        }
        None => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
            let name = args.node_name.or_else(host::hostname).context("no --node-name and no host name")?;
            if let (Some(ca), None) = (&args.api_ca_file, &config.api_tls) {
                let ca = flotilla_pki::read_pem(ca).context("--api-ca-file")?;
                let own = NodeCertificate::new(&args.data_dir, &name, &ca);
                config.api_tls = Some(own_certificate(&own, &config.servers, args.token.as_deref()).await?);
                config.node_certificate = Some(own);
            }
            if let Some(tls) = &config.api_tls {
                check_identity(tls, &name)?;
            }
            let address = args.node_ip.unwrap_or_else(|| host::primary_address().to_string());
            let runtime = args.runtime.build(&name, &args.data_dir, &address).await?;
            if !args.no_services
                && matches!(args.runtime.runtime, RuntimeKind::Docker | RuntimeKind::Containerd)
                && services_possible()
            {
                let (cluster_dns, cluster_domain, dns_port) = (args.cluster_dns, args.cluster_domain, args.dns_port);
                let scope = runtime::scope(&name, &args.data_dir)?;
                config.services = Some(ServicesConfig { cluster_dns, cluster_domain, dns_port, scope });
            }
            let host = Host::Real { data_dir: args.data_dir };
            let node = NodeConfig { name, labels, taints, max_pods: args.max_pods, address, host };
            config.server = Some(ServerConfig { address: args.address, port: args.port });
            let agent = Agent::new(config, node, runtime)?;
            let cancel = cancel.clone();
            tokio::spawn(async move {
                agent.run(cancel).await;
                Ok(())
            })
        }
    };
    crate::server::wait_for_signal().await?;
    cancel.cancel();
    match tokio::time::timeout(SHUTDOWN_DEADLINE, task).await {
        Ok(joined) => joined.context("agent task")??,
        Err(_) => tracing::warn!("agent did not stop in time; exiting anyway"),
    }
    Ok(())
}

/// The node's own certificate: the one kept from an earlier run while it is valid, else a
/// new one got with the bootstrap token.
async fn own_certificate(own: &NodeCertificate, servers: &[String], token: Option<&str>) -> anyhow::Result<ApiTls> {
    if let Some(kept) = own.load() {
        return Ok(kept);
    }
    let Some(token) = token else {
        anyhow::bail!(
            "--api-ca-file without --api-cert-file: the agent has no valid certificate of its own kept in its data \
             dir; pass a bootstrap token (--token, from `flotilla token create`) to get one"
        );
    };
    Ok(own.bootstrap(servers, token).await?)
}

/// The agent's TLS towards the API servers from --api-ca-file, --api-cert-file and
/// --api-key-file (clap makes the last two need the first); none when they are not given.
fn given_tls(args: &AgentArgs) -> anyhow::Result<Option<ApiTls>> {
    let (Some(ca), Some(cert), Some(key)) = (&args.api_ca_file, &args.api_cert_file, &args.api_key_file) else {
        return Ok(None);
    };
    let read = |flag: &str, path: &PathBuf| flotilla_pki::read_pem(path).with_context(|| flag.to_string());
    Ok(Some(ApiTls {
        ca_pem: read("--api-ca-file", ca)?,
        cert_pem: read("--api-cert-file", cert)?,
        key_pem: read("--api-key-file", key)?,
    }))
}

/// A node certificate must name this node: the API server lets node N touch only N's
/// objects, so a mismatch would fail every request. Another identity (an admin's, say) is
/// allowed, with a warning.
fn check_identity(tls: &ApiTls, node: &str) -> anyhow::Result<()> {
    let id = tls.identity()?;
    match id.user.strip_prefix("system:node:") {
        Some(named) if named == node => Ok(()),
        Some(named) => anyhow::bail!(
            "--api-cert-file is node {named:?}'s certificate, but this node is {node:?} (set --node-name {named})"
        ),
        None => {
            tracing::warn!(user = id.user, "--api-cert-file is not a node's certificate (system:node:<name>)");
            Ok(())
        }
    }
}

/// Whether this agent can program nftables (root, `nft` installed). Without it, Services
/// and the cluster DNS are off and pods keep the runtime's resolver, rather than getting a
/// nameserver nothing answers.
fn services_possible() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let nft = std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success());
    if !(root && nft) {
        tracing::warn!(root, nft, "Services and cluster DNS are off on this node: they need root and nft (nftables)");
    }
    root && nft
}
