//! What `flotilla up` is doing while it starts: one numbered line per step, finished with how
//! long the step took (`[2/5] electing a leader … 2.3 s, r2 leads`).
//!
//! Everything `up` says goes to stdout, these lines included: the end-to-end harness and
//! scripts read stdout for "replicas ready", and logs (tracing) go to stderr. A step's line
//! is written when it starts and completed when it ends, so a slow step shows what `up` is
//! waiting for; nothing else is printed while a line is open.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    step_started: Instant,
    open: bool,
}

impl Progress {
    /// Progress through `total` steps, timed from now.
    pub fn new(total: usize) -> Self {
        let now = Instant::now();
        Self { total, done: 0, started: now, step_started: now, open: false }
    }

    /// Start the next step.
    pub fn step(&mut self, what: &str) {
        assert!(!self.open, "a step starts only after the previous one ended");
        assert!(self.done < self.total, "more steps than announced");
        self.done += 1;
        self.open = true;
        self.step_started = Instant::now();
        print!("[{}/{}] {what} … ", self.done, self.total);
        let _ = std::io::stdout().flush();
    }

    /// The step ended; `note` (if not empty) follows its time.
    pub fn done(&mut self, note: &str) {
        let took = seconds(self.step_started.elapsed());
        self.open = false;
        if note.is_empty() {
            println!("{took}");
        } else {
            println!("{took}, {note}");
        }
    }

    /// The step failed (the caller reports why); completes its line.
    pub fn failed(&mut self) {
        if std::mem::take(&mut self.open) {
            println!("failed after {}", seconds(self.step_started.elapsed()));
        }
    }

    /// Time since [`Progress::new`].
    pub fn total(&self) -> Duration {
        self.started.elapsed()
    }
}

/// `2.3 s`.
pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
