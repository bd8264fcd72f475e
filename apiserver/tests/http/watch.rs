//! Watches over HTTP, read frame by frame: the start rules (no resourceVersion → synthetic
//! ADDEDs, then changes; `N` → changes after N only), event types, selectors applied to old
//! and new state, `timeoutSeconds`, bookmarks, and 410 for a compacted resourceVersion.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use super::support::{configmap, labelled_configmap, pod, rv, Api, TABLE_ACCEPT};
use super::watch_stream::{WatchStream, EVENT_DEADLINE};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn ev(kind: &str, name: &str) -> (String, String) {
    (kind.to_string(), name.to_string())
}

#[tokio::test]
async fn a_watch_without_resource_version_replays_then_follows() {
    let api = Api::start().await;
    api.create(CMS, configmap("a", json!({}))).await;
    api.create(CMS, configmap("b", json!({}))).await;
    let mut w = api.watch(&format!("{CMS}?watch=true")).await;
    assert_eq!(w.typed().await, ev("ADDED", "a"));
    assert_eq!(w.typed().await, ev("ADDED", "b"));

    let c = api.create(CMS, configmap("c", json!({}))).await;
    let added = w.event().await;
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"], c, "the event carries the object as created");

    let a2 = api.merge_patch(&format!("{CMS}/a"), &json!({"data": {"k": "v"}})).await.expect(200);
    let modified = w.event().await;
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"], a2);

    api.delete(&format!("{CMS}/b")).await.expect(200);
    let deleted = w.event().await;
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["metadata"]["name"], "b");
    assert!(rv(&deleted["object"]) > rv(&a2), "a DELETED event carries the deletion's revision");
}

#[tokio::test]
async fn a_watch_from_a_resource_version_sends_only_later_changes() {
    let api = Api::start().await;
    let a = api.create(CMS, configmap("a", json!({}))).await;
    api.create(CMS, configmap("b", json!({}))).await;
    let list = api.read(CMS).await;

    let mut from_list = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&list))).await;
    let mut from_a = api.watch(&format!("{CMS}?watch=1&resourceVersion={}", rv(&a))).await;
    api.create(CMS, configmap("c", json!({}))).await;
    assert_eq!(from_list.typed().await, ev("ADDED", "c"));
    assert_eq!(from_a.typed().await, ev("ADDED", "b"), "b was created after a's revision");
    assert_eq!(from_a.typed().await, ev("ADDED", "c"));

    // resourceVersion=0 starts like an unset one.
    let mut zero = api.watch(&format!("{CMS}?watch=true&resourceVersion=0")).await;
    assert_eq!(zero.typed().await, ev("ADDED", "a"));
}

#[tokio::test]
async fn a_label_selector_turns_leaving_into_deleted_and_joining_into_added() {
    let api = Api::start().await;
    api.create(CMS, labelled_configmap("x", json!({"app": "web"}))).await;
    let mut w = api.watch(&format!("{CMS}?watch=true&labelSelector=app%3Dweb")).await;
    assert_eq!(w.typed().await, ev("ADDED", "x"));

    api.merge_patch(&format!("{CMS}/x"), &json!({"metadata": {"labels": {"app": "db"}}})).await.expect(200);
    let left = w.event().await;
    assert_eq!(left["type"], "DELETED");
    assert_eq!(left["object"]["metadata"]["labels"], json!({"app": "db"}));

    api.create(CMS, labelled_configmap("other", json!({"app": "db"}))).await;
    api.merge_patch(&format!("{CMS}/x"), &json!({"metadata": {"labels": {"app": "web"}}})).await.expect(200);
    assert_eq!(w.typed().await, ev("ADDED", "x"), "objects that never match produce nothing");
    api.merge_patch(&format!("{CMS}/x"), &json!({"data": {"k": "v"}})).await.expect(200);
    assert_eq!(w.typed().await, ev("MODIFIED", "x"));
}

#[tokio::test]
async fn field_selectors_and_single_object_watches() {
    let api = Api::start().await;
    api.create(CMS, configmap("a", json!({}))).await;
    api.create(CMS, configmap("b", json!({}))).await;
    let mut by_field = api.watch(&format!("{CMS}?watch=true&fieldSelector=metadata.name%3Db")).await;
    let mut by_url = api.watch(&format!("{CMS}/b?watch=true")).await;
    assert_eq!(by_field.typed().await, ev("ADDED", "b"));
    assert_eq!(by_url.typed().await, ev("ADDED", "b"));
    api.merge_patch(&format!("{CMS}/a"), &json!({"data": {"k": "1"}})).await.expect(200);
    api.merge_patch(&format!("{CMS}/b"), &json!({"data": {"k": "2"}})).await.expect(200);
    assert_eq!(by_field.typed().await, ev("MODIFIED", "b"));
    assert_eq!(by_url.typed().await, ev("MODIFIED", "b"));

    let r = api.send(Method::GET, &format!("{CMS}?watch=true&fieldSelector=spec.x%3D1"), &[], Body::empty()).await;
    let s = r.expect_status(400, "BadRequest");
    assert_eq!(s["message"], "field label not supported: spec.x");
}

#[tokio::test]
async fn cluster_wide_watches_see_every_namespace() {
    let api = Api::start().await;
    let other = api.namespace("other").await;
    let mut all = api.watch("/api/v1/pods?watch=true").await;
    let mut default_only = api.watch("/api/v1/namespaces/default/pods?watch=true").await;
    api.create(&format!("/api/v1/namespaces/{other}/pods"), pod("there")).await;
    api.create("/api/v1/namespaces/default/pods", pod("here")).await;
    assert_eq!(all.typed().await, ev("ADDED", "there"));
    assert_eq!(all.typed().await, ev("ADDED", "here"));
    assert_eq!(default_only.typed().await, ev("ADDED", "here"));
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let api = Api::start().await;
    api.create(CMS, configmap("a", json!({}))).await;
    let mut w = api.watch(&format!("{CMS}?watch=true&timeoutSeconds=1")).await;
    let events = w.until_end(EVENT_DEADLINE).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED"], "no bookmark unless asked for");
}

#[tokio::test]
async fn bookmarks_are_sent_when_a_watch_times_out() {
    let api = Api::start().await;
    let a = api.create(CMS, configmap("a", json!({}))).await;
    let url = format!("{CMS}?watch=true&allowWatchBookmarks=true&timeoutSeconds=1&resourceVersion={}", rv(&a));
    let mut w = api.watch(&url).await;
    let b = api.create(CMS, configmap("b", json!({}))).await;
    let events = w.until_end(EVENT_DEADLINE).await;
    assert_eq!(events.first().map(|e| &e["type"]), Some(&json!("ADDED")), "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "BOOKMARK", "{events:?}");
    assert_eq!(last["object"]["kind"], "ConfigMap");
    assert_eq!(last["object"]["apiVersion"], "v1");
    assert!(rv(&last["object"]) >= rv(&b), "a bookmark covers every event sent: {last}");
}

#[tokio::test]
async fn a_compacted_resource_version_is_an_error_event_with_410() {
    let api = Api::start().await;
    let first = api.create(CMS, configmap("a", json!({}))).await;
    for i in 0..3 {
        api.merge_patch(&format!("{CMS}/a"), &json!({"data": {"i": i.to_string()}})).await.expect(200);
    }
    api.create(CMS, configmap("b", json!({}))).await;
    let page = api.read(&format!("{CMS}?limit=1")).await;
    let token = page["metadata"]["continue"].as_str().expect("a continue token").to_string();
    api.merge_patch(&format!("{CMS}/b"), &json!({"data": {"k": "v"}})).await.expect(200);
    let latest = api.read(CMS).await;
    api.node.compact(rv(&latest)).await.expect("compaction");

    let mut w = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&first))).await;
    let e = w.event().await;
    assert_eq!(e["type"], "ERROR", "{e}");
    let status = &e["object"];
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 410);
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"].as_str().unwrap().starts_with("too old resource version: "), "{status}");
    assert!(w.until_end(EVENT_DEADLINE).await.is_empty(), "nothing follows the error");

    // A continue token read before the compaction has expired too.
    let s = api.get(&format!("{CMS}?limit=1&continue={token}")).await.expect_status(410, "Expired");
    assert!(s["message"].is_string());

    let mut fresh = api.watch(&format!("{CMS}?watch=true&resourceVersion={}", rv(&latest))).await;
    api.merge_patch(&format!("{CMS}/a"), &json!({"data": {"i": "after"}})).await.expect(200);
    assert_eq!(fresh.typed().await, ev("MODIFIED", "a"), "a watch from the compaction point works");
}

#[tokio::test]
async fn table_watches_carry_one_row_tables() {
    let api = Api::start().await;
    api.create("/api/v1/namespaces/default/pods", pod("p")).await;
    let resp = api
        .call(Method::GET, "/api/v1/namespaces/default/pods?watch=true", &[("accept", TABLE_ACCEPT)], Body::empty())
        .await;
    assert_eq!(resp.status(), 200);
    let mut w = WatchStream::new(resp.into_body());
    let e = w.event().await;
    assert_eq!(e["type"], "ADDED");
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(e["object"]["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(e["object"]["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(e["object"]["rows"][0]["object"]["metadata"]["name"], "p");
}
