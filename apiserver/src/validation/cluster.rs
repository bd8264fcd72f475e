//! The remaining kinds: Namespace, Node, ServiceAccount, Endpoints, Event, Lease and
//! PodDisruptionBudget, plus the fallback for kinds without rules of their own.
//!
//! Core/v1 Events get only upstream's legacy checks (any path-safe name, the involved
//! object in the event's namespace), since old clients send loosely formed events.

use serde_json::Value;

use super::apps::validate_int_or_percent;
use super::container::PROTOCOLS;
use super::meta::{validate_label_selector, validate_meta};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_port_num, is_qualified_name, NameRule};
use super::{arr_field, field, field_or_null, int_field, optional_one_of, str_field, Bad, Errors, Path};

/// Validates the kinds not covered by a dedicated module.
pub(crate) fn validate(plural: &str, obj: &Value, errs: &mut Errors) {
    let rule = match plural {
        "namespaces" => NameRule::Label,
        "nodes" | "serviceaccounts" | "endpoints" | "leases" | "poddisruptionbudgets" | "controllerrevisions" => {
            NameRule::Subdomain
        }
        _ => NameRule::PathSegment,
    };
    validate_meta(obj, rule, errs);
    let spec = field_or_null(obj, "spec");
    let path = Path::root("spec");
    match plural {
        "namespaces" => validate_namespace(spec, &path, errs),
        "nodes" => validate_taints(arr_field(spec, "taints"), &path.child("taints"), errs),
        "endpoints" => validate_endpoints(obj, errs),
        "events" => validate_event(obj, errs),
        "leases" => validate_lease(spec, &path, errs),
        "poddisruptionbudgets" => validate_pdb(spec, &path, errs),
        "controllerrevisions" => validate_revision(obj, errs),
        _ => {}
    }
}

fn validate_revision(obj: &Value, errs: &mut Errors) {
    if let Some(v) = int_field(obj, "revision").filter(|v| *v < 0) {
        errs.invalid(&Path::root("revision"), Bad::Int(v), super::names::IS_NEGATIVE);
    }
}

/// Upstream's `ValidateControllerRevisionUpdate`: a revision's data never changes.
pub(crate) fn validate_controller_revision_update(new: &Value, old: &Value, errs: &mut Errors) {
    if field(new, "data") != field(old, "data") {
        errs.immutable(&Path::root("data"), Bad::json(field(new, "data")));
    }
}

fn validate_namespace(spec: &Value, path: &Path, errs: &mut Errors) {
    for f in arr_field(spec, "finalizers") {
        let f = f.as_str().unwrap_or("");
        let p = path.child("finalizers");
        errs.invalid_each(&p, f, is_qualified_name(f));
        if !f.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&f) {
            errs.invalid(&p, Bad::str(f), "name is neither a standard finalizer name nor is it fully qualified");
        }
    }
}

fn validate_taints(taints: &[Value], path: &Path, errs: &mut Errors) {
    let mut seen = Vec::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        let (key, effect) = (str_field(t, "key"), str_field(t, "effect"));
        errs.invalid_each(&p.child("key"), key, is_qualified_name(key));
        match effect {
            "" => errs.required(&p.child("effect"), ""),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => errs.not_supported(
                &p.child("effect"),
                Bad::str(other),
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ),
        }
        if seen.contains(&(key, effect)) {
            errs.duplicate(&p, Bad::Raw(t.to_string()));
        }
        seen.push((key, effect));
    }
}

fn validate_endpoints(obj: &Value, errs: &mut Errors) {
    for (i, subset) in arr_field(obj, "subsets").iter().enumerate() {
        let sp = Path::root("subsets").index(i);
        for (key, list) in [("addresses", "addresses"), ("notReadyAddresses", "notReadyAddresses")] {
            for (j, addr) in arr_field(subset, list).iter().enumerate() {
                let ip = str_field(addr, "ip");
                if ip.parse::<std::net::IpAddr>().is_err() {
                    let msg = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
                    errs.invalid(&sp.child(key).index(j).child("ip"), Bad::str(ip), msg);
                }
            }
        }
        for (j, port) in arr_field(subset, "ports").iter().enumerate() {
            let pp = sp.child("ports").index(j);
            let name = str_field(port, "name");
            if !name.is_empty() {
                errs.invalid_each(&pp.child("name"), name, is_dns1123_label(name));
            }
            let n = int_field(port, "port").unwrap_or(0);
            is_port_num(n).iter().for_each(|m| errs.invalid(&pp.child("port"), Bad::Int(n), m));
            super::one_of(port, "protocol", &pp, PROTOCOLS, errs);
        }
    }
}

fn validate_event(obj: &Value, errs: &mut Errors) {
    let namespace = field(obj, "metadata").map_or("", |m| str_field(m, "namespace"));
    let involved = field_or_null(obj, "involvedObject");
    let involved_ns = str_field(involved, "namespace");
    let mismatch =
        if involved_ns.is_empty() { !namespace.is_empty() && namespace != "default" } else { namespace != involved_ns };
    // Events with `eventTime` are "new" events, which upstream does not check this way.
    if mismatch && field(obj, "eventTime").is_none() {
        errs.invalid(
            &Path::root("involvedObject").child("namespace"),
            Bad::str(involved_ns),
            "does not match event.namespace",
        );
    }
    if !namespace.is_empty() {
        errs.invalid_each(&Path::root("namespace"), namespace, is_dns1123_subdomain(namespace));
    }
}

fn validate_lease(spec: &Value, path: &Path, errs: &mut Errors) {
    if let Some(d) = int_field(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.invalid(&path.child("leaseDurationSeconds"), Bad::Int(d), "must be greater than 0");
    }
    super::nonnegative(spec, "leaseTransitions", path, errs);
}

fn validate_pdb(spec: &Value, path: &Path, errs: &mut Errors) {
    let (min, max) = (field(spec, "minAvailable"), field(spec, "maxUnavailable"));
    if min.is_some() && max.is_some() {
        errs.invalid(path, Bad::Raw(spec.to_string()), "minAvailable and maxUnavailable cannot be both set");
    }
    validate_int_or_percent(min, &path.child("minAvailable"), errs);
    validate_int_or_percent(max, &path.child("maxUnavailable"), errs);
    if let Some(selector) = field(spec, "selector") {
        validate_label_selector(selector, &path.child("selector"), errs);
    }
    optional_one_of(spec, "unhealthyPodEvictionPolicy", path, &["IfHealthyBudget", "AlwaysAllow"], errs);
}

#[cfg(test)]
mod tests {
    use crate::validation::testing::{create, update};
    use serde_json::json;

    #[test]
    fn controller_revisions_have_a_nonnegative_revision_and_immutable_data() {
        let rev = json!({"metadata": {"name": "web-abc", "namespace": "default"}, "revision": 2, "data": {"a": 1}});
        assert_eq!(create("controllerrevisions", &rev), Vec::<String>::new());
        let mut bad = rev.clone();
        bad["revision"] = json!(-1);
        assert_eq!(
            create("controllerrevisions", &bad),
            vec!["revision: Invalid value: -1: must be greater than or equal to 0"]
        );
        let mut bumped = rev.clone();
        bumped["revision"] = json!(5);
        assert_eq!(update("controllerrevisions", &bumped, &rev), Vec::<String>::new());
        let mut changed = rev.clone();
        changed["data"] = json!({"a": 2});
        assert_eq!(update("controllerrevisions", &changed, &rev).len(), 1);
    }

    #[test]
    fn namespace_names_are_labels() {
        let ns = json!({"metadata": {"name": "team.a"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(create("namespaces", &ns), vec!["metadata.name: Invalid value: \"team.a\": must not contain dots"]);
        let ns = json!({"metadata": {"name": "team-a"}, "spec": {"finalizers": ["custom"]}});
        assert_eq!(create("namespaces", &ns), vec!["spec.finalizers: Invalid value: \"custom\": name is neither a standard finalizer name nor is it fully qualified"]);
    }

    #[test]
    fn node_taints() {
        let node = json!({"metadata": {"name": "node-1"}, "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"},
            {"key": "gpu", "effect": "NoSchedule"}, {"key": "x", "effect": "Sometimes"}]}});
        let errs = create("nodes", &node);
        assert!(errs[0].starts_with("spec.taints[1]: Duplicate value: "), "{errs:?}");
        assert_eq!(errs[1], "spec.taints[2].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"");
    }

    #[test]
    fn events_are_checked_loosely() {
        let ev = json!({"metadata": {"name": "web.17a4ba0b2c3f", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "reason": "Started"});
        assert_eq!(create("events", &ev), Vec::<String>::new());
        let ev = json!({"metadata": {"name": "Any_Name", "namespace": "prod"}, "involvedObject": {"kind": "Pod", "namespace": "dev"}});
        assert_eq!(
            create("events", &ev),
            vec!["involvedObject.namespace: Invalid value: \"dev\": does not match event.namespace"]
        );
    }

    #[test]
    fn leases_endpoints_and_service_accounts() {
        let lease = json!({"metadata": {"name": "kube-scheduler"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}});
        assert_eq!(
            create("leases", &lease),
            vec![
                "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "nope"}],
            "ports": [{"port": 80, "protocol": "TCP"}]}]});
        assert_eq!(create("endpoints", &ep), vec!["subsets[0].addresses[1].ip: Invalid value: \"nope\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]);
        let sa = json!({"metadata": {"name": "Builder"}});
        assert!(create("serviceaccounts", &sa)[0]
            .starts_with("metadata.name: Invalid value: \"Builder\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn disruption_budgets() {
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"minAvailable": "150%", "maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let errs = create("poddisruptionbudgets", &pdb);
        assert!(errs[0].ends_with("minAvailable and maxUnavailable cannot be both set"));
        assert_eq!(errs[1], "spec.minAvailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%");
    }

    #[test]
    fn unknown_kinds_only_need_path_safe_names() {
        assert_eq!(create("widgets", &json!({"metadata": {"name": "Any_Name"}})), Vec::<String>::new());
        assert_eq!(
            create("widgets", &json!({"metadata": {"name": "a/b"}})),
            vec!["metadata.name: Invalid value: \"a/b\": may not contain '/'"]
        );
    }
}
