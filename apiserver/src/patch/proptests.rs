//! Property tests: strategic merge patch against small reference models.
//!
//! 1. A keyed list (`containers` merged by `name`) plus scalar fields, patched with upserts,
//!    `$patch: delete` items and `null` deletions, must match a `BTreeMap` model, with upstream's
//!    ordering rule: patch items in patch order, server-only items in live order.
//! 2. Without lists or directives, strategic merge patch and the apply merge are RFC 7386.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{apply, PatchType};

/// What a patch does to one container.
#[derive(Debug, Clone)]
enum ItemOp {
    Upsert(i64),
    Delete,
}

/// Live state: scalar fields and the (name, value) items of `containers`, in list order.
type LiveState = (BTreeMap<String, i64>, Vec<(String, i64)>);
/// Patch: scalar upserts (`None` = null delete) and per-name item operations, in list order.
type PatchOps = (BTreeMap<String, Option<i64>>, Vec<(String, ItemOp)>);

fn names() -> impl Strategy<Value = String> {
    "n[0-5]"
}

fn scalar_keys() -> impl Strategy<Value = String> {
    "[a-e]"
}

fn live_state() -> impl Strategy<Value = LiveState> {
    let scalars = prop::collection::btree_map(scalar_keys(), any::<i64>(), 0..5);
    // Distinct names in a random live order.
    let items = prop::collection::btree_map(names(), any::<i64>(), 0..6)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
        .prop_shuffle();
    (scalars, items)
}

fn patch_ops() -> impl Strategy<Value = PatchOps> {
    let scalars = prop::collection::btree_map(scalar_keys(), any::<Option<i64>>(), 0..5);
    let op = prop_oneof![any::<i64>().prop_map(ItemOp::Upsert), Just(ItemOp::Delete)];
    let items =
        prop::collection::btree_map(names(), op, 0..6).prop_map(|m| m.into_iter().collect::<Vec<_>>()).prop_shuffle();
    (scalars, items)
}

fn container(name: &str, value: i64) -> Value {
    json!({"name": name, "value": value})
}

proptest! {
    #[test]
    fn keyed_list_and_scalars_match_the_model(
        (live_scalars, live_items) in live_state(),
        (patch_scalars, patch_items) in patch_ops(),
    ) {
        let mut live = Map::new();
        for (k, v) in &live_scalars { live.insert(k.clone(), json!(v)); }
        live.insert("containers".into(), live_items.iter().map(|(n, v)| container(n, *v)).collect());
        let mut body = Map::new();
        for (k, v) in &patch_scalars { body.insert(k.clone(), json!(v)); }
        let patch_list: Vec<Value> = patch_items.iter().map(|(n, op)| match op {
            ItemOp::Upsert(v) => container(n, *v),
            ItemOp::Delete => json!({"$patch": "delete", "name": n}),
        }).collect();
        body.insert("containers".into(), Value::Array(patch_list));

        let out = apply(PatchType::Strategic, &Value::Object(live), Value::Object(body).to_string().as_bytes())
            .expect("well-formed patch applies");

        // Model: scalar map and name -> value map.
        let mut want_scalars = live_scalars.clone();
        for (k, v) in &patch_scalars {
            match v { Some(v) => { want_scalars.insert(k.clone(), *v); } None => { want_scalars.remove(k); } }
        }
        let mut want_items: BTreeMap<String, i64> = live_items.iter().cloned().collect();
        for (n, op) in &patch_items {
            match op { ItemOp::Upsert(v) => { want_items.insert(n.clone(), *v); } ItemOp::Delete => { want_items.remove(n); } }
        }

        let obj = out.as_object().expect("object");
        let got_scalars: BTreeMap<String, i64> =
            obj.iter().filter(|(k, _)| *k != "containers").map(|(k, v)| (k.clone(), v.as_i64().expect("int"))).collect();
        prop_assert_eq!(got_scalars, want_scalars);
        let list = obj["containers"].as_array().expect("list");
        let got_items: Vec<(String, i64)> = list.iter().map(|c| {
            prop_assert_eq!(c.as_object().map(Map::len), Some(2), "no directive leaks into {}", c);
            Ok((c["name"].as_str().unwrap_or_default().to_string(), c["value"].as_i64().unwrap_or_default()))
        }).collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(got_items.len(), want_items.len(), "duplicates in {:?}", got_items);
        prop_assert_eq!(got_items.iter().cloned().collect::<BTreeMap<_, _>>(), want_items);

        // Order: upserted items in patch order, untouched items in live order.
        let upserted: Vec<&String> = patch_items.iter().filter(|(_, op)| matches!(op, ItemOp::Upsert(_))).map(|(n, _)| n).collect();
        let got_upserted: Vec<&String> = got_items.iter().map(|(n, _)| n).filter(|n| upserted.contains(n)).collect();
        prop_assert_eq!(got_upserted, upserted);
        let touched: Vec<&String> = patch_items.iter().map(|(n, _)| n).collect();
        let untouched_live: Vec<&String> = live_items.iter().map(|(n, _)| n).filter(|n| !touched.contains(n)).collect();
        let got_untouched: Vec<&String> = got_items.iter().map(|(n, _)| n).filter(|n| !touched.contains(n)).collect();
        prop_assert_eq!(got_untouched, untouched_live);
    }

    #[test]
    fn without_lists_or_directives_strategic_and_apply_are_rfc7386(live in object(), patch in object()) {
        let mut want = Value::Object(live.clone());
        json_patch::merge(&mut want, &Value::Object(patch.clone()));
        let body = Value::Object(patch).to_string();
        let live = Value::Object(live);
        prop_assert_eq!(&apply(PatchType::Strategic, &live, body.as_bytes()).expect("applies"), &want);
        prop_assert_eq!(&apply(PatchType::Apply, &live, body.as_bytes()).expect("applies"), &want);
        prop_assert_eq!(&apply(PatchType::Merge, &live, body.as_bytes()).expect("applies"), &want);
    }
}

/// JSON objects of scalars, nulls and nested objects over a few keys, so patches collide with
/// live keys often.
fn object() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    let tree = leaf.prop_recursive(3, 32, 4, |inner| {
        prop::collection::btree_map("[a-d]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    prop::collection::btree_map("[a-d]", tree, 0..5).prop_map(|m| m.into_iter().collect())
}
