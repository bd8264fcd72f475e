//! The Pod status the agent reports, computed purely from the pod, what the runtime
//! holds and the sync plan's waiting reasons.
//!
//! Invariants:
//! - Fields the agent does not own (qosClass, nominatedNodeName, conditions of other
//!   types such as DisruptionTarget) are kept from the status it builds on.
//! - A condition's `lastTransitionTime` changes only when its status changes, and
//!   `startTime` is set once; all times are whole seconds (as they serialize), so a status
//!   that did not change compares equal and is not written again.
//! - A terminal phase (Succeeded, Failed) is final: it is never replaced by another.
//! - A terminating pod whose containers have all stopped ends Succeeded if they all exited
//!   0, else Failed (upstream kubelet since 1.27).
//! - A running container is `ready` and `started` as its probes say ([`Plan::probes`]);
//!   one without probe state (no probes tracked) is both. ContainersReady and Ready
//!   follow the app containers' `ready`, so a readiness probe gates them both ways.

use k8s_openapi::api::core::v1::{
    Container, ContainerState as K8sState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::spec::{self, RestartPolicy};
use super::sync::{Observed, Plan};
use crate::runtime::{ContainerInfo, ContainerState};

const OWN_CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// Everything a status is computed from.
pub struct Input<'a> {
    pub pod: &'a Pod,
    pub observed: &'a Observed,
    pub plan: &'a Plan,
    /// The status to build on: the last one written, or the API's.
    pub base: Option<&'a PodStatus>,
    pub host_ip: &'a str,
    /// The runtime's name, the scheme of container ids (`fake://...`).
    pub runtime: &'a str,
    pub now: Timestamp,
}

/// A timestamp as it serializes: whole seconds.
pub fn time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).expect("whole seconds of a valid timestamp are valid"))
}

/// The status to report, or None when there is nothing left to report (a terminating
/// pod whose runtime state is removed).
pub fn compute(input: &Input) -> Option<PodStatus> {
    let (pod, obs) = (input.pod, input.observed);
    if spec::is_terminating(pod) && obs.is_empty() {
        return None;
    }
    let mut status = input.base.cloned().unwrap_or_default();
    let init: Vec<ContainerStatus> = spec::init_containers(pod).iter().map(|c| container(input, c)).collect();
    let apps: Vec<ContainerStatus> = spec::containers(pod).iter().map(|c| container(input, c)).collect();
    let phase = phase(input, &init, &apps);
    let initialized = init.iter().all(succeeded);
    let ready = !apps.is_empty() && apps.iter().all(|c| c.ready) && phase == "Running";
    let unready: Vec<&str> = apps.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    let incomplete: Vec<&str> = init.iter().filter(|c| !succeeded(c)).map(|c| c.name.as_str()).collect();
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let not_ready = if terminal {
        ("PodCompleted", String::new())
    } else {
        ("ContainersNotReady", list("containers with unready status", &unready))
    };
    let conditions = [
        ("PodScheduled", true, ("", String::new())),
        (
            "Initialized",
            initialized,
            ("ContainersNotInitialized", list("containers with incomplete status", &incomplete)),
        ),
        ("ContainersReady", ready, not_ready.clone()),
        ("Ready", ready, not_ready),
    ];
    let mut merged: Vec<PodCondition> =
        conditions.into_iter().map(|(t, ok, why)| condition(input, t, ok, why)).collect();
    let others = status.conditions.iter().flatten().filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()));
    merged.extend(others.cloned());
    status.conditions = Some(merged);
    status.phase = Some(phase.to_string());
    status.host_ip = Some(input.host_ip.to_string());
    status.host_ips = Some(vec![HostIP { ip: input.host_ip.to_string() }]);
    if let Some(ip) = obs.sandbox.as_ref().and_then(|s| s.ip.clone()) {
        status.pod_ip = Some(ip.clone());
        status.pod_ips = Some(vec![PodIP { ip }]);
    }
    status.start_time = status.start_time.or_else(|| Some(time(input.now)));
    status.init_container_statuses = (!init.is_empty()).then_some(init);
    status.container_statuses = Some(apps);
    Some(status)
}

fn list(what: &str, names: &[&str]) -> String {
    format!("{what}: [{}]", names.join(" "))
}

fn succeeded(c: &ContainerStatus) -> bool {
    c.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code == 0)
}

fn condition(input: &Input, type_: &str, ok: bool, (reason, message): (&str, String)) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let old = input.base.and_then(|b| b.conditions.as_ref()).and_then(|cs| cs.iter().find(|c| c.type_ == type_));
    if type_ == "PodScheduled" {
        if let Some(old) = old.filter(|o| o.status == "True") {
            return old.clone();
        }
    }
    let since = old.filter(|o| o.status == status).and_then(|o| o.last_transition_time.clone());
    let (reason, message) = if ok { (None, None) } else { (Some(reason.to_string()), Some(message)) };
    PodCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(since.unwrap_or_else(|| time(input.now))),
        reason: reason.filter(|r| !r.is_empty()),
        message: message.filter(|m| !m.is_empty()),
        ..PodCondition::default()
    }
}

fn phase(input: &Input, init: &[ContainerStatus], apps: &[ContainerStatus]) -> &'static str {
    let pod = input.pod;
    match input.base.and_then(|b| b.phase.as_deref()) {
        Some("Succeeded") => return "Succeeded",
        Some("Failed") => return "Failed",
        _ => {}
    }
    let policy = RestartPolicy::of(pod);
    let init_failed = policy == RestartPolicy::Never
        && init.iter().any(|c| c.state.as_ref().and_then(|s| s.terminated.as_ref()).is_some_and(|t| t.exit_code != 0));
    let running = apps.iter().filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())).count();
    let done = apps.iter().filter(|c| succeeded(c)).count();
    if spec::is_terminating(pod) && running == 0 {
        return if !apps.is_empty() && done == apps.len() { "Succeeded" } else { "Failed" };
    }
    if init_failed {
        return "Failed";
    }
    if !init.iter().all(succeeded) {
        return "Pending";
    }
    // Waiting without ever having run keeps the pod Pending; a crash-looping one counts as stopped.
    let never_ran =
        apps.iter().filter(|c| c.state.as_ref().is_some_and(|s| s.waiting.is_some()) && c.last_state.is_none());
    if never_ran.count() > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if apps.is_empty() {
        return "Pending";
    }
    match policy {
        RestartPolicy::Always => "Running",
        _ if done == apps.len() => "Succeeded",
        RestartPolicy::Never => "Failed",
        RestartPolicy::OnFailure => "Running",
    }
}

fn terminated(info: &ContainerInfo, runtime: &str) -> Option<K8sState> {
    let ContainerState::Exited { exit_code, started_at, finished_at, reason } = &info.state else { return None };
    let default_reason = if *exit_code == 0 { "Completed" } else { "Error" };
    Some(K8sState {
        terminated: Some(ContainerStateTerminated {
            exit_code: *exit_code,
            reason: Some(reason.clone().unwrap_or_else(|| default_reason.to_string())),
            started_at: started_at.map(time),
            finished_at: Some(time(*finished_at)),
            container_id: Some(format!("{runtime}://{}", info.id)),
            ..ContainerStateTerminated::default()
        }),
        ..K8sState::default()
    })
}

fn waiting(reason: &str, message: Option<String>) -> K8sState {
    K8sState {
        waiting: Some(ContainerStateWaiting { reason: Some(reason.to_string()), message }),
        ..K8sState::default()
    }
}

fn container(input: &Input, c: &Container) -> ContainerStatus {
    let attempts = input.observed.attempts(&c.name);
    let held = input.plan.waiting.get(&c.name);
    let latest = attempts.first().copied();
    let mut status = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|l| l.image_id.clone()).unwrap_or_default(),
        container_id: latest.map(|l| format!("{}://{}", input.runtime, l.id)),
        restart_count: latest.map_or(0, |l| l.attempt as i32),
        ..ContainerStatus::default()
    };
    let previous = attempts.get(1).and_then(|p| terminated(p, input.runtime));
    let (state, last) = match (latest.map(|l| &l.state), held) {
        (Some(ContainerState::Running { started_at }), _) => {
            let probes = input.plan.probes.get(&c.name);
            status.ready = probes.is_none_or(|p| p.ready);
            status.started = Some(probes.is_none_or(|p| p.started));
            let running = ContainerStateRunning { started_at: Some(time(*started_at)) };
            (K8sState { running: Some(running), ..K8sState::default() }, previous)
        }
        (Some(ContainerState::Exited { .. }), Some(w)) => {
            (waiting(w.reason, Some(w.message.clone())), latest.and_then(|l| terminated(l, input.runtime)))
        }
        (Some(ContainerState::Exited { .. }), None) => {
            (terminated(latest.expect("matched"), input.runtime).expect("exited"), previous)
        }
        (_, Some(w)) => (waiting(w.reason, Some(w.message.clone())), previous),
        (Some(ContainerState::Created), None) | (None, None) => {
            let init_pending = spec::containers(input.pod).iter().any(|a| a.name == c.name)
                && !spec::init_containers(input.pod).iter().all(|i| {
                    input
                        .observed
                        .latest(&i.name)
                        .is_some_and(|l| matches!(l.state, ContainerState::Exited { exit_code: 0, .. }))
                });
            (waiting(if init_pending { "PodInitializing" } else { "ContainerCreating" }, None), previous)
        }
    };
    status.started = status.started.or(Some(false));
    status.state = Some(state);
    status.last_state = last;
    status
}
