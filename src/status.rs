//! `flotilla status`: the health of a cluster at a glance — every member with its role,
//! term, indexes, lag and database size (etcd's Cluster and Maintenance APIs, asked of each
//! member on its own client URL), and what the cluster runs (Nodes, pods by phase, read
//! from the store's `/registry/` keys).
//!
//! Exit status: 0 when a leader answered, 2 when none did (no quorum, or no member reached);
//! unreachable members are listed either way, with the error.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use etcd_client::{Client, ConnectOptions, GetOptions};
use serde::Serialize;

use crate::urls;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Client URLs of any replicas (comma-separated); the others are found from the
    /// membership.
    #[arg(long, env = "FLOTILLA_ENDPOINTS", default_value = "http://127.0.0.1:2379")]
    endpoints: String,
    #[command(flatten)]
    tls: crate::etcd_tls::EtcdTlsArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// How long one member may take to answer.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(3);

/// One member as `status` reports it.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    pub id: String,
    pub name: String,
    pub leader: bool,
    pub learner: bool,
    pub reachable: bool,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub term: Option<u64>,
    /// Last log index.
    pub raft_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// Entries this member has yet to apply of what the leader has (0 for the leader).
    pub lag: Option<u64>,
    pub db_size_bytes: Option<i64>,
    pub error: Option<String>,
}

/// The whole report (`-o json` prints it as is).
#[derive(Debug, Serialize)]
pub struct Report {
    pub members: Vec<MemberStatus>,
    /// The leader's name, when a member reported one that answered.
    pub leader: Option<String>,
    pub term: Option<u64>,
    pub nodes: i64,
    /// Pods by `status.phase` (`Pending` when unset).
    pub pods: BTreeMap<String, u64>,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let endpoints = urls::list(&args.endpoints);
    let options = ConnectOptions::new().with_connect_timeout(MEMBER_TIMEOUT).with_timeout(MEMBER_TIMEOUT);
    let report = gather(&endpoints, args.tls.apply(&endpoints, options)?).await?;
    match args.output {
        Format::Json => print_out(&(serde_json::to_string_pretty(&report)? + "\n")),
        Format::Table => print_out(&table(&report)),
    }
    if report.leader.is_none() {
        std::process::exit(2);
    }
    Ok(())
}

async fn gather(endpoints: &[String], options: ConnectOptions) -> anyhow::Result<Report> {
    let (mut client, list) = first_answering(endpoints, &options).await?;
    let mut members = Vec::new();
    for m in list.members() {
        let mut status = MemberStatus {
            id: format!("{:x}", m.id()),
            name: if m.name().is_empty() { "(unstarted)".into() } else { m.name().to_string() },
            leader: false,
            learner: m.is_learner(),
            reachable: false,
            peer_urls: m.peer_urls().to_vec(),
            client_urls: m.client_urls().to_vec(),
            term: None,
            raft_index: None,
            applied_index: None,
            lag: None,
            db_size_bytes: None,
            error: None,
        };
        match member_status(m.client_urls(), options.clone()).await {
            Ok(s) => {
                status.reachable = true;
                status.leader = s.header().is_some_and(|h| h.member_id() == s.leader()) && s.leader() != 0;
                status.term = Some(s.raft_term());
                status.raft_index = Some(s.raft_index());
                status.applied_index = Some(s.raft_applied_index());
                status.db_size_bytes = Some(s.db_size());
                status.error = s.errors().first().cloned();
            }
            Err(e) => status.error = Some(format!("{e:#}")),
        }
        members.push(status);
    }
    let leader_index = members.iter().find(|m| m.leader).and_then(|m| m.raft_index);
    for m in &mut members {
        m.lag = leader_index.zip(m.applied_index).map(|(l, a)| l.saturating_sub(a));
    }
    let leader = members.iter().find(|m| m.leader);
    let (leader, term) = (leader.map(|m| m.name.clone()), leader.and_then(|m| m.term));
    let (nodes, pods) = if leader.is_some() { objects(&mut client).await? } else { (0, BTreeMap::new()) };
    Ok(Report { members, leader, term, nodes, pods })
}

/// A client of the first endpoint that lists the members, and the list. (One client over
/// all endpoints would send some requests to a member that is down.)
async fn first_answering(
    endpoints: &[String],
    options: &ConnectOptions,
) -> anyhow::Result<(Client, etcd_client::MemberListResponse)> {
    let mut last = None;
    for url in endpoints {
        let attempt = async {
            let mut client = Client::connect([url], Some(options.clone())).await?;
            let list = tokio::time::timeout(MEMBER_TIMEOUT, client.member_list()).await.context("no answer")??;
            anyhow::Ok((client, list))
        };
        match attempt.await {
            Ok(found) => return Ok(found),
            Err(e) => last = Some(e.context(url.clone())),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no endpoints given")).context("no replica listed the members"))
}

async fn member_status(urls: &[String], options: ConnectOptions) -> anyhow::Result<etcd_client::StatusResponse> {
    anyhow::ensure!(!urls.is_empty(), "the member has not published its client URLs (not started?)");
    let mut client = Client::connect(urls, Some(options)).await?;
    Ok(tokio::time::timeout(MEMBER_TIMEOUT, client.status()).await.context("no answer")??)
}

/// Nodes, and pods by phase, from the store.
async fn objects(client: &mut Client) -> anyhow::Result<(i64, BTreeMap<String, u64>)> {
    let nodes = client.get("/registry/nodes/", Some(GetOptions::new().with_prefix().with_count_only())).await?;
    let pods = client.get("/registry/pods/", Some(GetOptions::new().with_prefix())).await?;
    let mut phases = BTreeMap::new();
    for kv in pods.kvs() {
        let pod: serde_json::Value = serde_json::from_slice(kv.value()).unwrap_or_default();
        let phase = pod.pointer("/status/phase").and_then(|p| p.as_str()).unwrap_or("Pending");
        *phases.entry(phase.to_string()).or_insert(0) += 1;
    }
    Ok((nodes.count(), phases))
}

/// Write to stdout; a reader that went away (`flotilla status | head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The report as a table.
fn table(r: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10}  {:<16}  {:<8}  {:>6}  {:>10}  {:>10}  {:>6}  {:>10}  ERROR",
        "NAME", "ID", "ROLE", "TERM", "INDEX", "APPLIED", "LAG", "DB SIZE"
    );
    let show = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for m in &r.members {
        let role = match (m.reachable, m.leader, m.learner) {
            (false, _, _) => "down",
            (_, true, _) => "leader",
            (_, _, true) => "learner",
            _ => "follower",
        };
        let size = m.db_size_bytes.map_or("-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
        let _ = writeln!(
            out,
            "{:<10}  {:<16}  {role:<8}  {:>6}  {:>10}  {:>10}  {:>6}  {size:>10}  {}",
            m.name,
            m.id,
            show(m.term),
            show(m.raft_index),
            show(m.applied_index),
            show(m.lag),
            m.error.as_deref().unwrap_or("")
        );
    }
    let _ = match &r.leader {
        Some(l) => writeln!(out, "\nleader {l}, term {}", show(r.term)),
        None => writeln!(out, "\nNO LEADER answered: the cluster cannot serve writes"),
    };
    let pods: Vec<String> = r.pods.iter().map(|(phase, n)| format!("{n} {phase}")).collect();
    let pods = if pods.is_empty() { "none".to_string() } else { pods.join(", ") };
    let _ = writeln!(out, "{} nodes; pods: {pods}", r.nodes);
    out
}
