//! [`LoopConfig`]: what a scheduling loop schedules and how it retries.

use std::time::Duration;

use flotilla_controllers::runtime::Backoff;

use super::COMPONENT;

/// How the loop schedules.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub scheduler_name: String,
    /// Retry delays for a pod that fits nowhere or whose bind failed. Upstream's pod
    /// backoff: 1 s doubling to 10 s; a cluster change retries at once anyway.
    pub backoff: Backoff,
    /// Binds and event writes in flight at once. Enough to keep Raft proposals batched
    /// while the loop places the next pods; bounded so a slow store stalls placement
    /// instead of piling up assumed pods.
    pub max_writes_in_flight: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            scheduler_name: COMPONENT.to_string(),
            backoff: Backoff { base: Duration::from_secs(1), max: Duration::from_secs(10) },
            max_writes_in_flight: 64,
        }
    }
}

impl LoopConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_writes_in_flight == 0 {
            return Err("max_writes_in_flight must be positive".into());
        }
        self.backoff.validate()
    }
}
