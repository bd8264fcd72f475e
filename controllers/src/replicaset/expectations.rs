//! Expectations: the creates and deletes a ReplicaSet's reconcile made that its pod cache
//! has not shown yet.
//!
//! Why: a reconcile counts pods in the informer cache, and the cache lags the writes. If a
//! reconcile that just created 3 pods ran again before the cache held them, it would create
//! 3 more. So each reconcile records the names its create calls returned and the (name, uid)
//! of the pods it deleted; until the cache shows every one of them (created pod present;
//! deleted pod gone or terminating), the ReplicaSet is not scaled again — as client-go's
//! `ControllerExpectations`, but by name rather than by count, so an unrelated pod event
//! cannot be mistaken for ours.
//!
//! A created pod can vanish before the cache shows it (deleted at once by someone else, and
//! the informer re-listed past both events): expectations older than [`EXPECTATION_TTL`]
//! are dropped so such a ReplicaSet is not stuck for good.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use std::time::Instant;

use crate::runtime::Key;

/// How long unobserved expectations block scaling before they are dropped (client-go: 5
/// minutes; a local store's watch lags by milliseconds, so much less suffices here).
pub const EXPECTATION_TTL: Duration = Duration::from_secs(30);

struct Pending {
    creates: BTreeSet<String>,
    /// name → uid
    deletes: BTreeMap<String, String>,
    /// When the last expectation was added.
    since: Instant,
}

/// Per-ReplicaSet unobserved writes. A key is reconciled by one worker at a time, so the
/// lock only guards the map, never a decision spanning an `.await`.
pub struct Expectations {
    pending: Mutex<HashMap<Key, Pending>>,
    ttl: Duration,
}

impl Default for Expectations {
    fn default() -> Self {
        Self::new(EXPECTATION_TTL)
    }
}

impl Expectations {
    /// Expectations dropped `ttl` after the last one recorded for a key.
    pub fn new(ttl: Duration) -> Self {
        Self { pending: Mutex::new(HashMap::new()), ttl }
    }

    fn with(&self, key: &Key, f: impl FnOnce(&mut Pending)) {
        let mut map = self.pending.lock().expect("expectations lock poisoned");
        let p = map.entry(key.clone()).or_insert_with(|| Pending {
            creates: BTreeSet::new(),
            deletes: BTreeMap::new(),
            since: Instant::now(),
        });
        p.since = Instant::now();
        f(p);
    }

    /// A create for `key` returned the pod `name`.
    pub fn created(&self, key: &Key, name: String) {
        self.with(key, |p| {
            p.creates.insert(name);
        })
    }

    /// A delete for `key` was accepted for the pod `name` with `uid`.
    pub fn deleted(&self, key: &Key, name: String, uid: String) {
        self.with(key, |p| {
            p.deletes.insert(name, uid);
        })
    }

    /// Drop everything recorded for `key` (its ReplicaSet is gone).
    pub fn forget(&self, key: &Key) {
        self.pending.lock().expect("expectations lock poisoned").remove(key);
    }

    /// Drop what the cache now shows — `created(name)`: the cache holds a pod so named;
    /// `deleted(name, uid)`: it no longer holds that pod active — and say whether anything
    /// is still pending. Expired expectations are dropped.
    pub fn pending(&self, key: &Key, created: impl Fn(&str) -> bool, deleted: impl Fn(&str, &str) -> bool) -> bool {
        let mut map = self.pending.lock().expect("expectations lock poisoned");
        let Some(p) = map.get_mut(key) else { return false };
        p.creates.retain(|name| !created(name));
        p.deletes.retain(|name, uid| !deleted(name, uid));
        let done = p.creates.is_empty() && p.deletes.is_empty();
        if done || p.since.elapsed() >= self.ttl {
            if !done {
                tracing::warn!(%key, creates = p.creates.len(), deletes = p.deletes.len(), "expectations expired");
            }
            map.remove(key);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_block_until_observed_or_forgotten() {
        let e = Expectations::default();
        let key = Key::namespaced("ns", "web");
        assert!(!e.pending(&key, |_| false, |_, _| false), "nothing recorded: nothing pending");
        e.created(&key, "web-a".into());
        e.deleted(&key, "web-b".into(), "u-b".into());
        assert!(e.pending(&key, |n| n == "web-a", |_, _| false), "the delete is not observed yet");
        assert!(!e.pending(&key, |_| false, |n, u| n == "web-b" && u == "u-b"), "the create was dropped before");

        e.created(&key, "web-d".into());
        assert!(e.pending(&key, |_| false, |_, _| false));
        e.forget(&key);
        assert!(!e.pending(&key, |_| false, |_, _| false), "forgotten");
    }

    #[test]
    fn unobserved_writes_expire() {
        let e = Expectations::new(Duration::ZERO);
        let key = Key::namespaced("ns", "web");
        e.created(&key, "web-a".into());
        assert!(!e.pending(&key, |_| false, |_, _| false), "expired");
        assert!(!e.pending(&key, |_| false, |_, _| false), "and dropped");
    }
}
