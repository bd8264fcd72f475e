//! Objects every cluster has from the start: the `default`, `kube-system`, `kube-public`
//! and `kube-node-lease` namespaces, the default StorageClass `local-path`, and the
//! `kube-system/kube-dns` Service holding the cluster DNS address (the tenth of the service
//! range; every agent answers it, so it has no selector and no endpoints).
//!
//! Every replica runs this at start-up; creation is create-if-absent, so replicas racing
//! each other (or a restart) create each object exactly once and never touch one that
//! exists, even one a user has changed. A deleted `local-path` class comes back when a
//! replica restarts (as k3s re-applies its bundled manifests); to stop it being the
//! default, remove its default annotation instead — a changed class is left alone.

use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::registry::{Registry, WriteOptions};
use crate::resources;

pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// The StorageClass every cluster starts with, marked as the default class.
pub const DEFAULT_STORAGE_CLASS: &str = "local-path";
/// The provisioner of [`DEFAULT_STORAGE_CLASS`]: the controllers' local-path provisioner,
/// which makes a `hostPath` volume on the node the claim's first pod is scheduled to.
pub const LOCAL_PATH_PROVISIONER: &str = "flotilla.io/local-path";
/// The annotation that makes a StorageClass the default one (upstream's name).
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// Pause between attempts while the store has no leader yet.
const RETRY: Duration = Duration::from_millis(250);

/// Create the system namespaces and the default StorageClass, retrying until the store
/// accepts writes or `cancel` fires.
pub async fn ensure_bootstrap_objects(registry: Registry, cancel: CancellationToken) {
    let namespaces = resources::lookup("", "v1", "namespaces").expect("namespaces are served");
    for name in SYSTEM_NAMESPACES {
        let obj = json!({"metadata": {"name": name}});
        if !create_if_absent(&registry, namespaces, obj, &cancel).await {
            return;
        }
    }
    tracing::info!("system namespaces present");
    let classes = resources::lookup("storage.k8s.io", "v1", "storageclasses").expect("storage classes are served");
    if create_if_absent(&registry, classes, default_storage_class(), &cancel).await {
        tracing::info!(storage_class = DEFAULT_STORAGE_CLASS, "default storage class present");
    }
    let services = resources::lookup("", "v1", "services").expect("services are served");
    let dns = dns_service(&registry.ranges().dns_ip().to_string());
    if create_if_absent(&registry, services, dns, &cancel).await {
        tracing::info!("kube-dns service present");
    }
}

/// The default ClusterRoles and ClusterRoleBindings ([`crate::authz::bootstrap_roles`]),
/// each created if missing; for servers that authorize requests.
pub async fn ensure_rbac_defaults(registry: Registry, cancel: CancellationToken) {
    let lookup = |plural| resources::lookup("rbac.authorization.k8s.io", "v1", plural).expect("RBAC is served");
    let (roles, bindings) = (lookup("clusterroles"), lookup("clusterrolebindings"));
    for role in crate::authz::bootstrap_roles::cluster_roles() {
        if !create_if_absent(&registry, roles, role, &cancel).await {
            return;
        }
    }
    for binding in crate::authz::bootstrap_roles::cluster_role_bindings() {
        if !create_if_absent(&registry, bindings, binding, &cancel).await {
            return;
        }
    }
    tracing::info!("default RBAC roles and bindings present");
}

/// `kube-system/kube-dns`: the cluster DNS address, on UDP and TCP port 53, as kubeadm's.
fn dns_service(ip: &str) -> Value {
    json!({
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
        "spec": {"clusterIP": ip, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
        ]},
    })
}

/// `local-path`: volumes made on the node of the claim's first consumer (so binding waits
/// for that pod to be scheduled), deleted with their claim.
fn default_storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": DEFAULT_STORAGE_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// Create `obj` unless an object of that name exists; false when `cancel` fired first.
async fn create_if_absent(
    registry: &Registry,
    res: &'static resources::Resource,
    obj: Value,
    cancel: &CancellationToken,
) -> bool {
    loop {
        let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        match registry.create(res, namespace, obj.clone(), &WriteOptions::default()).await {
            Ok(_) | Err(ApiError::AlreadyExists(_)) => return true,
            Err(e) => {
                tracing::debug!(resource = res.plural, object = %obj["metadata"]["name"], error = %e, "bootstrap object not created yet; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return false,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}
