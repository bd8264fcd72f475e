//! Lenient reads from unstructured objects for the printers.
//!
//! Upstream prints typed objects, where an absent field is Go's zero value. These readers give
//! the same view of a `serde_json::Value`: a missing, null or mistyped field reads as `""`, `0`,
//! `false` or an empty list. A printer therefore never fails on odd data; the worst outcome is a
//! blank or zero cell, which is what upstream shows for an unset field.

use jiff::Timestamp;
use serde_json::Value;

/// The value at `path`, if present and not null (a JSON null is Go's nil pointer).
pub(super) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key)).filter(|v| !v.is_null())
}

/// The string at `path`, or `""`.
pub(super) fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `path`, if set.
pub(super) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(Value::as_i64)
}

/// The integer at `path`, or 0.
pub(super) fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

/// The boolean at `path`, or false.
pub(super) fn flag(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(super) fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The number of entries of the map at `path` (0 when absent).
pub(super) fn map_len(v: &Value, path: &[&str]) -> usize {
    get(v, path).and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

/// The RFC 3339 time at `path`; `None` when unset or unparseable (Go's zero time).
pub(super) fn time(v: &Value, path: &[&str]) -> Option<Timestamp> {
    text(v, path).parse().ok()
}

/// `metadata.name`.
pub(super) fn name(obj: &Value) -> &str {
    text(obj, &["metadata", "name"])
}

/// An annotation's value, or `""`.
pub(super) fn annotation<'a>(obj: &'a Value, key: &str) -> &'a str {
    text(obj, &["metadata", "annotations", key])
}

/// Whether `metadata.deletionTimestamp` is set (the object is being deleted).
pub(super) fn deleting(obj: &Value) -> bool {
    get(obj, &["metadata", "deletionTimestamp"]).is_some()
}

/// The first condition of `conditions` with this type, as upstream's loops that stop at the
/// first match do.
pub(super) fn condition<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| text(c, &["type"]) == kind)
}

/// Whether the first condition of this type has status `True`.
pub(super) fn condition_true(conditions: &[Value], kind: &str) -> bool {
    condition(conditions, kind).is_some_and(|c| text(c, &["status"]) == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absent_null_and_mistyped_fields_read_as_zero_values() {
        let v = json!({"a": {"s": "x", "n": 3, "null": null, "b": true, "l": [1], "m": {"k": 1}}});
        assert_eq!(text(&v, &["a", "s"]), "x");
        assert_eq!(text(&v, &["a", "n"]), "");
        assert_eq!(text(&v, &["a", "missing", "deeper"]), "");
        assert_eq!(int(&v, &["a", "n"]), 3);
        assert_eq!(int(&v, &["a", "s"]), 0);
        assert!(get(&v, &["a", "null"]).is_none());
        assert!(flag(&v, &["a", "b"]));
        assert_eq!(list(&v, &["a", "l"]).len(), 1);
        assert!(list(&v, &["a", "m"]).is_empty());
        assert_eq!(map_len(&v, &["a", "m"]), 1);
    }

    #[test]
    fn times_parse_rfc3339_and_micro_times() {
        let v = json!({"t": "2024-05-01T10:00:00Z", "micro": "2024-05-01T10:00:00.123456Z", "bad": "yesterday"});
        assert_eq!(time(&v, &["t"]), Some("2024-05-01T10:00:00Z".parse().unwrap()));
        assert!(time(&v, &["micro"]).is_some());
        assert_eq!(time(&v, &["bad"]), None);
        assert_eq!(time(&v, &["missing"]), None);
    }

    #[test]
    fn first_matching_condition_decides() {
        let c = json!([{"type": "Ready", "status": "False"}, {"type": "Ready", "status": "True"}]);
        let conditions = c.as_array().unwrap();
        assert!(!condition_true(conditions, "Ready"));
        assert!(!condition_true(conditions, "Other"));
    }
}
