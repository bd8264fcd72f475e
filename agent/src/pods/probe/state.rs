//! [`Probes`]: the pure probe bookkeeping of one pod — which probes are due, and what
//! their results mean for each running container attempt (started, ready, must be
//! killed). Like the sync core it reads no clock: callers pass `now`.
//!
//! Invariants:
//! - Probes are tracked per container *attempt* (container id): a new attempt starts with
//!   fresh counters, not ready, and (with a startup probe) not started.
//! - At most one run of each probe of an attempt is in flight; the next run is due one
//!   period after the previous one was handed out.
//! - While an attempt has not started (startup probe not yet passed), only its startup
//!   probe runs; once it has, the startup probe never runs again for that attempt.
//! - An attempt whose liveness or startup probe failed `failureThreshold` times in a row
//!   is marked for a kill, and none of its probes runs again.
//! - `initialDelaySeconds` counts from when this agent first saw the attempt running
//!   (after an agent restart, adopted containers wait the delay again).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::time::Instant;

const DEFAULT_PERIOD_SECONDS: i32 = 10;
const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// Which probe of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }

    /// This kind's probe in `container`'s spec.
    pub fn of(self, container: &Container) -> Option<&Probe> {
        match self {
            Kind::Startup => container.startup_probe.as_ref(),
            Kind::Liveness => container.liveness_probe.as_ref(),
            Kind::Readiness => container.readiness_probe.as_ref(),
        }
    }
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The probe ran and failed (why, for the log).
    Failure(String),
    /// The probe could not be run at all; the result is thrown away (like upstream's
    /// prober errors).
    Unknown(String),
}

/// A probe's timing and thresholds, with Kubernetes defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds`, for the kill it causes.
    pub termination_grace: Option<Duration>,
}

impl Settings {
    pub fn of(probe: &Probe, kind: Kind) -> Self {
        let secs = |v: Option<i32>, default: i32, min: i32| Duration::from_secs(v.unwrap_or(default).max(min) as u64);
        let success = match kind {
            Kind::Readiness => probe.success_threshold.unwrap_or(1).max(1) as u32,
            // The API rejects anything but 1 for these; be safe if it did not.
            Kind::Liveness | Kind::Startup => 1,
        };
        Settings {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, DEFAULT_PERIOD_SECONDS, 1),
            timeout: secs(probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS, 1),
            success_threshold: success,
            failure_threshold: probe.failure_threshold.unwrap_or(DEFAULT_FAILURE_THRESHOLD).max(1) as u32,
            termination_grace: probe.termination_grace_period_seconds.map(|s| Duration::from_secs(s.max(0) as u64)),
        }
    }
}

/// One probe of one attempt.
#[derive(Debug, Clone)]
struct Tracker {
    settings: Settings,
    next_due: Instant,
    in_flight: bool,
    /// The probe's state: None until a threshold is first reached (startup probes).
    passing: Option<bool>,
    /// The latest result and how many equal results in a row ended with it.
    last: Option<bool>,
    streak: u32,
    last_failure: String,
}

impl Tracker {
    fn new(probe: &Probe, kind: Kind, now: Instant) -> Self {
        let settings = Settings::of(probe, kind);
        let passing = match kind {
            Kind::Startup => None,
            Kind::Liveness => Some(true),
            Kind::Readiness => Some(false),
        };
        let next_due = now + settings.initial_delay;
        Tracker { settings, next_due, in_flight: false, passing, last: None, streak: 0, last_failure: String::new() }
    }

    /// Feeds one result; true if the probe's state changed.
    fn record(&mut self, ok: bool) -> bool {
        self.in_flight = false;
        if self.last == Some(ok) {
            self.streak = self.streak.saturating_add(1);
        } else {
            (self.last, self.streak) = (Some(ok), 1);
        }
        let threshold = if ok { self.settings.success_threshold } else { self.settings.failure_threshold };
        let changed = self.streak >= threshold && self.passing != Some(ok);
        if changed {
            self.passing = Some(ok);
        }
        changed
    }
}

/// Why and how an attempt is to be killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    /// The failing probe's `terminationGracePeriodSeconds` (else the pod's applies).
    pub grace: Option<Duration>,
    pub reason: String,
}

/// What the status shows of a running attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub started: bool,
    pub ready: bool,
}

/// A probe run to start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub container: String,
    pub id: String,
    pub kind: Kind,
    pub timeout: Duration,
}

/// The probes of one running container attempt.
#[derive(Debug, Clone)]
struct Attempt {
    id: String,
    trackers: Vec<(Kind, Tracker)>,
    started: bool,
    kill: Option<Kill>,
}

impl Attempt {
    fn new(container: &Container, id: &str, now: Instant) -> Self {
        let kinds = [Kind::Startup, Kind::Liveness, Kind::Readiness];
        let trackers: Vec<(Kind, Tracker)> =
            kinds.into_iter().filter_map(|k| k.of(container).map(|p| (k, Tracker::new(p, k, now)))).collect();
        let started = !trackers.iter().any(|(k, _)| *k == Kind::Startup);
        Attempt { id: id.to_string(), trackers, started, kill: None }
    }

    /// The trackers that may run now (not gated, not killed), whether due or not.
    fn schedulable(&mut self) -> impl Iterator<Item = &mut (Kind, Tracker)> {
        let (started, killed) = (self.started, self.kill.is_some());
        self.trackers.iter_mut().filter(move |(k, t)| !killed && !t.in_flight && (*k == Kind::Startup) != started)
    }

    fn ready(&self) -> bool {
        let readiness = self.trackers.iter().find(|(k, _)| *k == Kind::Readiness);
        self.started && readiness.is_none_or(|(_, t)| t.passing == Some(true))
    }
}

/// The probe state of one pod's running containers, by container name. See the module doc.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    attempts: BTreeMap<String, Attempt>,
}

impl Probes {
    /// Track exactly `running` (each app container's running attempt, with its id);
    /// attempts not in it are forgotten, new ones start afresh at `now`.
    pub fn track<'a>(&mut self, running: impl IntoIterator<Item = (&'a Container, &'a str)>, now: Instant) {
        let running: BTreeMap<&str, (&Container, &str)> =
            running.into_iter().map(|(c, id)| (&*c.name, (c, id))).collect();
        self.attempts.retain(|name, a| running.get(name.as_str()).is_some_and(|(_, id)| *id == a.id));
        for (name, (container, id)) in running {
            if !self.attempts.contains_key(name) {
                self.attempts.insert(name.to_string(), Attempt::new(container, id, now));
            }
        }
    }

    /// The probe runs due at `now`, marked in flight; each is due again a period later.
    pub fn due(&mut self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        for (name, attempt) in &mut self.attempts {
            let id = attempt.id.clone();
            for (kind, t) in attempt.schedulable().filter(|(_, t)| t.next_due <= now) {
                (t.in_flight, t.next_due) = (true, now + t.settings.period);
                due.push(Due { container: name.clone(), id: id.clone(), kind: *kind, timeout: t.settings.timeout });
            }
        }
        due
    }

    /// When the next probe is due (None: none is scheduled).
    pub fn next_due(&mut self) -> Option<Instant> {
        self.attempts.values_mut().flat_map(|a| a.schedulable().map(|(_, t)| t.next_due)).min()
    }

    /// Feed a result for attempt `id`'s `kind` probe; true if it changed what the pod
    /// shows or must do (started, ready, a kill). Results of forgotten attempts are ignored.
    pub fn record(&mut self, id: &str, kind: Kind, outcome: &Outcome) -> bool {
        let Some(attempt) = self.attempts.values_mut().find(|a| a.id == id) else { return false };
        let Some((_, t)) = attempt.trackers.iter_mut().find(|(k, _)| *k == kind) else { return false };
        let ok = match outcome {
            Outcome::Success => true,
            Outcome::Failure(why) => {
                t.last_failure.clone_from(why);
                false
            }
            Outcome::Unknown(_) => {
                t.in_flight = false;
                return false;
            }
        };
        if !t.record(ok) {
            return false;
        }
        let (passing, grace, why) = (t.passing, t.settings.termination_grace, t.last_failure.clone());
        match (kind, passing) {
            (Kind::Startup, Some(true)) => attempt.started = true,
            (Kind::Startup | Kind::Liveness, Some(false)) if attempt.kill.is_none() => {
                let reason = format!("{} probe failed: {why}", kind.name());
                attempt.kill = Some(Kill { id: attempt.id.clone(), grace, reason });
            }
            _ => {}
        }
        true
    }

    /// What the status shows of container `name`'s running attempt, if it is tracked.
    pub fn view(&self, name: &str) -> Option<View> {
        self.attempts.get(name).map(|a| View { started: a.started, ready: a.ready() })
    }

    /// The attempts to kill, by container name.
    pub fn kills(&self) -> impl Iterator<Item = (&str, &Kill)> {
        self.attempts.iter().filter_map(|(n, a)| a.kill.as_ref().map(|k| (n.as_str(), k)))
    }
}

#[cfg(test)]
mod tests;
