//! [`NodeLifecycleConfig`]: how long a node may stay silent, how often nodes are checked, and
//! how fast pods are evicted. Defaults are upstream's kube-controller-manager flags where
//! one exists (`--node-monitor-grace-period`, `--node-startup-grace-period`).

use std::time::Duration;

/// Timing and rate of the node lifecycle controller.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a sign of life (its Lease renewed, or its Ready
    /// condition's heartbeat changed), as seen by the controller, before its conditions are
    /// set to Unknown. Upstream's 40 s: four missed 10 s kubelet lease renewals.
    pub grace_period: Duration,
    /// The same for a node that has never posted a Ready condition: a kubelet that just
    /// registered gets longer to report in (upstream's 60 s).
    pub startup_grace_period: Duration,
    /// How often every node, its pods and the pending evictions are looked at. Upstream
    /// checks every 5 s; 1 s keeps the reaction delay small against the grace period.
    pub check_period: Duration,
    /// Pods evicted per second at most, over all nodes (a token bucket holding one
    /// second's worth, and at least one eviction). Upstream bounds the rate at which nodes
    /// start evicting (0.1 nodes/s); a bound on pods is the same brake on a cascade — a
    /// partition that cuts off part of the cluster moves its workload onto the rest
    /// gradually — with a finer grain.
    pub evictions_per_second: f64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(40),
            startup_grace_period: Duration::from_secs(60),
            check_period: Duration::from_secs(1),
            evictions_per_second: 10.0,
        }
    }
}

impl NodeLifecycleConfig {
    /// Rejects settings the controller cannot work with: a check period not shorter than
    /// the grace period would let a node be judged on samples older than its grace.
    pub fn validate(&self) -> Result<(), String> {
        if self.check_period.is_zero() {
            return Err("check_period must be positive".into());
        }
        if self.grace_period <= self.check_period {
            return Err(format!(
                "grace_period ({:?}) must be longer than check_period ({:?})",
                self.grace_period, self.check_period
            ));
        }
        if self.startup_grace_period < self.grace_period {
            return Err(format!(
                "startup_grace_period ({:?}) must not be shorter than grace_period ({:?})",
                self.startup_grace_period, self.grace_period
            ));
        }
        if !(self.evictions_per_second.is_finite() && self.evictions_per_second > 0.0) {
            return Err(format!("evictions_per_second must be a positive number, not {}", self.evictions_per_second));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_bad_settings_are_named() {
        assert_eq!(NodeLifecycleConfig::default().validate(), Ok(()));
        let base = NodeLifecycleConfig::default();
        let cases = [
            (NodeLifecycleConfig { check_period: Duration::ZERO, ..base.clone() }, "check_period"),
            (NodeLifecycleConfig { grace_period: Duration::from_secs(1), ..base.clone() }, "grace_period"),
            (NodeLifecycleConfig { startup_grace_period: Duration::from_secs(5), ..base.clone() }, "startup_grace"),
            (NodeLifecycleConfig { evictions_per_second: 0.0, ..base.clone() }, "evictions_per_second"),
            (NodeLifecycleConfig { evictions_per_second: f64::NAN, ..base.clone() }, "evictions_per_second"),
        ];
        for (config, named) in cases {
            let err = config.validate().expect_err(named);
            assert!(err.starts_with(named), "{err}");
        }
    }
}
