//! Per-resource defaulting, the way upstream's generated defaulters (`SetDefaults_*`) and the
//! create strategies fill in what clients leave out.
//!
//! Role: the registry calls [`apply_defaults`] on every object it is about to validate and
//! store (create, update, and the result of a patch), then `validation`. Defaults matter to
//! clients: `kubectl describe` prints `Port: 80/` without a defaulted protocol, and
//! controllers expect `replicas`, strategies and pull policies to be set. Two strategy
//! steps live here too: [`generate_job_selector`] on Job create (it needs the new uid) and
//! [`carry_over_on_update`] before validating an update (keeps allocated service IPs/ports).
//! [`apply_admission_defaults`] holds what upstream's mutating admission plugins add on
//! create and update (the `DefaultTolerationSeconds` tolerations of pods).
//!
//! Invariants: only absent fields are set, never overwritten. A field counts as absent
//! when it is missing or `null`, and for enum-like strings also when `""` (Go's zero
//! value, which upstream defaults too). Values of the wrong JSON type are left alone for
//! validation to report. Defaulting is idempotent.

use serde_json::{json, Map, Value};

use crate::validation::{RBAC_GROUP, VOLUME_SOURCES};

/// Fills in the defaults of an object of the resource `plural` (`pods`, `deployments`...).
/// Unknown plurals are left untouched.
pub fn apply_defaults(plural: &str, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    match plural {
        "pods" => {
            if let Some(spec) = ensure_object(o, "spec") {
                default_pod_spec(spec, true);
                default_pod_only(spec);
            }
        }
        "deployments" => with_spec(o, default_deployment),
        "replicasets" => with_spec(o, |s| {
            set(s, "replicas", json!(1));
            template_spec(s, true);
        }),
        "statefulsets" => with_spec(o, default_statefulset),
        "daemonsets" => with_spec(o, default_daemonset),
        "jobs" => default_job(o),
        "services" => with_spec(o, default_service),
        "secrets" => default_secret(o),
        "persistentvolumes" => {
            with_spec(o, |s| {
                set_str(s, "persistentVolumeReclaimPolicy", "Retain");
                set_str(s, "volumeMode", "Filesystem");
            });
            status_phase(o, "Pending");
        }
        "persistentvolumeclaims" => default_pvc(o),
        "namespaces" => {
            with_spec(o, |s| set(s, "finalizers", json!(["kubernetes"])));
            status_phase(o, "Active");
        }
        "nodes" => default_node(o),
        "endpoints" => {
            for subset in array_mut(o, "subsets") {
                for port in subset.as_object_mut().map(|s| array_mut(s, "ports")).into_iter().flatten() {
                    if let Some(p) = port.as_object_mut() {
                        set_str(p, "protocol", "TCP");
                    }
                }
            }
        }
        "storageclasses" => {
            set_str(o, "reclaimPolicy", "Delete");
            set_str(o, "volumeBindingMode", "Immediate");
        }
        "rolebindings" | "clusterrolebindings" => default_binding(o),
        _ => {}
    }
}

/// Taint keys every pod tolerates for [`DEFAULT_TOLERATION_SECONDS`] unless it says
/// otherwise: the node lifecycle controller's NoExecute taints on a node that is not ready or
/// not heard from.
pub const DEFAULT_TOLERATED_TAINTS: [&str; 2] =
    [crate::selector::toleration::TAINT_NODE_NOT_READY, crate::selector::toleration::TAINT_NODE_UNREACHABLE];
/// How long a pod stays on a not-ready or unreachable node by default (upstream's
/// `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`):
/// five minutes rides out a kubelet restart or a short partition without moving workloads.
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// Defaults upstream's mutating admission plugins add on create and on update (not on
/// subresources): call after [`apply_defaults`]. For pods, upstream's `DefaultTolerationSeconds`:
/// tolerations of [`DEFAULT_TOLERATED_TAINTS`] with effect NoExecute, operator `Exists` and
/// [`DEFAULT_TOLERATION_SECONDS`], each unless a toleration already names that key (or no
/// key) with effect NoExecute (or no effect). Idempotent; a `spec.tolerations` that is not an
/// array is left for validation.
pub fn apply_admission_defaults(plural: &str, obj: &mut Value) {
    if plural != "pods" {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    set(spec, "tolerations", json!([]));
    let Some(tolerations) = spec.get_mut("tolerations").and_then(Value::as_array_mut) else { return };
    for key in DEFAULT_TOLERATED_TAINTS {
        let covers = |t: &Value| {
            let field = |name: &str| t.get(name).and_then(Value::as_str).unwrap_or("");
            (field("key").is_empty() || field("key") == key)
                && (field("effect").is_empty() || field("effect") == "NoExecute")
        };
        if !tolerations.iter().any(covers) {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}));
        }
    }
}

/// Sets `key` when it is missing or `null`.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// Sets a string `key` when it is missing, `null` or `""`.
fn set_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    if map.get(key).is_none_or(|v| v.is_null() || v.as_str() == Some("")) {
        map.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The object at `key`, created empty when missing or `null`; `None` when it is something
/// other than an object.
fn ensure_object<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    set(map, key, json!({}));
    map.get_mut(key).and_then(Value::as_object_mut)
}

/// The elements of the array at `key` (none when it is not an array).
fn array_mut<'a>(map: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Value> {
    map.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten()
}

fn with_spec(o: &mut Map<String, Value>, f: impl FnOnce(&mut Map<String, Value>)) {
    if let Some(spec) = ensure_object(o, "spec") {
        f(spec);
    }
}

fn status_phase(o: &mut Map<String, Value>, phase: &str) {
    if let Some(status) = ensure_object(o, "status") {
        set_str(status, "phase", phase);
    }
}

/// Defaults the pod spec of `spec.template`, which upstream defaults like a pod's.
fn template_spec(spec: &mut Map<String, Value>, restart_always: bool) {
    if let Some(pod_spec) = ensure_object(spec, "template").and_then(|t| ensure_object(t, "spec")) {
        default_pod_spec(pod_spec, restart_always);
    }
}

/// `SetDefaults_PodSpec` and the container, volume and probe defaulters under it.
/// `restart_always` is false for Job templates, whose policy must be given explicitly.
fn default_pod_spec(spec: &mut Map<String, Value>, restart_always: bool) {
    set_str(spec, "dnsPolicy", "ClusterFirst");
    if restart_always {
        set_str(spec, "restartPolicy", "Always");
    }
    set(spec, "securityContext", json!({}));
    set(spec, "terminationGracePeriodSeconds", json!(30));
    set_str(spec, "schedulerName", "default-scheduler");
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for key in ["containers", "initContainers"] {
        for c in array_mut(spec, key).filter_map(Value::as_object_mut) {
            default_container(c, host_network);
        }
    }
    for vol in array_mut(spec, "volumes").filter_map(Value::as_object_mut) {
        default_volume(vol);
    }
}

/// Defaults upstream applies to Pods but not to templates (`SetDefaults_Pod`).
fn default_pod_only(spec: &mut Map<String, Value>) {
    set(spec, "enableServiceLinks", json!(true));
    for key in ["containers", "initContainers"] {
        for c in array_mut(spec, key).filter_map(Value::as_object_mut) {
            let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else { continue };
            let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else { continue };
            if let Some(requests) = ensure_object(resources, "requests") {
                for (name, q) in limits {
                    requests.entry(name).or_insert(q);
                }
            }
        }
    }
}

fn default_container(c: &mut Map<String, Value>, host_network: bool) {
    let image = c.get("image").and_then(Value::as_str).unwrap_or("");
    let policy = if image_tag_is_latest(image) { "Always" } else { "IfNotPresent" };
    set_str(c, "imagePullPolicy", policy);
    set_str(c, "terminationMessagePath", "/dev/termination-log");
    set_str(c, "terminationMessagePolicy", "File");
    set(c, "resources", json!({}));
    for port in array_mut(c, "ports").filter_map(Value::as_object_mut) {
        set_str(port, "protocol", "TCP");
        if host_network && port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0 {
            if let Some(cp) = port.get("containerPort").cloned() {
                port.insert("hostPort".to_string(), cp);
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set(p, "timeoutSeconds", json!(1));
            set(p, "periodSeconds", json!(10));
            set(p, "successThreshold", json!(1));
            set(p, "failureThreshold", json!(3));
            if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_str(http, "path", "/");
                set_str(http, "scheme", "HTTP");
            }
        }
    }
    for var in array_mut(c, "env").filter_map(Value::as_object_mut) {
        let field_ref = var.get_mut("valueFrom").and_then(Value::as_object_mut).and_then(|v| v.get_mut("fieldRef"));
        if let Some(f) = field_ref.and_then(Value::as_object_mut) {
            set_str(f, "apiVersion", "v1");
        }
    }
}

/// Whether a pull of `image` defaults to `Always`: upstream pulls always when the tag is
/// `latest`, or when there is neither tag nor digest (the tag is then `latest`). An image
/// reference that does not parse gets `IfNotPresent`, as upstream ignores the parse error.
fn image_tag_is_latest(image: &str) -> bool {
    if image.is_empty() {
        return false;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // docker reference rules: a first component with `.`, `:`, uppercase or `localhost` is a
    // registry host, and repository path components must be lowercase.
    let path = match repo.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" || host.to_lowercase() != host => rest,
        _ => repo,
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    match tag {
        Some(t) => t == "latest",
        None => digest.is_none(),
    }
}

/// `SetDefaults_Volume` and the per-source defaulters.
fn default_volume(vol: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|s| vol.get(*s).is_some_and(|v| !v.is_null())) {
        vol.insert("emptyDir".to_string(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = vol.get_mut(source).and_then(Value::as_object_mut) {
            set(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = vol.get_mut("hostPath").and_then(Value::as_object_mut) {
        set(h, "type", json!(""));
    }
}

/// The workload strategy at `key`: its `type` defaults to `RollingUpdate`, and when it is
/// that, `fill` defaults its `rollingUpdate` parameters.
fn rolling_update(spec: &mut Map<String, Value>, key: &str, fill: impl FnOnce(&mut Map<String, Value>)) {
    if let Some(strategy) = ensure_object(spec, key) {
        set_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = ensure_object(strategy, "rollingUpdate") {
                fill(ru);
            }
        }
    }
}

fn default_deployment(spec: &mut Map<String, Value>) {
    set(spec, "replicas", json!(1));
    rolling_update(spec, "strategy", |ru| {
        set(ru, "maxUnavailable", json!("25%"));
        set(ru, "maxSurge", json!("25%"));
    });
    set(spec, "revisionHistoryLimit", json!(10));
    set(spec, "progressDeadlineSeconds", json!(600));
    template_spec(spec, true);
}

fn default_statefulset(spec: &mut Map<String, Value>) {
    set_str(spec, "podManagementPolicy", "OrderedReady");
    rolling_update(spec, "updateStrategy", |ru| set(ru, "partition", json!(0)));
    set(spec, "replicas", json!(1));
    set(spec, "revisionHistoryLimit", json!(10));
    if let Some(policy) = ensure_object(spec, "persistentVolumeClaimRetentionPolicy") {
        set_str(policy, "whenDeleted", "Retain");
        set_str(policy, "whenScaled", "Retain");
    }
    for claim in array_mut(spec, "volumeClaimTemplates").filter_map(Value::as_object_mut) {
        default_pvc(claim);
    }
    template_spec(spec, true);
}

fn default_daemonset(spec: &mut Map<String, Value>) {
    rolling_update(spec, "updateStrategy", |ru| {
        set(ru, "maxUnavailable", json!(1));
        set(ru, "maxSurge", json!(0));
    });
    set(spec, "revisionHistoryLimit", json!(10));
    template_spec(spec, true);
}

/// `SetDefaults_Job`. The template's `restartPolicy` is not defaulted (upstream would set
/// `Always` and then reject it; validation reports the same message).
fn default_job(o: &mut Map<String, Value>) {
    let Some(spec) = ensure_object(o, "spec") else { return };
    if spec.get("completions").is_none_or(Value::is_null) && spec.get("parallelism").is_none_or(Value::is_null) {
        spec.insert("completions".to_string(), json!(1));
    }
    set(spec, "parallelism", json!(1));
    set(spec, "backoffLimit", json!(if spec.contains_key("backoffLimitPerIndex") { i32::MAX } else { 6 }));
    set_str(spec, "completionMode", "NonIndexed");
    set(spec, "suspend", json!(false));
    let replacement =
        if spec.get("podFailurePolicy").is_some_and(|p| !p.is_null()) { "Failed" } else { "TerminatingOrFailed" };
    set_str(spec, "podReplacementPolicy", replacement);
    template_spec(spec, false);
    let template_labels = spec.get("template").and_then(|t| t.get("metadata")).and_then(|m| m.get("labels")).cloned();
    if let Some(labels) = template_labels.filter(Value::is_object) {
        if let Some(meta) = ensure_object(o, "metadata") {
            if meta.get("labels").and_then(Value::as_object).is_none_or(Map::is_empty) {
                meta.insert("labels".to_string(), labels);
            }
        }
    }
}

fn default_pvc(o: &mut Map<String, Value>) {
    with_spec(o, |s| set_str(s, "volumeMode", "Filesystem"));
    status_phase(o, "Pending");
}

/// `SetDefaults_RoleBinding` / `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`:
/// `roleRef` names the RBAC group unless it says otherwise (upstream's `roleRef` is a Go
/// non-pointer struct, so it is defaulted even when absent), and so do User and Group
/// subjects. A ServiceAccount subject's group defaults to `""`, Go's zero value, which JSON
/// leaves out: nothing to write. Subjects of other kinds are left for validation to reject.
fn default_binding(o: &mut Map<String, Value>) {
    if let Some(role_ref) = ensure_object(o, "roleRef") {
        set_str(role_ref, "apiGroup", RBAC_GROUP);
    }
    for subject in array_mut(o, "subjects").filter_map(Value::as_object_mut) {
        if matches!(subject.get("kind").and_then(Value::as_str), Some("User" | "Group")) {
            set_str(subject, "apiGroup", RBAC_GROUP);
        }
    }
}

/// `SetDefaults_NodeStatus`: allocatable is the capacity unless said otherwise.
fn default_node(o: &mut Map<String, Value>) {
    let Some(status) = o.get_mut("status").and_then(Value::as_object_mut) else { return };
    if let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned() {
        set(status, "allocatable", capacity);
    }
}

/// `SetDefaults_Service`, plus the single-stack IP family fields the service registry fills.
fn default_service(spec: &mut Map<String, Value>) {
    set_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let config = ensure_object(spec, "sessionAffinityConfig").and_then(|c| ensure_object(c, "clientIP"));
            if let Some(client_ip) = config {
                set(client_ip, "timeoutSeconds", json!(10800));
            }
        }
        _ => {}
    }
    set_str(spec, "type", "ClusterIP");
    let svc_type = spec.get("type").and_then(Value::as_str).unwrap_or("").to_string();
    for port in array_mut(spec, "ports").filter_map(Value::as_object_mut) {
        set_str(port, "protocol", "TCP");
        let unset = match port.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            Some(_) => false,
        };
        if let Some(p) = port.get("port").filter(|_| unset).cloned() {
            port.insert("targetPort".to_string(), p);
        }
    }
    if svc_type == "NodePort" || svc_type == "LoadBalancer" {
        set_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(svc_type.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_str(spec, "internalTrafficPolicy", "Cluster");
    }
    if svc_type == "LoadBalancer" {
        set(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    default_cluster_ips(spec, &svc_type);
}

fn default_cluster_ips(spec: &mut Map<String, Value>, svc_type: &str) {
    let cluster_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
    let first_of_list = spec.get("clusterIPs").and_then(|l| l.get(0)).and_then(Value::as_str).map(str::to_string);
    match (cluster_ip.is_empty(), first_of_list) {
        (false, None) => spec.insert("clusterIPs".to_string(), json!([cluster_ip])),
        (true, Some(first)) => spec.insert("clusterIP".to_string(), json!(first)),
        _ => None,
    };
    if svc_type == "ExternalName" {
        return;
    }
    // Upstream: a headless service without a selector may span families.
    let headless = cluster_ip == "None";
    let selectorless = spec.get("selector").and_then(Value::as_object).is_none_or(Map::is_empty);
    let policy = if headless && selectorless { "RequireDualStack" } else { "SingleStack" };
    set_str(spec, "ipFamilyPolicy", policy);
    if spec.get("ipFamilies").and_then(Value::as_array).is_none_or(Vec::is_empty) {
        spec.insert("ipFamilies".to_string(), json!(["IPv4"]));
    }
}

/// Secrets default to `Opaque`; `stringData` is write-only sugar that upstream merges into
/// `data` (base64-encoded, overriding `data`) before storing.
fn default_secret(o: &mut Map<String, Value>) {
    set_str(o, "type", "Opaque");
    let Some(Value::Object(string_data)) = o.remove("stringData") else { return };
    if let Some(data) = ensure_object(o, "data") {
        for (k, v) in string_data {
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            data.insert(k, Value::String(base64_encode(text.as_bytes())));
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Before validating an update, carries over what the server allocated and a client
/// replacing the object (`kubectl replace`, PUT) typically leaves out, as upstream's
/// service registry does: cluster IPs, IP families and node ports (by port name).
pub fn carry_over_on_update(plural: &str, new: &mut Value, old: &Value) {
    if plural != "services" {
        return;
    }
    let (Some(n), Some(o)) = (new.get_mut("spec").and_then(Value::as_object_mut), old.get("spec")) else { return };
    let is_external = |s: Option<&Value>| s.and_then(Value::as_str) == Some("ExternalName");
    if is_external(n.get("type")) || is_external(o.get("type")) {
        return;
    }
    for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let missing =
            n.get(key).is_none_or(|v| v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty));
        if let Some(v) = o.get(key).filter(|_| missing) {
            n.insert(key.to_string(), v.clone());
        }
    }
    let old_ports = o.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let port_of = |p: &Value| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
    let used: Vec<i64> = n.get("ports").and_then(Value::as_array).into_iter().flatten().map(port_of).collect();
    for port in array_mut(n, "ports").filter_map(Value::as_object_mut) {
        if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
            continue;
        }
        let name = port.get("name").and_then(Value::as_str).unwrap_or("");
        let old_port = old_ports.iter().find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == name);
        if let Some(np) = old_port.map(port_of).filter(|np| *np != 0 && !used.contains(np)) {
            port.insert("nodePort".to_string(), json!(np));
        }
    }
}

/// Upstream's Job `PrepareForCreate`: unless `manualSelector` is true, selects the Job's
/// pods by its uid and labels the template to match. Call on create, with the new uid.
pub fn generate_job_selector(obj: &mut Value, uid: &str) {
    let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert("selector".to_string(), json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
    let labels = ensure_object(spec, "template")
        .and_then(|t| ensure_object(t, "metadata"))
        .and_then(|m| ensure_object(m, "labels"));
    if let Some(labels) = labels {
        for (k, v) in [("batch.kubernetes.io/controller-uid", uid), ("controller-uid", uid)] {
            labels.insert(k.to_string(), json!(v));
        }
        for k in ["batch.kubernetes.io/job-name", "job-name"] {
            labels.insert(k.to_string(), json!(name));
        }
    }
}

#[cfg(test)]
#[path = "defaults/tests.rs"]
mod tests;
