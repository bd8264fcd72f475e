//! A minimal OpenAPI v3 description of the served API: `GET /openapi/v3` and
//! `GET /openapi/v3/<api/v1 | apis/<group>/<version>>`.
//!
//! Why it exists: `kubectl apply`, `create -f` and `replace` refuse to run unless they can
//! download OpenAPI. kubectl 1.32 (cli-runtime `query_param_verifier_v3.go`) looks in the
//! group-version document for a PATCH operation whose `x-kubernetes-group-version-kind` is the
//! object's kind and which has a `fieldValidation` query parameter; when found it skips
//! client-side schema validation and sends `?fieldValidation=Strict` instead. That check is
//! all these documents are for, so `components.schemas` stays empty.
//!
//! Invariants:
//! - Every PATCH operation carrying a GVK has `fieldValidation`: kubectl walks the paths map
//!   in random order and judges a GVK by the *first* matching PATCH it meets, which may be a
//!   `status` subresource (same GVK as its parent).
//! - `components.schemas` holds no schema tagged with `x-kubernetes-group-version-kind`. See
//!   [`patch_request_body`] for why that matters to `kubectl apply`.
//! - Documents are pure functions of [`crate::resources::RESOURCES`] and the build, so the
//!   `hash` in each `serverRelativeURL` (FNV-1a over the serialized document) only changes
//!   when the document does; kubectl caches documents by that URL.
//!
//! Data flow: the HTTP layer answers `/openapi/v3` with [`index`] and `/openapi/v3/<path>`
//! with [`group_version_doc`] (ignoring the `hash` query parameter); `None` becomes a 404.

use serde_json::{json, Map, Value};

use crate::resources::{groups, Resource, Subresource, RESOURCES};

/// Patch formats the server accepts, listed on every PATCH operation.
const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// Query parameters of create, update and patch: kubectl checks for `fieldValidation`.
const WRITE_PARAMS: &[(&str, &str)] =
    &[("dryRun", "string"), ("fieldManager", "string"), ("fieldValidation", "string")];
const LIST_PARAMS: &[(&str, &str)] = &[
    ("allowWatchBookmarks", "boolean"),
    ("continue", "string"),
    ("fieldSelector", "string"),
    ("labelSelector", "string"),
    ("limit", "integer"),
    ("resourceVersion", "string"),
    ("resourceVersionMatch", "string"),
    ("sendInitialEvents", "boolean"),
    ("timeoutSeconds", "integer"),
    ("watch", "boolean"),
];
const DELETE_PARAMS: &[(&str, &str)] =
    &[("dryRun", "string"), ("gracePeriodSeconds", "integer"), ("propagationPolicy", "string")];
const DELETE_COLLECTION_PARAMS: &[(&str, &str)] = &[
    ("dryRun", "string"),
    ("fieldSelector", "string"),
    ("gracePeriodSeconds", "integer"),
    ("labelSelector", "string"),
    ("propagationPolicy", "string"),
];

/// Subresources that upgrade to a stream; upstream marks their operations `connect`.
const CONNECT_SUBRESOURCES: &[&str] = &["attach", "exec", "portforward", "proxy"];

/// 64-bit FNV-1a: tiny, dependency-free and stable across builds and platforms, which is all
/// a cache-busting content hash needs (it is not a security boundary).
pub(crate) fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

/// Uppercase hex hash of a document's serialization. serde_json without `preserve_order`
/// writes object keys sorted, and the documents are built in a fixed order anyway, so equal
/// documents always hash equal.
fn doc_hash(doc: &Value) -> String {
    format!("{:016X}", fnv1a_64(doc.to_string().as_bytes()))
}

/// `api/v1` or `apis/<group>/<version>`: the key in the index and the URL suffix.
fn doc_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The group and version a document path names; a leading `/` is tolerated.
fn parse_doc_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version] if !version.is_empty() => Some(("", version)),
        ["apis", group, version] if !group.is_empty() && !version.is_empty() => Some((group, version)),
        _ => None,
    }
}

/// The body of `GET /openapi/v3`: one entry per served group-version, each pointing at its
/// document with a content hash.
pub fn index() -> Value {
    let mut paths = Map::new();
    for (group, version) in groups() {
        let path = doc_path(group, version);
        if let Some(doc) = group_version_doc(&path) {
            let url = format!("/openapi/v3/{path}?hash={}", doc_hash(&doc));
            paths.insert(path, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// The document of one group-version, for `path` `api/v1` or `apis/<group>/<version>`;
/// `None` when the path is malformed or names no served group-version.
pub fn group_version_doc(path: &str) -> Option<Value> {
    let (group, version) = parse_doc_path(path)?;
    let mut paths = Map::new();
    for r in RESOURCES.iter().filter(|r| r.group == group && r.version == version) {
        add_resource_paths(&mut paths, r);
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::git_version()},
        "paths": paths,
        // Must be present (kubectl apply errors on a nil Components) and must stay free of
        // GVK-tagged schemas; see `patch_request_body`.
        "components": {"schemas": {}},
    }))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn query_params(params: &[(&str, &str)]) -> Vec<Value> {
    params.iter().map(|(name, ty)| json!({"name": name, "in": "query", "schema": {"type": ty}})).collect()
}

/// The PATCH request body, listing the accepted patch formats.
///
/// Listing `application/strategic-merge-patch+json` makes kubectl apply's patcher
/// (`gvkSupportsPatchOpenAPIV3`) go on to `buildStrategicMergePatchFromOpenAPIV3`, which
/// looks for a component schema tagged with this GVK to read merge keys from. With
/// `components.schemas` present but empty it finds none and returns no patch and no error, so
/// kubectl falls through to the OpenAPI v2 lookup (404 here, tolerated) and then to its
/// compiled-in struct tags: the same path as with no request body at all, which was observed
/// to produce correct strategic merge patches. A GVK-tagged schema *without* the
/// `x-kubernetes-patch-*` extensions would instead make kubectl compute patches that replace
/// merge lists (containers, env...) wholesale, which is why schemas must not be added lightly.
fn patch_request_body() -> Value {
    let content: Map<String, Value> =
        PATCH_CONTENT_TYPES.iter().map(|ct| (ct.to_string(), json!({"schema": {"type": "object"}}))).collect();
    json!({"required": true, "content": content})
}

/// One operation: its GVK extension, the action upstream names it with, and the query
/// parameters clients probe for.
fn operation(action: &str, kind: &Value) -> Value {
    let mut op = json!({
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": kind,
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
    });
    let params = match action {
        "list" => query_params(LIST_PARAMS),
        "post" | "put" => query_params(WRITE_PARAMS),
        "patch" => {
            op["requestBody"] = patch_request_body();
            let mut params = query_params(WRITE_PARAMS);
            params.extend(query_params(&[("force", "boolean")]));
            params
        }
        "delete" => query_params(DELETE_PARAMS),
        "deletecollection" => query_params(DELETE_COLLECTION_PARAMS),
        _ => Vec::new(),
    };
    if action == "post" {
        op["responses"]["201"] = json!({"description": "Created"});
        op["responses"]["202"] = json!({"description": "Accepted"});
    }
    if !params.is_empty() {
        op["parameters"] = json!(params);
    }
    op
}

/// A path item: `(method, action)` operations sharing one GVK, plus the path parameters.
fn path_item(ops: &[(&str, &str)], kind: &Value, path_params: &[&str]) -> Value {
    let mut item = Map::new();
    for (method, action) in ops {
        item.insert(method.to_string(), operation(action, kind));
    }
    let params: Vec<Value> = path_params
        .iter()
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    if !params.is_empty() {
        item.insert("parameters".to_string(), json!(params));
    }
    Value::Object(item)
}

/// HTTP method and upstream action for one verb of a subresource.
fn subresource_op(s: &Subresource, verb: &str) -> Option<(&'static str, &'static str)> {
    let connect = CONNECT_SUBRESOURCES.contains(&s.name);
    match verb {
        "get" => Some(("get", if connect { "connect" } else { "get" })),
        "create" => Some(("post", if connect { "connect" } else { "post" })),
        "update" => Some(("put", "put")),
        "patch" => Some(("patch", "patch")),
        "delete" => Some(("delete", "delete")),
        _ => None,
    }
}

/// The collection, item and subresource paths of one resource.
fn add_resource_paths(paths: &mut Map<String, Value>, r: &Resource) {
    let gv = r.gv_path();
    let kind = gvk(r.group, r.version, r.kind);
    let (collection, item_params): (String, &[&str]) = if r.namespaced {
        (format!("{gv}/namespaces/{{namespace}}/{}", r.plural), &["name", "namespace"])
    } else {
        (format!("{gv}/{}", r.plural), &["name"])
    };
    let collection_params = &item_params[1..];
    let item = format!("{collection}/{{name}}");

    let collection_ops = [("get", "list"), ("post", "post"), ("delete", "deletecollection")];
    paths.insert(collection.clone(), path_item(&collection_ops, &kind, collection_params));
    if r.namespaced {
        // Listing across all namespaces (`kubectl get pods -A`).
        paths.insert(format!("{gv}/{}", r.plural), path_item(&[("get", "list")], &kind, &[]));
    }
    let item_ops = [("get", "get"), ("put", "put"), ("patch", "patch"), ("delete", "delete")];
    paths.insert(item.clone(), path_item(&item_ops, &kind, item_params));

    for s in r.subresources {
        let ops: Vec<(&str, &str)> = s.verbs.iter().filter_map(|verb| subresource_op(s, verb)).collect();
        let sub_kind = gvk(s.group, s.version, s.kind);
        paths.insert(format!("{item}/{}", s.name), path_item(&ops, &sub_kind, item_params));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch_ops(doc: &Value) -> Vec<(&String, &Value)> {
        doc["paths"].as_object().unwrap().iter().filter_map(|(p, item)| item.get("patch").map(|op| (p, op))).collect()
    }

    fn has_query_param(op: &Value, name: &str) -> bool {
        op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "query"))
    }

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn index_references_every_group_version_with_a_stable_hash() {
        let idx = index();
        let paths = idx["paths"].as_object().unwrap();
        assert_eq!(paths.len(), groups().len());
        for (group, version) in groups() {
            let path = doc_path(group, version);
            let url = paths[&path]["serverRelativeURL"].as_str().unwrap();
            let (prefix, hash) = url.split_once("?hash=").unwrap();
            assert_eq!(prefix, format!("/openapi/v3/{path}"));
            assert!(hash.len() == 16 && hash.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()), "{hash}");
            // kubectl fetches exactly this URL: its path must resolve to a document.
            assert!(group_version_doc(prefix.trim_start_matches("/openapi/v3/")).is_some());
        }
        assert_eq!(index(), idx);
        assert!(paths.contains_key("api/v1") && paths.contains_key("apis/apps/v1"));
    }

    #[test]
    fn each_document_hashes_differently() {
        let idx = index();
        let mut hashes: Vec<&str> = idx["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["serverRelativeURL"].as_str().unwrap())
            .map(|u| u.split_once("?hash=").unwrap().1)
            .collect();
        hashes.sort();
        hashes.dedup();
        assert_eq!(hashes.len(), groups().len());
    }

    #[test]
    fn every_resource_has_a_patch_with_its_gvk_and_field_validation() {
        for r in RESOURCES {
            let doc = group_version_doc(&doc_path(r.group, r.version)).unwrap();
            assert_eq!(doc["openapi"], "3.0.0");
            let kind = gvk(r.group, r.version, r.kind);
            let matching: Vec<_> =
                patch_ops(&doc).into_iter().filter(|(_, op)| op["x-kubernetes-group-version-kind"] == kind).collect();
            assert!(!matching.is_empty(), "{}", r.plural);
            // kubectl judges a GVK by whichever matching PATCH it meets first.
            for (path, op) in matching {
                assert!(has_query_param(op, "fieldValidation"), "{path}");
                assert!(has_query_param(op, "force") && has_query_param(op, "dryRun"), "{path}");
                assert_eq!(op["x-kubernetes-action"], "patch");
                let content = op["requestBody"]["content"].as_object().unwrap();
                assert!(PATCH_CONTENT_TYPES.iter().all(|ct| content.contains_key(*ct)), "{path}");
            }
        }
    }

    #[test]
    fn item_and_collection_paths_follow_scope() {
        let core = group_version_doc("api/v1").unwrap();
        let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"];
        for method in ["get", "put", "patch", "delete"] {
            assert_eq!(pod[method]["x-kubernetes-group-version-kind"]["kind"], "Pod", "{method}");
        }
        let pods = &core["paths"]["/api/v1/namespaces/{namespace}/pods"];
        assert_eq!(
            (&pods["get"]["x-kubernetes-action"], &pods["post"]["x-kubernetes-action"]),
            (&json!("list"), &json!("post"))
        );
        assert!(has_query_param(&pods["post"], "fieldValidation"));
        assert_eq!(core["paths"]["/api/v1/pods"]["get"]["x-kubernetes-action"], "list");
        let node = &core["paths"]["/api/v1/nodes/{name}"];
        assert_eq!(node["patch"]["x-kubernetes-group-version-kind"]["kind"], "Node");
        assert_eq!(node["parameters"].as_array().unwrap().len(), 1);
        assert!(core["paths"].get("/api/v1/namespaces/{namespace}/nodes/{name}").is_none());
        let eviction = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"];
        assert_eq!(eviction["post"]["x-kubernetes-group-version-kind"], gvk("policy", "v1", "Eviction"));
    }

    #[test]
    fn subresource_paths_carry_the_subresource_gvk() {
        let apps = group_version_doc("/apis/apps/v1").unwrap();
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(scale["patch"]["x-kubernetes-group-version-kind"], gvk("autoscaling", "v1", "Scale"));
        assert_eq!(scale["put"]["x-kubernetes-action"], "put");
        let status = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
        assert_eq!(status["get"]["x-kubernetes-group-version-kind"], gvk("apps", "v1", "Deployment"));
        let core = group_version_doc("api/v1").unwrap();
        assert_eq!(
            core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/exec"]["get"]["x-kubernetes-action"],
            "connect"
        );
    }

    #[test]
    fn documents_only_for_served_group_versions() {
        for bad in ["", "api", "apis/apps", "apis/apps/v2", "api/v2", "apis/nope/v1", "apis//v1", "api/v1/pods"] {
            assert!(group_version_doc(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn components_exist_without_gvk_tagged_schemas() {
        for (group, version) in groups() {
            let doc = group_version_doc(&doc_path(group, version)).unwrap();
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            assert!(schemas.values().all(|s| s.get("x-kubernetes-group-version-kind").is_none()));
        }
    }
}
