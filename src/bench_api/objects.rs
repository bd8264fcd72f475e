//! The objects the benchmark writes, and the API paths it uses.
//!
//! Sizes are chosen to resemble real clusters: a configmap with ~300 bytes of data, and for
//! the memory figure a pod of about 2 KiB as a Deployment's ReplicaSet would create it (two
//! containers, env, probes, resources, volumes). The watch fan-out uses a small one-container
//! pod, so the figure measures event delivery rather than JSON volume.

use serde_json::{json, Value};

/// Annotation carrying the writer's sequence number of a watched write.
pub const SEQ_ANNOTATION: &str = "bench.flotilla.dev/seq";

pub fn namespaces_path() -> &'static str {
    "/api/v1/namespaces"
}

/// `/api/v1/namespaces/<ns>/<plural>`, or one object of it with `name`.
pub fn path(ns: &str, plural: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("/api/v1/namespaces/{ns}/{plural}/{n}"),
        None => format!("/api/v1/namespaces/{ns}/{plural}"),
    }
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"bench": "flotilla-bench-api"}}})
}

/// A configmap whose data differs by `version`; ~300 bytes of data.
pub fn configmap(name: &str, version: u64) -> Value {
    let filler = "x".repeat(200);
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "bench": "flotilla-bench-api"}},
        "data": {
            "version": version.to_string(),
            "settings.yaml": format!("logLevel: info\nmaxConnections: 100\ntimeoutSeconds: 30\n# {filler}\n"),
            "feature-flags": "alpha=false,beta=true,gamma=false",
        }
    })
}

/// A small unbound pod for the watch fan-out, tagged with the writer's sequence number.
pub fn watch_pod(name: &str, seq: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "watch-bench"}, "annotations": {SEQ_ANNOTATION: seq.to_string()}},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    })
}

/// A realistic pod of about 2 KiB, as a Deployment would stamp it out.
pub fn realistic_pod(name: &str) -> Value {
    let env: Vec<Value> = [
        ("LOG_LEVEL", "info"),
        ("HTTP_PORT", "8080"),
        ("METRICS_PORT", "9090"),
        ("DATABASE_URL", "postgres://orders@orders-db.shop.svc.cluster.local:5432/orders"),
        ("CACHE_URL", "redis://orders-cache.shop.svc.cluster.local:6379/0"),
        ("FEATURE_FLAGS", "checkout-v2,async-invoices"),
    ]
    .iter()
    .map(|(k, v)| json!({"name": k, "value": v}))
    .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "orders", "tier": "backend", "version": "v2.14.3", "pod-template-hash": "7c9d8f6b5d"},
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
                "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:15:00Z"
            }
        },
        "spec": {
            "serviceAccountName": "orders",
            "terminationGracePeriodSeconds": 30,
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backend", "effect": "NoSchedule"}],
            "containers": [
                {
                    "name": "orders",
                    "image": "registry.example.com/shop/orders:v2.14.3",
                    "args": ["--config=/etc/orders/config.yaml", "--listen=:8080"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
                    ],
                    "env": env,
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/orders", "readOnly": true},
                        {"name": "tmp", "mountPath": "/tmp"}
                    ],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 5},
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "initialDelaySeconds": 10}
                },
                {
                    "name": "log-shipper",
                    "image": "registry.example.com/infra/log-shipper:1.8.0",
                    "args": ["--input=/var/log/orders", "--output=http://logs.infra.svc:8080"],
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/var/log/orders"}]
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "orders-config"}},
                {"name": "tmp", "emptyDir": {}}
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_pod_is_about_two_kib() {
        let len = serde_json::to_vec(&realistic_pod("orders-7c9d8f6b5d-x2k4p")).unwrap().len();
        assert!((1800..=2400).contains(&len), "pod is {len} bytes");
    }

    #[test]
    fn paths() {
        assert_eq!(path("a", "pods", None), "/api/v1/namespaces/a/pods");
        assert_eq!(path("a", "configmaps", Some("c")), "/api/v1/namespaces/a/configmaps/c");
    }
}
