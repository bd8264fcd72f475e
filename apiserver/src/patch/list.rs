//! How lists merge in strategic merge patch and server-side apply, without a schema.
//!
//! Upstream reads `patchStrategy`/`patchMergeKey` from Go struct tags. Here a fixed table keyed by
//! (parent field, field) stands in for them; [`strategy`] lists it. A list is merged by key only
//! when every live and patch item is an object; otherwise the guess is wrong for this object and
//! the list is replaced. kubectl's `$setElementOrder/<f>` and `$deleteFromPrimitiveList/<f>` also
//! reveal a merge list the table does not know, so they are honoured as hints.
//!
//! Order follows upstream (`normalizeElementOrder` in apimachinery): items named by the patch
//! (or by `$setElementOrder`) take that order; server-only items keep their live order and are
//! interleaved so that each one stays before the patch items it preceded in the live list. So a
//! new item with no `$setElementOrder` lands first, as upstream. Apply keeps the live order and
//! appends new items, since the applied configuration carries no ordering directive.

use std::collections::hash_map::{Entry, HashMap};

use serde_json::{Map, Value};

use super::error::PatchError;
use super::strategic::{self, ListDirectives, Mode, PATCH_DIRECTIVE};

/// How a list field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy<'k> {
    /// The patch list replaces the live list (the default for lists).
    Replace,
    /// Items are maps merged by the value of this key.
    MergeByKey(&'k str),
    /// Items are scalars merged as a set.
    MergeScalars,
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// The merge strategy of `field` inside a map held by `parent` (for list items, `parent` is the
/// list's field). Taken from the Kubernetes types' `patchStrategy:"merge"` tags for the fields
/// the served resources and kubectl's patches use.
pub(crate) fn strategy(parent: &str, field: &str) -> Strategy<'static> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Strategy::MergeByKey("name")
        }
        "volumeMounts" => Strategy::MergeByKey("mountPath"),
        "volumeDevices" => Strategy::MergeByKey("devicePath"),
        // Container ports merge by containerPort, Service (`spec.ports`) by port; other `ports`
        // (Endpoints subsets, NetworkPolicy) are atomic upstream.
        "ports" if CONTAINER_LISTS.contains(&parent) => Strategy::MergeByKey("containerPort"),
        "ports" if parent == "spec" => Strategy::MergeByKey("port"),
        "conditions" => Strategy::MergeByKey("type"),
        "ownerReferences" if parent == "metadata" => Strategy::MergeByKey("uid"),
        "finalizers" if parent == "metadata" => Strategy::MergeScalars,
        "hostAliases" => Strategy::MergeByKey("ip"),
        "topologySpreadConstraints" => Strategy::MergeByKey("topologyKey"),
        _ => Strategy::Replace,
    }
}

/// Merges patch `items` into the `live` items of list `field` (inside a map held by `parent`).
pub(crate) fn merge_list(
    mode: Mode,
    parent: &str,
    field: &str,
    live: &[Value],
    items: &[Value],
    directives: ListDirectives<'_>,
) -> Result<Vec<Value>, PatchError> {
    let all = || live.iter().chain(items);
    match effective_strategy(strategy(parent, field), directives) {
        Strategy::MergeByKey(key) if all().all(Value::is_object) => {
            merge_keyed(mode, field, key, live, items, directives)
        }
        Strategy::MergeScalars if all().all(|v| !v.is_array() && !v.is_object()) => {
            merge_scalars(mode, live, items, directives)
        }
        Strategy::MergeScalars if all().any(Value::is_array) => {
            Err(PatchError::Unprocessable("lists of lists are not supported".to_string()))
        }
        _ => replace_list(mode, field, items),
    }
}

/// The table's strategy, or the one a parallel-list directive reveals for a field the table
/// replaces: kubectl sends them only for merge lists, naming the items by merge-key-only maps
/// (`[{"name": "a"}]`, which also tells the key) or by the scalars themselves.
fn effective_strategy<'a>(table: Strategy<'static>, directives: ListDirectives<'a>) -> Strategy<'a> {
    if table != Strategy::Replace {
        return table;
    }
    if directives.delete.is_some() {
        return Strategy::MergeScalars;
    }
    let Some(order) = directives.order.filter(|o| !o.is_empty()) else {
        return table;
    };
    if order.iter().all(|v| !v.is_array() && !v.is_object()) {
        return Strategy::MergeScalars;
    }
    let single_key = |v: &'a Value| v.as_object().filter(|m| m.len() == 1).and_then(|m| m.keys().next());
    match order.first().and_then(single_key) {
        Some(key) if order.iter().all(|v| single_key(v) == Some(key)) => Strategy::MergeByKey(key.as_str()),
        _ => table,
    }
}

/// Replace strategy: the patch list wins. Items carrying `$patch` are markers, not data.
fn replace_list(mode: Mode, field: &str, items: &[Value]) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(map) if mode == Mode::Strategic && map.contains_key(PATCH_DIRECTIVE) => {}
            Value::Object(map) => out.extend(strategic::merge_map(mode, field, None, map)?.map(Value::Object)),
            other => out.push(other.clone()),
        }
    }
    Ok(out)
}

/// Merge-by-key strategy (upstream `mergeSlice` for maps plus `$setElementOrder`).
fn merge_keyed(
    mode: Mode,
    field: &str,
    key: &str,
    live: &[Value],
    items: &[Value],
    directives: ListDirectives<'_>,
) -> Result<Vec<Value>, PatchError> {
    let PatchItems { upserts, deletes, replace } = split_patch_items(mode, key, items)?;
    let mut merged: Vec<Value> = if replace { Vec::new() } else { live.to_vec() };
    // Upstream deletes every item with a deleted key before merging anything.
    merged.retain(|item| item.get(key).is_none_or(|id| deletes.get(id).is_none()));
    let live_ids: Vec<Value> = merged.iter().filter_map(|v| v.get(key).cloned()).collect();
    let mut index = Positions::new(&live_ids);
    let mut slots: Vec<Option<Value>> = merged.into_iter().map(Some).collect();
    for item in &upserts {
        let id = item.get(key).unwrap_or(&Value::Null);
        match index.get(id) {
            Some(i) => {
                let base = slots[i].as_ref().and_then(Value::as_object);
                slots[i] = strategic::merge_map(mode, field, base, item)?.map(Value::Object);
            }
            None => {
                index.insert(id, slots.len());
                slots.push(strategic::merge_map(mode, field, None, item)?.map(Value::Object));
            }
        }
    }
    let merged: Vec<Value> = slots.into_iter().flatten().collect();
    if mode == Mode::Apply {
        return Ok(merged);
    }
    let patch_ids: Vec<Value> = upserts.iter().filter_map(|m| m.get(key).cloned()).collect();
    let order_ids = match directives.order {
        Some(order) => {
            let ids = order.iter().map(|v| v.get(key).cloned()).collect::<Option<Vec<_>>>().ok_or_else(|| {
                PatchError::Directive(format!("$setElementOrder/{field} items must all carry the merge key {key}"))
            })?;
            check_order(field, &patch_ids, &ids)?;
            ids
        }
        None => patch_ids,
    };
    Ok(order_items(merged, &order_ids, &live_ids, |v| v.get(key)))
}

/// The items of a keyed patch list, sorted by what they ask for.
struct PatchItems {
    /// Items to merge by key, without any `$patch` marker, in patch order.
    upserts: Vec<Map<String, Value>>,
    /// Keys whose live items `$patch: delete` removes.
    deletes: Positions,
    /// A `$patch: replace` item was present: the live list is dropped.
    replace: bool,
}

/// Splits a keyed patch list into upserts and directive items; every item needs the merge key.
fn split_patch_items(mode: Mode, key: &str, items: &[Value]) -> Result<PatchItems, PatchError> {
    let mut out = PatchItems { upserts: Vec::new(), deletes: Positions::default(), replace: false };
    for item in items.iter().filter_map(Value::as_object) {
        let mut item = item.clone();
        let directive = if mode == Mode::Strategic { item.remove(PATCH_DIRECTIVE) } else { None };
        match directive.as_ref().map(|d| (d, d.as_str())) {
            None => {}
            Some((_, Some("delete"))) => {
                let id = merge_key_value(&item, key)?;
                out.deletes.insert(id, 0);
                continue;
            }
            Some((_, Some("replace"))) => {
                out.replace = true;
                continue;
            }
            // Upstream refuses `$patch: merge` in a list item; an ordinary upsert is its meaning.
            Some((_, Some("merge"))) => {}
            Some((other, _)) => return Err(strategic::unknown_patch_type(other)),
        }
        merge_key_value(&item, key)?;
        out.upserts.push(item);
    }
    Ok(out)
}

/// The merge-key value of a patch item, which it must have.
fn merge_key_value<'a>(item: &'a Map<String, Value>, key: &str) -> Result<&'a Value, PatchError> {
    item.get(key).ok_or_else(|| {
        PatchError::Unprocessable(format!(
            "map: {} does not contain declared merge key: {key}",
            Value::Object(item.clone())
        ))
    })
}

/// Merge-scalars strategy: a set union in which `$deleteFromPrimitiveList` removes first.
fn merge_scalars(
    mode: Mode,
    live: &[Value],
    items: &[Value],
    directives: ListDirectives<'_>,
) -> Result<Vec<Value>, PatchError> {
    let deleted = Positions::new(directives.delete.unwrap_or_default());
    let mut seen = Positions::default();
    let mut merged: Vec<Value> = Vec::with_capacity(live.len() + items.len());
    for value in live.iter().filter(|v| deleted.get(v).is_none()) {
        if seen.insert(value, merged.len()) {
            merged.push(value.clone());
        }
    }
    let live_ids = merged.clone();
    for value in items {
        if seen.insert(value, merged.len()) {
            merged.push(value.clone());
        }
    }
    if mode == Mode::Apply {
        return Ok(merged);
    }
    let order_ids = match directives.order {
        Some(order) => {
            check_order("", items, order)?;
            order.to_vec()
        }
        None => items.to_vec(),
    };
    Ok(order_items(merged, &order_ids, &live_ids, |v| Some(v)))
}

/// Upstream's `validatePatchWithSetOrderList`: the patch items must appear in the
/// `$setElementOrder` list, in the same relative order.
fn check_order(field: &str, patch_ids: &[Value], order_ids: &[Value]) -> Result<(), PatchError> {
    let mut remaining = order_ids.iter();
    for id in patch_ids {
        if !remaining.any(|o| o == id) {
            return Err(PatchError::Directive(format!(
                "the order in patch list {field} {patch_ids:?} doesn't match $setElementOrder list {order_ids:?}"
            )));
        }
    }
    Ok(())
}

/// Orders merged items: those whose id is in `order_ids` follow that order, the rest keep their
/// relative order, and each of the rest goes before the ordered items it preceded in `live_ids`.
fn order_items(
    merged: Vec<Value>,
    order_ids: &[Value],
    live_ids: &[Value],
    id: impl Fn(&Value) -> Option<&Value>,
) -> Vec<Value> {
    let (order, live) = (Positions::new(order_ids), Positions::new(live_ids));
    let position = |at: &Positions, item: &Value| id(item).and_then(|i| at.get(i));
    let total = merged.len();
    let (mut ordered, server_only): (Vec<Value>, Vec<Value>) =
        merged.into_iter().partition(|item| position(&order, item).is_some());
    ordered.sort_by_cached_key(|item| position(&order, item));
    let mut ordered = ordered.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    let mut out = Vec::with_capacity(total);
    loop {
        let take_server = match (server_only.peek(), ordered.peek()) {
            (Some(s), Some(o)) => {
                matches!((position(&live, s), position(&live, o)), (Some(a), Some(b)) if a < b)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_server { server_only.next() } else { ordered.next() });
    }
    out
}

/// First positions of JSON values in a list. `Value` is neither `Hash` nor `Ord`, so values are
/// keyed by their compact JSON text (object keys are sorted, so equal values have equal text);
/// this keeps long lists linear where upstream's scans are quadratic.
#[derive(Debug, Default)]
struct Positions(HashMap<String, usize>);

impl Positions {
    fn new(ids: &[Value]) -> Self {
        let mut positions = Positions::default();
        for (i, id) in ids.iter().enumerate() {
            positions.insert(id, i);
        }
        positions
    }

    /// Records `id` at `at` unless already present; true when it was new.
    fn insert(&mut self, id: &Value, at: usize) -> bool {
        match self.0.entry(id.to_string()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(slot) => {
                slot.insert(at);
                true
            }
        }
    }

    fn get(&self, id: &Value) -> Option<usize> {
        self.0.get(&id.to_string()).copied()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(list: &[Value]) -> Vec<&str> {
        list.iter().filter_map(|v| v.get("name").and_then(Value::as_str)).collect()
    }

    fn keyed(live: Value, items: Value, order: Option<Value>) -> Result<Vec<Value>, PatchError> {
        let (Value::Array(live), Value::Array(items)) = (live, items) else { panic!("arrays expected") };
        let order = order.map(|o| o.as_array().cloned().unwrap_or_default());
        let directives = ListDirectives { order: order.as_deref(), delete: None };
        merge_list(Mode::Strategic, "spec", "containers", &live, &items, directives)
    }

    #[test]
    fn table_picks_keys_by_field_and_parent() {
        assert_eq!(strategy("containers", "ports"), Strategy::MergeByKey("containerPort"));
        assert_eq!(strategy("spec", "ports"), Strategy::MergeByKey("port"));
        assert_eq!(strategy("subsets", "ports"), Strategy::Replace);
        assert_eq!(strategy("metadata", "finalizers"), Strategy::MergeScalars);
        assert_eq!(strategy("spec", "finalizers"), Strategy::Replace);
        assert_eq!(strategy("spec", "tolerations"), Strategy::Replace);
        assert_eq!(strategy("containers", "volumeMounts"), Strategy::MergeByKey("mountPath"));
    }

    #[test]
    fn keyed_merge_updates_in_place_and_appends_new_items() {
        let live = json!([{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]);
        let out = keyed(live, json!([{"name": "b", "image": "2"}, {"name": "c"}]), None).unwrap();
        assert_eq!(
            out,
            vec![json!({"name": "a", "image": "1"}), json!({"name": "b", "image": "2"}), json!({"name": "c"})]
        );
    }

    #[test]
    fn patch_order_wins_and_server_only_items_keep_their_place() {
        let live = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]);
        assert_eq!(
            names(&keyed(live.clone(), json!([{"name": "d"}, {"name": "a"}]), None).unwrap()),
            ["d", "a", "b", "c"]
        );
        let order = json!([{"name": "c"}, {"name": "a"}]);
        assert_eq!(names(&keyed(live, json!([]), Some(order)).unwrap()), ["b", "c", "a"]);
    }

    #[test]
    fn upstream_ordering_cases() {
        // apimachinery patch_test.go: "preserve the order from the patch in a merging list 2".
        let live = json!([{"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}]);
        let out = keyed(live, json!([{"name": "3", "value": "c"}, {"name": "1", "value": "a"}]), None).unwrap();
        assert_eq!(names(&out), ["2", "3", "1"]);
        assert_eq!(out[0], json!({"name": "2", "value": "b"}));
        // "$setElementOrder contains item that is not present in the list to be merged".
        let live = json!([{"name": "1"}, {"name": "3"}]);
        let order = json!([{"name": "3"}, {"name": "2"}, {"name": "1"}]);
        assert_eq!(names(&keyed(live, json!([{"name": "3"}, {"name": "1"}]), Some(order)).unwrap()), ["3", "1"]);
        // The same for an int list, ordered by the directive alone.
        let (live, order) = ([json!(1), json!(3)], [json!(3), json!(2), json!(1)]);
        let directives = ListDirectives { order: Some(&order), delete: None };
        let out = merge_list(Mode::Strategic, "x", "mergingIntList", &live, &[], directives).unwrap();
        assert_eq!(out, vec![json!(3), json!(1)]);
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch_list() {
        let err = keyed(json!([]), json!([{"name": "a"}, {"name": "b"}]), Some(json!([{"name": "b"}, {"name": "a"}])));
        assert!(matches!(err, Err(PatchError::Directive(_))));
    }

    #[test]
    fn delete_and_replace_items() {
        let live = json!([{"name": "a"}, {"name": "b"}]);
        assert_eq!(names(&keyed(live.clone(), json!([{"$patch": "delete", "name": "a"}]), None).unwrap()), ["b"]);
        let replaced = keyed(live, json!([{"name": "z", "x": null}, {"$patch": "replace"}]), None).unwrap();
        assert_eq!(replaced, vec![json!({"name": "z"})]);
    }

    #[test]
    fn item_without_merge_key_is_unprocessable() {
        let err = keyed(json!([]), json!([{"image": "x"}]), None).unwrap_err();
        assert_eq!(err.status_code(), 422);
        let err = keyed(json!([]), json!([{"$patch": "delete"}]), None).unwrap_err();
        assert_eq!(err.status_code(), 422);
    }

    #[test]
    fn scalar_items_in_a_keyed_field_fall_back_to_replace() {
        let out = keyed(json!(["a"]), json!(["b", {"$patch": "replace"}]), None).unwrap();
        assert_eq!(out, vec![json!("b")]);
    }

    #[test]
    fn scalar_set_merge_and_delete_from_primitive_list() {
        let live = [json!("a"), json!("b"), json!("c")];
        let delete = [json!("b")];
        let directives = ListDirectives { order: None, delete: Some(&delete) };
        let out = merge_list(Mode::Strategic, "metadata", "finalizers", &live, &[json!("d"), json!("a")], directives);
        assert_eq!(out.unwrap(), vec![json!("d"), json!("a"), json!("c")]);
        let nested =
            merge_list(Mode::Strategic, "metadata", "finalizers", &live, &[json!([1])], ListDirectives::default());
        assert_eq!(nested.unwrap_err().status_code(), 422);
    }

    #[test]
    fn set_element_order_reveals_an_unknown_merge_list() {
        let live = [json!({"ip": "10.0.0.1"}), json!({"ip": "10.0.0.2"})];
        let order = [json!({"ip": "10.0.0.2"}), json!({"ip": "10.0.0.1"})];
        let directives = ListDirectives { order: Some(&order), delete: None };
        let out = merge_list(Mode::Strategic, "status", "podIPs", &live, &[], directives).unwrap();
        assert_eq!(out, order.to_vec());
    }
}
