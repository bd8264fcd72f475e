//! Defaulting tests: every default on a realistic object, and idempotence.

use super::*;

fn defaulted(plural: &str, mut obj: Value) -> Value {
    apply_defaults(plural, &mut obj);
    let once = obj.clone();
    apply_defaults(plural, &mut obj);
    assert_eq!(obj, once, "defaulting must be idempotent");
    obj
}

#[test]
fn pod_defaults() {
    let pod = defaulted(
        "pods",
        json!({"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}],
         "resources": {"limits": {"cpu": "1"}}, "livenessProbe": {"httpGet": {"port": 80}},
         "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}],
        "initContainers": [{"name": "init", "image": "busybox:1.36"}],
        "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"]["requests"], json!({"cpu": "1"}));
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["initContainers"][0]["resources"], json!({}));
    assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
}

#[test]
fn defaults_never_overwrite() {
    let pod = defaulted(
        "pods",
        json!({"spec": {"restartPolicy": "Never", "dnsPolicy": "Default",
        "containers": [{"name": "a", "image": "nginx", "imagePullPolicy": "Never", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}}),
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["dnsPolicy"], "Default");
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Never");
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "UDP");
    let mut not_an_object = json!({"spec": "oops"});
    apply_defaults("pods", &mut not_an_object);
    assert_eq!(not_an_object, json!({"spec": "oops"}));
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, latest) in [
        ("nginx", true),
        ("nginx:latest", true),
        ("nginx:1.27", false),
        ("registry.local:5000/team/app", true),
        ("registry.local:5000/team/app:v2", false),
        ("nginx@sha256:abcd", false),
        ("nginx:latest@sha256:abcd", true),
        ("localhost/app", true),
        ("Nginx", false),
        ("", false),
    ] {
        assert_eq!(image_tag_is_latest(image), latest, "{image}");
    }
}

#[test]
fn host_network_ports_get_host_ports() {
    let pod = defaulted(
        "pods",
        json!({"spec": {"hostNetwork": true, "containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 9100}]}]}}),
    );
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["hostPort"], 9100);
}

#[test]
fn deployment_defaults() {
    let d = defaulted(
        "deployments",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1"}]}}}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(d["spec"]["template"]["spec"].get("enableServiceLinks").is_none());
    let r = defaulted("deployments", json!({"spec": {"strategy": {"type": "Recreate"}}}));
    assert_eq!(r["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn replicaset_statefulset_daemonset_defaults() {
    let rs = defaulted("replicasets", json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);
    let sts = defaulted(
        "statefulsets",
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}),
    );
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(sts["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
    assert_eq!(sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
    let ds = defaulted("daemonsets", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
}

#[test]
fn job_defaults_leave_the_restart_policy_alone() {
    let job = defaulted(
        "jobs",
        json!({"metadata": {"name": "pi"}, "spec": {"template": {"metadata": {"labels": {"app": "pi"}},
        "spec": {"containers": [{"name": "pi", "image": "perl:5"}]}}}}),
    );
    let spec = &job["spec"];
    assert_eq!((spec["parallelism"].clone(), spec["completions"].clone()), (json!(1), json!(1)));
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert!(spec["template"]["spec"].get("restartPolicy").is_none());
    assert_eq!(job["metadata"]["labels"], json!({"app": "pi"}));
    let parallel = defaulted("jobs", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());
}

#[test]
fn job_selector_generation() {
    let mut job = json!({"metadata": {"name": "pi"}, "spec": {"template": {"spec": {}}}});
    generate_job_selector(&mut job, "uid-1");
    assert_eq!(job["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-1"}}));
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["controller-uid"], "uid-1");
    let mut manual = json!({"spec": {"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}});
    generate_job_selector(&mut manual, "uid-2");
    assert_eq!(manual["spec"]["selector"], json!({"matchLabels": {"a": "b"}}));
}

#[test]
fn service_defaults() {
    let svc = defaulted(
        "services",
        json!({"spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
        "sessionAffinityConfig": {"clientIP": {}}, "ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}}),
    );
    let spec = &svc["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert!(spec.get("sessionAffinityConfig").is_none());
    assert_eq!(spec["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
    assert_eq!(spec["ports"][1]["targetPort"], "https");
    assert_eq!(spec["clusterIPs"], json!(["10.96.0.10"]));
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    let lb = defaulted(
        "services",
        json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}}),
    );
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"], 10800);
    let ext = defaulted("services", json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}));
    assert!(ext["spec"].get("ipFamilies").is_none());
    let headless = defaulted("services", json!({"spec": {"clusterIP": "None"}}));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
}

#[test]
fn service_updates_keep_allocated_values() {
    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}});
    let mut new = json!({"spec": {"type": "NodePort", "clusterIP": "", "ports": [{"name": "http", "port": 8080},
        {"name": "https", "port": 443, "nodePort": 30080}]}});
    carry_over_on_update("services", &mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    assert!(new["spec"]["ports"][0].get("nodePort").is_none(), "30080 is taken by the other port now");
    let mut renamed = json!({"spec": {"type": "NodePort", "ports": [{"name": "http", "port": 81}]}});
    carry_over_on_update("services", &mut renamed, &old);
    assert_eq!(renamed["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn secret_defaults_and_string_data() {
    let s =
        defaulted("secrets", json!({"type": "", "data": {"a": "eA=="}, "stringData": {"user": "admin", "a": "hello"}}));
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"a": "aGVsbG8=", "user": "YWRtaW4="}));
    assert!(s.get("stringData").is_none());
    assert_eq!(base64_encode(b""), "");
    assert_eq!(base64_encode(b"ab"), "YWI=");
    assert_eq!(base64_encode(b"abc"), "YWJj");
}

#[test]
fn storage_namespace_node_endpoint_defaults() {
    let pv = defaulted("persistentvolumes", json!({"spec": {}}));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["status"]["phase"], "Pending");
    let pvc = defaulted("persistentvolumeclaims", json!({"spec": {"volumeMode": "Block"}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Block");
    let ns = defaulted("namespaces", json!({"metadata": {"name": "team"}}));
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    let node = defaulted("nodes", json!({"status": {"capacity": {"cpu": "4"}}}));
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));
    let ep = defaulted("endpoints", json!({"subsets": [{"ports": [{"port": 80}]}]}));
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    let sc = defaulted("storageclasses", json!({"provisioner": "x"}));
    assert_eq!((sc["reclaimPolicy"].clone(), sc["volumeBindingMode"].clone()), (json!("Delete"), json!("Immediate")));
    assert_eq!(defaulted("configmaps", json!({"data": {}})), json!({"data": {}}));
}

fn created_pod(tolerations: Option<Value>) -> Value {
    let mut pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    if let Some(t) = tolerations {
        pod["spec"]["tolerations"] = t;
    }
    apply_defaults("pods", &mut pod);
    apply_admission_defaults("pods", &mut pod);
    let once = pod.clone();
    apply_admission_defaults("pods", &mut pod);
    assert_eq!(pod, once, "create defaults must be idempotent");
    pod
}

fn default_toleration(key: &str) -> Value {
    json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})
}

#[test]
fn created_pods_tolerate_not_ready_and_unreachable_nodes_for_five_minutes() {
    let pod = created_pod(None);
    assert_eq!(
        pod["spec"]["tolerations"],
        json!([
            default_toleration("node.kubernetes.io/not-ready"),
            default_toleration("node.kubernetes.io/unreachable")
        ])
    );
    // Other tolerations stay, in front.
    let gpu = json!({"key": "gpu", "operator": "Exists", "effect": "NoSchedule"});
    let pod = created_pod(Some(json!([gpu.clone()])));
    assert_eq!(pod["spec"]["tolerations"][0], gpu);
    assert_eq!(pod["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_pod_that_already_tolerates_a_taint_keeps_its_own_toleration() {
    let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 6000});
    let pod = created_pod(Some(json!([own.clone()])));
    assert_eq!(pod["spec"]["tolerations"], json!([own, default_toleration("node.kubernetes.io/not-ready")]));
    // An empty key (every taint) or an empty effect (every effect) covers it too; the value
    // and operator are not looked at (as upstream), so this pod is left without defaults.
    for covering in [
        json!([{"operator": "Exists"}]),
        json!([{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
               {"key": "node.kubernetes.io/unreachable", "operator": "Equal", "value": "x", "effect": "NoExecute"}]),
    ] {
        assert_eq!(created_pod(Some(covering.clone()))["spec"]["tolerations"], covering);
    }
    // A NoSchedule toleration does not cover the NoExecute taint.
    let no_schedule = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"});
    let pod = created_pod(Some(json!([no_schedule.clone()])));
    assert_eq!(pod["spec"]["tolerations"][1], default_toleration("node.kubernetes.io/not-ready"));
}

#[test]
fn create_defaults_touch_only_pods_and_only_through_the_create_step() {
    // `apply_defaults` (create and update) never adds them: an update keeps what it is sent.
    let mut updated = json!({"spec": {"containers": [{"name": "a", "image": "nginx"}]}});
    apply_defaults("pods", &mut updated);
    assert!(updated["spec"].get("tolerations").is_none());
    let mut template = json!({"spec": {"template": {"spec": {"containers": []}}}});
    let before = template.clone();
    apply_admission_defaults("deployments", &mut template);
    assert_eq!(template, before, "pod templates are admitted as pods when their pods are created");
    let mut odd = json!({"spec": {"tolerations": "oops"}});
    apply_admission_defaults("pods", &mut odd);
    assert_eq!(odd, json!({"spec": {"tolerations": "oops"}}), "left for validation");
}

#[test]
fn binding_defaults_name_the_rbac_group() {
    let binding = defaulted(
        "rolebindings",
        json!({"metadata": {"name": "read-pods"}, "roleRef": {"kind": "Role", "name": "pod-reader"}, "subjects": [
            {"kind": "User", "name": "jane"},
            {"kind": "Group", "apiGroup": "", "name": "devs"},
            {"kind": "ServiceAccount", "name": "builder"},
            {"kind": "User", "apiGroup": "example.com", "name": "kept"},
            {"kind": "Robot", "name": "r2"}]}),
    );
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"})
    );
    assert_eq!(
        binding["subjects"],
        json!([
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
            {"kind": "ServiceAccount", "name": "builder"},
            {"kind": "User", "apiGroup": "example.com", "name": "kept"},
            {"kind": "Robot", "name": "r2"},
        ])
    );

    // A ClusterRoleBinding without a roleRef gets one, as upstream's non-pointer struct does;
    // a roleRef naming another group keeps it (validation rejects it).
    let cluster = defaulted("clusterrolebindings", json!({"metadata": {"name": "x"}}));
    assert_eq!(cluster, json!({"metadata": {"name": "x"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io"}}));
    let other =
        defaulted("clusterrolebindings", json!({"roleRef": {"apiGroup": "example.com", "kind": "ClusterRole"}}));
    assert_eq!(other["roleRef"]["apiGroup"], "example.com");
    let roles = defaulted("roles", json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]}));
    assert_eq!(roles, json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"]}]}), "roles have no defaults");
}
