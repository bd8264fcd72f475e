//! Printers of cluster and configuration objects: nodes, namespaces, events, config maps,
//! secrets, service accounts and leases.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

use super::descriptions::*;
use super::field::{get, int, list, map_len, name, text, time};
use super::format::since;
use super::{age, no_conditions, Column, Printer, AGE, NAME};

pub(super) static NODES: Printer = Printer {
    columns: &[
        NAME,
        Column::string("Status", "The status of the node"),
        Column::string("Roles", "The roles of the node"),
        AGE,
        Column::string("Version", NODE_KUBELET),
        Column::string("Internal-IP", NODE_ADDRESSES).wide(),
        Column::string("External-IP", NODE_ADDRESSES).wide(),
        Column::string("OS-Image", NODE_OS_IMAGE).wide(),
        Column::string("Kernel-Version", NODE_KERNEL).wide(),
        Column::string("Container-Runtime", NODE_RUNTIME).wide(),
    ],
    cells: node_cells,
    conditions: no_conditions,
};

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let info = |field: &str| match text(node, &["status", "nodeInfo", field]) {
        "" => "<unknown>".to_string(),
        value => value.to_string(),
    };
    vec![
        name(node).into(),
        node_status(node).into(),
        node_roles(node).into(),
        age(node, now).into(),
        text(node, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(node, "InternalIP").into(),
        node_address(node, "ExternalIP").into(),
        info("osImage").into(),
        info("kernelVersion").into(),
        info("containerRuntimeVersion").into(),
    ]
}

/// `Ready`, `NotReady` or `Unknown` (no Ready condition), then `SchedulingDisabled` when
/// cordoned.
fn node_status(node: &Value) -> String {
    // Upstream indexes the conditions by type, so the last Ready condition counts.
    let ready = list(node, &["status", "conditions"]).iter().rev().find(|c| text(c, &["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if text(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }
    .to_string();
    if get(node, &["spec", "unschedulable"]).and_then(Value::as_bool).unwrap_or(false) {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the `kubernetes.io/role` label's
/// value, sorted and deduplicated; `<none>` without any.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = get(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            match (key.strip_prefix("node-role.kubernetes.io/"), value.as_str().unwrap_or("")) {
                (Some(role), _) if !role.is_empty() => {
                    roles.insert(role);
                }
                (None, role) if key == "kubernetes.io/role" && !role.is_empty() => {
                    roles.insert(role);
                }
                _ => {}
            }
        }
    }
    if roles.is_empty() {
        return "<none>".into();
    }
    roles.into_iter().collect::<Vec<_>>().join(",")
}

/// The first address of a type, or `<none>`.
fn node_address<'a>(node: &'a Value, kind: &str) -> &'a str {
    list(node, &["status", "addresses"])
        .iter()
        .find(|a| text(a, &["type"]) == kind)
        .map_or("<none>", |a| text(a, &["address"]))
}

pub(super) static NAMESPACES: Printer = Printer {
    columns: &[NAME, Column::string("Status", "The status of the namespace"), AGE],
    cells: namespace_cells,
    conditions: no_conditions,
};

fn namespace_cells(ns: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(ns).into(), text(ns, &["status", "phase"]).into(), age(ns, now).into()]
}

pub(super) static EVENTS: Printer = Printer {
    columns: &[
        Column::string("Last Seen", EV_LAST),
        Column::string("Type", EV_TYPE),
        Column::string("Reason", EV_REASON),
        Column::string("Object", EV_INVOLVED),
        Column::string("Subobject", EV_FIELD_PATH).wide(),
        Column::string("Source", EV_SOURCE).wide(),
        Column::string("Message", EV_MESSAGE),
        Column::string("First Seen", EV_FIRST).wide(),
        Column::string("Count", EV_COUNT).wide(),
        Column::string("Name", META_NAME).wide().named(),
    ],
    cells: event_cells,
    conditions: no_conditions,
};

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    // core/v1 events from older writers set first/last timestamps and count; events.k8s.io
    // writers set eventTime and, once repeated, a series.
    let first = match time(ev, &["firstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(time(ev, &["eventTime"]), now),
    };
    let mut last = match time(ev, &["lastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int(ev, &["count"]);
    if let Some(series) = get(ev, &["series"]) {
        last = since(time(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = text(ev, &["involvedObject", "kind"]).to_lowercase();
    let object = match text(ev, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    vec![
        last.into(),
        text(ev, &["type"]).into(),
        text(ev, &["reason"]).into(),
        object.into(),
        text(ev, &["involvedObject", "fieldPath"]).into(),
        event_source(ev).into(),
        text(ev, &["message"]).trim().into(),
        first.into(),
        count.into(),
        name(ev).into(),
    ]
}

/// `component, host`, each falling back to the reporting controller and instance.
fn event_source(ev: &Value) -> String {
    let first_set = |a: &'static str, b: &'static str| match text(ev, &["source", a]) {
        "" => text(ev, &[b]),
        value => value,
    };
    let component = first_set("component", "reportingComponent");
    match first_set("host", "reportingInstance") {
        "" => component.to_string(),
        instance => format!("{component}, {instance}"),
    }
}

pub(super) static CONFIGMAPS: Printer = Printer {
    columns: &[NAME, Column::string("Data", CM_DATA), AGE],
    cells: configmap_cells,
    conditions: no_conditions,
};

fn configmap_cells(cm: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
    vec![name(cm).into(), entries.into(), age(cm, now).into()]
}

pub(super) static SECRETS: Printer = Printer {
    columns: &[NAME, Column::string("Type", SECRET_TYPE), Column::string("Data", SECRET_DATA), AGE],
    cells: secret_cells,
    conditions: no_conditions,
};

fn secret_cells(secret: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream defaults an empty type to Opaque and merges stringData into data on decode, so
    // it never sees either; count the union of keys as it would.
    let kind = match text(secret, &["type"]) {
        "" => "Opaque",
        kind => kind,
    };
    let keys: BTreeSet<&String> = ["data", "stringData"]
        .iter()
        .filter_map(|field| get(secret, &[*field]).and_then(Value::as_object))
        .flat_map(|m| m.keys())
        .collect();
    vec![name(secret).into(), kind.into(), keys.len().into(), age(secret, now).into()]
}

pub(super) static SERVICEACCOUNTS: Printer = Printer {
    columns: &[NAME, Column::string("Secrets", SA_SECRETS), AGE],
    cells: serviceaccount_cells,
    conditions: no_conditions,
};

fn serviceaccount_cells(sa: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(sa).into(), list(sa, &["secrets"]).len().into(), age(sa, now).into()]
}

pub(super) static LEASES: Printer = Printer {
    columns: &[NAME, Column::string("Holder", LEASE_HOLDER), AGE],
    cells: lease_cells,
    conditions: no_conditions,
};

fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(lease).into(), text(lease, &["spec", "holderIdentity"]).into(), age(lease, now).into()]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cells, columns};
    use serde_json::{json, Value};

    fn meta(name: &str) -> Value {
        json!({"name": name, "creationTimestamp": "2024-04-01T12:00:00Z"})
    }

    #[test]
    fn nodes() {
        let node = json!({
            "metadata": {"name": "node-1", "creationTimestamp": "2024-04-01T12:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
                                    "kubernetes.io/role": "worker", "kubernetes.io/hostname": "node-1"}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "10.0.0.5"}],
                "nodeInfo": {"kubeletVersion": "v1.32.4", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "containerd://1.7.13"},
            },
        });
        assert_eq!(
            cells("nodes", node),
            [
                json!("node-1"),
                json!("Ready,SchedulingDisabled"),
                json!("control-plane,worker"),
                json!("30d"),
                json!("v1.32.4"),
                json!("10.0.0.5"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0-18-amd64"),
                json!("containerd://1.7.13")
            ]
        );
        let want = [
            ("Name", 0),
            ("Status", 0),
            ("Roles", 0),
            ("Age", 0),
            ("Version", 0),
            ("Internal-IP", 1),
            ("External-IP", 1),
            ("OS-Image", 1),
            ("Kernel-Version", 1),
            ("Container-Runtime", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(columns("nodes"), want);
        let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(cells("nodes", not_ready)[1..3], [json!("NotReady"), json!("<none>")]);
        let bare = cells("nodes", json!({"metadata": {"name": "n"}}));
        assert_eq!(bare[1], json!("Unknown"));
        assert_eq!(
            bare[4..],
            [json!(""), json!("<none>"), json!("<none>"), json!("<unknown>"), json!("<unknown>"), json!("<unknown>")]
        );
    }

    #[test]
    fn namespaces() {
        let ns = json!({"metadata": meta("prod"), "status": {"phase": "Active"}});
        assert_eq!(cells("namespaces", ns), [json!("prod"), json!("Active"), json!("30d")]);
        let mut ns = json!({"metadata": meta("old"), "status": {"phase": "Terminating"}});
        ns["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:00:00Z");
        assert_eq!(cells("namespaces", ns)[1], json!("Terminating"));
    }

    #[test]
    fn events_in_the_core_v1_shape() {
        let ev = json!({
            "metadata": {"name": "web-1.17c8a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "type": "Normal", "message": "  Successfully pulled image \"nginx\"\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": "2024-05-01T11:00:00Z", "lastTimestamp": "2024-05-01T11:58:00Z", "count": 4,
        });
        assert_eq!(
            cells("events", ev),
            [
                json!("2m"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{web}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("60m"),
                json!(4),
                json!("web-1.17c8a")
            ]
        );
        let want = [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ];
        let want: Vec<(String, u64)> = want.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(columns("events"), want);
    }

    #[test]
    fn events_in_the_events_k8s_io_shape() {
        let ev = json!({
            "metadata": {"name": "e"},
            "involvedObject": {"kind": "Node"},
            "eventTime": "2024-05-01T11:29:59.123456Z",
            "reportingComponent": "flotilla-scheduler", "reportingInstance": "",
        });
        let c = cells("events", ev);
        assert_eq!(
            (&c[0], &c[3], &c[5], &c[7], &c[8]),
            (&json!("30m"), &json!("node"), &json!("flotilla-scheduler"), &json!("30m"), &json!(1))
        );
        let series = json!({"eventTime": "2024-05-01T11:00:00Z",
                            "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:50.000000Z"}});
        let c = cells("events", series);
        assert_eq!((&c[0], &c[7], &c[8]), (&json!("10s"), &json!("60m"), &json!(7)));
        assert_eq!(cells("events", json!({}))[0], json!("<unknown>"));
    }

    #[test]
    fn configmaps_secrets_serviceaccounts_and_leases() {
        let cm = json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        assert_eq!(cells("configmaps", cm), [json!("cfg"), json!(3), json!("30d")]);
        let secret =
            json!({"metadata": meta("tls"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        assert_eq!(cells("secrets", secret), [json!("tls"), json!("kubernetes.io/tls"), json!(2), json!("30d")]);
        let secret = json!({"metadata": meta("s"), "data": {"a": ""}, "stringData": {"a": "x", "b": "y"}});
        assert_eq!(cells("secrets", secret)[1..3], [json!("Opaque"), json!(2)]);
        let sa = json!({"metadata": meta("default"), "secrets": [{"name": "default-token"}]});
        assert_eq!(cells("serviceaccounts", sa), [json!("default"), json!(1), json!("30d")]);
        let lease = json!({"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-1_abc"}});
        assert_eq!(cells("leases", lease), [json!("kube-scheduler"), json!("node-1_abc"), json!("30d")]);
        assert_eq!(cells("leases", json!({}))[1], json!(""));
        assert_eq!(columns("secrets")[1..3], [("Type".to_string(), 0), ("Data".to_string(), 0)]);
        assert_eq!(columns("leases")[1], ("Holder".to_string(), 0));
    }
}
