//! Pod templates as the Deployment controller compares and names them.
//!
//! Two templates are the same when their normalised forms are equal. Normalising
//! round-trips the template through k8s-openapi's `PodTemplateSpec` (which drops what the
//! typed model cannot hold, such as `creationTimestamp: null`), removes the
//! `pod-template-hash` label (a ReplicaSet carries it, its Deployment does not), and drops
//! the empty objects Go clients add for non-pointer structs (`resources: {}`,
//! `metadata: {}`). So the template `kubectl rollout undo` sends back — an old ReplicaSet's
//! template as Go serialised it — equals that ReplicaSet's template, and the old
//! ReplicaSet is reused.
//!
//! The hash that names a ReplicaSet (`<deployment>-<hash>`) is upstream's scheme over the
//! normalised form: FNV-1a (32-bit) of the canonical JSON (keys sorted, no spaces), with
//! the Deployment's `collisionCount` appended when set; the decimal value is then spelled
//! with upstream's "safe" alphabet (`bcdfghjklmnpqrstvwxz2456789`, one character per
//! digit), which gives short lowercase alphanumeric names without vowels. The exact value
//! differs from upstream's (Go hashes its own struct dump), which nothing depends on.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

/// The label that tells the ReplicaSets of one Deployment apart.
pub const HASH_LABEL: &str = "pod-template-hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alike characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The normalised form of `template`, ready to compare or hash.
pub fn normalize(template: &PodTemplateSpec) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    // Round-trip through the typed model: unknown fields and typed defaults settle.
    if let Ok(typed) = serde_json::from_value::<PodTemplateSpec>(v.clone()) {
        v = serde_json::to_value(typed).unwrap_or(v);
    }
    drop_empty(&mut v, &["metadata"]);
    drop_empty(v.pointer_mut("/metadata").unwrap_or(&mut Value::Null), &["labels", "annotations"]);
    if let Some(spec) = v.pointer_mut("/spec").and_then(Value::as_object_mut) {
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            if let Some(Value::Array(containers)) = spec.get_mut(list) {
                for c in containers {
                    drop_empty(c, &["resources", "securityContext"]);
                }
            }
        }
    }
    v
}

/// Remove the fields `keys` of the object `v` that are empty objects or null.
fn drop_empty(v: &mut Value, keys: &[&str]) {
    if let Some(map) = v.as_object_mut() {
        for k in keys {
            if map.get(*k).is_some_and(|f| f.is_null() || f.as_object().is_some_and(|o| o.is_empty())) {
                map.remove(*k);
            }
        }
    }
}

/// Whether two templates are semantically the same (see the module docs).
pub fn same(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalize(a) == normalize(b)
}

/// The `pod-template-hash` of `template` given the Deployment's `collisionCount`.
pub fn hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = String::new();
    canonical(&normalize(template), &mut bytes);
    let mut h = fnv1a32(0x811c_9dc5, bytes.as_bytes());
    if let Some(n) = collision_count {
        // Upstream writes the count as a little-endian 32-bit word into the same hasher.
        h = fnv1a32(h, &(n as u32).to_le_bytes());
    }
    h.to_string().bytes().map(|d| SAFE_ALPHABET[d as usize % SAFE_ALPHABET.len()] as char).collect()
}

fn fnv1a32(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Compact JSON with object keys sorted, whatever order the map keeps them in.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).expect("template")
    }

    #[test]
    fn what_rollout_undo_sends_back_equals_the_stored_template() {
        let stored = template(json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        }));
        let sent = template(json!({
            "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1", "resources": {}}]}
        }));
        assert!(same(&stored, &sent));
        assert_eq!(hash(&stored, None), hash(&sent, None));
        let other = template(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}
        }));
        assert!(!same(&stored, &other));
        assert_ne!(hash(&stored, None), hash(&other, None));
    }

    #[test]
    fn hashes_are_short_safe_and_move_with_the_collision_count() {
        let t = template(json!({"spec": {"containers": [{"name": "c", "image": "x"}]}}));
        let h = hash(&t, None);
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
        assert_eq!(h, hash(&t, None), "stable");
        assert_ne!(h, hash(&t, Some(1)));
    }
}
