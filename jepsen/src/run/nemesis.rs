//! The namespace cluster's nemeses as the runner's [`Faults`]: runs the seeded
//! [`Schedule`] with [`Nemesis::run`] on the run's clock, shows the fault in progress on the
//! progress line, and turns the nemesis timeline into [`FaultInterval`]s for the report.
//!
//! Invariant: when `run` returns, every fault is healed (the nemesis's final sweep); if that
//! sweep failed, the returned intervals end with a `heal-failed` entry, so the report shows
//! the cluster may have stayed faulty.

use super::progress::CurrentFault;
use super::{FaultInterval, Faults};
use crate::cluster::Cluster;
use crate::nemesis::Timeline;
use crate::nemesis::{Nemesis, Schedule};
use crate::workload::{Cancel, Clock};

/// A schedule and the cluster it is applied to.
pub struct NemesisFaults<'a> {
    pub cluster: &'a mut Cluster,
    pub schedule: Schedule,
}

impl Faults for NemesisFaults<'_> {
    async fn run(&mut self, clock: Clock, current: CurrentFault, mut cancel: Cancel) -> Vec<FaultInterval> {
        let origin = tokio::time::Instant::from_std(clock.origin());
        let shower = tokio::spawn(show(self.schedule.clone(), origin, current.clone()));
        let nemesis = Nemesis::new(self.schedule.clone());
        let result = nemesis.run(self.cluster, origin, async move { cancel.cancelled().await }).await;
        shower.abort();
        current.set(None);
        match result {
            Ok(timeline) => intervals(&timeline, clock.ns()),
            Err(e) => {
                tracing::error!(error = %e, "healing the cluster at the end of the run failed");
                let at = clock.ns();
                let failed =
                    FaultInterval { start_ns: at, end_ns: at, fault: "heal-failed".into(), detail: e.to_string() };
                vec![failed]
            }
        }
    }
}

/// Show each step's fault on the progress line while it is scheduled to be active.
async fn show(schedule: Schedule, origin: tokio::time::Instant, current: CurrentFault) {
    for step in schedule.steps {
        tokio::time::sleep_until(origin + step.start).await;
        current.set(Some(step.fault.to_string()));
        tokio::time::sleep_until(origin + step.end).await;
        current.set(None);
    }
}

/// The timeline's events as intervals in nanoseconds; one still open ends at `now_ns`.
pub fn intervals(timeline: &Timeline, now_ns: u64) -> Vec<FaultInterval> {
    let ms = |m: u64| m.saturating_mul(1_000_000);
    let each = timeline.events.iter().map(|e| {
        let mut detail = format!("{} [{}]", e.what, e.nodes.join(","));
        if let Some(error) = &e.error {
            detail.push_str(&format!(" (error: {error})"));
        }
        FaultInterval {
            start_ns: ms(e.start_ms),
            end_ns: e.end_ms.map_or(now_ns, ms),
            fault: format!("{:?}", e.kind).to_lowercase(),
            detail,
        }
    });
    each.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::{Event, Kind};

    #[test]
    fn events_become_intervals_and_open_ones_end_now() {
        let event = |end_ms, error: Option<&str>| Event {
            kind: Kind::Partition,
            what: "isolate the leader".into(),
            nodes: vec!["n2".into()],
            start_ms: 1_000,
            end_ms,
            error: error.map(str::to_string),
        };
        let timeline = Timeline { events: vec![event(Some(4_000), None), event(None, Some("nft failed"))] };
        let got = intervals(&timeline, 9_000_000_000);
        assert_eq!((got[0].start_ns, got[0].end_ns), (1_000_000_000, 4_000_000_000));
        assert_eq!(got[0].fault, "partition");
        assert_eq!(got[0].detail, "isolate the leader [n2]");
        assert_eq!(got[1].end_ns, 9_000_000_000);
        assert!(got[1].detail.ends_with("(error: nft failed)"));
    }
}
