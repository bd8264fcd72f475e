//! The `flotilla` binary: thin subcommands over the library crates.

mod agent;
mod api_security;
mod auto_pki;
mod bench;
mod bench_api;
mod bench_handover;
mod bench_scheduler;
mod bench_services;
mod bench_startup;
mod config_file;
mod dial;
mod etcd_tls;
mod failover;
mod join;
mod lb;
mod member;
mod pki;
mod plaintext;
mod server;
mod snapshot;
mod status;
mod store_security;
mod token;
mod up;
mod urls;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "flotilla", version, about = "A highly available container orchestrator with an embedded Raft store")]
struct Cli {
    /// Log lines as text, or as one JSON object per line (for log shippers).
    #[arg(long, global = true, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent (registers a Node, heartbeats, runs the pods bound to it).
    Agent(Box<agent::AgentArgs>),
    /// Run one control-plane replica (the replicated store and its etcd v3 API).
    Server(Box<server::ServerArgs>),
    /// Run a local cluster of replicas as child processes, for trying flotilla out.
    Up(up::UpArgs),
    /// Forward TCP connections to a healthy replica's Kubernetes API (one address for kubectl).
    Lb(lb::LbArgs),
    /// List and change the store's members (etcd's Cluster API).
    Member(member::MemberArgs),
    /// Make the cluster's CA and certificates (server, admin, clients) and an admin kubeconfig.
    Pki(pki::PkiArgs),
    /// Create bootstrap tokens, with which agents join and get their node certificates.
    Token(token::TokenArgs),
    /// Save a snapshot of the store from a running replica, restore one into a new cluster.
    Snapshot(snapshot::SnapshotArgs),
    /// Members, leader, term, indexes, lag and DB size, nodes and pods by phase.
    Status(status::StatusArgs),
    /// Drive put / range / txn load through the etcd v3 API and report latency.
    Bench(bench::BenchArgs),
    /// Kill -9 the leader of a `flotilla up` cluster under load; time until writes resume.
    BenchFailover(failover::FailoverArgs),
    /// Measure the Kubernetes API of a `flotilla up` cluster: latency, watch fan-out, memory.
    BenchApi(bench_api::BenchApiArgs),
    /// Create simulated nodes and unbound pods on a `flotilla up` cluster; time until all are bound.
    BenchScheduler(bench_scheduler::BenchSchedulerArgs),
    /// Kill -9 the leader of a `flotilla up` cluster; time until its successor's controllers act.
    BenchHandover(bench_handover::BenchHandoverArgs),
    /// Create pods on the agents of a `flotilla up` cluster; time until each runs, and the agents' cost.
    BenchPodStartup(bench_startup::BenchPodStartupArgs),
    /// Create many Services on a `flotilla up` cluster; time endpoint changes into every agent's rules.
    BenchServices(bench_services::BenchServicesArgs),
}

fn main() {
    let args = config_file::expand(std::env::args_os().collect()).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    });
    let cli = Cli::parse_from(args);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not for journald, `docker logs` or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => {
            logs.json().init();
            // The processes this one starts (`flotilla up`'s replicas and agents) log alike.
            std::env::set_var("FLOTILLA_LOG_FORMAT", "json");
        }
    }
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(*args).await,
            Command::Agent(args) => agent::run(*args).await,
            Command::Up(args) => up::run(args).await,
            Command::Lb(args) => lb::run(args).await,
            Command::Member(args) => member::run(args).await,
            Command::Snapshot(args) => snapshot::run(args).await,
            Command::Pki(args) => pki::run(args).await,
            Command::Token(args) => token::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::BenchFailover(args) => failover::run(args).await,
            Command::BenchApi(args) => bench_api::run(args).await,
            Command::BenchScheduler(args) => bench_scheduler::run(args).await,
            Command::BenchHandover(args) => bench_handover::run(args).await,
            Command::BenchPodStartup(args) => bench_startup::run(args).await,
            Command::BenchServices(args) => bench_services::run(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("flotilla: error: {e:#}");
        std::process::exit(1);
    }
}
