//! Container rules shared by pods and pod templates (upstream `validateContainerCommon`):
//! names, image, ports, env, volume mounts, pull and termination-message policies, and
//! resource requests against limits.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::{is_dns1123_label, is_env_var_name, is_port_name, is_port_num, IS_NEGATIVE};
use super::quantity::Quantity;
use super::{arr_field, field, int_field, obj_field, one_of, str_field, Bad, Errors, Path};

/// The protocols a port may use, sorted as upstream lists them.
pub(crate) const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// Validates `containers` and `initContainers` of a pod spec. `volumes` are the names a
/// `volumeMount` may refer to; `is_pod` adds the checks upstream runs on pods only.
pub(crate) fn validate_all(spec: &Value, path: &Path, volumes: &BTreeSet<String>, is_pod: bool, errs: &mut Errors) {
    let containers = arr_field(spec, "containers");
    let mut names = BTreeSet::new();
    if containers.is_empty() {
        errs.required(&path.child("containers"), "");
    }
    for (i, c) in containers.iter().enumerate() {
        let p = path.child("containers").index(i);
        validate_container(c, &p, volumes, is_pod, errs);
        let name = str_field(c, "name");
        if !names.insert(name.to_string()) {
            errs.duplicate(&p.child("name"), Bad::str(name));
        }
    }
    for (i, c) in arr_field(spec, "initContainers").iter().enumerate() {
        let p = path.child("initContainers").index(i);
        validate_container(c, &p, volumes, is_pod, errs);
        let name = str_field(c, "name");
        if !names.insert(name.to_string()) {
            errs.duplicate(&p.child("name"), Bad::str(name));
        }
    }
}

fn validate_container(c: &Value, path: &Path, volumes: &BTreeSet<String>, is_pod: bool, errs: &mut Errors) {
    let name = str_field(c, "name");
    if name.is_empty() {
        errs.required(&path.child("name"), "");
    } else {
        errs.invalid_each(&path.child("name"), name, is_dns1123_label(name));
    }
    let image = str_field(c, "image");
    if image.is_empty() {
        errs.required(&path.child("image"), "");
    } else if is_pod && image.trim() != image {
        errs.invalid(&path.child("image"), Bad::str(image), "must not have leading or trailing whitespace");
    }
    one_of(c, "terminationMessagePolicy", path, &["File", "FallbackToLogsOnError"], errs);
    validate_ports(arr_field(c, "ports"), &path.child("ports"), errs);
    validate_env(arr_field(c, "env"), &path.child("env"), errs);
    validate_volume_mounts(arr_field(c, "volumeMounts"), &path.child("volumeMounts"), volumes, errs);
    one_of(c, "imagePullPolicy", path, &["Always", "IfNotPresent", "Never"], errs);
    if let Some(resources) = field(c, "resources") {
        validate_resources(resources, &path.child("resources"), errs);
    }
}

fn validate_ports(ports: &[Value], path: &Path, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_field(port, "name");
        if !name.is_empty() {
            let msgs = is_port_name(name);
            if !msgs.is_empty() {
                errs.invalid_each(&p.child("name"), name, msgs);
            } else if !names.insert(name) {
                errs.duplicate(&p.child("name"), Bad::str(name));
            }
        }
        match int_field(port, "containerPort").unwrap_or(0) {
            0 => errs.required(&p.child("containerPort"), ""),
            n => is_port_num(n).iter().for_each(|m| errs.invalid(&p.child("containerPort"), Bad::Int(n), m)),
        }
        if let Some(host) = int_field(port, "hostPort").filter(|h| *h != 0) {
            is_port_num(host).iter().for_each(|m| errs.invalid(&p.child("hostPort"), Bad::Int(host), m));
        }
        one_of(port, "protocol", &p, PROTOCOLS, errs);
    }
}

fn validate_env(env: &[Value], path: &Path, errs: &mut Errors) {
    for (i, var) in env.iter().enumerate() {
        let p = path.index(i).child("name");
        let name = str_field(var, "name");
        if name.is_empty() {
            errs.required(&p, "");
        }
        errs.invalid_each(&p, name, is_env_var_name(name));
    }
}

fn validate_volume_mounts(mounts: &[Value], path: &Path, volumes: &BTreeSet<String>, errs: &mut Errors) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        let name = str_field(m, "name");
        if name.is_empty() {
            errs.required(&p.child("name"), "");
        }
        if !volumes.contains(name) {
            errs.not_found(&p.child("name"), Bad::str(name));
        }
        let mount_path = str_field(m, "mountPath");
        if mount_path.is_empty() {
            errs.required(&p.child("mountPath"), "");
        }
        if !mount_points.insert(mount_path) {
            errs.invalid(&p.child("mountPath"), Bad::str(mount_path), "must be unique");
        }
    }
}

/// Whether upstream lets requests be lower than limits for this resource: native
/// resources other than huge pages (`helper.IsOvercommitAllowed`).
fn overcommit_allowed(name: &str) -> bool {
    let native = !name.contains('/') || name.contains("kubernetes.io/");
    native && !name.starts_with("hugepages-")
}

fn quantity_text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// Parses every entry of `requests` or `limits`, reporting bad names and values.
fn parse_list(
    list: Option<&serde_json::Map<String, Value>>,
    path: &Path,
    errs: &mut Errors,
) -> Vec<(String, Quantity, String)> {
    let mut out = Vec::new();
    for (name, value) in list.into_iter().flatten() {
        let p = path.key(name);
        let standard =
            matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
        if !name.contains('/') && !standard {
            errs.invalid(&p, Bad::str(name), "must be a standard resource for containers");
        }
        match Quantity::from_json(value) {
            Err(msg) => errs.invalid(&p, Bad::str(&quantity_text(value)), &msg),
            Ok(q) if q.is_negative() => errs.invalid(&p, Bad::str(&quantity_text(value)), IS_NEGATIVE),
            Ok(q) => out.push((name.clone(), q, quantity_text(value))),
        }
    }
    out
}

/// Requests and limits parse, are non-negative, and requests do not exceed limits.
pub(crate) fn validate_resources(resources: &Value, path: &Path, errs: &mut Errors) {
    let limits = parse_list(obj_field(resources, "limits"), &path.child("limits"), errs);
    let requests = parse_list(obj_field(resources, "requests"), &path.child("requests"), errs);
    for (name, request, text) in &requests {
        let req_path = path.child("requests");
        match limits.iter().find(|(n, _, _)| n == name) {
            Some((_, limit, limit_text)) if request != limit && !overcommit_allowed(name) => {
                errs.invalid(&req_path, Bad::str(text), &format!("must be equal to {name} limit of {limit_text}"))
            }
            Some((_, limit, limit_text)) if request > limit => errs.invalid(
                &req_path,
                Bad::str(text),
                &format!("must be less than or equal to {name} limit of {limit_text}"),
            ),
            None if !overcommit_allowed(name) => {
                errs.required(&path.child("limits"), "Limit must be set for non overcommitable resources")
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::testing::messages;
    use serde_json::json;

    fn check(spec: Value) -> Vec<String> {
        let volumes: BTreeSet<String> = ["data".to_string()].into();
        messages(|errs| validate_all(&spec, &Path::root("spec"), &volumes, true, errs))
    }

    fn ok_container(name: &str) -> Value {
        json!({"name": name, "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
            "terminationMessagePolicy": "File", "ports": [{"containerPort": 80, "protocol": "TCP"}]})
    }

    #[test]
    fn containers_are_required() {
        assert_eq!(check(json!({"containers": []})), vec!["spec.containers: Required value"]);
    }

    #[test]
    fn image_is_required_with_upstream_message() {
        let mut c = ok_container("web");
        c["image"] = json!("");
        assert_eq!(check(json!({"containers": [c]})), vec!["spec.containers[0].image: Required value"]);
    }

    #[test]
    fn names_are_labels_and_unique_across_init_containers() {
        let errs = check(json!({"containers": [ok_container("web"), ok_container("web")],
            "initContainers": [ok_container("web"), ok_container("Init_1")]}));
        assert_eq!(errs[0], "spec.containers[1].name: Duplicate value: \"web\"");
        assert_eq!(errs[1], "spec.initContainers[0].name: Duplicate value: \"web\"");
        assert!(
            errs[2].starts_with("spec.initContainers[1].name: Invalid value: \"Init_1\": a lowercase RFC 1123 label")
        );
    }

    #[test]
    fn ports_need_a_valid_number_and_protocol() {
        let mut c = ok_container("web");
        c["ports"] = json!([{"containerPort": 70000, "protocol": "TCP"}, {"name": "http", "protocol": "HTTP"},
            {"name": "http", "containerPort": 81, "hostPort": -1, "protocol": "UDP"}]);
        assert_eq!(check(json!({"containers": [c]})), vec![
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].containerPort: Required value",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[2].name: Duplicate value: \"http\"",
            "spec.containers[0].ports[2].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive",
        ]);
    }

    #[test]
    fn env_names_and_volume_mounts() {
        let mut c = ok_container("web");
        c["env"] = json!([{"name": "GOOD_1", "value": "x"}, {"name": "A=B"}]);
        c["volumeMounts"] = json!([{"name": "data", "mountPath": "/d"}, {"name": "cache", "mountPath": "/d"}]);
        assert_eq!(check(json!({"containers": [c]})), vec![
            "spec.containers[0].env[1].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.containers[0].volumeMounts[1].name: Not found: \"cache\"",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique",
        ]);
    }

    #[test]
    fn policies_must_be_defaulted_or_supported() {
        let mut c = ok_container("web");
        c["imagePullPolicy"] = json!("Sometimes");
        c.as_object_mut().map(|m| m.remove("terminationMessagePolicy"));
        assert_eq!(check(json!({"containers": [c]})), vec![
            "spec.containers[0].terminationMessagePolicy: Required value",
            "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
        ]);
    }

    #[test]
    fn requests_may_not_exceed_limits() {
        let mut c = ok_container("web");
        c["resources"] =
            json!({"limits": {"cpu": "1", "memory": "128Mi"}, "requests": {"cpu": "1500m", "memory": "64Mi"}});
        assert_eq!(check(json!({"containers": [c.clone()]})), vec![
            "spec.containers[0].resources.requests: Invalid value: \"1500m\": must be less than or equal to cpu limit of 1",
        ]);
        c["resources"] = json!({"limits": {"cpu": 2, "gpu": "1"}, "requests": {"cpu": "-1", "memory": "lots"}});
        let errs = check(json!({"containers": [c]}));
        assert_eq!(errs[0], "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers");
        assert_eq!(
            errs[1],
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0"
        );
        assert!(errs[2].starts_with(
            "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match"
        ));
    }

    #[test]
    fn extended_resources_need_equal_limits() {
        let mut c = ok_container("web");
        c["resources"] =
            json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1", "hugepages-2Mi": "2Mi"}});
        assert_eq!(
            check(json!({"containers": [c]})),
            vec![
            "spec.containers[0].resources.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2",
            "spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources",
        ]
        );
    }
}
