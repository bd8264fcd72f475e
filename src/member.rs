//! `flotilla member list|add|promote|remove|move-leader`: the store's membership through
//! etcd's Cluster API (and Maintenance.MoveLeader), against any replica.

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::urls;

#[derive(Args, Debug)]
pub struct MemberArgs {
    /// Client URLs of any replicas (comma-separated).
    #[arg(long, env = "FLOTILLA_ENDPOINTS", default_value = "http://127.0.0.1:2379", global = true)]
    endpoints: String,
    #[command(flatten)]
    tls: crate::etcd_tls::EtcdTlsArgs,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// List members.
    List,
    /// Add a member by its peer URL; start it afterwards with --initial-cluster-state existing.
    Add {
        /// The new member's name (used only to print its start command).
        name: String,
        #[arg(long)]
        peer_urls: String,
        /// Add as a non-voting learner (promote it once it has caught up).
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to a voting member.
    Promote { id: String },
    /// Remove a member.
    Remove { id: String },
    /// Hand Raft leadership to a voting member (before restarting the leader, say).
    MoveLeader { id: String },
}

fn parse_id(s: &str) -> anyhow::Result<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("{s:?} is not a hex member ID"))
}

pub async fn run(args: MemberArgs) -> anyhow::Result<()> {
    let endpoints = urls::list(&args.endpoints);
    let options = args.tls.apply(&endpoints, etcd_client::ConnectOptions::new())?;
    let mut client =
        etcd_client::Client::connect(endpoints, Some(options)).await.context("connecting to the cluster")?;
    match args.action {
        Action::List => {
            let resp = client.member_list().await?;
            println!("{:<16}  {:<8}  {:<10}  {:<28}  CLIENT URLS", "ID", "STATUS", "NAME", "PEER URLS");
            for m in resp.members() {
                let status = if m.is_learner() { "learner" } else { "voter" };
                let name = if m.name().is_empty() { "(unstarted)" } else { m.name() };
                println!(
                    "{:<16x}  {status:<8}  {name:<10}  {:<28}  {}",
                    m.id(),
                    m.peer_urls().join(","),
                    m.client_urls().join(",")
                );
            }
        }
        Action::Add { name, peer_urls, learner } => {
            let opts = etcd_client::MemberAddOptions::new();
            let opts = if learner { opts.with_is_learner() } else { opts };
            let resp = client.member_add(urls::list(&peer_urls), Some(opts)).await?;
            let m = resp.member().context("the server returned no member")?;
            println!("Member {:x} added{}.", m.id(), if learner { " as a learner" } else { "" });
            let mut cluster: Vec<String> = resp
                .member_list()
                .iter()
                .filter(|x| !x.name().is_empty() || x.id() == m.id())
                .map(|x| {
                    format!("{}={}", if x.id() == m.id() { name.as_str() } else { x.name() }, x.peer_urls().join(","))
                })
                .collect();
            cluster.sort();
            println!("Start it with:");
            println!("  flotilla server --name {name} --initial-advertise-peer-urls {peer_urls} --listen-peer-urls {peer_urls} \\");
            println!("    --initial-cluster {} --initial-cluster-state existing ...", cluster.join(","));
        }
        Action::Promote { id } => {
            let id = parse_id(&id)?;
            client.member_promote(id).await?;
            println!("Member {id:x} promoted.");
        }
        Action::Remove { id } => {
            let id = parse_id(&id)?;
            client.member_remove(id).await?;
            println!("Member {id:x} removed.");
        }
        Action::MoveLeader { id } => {
            let id = parse_id(&id)?;
            // Any replica serves it (it is forwarded to the leader); the status only names
            // the leader it moves from.
            let from = client.status().await.context("asking for the current leader")?.leader();
            client.move_leader(id).await?;
            println!("Leadership transferred from {from:x} to {id:x}.");
        }
    }
    Ok(())
}
