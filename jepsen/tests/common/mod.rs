//! Builders for hand-made histories and a generator of histories that are linearizable by
//! construction (ops of a real register, each given an interval around its real time).
#![allow(dead_code)] // each test binary uses a different part

use std::collections::HashMap;

use flotilla_jepsen::history::{Call, History, Op, Outcome, Ret, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn op(process: u32, key: &str, call: Call, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Op {
    Op { process, key: key.to_string(), call, invoke_ns, complete_ns, outcome }
}

/// An `Ok` read of key "x" returning `value`.
pub fn read(process: u32, invoke: u64, complete: u64, value: Option<Value>) -> Op {
    op(process, "x", Call::Read, invoke, complete, Outcome::Ok(Ret::Value(value)))
}

/// An `Ok` write of `value` to key "x".
pub fn write(process: u32, invoke: u64, complete: u64, value: Value) -> Op {
    op(process, "x", Call::Write { value }, invoke, complete, Outcome::Ok(Ret::Done))
}

/// A compare-and-set on key "x"; `succeeded: false` is Jepsen's `Fail`.
pub fn cas(process: u32, invoke: u64, complete: u64, expected: Option<Value>, new: Value, succeeded: bool) -> Op {
    let outcome = if succeeded { Outcome::Ok(Ret::Done) } else { Outcome::Fail };
    op(process, "x", Call::Cas { expected, new }, invoke, complete, outcome)
}

/// The same op with an indeterminate outcome.
pub fn info(mut op: Op) -> Op {
    op.outcome = Outcome::Info;
    op
}

pub fn with_key(mut op: Op, key: &str) -> Op {
    op.key = key.to_string();
    op
}

pub fn history(ops: Vec<Op>) -> History {
    History::new(ops)
}

/// Shape of a generated register history.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub ops: usize,
    pub keys: usize,
    /// Time between consecutive linearization points.
    pub spacing_ns: u64,
    /// Each side of an op's interval extends up to this far from its linearization point.
    pub max_overlap_ns: u64,
}

/// Generates a history of a real register: op `i` takes effect at `(i + 1) * spacing` and its
/// interval contains that point, so the history is linearizable. Some writes are
/// indeterminate (half of those took effect), failed CAS ops are `Fail`.
pub fn register_history(seed: u64, shape: Shape) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut state: HashMap<String, Option<Value>> = HashMap::new();
    let mut written: Vec<Value> = Vec::new();
    let mut ops = Vec::with_capacity(shape.ops);
    for i in 0..shape.ops {
        let at = (i as u64 + 1) * shape.spacing_ns + shape.max_overlap_ns;
        let invoke = at - rng.gen_range(0..=shape.max_overlap_ns);
        let complete = at + rng.gen_range(0..=shape.max_overlap_ns);
        let key = format!("k{}", rng.gen_range(0..shape.keys));
        let current = *state.entry(key.clone()).or_default();
        let fresh = i as Value + 1;
        let roll = rng.gen_range(0..100);
        let (call, outcome, applied) = if roll < 40 {
            let outcome = if roll < 4 { Outcome::Info } else { Outcome::Ok(Ret::Value(current)) };
            (Call::Read, outcome, None)
        } else if roll < 75 {
            write_outcome(&mut rng, Call::Write { value: fresh }, fresh)
        } else {
            let expected = if rng.gen_bool(0.5) || written.is_empty() {
                current
            } else {
                Some(written[rng.gen_range(0..written.len())])
            };
            let call = Call::Cas { expected, new: fresh };
            if expected == current {
                write_outcome(&mut rng, call, fresh)
            } else {
                let outcome = if rng.gen_bool(0.1) { Outcome::Info } else { Outcome::Fail };
                (call, outcome, None)
            }
        };
        if let Some(value) = applied {
            state.insert(key.clone(), Some(value));
            written.push(value);
        }
        ops.push(Op { process: i as u32, key, call, invoke_ns: invoke, complete_ns: complete, outcome });
    }
    History::new(ops)
}

/// A write that mostly succeeds; an indeterminate one took effect or not at random.
fn write_outcome(rng: &mut StdRng, call: Call, value: Value) -> (Call, Outcome, Option<Value>) {
    match rng.gen_range(0..100) {
        0..=84 => (call, Outcome::Ok(Ret::Done), Some(value)),
        85..=92 => (call, Outcome::Info, Some(value)),
        93..=96 => (call, Outcome::Info, None),
        _ => (call, Outcome::Fail, None),
    }
}

/// Appends, after everything else, an `Ok` write of a fresh value to `key` and then a read
/// of `key` returning a value that write made stale: an earlier value only `Ok` ops wrote,
/// or nil. No linearization can explain that read.
pub fn inject_stale_read(mut history: History, key: &str, pick: usize) -> History {
    let end = history.ops.iter().map(|op| op.complete_ns).max().unwrap_or(0);
    let written_by = |ok: bool| -> Vec<Value> {
        history
            .ops
            .iter()
            .filter(|op| op.key == key && op.is_ok() == ok && !matches!(op.outcome, Outcome::Fail))
            .filter_map(|op| match op.call {
                Call::Write { value } | Call::Cas { new: value, .. } => Some(value),
                _ => None,
            })
            .collect()
    };
    let uncertain = written_by(false);
    let mut stale: Vec<Option<Value>> = vec![None];
    stale.extend(written_by(true).into_iter().filter(|v| !uncertain.contains(v)).map(Some));
    let value = stale[pick % stale.len()];
    let fresh = history.ops.len() as Value + 1_000_000;
    history.ops.push(with_key(write(u32::MAX - 1, end + 10, end + 20, fresh), key));
    history.ops.push(with_key(read(u32::MAX, end + 30, end + 40, value), key));
    history
}
