//! [`PodSync`]: the pure core of one pod's sync — given the Pod as the API last showed it
//! and what the runtime holds for it, decide the next steps. Like raft-rs, it does no
//! I/O: the worker ([`super::worker`]) observes, calls [`PodSync::plan`], executes the
//! steps, and observes again.
//!
//! Invariants:
//! - Init containers run one at a time, in order; an app container is started only after
//!   every init container has exited 0. A failed init container is retried (with back-off)
//!   unless the restart policy is Never, which fails the pod.
//! - An exited container is started again only if the restart policy says so, and only
//!   after its back-off ([`CrashBackoff`]); meanwhile it is reported waiting
//!   `CrashLoopBackOff`. A restart is a new container with the next attempt number.
//! - Nothing is started for a pod that is terminating, or whose API phase is terminal.
//! - Termination: running containers are stopped first (with the pod's grace period),
//!   then containers and the sandbox are removed, and only when the runtime holds nothing
//!   of the pod is the Pod object deleted ([`Step::DeletePod`]).
//! - A pod gone from the API (`None`) is torn down the same way, without the delete.
//! - Adoption is free: the plan depends only on what the runtime reports, so containers
//!   found running after an agent restart are left running.
//! - Probes ([`Probes`]) are tracked for each app container's running attempt. A failed
//!   liveness or startup probe becomes a `StopContainer` of that attempt (the probe's
//!   `terminationGracePeriodSeconds`, else the pod's); the exit then takes the normal
//!   restart path, back-off included. Readiness and `started` reach the status through
//!   [`Plan::probes`].
//! - A container whose config cannot be resolved (the worker feeds the
//!   [`AgentError::ContainerConfig`] of its `RunContainer` back through
//!   [`PodSync::applied`]) waits with that reason and message and is retried with
//!   back-off; the error is forgotten once a start succeeds or the container runs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::backoff::CrashBackoff;
use super::probe::state::{Due, Kind, Outcome, Probes, View};
use super::spec::{self, RestartPolicy};
use crate::error::AgentError;
use crate::runtime::{ContainerInfo, ContainerState, SandboxInfo};

/// Exited attempts kept per container: the current one and the one before it (lastState).
const KEPT_ATTEMPTS: usize = 2;

/// What the runtime holds for one pod, and which of its images are present.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub sandbox: Option<SandboxInfo>,
    pub containers: Vec<ContainerInfo>,
    /// Image → its id if present locally, for every image the pod's containers use.
    pub images: BTreeMap<String, Option<String>>,
}

impl Observed {
    /// Attempts of container `name`, newest first.
    pub fn attempts(&self, name: &str) -> Vec<&ContainerInfo> {
        let mut all: Vec<&ContainerInfo> = self.containers.iter().filter(|c| c.name == name).collect();
        all.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        all
    }

    pub fn latest(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().filter(|c| c.name == name).max_by_key(|c| c.attempt)
    }

    pub fn is_empty(&self) -> bool {
        self.sandbox.is_none() && self.containers.is_empty()
    }
}

/// One thing for the worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateSandbox,
    /// Create and start attempt `attempt` of container `name` in the sandbox.
    RunContainer {
        name: String,
        attempt: u32,
    },
    StopContainer {
        id: String,
        grace: Duration,
    },
    RemoveContainer {
        id: String,
    },
    RemoveSandbox {
        id: String,
    },
    /// Delete the Pod object for good (grace period 0, uid precondition).
    DeletePod,
}

impl Step {
    /// Steps after which some container state can no longer be reported.
    pub fn removes_state(&self) -> bool {
        matches!(self, Step::RemoveContainer { .. } | Step::RemoveSandbox { .. } | Step::DeletePod)
    }
}

/// Why a container is not running, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: &'static str,
    pub message: String,
}

/// The outcome of [`PodSync::plan`].
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Containers held back, by name.
    pub waiting: BTreeMap<String, Waiting>,
    /// When to plan again even if nothing else happens (the end of a back-off).
    pub wake_at: Option<Instant>,
    /// Probe results of the app containers' running attempts, by name (absent: not
    /// tracked, which shows as started and ready while running).
    pub probes: BTreeMap<String, View>,
}

impl Plan {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn wait(&mut self, name: &str, reason: &'static str, message: String) {
        self.waiting.insert(name.to_string(), Waiting { reason, message });
    }
}

/// The sync state of one pod: back-offs, when each exit was first seen, probe state,
/// and container config errors.
#[derive(Debug)]
pub struct PodSync {
    backoff: CrashBackoff,
    /// Container id (or back-off key) → when this agent first saw it exited (or fail).
    exits: HashMap<String, Instant>,
    probes: Probes,
    /// Container name → why its config could not be resolved at its last try.
    config_errors: BTreeMap<String, Waiting>,
}

/// Back-off key of a missing image, distinct from the container's crash back-off.
fn pull_key(container: &str) -> String {
    format!("pull/{container}")
}

/// Back-off key of a container config error.
fn config_key(container: &str) -> String {
    format!("config/{container}")
}

impl PodSync {
    pub fn new(backoff_initial: Duration, backoff_max: Duration) -> Self {
        Self {
            backoff: CrashBackoff::new(backoff_initial, backoff_max),
            exits: HashMap::new(),
            probes: Probes::default(),
            config_errors: BTreeMap::new(),
        }
    }

    /// The steps that bring the runtime closer to `pod` (None: the pod is gone).
    pub fn plan(&mut self, pod: Option<&Pod>, observed: &Observed, now: Instant) -> Plan {
        self.note_exits(observed, now);
        self.track(pod, observed, now);
        let mut plan = self.plan_steps(pod, observed, now);
        plan.probes = spec_names(pod).filter_map(|n| self.probes.view(n).map(|v| (n.to_string(), v))).collect();
        plan
    }

    /// The probe runs due at `now` (each marked in flight until its result is fed back).
    pub fn due_probes(&mut self, now: Instant) -> Vec<Due> {
        self.probes.due(now)
    }

    /// When the next probe run is due.
    pub fn next_probe_at(&mut self) -> Option<Instant> {
        self.probes.next_due()
    }

    /// Feed a probe result; true if the pod must be synced again (readiness or `started`
    /// changed, or the attempt is to be killed).
    pub fn probe_result(&mut self, id: &str, kind: Kind, outcome: &Outcome) -> bool {
        self.probes.record(id, kind, outcome)
    }

    /// Feed back how a step went: a `RunContainer` that failed for its config makes that
    /// container wait (with back-off); one that succeeded clears it.
    pub fn applied(&mut self, step: &Step, result: Result<(), &AgentError>, now: Instant) {
        match (step, result) {
            (Step::RunContainer { name, .. }, Ok(())) => {
                self.config_errors.remove(name);
            }
            (Step::RunContainer { .. }, Err(AgentError::ContainerConfig { container, reason, message })) => {
                let key = config_key(container);
                self.backoff.restarted(&key, now);
                self.exits.insert(key, now);
                self.config_errors.insert(container.clone(), Waiting { reason, message: message.clone() });
            }
            _ => {}
        }
    }

    /// Track the probes of each app container's running attempt; a running container has
    /// no config error any more.
    fn track(&mut self, pod: Option<&Pod>, observed: &Observed, now: Instant) {
        let Some(pod) = pod else { return self.probes.track([], now) };
        let running = spec::containers(pod).iter().filter_map(|c| {
            let latest = observed.latest(&c.name).filter(|l| l.is_running())?;
            Some((c, latest.id.as_str()))
        });
        let running: Vec<(&Container, &str)> = running.collect();
        for (c, _) in &running {
            self.config_errors.remove(&c.name);
        }
        self.probes.track(running, now);
    }

    fn plan_steps(&mut self, pod: Option<&Pod>, observed: &Observed, now: Instant) -> Plan {
        let Some(pod) = pod else { return teardown(observed, Duration::ZERO, false) };
        if spec::is_terminating(pod) {
            return teardown(observed, spec::grace_period(pod), true);
        }
        let mut plan = Plan { steps: garbage(observed), ..Plan::default() };
        if spec::is_finished(pod) {
            return plan;
        }
        let Some(_sandbox) = &observed.sandbox else {
            plan.steps.extend(stop_running(observed, spec::grace_period(pod)));
            plan.steps.push(Step::CreateSandbox);
            return plan;
        };
        let policy = RestartPolicy::of(pod);
        if !self.plan_init(pod, policy, observed, now, &mut plan) {
            return plan;
        }
        for c in spec::containers(pod) {
            match observed.latest(&c.name) {
                None => {
                    self.run(c, 0, observed, now, &mut plan);
                }
                Some(info) => self.plan_existing(pod, c, info, policy, observed, now, &mut plan),
            }
        }
        plan
    }

    /// Plans the init containers; true once all of them have succeeded.
    fn plan_init(&mut self, pod: &Pod, policy: RestartPolicy, obs: &Observed, now: Instant, plan: &mut Plan) -> bool {
        for c in spec::init_containers(pod) {
            let Some(info) = obs.latest(&c.name) else {
                self.run(c, 0, obs, now, plan);
                return false;
            };
            match info.state {
                ContainerState::Exited { exit_code: 0, .. } => continue,
                ContainerState::Exited { .. } if policy == RestartPolicy::Never => return false,
                _ => {
                    // Init containers restart on failure under Always and OnFailure alike.
                    self.plan_existing(pod, c, info, RestartPolicy::OnFailure, obs, now, plan);
                    return false;
                }
            }
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_existing(
        &mut self,
        pod: &Pod,
        c: &Container,
        info: &ContainerInfo,
        policy: RestartPolicy,
        obs: &Observed,
        now: Instant,
        plan: &mut Plan,
    ) {
        match info.state {
            ContainerState::Running { .. } => {
                let kill = self.probes.kills().find(|(name, k)| *name == c.name && k.id == info.id);
                if let Some((_, kill)) = kill {
                    let grace = kill.grace.unwrap_or_else(|| spec::grace_period(pod));
                    plan.steps.push(Step::StopContainer { id: info.id.clone(), grace });
                }
            }
            // A start that failed half-way: remove it; the next plan creates it again.
            ContainerState::Created => plan.steps.push(Step::RemoveContainer { id: info.id.clone() }),
            ContainerState::Exited { exit_code, .. } if policy.restarts(exit_code) => {
                let exited_at = self.exits.get(&info.id).copied().unwrap_or(now);
                match self.backoff.blocked_until(&c.name, exited_at, now) {
                    Some(until) => {
                        let delay = self.backoff.delay(&c.name).unwrap_or_default();
                        let message = format!(
                            "back-off {}s restarting failed container={} pod={}",
                            delay.as_secs(),
                            c.name,
                            spec::key(pod)
                        );
                        plan.wait(&c.name, "CrashLoopBackOff", message);
                        plan.wake(until);
                    }
                    None => {
                        if self.run(c, info.attempt + 1, obs, now, plan) {
                            self.backoff.restarted(&c.name, now);
                        }
                    }
                }
            }
            ContainerState::Exited { .. } => {}
        }
    }

    /// Plans attempt `attempt` of `c` if its image is present; true if it was planned.
    fn run(&mut self, c: &Container, attempt: u32, obs: &Observed, now: Instant, plan: &mut Plan) -> bool {
        if let Some(error) = self.config_errors.get(&c.name) {
            let key = config_key(&c.name);
            let failed_at = self.exits.get(&key).copied().unwrap_or(now);
            if let Some(until) = self.backoff.blocked_until(&key, failed_at, now) {
                plan.wait(&c.name, error.reason, error.message.clone());
                plan.wake(until);
                return false;
            }
        }
        let image = c.image.clone().unwrap_or_default();
        if obs.images.get(&image).is_some_and(Option::is_some) {
            plan.steps.push(Step::RunContainer { name: c.name.clone(), attempt });
            return true;
        }
        let never = c.image_pull_policy.as_deref() == Some("Never");
        if never {
            let message = format!("Container image \"{image}\" is not present with pull policy of Never");
            plan.wait(&c.name, "ErrImageNeverPull", message);
            return false;
        }
        // No registry is reachable: a missing image is re-checked with back-off.
        let key = pull_key(&c.name);
        let failed_at = self.exits.get(&key).copied().unwrap_or(now);
        let message = format!("image \"{image}\" is not present on this node and no registry is configured");
        match self.backoff.blocked_until(&key, failed_at, now) {
            Some(until) => {
                plan.wait(&c.name, "ImagePullBackOff", format!("Back-off pulling image \"{image}\": {message}"));
                plan.wake(until);
            }
            None => {
                self.backoff.restarted(&key, now);
                self.exits.insert(key.clone(), now);
                plan.wait(&c.name, "ErrImagePull", message);
                if let Some(until) = self.backoff.blocked_until(&key, now, now) {
                    plan.wake(until);
                }
            }
        }
        false
    }

    /// Remembers when each exit was first seen; forgets containers that are gone.
    fn note_exits(&mut self, observed: &Observed, now: Instant) {
        let kept = |id: &str| id.starts_with("pull/") || id.starts_with("config/");
        self.exits.retain(|id, _| kept(id) || observed.containers.iter().any(|c| &c.id == id));
        for c in observed.containers.iter().filter(|c| matches!(c.state, ContainerState::Exited { .. })) {
            self.exits.entry(c.id.clone()).or_insert(now);
        }
    }
}

/// Names of the pod's app containers.
fn spec_names(pod: Option<&Pod>) -> impl Iterator<Item = &str> {
    pod.map(spec::containers).unwrap_or_default().iter().map(|c| c.name.as_str())
}

fn stop_running(observed: &Observed, grace: Duration) -> Vec<Step> {
    let running = observed.containers.iter().filter(|c| c.is_running());
    running.map(|c| Step::StopContainer { id: c.id.clone(), grace }).collect()
}

/// Stop everything; once nothing runs, remove everything; once nothing is left, delete
/// the Pod (if `delete_pod`).
fn teardown(observed: &Observed, grace: Duration, delete_pod: bool) -> Plan {
    let mut steps = stop_running(observed, grace);
    if steps.is_empty() {
        steps.extend(observed.containers.iter().map(|c| Step::RemoveContainer { id: c.id.clone() }));
        steps.extend(observed.sandbox.iter().map(|s| Step::RemoveSandbox { id: s.id.clone() }));
        if steps.is_empty() && delete_pod {
            steps.push(Step::DeletePod);
        }
    }
    Plan { steps, ..Plan::default() }
}

/// Exited attempts older than the [`KEPT_ATTEMPTS`] newest of each container.
fn garbage(observed: &Observed) -> Vec<Step> {
    let mut names: Vec<&str> = observed.containers.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let old = names.into_iter().flat_map(|n| observed.attempts(n).into_iter().skip(KEPT_ATTEMPTS));
    old.filter(|c| !c.is_running()).map(|c| Step::RemoveContainer { id: c.id.clone() }).collect()
}

#[cfg(test)]
mod tests;
