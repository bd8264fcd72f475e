//! Lease operations of a [`StoreNode`]: grant and revoke are Raft commands; keep-alive and
//! time-to-live consult the leader's lessor (forwarded from followers).

use std::sync::Weak;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::StoreNode;
use crate::config::MAX_LEASE_TTL_SECS;
use crate::error::StoreError;
use crate::lease::EXPIRY_CHECK_INTERVAL;
use crate::raft::forward::{ForwardRequest, ForwardResponse};
use crate::types::{Command, CommandResult, Rejection};

/// Attempts at picking a fresh random lease ID before giving up (collisions are
/// astronomically rare; this bounds the loop anyway).
const GRANT_ID_ATTEMPTS: usize = 8;

/// What `lease timetolive` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Seconds left; -1 if the lease does not exist.
    pub ttl: i64,
    pub granted_ttl: i64,
    pub keys: Vec<Vec<u8>>,
}

impl StoreNode {
    /// The shortest TTL granted, as etcd: 1.5 election timeouts, so a lease always survives
    /// a leader election.
    pub fn min_lease_ttl(&self) -> i64 {
        let ms = self.cfg.election_timeout.as_millis() as i64 * 3 / 2;
        ((ms + 999) / 1000).max(1)
    }

    /// Grant a lease; `id == 0` lets the store pick one. Returns `(id, ttl)`.
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64), StoreError> {
        if ttl > MAX_LEASE_TTL_SECS {
            return Err(StoreError::InvalidArgument("too large lease TTL".into()));
        }
        if id < 0 {
            return Err(StoreError::InvalidArgument("lease ID must be positive".into()));
        }
        let ttl = ttl.max(self.min_lease_ttl());
        for _ in 0..GRANT_ID_ATTEMPTS {
            // The proposer picks the ID so that apply stays deterministic.
            let pick = if id != 0 {
                id
            } else {
                rand::Rng::gen::<i64>(&mut crate::determinism::rng()).checked_abs().unwrap_or(1).max(1)
            };
            match self.write(Command::LeaseGrant { id: pick, ttl }).await {
                Ok(CommandResult::LeaseGrant { id, ttl, .. }) => return Ok((id, ttl)),
                Err(StoreError::Rejected(Rejection::LeaseExists)) if id == 0 => continue,
                Err(e) => return Err(e),
                Ok(other) => return Err(super::unexpected(other)),
            }
        }
        Err(StoreError::Rejected(Rejection::LeaseExists))
    }

    /// Revoke a lease and delete its keys.
    pub async fn lease_revoke(&self, id: i64) -> Result<i64, StoreError> {
        match self.write(Command::LeaseRevoke { id }).await? {
            CommandResult::LeaseRevoke { revision } => {
                self.lessor.forget(id);
                Ok(revision)
            }
            other => Err(super::unexpected(other)),
        }
    }

    /// Renew a lease on the leader; returns its TTL.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64, StoreError> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        self.on_leader(deadline, ForwardRequest::LeaseKeepAlive { id }, |r| match r {
            ForwardResponse::Lease { ttl, .. } => Some(ttl),
            _ => None,
        })
        .await
    }

    /// Remaining and granted TTL of a lease, optionally with its keys.
    pub async fn lease_time_to_live(&self, id: i64, with_keys: bool) -> Result<LeaseInfo, StoreError> {
        let deadline = Instant::now() + self.cfg.request_timeout;
        let (ttl, granted_ttl) = self
            .on_leader(deadline, ForwardRequest::LeaseTimeToLive { id }, |r| match r {
                ForwardResponse::Lease { ttl, granted_ttl } => Some((ttl, granted_ttl)),
                _ => None,
            })
            .await?;
        let keys = if with_keys && ttl >= 0 {
            // The key list is replicated data: read it linearizably, like a range.
            self.read_barrier().await?;
            let mvcc = self.sm.mvcc.read().expect("lock poisoned");
            mvcc.leases().get(&id).map(|l| l.keys.iter().cloned().collect()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(LeaseInfo { id, ttl, granted_ttl, keys })
    }

    /// IDs of all leases.
    pub fn lease_list(&self) -> Vec<i64> {
        self.sm.mvcc.read().expect("lock poisoned").leases().keys().copied().collect()
    }

    fn lease_ttl(&self, id: i64) -> Option<i64> {
        self.sm.mvcc.read().expect("lock poisoned").leases().get(&id).map(|l| l.ttl)
    }

    pub(super) fn keep_alive_here(&self, id: i64) -> Result<ForwardResponse, StoreError> {
        let ttl = self.lease_ttl(id).ok_or(Rejection::LeaseNotFound)?;
        // openraft 0.9 keeps a leader that lost its quorum in office; renewing there would be
        // invisible to the real leader, which would then expire the lease under the client.
        if !self.leads_with_quorum() || !self.lessor.renew(id, ttl, Instant::now()) {
            return Err(StoreError::NoLeader);
        }
        Ok(ForwardResponse::Lease { ttl, granted_ttl: ttl })
    }

    pub(super) fn time_to_live_here(&self, id: i64) -> Result<ForwardResponse, StoreError> {
        let Some(granted_ttl) = self.lease_ttl(id) else {
            return Ok(ForwardResponse::Lease { ttl: -1, granted_ttl: 0 });
        };
        if !self.leads_with_quorum() {
            return Err(StoreError::NoLeader);
        }
        // A lease granted since the last lessor tick has its full TTL left.
        let ttl = self.lessor.remaining(id, Instant::now()).unwrap_or(granted_ttl);
        Ok(ForwardResponse::Lease { ttl, granted_ttl })
    }

    /// One lessor step: sync deadlines with the replicated leases, revoke expired ones.
    async fn lessor_tick(&self) {
        let leases: Vec<(i64, i64)> = {
            let mvcc = self.sm.mvcc.read().expect("lock poisoned");
            mvcc.leases().iter().map(|(id, l)| (*id, l.ttl)).collect()
        };
        let (leader, term) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            (m.state == openraft::ServerState::Leader, m.current_term)
        };
        let expired = self.lessor.tick(leader.then_some(term), &leases, Instant::now(), self.cfg.election_timeout);
        if expired.is_empty() {
            return;
        }
        // Not while a leadership transfer holds proposals back: a later tick revokes them.
        let Ok(_admitted) = self.gate.enter() else { return };
        for id in expired {
            // Propose locally only: a deposed leader's revoke fails instead of being forwarded.
            let revoke = self.raft.client_write(Command::LeaseRevoke { id });
            match tokio::time::timeout(self.cfg.request_timeout, revoke).await {
                Ok(Ok(_)) => {
                    tracing::info!(lease = id, "lease expired; revoked");
                    self.lessor.forget(id);
                }
                Ok(Err(e)) => {
                    tracing::debug!(lease = id, error = %e, "revoke of expired lease not committed; will retry");
                    break;
                }
                Err(_) => {
                    tracing::debug!(lease = id, "revoke of expired lease timed out; will retry");
                    break;
                }
            }
        }
    }
}

/// The lessor loop: runs on every replica, acts only while this replica leads.
pub(super) async fn run_lessor(node: Weak<StoreNode>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(node) = node.upgrade() else { return };
        node.lessor_tick().await;
    }
}
