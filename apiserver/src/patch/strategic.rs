//! Strategic merge patch (SMP) on unstructured objects, and the directive-free variant used for
//! server-side apply.
//!
//! Maps merge recursively and `null` deletes a key, as in RFC 7386. Lists merge by the strategy
//! that [`super::list`] picks from the field name (there is no schema). Directives handled in a
//! map: `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<field>`,
//! `$deleteFromPrimitiveList/<field>`; in list items: `$patch: delete|replace|merge`.
//!
//! Invariants: the live value is never mutated (the result is built from clones); directive keys
//! never reach the result; a value that lands where the live object had nothing is merged against
//! nothing, so its own directives take effect and its `null`s disappear, which is what upstream's
//! typed decode of the patched map yields.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::list;

/// Which patch language is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `application/strategic-merge-patch+json`: `$`-directives are honoured.
    Strategic,
    /// `application/apply-patch+yaml`: the same merge rules with no directives, so every key is data.
    Apply,
}

/// The key of the `$patch` directive in maps and list items.
pub(crate) const PATCH_DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// The parallel-list directives a patch map may hold for one of its list fields.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ListDirectives<'a> {
    /// `$setElementOrder/<field>`: the wanted order, as merge-key maps or scalars.
    pub(crate) order: Option<&'a [Value]>,
    /// `$deleteFromPrimitiveList/<field>`: scalars to remove.
    pub(crate) delete: Option<&'a [Value]>,
}

/// Merges the patch object into `live` (a non-object `live`, e.g. `Null`, counts as `{}`).
pub(crate) fn merge_object(mode: Mode, live: &Value, patch: &Map<String, Value>) -> Result<Value, PatchError> {
    // A top-level `$patch: delete` cannot remove the object itself; it empties it, as upstream.
    let merged = merge_map(mode, "", live.as_object(), patch)?.unwrap_or_default();
    Ok(Value::Object(merged))
}

/// Merges a patch map into a live map (`None` when the live value is absent or not a map).
/// `parent` is the field holding this map (the list's field for list items); the list strategy
/// table uses it. Returns `None` when the patch deletes the map (`$patch: delete`).
pub(crate) fn merge_map(
    mode: Mode,
    parent: &str,
    live: Option<&Map<String, Value>>,
    patch: &Map<String, Value>,
) -> Result<Option<Map<String, Value>>, PatchError> {
    if mode == Mode::Strategic {
        if let Some(directive) = patch.get(PATCH_DIRECTIVE) {
            match directive.as_str() {
                Some("delete") => return Ok(None),
                Some("replace") => {
                    let mut rest = patch.clone();
                    rest.remove(PATCH_DIRECTIVE);
                    return merge_map(mode, parent, None, &rest);
                }
                // Merging is what happens anyway; upstream rejects it in a patch, we tolerate it.
                Some("merge") => {}
                _ => return Err(unknown_patch_type(directive)),
            }
        }
    }
    let mut out = live.cloned().unwrap_or_default();
    if mode == Mode::Strategic {
        apply_retain_keys(&mut out, patch)?;
    }
    for field in fields_to_merge(mode, patch)? {
        let directives = list_directives(mode, patch, &field)?;
        match patch.get(&field) {
            Some(Value::Null) => {
                out.remove(&field);
            }
            Some(value) => match merge_value(mode, parent, &field, out.get(&field), value, directives)? {
                Some(merged) => {
                    out.insert(field, merged);
                }
                None => {
                    out.remove(&field);
                }
            },
            // Only directives name this field: reorder or prune the live list.
            None => {
                if let Some(Value::Array(items)) = out.get(&field) {
                    let merged = list::merge_list(mode, parent, &field, items, &[], directives)?;
                    out.insert(field, Value::Array(merged));
                }
            }
        }
    }
    Ok(Some(out))
}

/// Merges one patch value into the live value of `field`; `None` means "remove the field".
pub(crate) fn merge_value(
    mode: Mode,
    parent: &str,
    field: &str,
    live: Option<&Value>,
    patch: &Value,
    directives: ListDirectives<'_>,
) -> Result<Option<Value>, PatchError> {
    match patch {
        Value::Object(map) => Ok(merge_map(mode, field, live.and_then(Value::as_object), map)?.map(Value::Object)),
        Value::Array(items) => {
            let live_items = live.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
            Ok(Some(Value::Array(list::merge_list(mode, parent, field, live_items, items, directives)?)))
        }
        scalar => Ok(Some(scalar.clone())),
    }
}

/// The data fields a patch map touches: its non-directive keys plus the fields that only
/// parallel-list directives name, in key order.
fn fields_to_merge(mode: Mode, patch: &Map<String, Value>) -> Result<Vec<String>, PatchError> {
    let mut fields = std::collections::BTreeSet::new();
    for key in patch.keys() {
        if mode == Mode::Apply || !key.starts_with('$') {
            fields.insert(key.clone());
        } else if let Some(field) = parallel_list_field(key)? {
            fields.insert(field.to_string());
        } else if key != PATCH_DIRECTIVE && key != RETAIN_KEYS {
            // Upstream treats unknown `$` keys as data; keep them so nothing is silently lost.
            fields.insert(key.clone());
        }
    }
    Ok(fields.into_iter().collect())
}

/// The field named by a `$setElementOrder/<f>` or `$deleteFromPrimitiveList/<f>` key, if `key`
/// is one; an error when the prefix is there but the field is missing.
fn parallel_list_field(key: &str) -> Result<Option<&str>, PatchError> {
    for (prefix, message) in [
        (SET_ELEMENT_ORDER, "invalid patch format of setElementOrder list"),
        (DELETE_FROM_PRIMITIVE_LIST, "invalid patch format of primitive list"),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return match rest.strip_prefix('/') {
                Some(field) if !field.is_empty() => Ok(Some(field)),
                _ => Err(PatchError::Directive(message.to_string())),
            };
        }
    }
    Ok(None)
}

/// Finds the parallel-list directives for `field` in a patch map.
fn list_directives<'a>(
    mode: Mode,
    patch: &'a Map<String, Value>,
    field: &str,
) -> Result<ListDirectives<'a>, PatchError> {
    if mode == Mode::Apply {
        return Ok(ListDirectives::default());
    }
    let lookup = |prefix: &str, message: &str| -> Result<Option<&'a [Value]>, PatchError> {
        match patch.get(&format!("{prefix}/{field}")) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items.as_slice())),
            Some(_) => Err(PatchError::Directive(message.to_string())),
        }
    };
    Ok(ListDirectives {
        order: lookup(SET_ELEMENT_ORDER, "invalid patch format of setElementOrder list")?,
        delete: lookup(DELETE_FROM_PRIMITIVE_LIST, "invalid patch format of primitive list")?,
    })
}

/// `$retainKeys`: clear every live key not listed, after checking the patch sets no key outside
/// the list (upstream's `applyRetainKeysDirective`).
fn apply_retain_keys(out: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<(), PatchError> {
    let Some(directive) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || PatchError::Directive("invalid patch format of retainKeys".to_string());
    let retained = directive.as_array().ok_or_else(bad)?;
    let is_retained = |key: &str| retained.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch {
        let is_directive = key == PATCH_DIRECTIVE
            || key == RETAIN_KEYS
            || key.starts_with(SET_ELEMENT_ORDER)
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST);
        if !value.is_null() && !is_directive && !is_retained(key) {
            return Err(bad());
        }
    }
    out.retain(|key, _| is_retained(key));
    Ok(())
}

/// The error for a `$patch` value other than replace, delete or merge.
pub(crate) fn unknown_patch_type(directive: &Value) -> PatchError {
    PatchError::Directive(format!("unknown patch type: {directive}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn smp(live: Value, patch: Value) -> Result<Value, PatchError> {
        let Value::Object(patch) = patch else { panic!("test patch must be an object") };
        merge_object(Mode::Strategic, &live, &patch)
    }

    #[test]
    fn null_deletes_and_maps_merge_recursively() {
        let live = json!({"spec": {"unschedulable": true, "podCIDR": "10.0.0.0/24"}, "x": 1});
        let out = smp(live, json!({"spec": {"unschedulable": null, "taints": []}, "y": {"a": null, "b": 2}})).unwrap();
        assert_eq!(out, json!({"spec": {"podCIDR": "10.0.0.0/24", "taints": []}, "x": 1, "y": {"b": 2}}));
    }

    #[test]
    fn patch_replace_on_a_map_drops_unlisted_keys() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let out = smp(live, json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}})).unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}}));
    }

    #[test]
    fn patch_delete_on_a_map_removes_it() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = smp(live, json!({"spec": {"strategy": {"rollingUpdate": {"$patch": "delete"}}}})).unwrap();
        assert_eq!(out, json!({"spec": {"strategy": {"type": "RollingUpdate"}}}));
    }

    #[test]
    fn unknown_patch_type_is_a_directive_error() {
        let err = smp(json!({}), json!({"spec": {"$patch": "explode"}})).unwrap_err();
        assert!(matches!(err, PatchError::Directive(_)), "{err:?}");
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn retain_keys_clears_the_other_union_members() {
        let live = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(smp(live, patch).unwrap(), json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }

    #[test]
    fn retain_keys_rejects_a_patched_key_outside_the_list() {
        let patch = json!({"strategy": {"$retainKeys": ["type"], "type": "Recreate", "other": 1}});
        assert!(matches!(smp(json!({}), patch), Err(PatchError::Directive(_))));
        let not_a_list = json!({"strategy": {"$retainKeys": "type"}});
        assert!(matches!(smp(json!({}), not_a_list), Err(PatchError::Directive(_))));
    }

    #[test]
    fn directives_in_new_values_are_applied_not_stored() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "a": null, "b": "2"}}});
        assert_eq!(smp(json!({}), patch).unwrap(), json!({"metadata": {"labels": {"b": "2"}}}));
    }

    #[test]
    fn malformed_parallel_list_keys_are_rejected() {
        for key in ["$setElementOrder", "$setElementOrder/", "$deleteFromPrimitiveList"] {
            let err = smp(json!({}), json!({ key: [] })).unwrap_err();
            assert!(matches!(err, PatchError::Directive(_)), "{key}: {err:?}");
        }
        let err = smp(json!({}), json!({"$setElementOrder/containers": {"name": "a"}})).unwrap_err();
        assert!(matches!(err, PatchError::Directive(_)));
    }

    #[test]
    fn apply_mode_treats_dollar_keys_as_data() {
        let Value::Object(patch) = json!({"data": {"$patch": "delete", "k": "v"}}) else { unreachable!() };
        let out = merge_object(Mode::Apply, &json!({"data": {"old": "x"}}), &patch).unwrap();
        assert_eq!(out, json!({"data": {"old": "x", "$patch": "delete", "k": "v"}}));
    }

    #[test]
    fn merge_directive_is_tolerated_in_maps_and_list_items() {
        let live = json!({"spec": {"a": 1, "containers": [{"name": "c", "image": "x", "args": ["1"]}]}});
        let patch = json!({"spec": {"$patch": "merge", "b": 2,
            "containers": [{"$patch": "merge", "name": "c", "image": "y"}]}});
        let want = json!({"spec": {"a": 1, "b": 2, "containers": [{"name": "c", "image": "y", "args": ["1"]}]}});
        assert_eq!(smp(live, patch).unwrap(), want);
    }

    #[test]
    fn top_level_delete_empties_the_object() {
        assert_eq!(smp(json!({"a": 1}), json!({"$patch": "delete"})).unwrap(), json!({}));
    }
}
