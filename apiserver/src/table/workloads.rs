//! Printers of the pod controllers (deployments, replica sets, stateful sets, daemon sets,
//! jobs) and of pod disruption budgets.
//!
//! The wide columns show the pod template's containers and images on one line, and the selector
//! as a label-selector string.

use jiff::Timestamp;
use serde_json::Value;

use super::descriptions::*;
use super::field::{condition_true, deleting, get, int, list, name, opt_int, time};
use super::format::{container_cells, format_labels, format_selector, human_signed, selector_string, since};
use super::{age, no_conditions, Column, Printer, AGE, NAME};

const CONTAINERS: Column = Column::string("Containers", "Names of each container in the template.").wide();
const IMAGES: Column = Column::string("Images", "Images referenced by each container in the template.").wide();

/// `spec.replicas`, which defaults to 1 for deployments, replica sets and stateful sets.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// The containers and images cells of `spec.template`.
fn template_cells(obj: &Value) -> [Value; 2] {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    [names.into(), images.into()]
}

pub(super) static DEPLOYMENTS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Ready", "Number of the pod with ready state"),
        Column::string("Up-to-date", DEPLOY_UPDATED),
        Column::string("Available", DEPLOY_AVAILABLE),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", DEPLOY_SELECTOR).wide(),
    ],
    cells: deployment_cells,
    conditions: no_conditions,
};

fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let ready = int(d, &["status", "readyReplicas"]);
    // Unlike the other printers, upstream prints a deployment's selector without `<none>`.
    let selector = selector_string(get(d, &["spec", "selector"])).unwrap_or_else(|_| "<invalid>".into());
    let [names, images] = template_cells(d);
    vec![
        name(d).into(),
        format!("{ready}/{}", desired_replicas(d)).into(),
        int(d, &["status", "updatedReplicas"]).into(),
        int(d, &["status", "availableReplicas"]).into(),
        age(d, now).into(),
        names,
        images,
        selector.into(),
    ]
}

pub(super) static REPLICASETS: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", RS_SPEC_REPLICAS),
        Column::integer("Current", RS_STATUS_REPLICAS),
        Column::integer("Ready", RS_READY),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", RS_SELECTOR).wide(),
    ],
    cells: replicaset_cells,
    conditions: no_conditions,
};

fn replicaset_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = template_cells(rs);
    vec![
        name(rs).into(),
        desired_replicas(rs).into(),
        int(rs, &["status", "replicas"]).into(),
        int(rs, &["status", "readyReplicas"]).into(),
        age(rs, now).into(),
        names,
        images,
        format_selector(get(rs, &["spec", "selector"])).into(),
    ]
}

pub(super) static STATEFULSETS: Printer = Printer {
    columns: &[NAME, Column::string("Ready", "Number of the pod with ready state"), AGE, CONTAINERS, IMAGES],
    cells: statefulset_cells,
    conditions: no_conditions,
};

fn statefulset_cells(sts: &Value, now: Timestamp) -> Vec<Value> {
    let [names, images] = template_cells(sts);
    let ready = int(sts, &["status", "readyReplicas"]);
    vec![name(sts).into(), format!("{ready}/{}", desired_replicas(sts)).into(), age(sts, now).into(), names, images]
}

pub(super) static DAEMONSETS: Printer = Printer {
    columns: &[
        NAME,
        Column::integer("Desired", DS_DESIRED),
        Column::integer("Current", DS_CURRENT),
        Column::integer("Ready", DS_READY),
        Column::integer("Up-to-date", DS_UPDATED),
        Column::integer("Available", DS_AVAILABLE),
        Column::string("Node Selector", POD_NODE_SELECTOR),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", DS_SELECTOR).wide(),
    ],
    cells: daemonset_cells,
    conditions: no_conditions,
};

fn daemonset_cells(ds: &Value, now: Timestamp) -> Vec<Value> {
    let status = |field: &str| Value::from(int(ds, &["status", field]));
    let [names, images] = template_cells(ds);
    vec![
        name(ds).into(),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        format_labels(get(ds, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(ds, now).into(),
        names,
        images,
        format_selector(get(ds, &["spec", "selector"])).into(),
    ]
}

pub(super) static CONTROLLERREVISIONS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Controller", "Controller of the object"),
        Column::integer("Revision", "Revision of the ControllerRevision"),
        AGE,
    ],
    cells: controllerrevision_cells,
    conditions: no_conditions,
};

fn controllerrevision_cells(rev: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(rev).into(), controller_of(rev).into(), int(rev, &["revision"]).into(), age(rev, now).into()]
}

/// `statefulset.apps/web`: the controlling owner as upstream prints it, `<none>` if none.
fn controller_of(obj: &Value) -> String {
    let owner = list(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
    let Some(owner) = owner else { return "<none>".into() };
    let text = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or("");
    let group = text("apiVersion").rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    let kind = text("kind").to_lowercase();
    let kind = if group.is_empty() { kind } else { format!("{kind}.{group}") };
    format!("{kind}/{}", text("name"))
}

pub(super) static JOBS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "Status of the job."),
        Column::string("Completions", JOB_SUCCEEDED),
        Column::string("Duration", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::string("Selector", JOB_SELECTOR).wide(),
    ],
    cells: job_cells,
    conditions: no_conditions,
};

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match int(job, &["spec", "parallelism"]) {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = time(job, &["status", "startTime"]);
    let duration = match (start, time(job, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_signed(end.duration_since(start)),
    };
    let [names, images] = template_cells(job);
    vec![
        name(job).into(),
        job_status(job).into(),
        completions.into(),
        duration.into(),
        age(job, now).into(),
        names,
        images,
        format_selector(get(job, &["spec", "selector"])).into(),
    ]
}

/// Finished states first, then deletion, then the states a live job can be in.
fn job_status(job: &Value) -> &'static str {
    let conditions = list(job, &["status", "conditions"]);
    if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub(super) static PODDISRUPTIONBUDGETS: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Min Available", "The minimum number of pods that must be available."),
        Column::string("Max Unavailable", "The maximum number of pods that may be unavailable."),
        Column::integer("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time."),
        AGE,
    ],
    cells: pdb_cells,
    conditions: no_conditions,
};

fn pdb_cells(pdb: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(pdb).into(),
        int_or_string(get(pdb, &["spec", "minAvailable"])).into(),
        int_or_string(get(pdb, &["spec", "maxUnavailable"])).into(),
        int(pdb, &["status", "disruptionsAllowed"]).into(),
        age(pdb, now).into(),
    ]
}

/// An `IntOrString` as text (`2`, `50%`), `N/A` when unset.
fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, columns};
    use serde_json::{json, Value};

    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T11:00:00Z"})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    fn names_and_priorities(want: &[(&str, u64)]) -> Vec<(String, u64)> {
        want.iter().map(|(n, p)| (n.to_string(), *p)).collect()
    }

    #[test]
    fn deployments() {
        let d = json!({
            "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()},
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        });
        assert_eq!(
            cells("deployments", d),
            [
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web")
            ]
        );
        let want = [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ];
        assert_eq!(columns("deployments"), names_and_priorities(&want));
        let fresh = json!({"metadata": meta("new"), "spec": {"selector": {"matchLabels": {"app": "-"}}}});
        let c = cells("deployments", fresh);
        assert_eq!((&c[1], &c[2], &c[7]), (&json!("0/1"), &json!(0), &json!("<invalid>")));
        assert_eq!(cells("deployments", json!({}))[7], json!(""));
    }

    #[test]
    fn replicasets() {
        let rs = json!({
            "metadata": meta("web-6d4cf56db6"),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "6d4cf56db6"}},
                     "template": template()},
            "status": {"replicas": 2, "readyReplicas": 1},
        });
        assert_eq!(
            cells("replicasets", rs),
            [
                json!("web-6d4cf56db6"),
                json!(2),
                json!(2),
                json!(1),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=web,pod-template-hash=6d4cf56db6")
            ]
        );
        let want = [
            ("Name", 0),
            ("Desired", 0),
            ("Current", 0),
            ("Ready", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ];
        assert_eq!(columns("replicasets"), names_and_priorities(&want));
        assert_eq!(cells("replicasets", json!({}))[7], json!("<none>"));
    }

    #[test]
    fn statefulsets() {
        let sts = json!({"metadata": meta("db"), "spec": {"replicas": 3, "template": template()},
                         "status": {"readyReplicas": 3}});
        assert_eq!(
            cells("statefulsets", sts),
            [json!("db"), json!("3/3"), json!("60m"), json!("web,log"), json!("nginx:1.27,busybox")]
        );
        let want = [("Name", 0), ("Ready", 0), ("Age", 0), ("Containers", 1), ("Images", 1)];
        assert_eq!(columns("statefulsets"), names_and_priorities(&want));
    }

    #[test]
    fn daemonsets() {
        let mut tpl = template();
        tpl["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        let ds = json!({
            "metadata": meta("agent"),
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": tpl},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                       "updatedNumberScheduled": 3, "numberAvailable": 2},
        });
        assert_eq!(
            cells("daemonsets", ds),
            [
                json!("agent"),
                json!(3),
                json!(3),
                json!(2),
                json!(3),
                json!(2),
                json!("kubernetes.io/os=linux"),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("app=agent")
            ]
        );
        assert_eq!(columns("daemonsets")[6], ("Node Selector".to_string(), 0));
        assert_eq!(columns("daemonsets")[10], ("Selector".to_string(), 1));
        assert_eq!(cells("daemonsets", json!({}))[6], json!("<none>"));
    }

    #[test]
    fn controllerrevisions() {
        let rev = json!({
            "metadata": {"name": "web-7c5", "creationTimestamp": "2024-04-01T12:00:00Z",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                              "uid": "u", "controller": true}]},
            "revision": 3,
        });
        assert_eq!(
            cells("controllerrevisions", rev),
            [json!("web-7c5"), json!("statefulset.apps/web"), json!(3), json!("30d")]
        );
        assert_eq!(cells("controllerrevisions", json!({"metadata": {"name": "x"}}))[1], json!("<none>"));
    }

    #[test]
    fn jobs() {
        let job = json!({
            "metadata": meta("backup"),
            "spec": {"completions": 1, "parallelism": 1, "template": template(),
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}}},
            "status": {"succeeded": 1, "startTime": "2024-05-01T11:00:05Z", "completionTime": "2024-05-01T11:00:47Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        });
        assert_eq!(
            cells("jobs", job),
            [
                json!("backup"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("60m"),
                json!("web,log"),
                json!("nginx:1.27,busybox"),
                json!("batch.kubernetes.io/controller-uid=abc")
            ]
        );
        let running = json!({"metadata": meta("work"), "spec": {"parallelism": 3},
                             "status": {"succeeded": 1, "startTime": "2024-05-01T11:45:00Z"}});
        let c = cells("jobs", running);
        assert_eq!(c[1..4], [json!("Running"), json!("1/1 of 3"), json!("15m")]);
        let mut deleting =
            json!({"metadata": meta("old"), "status": {"conditions": [{"type": "Suspended", "status": "True"}]}});
        assert_eq!(cells("jobs", deleting.clone())[1..4], [json!("Suspended"), json!("0/1"), json!("")]);
        deleting["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(cells("jobs", deleting)[1], json!("Terminating"));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True"}]}});
        assert_eq!(cells("jobs", failed)[1], json!("Failed"));
        let want = [("Name", 0), ("Status", 0), ("Completions", 0), ("Duration", 0), ("Age", 0)];
        assert_eq!(columns("jobs")[..5], names_and_priorities(&want));
    }

    #[test]
    fn poddisruptionbudgets() {
        let pdb = json!({"metadata": meta("web"), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
        assert_eq!(
            cells("poddisruptionbudgets", pdb),
            [json!("web"), json!("2"), json!("N/A"), json!(1), json!("60m")]
        );
        let pdb = json!({"metadata": meta("db"), "spec": {"maxUnavailable": "50%"}});
        assert_eq!(cells("poddisruptionbudgets", pdb)[1..4], [json!("N/A"), json!("50%"), json!(0)]);
        let want = [("Name", 0), ("Min Available", 0), ("Max Unavailable", 0), ("Allowed Disruptions", 0), ("Age", 0)];
        assert_eq!(columns("poddisruptionbudgets"), names_and_priorities(&want));
    }
}
