//! The lessor: decides lease expiry on the leader, outside the deterministic apply path.
//!
//! Leases themselves (ID, TTL, attached keys) are replicated data in the state machine.
//! Their deadlines are not: as in etcd, only the current leader tracks them, in memory, and
//! keep-alives go to the leader. When a deadline passes, the leader proposes a
//! `LeaseRevoke`, which deletes the lease and all its keys in one revision on every replica.
//!
//! Invariants:
//! - On gaining leadership every lease gets a fresh deadline of `now + ttl + extension`,
//!   where the extension is at least the election timeout: a failover never shortens a
//!   lease, so a client that kept its lease alive through the old leader does not lose it.
//! - A non-leader holds no deadlines and revokes nothing.
//! - A revoke applied twice (a retry across a leader change) is refused the second time by
//!   the state machine (`LeaseNotFound`), so keys are deleted exactly once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How often the leader looks for expired leases. etcd checks every 500 ms.
pub const EXPIRY_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Most revokes proposed per check, so a mass expiry cannot flood the log (etcd: 1000/s).
pub const MAX_REVOKES_PER_CHECK: usize = 500;

/// Deadlines of the leases this leader tracks, with the term they were set in.
#[derive(Default)]
pub struct Lessor {
    deadlines: Mutex<Option<(u64, BTreeMap<i64, Instant>)>>,
}

impl Lessor {
    /// Bring the tracked set in line with the replicated leases (`id -> ttl seconds`) and
    /// return the expired ones, oldest first, at most [`MAX_REVOKES_PER_CHECK`].
    /// `leader_term` is the term this replica leads in, if it leads; a new term (even one
    /// won again by this replica, since another may have led in between) starts afresh.
    /// `extension` pads deadlines set on gaining leadership.
    pub fn tick(&self, leader_term: Option<u64>, leases: &[(i64, i64)], now: Instant, extension: Duration) -> Vec<i64> {
        let mut guard = self.deadlines.lock().expect("lessor lock poisoned");
        let Some(term) = leader_term else {
            *guard = None;
            return Vec::new();
        };
        let promoted = guard.as_ref().is_none_or(|(t, _)| *t != term);
        if promoted {
            *guard = Some((term, BTreeMap::new()));
        }
        let deadlines = &mut guard.as_mut().expect("set above").1;
        let pad = if promoted { extension } else { Duration::ZERO };
        deadlines.retain(|id, _| leases.iter().any(|(l, _)| l == id));
        for (id, ttl) in leases {
            deadlines.entry(*id).or_insert_with(|| now + ttl_duration(*ttl) + pad);
        }
        let mut expired: Vec<(Instant, i64)> =
            deadlines.iter().filter(|(_, d)| **d <= now).map(|(id, d)| (*d, *id)).collect();
        expired.sort();
        expired.into_iter().take(MAX_REVOKES_PER_CHECK).map(|(_, id)| id).collect()
    }

    /// Renew a lease this leader tracks: its deadline becomes `now + ttl`. Returns false if
    /// this replica is not tracking leases (not leader, or not yet ticked as leader).
    pub fn renew(&self, id: i64, ttl: i64, now: Instant) -> bool {
        let mut guard = self.deadlines.lock().expect("lessor lock poisoned");
        match guard.as_mut() {
            Some((_, d)) => {
                d.insert(id, now + ttl_duration(ttl));
                true
            }
            None => false,
        }
    }

    /// Seconds left on a lease (rounded up), or `None` if not tracked here.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        let guard = self.deadlines.lock().expect("lessor lock poisoned");
        let deadline = *guard.as_ref()?.1.get(&id)?;
        let left = deadline.saturating_duration_since(now);
        Some(left.as_millis().div_ceil(1000) as i64)
    }

    /// Forget a lease (after a revoke).
    pub fn forget(&self, id: i64) {
        if let Some((_, d)) = self.deadlines.lock().expect("lessor lock poisoned").as_mut() {
            d.remove(&id);
        }
    }
}

fn ttl_duration(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_renewal_and_leadership() {
        let l = Lessor::default();
        let t0 = Instant::now();
        let ext = Duration::from_secs(1);
        let leases = [(1, 5), (2, 10)];
        // Gaining leadership pads every deadline with the extension.
        assert!(l.tick(Some(1), &leases, t0, ext).is_empty());
        assert_eq!(l.remaining(1, t0), Some(6));
        assert!(l.tick(Some(1), &leases, t0 + Duration::from_secs(5), ext).is_empty());
        assert_eq!(l.tick(Some(1), &leases, t0 + Duration::from_secs(6), ext), vec![1]);
        // A renewal pushes the deadline out from now.
        assert!(l.renew(2, 10, t0 + Duration::from_secs(6)));
        assert!(l.tick(Some(1), &leases, t0 + Duration::from_secs(12), ext).contains(&1));
        assert!(!l.tick(Some(1), &leases, t0 + Duration::from_secs(12), ext).contains(&2));
        // Losing leadership forgets everything; renewals are refused.
        assert!(l.tick(None, &leases, t0, ext).is_empty());
        assert!(!l.renew(2, 10, t0));
        assert_eq!(l.remaining(2, t0), None);
        // A lease revoked elsewhere is dropped from tracking.
        l.tick(Some(1), &leases, t0, ext);
        l.tick(Some(1), &[(2, 10)], t0, ext);
        assert_eq!(l.remaining(1, t0), None);
        // Leading again in a later term (someone else may have led in between) starts afresh
        // with the extension, even without a non-leader tick in between.
        assert!(l.renew(2, 10, t0));
        l.tick(Some(2), &[(2, 10)], t0 + Duration::from_secs(3), ext);
        assert_eq!(l.remaining(2, t0 + Duration::from_secs(3)), Some(11));
    }
}
