//! PATCH bodies applied to a live object, as the API server does for `PATCH` requests.
//!
//! Role: given the `Content-Type` of a PATCH ([`PatchType::from_content_type`]), the live object
//! as unstructured JSON and the raw body, [`apply`] returns the patched object or a
//! [`PatchError`] that says which HTTP status upstream would answer with.
//!
//! Data flow: body bytes → decode by type (JSON array, JSON object, or YAML for apply) → merge
//! into a clone of `live` → check the result is an object. RFC 6902 and RFC 7386 come from the
//! `json-patch` crate; strategic merge patch and the server-side-apply merge are in
//! [`strategic`] and [`list`], schema-free (list strategies come from a field-name table).
//!
//! Invariants: `live` is never modified; the result is always a JSON object; everything here is
//! pure (no I/O, no clock), so the handler can retry a patch against a newer live object.
//! Validation of the result (name, kind, immutable fields) is the caller's job.

mod error;
mod list;
mod strategic;

#[cfg(test)]
mod proptests;

use serde_json::Value;

pub use error::PatchError;

/// The most operations a JSON patch may hold; upstream's `maxJSONPatchOperations`, which keeps
/// one request from pinning a core with a pathological patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// The patch languages the API server accepts, one per `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes strategic merge patch.
    Strategic,
    /// `application/apply-patch+yaml`: server-side apply (merge only; no field ownership).
    Apply,
}

impl PatchType {
    /// Every patch type, e.g. for an `Accept-Patch` header or discovery.
    pub const ALL: [PatchType; 4] = [PatchType::Json, PatchType::Merge, PatchType::Strategic, PatchType::Apply];

    /// The patch type for a `Content-Type` header value; parameters such as `; charset=utf-8`
    /// are ignored. `None` means the server answers 415 Unsupported Media Type.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        PatchType::ALL.into_iter().find(|t| t.content_type().eq_ignore_ascii_case(essence))
    }

    /// The media type of this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Applies a PATCH `body` of `patch_type` to `live` and returns the new object.
///
/// `live` is the current object; for an apply that creates, pass `{}` (or `Null`, which merge,
/// strategic and apply treat as `{}`).
pub fn apply(patch_type: PatchType, live: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patched = match patch_type {
        PatchType::Json => apply_json_patch(live, body)?,
        PatchType::Merge => {
            let patch = decode_json_object(body)?;
            let mut doc = if live.is_object() { live.clone() } else { Value::Object(Default::default()) };
            json_patch::merge(&mut doc, &Value::Object(patch));
            doc
        }
        PatchType::Strategic => strategic::merge_object(strategic::Mode::Strategic, live, &decode_json_object(body)?)?,
        PatchType::Apply => strategic::merge_object(strategic::Mode::Apply, live, &decode_yaml_object(body)?)?,
    };
    if !patched.is_object() {
        return Err(PatchError::Unprocessable(format!("the patched object is not a JSON object: {patched}")));
    }
    Ok(patched)
}

/// Whether a patch body sets `metadata.resourceVersion` itself, i.e. pins the version it was
/// computed against. Upstream retries a patch on a conflict unless it does; an unreadable
/// body pins nothing (applying it fails anyway).
pub fn pins_resource_version(patch_type: PatchType, body: &[u8]) -> bool {
    match patch_type {
        PatchType::Json => serde_json::from_slice::<Vec<Value>>(body).is_ok_and(|ops| {
            ops.iter().any(|op| {
                op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")
                    && op.get("op").and_then(Value::as_str) != Some("remove")
            })
        }),
        PatchType::Merge | PatchType::Strategic => serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v.pointer("/metadata/resourceVersion").is_some_and(|rv| !rv.is_null())),
        PatchType::Apply => serde_yaml_ng::from_slice::<Value>(body)
            .is_ok_and(|v| v.pointer("/metadata/resourceVersion").is_some_and(|rv| !rv.is_null())),
    }
}

/// RFC 6902: decode errors are 400, failed operations 422 (upstream `applyJSPatch`).
fn apply_json_patch(live: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations { max: MAX_JSON_PATCH_OPERATIONS, got: ops.len() });
    }
    let mut doc = live.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| PatchError::Unprocessable(e.to_string()))?;
    Ok(doc)
}

/// A JSON body that must be an object (merge and strategic patches decode into a Go map upstream).
fn decode_json_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, PatchError> {
    match serde_json::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))? {
        Value::Object(map) => Ok(map),
        other => Err(PatchError::Decode(format!("the patch must be a JSON object, got {}", kind_of(&other)))),
    }
}

/// A YAML (or JSON, which is YAML) body that must be an object.
fn decode_yaml_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, PatchError> {
    match serde_yaml_ng::from_slice(body).map_err(|e| PatchError::Decode(e.to_string()))? {
        Value::Object(map) => Ok(map),
        other => {
            Err(PatchError::Decode(format!("the applied configuration must be an object, got {}", kind_of(&other))))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_a_patch_that_sets_the_version_pins_it() {
        assert!(!pins_resource_version(PatchType::Merge, br#"{"spec":{"replicas":5}}"#));
        assert!(pins_resource_version(PatchType::Merge, br#"{"metadata":{"resourceVersion":"7"}}"#));
        assert!(!pins_resource_version(PatchType::Strategic, br#"{"metadata":{"resourceVersion":null}}"#));
        assert!(pins_resource_version(
            PatchType::Json,
            br#"[{"op":"replace","path":"/metadata/resourceVersion","value":"7"}]"#
        ));
        assert!(!pins_resource_version(PatchType::Json, br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#));
        assert!(pins_resource_version(PatchType::Apply, b"metadata:\n  resourceVersion: \"7\"\n"));
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "finalizers": ["a", "b", "c"],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}\n",
                                         "deployment.kubernetes.io/revision": "2"}},
            "spec": {
                "replicas": 2,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                    "name": "nginx", "image": "nginx:1.25",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]
                }]}}
            }
        })
    }

    fn patch(t: PatchType, live: &Value, body: Value) -> Result<Value, PatchError> {
        apply(t, live, body.to_string().as_bytes())
    }

    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(PatchType::from_content_type("application/json-patch+json"), Some(PatchType::Json));
        assert_eq!(PatchType::from_content_type("application/merge-patch+json; charset=utf-8"), Some(PatchType::Merge));
        assert_eq!(PatchType::from_content_type("application/strategic-merge-patch+json"), Some(PatchType::Strategic));
        assert_eq!(PatchType::from_content_type(" Application/Apply-Patch+YAML "), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/apply-patch+cbor"), None);
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn kubectl_reapply_body_updates_image_replicas_and_drops_env() {
        let body = br#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{new}\n"}},
         "spec":{"replicas":3,"template":{"spec":{
           "$setElementOrder/containers":[{"name":"nginx"}],
           "containers":[{"$setElementOrder/env":[{"name":"A"}],"env":[{"$patch":"delete","name":"B"}],
                          "image":"nginx:1.26","name":"nginx"}]}}}}"#;
        let out = apply(PatchType::Strategic, &deployment(), body).unwrap();
        let mut want = deployment();
        want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = json!("{new}\n");
        want["spec"]["replicas"] = json!(3);
        let container = &mut want["spec"]["template"]["spec"]["containers"][0];
        container["image"] = json!("nginx:1.26");
        container["env"] = json!([{"name": "A", "value": "1"}]);
        assert_eq!(out, want);
    }

    #[test]
    fn cordon_and_uncordon() {
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.0.0/24"}});
        let cordoned = patch(PatchType::Strategic, &node, json!({"spec": {"unschedulable": true}})).unwrap();
        assert_eq!(cordoned["spec"], json!({"podCIDR": "10.244.0.0/24", "unschedulable": true}));
        let uncordoned = patch(PatchType::Strategic, &cordoned, json!({"spec": {"unschedulable": null}})).unwrap();
        assert_eq!(uncordoned, node);
    }

    #[test]
    fn set_image_merges_the_container_by_name() {
        let body = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}});
        let out = patch(PatchType::Strategic, &deployment(), body).unwrap();
        let container = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], json!("nginx:1.27"));
        assert_eq!(container["env"].as_array().map(Vec::len), Some(2), "env must survive: {container}");
    }

    #[test]
    fn taints_and_tolerations_are_replaced_whole() {
        let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
        let body = json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}});
        assert_eq!(patch(PatchType::Strategic, &node, body.clone()).unwrap(), body);
    }

    #[test]
    fn strategic_replace_directive_on_a_map() {
        let body = json!({"spec": {"template": {"metadata": {"labels": {"$patch": "replace", "tier": "front"}}}}});
        let out = patch(PatchType::Strategic, &deployment(), body).unwrap();
        assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({"tier": "front"}));
    }

    #[test]
    fn delete_from_primitive_list_finalizers() {
        let body = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "c"]}});
        let out = patch(PatchType::Strategic, &deployment(), body).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a"]));
        let added = patch(PatchType::Strategic, &out, json!({"metadata": {"finalizers": ["z", "a"]}})).unwrap();
        assert_eq!(added["metadata"]["finalizers"], json!(["z", "a"]));
    }

    #[test]
    fn retain_keys_switches_the_deployment_strategy() {
        let body = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = patch(PatchType::Strategic, &deployment(), body).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn strategic_body_must_be_a_json_object() {
        for body in [&b"[]"[..], b"not json", b"null"] {
            let err = apply(PatchType::Strategic, &deployment(), body).unwrap_err();
            assert!(matches!(err, PatchError::Decode(_)), "{err:?}");
            assert!(err.to_string().starts_with("error decoding patch: "), "{err}");
            assert_eq!(err.status_code(), 400);
        }
    }

    #[test]
    fn rollout_undo_json_patch() {
        let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}});
        let annotations = json!({"deployment.kubernetes.io/revision": "1"});
        let body = json!([{"op": "replace", "path": "/spec/template", "value": template},
                          {"op": "replace", "path": "/metadata/annotations", "value": annotations}]);
        let out = patch(PatchType::Json, &deployment(), body).unwrap();
        assert_eq!(out["spec"]["template"], template);
        assert_eq!(out["metadata"]["annotations"], annotations);
        assert_eq!(out["spec"]["replicas"], json!(2));
    }

    #[test]
    fn json_patch_failures_map_to_upstream_statuses() {
        let failed_test = json!([{"op": "test", "path": "/spec/replicas", "value": 9}]);
        assert_eq!(patch(PatchType::Json, &deployment(), failed_test).unwrap_err().status_code(), 422);
        let missing = json!([{"op": "replace", "path": "/spec/nope/deeper", "value": 1}]);
        assert_eq!(patch(PatchType::Json, &deployment(), missing).unwrap_err().status_code(), 422);
        let not_array = json!({"op": "add"});
        assert!(matches!(patch(PatchType::Json, &deployment(), not_array), Err(PatchError::Decode(_))));
        let ops: Vec<Value> =
            (0..=MAX_JSON_PATCH_OPERATIONS).map(|_| json!({"op": "test", "path": "", "value": 1})).collect();
        let err = patch(PatchType::Json, &deployment(), Value::Array(ops)).unwrap_err();
        assert_eq!(err.status_code(), 413);
        let root = json!([{"op": "replace", "path": "", "value": [1]}]);
        assert_eq!(patch(PatchType::Json, &deployment(), root).unwrap_err().status_code(), 422);
    }

    #[test]
    fn label_and_annotate_merge_patch() {
        let body = json!({"metadata": {"labels": {"tier": "front"}, "annotations": {"deployment.kubernetes.io/revision": null}}});
        let out = patch(PatchType::Merge, &deployment(), body).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"tier": "front"}));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{old}\n"})
        );
        // Merge patch replaces lists whole, unlike strategic merge patch.
        let body = json!({"spec": {"template": {"spec": {"containers": [{"name": "other"}]}}}});
        let out = patch(PatchType::Merge, &deployment(), body).unwrap();
        assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([{"name": "other"}]));
        assert!(matches!(apply(PatchType::Merge, &deployment(), b"[1]"), Err(PatchError::Decode(_))));
    }

    #[test]
    fn apply_creates_from_yaml() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  k: v\n";
        let out = apply(PatchType::Apply, &json!({}), yaml).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}})
        );
        assert_eq!(apply(PatchType::Apply, &Value::Null, yaml).unwrap(), out);
    }

    #[test]
    fn apply_merges_json_by_key_without_directives() {
        let body = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 4, "template": {"spec": {"containers": [
                {"name": "nginx", "image": "nginx:1.26", "env": [{"name": "C", "value": "3"}]}]}}}});
        let out = patch(PatchType::Apply, &deployment(), body).unwrap();
        assert_eq!(out["spec"]["replicas"], json!(4));
        let container = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], json!("nginx:1.26"));
        assert_eq!(
            container["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(out["metadata"]["namespace"], json!("default"));
    }

    #[test]
    fn apply_rejects_bad_yaml_and_non_objects() {
        for body in [&b"a: [unclosed"[..], b"- 1\n- 2\n", b""] {
            let err = apply(PatchType::Apply, &json!({}), body).unwrap_err();
            assert!(matches!(err, PatchError::Decode(_)), "{err:?}");
        }
    }
}
