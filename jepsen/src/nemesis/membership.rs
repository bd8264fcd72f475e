//! The membership nemesis: remove a member, then add it back as a learner with an empty data
//! dir and promote it once it has caught up — etcd's runtime reconfiguration, through the
//! Cluster API, while the workload runs.
//!
//! Flotilla only lets a learner be promoted once it has replicated most of the leader's log
//! (`PROMOTE_READY_PERCENT` in the store), so promotion is retried until it is accepted or
//! [`MEMBER_TIMEOUT`] passes.
//!
//! Invariants: requests go to the other nodes only (the removed node's own view is stale by
//! design); the removed node's process is stopped before its data dir is wiped, and it comes
//! back with an empty data dir, never with its old state. (Flotilla derives a member's ID
//! from its peer URL and the cluster token, so the re-added member has the same ID; etcd
//! would give it a new one.)

use std::time::Duration;

use anyhow::{bail, Context};
use etcd_client::{Client, ConnectOptions, MemberAddOptions};
use tokio::time::Instant;

use crate::cluster::{name, Cluster};

/// How long one membership step (remove, add, promote) may keep retrying: several elections.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one request, and the pause between retries.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_PAUSE: Duration = Duration::from_millis(300);

/// A client to every node except `i`.
async fn others(cluster: &Cluster, i: usize) -> anyhow::Result<Client> {
    let urls: Vec<String> = (0..cluster.len()).filter(|&j| j != i).map(|j| cluster.node(j).client_url).collect();
    let opts = ConnectOptions::new().with_connect_timeout(CALL_TIMEOUT).with_timeout(CALL_TIMEOUT);
    Ok(Client::connect(urls, Some(opts)).await?)
}

/// Retry `f` until it succeeds or [`MEMBER_TIMEOUT`] passes.
async fn retry<T, F, Fut>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + MEMBER_TIMEOUT;
    loop {
        let err = match tokio::time::timeout(CALL_TIMEOUT, f()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => anyhow::anyhow!("timed out"),
        };
        if Instant::now() >= deadline {
            return Err(err.context(format!("{what}: gave up after {MEMBER_TIMEOUT:?}")));
        }
        tracing::debug!(error = %err, "{what}: retrying");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Remove node `i` from the membership, then stop its process.
pub async fn remove(cluster: &mut Cluster, i: usize) -> anyhow::Result<()> {
    let peer_url = cluster.node(i).peer_url;
    let c = &*cluster;
    retry("member remove", || async {
        let mut client = others(c, i).await?;
        let members = client.member_list().await?;
        let Some(m) = members.members().iter().find(|m| m.peer_urls().contains(&peer_url)) else {
            return Ok(()); // already gone (an earlier attempt succeeded but its answer was lost)
        };
        client.member_remove(m.id()).await?;
        Ok(())
    })
    .await?;
    cluster.kill(i)
}

/// Add node `i` back as a learner, start it with an empty data dir, and promote it.
pub async fn re_add(cluster: &mut Cluster, i: usize) -> anyhow::Result<()> {
    let peer_url = cluster.node(i).peer_url;
    let c = &*cluster;
    let (id, initial) = retry("member add", || async {
        let mut client = others(c, i).await?;
        let listed = client.member_list().await?;
        if let Some(m) = listed.members().iter().find(|m| m.peer_urls().contains(&peer_url)) {
            return Ok((m.id(), initial_cluster(listed.members(), m.id(), i)));
        }
        let resp = client.member_add([peer_url.as_str()], Some(MemberAddOptions::new().with_is_learner())).await?;
        let m = resp.member().context("member add returned no member")?;
        Ok((m.id(), initial_cluster(resp.member_list(), m.id(), i)))
    })
    .await?;
    cluster.rejoin(i, &initial)?;
    let c = &*cluster;
    retry("member promote", || async {
        let mut client = others(c, i).await?;
        let listed = client.member_list().await?;
        match listed.members().iter().find(|m| m.id() == id) {
            None => bail!("member {id:x} vanished"),
            Some(m) if !m.is_learner() => Ok(()),
            Some(_) => Ok(client.member_promote(id).await.map(drop)?),
        }
    })
    .await
}

/// `name=peer_url,...` for starting the new member: started members by their names, the new
/// one by its node name; unstarted others are left out (as etcd's `member add` prints it).
fn initial_cluster(members: &[etcd_client::Member], new_id: u64, i: usize) -> String {
    let mut parts: Vec<String> = members
        .iter()
        .filter(|m| m.id() == new_id || !m.name().is_empty())
        .map(|m| {
            let n = if m.id() == new_id { name(i) } else { m.name().to_owned() };
            format!("{n}={}", m.peer_urls().join(","))
        })
        .collect();
    parts.sort();
    parts.join(",")
}
