//! The pod printer: READY, STATUS and RESTARTS as upstream's `printPod` derives them.
//!
//! STATUS starts from the phase (or `status.reason`), is overridden by the first init container
//! that has not finished, then, once init is done, by the waiting or terminated reason of the
//! first app container that has one. A pod being deleted reads `Terminating` (or `Unknown` when
//! its node was lost). Sidecars (init containers with `restartPolicy: Always`) count towards
//! READY and RESTARTS like app containers.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::descriptions::{POD_IP, POD_NODE_NAME, POD_NOMINATED_NODE, POD_READINESS_GATES};
use super::field::{condition, condition_true, deleting, flag, get, int, list, name, text, time};
use super::format::since;
use super::{age, Column, Printer, AGE, NAME};

pub(super) static PODS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        Column::string("Status", "The aggregate status of the containers in this pod."),
        Column::string(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        Column::string("IP", POD_IP).wide(),
        Column::string("Node", POD_NODE_NAME).wide(),
        Column::string("Nominated Node", POD_NOMINATED_NODE).wide(),
        Column::string("Readiness Gates", POD_READINESS_GATES).wide(),
    ],
    cells: pod_cells,
    conditions: pod_conditions,
};

/// What the container statuses add up to.
#[derive(Debug, Default)]
struct Summary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: Restarts,
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let s = summarize(pod);
    let restarts = match s.restarts.last {
        Some(t) if s.restarts.count != 0 => format!("{} ({} ago)", s.restarts.count, since(Some(t), now)),
        _ => s.restarts.count.to_string(),
    };
    vec![
        name(pod).into(),
        format!("{}/{}", s.ready, s.total).into(),
        s.reason.into(),
        restarts.into(),
        age(pod, now).into(),
        or_none(pod_ip(pod)).into(),
        or_none(text(pod, &["spec", "nodeName"])).into(),
        or_none(text(pod, &["status", "nominatedNodeName"])).into(),
        readiness_gates(pod).into(),
    ]
}

/// Finished pods carry a `Completed` row condition, as upstream sets it.
fn pod_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

fn summarize(pod: &Value) -> Summary {
    let phase = text(pod, &["status", "phase"]);
    let status_reason = text(pod, &["status", "reason"]);
    let conditions = list(pod, &["status", "conditions"]);
    let mut s = Summary {
        total: list(pod, &["spec", "containers"]).len() + sidecar_count(pod),
        reason: if status_reason.is_empty() { phase } else { status_reason }.to_string(),
        ..Summary::default()
    };
    if condition(conditions, "PodScheduled").is_some_and(|c| text(c, &["reason"]) == "SchedulingGated") {
        s.reason = "SchedulingGated".into();
    }
    let (initializing, sidecars) = init_containers(pod, &mut s);
    if !initializing || condition_true(conditions, "Initialized") {
        // Once init is over only sidecars keep counting: restarts of finished init containers
        // are history.
        s.restarts = sidecars;
        app_containers(pod, &mut s);
    }
    if deleting(pod) && status_reason == "NodeLost" {
        s.reason = "Unknown".into();
    } else if deleting(pod) && phase != "Failed" && phase != "Succeeded" {
        s.reason = "Terminating".into();
    }
    s
}

/// Init containers with `restartPolicy: Always`, which run beside the app containers.
fn sidecar_count(pod: &Value) -> usize {
    list(pod, &["spec", "initContainers"]).iter().filter(|c| text(c, &["restartPolicy"]) == "Always").count()
}

fn is_sidecar(pod: &Value, container: &str) -> bool {
    list(pod, &["spec", "initContainers"])
        .iter()
        .any(|c| text(c, &["name"]) == container && text(c, &["restartPolicy"]) == "Always")
}

/// Restarts of a set of containers.
#[derive(Debug, Default)]
struct Restarts {
    count: i64,
    /// When one of them last terminated before a restart.
    last: Option<Timestamp>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += int(status, &["restartCount"]);
        self.last = self.last.max(time(status, &["lastState", "terminated", "finishedAt"]));
    }
}

/// Walks the init container statuses up to the first one still in the way, counting their
/// restarts. Returns whether the pod is still initializing, and the sidecars' restarts alone.
fn init_containers(pod: &Value, s: &mut Summary) -> (bool, Restarts) {
    let mut sidecars = Restarts::default();
    let mut initializing = false;
    let spec_count = list(pod, &["spec", "initContainers"]).len();
    for (i, status) in list(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        s.restarts.add(status);
        let sidecar = is_sidecar(pod, text(status, &["name"]));
        if sidecar {
            sidecars.add(status);
        }
        let terminated = get(status, &["state", "terminated"]);
        let waiting_reason = text(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && flag(status, &["started"]) {
            if flag(status, &["ready"]) {
                s.ready += 1;
            }
            continue;
        }
        s.reason = match terminated {
            Some(t) => match text(t, &["reason"]) {
                "" => format!("Init:{}", exit_text(t)),
                reason => format!("Init:{reason}"),
            },
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{i}/{spec_count}"),
        };
        initializing = true;
        break;
    }
    (initializing, sidecars)
}

/// `Signal:N` when a signal ended the container, else `ExitCode:N`.
fn exit_text(terminated: &Value) -> String {
    match int(terminated, &["signal"]) {
        0 => format!("ExitCode:{}", int(terminated, &["exitCode"])),
        signal => format!("Signal:{signal}"),
    }
}

/// The app container statuses, last to first, so the first container with a reason wins.
fn app_containers(pod: &Value, s: &mut Summary) {
    let mut has_running = false;
    for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
        s.restarts.add(status);
        let waiting_reason = text(status, &["state", "waiting", "reason"]);
        let terminated = get(status, &["state", "terminated"]);
        if !waiting_reason.is_empty() {
            s.reason = waiting_reason.to_string();
        } else if let Some(t) = terminated {
            s.reason = match text(t, &["reason"]) {
                "" => exit_text(t),
                reason => reason.to_string(),
            };
        } else if flag(status, &["ready"]) && get(status, &["state", "running"]).is_some() {
            has_running = true;
            s.ready += 1;
        }
    }
    // A container that completed beside one still running does not make the pod Completed.
    if s.reason == "Completed" && has_running {
        let ready = condition_true(list(pod, &["status", "conditions"]), "Ready");
        s.reason = if ready { "Running" } else { "NotReady" }.into();
    }
}

/// The pod's first IP: `status.podIPs[0]`, or the older single `status.podIP`.
fn pod_ip(pod: &Value) -> &str {
    match list(pod, &["status", "podIPs"]).first() {
        Some(ip) => text(ip, &["ip"]),
        None => text(pod, &["status", "podIP"]),
    }
}

/// `true/total` of the readiness gates, or `<none>`.
fn readiness_gates(pod: &Value) -> String {
    let gates = list(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".into();
    }
    let conditions = list(pod, &["status", "conditions"]);
    let passed = gates.iter().filter(|g| condition_true(conditions, text(g, &["conditionType"]))).count();
    format!("{passed}/{}", gates.len())
}

fn or_none(s: &str) -> &str {
    if s.is_empty() {
        "<none>"
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, columns};
    use serde_json::{json, Value};

    /// A scheduled pod created ten minutes before the test clock, with these statuses.
    fn pod(phase: &str, spec: Value, statuses: Value) -> Value {
        let mut spec = spec;
        spec["nodeName"] = json!("node-1");
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "app", "image": "nginx"}]);
        }
        let mut status = json!({"phase": phase, "podIP": "10.244.0.8", "podIPs": [{"ip": "10.244.0.8"}]});
        if let Value::Object(extra) = statuses {
            status.as_object_mut().unwrap().extend(extra);
        }
        json!({
            "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2024-05-01T11:50:00Z"},
            "spec": spec,
            "status": status,
        })
    }

    fn running(name: &str, restarts: i64) -> Value {
        json!({"name": name, "ready": true, "restartCount": restarts, "started": true,
               "state": {"running": {"startedAt": "2024-05-01T11:51:00Z"}}})
    }

    fn status_of(p: Value) -> (String, String, String) {
        let c = cells("pods", p);
        let s = |i: usize| c[i].as_str().unwrap().to_string();
        (s(1), s(2), s(3))
    }

    #[test]
    fn running_pod_with_restarts_shows_when_it_last_restarted() {
        let mut c = running("app", 2);
        c["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}});
        let p = pod("Running", json!({}), json!({"containerStatuses": [c]}));
        assert_eq!(
            cells("pods", p),
            [
                json!("p"),
                json!("1/1"),
                json!("Running"),
                json!("2 (5m ago)"),
                json!("10m"),
                json!("10.244.0.8"),
                json!("node-1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
        let p = pod("Running", json!({}), json!({"containerStatuses": [running("app", 2)]}));
        assert_eq!(status_of(p), ("1/1".into(), "Running".into(), "2".into()));
    }

    #[test]
    fn columns_and_wide_priorities_match_upstream() {
        let want = [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(columns("pods"), want);
    }

    #[test]
    fn waiting_reasons_become_the_status() {
        let p = pod("Pending", json!({}), json!({}));
        assert_eq!(status_of(p), ("0/1".into(), "Pending".into(), "0".into()));
        let creating = json!({"name": "app", "ready": false, "restartCount": 0,
                              "state": {"waiting": {"reason": "ContainerCreating"}}});
        let p = pod("Pending", json!({}), json!({"containerStatuses": [creating]}));
        assert_eq!(status_of(p).1, "ContainerCreating");
        let crashing = json!({"name": "app", "ready": false, "restartCount": 4,
                              "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
        let p = pod("Running", json!({}), json!({"containerStatuses": [crashing]}));
        assert_eq!(status_of(p), ("0/1".into(), "CrashLoopBackOff".into(), "4".into()));
    }

    #[test]
    fn the_first_container_with_a_reason_wins_and_exits_without_reason_show_codes() {
        let two = json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]);
        let killed = json!({"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}});
        let failed = json!({"name": "b", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}});
        let p = pod("Running", json!({"containers": two}), json!({"containerStatuses": [killed, failed]}));
        assert_eq!(status_of(p).1, "Signal:9");
        let failed = json!({"name": "b", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}});
        let p = pod("Running", json!({"containers": two}), json!({"containerStatuses": [running("a", 0), failed]}));
        assert_eq!(status_of(p), ("1/2".into(), "ExitCode:3".into(), "0".into()));
    }

    #[test]
    fn completed_pods_read_completed_and_carry_a_row_condition() {
        let done = json!({"name": "app", "ready": false, "restartCount": 0,
                          "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let p = pod("Succeeded", json!({}), json!({"containerStatuses": [done]}));
        assert_eq!(status_of(p.clone()), ("0/1".into(), "Completed".into(), "0".into()));
        let t = super::super::table("pods", &[p], json!({}), super::super::tests::now());
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
    }

    #[test]
    fn a_completed_container_beside_a_running_one_is_running_or_not_ready() {
        let two = json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]);
        let done =
            json!({"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let statuses = json!({"containerStatuses": [done, running("b", 0)],
                              "conditions": [{"type": "Ready", "status": "True"}]});
        let p = pod("Running", json!({"containers": two}), statuses);
        assert_eq!(status_of(p).1, "Running");
        let done =
            json!({"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
        let p = pod("Running", json!({"containers": two}), json!({"containerStatuses": [done, running("b", 0)]}));
        assert_eq!(status_of(p).1, "NotReady");
    }

    #[test]
    fn init_containers_report_progress_and_failures() {
        let spec = json!({"initContainers": [{"name": "i1", "image": "x"}, {"name": "i2", "image": "y"}]});
        let init = |state: Value, restarts: i64| json!({"name": "i1", "restartCount": restarts, "state": state});
        let cases = [
            (init(json!({"waiting": {"reason": "PodInitializing"}}), 0), "Init:0/2"),
            (init(json!({"running": {}}), 0), "Init:0/2"),
            (init(json!({"waiting": {"reason": "CrashLoopBackOff"}}), 3), "Init:CrashLoopBackOff"),
            (init(json!({"terminated": {"exitCode": 1, "reason": "Error"}}), 0), "Init:Error"),
            (init(json!({"terminated": {"exitCode": 2}}), 0), "Init:ExitCode:2"),
            (init(json!({"terminated": {"exitCode": 137, "signal": 9}}), 0), "Init:Signal:9"),
        ];
        for (status, want) in cases {
            let restarts = status["restartCount"].to_string();
            let p = pod("Pending", spec.clone(), json!({"initContainerStatuses": [status]}));
            assert_eq!(status_of(p), ("0/1".to_string(), want.to_string(), restarts), "{want}");
        }
        let first_done = init(json!({"terminated": {"exitCode": 0, "reason": "Completed"}}), 0);
        let second = json!({"name": "i2", "restartCount": 0, "state": {"running": {}}});
        let p = pod("Pending", spec, json!({"initContainerStatuses": [first_done, second]}));
        assert_eq!(status_of(p).1, "Init:1/2");
    }

    #[test]
    fn started_sidecars_count_as_ready_containers_and_keep_their_restarts() {
        let spec = json!({"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]});
        let mut sidecar = running("proxy", 1);
        sidecar["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:57:00Z"}});
        let statuses = json!({"initContainerStatuses": [sidecar], "containerStatuses": [running("app", 0)],
                              "conditions": [{"type": "Initialized", "status": "True"}]});
        let p = pod("Running", spec, statuses);
        assert_eq!(status_of(p), ("2/2".into(), "Running".into(), "1 (3m ago)".into()));
    }

    #[test]
    fn deleting_pods_read_terminating_unless_finished_or_node_lost() {
        let mut p = pod("Running", json!({}), json!({"containerStatuses": [running("app", 0)]}));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(status_of(p.clone()).1, "Terminating");
        p["status"]["reason"] = json!("NodeLost");
        assert_eq!(status_of(p.clone()).1, "Unknown");
        let mut p = pod("Succeeded", json!({}), json!({}));
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(status_of(p).1, "Succeeded");
    }

    #[test]
    fn scheduling_gated_pods_say_so() {
        let conditions =
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
        assert_eq!(status_of(pod("Pending", json!({}), conditions)).1, "SchedulingGated");
    }

    #[test]
    fn wide_cells_cover_ip_nominated_node_and_readiness_gates() {
        let spec =
            json!({"readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]});
        let mut p = pod(
            "Running",
            spec,
            json!({"conditions": [{"type": "example.com/lb", "status": "True"}],
                                                "nominatedNodeName": "node-2"}),
        );
        p["status"].as_object_mut().unwrap().remove("podIPs");
        let c = cells("pods", p);
        assert_eq!(c[5..], [json!("10.244.0.8"), json!("node-1"), json!("node-2"), json!("1/2")]);
        let c = cells("pods", json!({"metadata": {"name": "bare"}}));
        assert_eq!(c[4..], [json!("<unknown>"), json!("<none>"), json!("<none>"), json!("<none>"), json!("<none>")]);
    }
}
