//! `flotilla snapshot save|restore|status`, and the server's scheduled snapshots.
//!
//! A snapshot file is what `etcdctl snapshot save` writes from the `Maintenance.Snapshot`
//! stream (the state archive padded to whole sectors, then its SHA-256; see
//! `flotilla_store::etcd::snapshot`): `etcdctl snapshot save` against a replica makes one too,
//! and scheduled snapshots are written in the same format. `restore` builds a data directory
//! for one founding member of a new cluster from it (`flotilla_store::recovery`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use flotilla_store::etcd::snapshot as file_format;
use flotilla_store::{recovery, StoreNode};
use tokio_util::sync::CancellationToken;

use crate::urls;

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Save a consistent snapshot of the store from a running replica (the first of
    /// --endpoints that answers).
    Save {
        file: PathBuf,
        /// Client URLs of any replicas (comma-separated).
        #[arg(long, env = "FLOTILLA_ENDPOINTS", default_value = "http://127.0.0.1:2379")]
        endpoints: String,
        #[command(flatten)]
        tls: crate::etcd_tls::EtcdTlsArgs,
    },
    /// Build the data directory of one founding member of a new cluster from a snapshot;
    /// run it for every member with the same file and --initial-cluster, then start each
    /// with `flotilla server` and the same name, data dir and initial cluster.
    Restore {
        file: PathBuf,
        /// The new data directory (must not exist, or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// This member's name in --initial-cluster.
        #[arg(long)]
        name: String,
        /// The new cluster's members, `name=peer-url,...`.
        #[arg(long)]
        initial_cluster: String,
        /// The new cluster's token (as `flotilla server --initial-cluster-token`).
        #[arg(long, default_value = "flotilla-cluster")]
        initial_cluster_token: String,
    },
    /// Check a snapshot file and print what it holds.
    Status { file: PathBuf },
}

pub async fn run(args: SnapshotArgs) -> anyhow::Result<()> {
    match args.action {
        Action::Save { file, endpoints, tls } => save(&file, &urls::list(&endpoints), &tls).await,
        Action::Restore { file, data_dir, name, initial_cluster, initial_cluster_token } => {
            let listed = urls::cluster(&initial_cluster)?;
            if !listed.contains_key(&name) {
                bail!("--initial-cluster does not list --name {name}");
            }
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let members = crate::server::founding_members(listed, &initial_cluster_token);
            let restored =
                recovery::restore(&bytes, &data_dir, members).await.map_err(|e| anyhow::anyhow!("restore: {e}"))?;
            println!(
                "Restored revision {} into {} for member {name}. Start it with:\n  flotilla server --name {name} \
                 --data-dir {} --initial-cluster {initial_cluster} --initial-cluster-token {initial_cluster_token} ...",
                restored.revision,
                data_dir.display(),
                data_dir.display()
            );
            Ok(())
        }
        Action::Status { file } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let about = recovery::inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!("revision: {}", about.revision);
            println!("raft index: {}", about.index);
            println!("keys: {}", about.keys);
            println!("bytes: {}", bytes.len());
            println!("members when saved: {}", about.members.join(","));
            Ok(())
        }
    }
}

/// Stream a snapshot from the first endpoint that serves one into `file` (via a temporary
/// and a rename, so `file` is whole or untouched).
async fn save(file: &Path, endpoints: &[String], tls: &crate::etcd_tls::EtcdTlsArgs) -> anyhow::Result<()> {
    let mut last_error = anyhow::anyhow!("no --endpoints given");
    let options =
        tls.apply(endpoints, etcd_client::ConnectOptions::new().with_connect_timeout(Duration::from_secs(3)))?;
    for endpoint in endpoints {
        match fetch(endpoint, options.clone()).await {
            Ok((bytes, revision)) => {
                file_format::archive_of(&bytes).map_err(|e| anyhow::anyhow!("{endpoint} sent a bad snapshot: {e}"))?;
                write_atomic(file, &bytes)?;
                println!(
                    "Snapshot saved at {} ({} bytes, revision {revision}, from {endpoint})",
                    file.display(),
                    bytes.len()
                );
                return Ok(());
            }
            Err(e) => {
                eprintln!("{endpoint}: {e:#}");
                last_error = e;
            }
        }
    }
    Err(last_error.context("no endpoint sent a snapshot"))
}

/// The whole snapshot stream of one replica, and the revision its header reported.
async fn fetch(endpoint: &str, options: etcd_client::ConnectOptions) -> anyhow::Result<(Vec<u8>, i64)> {
    let mut client = etcd_client::Client::connect([endpoint], Some(options)).await.context("connecting")?;
    let mut stream = client.snapshot().await.context("requesting a snapshot")?;
    let (mut bytes, mut revision) = (Vec::new(), 0);
    while let Some(msg) = stream.message().await.context("receiving the snapshot")? {
        revision = msg.header().map_or(revision, |h| h.revision());
        bytes.extend_from_slice(msg.blob());
    }
    Ok((bytes, revision))
}

/// `bytes` into `path` through a temporary and a rename, file and directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    flotilla_store::raft::snapshot::write_atomic(path, bytes)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

/// `flotilla server --snapshot-interval`: this replica saves its own snapshot every `every`
/// into `dir` as `flotilla-<name>-<UTC time>.snap`, keeping the newest `retain`.
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    pub retain: usize,
    pub name: String,
}

impl Schedule {
    pub async fn run(self, node: Arc<StoreNode>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.save_one(&node).await {
                Ok(path) => tracing::info!(path = %path.display(), "scheduled snapshot saved"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "scheduled snapshot failed"),
            }
        }
    }

    async fn save_one(&self, node: &StoreNode) -> anyhow::Result<PathBuf> {
        let archive = node.snapshot_archive().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let stamp: String =
            flotilla_apiserver::registry::meta::now_rfc3339().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let path = self.dir.join(format!("{}{stamp}.snap", self.prefix()));
        write_atomic(&path, &file_format::to_file(archive))?;
        self.prune()?;
        Ok(path)
    }

    fn prefix(&self) -> String {
        format!("flotilla-{}-", self.name)
    }

    /// Delete this replica's oldest scheduled snapshots beyond `retain` (names sort by time).
    fn prune(&self) -> anyhow::Result<()> {
        let prefix = self.prefix();
        let mut ours: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with(&prefix) && name.ends_with(".snap")
            })
            .collect();
        ours.sort();
        let excess = ours.len().saturating_sub(self.retain);
        for old in &ours[..excess] {
            std::fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(())
    }
}
