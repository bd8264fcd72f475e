//! `flotilla server --join URLS`: a new replica adds itself to a running cluster as a
//! learner, then promotes itself to a voter once the leader finds it caught up.
//!
//! - Registration happens only while the data dir holds no Raft state: a restarted replica
//!   is already a member and rejoins by itself.
//! - The new member is a learner first, so a replica that is slow to catch up never counts
//!   towards (or blocks) the quorum; the leader refuses the promotion until its log has
//!   caught up (the same check as `flotilla member promote`), and this replica retries.
//! - A member already listed with this peer URL is accepted only if it never started (added
//!   with `flotilla member add`); one that did start is a previous incarnation, which must
//!   be removed first (`flotilla member remove`), as a replacement's data dir is empty.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use flotilla_store::StoreNode;
use tokio_util::sync::CancellationToken;

/// How often a learner asks to be promoted.
const PROMOTE_EVERY: Duration = Duration::from_secs(1);

/// Add this replica (`peer_url`) as a learner through any of `endpoints`, unless its data
/// dir shows it is already a member.
///
/// `https://` endpoints are called with `tls` (the replica's own peer certificate, which the
/// etcd API admits as a replica's).
pub async fn register(
    endpoints: &[String],
    peer_url: &str,
    data_dir: &Path,
    tls: Option<etcd_client::TlsOptions>,
) -> anyhow::Result<()> {
    if flotilla_store::recovery::has_raft_state(data_dir).await.map_err(|e| anyhow::anyhow!("{e}"))? {
        tracing::info!("--join: the data dir already holds this member's state; rejoining as before");
        return Ok(());
    }
    if endpoints.is_empty() {
        bail!("--join needs the client URL of at least one member");
    }
    let mut opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(10));
    if crate::store_security::all_https("--join", endpoints)? {
        let tls = tls
            .context("--join with https:// URLs needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file")?;
        opts = opts.with_tls(tls);
    }
    let mut client = etcd_client::Client::connect(endpoints, Some(opts)).await.context("--join: connecting")?;
    let members = client.member_list().await.context("--join: listing members")?;
    if let Some(m) = members.members().iter().find(|m| m.peer_urls().iter().any(|u| u == peer_url)) {
        if !m.name().is_empty() {
            bail!(
                "--join: member {:x} ({}) already has peer URL {peer_url}; if it is the replica this one replaces, \
                 remove it first: flotilla member remove {:x}",
                m.id(),
                m.name(),
                m.id()
            );
        }
        tracing::info!(member_id = format_args!("{:x}", m.id()), "--join: already added, not started; starting");
        return Ok(());
    }
    let opts = etcd_client::MemberAddOptions::new().with_is_learner();
    let added = client.member_add([peer_url], Some(opts)).await.context("--join: adding this member")?;
    let id = added.member().map(|m| m.id()).unwrap_or_default();
    tracing::info!(member_id = format_args!("{id:x}"), "--join: added as a learner");
    Ok(())
}

/// Until this replica is a voter: ask the leader to promote it, every [`PROMOTE_EVERY`].
/// Gives up if this replica, once it has seen itself in the membership, is removed.
pub async fn promote_when_caught_up(node: Arc<StoreNode>, cancel: CancellationToken) {
    let mut listed_before = false;
    loop {
        let listed = node.member_list().iter().any(|m| m.id == node.id());
        if listed_before && !listed {
            tracing::warn!("--join: this member was removed before it was promoted");
            return;
        }
        listed_before |= listed;
        if listed && !node.status().is_learner {
            return;
        }
        match node.member_promote(node.id()).await {
            Ok(()) => {
                tracing::info!("--join: caught up and promoted to a voting member");
                return;
            }
            Err(e) => tracing::debug!(error = %e, "--join: not promoted yet"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PROMOTE_EVERY) => {}
        }
    }
}
