//! The deterministic simulation of the store, in CI: a few hundred seeds under message loss,
//! delay, partitions and crashes must all check valid; a seed must replay exactly; and the
//! unsafe local-read mode must be caught.
//!
//! The seeds are split over several tests so that nextest runs them in parallel.

use flotilla_jepsen::sim::{self, SimOptions};
use flotilla_jepsen::Validity;

/// Seeds per batch test; ten batches, seeds 0..200.
const BATCH: u64 = 20;

fn run_batch(batch: u64) {
    let mut failures = Vec::new();
    for seed in batch * BATCH..(batch + 1) * BATCH {
        let report = sim::run(&SimOptions::new(seed)).unwrap_or_else(|e| panic!("seed {seed}: {e:#}"));
        assert!(report.ops > 100, "seed {seed}: only {} ops", report.ops);
        if report.summary.valid != Validity::Valid {
            failures.push(format!("seed {seed}: {}", serde_json::to_string(&report.summary).unwrap()));
        }
    }
    assert!(failures.is_empty(), "replay with `flotilla-jepsen sim --seeds N`:\n{}", failures.join("\n"));
}

macro_rules! batches {
    ($($name:ident = $batch:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_batch($batch);
            }
        )*
    };
}

batches! {
    seeds_000_to_019 = 0;
    seeds_020_to_039 = 1;
    seeds_040_to_059 = 2;
    seeds_060_to_079 = 3;
    seeds_080_to_099 = 4;
    seeds_100_to_119 = 5;
    seeds_120_to_139 = 6;
    seeds_140_to_159 = 7;
    seeds_160_to_179 = 8;
    seeds_180_to_199 = 9;
}

#[test]
fn a_seed_replays_exactly_and_another_differs() {
    let first = sim::run(&SimOptions::new(7)).unwrap();
    let again = sim::run(&SimOptions::new(7)).unwrap();
    assert!(!first.faults.is_empty(), "seed 7 should inject faults");
    assert_eq!(first.faults, again.faults);
    assert_eq!(first.history, again.history, "seed 7 ran differently twice");
    assert_eq!(first.digest, again.digest);
    let other = sim::run(&SimOptions::new(8)).unwrap();
    assert_ne!(other.digest, first.digest);
}

#[test]
fn unsafe_local_reads_are_caught() {
    let caught = (0..20).find(|&seed| {
        let opts = SimOptions { unsafe_local_reads: true, ..SimOptions::new(seed) };
        let report = sim::run(&opts).unwrap_or_else(|e| panic!("seed {seed}: {e:#}"));
        report.summary.verdicts.iter().any(|v| v.checker == "linearizable" && v.valid == Validity::Invalid)
    });
    assert!(caught.is_some(), "no seed of 0..20 caught stale local reads");
}
