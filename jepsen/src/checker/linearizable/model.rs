//! Sequential specifications the linearizability search checks against.
//!
//! A [`Model`] is a pure state machine over one key: `step(state, call, ret)` returns the
//! state after the call if the call could have returned `ret` from `state`, `None` if it
//! could not. `ret` is `None` for an indeterminate op; its step must then assume the call
//! took effect (the search covers "it never happened" on its own, by leaving the op out).
//!
//! Two models:
//! - [`Register`]: read → value or nil, write, delete, compare-and-set on the value.
//! - [`VersionedRegister`]: the same plus each key's mod_revision as etcd reports it, with
//!   compare-and-set on the revision (etcd's `Txn(mod_revision == r)`). An indeterminate or
//!   revision-less write leaves the revision unknown (but above every revision seen before);
//!   a later read or successful CAS pins it. Unknown revisions make the model accept a bit
//!   more than etcd would, never less: it can miss an anomaly, not invent one.

use std::fmt::Debug;
use std::hash::Hash;

use serde::Serialize;

use crate::history::{Call, Ret, Value};

/// A sequential specification of one key.
pub trait Model {
    type State: Clone + Eq + Hash + Debug + Serialize;

    /// The state before any op (the key is absent).
    fn init(&self) -> Self::State;

    /// Whether this model speaks about the call; other calls are left out of the check.
    fn accepts(&self, call: &Call) -> bool;

    /// True when the call never changes the state, so an indeterminate one can be dropped.
    fn is_read_only(&self, call: &Call) -> bool;

    /// The state after `call` returned `ret` (`None`: indeterminate) from `state`, or `None`
    /// when that is impossible.
    fn step(&self, state: &Self::State, call: &Call, ret: Option<&Ret>) -> Option<Self::State>;
}

/// A read/write/CAS register holding an optional value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Register;

impl Model for Register {
    type State = Option<Value>;

    fn init(&self) -> Self::State {
        None
    }

    fn accepts(&self, call: &Call) -> bool {
        matches!(call, Call::Read | Call::Write { .. } | Call::Delete | Call::Cas { .. })
    }

    fn is_read_only(&self, call: &Call) -> bool {
        matches!(call, Call::Read)
    }

    fn step(&self, state: &Self::State, call: &Call, ret: Option<&Ret>) -> Option<Self::State> {
        match call {
            Call::Read => match ret {
                None => Some(*state),
                Some(ret) => (read_value(ret)? == *state).then_some(*state),
            },
            Call::Write { value } => Some(Some(*value)),
            Call::Delete => Some(None),
            Call::Cas { expected, new } => match (ret, *state == *expected) {
                (_, true) => Some(Some(*new)),
                // An indeterminate CAS whose compare fails here simply had no effect here.
                (None, false) => Some(*state),
                (Some(_), false) => None,
            },
            _ => None,
        }
    }
}

/// The value a read returned, whichever form it came in.
fn read_value(ret: &Ret) -> Option<Option<Value>> {
    match ret {
        Ret::Value(value) | Ret::Versioned { value, .. } => Some(*value),
        _ => None,
    }
}

/// A register that also tracks the key's mod_revision (0 while absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct VersionedRegister;

/// State of a [`VersionedRegister`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Versioned {
    pub value: Option<Value>,
    /// The key's mod_revision; `None` when a write's revision is not known yet.
    pub revision: Option<u64>,
    /// The highest revision known to have been written to this key: later writes are above.
    pub floor: u64,
}

impl Versioned {
    /// Whether a compare on `expected` mod_revision can succeed in this state.
    fn revision_may_be(&self, expected: u64) -> bool {
        match self.revision {
            Some(known) => known == expected,
            None => expected > self.floor,
        }
    }

    /// The state after writing `value`, which created revision `created` if known.
    fn written(&self, value: Value, created: Option<u64>) -> Option<Self> {
        match created {
            Some(rev) if rev <= self.floor => None,
            Some(rev) => Some(Self { value: Some(value), revision: Some(rev), floor: rev }),
            None => Some(Self { value: Some(value), revision: None, floor: self.floor }),
        }
    }
}

fn created_revision(ret: Option<&Ret>) -> Option<u64> {
    match ret {
        Some(Ret::Revision(rev)) => Some(*rev),
        _ => None,
    }
}

impl Model for VersionedRegister {
    type State = Versioned;

    fn init(&self) -> Self::State {
        Versioned { value: None, revision: Some(0), floor: 0 }
    }

    fn accepts(&self, call: &Call) -> bool {
        matches!(call, Call::Read | Call::Write { .. } | Call::Delete | Call::Cas { .. } | Call::CasRevision { .. })
    }

    fn is_read_only(&self, call: &Call) -> bool {
        matches!(call, Call::Read)
    }

    fn step(&self, state: &Self::State, call: &Call, ret: Option<&Ret>) -> Option<Self::State> {
        match call {
            Call::Read => read_versioned(state, ret),
            Call::Write { value } => state.written(*value, created_revision(ret)),
            Call::Delete => Some(Versioned { value: None, revision: Some(0), floor: state.floor }),
            Call::Cas { expected, new } => match (ret, state.value == *expected) {
                (_, true) => state.written(*new, created_revision(ret)),
                (None, false) => Some(*state),
                (Some(_), false) => None,
            },
            Call::CasRevision { revision, value } => match (ret, state.revision_may_be(*revision)) {
                (_, true) => state.written(*value, created_revision(ret)),
                (None, false) => Some(*state),
                (Some(_), false) => None,
            },
            _ => None,
        }
    }
}

fn read_versioned(state: &Versioned, ret: Option<&Ret>) -> Option<Versioned> {
    match ret {
        None => Some(*state),
        Some(Ret::Value(value)) => (*value == state.value).then_some(*state),
        Some(Ret::Versioned { value, revision }) => {
            if *value != state.value {
                return None;
            }
            match state.revision {
                Some(known) => (known == *revision).then_some(*state),
                // The read pins the revision an earlier write left unknown.
                None if *revision > state.floor => {
                    Some(Versioned { value: *value, revision: Some(*revision), floor: *revision })
                }
                None => None,
            }
        }
        Some(_) => None,
    }
}
