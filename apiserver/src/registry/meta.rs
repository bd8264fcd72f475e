//! Object metadata the server owns: identity, timestamps, generation, names.
//!
//! Clients never choose `uid`, `creationTimestamp`, `generation`, `deletionTimestamp` or
//! `resourceVersion`; these functions set them on create and carry them over on update, so
//! whatever a client sends for them is ignored the way upstream ignores it.

use rand::Rng;
use serde_json::{json, Map, Value};

/// Characters upstream's generateName suffix draws from (no vowels, so no words form).
const NAME_SUFFIX_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of the random suffix added to `generateName`.
const NAME_SUFFIX_LEN: usize = 5;

/// `metadata` of an object as a map, created when missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata was just made an object")
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace")
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    meta_str(obj, "resourceVersion")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// Whether anything still holds a terminating object in the store: its finalizers, or for a
/// namespace also `spec.finalizers` (the namespace controller empties the namespace, then
/// clears them through `namespaces/<name>/finalize`).
pub fn held(obj: &Value) -> bool {
    let spec_finalizers = obj.pointer("/spec/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
    !finalizers(obj).is_empty() || (obj["kind"] == "Namespace" && spec_finalizers)
}

pub fn is_terminating(obj: &Value) -> bool {
    meta_str(obj, "deletionTimestamp").is_some()
}

/// RFC 3339 with whole seconds, as Kubernetes writes `metav1.Time`.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second()).expect("the current second is a valid timestamp").to_string()
}

/// Seconds from now, as `metav1.Time`.
pub fn rfc3339_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now().as_second().saturating_add(seconds);
    jiff::Timestamp::from_second(at).map(|t| t.to_string()).unwrap_or_else(|_| now_rfc3339())
}

/// A random RFC 4122 version-4 UUID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}-{}-{}-{}", h(0..4), h(4..6), h(6..8), h(8..10), h(10..16))
}

/// `generateName` plus a random suffix.
pub fn generated_name(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let suffix: String =
        (0..NAME_SUFFIX_LEN).map(|_| NAME_SUFFIX_CHARS[rng.gen_range(0..NAME_SUFFIX_CHARS.len())] as char).collect();
    format!("{prefix}{suffix}")
}

/// Server-owned fields on a new object: uid, creation time, generation 1; whatever the
/// client sent for versions and deletion is dropped.
pub fn stamp_new(obj: &mut Value) {
    let meta = meta_mut(obj);
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    for field in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
        meta.remove(field);
    }
}

/// Carry the server-owned metadata of `old` over to `new` (an update), and bump
/// `generation` when anything outside metadata and status changed.
pub fn carry_over(old: &Value, new: &mut Value) {
    let spec_changed = without_meta_and_status(old) != without_meta_and_status(new);
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = meta_mut(new);
    for field in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
    meta.insert("generation".into(), json!(if spec_changed { generation + 1 } else { generation }));
}

fn without_meta_and_status(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for f in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(f);
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_moves_only_with_the_spec() {
        let mut old = json!({"metadata": {"name": "a", "uid": "u1", "generation": 3}, "spec": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "a", "labels": {"x": "y"}, "uid": "forged"}, "spec": {"replicas": 1},
                             "status": {"replicas": 9}});
        carry_over(&old, &mut new);
        assert_eq!(new["metadata"]["generation"], 3);
        assert_eq!(new["metadata"]["uid"], "u1");
        old = new.clone();
        new["spec"]["replicas"] = json!(2);
        carry_over(&old, &mut new);
        assert_eq!(new["metadata"]["generation"], 4);
    }

    #[test]
    fn uids_are_version_4_and_names_get_five_chars() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        let n = generated_name("web-");
        assert_eq!(n.len(), 9);
        assert!(n[4..].bytes().all(|c| NAME_SUFFIX_CHARS.contains(&c)));
    }

    #[test]
    fn timestamps_are_whole_second_rfc3339() {
        let t = now_rfc3339();
        assert!(t.ends_with('Z') && !t.contains('.'), "{t}");
    }
}
