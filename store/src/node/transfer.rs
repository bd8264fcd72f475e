//! Leadership transfer (etcd's `MoveLeader`) on openraft 0.9, which has no transfer API.
//!
//! What the procedure rests on, from openraft 0.9.25 (`engine/engine_impl.rs`
//! `handle_vote_req`, `core/raft_core.rs` `handle_tick_election` and `ExternalCommand::Elect`):
//! - A voter refuses every vote request while its leader lease is live: for `leader_lease`
//!   (= `election_timeout_max`, half of `--election-timeout`) after it last heard its
//!   leader's vote, which any AppendEntries carries (heartbeat, data, or a read-index round).
//! - A leader's own lease clock starts when it is elected; its heartbeats do not extend it.
//!   So a leader that has led for longer than `leader_lease` grants its vote to a candidate
//!   of a higher term whose last log ID is at least its own, and steps down.
//! - `trigger().elect()` makes a follower campaign at once, whatever its timers. A candidate
//!   that loses campaigns again only after its election timeout, which is fixed per node and
//!   grows by `2 × leader_lease` while the node remembers having seen a longer log (until its
//!   timer next fires): often too late, as a follower whose lease lapsed campaigns
//!   `leader_lease` plus its own timeout after the last heartbeat, and may win instead.
//!
//! The procedure, on the leader L for the target T:
//! 1. Catch-up, writes flowing: wait until T's matched log is within [`CATCH_UP_LAG`] entries
//!    of L's last log (bounded by `request_timeout`), so writes are not paused while T
//!    streams a backlog or a snapshot; and until L has led for longer than its lease (it
//!    records when it saw itself become leader, never earlier than openraft did), so that L's
//!    own vote goes to T at once.
//! 2. Pause: close the [`ProposalGate`]. New proposals, read-index rounds, lease revokes and
//!    membership changes on L are refused with `NoLeader` (callers retry and find the new
//!    leader); the ones in flight drain. L's log stops growing.
//! 3. Wait until T's matched log is L's last log: T's log is now as long as any voter's.
//! 4. Stop L's heartbeats. With nothing proposed and no read rounds, no AppendEntries leaves
//!    L, so followers' leases lapse `leader_lease` later.
//! 5. Ask T to campaign (a `Campaign` request over the peer service), and again every
//!    [`campaign_retry`] until it leads. With three voters T wins at once on L's vote. With
//!    more, T needs followers' votes too: one of its campaigns falls between the lapse of
//!    their leases and their own election timers, because the retry period is shorter than
//!    the shortest election timeout.
//! 6. Wait until L sees T lead (success), another member lead, or the deadline (both
//!    `LeaderTransferTimeout`). Steps 2 to 6 are bounded by [`paused_bound`].
//! 7. Always, by a drop guard (also on error, timeout or a cancelled request): heartbeats
//!    back on, gate open.
//!
//! Invariants:
//! - Safety is Raft's: a transfer only asks T to campaign; no vote is bypassed.
//! - A request the gate refuses was not proposed, so `NoLeader` is safe to retry.
//! - Whichever way a transfer ends, the cluster has a leader: T; or L, which never stopped
//!   leading and has its heartbeats back; or a member that won an election of its own.
//! - One transfer at a time per leader.
//!
//! Costs and limits: writes pause for steps 2 to 6, milliseconds with three voters; step 1 may
//! wait up to a lease (half an election timeout) after an election, writes flowing. With five
//! or more voters T needs followers' votes, so writes pause for a lease period, and T may
//! still lose to a follower whose timer fires first: that ends in `LeaderTransferTimeout`
//! with the follower leading.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};
use tokio::time::Instant;

use super::StoreNode;
use crate::error::StoreError;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::types::NodeId;

/// How far behind the leader's last log the target may be when writes are paused: one
/// append-entries batch (`max_payload_entries`), which it receives in one round trip.
pub const CATCH_UP_LAG: u64 = 256;

/// How long writes may stay paused (steps 2 to 6): two election timeouts, room for the
/// followers' leases (half an election timeout) to lapse and for several campaigns.
pub fn paused_bound(election_timeout: Duration) -> Duration {
    election_timeout * 2
}

/// How often the transferee is asked to campaign again: half the shortest election timeout
/// (openraft's `election_timeout_min`, a quarter of `--election-timeout`), so that a campaign
/// falls between a follower's lease lapsing and its own election.
pub fn campaign_retry(election_timeout: Duration) -> Duration {
    election_timeout / 8
}

/// When this replica last saw itself become leader, and in which term.
pub(super) type LeaderSince = std::sync::Mutex<Option<(u64, Instant)>>;

/// Keep `since` up to date from `raft`'s metrics until Raft shuts down.
pub(super) async fn track_leadership(raft: crate::types::Raft, since: Arc<LeaderSince>) {
    let mut rx = raft.metrics();
    drop(raft);
    loop {
        {
            let m = rx.borrow_and_update();
            let mut s = since.lock().expect("leader-since lock poisoned");
            match (m.state, *s) {
                (ServerState::Leader, Some((term, _))) if term == m.current_term => {}
                (ServerState::Leader, _) => *s = Some((m.current_term, Instant::now())),
                _ => *s = None,
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Admits proposals while open; a leadership transfer closes it (see the module docs).
#[derive(Default)]
pub(super) struct ProposalGate {
    closed: AtomicBool,
    inflight: Arc<RwLock<()>>,
}

/// Held by an admitted proposal until Raft has answered it.
pub(super) type Admitted = OwnedRwLockReadGuard<()>;

impl ProposalGate {
    /// Admit one proposal (or read-index round, or membership change), or refuse it with
    /// `NoLeader` while a transfer holds the gate.
    pub(super) fn enter(&self) -> Result<Admitted, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::NoLeader);
        }
        // Fails while a transfer holds the write side; the flag covers it while it waits.
        self.inflight.clone().try_read_owned().map_err(|_| StoreError::NoLeader)
    }
}

/// Steps 2 to 7: holds the gate closed (and, once set, heartbeats off) until dropped.
struct Pause<'a> {
    node: &'a StoreNode,
    drained: Option<OwnedRwLockWriteGuard<()>>,
}

impl<'a> Pause<'a> {
    fn new(node: &'a StoreNode) -> Self {
        node.gate.closed.store(true, Ordering::SeqCst);
        Self { node, drained: None }
    }

    /// Wait for the proposals admitted before the gate closed.
    async fn drain(&mut self) {
        self.drained = Some(self.node.gate.inflight.clone().write_owned().await);
    }
}

impl Drop for Pause<'_> {
    fn drop(&mut self) {
        self.node.raft.runtime_config().heartbeat(true);
        self.drained = None;
        self.node.gate.closed.store(false, Ordering::SeqCst);
    }
}

impl StoreNode {
    /// Move leadership to `target` (etcd's MoveLeader), from any replica: the request runs
    /// on the leader. Moving it to the current leader succeeds at once.
    pub async fn move_leader(&self, target: NodeId) -> Result<(), StoreError> {
        self.check_transferee(target)?;
        // The leader's own bound, plus a request timeout to find it and hear back.
        let bound = self.cfg.request_timeout * 2 + paused_bound(self.cfg.election_timeout);
        self.on_leader(Instant::now() + bound, ForwardRequest::MoveLeader { target }, |r| {
            matches!(r, ForwardResponse::LeaderMoved).then_some(())
        })
        .await
    }

    /// A transferee must be a started voter.
    fn check_transferee(&self, target: NodeId) -> Result<(), StoreError> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        let started = m.membership().get_node(&target).is_some_and(|n| !n.name.is_empty());
        if !started || !m.membership().voter_ids().any(|v| v == target) {
            return Err(StoreError::BadLeaderTransferee);
        }
        Ok(())
    }

    /// The leader's side of [`StoreNode::move_leader`] (the module docs' procedure).
    pub(super) async fn transfer_leadership(&self, target: NodeId) -> Result<(), StoreError> {
        let _one = self.transfer_lock.lock().await;
        if self.raft.metrics().borrow().state != ServerState::Leader {
            return Err(StoreError::NoLeader);
        }
        if target == self.id {
            return Ok(());
        }
        self.check_transferee(target)?;
        let url = super::peer_url(&self.raft, target).ok_or(StoreError::BadLeaderTransferee)?;
        let started = Instant::now();
        self.wait_replicated(target, CATCH_UP_LAG, started + self.cfg.request_timeout).await?;
        self.wait_own_lease_lapsed().await?;

        let paused_at = Instant::now();
        let deadline = paused_at + paused_bound(self.cfg.election_timeout);
        let mut pause = Pause::new(self);
        tokio::time::timeout_at(deadline, pause.drain()).await.map_err(|_| StoreError::LeaderTransferTimeout)?;
        self.wait_replicated(target, 0, deadline).await?;
        self.raft.runtime_config().heartbeat(false);
        let moved = self.campaign_until_moved(target, &url, deadline).await?;
        drop(pause);
        match moved.current_leader {
            Some(l) if l == target => {
                tracing::info!(
                    target = format_args!("{target:x}"),
                    term = moved.current_term,
                    total_ms = started.elapsed().as_millis() as u64,
                    paused_ms = paused_at.elapsed().as_millis() as u64,
                    "leadership transferred"
                );
                Ok(())
            }
            other => {
                tracing::warn!(target = format_args!("{target:x}"), leader = ?other, "another member won the election");
                Err(StoreError::LeaderTransferTimeout)
            }
        }
    }

    /// Ask `target` to campaign until some other member leads (its metrics), or `deadline`.
    async fn campaign_until_moved(
        &self,
        target: NodeId,
        url: &str,
        deadline: Instant,
    ) -> Result<openraft::RaftMetrics<NodeId, crate::types::Node>, StoreError> {
        let retry = campaign_retry(self.cfg.election_timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.network.forward(target, url, ForwardRequest::Campaign, left).await {
                Ok(ForwardResponse::Campaigning) => {}
                other => {
                    tracing::warn!(target = format_args!("{target:x}"), answer = ?other, "transferee did not campaign");
                    return Err(StoreError::LeaderTransferTimeout);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let moved = self
                .raft
                .wait(Some(left.min(retry)))
                .metrics(|m| m.current_leader.is_some_and(|l| l != self.id), "leadership moved")
                .await;
            match moved {
                Ok(m) => return Ok(m),
                Err(_) if Instant::now() >= deadline => return Err(StoreError::LeaderTransferTimeout),
                Err(_) => {}
            }
        }
    }

    /// Wait until this replica has led for longer than its leader lease, so that it grants
    /// a transferee's vote.
    async fn wait_own_lease_lapsed(&self) -> Result<(), StoreError> {
        let lease = Duration::from_millis(self.cfg.raft_config().election_timeout_max);
        let since = *self.leader_since.lock().expect("leader-since lock poisoned");
        let term = self.raft.metrics().borrow().current_term;
        match since {
            // Not yet seen in this term by the tracker: the caller retries.
            Some((t, at)) if t == term => {
                tokio::time::sleep_until(at + lease + self.cfg.heartbeat_interval).await;
                Ok(())
            }
            _ => Err(StoreError::NoLeader),
        }
    }

    /// Wait, while leading, until `target` has replicated all but `lag` entries of this
    /// replica's log.
    async fn wait_replicated(&self, target: NodeId, lag: u64, deadline: Instant) -> Result<(), StoreError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = self
            .raft
            .wait(Some(left))
            .metrics(
                |m| {
                    let matched = m.replication.as_ref().and_then(|r| r.get(&target).copied().flatten());
                    let last = m.last_log_index.unwrap_or(0);
                    m.state != ServerState::Leader || matched.is_some_and(|l| l.index + lag >= last)
                },
                "transferee caught up",
            )
            .await
            .map_err(|_| StoreError::LeaderTransferTimeout)?;
        if m.state != ServerState::Leader {
            return Err(StoreError::NoLeader);
        }
        Ok(())
    }

    /// The transferee's side: campaign now, at the leader's request.
    pub(super) async fn campaign(&self) -> Result<ForwardResponse, StoreError> {
        let m = self.raft.metrics().borrow().clone();
        if !m.membership_config.membership().voter_ids().any(|v| v == self.id) {
            return Err(StoreError::BadLeaderTransferee);
        }
        if m.state != ServerState::Leader {
            tracing::info!(term = m.current_term, "campaigning: the leader is handing leadership over");
            self.raft.trigger().elect().await.map_err(|_| StoreError::Stopped)?;
        }
        Ok(ForwardResponse::Campaigning)
    }
}
