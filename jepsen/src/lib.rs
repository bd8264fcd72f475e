//! `flotilla-jepsen`: histories of operations against a flotilla cluster under faults, and
//! the checkers that judge them (issue 6).
//!
//! This half is pure: [`history`] is the record clients write (JSON lines on disk), and
//! [`checker`] turns a history into verdicts — linearizability per key (WGL search with a
//! budget and an honest `Unknown`), lost/duplicated set elements, watch streams, and lease
//! lifetimes. Cluster control and nemeses build on it.
//!
//! ```
//! use flotilla_jepsen::checker::linearizable;
//! use flotilla_jepsen::{check_all, Call, Checker, History, Op, Outcome, Ret, Validity};
//!
//! let op = |process, call, invoke_ns, complete_ns, ret| Op {
//!     process, key: "x".into(), call, invoke_ns, complete_ns, outcome: Outcome::Ok(ret),
//! };
//! let history = History::new(vec![
//!     op(0, Call::Write { value: 1 }, 0, 10, Ret::Done),
//!     op(1, Call::Read, 20, 30, Ret::Value(None)), // stale: the write had completed
//! ]);
//! let summary = check_all(&history, &[Checker::Linearizable(linearizable::Config::default())]);
//! assert_eq!(summary.valid, Validity::Invalid);
//! ```

pub mod checker;
pub mod cluster;
pub mod error;
pub mod history;
pub mod nemesis;
pub mod run;
pub mod sim;
pub mod workload;

pub use checker::{check_all, Checker, Summary, Validity, Verdict};
pub use error::HistoryError;
pub use history::{Call, EventKind, History, Op, Outcome, Ret, Value};
