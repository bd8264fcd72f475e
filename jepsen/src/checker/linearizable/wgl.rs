//! The Wing–Gong/Lowe search for a linearization of one key's ops, as Porcupine does it.
//!
//! Every op becomes a call entry and a return entry in one time-ordered doubly linked list
//! (calls before returns at equal times, so touching ops count as concurrent). Walking the
//! list from its head, a call whose op the model accepts in the current state is
//! *linearized*: pushed on a stack with the state before it, and its two entries lifted out
//! of the list. Reaching a return entry means that op's call was not linearized before its
//! return, so the last choice is undone (entries put back in reverse order) and the walk goes
//! on after that call. A cache of (set of linearized ops, state) pairs prunes every branch
//! that reaches a configuration seen before: what follows depends only on that pair.
//!
//! Indeterminate ops return at "never": their return entries sit after every real one, so
//! they may linearize anywhere after their invoke; the search succeeds as soon as every `Ok`
//! op is linearized, which leaves out the indeterminate ones that never took effect.
//!
//! The search is exponential in the worst case; a [`Budget`] bounds it, and running out is
//! reported as [`Search::Exceeded`], never as an answer.

use std::collections::HashSet;
use std::time::Instant;

use super::model::Model;
use crate::history::Op;

/// How much work one search may do before it gives up.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Loop iterations (calls tried and backtracks) allowed for one key.
    pub max_steps: u64,
    /// Wall-clock limit shared by every key of a check.
    pub deadline: Option<Instant>,
}

/// How often (in steps) the deadline is read: reading the clock each step would cost more
/// than the step itself.
const DEADLINE_CHECK_EVERY: u64 = 4096;

/// The outcome of one key's search. Indices are into the slice given to [`search`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search<S> {
    Linearizable,
    NotLinearizable(Failure<S>),
    /// The budget ran out after this many steps.
    Exceeded {
        steps: u64,
    },
}

/// The deepest point the search reached before every branch died.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure<S> {
    /// The longest linearizable prefix found, in linearization order.
    pub prefix: Vec<usize>,
    /// The model state after that prefix.
    pub state: S,
    /// The op whose return came before any way to linearize it after the prefix.
    pub stuck: usize,
}

const NIL: usize = usize::MAX;

/// A set of op indices, hashable for the cache.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bitset(Vec<u64>);

impl Bitset {
    fn new(len: usize) -> Self {
        Self(vec![0; len.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The entry list: entry `2 * op` is the op's call, `2 * op + 1` its return; the head
/// sentinel is entry `2 * n`.
struct Entries {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Entries {
    fn new(ops: &[&Op]) -> Self {
        let n = ops.len();
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            let returns_at = if op.is_ok() { op.complete_ns } else { u64::MAX };
            order.push((op.invoke_ns, 0, 2 * i));
            order.push((returns_at, 1, 2 * i + 1));
        }
        order.sort_unstable();
        let head = 2 * n;
        let mut next = vec![NIL; 2 * n + 1];
        let mut prev = vec![NIL; 2 * n + 1];
        let mut last = head;
        for &(_, _, entry) in &order {
            next[last] = entry;
            prev[entry] = last;
            last = entry;
        }
        Self { next, prev }
    }

    fn head(&self) -> usize {
        self.next.len() - 1
    }

    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NIL {
            self.prev[n] = e;
        }
    }

    /// Takes an op's call and return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(call + 1);
    }

    /// Undoes the matching [`Entries::lift`] (lifts are undone in reverse order).
    fn unlift(&mut self, call: usize) {
        self.relink(call + 1);
        self.relink(call);
    }
}

/// Searches for a linearization of `ops` (one key's ops, none of them `Fail`).
pub fn search<M: Model>(model: &M, ops: &[&Op], budget: Budget) -> Search<M::State> {
    let mut entries = Entries::new(ops);
    let head = entries.head();
    let mut remaining_ok = ops.iter().filter(|op| op.is_ok()).count();
    let mut state = model.init();
    let mut linearized = Bitset::new(ops.len());
    let mut cache: HashSet<(Bitset, M::State)> = HashSet::new();
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut deepest: Option<Failure<M::State>> = None;
    let mut entry = entries.next[head];
    let mut steps: u64 = 0;

    while remaining_ok > 0 {
        steps += 1;
        if out_of_budget(steps, &budget) {
            return Search::Exceeded { steps };
        }
        if entry != NIL && entry % 2 == 0 {
            let op = entry / 2;
            if let Some(after) = model.step(&state, &ops[op].call, ops[op].ret()) {
                let mut with_op = linearized.clone();
                with_op.set(op);
                if cache.insert((with_op.clone(), after.clone())) {
                    calls.push((op, std::mem::replace(&mut state, after)));
                    linearized = with_op;
                    remaining_ok -= usize::from(ops[op].is_ok());
                    entries.lift(entry);
                    entry = entries.next[head];
                    continue;
                }
            }
            entry = entries.next[entry];
            continue;
        }
        // A return (or the end) before its call could be linearized: a dead end.
        if deepest.as_ref().is_none_or(|d| calls.len() > d.prefix.len()) {
            let stuck = if entry == NIL { first_pending(ops, &linearized) } else { entry / 2 };
            deepest = Some(Failure { prefix: calls.iter().map(|c| c.0).collect(), state: state.clone(), stuck });
        }
        let Some((op, before)) = calls.pop() else {
            return Search::NotLinearizable(deepest.expect("a dead end was just recorded"));
        };
        state = before;
        linearized.clear(op);
        remaining_ok += usize::from(ops[op].is_ok());
        entries.unlift(2 * op);
        entry = entries.next[2 * op];
    }
    Search::Linearizable
}

fn out_of_budget(steps: u64, budget: &Budget) -> bool {
    if steps > budget.max_steps {
        return true;
    }
    steps % DEADLINE_CHECK_EVERY == 0 && budget.deadline.is_some_and(|d| Instant::now() >= d)
}

/// The earliest-returning `Ok` op not yet linearized (only for a walk that fell off the end,
/// which a well-formed list never does).
fn first_pending(ops: &[&Op], linearized: &Bitset) -> usize {
    (0..ops.len())
        .filter(|&i| ops[i].is_ok() && linearized.0[i / 64] & (1 << (i % 64)) == 0)
        .min_by_key(|&i| ops[i].complete_ns)
        .unwrap_or(0)
}
