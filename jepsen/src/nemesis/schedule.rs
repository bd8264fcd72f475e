//! The seeded fault schedule: given a seed, the enabled kinds, the node count, the run
//! length and the fault/quiet intervals, the same schedule every time.
//!
//! Shape: quiet, fault, quiet, fault, ... — one fault at a time, each lasting a duration
//! drawn from `fault`, separated by quiet periods drawn from `quiet`, the first one starting
//! after a quiet period so the workload has a healthy baseline. Every fault ends (is healed)
//! no later than `length`.
//!
//! Invariants: [`Schedule::generate`] is a pure function of its options (rand 0.8's `StdRng`,
//! stable for a given rand version); steps are ordered and never overlap; process faults hit
//! a minority, so a quorum always survives a single fault.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use anyhow::bail;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::fault::{Fault, Kind, Target};
use super::partition::Partition;

/// Clock offsets drawn for the clock nemesis, in seconds either way: from more than an
/// election timeout to well past any lease TTL a test uses.
const CLOCK_OFFSETS_S: Range<i64> = 5..600;

#[derive(Clone, Debug)]
pub struct ScheduleOptions {
    pub seed: u64,
    pub kinds: Vec<Kind>,
    pub nodes: usize,
    pub length: Duration,
    /// How long each fault lasts.
    pub fault: Range<Duration>,
    /// How long the cluster is left alone between faults.
    pub quiet: Range<Duration>,
}

impl ScheduleOptions {
    /// Faults of 5–15 s separated by 5–10 s of quiet.
    pub fn new(seed: u64, kinds: Vec<Kind>, nodes: usize, length: Duration) -> Self {
        ScheduleOptions {
            seed,
            kinds,
            nodes,
            length,
            fault: Duration::from_secs(5)..Duration::from_secs(15),
            quiet: Duration::from_secs(5)..Duration::from_secs(10),
        }
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.nodes < 3 {
            bail!("the nemeses need at least 3 nodes (got {})", self.nodes);
        }
        if self.fault.is_empty() || self.quiet.is_empty() {
            bail!("fault and quiet intervals must not be empty");
        }
        Ok(())
    }
}

/// One fault and when to inject and heal it, relative to the run's origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub start: Duration,
    pub end: Duration,
    pub fault: Fault,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    pub fn generate(opts: &ScheduleOptions) -> anyhow::Result<Schedule> {
        opts.validate()?;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut steps = Vec::new();
        let mut t = Duration::ZERO;
        while !opts.kinds.is_empty() {
            let start = t + rng.gen_range(opts.quiet.clone());
            let end = start + rng.gen_range(opts.fault.clone());
            if end > opts.length {
                break;
            }
            let kind = *opts.kinds.choose(&mut rng).expect("checked non-empty");
            steps.push(Step { start, end, fault: fault(&mut rng, kind, opts.nodes) });
            t = end;
        }
        Ok(Schedule { seed: opts.seed, steps })
    }
}

fn fault(rng: &mut StdRng, kind: Kind, n: usize) -> Fault {
    match kind {
        Kind::Partition => Fault::Partition(partition(rng, n)),
        Kind::Kill => Fault::Kill(target(rng, n, true)),
        Kind::Pause => Fault::Pause(target(rng, n, false)),
        Kind::Clock => {
            let offset = rng.gen_range(CLOCK_OFFSETS_S);
            Fault::Clock { node: rng.gen_range(0..n), offset_s: if rng.gen() { offset } else { -offset } }
        }
        Kind::Member => Fault::Member(rng.gen_range(0..n)),
    }
}

fn partition(rng: &mut StdRng, n: usize) -> Partition {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    match rng.gen_range(0..5) {
        0 => Partition::IsolateOne(order[0]),
        1 => Partition::IsolateLeader,
        2 => Partition::Halves(order[..minority(rng, n)].to_vec()),
        3 => Partition::MajoritiesRing(order),
        _ => Partition::Bridge(order),
    }
}

fn target(rng: &mut StdRng, n: usize, allow_minority: bool) -> Target {
    match rng.gen_range(0..if allow_minority { 3 } else { 2 }) {
        0 => Target::One(rng.gen_range(0..n)),
        1 => Target::Leader,
        _ => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            order.truncate(minority(rng, n));
            order.sort();
            Target::Minority(order)
        }
    }
}

/// A minority size: 1 up to (n-1)/2.
fn minority(rng: &mut StdRng, n: usize) -> usize {
    rng.gen_range(1..=(n - 1) / 2)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "nemesis schedule (seed {}, {} faults):", self.seed, self.steps.len())?;
        for s in &self.steps {
            writeln!(f, "  {:>7.1}s – {:>7.1}s  {}", s.start.as_secs_f64(), s.end.as_secs_f64(), s.fault)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(seed: u64, nodes: usize) -> ScheduleOptions {
        ScheduleOptions::new(seed, Kind::ALL.to_vec(), nodes, Duration::from_secs(600))
    }

    #[test]
    fn steps_are_ordered_within_the_run_and_hit_a_minority() {
        for seed in 0..50 {
            let o = opts(seed, 5);
            let s = Schedule::generate(&o).unwrap();
            assert!(s.steps.len() > 10, "seed {seed}: only {} steps", s.steps.len());
            let mut t = Duration::ZERO;
            for step in &s.steps {
                assert!(step.start >= t + o.quiet.start && step.end > step.start && step.end <= o.length);
                assert!(o.fault.contains(&(step.end - step.start)));
                t = step.end;
                if let Fault::Kill(Target::Minority(v)) | Fault::Pause(Target::Minority(v)) = &step.fault {
                    assert!(!v.is_empty() && v.len() <= 2, "{v:?}");
                }
                if let Fault::Partition(Partition::Halves(v)) = &step.fault {
                    assert!(!v.is_empty() && v.len() <= 2, "{v:?}");
                }
            }
        }
    }

    #[test]
    fn only_enabled_kinds_appear() {
        let mut o = opts(7, 3);
        o.kinds = vec![Kind::Pause, Kind::Clock];
        let s = Schedule::generate(&o).unwrap();
        assert!(s.steps.iter().all(|st| matches!(st.fault.kind(), Kind::Pause | Kind::Clock)));
        o.kinds.clear();
        assert!(Schedule::generate(&o).unwrap().steps.is_empty());
    }

    #[test]
    fn kind_lists_parse() {
        assert_eq!(Kind::parse_list("kill, partition,kill").unwrap(), vec![Kind::Partition, Kind::Kill]);
        assert_eq!(Kind::parse_list("all").unwrap(), Kind::ALL.to_vec());
        assert!(Kind::parse_list("flood").is_err());
    }
}
