//! The ServiceAccount admission step for new pods, as upstream's plugin does it, when this
//! server issues tokens:
//! - `spec.serviceAccountName` defaults to `default`;
//! - a pod that names another ServiceAccount that does not exist is refused (403). A missing
//!   `default` is let through: the namespace controller's counterpart creates it moments
//!   after the namespace, and until then the agent cannot get the token and retries, so a
//!   pod created right after its namespace starts a moment later instead of failing;
//! - unless `automountServiceAccountToken` is false (on the pod, else on the
//!   ServiceAccount), the pod gets a projected volume `kube-api-access-<5 chars>` with
//!   `token` (a token bound to the pod, [`POD_TOKEN_EXPIRATION`] seconds), `ca.crt` (from
//!   ConfigMap [`ROOT_CA_CONFIG_MAP`]) and `namespace`, mounted read-only at
//!   [`MOUNT_PATH`] in every container and init container that does not mount something
//!   there already.

use serde_json::{json, Value};

use super::DEFAULT_NAME;

/// Where a pod finds its token, CA and namespace.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap every namespace has with the cluster CA under `ca.crt`.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The lifetime of the tokens mounted in pods (upstream's: the agent renews them long before).
pub const POD_TOKEN_EXPIRATION: i64 = 3607;
const VOLUME_PREFIX: &str = "kube-api-access-";

/// The name of the ServiceAccount `pod` runs as, after [`admit`].
pub fn account_name(pod: &Value) -> &str {
    let named = |field: &str| pod["spec"][field].as_str().filter(|n| !n.is_empty());
    // `serviceAccount` is the field's deprecated name, still honoured when the new one is unset.
    named("serviceAccountName").or_else(|| named("serviceAccount")).unwrap_or(DEFAULT_NAME)
}

/// Apply the step to new pod `pod`, whose ServiceAccount is `account` as stored (None when
/// there is none); `Err` is the reason for a 403.
pub fn admit(pod: &mut Value, account: Option<&Value>) -> Result<(), String> {
    let name = account_name(pod).to_string();
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
    if !pod["spec"].is_object() {
        return Ok(()); // validation refuses it
    }
    // The deprecated field follows the new one, so no reader sees another account.
    pod["spec"]["serviceAccountName"] = json!(name);
    pod["spec"]["serviceAccount"] = json!(name);
    if account.is_none() && name != DEFAULT_NAME {
        return Err(format!(
            "error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        ));
    }
    let automount = pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account.and_then(|a| a["automountServiceAccountToken"].as_bool()))
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let volume = volume_name(&pod["spec"]["volumes"]);
    let mut mounted = false;
    for list in ["initContainers", "containers"] {
        for container in pod["spec"][list].as_array_mut().into_iter().flatten() {
            let mounts = &mut container["volumeMounts"];
            let taken =
                mounts.as_array().is_some_and(|m| m.iter().any(|m| m["mountPath"].as_str() == Some(MOUNT_PATH)));
            if taken {
                continue;
            }
            if !mounts.is_array() {
                *mounts = json!([]);
            }
            let mount = json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH});
            mounts.as_array_mut().expect("an array").push(mount);
            mounted = true;
        }
    }
    if mounted {
        let volumes = &mut pod["spec"]["volumes"];
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        volumes.as_array_mut().expect("an array").push(projected_volume(&volume));
    }
    Ok(())
}

/// Upstream's projected volume: token, CA, namespace.
fn projected_volume(name: &str) -> Value {
    json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": POD_TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [
            {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

/// `kube-api-access-` and a generateName suffix (five characters, upstream's alphabet), not
/// among `volumes`.
fn volume_name(volumes: &Value) -> String {
    let taken = |n: &str| volumes.as_array().is_some_and(|v| v.iter().any(|v| v["name"].as_str() == Some(n)));
    loop {
        let name = crate::registry::meta::generated_name(VOLUME_PREFIX);
        if !taken(&name) {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn a_pod_gets_the_default_account_and_the_token_volume_in_every_container() {
        let mut p = pod(json!({"initContainers": [{"name": "i"}], "containers": [{"name": "a"},
            {"name": "b", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}));
        admit(&mut p, Some(&json!({"metadata": {"name": "default"}}))).unwrap();
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["serviceAccount"], "default");
        let volume = &p["spec"]["volumes"][0];
        let name = volume["name"].as_str().unwrap();
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5, "{name}");
        let sources = volume["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
        assert_eq!(sources[1]["configMap"]["name"], ROOT_CA_CONFIG_MAP);
        for c in [&p["spec"]["initContainers"][0], &p["spec"]["containers"][0], &p["spec"]["containers"][1]] {
            let mounts = c["volumeMounts"].as_array().unwrap();
            let m = mounts.iter().find(|m| m["mountPath"] == MOUNT_PATH).expect("mounted");
            assert_eq!((m["name"].as_str(), m["readOnly"].as_bool()), (Some(name), Some(true)));
        }
        assert_eq!(p["spec"]["containers"][1]["volumeMounts"][0]["name"], "data");
    }

    #[test]
    fn automount_false_on_the_pod_or_the_account_adds_nothing_and_the_pod_wins() {
        let mut p = pod(json!({"containers": [{"name": "a"}], "automountServiceAccountToken": false}));
        admit(&mut p, Some(&json!({"automountServiceAccountToken": true}))).unwrap();
        assert!(p["spec"]["volumes"].is_null() && p["spec"]["containers"][0]["volumeMounts"].is_null());
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        admit(&mut p, Some(&json!({"automountServiceAccountToken": false}))).unwrap();
        assert!(p["spec"]["volumes"].is_null());
        let mut p = pod(json!({"containers": [{"name": "a"}], "automountServiceAccountToken": true}));
        admit(&mut p, Some(&json!({"automountServiceAccountToken": false}))).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_missing_named_account_is_refused_and_a_missing_default_is_not() {
        let mut p = pod(json!({"serviceAccountName": "builder", "containers": [{"name": "a"}]}));
        let err = admit(&mut p, None).unwrap_err();
        assert_eq!(err, "error looking up service account ns/builder: serviceaccount \"builder\" not found");
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        admit(&mut p, None).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_container_that_mounts_the_path_itself_keeps_its_own_mount() {
        let own = json!({"name": "mine", "mountPath": MOUNT_PATH});
        let mut p = pod(json!({"containers": [{"name": "a", "volumeMounts": [own.clone()]}],
            "volumes": [{"name": "mine", "emptyDir": {}}]}));
        admit(&mut p, None).unwrap();
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([own]));
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1), "no volume nobody mounts");
    }
}
