//! [`CrashBackoff`]: how long a failed container (or a missing image) waits before the
//! next try, per container of one pod — upstream kubelet's `flowcontrol.Backoff`.
//!
//! Invariants:
//! - The first restart after a crash is immediate; each later one waits `initial`,
//!   then twice that, and so on, never more than `max` (upstream: 10 s doubling to 5 min),
//!   counted from when the agent saw the container exit.
//! - A container that ran for more than `2 × max` since its last restart starts over
//!   from an immediate restart (it was healthy for a long time).
//! - Pure: the caller passes `now`; no clock is read here.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// What the next failure waits.
    delay: Duration,
    /// When the last restart happened.
    last_restart: Instant,
}

/// Per-key exponential back-off. See the module doc.
#[derive(Debug, Clone)]
pub struct CrashBackoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, Entry>,
}

impl CrashBackoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max, entries: HashMap::new() }
    }

    fn expired(&self, entry: &Entry, at: Instant) -> bool {
        at.saturating_duration_since(entry.last_restart) > self.max * 2
    }

    /// Until when `key`, which failed at `failed_at`, must wait; None: it may go now.
    pub fn blocked_until(&self, key: &str, failed_at: Instant, now: Instant) -> Option<Instant> {
        let entry = self.entries.get(key)?;
        if self.expired(entry, failed_at) {
            return None;
        }
        let until = failed_at + entry.delay;
        (until > now).then_some(until)
    }

    /// What `key` waits (or waited) after its latest failure; None before any restart.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    /// Record that `key` is being restarted at `now`: the next failure waits longer.
    pub fn restarted(&mut self, key: &str, now: Instant) {
        let delay = match self.entries.get(key) {
            Some(e) if !self.expired(e, now) => (e.delay * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(key.to_string(), Entry { delay, last_restart: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INITIAL: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(300);

    #[test]
    fn first_restart_is_immediate_then_delays_double_up_to_the_cap() {
        let mut b = CrashBackoff::new(INITIAL, MAX);
        let mut now = Instant::now();
        assert_eq!(b.blocked_until("c", now, now), None, "first crash restarts at once");
        b.restarted("c", now);
        let mut waits = Vec::new();
        for _ in 0..8 {
            now += Duration::from_secs(1); // the container crashes a second after its start
            let until = b.blocked_until("c", now, now).expect("a crash loop is held back");
            waits.push((until - now).as_secs());
            assert!(b.blocked_until("c", now, until - Duration::from_millis(1)).is_some());
            assert_eq!(b.blocked_until("c", now, until), None, "free once the delay has passed");
            now = until;
            b.restarted("c", now);
        }
        assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_long_run_resets_the_backoff_and_keys_are_independent() {
        let mut b = CrashBackoff::new(INITIAL, MAX);
        let start = Instant::now();
        b.restarted("c", start);
        b.restarted("c", start + Duration::from_secs(1));
        assert_eq!(b.delay("c"), Some(Duration::from_secs(20)));
        assert_eq!(b.delay("other"), None);
        let much_later = start + MAX * 2 + Duration::from_secs(5);
        assert_eq!(b.blocked_until("c", much_later, much_later), None, "healthy for 2×max: no wait");
        b.restarted("c", much_later);
        assert_eq!(b.delay("c"), Some(INITIAL), "starts over");
    }
}
