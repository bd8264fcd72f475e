//! Latency summaries: exact nearest-rank percentiles over every recorded sample.

use std::time::Duration;

/// p50, p99 and max of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises `samples` (sorted in place); all zero when there are none.
    pub fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let Some(max) = samples.last() else { return Summary::default() };
        Summary { p50_ms: ms(nearest_rank(samples, 0.50)), p99_ms: ms(nearest_rank(samples, 0.99)), max_ms: ms(*max) }
    }
}

/// The smallest sample with at least fraction `p` of the samples at or below it.
fn nearest_rank(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounds to two decimals, so JSON lines stay readable.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut v);
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (50.0, 99.0, 100.0));
        let mut one = vec![Duration::from_millis(7)];
        assert_eq!(Summary::of(&mut one).p50_ms, 7.0);
        assert_eq!(Summary::of(&mut []), Summary::default());
    }
}
