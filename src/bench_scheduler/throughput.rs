//! Scheduling throughput from the times pods were seen bound, and a per-second timeline of
//! creates and binds.
//!
//! All times are offsets from the first pod create being sent (the run's time zero), so
//! "over the whole run" includes the wait for the first bind. The steady middle 80% is the
//! span from the bind of rank ⌈0.1·n⌉ to the bind of rank ⌈0.9·n⌉ (nearest rank, as
//! `bench_api::stats`): it leaves out the ramp-up and the tail, where the rate says more
//! about start-up and stragglers than about the scheduler.

use std::time::Duration;

use serde::Serialize;

use crate::bench_api::stats::{ms, round2};

/// Bind throughput of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    /// Pods seen bound.
    pub bound: usize,
    pub first_bind_ms: f64,
    pub last_bind_ms: f64,
    /// Bound pods / time from the first create to the last bind.
    pub overall_pods_per_s: f64,
    /// Pods bound between the 10th and the 90th percentile bind / the time between them.
    pub middle80_pods_per_s: f64,
}

impl Throughput {
    /// Throughput of `binds` (sorted in place); `None` when nothing was bound.
    pub fn of(binds: &mut [Duration]) -> Option<Self> {
        binds.sort_unstable();
        let (first, last) = (*binds.first()?, *binds.last()?);
        let n = binds.len();
        let (lo, hi) = (rank_index(n, 0.1), rank_index(n, 0.9));
        let span = binds[hi].saturating_sub(binds[lo]).as_secs_f64();
        // With one pod, or every middle bind at the same instant, there is no span to divide
        // by; the whole-run rate is then the only honest figure.
        let overall = n as f64 / last.as_secs_f64().max(1e-9);
        let middle = if hi > lo && span > 0.0 { (hi - lo) as f64 / span } else { overall };
        Some(Throughput {
            bound: n,
            first_bind_ms: round2(ms(first)),
            last_bind_ms: round2(ms(last)),
            overall_pods_per_s: round2(overall),
            middle80_pods_per_s: round2(middle),
        })
    }
}

/// Binds per second after the last create was acknowledged: the scheduler draining its
/// backlog without creates competing for the leader. `None` when fewer than
/// [`MIN_DRAIN_PODS`] pods were left, too few for a rate.
pub fn drain_rate(binds: &[Duration], creates_done: Duration) -> Option<f64> {
    let after: Vec<&Duration> = binds.iter().filter(|t| **t > creates_done).collect();
    let last = after.iter().max()?;
    let span = last.saturating_sub(creates_done).as_secs_f64();
    (after.len() >= MIN_DRAIN_PODS && span > 0.0).then(|| round2(after.len() as f64 / span))
}

/// Fewest binds after the creates for [`drain_rate`] to report one: below this the span is
/// a few tens of milliseconds and mostly the last binds' commit latency.
pub const MIN_DRAIN_PODS: usize = 100;

/// Index of the nearest-rank `p` quantile in a sorted slice of `n > 0` items.
fn rank_index(n: usize, p: f64) -> usize {
    ((p * n as f64).ceil() as usize).clamp(1, n) - 1
}

/// How many of `times` fall in each whole second from zero; as many buckets as the latest
/// time needs (empty when `times` is).
pub fn per_second(times: &[Duration]) -> Vec<u64> {
    let Some(last) = times.iter().max() else { return Vec::new() };
    let mut buckets = vec![0u64; last.as_secs() as usize + 1];
    for t in times {
        buckets[t.as_secs() as usize] += 1;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn whole_run_and_middle_rates() {
        // 10 binds: ranks 1 and 9 (indices 0 and 8) bound the middle 80%: 8 pods in 800 ms.
        let mut binds = ms_list(&[1000, 500, 600, 700, 800, 900, 1100, 1200, 1300, 2000]);
        let t = Throughput::of(&mut binds).unwrap();
        assert_eq!(t.bound, 10);
        assert_eq!((t.first_bind_ms, t.last_bind_ms), (500.0, 2000.0));
        assert_eq!(t.overall_pods_per_s, 5.0);
        assert_eq!(t.middle80_pods_per_s, 10.0);
    }

    #[test]
    fn degenerate_runs() {
        assert_eq!(Throughput::of(&mut []), None);
        let t = Throughput::of(&mut ms_list(&[250])).unwrap();
        assert_eq!((t.overall_pods_per_s, t.middle80_pods_per_s), (4.0, 4.0));
        let t = Throughput::of(&mut ms_list(&[500, 500, 500])).unwrap();
        assert_eq!(t.middle80_pods_per_s, t.overall_pods_per_s);
    }

    #[test]
    fn drain_counts_binds_after_the_last_create() {
        // Creates done at 1 s; 200 binds from 1.01 s to 3 s: 200 pods in 2 s.
        let mut binds = ms_list(&[100, 500, 1000]);
        binds.extend((0..200).map(|i| Duration::from_millis(1010 + i * 1990 / 199)));
        assert_eq!(drain_rate(&binds, Duration::from_secs(1)), Some(100.0));
        assert_eq!(drain_rate(&binds[..50], Duration::from_secs(1)), None);
        assert_eq!(drain_rate(&binds, Duration::from_secs(5)), None);
    }

    #[test]
    fn buckets_by_whole_second() {
        assert!(per_second(&[]).is_empty());
        assert_eq!(per_second(&ms_list(&[0, 999, 1000, 3500])), vec![2, 1, 0, 1]);
    }
}
