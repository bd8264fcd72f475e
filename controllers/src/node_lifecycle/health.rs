//! [`HealthTracker`]: whether each node is still heard from, judged on the controller's own
//! monotonic clock.
//!
//! A node is *heard from* when the controller observes a change in its signs of life: its
//! Lease's `renewTime` moving forward, or its Ready condition's `lastHeartbeatTime`
//! changing (or the condition appearing or disappearing). The timestamps in the objects are
//! only ever compared with their own earlier values, never with a clock, so clock skew
//! between a node and the control plane cannot make a node look dead or alive.
//!
//! Invariants:
//! - A node is *overdue* only when the controller has heard nothing from it for its whole
//!   grace period, counted from the controller's own observations.
//! - A node the tracker has not seen before counts as heard from at that moment: a tracker
//!   that starts (a new leader's controller) gives every node a fresh grace period, however
//!   old its lease is, so a control-plane failover never marks nodes Unknown en masse.
//! - Pure and tick-driven: the caller passes `now`; nothing here does I/O.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use super::conditions;

/// What one look at a node and its Lease shows of its liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signs {
    /// Whether the node has a Ready condition at all (a kubelet that never reported has none).
    pub has_ready: bool,
    /// The Ready condition's `lastHeartbeatTime`.
    pub ready_heartbeat: Option<Timestamp>,
    /// The node Lease's `spec.renewTime`.
    pub renewed: Option<Timestamp>,
}

impl Signs {
    /// The signs of `node` and its Lease (`kube-node-lease/<node name>`), if it has one.
    pub fn of(node: &Node, lease: Option<&Lease>) -> Self {
        let ready = conditions::find(node, conditions::READY);
        Self {
            has_ready: ready.is_some(),
            ready_heartbeat: ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0),
            renewed: lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0),
        }
    }
}

/// The last signs seen of one node and when the controller last heard from it.
#[derive(Debug, Clone, Copy)]
struct Heard {
    signs: Signs,
    at: Instant,
}

/// Per node: when the controller last observed a sign of life.
#[derive(Debug)]
pub struct HealthTracker {
    grace: Duration,
    startup_grace: Duration,
    nodes: HashMap<String, Heard>,
}

impl HealthTracker {
    /// A tracker that has heard from no node yet; `grace` applies to nodes with a Ready
    /// condition, `startup_grace` to nodes that never posted one.
    pub fn new(grace: Duration, startup_grace: Duration) -> Self {
        Self { grace, startup_grace, nodes: HashMap::new() }
    }

    /// Record what `node` shows at `now`; returns whether it is overdue: nothing heard from
    /// it for longer than its grace period.
    pub fn observe(&mut self, node: &str, signs: Signs, now: Instant) -> bool {
        let heard = self.nodes.entry(node.to_string()).or_insert(Heard { signs, at: now });
        let ready_changed =
            heard.signs.has_ready != signs.has_ready || heard.signs.ready_heartbeat != signs.ready_heartbeat;
        // Only a later renewTime is a renewal: a Lease recreated with an older one is not.
        let renewed = signs.renewed.is_some_and(|r| heard.signs.renewed.is_none_or(|seen| r > seen));
        if ready_changed || renewed {
            heard.at = now;
        }
        heard.signs.has_ready = signs.has_ready;
        heard.signs.ready_heartbeat = signs.ready_heartbeat;
        if renewed {
            heard.signs.renewed = signs.renewed;
        }
        let grace = if signs.has_ready { self.grace } else { self.startup_grace };
        now.saturating_duration_since(heard.at) > grace
    }

    /// How long ago the controller last heard from `node` (None: never seen).
    pub fn silent_for(&self, node: &str, now: Instant) -> Option<Duration> {
        self.nodes.get(node).map(|h| now.saturating_duration_since(h.at))
    }

    /// Forget the nodes for which `exists` is false (deleted nodes).
    pub fn retain(&mut self, exists: impl Fn(&str) -> bool) {
        self.nodes.retain(|name, _| exists(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(40);
    const STARTUP: Duration = Duration::from_secs(60);

    fn at(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp::from_second(1_700_000_000 + seconds).expect("valid"))
    }

    fn signs(heartbeat: i64, renewed: i64) -> Signs {
        Signs { has_ready: true, ready_heartbeat: at(heartbeat), renewed: at(renewed) }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_first_sighting_starts_a_full_grace_period_however_old_the_lease() {
        let start = Instant::now();
        let mut t = HealthTracker::new(GRACE, STARTUP);
        // The lease and heartbeat are from long ago; the tracker has just started.
        let old = signs(-86_400, -86_400);
        assert!(!t.observe("n1", old, start));
        assert!(!t.observe("n1", old, start + GRACE));
        assert!(t.observe("n1", old, start + GRACE + secs(1)));
        assert_eq!(t.silent_for("n1", start + GRACE + secs(1)), Some(GRACE + secs(1)));
    }

    #[test]
    fn lease_renewals_keep_a_node_alive_and_only_forward_renewals_count() {
        let start = Instant::now();
        let mut t = HealthTracker::new(GRACE, STARTUP);
        for i in 0..10u64 {
            // Renewed every 10 s, heartbeat never changes: never overdue.
            assert!(!t.observe("n1", signs(0, i as i64 * 10), start + secs(i * 10)), "renewal {i}");
        }
        let last = start + secs(90);
        // A lease recreated with an older renewTime is no renewal.
        assert!(!t.observe("n1", signs(0, 5), last + secs(30)));
        assert!(t.observe("n1", signs(0, 5), last + GRACE + secs(1)));
        // A renewal revives it at once.
        assert!(!t.observe("n1", signs(0, 95), last + GRACE + secs(2)));
    }

    #[test]
    fn a_changed_ready_heartbeat_counts_as_well() {
        let start = Instant::now();
        let mut t = HealthTracker::new(GRACE, STARTUP);
        t.observe("n1", signs(0, 0), start);
        assert!(!t.observe("n1", signs(35, 0), start + secs(35)));
        assert!(!t.observe("n1", signs(35, 0), start + secs(70)));
        assert!(t.observe("n1", signs(35, 0), start + secs(76)));
    }

    #[test]
    fn a_node_without_a_ready_condition_gets_the_startup_grace() {
        let start = Instant::now();
        let mut t = HealthTracker::new(GRACE, STARTUP);
        let silent = Signs::default();
        assert!(!t.observe("new", silent, start));
        assert!(!t.observe("new", silent, start + GRACE + secs(5)));
        assert!(t.observe("new", silent, start + STARTUP + secs(1)));
        // Posting a Ready condition is a sign of life, judged by the normal grace after.
        let ready = Signs { has_ready: true, ready_heartbeat: at(0), renewed: None };
        let posted = start + STARTUP + secs(2);
        assert!(!t.observe("new", ready, posted));
        assert!(t.observe("new", ready, posted + GRACE + secs(1)));
    }

    #[test]
    fn forgotten_nodes_start_over() {
        let start = Instant::now();
        let mut t = HealthTracker::new(GRACE, STARTUP);
        t.observe("gone", signs(0, 0), start);
        t.observe("kept", signs(0, 0), start);
        t.retain(|n| n == "kept");
        assert_eq!(t.silent_for("gone", start), None);
        let later = start + GRACE + secs(10);
        assert!(t.observe("kept", signs(0, 0), later));
        assert!(!t.observe("gone", signs(0, 0), later), "a node seen again is heard from afresh");
    }
}
