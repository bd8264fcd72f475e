//! Service rules (upstream `ValidateService`, `ValidateServiceUpdate`).
//!
//! Names are DNS-1035 labels (they become DNS names and env var prefixes). A set cluster IP
//! may not change (`may not change once set`), except when the type moves to or from
//! `ExternalName`; the registry should first carry allocated values over from the stored
//! object (`defaults::carry_over_on_update`) so a `replace` without them is not a change.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use super::container::PROTOCOLS;
use super::meta::{validate_labels, validate_meta};
use super::names::{is_dns1123_label, is_dns1123_subdomain, is_port_name, is_port_num, NameRule};
use super::{
    arr_field, field, field_or_null, go_quote, int_field, obj_field, one_of, optional_one_of, str_field, Bad, Errors,
    Path,
};

const SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
/// The default `--service-node-port-range`.
const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// The cluster IPs a service holds, `clusterIPs` or else `[clusterIP]`, as upstream
/// normalises them before validating.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let list: Vec<String> =
        arr_field(spec, "clusterIPs").iter().filter_map(Value::as_str).map(str::to_string).collect();
    let single = str_field(spec, "clusterIP");
    if list.is_empty() && !single.is_empty() {
        vec![single.to_string()]
    } else {
        list
    }
}

fn is_headless(spec: &Value) -> bool {
    str_field(spec, "type") == "ClusterIP" && cluster_ips(spec) == ["None"]
}

fn go_string_slice(ips: &[String]) -> String {
    let items: Vec<String> = ips.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// Validates a Service object.
pub(crate) fn validate_service(obj: &Value, errs: &mut Errors) {
    validate_meta(obj, NameRule::Dns1035, errs);
    let spec = field_or_null(obj, "spec");
    let path = Path::root("spec");
    let svc_type = str_field(spec, "type");
    let ports = arr_field(spec, "ports");
    if ports.is_empty() && !is_headless(spec) && svc_type != "ExternalName" {
        errs.required(&path.child("ports"), "");
    }
    if svc_type == "ExternalName" {
        let name = str_field(spec, "externalName");
        if name.is_empty() {
            errs.required(&path.child("externalName"), "");
        } else {
            errs.invalid_each(&path.child("externalName"), name, is_dns1123_subdomain(name.trim_end_matches('.')));
        }
    } else {
        validate_cluster_ips(spec, &path, errs);
    }
    validate_ports(ports, &path, svc_type, errs);
    validate_labels(obj_field(spec, "selector"), &path.child("selector"), errs);
    one_of(spec, "sessionAffinity", &path, &["ClientIP", "None"], errs);
    if svc_type.is_empty() {
        errs.required(&path.child("type"), "");
    } else if !SERVICE_TYPES.contains(&svc_type) {
        errs.not_supported(&path.child("type"), Bad::str(svc_type), SERVICE_TYPES);
    }
    optional_one_of(spec, "ipFamilyPolicy", &path, &["SingleStack", "PreferDualStack", "RequireDualStack"], errs);
    for (i, fam) in arr_field(spec, "ipFamilies").iter().enumerate() {
        let fam = fam.as_str().unwrap_or("");
        if fam != "IPv4" && fam != "IPv6" {
            errs.not_supported(&path.child("ipFamilies").index(i), Bad::str(fam), &["IPv4", "IPv6"]);
        }
    }
}

fn validate_cluster_ips(spec: &Value, path: &Path, errs: &mut Errors) {
    let ips = cluster_ips(spec);
    let single = str_field(spec, "clusterIP");
    if !single.is_empty() && ips.first().map(String::as_str) != Some(single) {
        errs.invalid(&path.child("clusterIPs"), Bad::Raw(go_string_slice(&ips)), "first value must match `clusterIP`");
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" && i == 0 {
            continue;
        }
        if ip.parse::<IpAddr>().is_err() {
            let msg = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
            errs.invalid(&path.child("clusterIPs").index(i), Bad::str(ip), msg);
        }
    }
}

fn validate_ports(ports: &[Value], path: &Path, svc_type: &str, errs: &mut Errors) {
    let require_name = ports.len() > 1;
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        let name = str_field(port, "name");
        if require_name && name.is_empty() {
            errs.required(&p.child("name"), "");
        } else if !name.is_empty() {
            errs.invalid_each(&p.child("name"), name, is_dns1123_label(name));
            if !names.insert(name) {
                errs.duplicate(&p.child("name"), Bad::str(name));
            }
        }
        let number = int_field(port, "port").unwrap_or(0);
        is_port_num(number).iter().for_each(|m| errs.invalid(&p.child("port"), Bad::Int(number), m));
        one_of(port, "protocol", &p, PROTOCOLS, errs);
        validate_target_port(field(port, "targetPort"), &p.child("targetPort"), errs);
        let protocol = str_field(port, "protocol");
        if !seen.insert((number, protocol)) {
            let key = format!("core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}", go_quote(protocol));
            errs.duplicate(&p, Bad::Raw(key));
        }
        if let Some(node_port) = int_field(port, "nodePort").filter(|n| *n != 0) {
            if svc_type == "ClusterIP" {
                errs.forbidden(&p.child("nodePort"), "may not be used when `type` is 'ClusterIP'");
            } else if !NODE_PORT_RANGE.contains(&node_port) {
                let msg = "provided port is not in the valid range. The range of valid ports is 30000-32767";
                errs.invalid(&p.child("nodePort"), Bad::Int(node_port), msg);
            }
        }
    }
}

fn validate_target_port(v: Option<&Value>, path: &Path, errs: &mut Errors) {
    match v {
        Some(Value::String(s)) => errs.invalid_each(path, s, is_port_name(s)),
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            is_port_num(n).iter().for_each(|m| errs.invalid(path, Bad::Int(n), m));
        }
        _ => {}
    }
}

/// A set cluster IP may not change, unless the type moves to or from `ExternalName`.
pub(crate) fn validate_service_update(new: &Value, old: &Value, errs: &mut Errors) {
    let (n, o) = (field_or_null(new, "spec"), field_or_null(old, "spec"));
    if str_field(n, "type") == "ExternalName" || str_field(o, "type") == "ExternalName" {
        return;
    }
    if is_headless(n) && is_headless(o) {
        return;
    }
    let (new_ips, old_ips) = (cluster_ips(n), cluster_ips(o));
    let path = Path::root("spec").child("clusterIPs");
    let bad = || Bad::Raw(go_string_slice(&new_ips));
    if new_ips.len() == old_ips.len() {
        for (i, (a, b)) in old_ips.iter().zip(&new_ips).enumerate() {
            if a != b {
                errs.invalid(&path.index(i), bad(), "may not change once set");
            }
        }
    } else if new_ips.len() < old_ips.len() {
        if new_ips.is_empty() {
            errs.invalid(&path.index(0), bad(), "primary clusterIP can not be unset");
        } else if new_ips[0] != old_ips[0] {
            errs.invalid(&path.index(0), bad(), "may not change once set");
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.invalid(&path.index(0), bad(), "may not change once set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::{create, update};
    use serde_json::json;

    fn svc() -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "ClusterIP", "sessionAffinity": "None", "selector": {"app": "web"},
                "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}})
    }

    #[test]
    fn a_defaulted_service_is_valid_and_names_are_dns1035() {
        assert_eq!(create("services", &svc()), Vec::<String>::new());
        let mut s = svc();
        s["metadata"]["name"] = json!("1web");
        assert!(create("services", &s)[0].starts_with("metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character"));
    }

    #[test]
    fn ports_are_required_unless_headless_or_external() {
        let mut s = svc();
        s["spec"]["ports"] = json!([]);
        assert_eq!(create("services", &s), vec!["spec.ports: Required value"]);
        s["spec"]["clusterIP"] = json!("None");
        s["spec"]["clusterIPs"] = json!(["None"]);
        assert_eq!(create("services", &s), Vec::<String>::new());
        let ext = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com.", "sessionAffinity": "None"}});
        assert_eq!(create("services", &ext), Vec::<String>::new());
    }

    #[test]
    fn port_rules() {
        let mut s = svc();
        s["spec"]["ports"] = json!([{"port": 80, "protocol": "TCP", "targetPort": 80}, {"name": "http", "port": 0, "protocol": "HTTP", "targetPort": "HTTP"},
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80, "nodePort": 30080}]);
        let errs = create("services", &s);
        assert_eq!(errs[0], "spec.ports[0].name: Required value");
        assert_eq!(errs[1], "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive");
        assert_eq!(
            errs[2],
            "spec.ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
        assert_eq!(errs[3], "spec.ports[1].targetPort: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
        assert_eq!(errs[5], "spec.ports[2].name: Duplicate value: \"http\"");
        assert!(errs[6].starts_with("spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\""));
        assert_eq!(errs[7], "spec.ports[2].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'");
    }

    #[test]
    fn type_and_node_port_range() {
        let mut s = svc();
        s["spec"]["type"] = json!("Public");
        assert_eq!(create("services", &s), vec!["spec.type: Unsupported value: \"Public\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]);
        s["spec"]["type"] = json!("NodePort");
        s["spec"]["ports"][0]["nodePort"] = json!(80);
        assert_eq!(create("services", &s), vec!["spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"]);
    }

    #[test]
    fn cluster_ips_must_be_ips() {
        let mut s = svc();
        s["spec"]["clusterIP"] = json!("abc");
        s["spec"]["clusterIPs"] = json!(["abc"]);
        assert_eq!(create("services", &s), vec!["spec.clusterIPs[0]: Invalid value: \"abc\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]);
    }

    #[test]
    fn cluster_ip_may_not_change_once_set() {
        let old = svc();
        let mut new = svc();
        new["spec"]["clusterIP"] = json!("10.96.0.11");
        new["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
        assert_eq!(
            update("services", &new, &old),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]
        );
        let mut unset = svc();
        unset["spec"].as_object_mut().map(|m| {
            m.remove("clusterIP");
            m.remove("clusterIPs")
        });
        assert_eq!(
            update("services", &unset, &old),
            vec!["spec.clusterIPs[0]: Invalid value: []string{}: primary clusterIP can not be unset"]
        );
        let mut ext = svc();
        ext["spec"]["type"] = json!("ExternalName");
        assert_eq!(update("services", &ext, &old), Vec::<String>::new());
        let mut first = svc();
        first["spec"].as_object_mut().map(|m| {
            m.remove("clusterIP");
            m.remove("clusterIPs")
        });
        assert_eq!(update("services", &old, &first), Vec::<String>::new());
    }
}
