//! Bodies of the discovery endpoints: `/version`, `/api`, `/apis`, `/api/v1` and `/apis/<g>/<v>`.
//!
//! Clients learn what this server serves from these documents: kubectl maps kinds and short
//! names to URLs, `kubectl drain` looks for `pods/eviction`, and the kubectl dispatcher on the
//! project's machines picks which kubectl binary to run from `/version`'s `minor`.
//!
//! Invariants:
//! - Everything is derived from [`crate::resources::RESOURCES`], so discovery can never name a
//!   resource the router does not serve (or miss one it does).
//! - Output is a pure function of that table: no I/O, and equal bytes on every call, which
//!   keeps kubectl's 6-hour discovery cache valid across restarts of the same build.
//!
//! Data flow: the HTTP layer calls [`negotiate_aggregated`] with the request's `Accept` header.
//! `Some((content_type, api_version))` means answer `/api` or `/apis` with
//! [`aggregated`] under that exact Content-Type (clients tell the two formats apart by the
//! response Content-Type alone); `None` means answer with the legacy [`api_versions`] /
//! [`api_group_list`], after which clients fetch [`api_resource_list`] per group-version.

use serde_json::{json, Value};

use crate::resources::{groups, Resource, Subresource, RESOURCES};

/// The Kubernetes minor version this server claims. kubectl 1.32 is what the project tests
/// against, and the dispatcher chooses the kubectl binary from this field.
const KUBERNETES_MINOR: &str = "32";

/// Group of the aggregated discovery types.
const DISCOVERY_GROUP: &str = "apidiscovery.k8s.io";
/// Kind requested through the `as=` media type parameter.
const DISCOVERY_KIND: &str = "APIGroupDiscoveryList";

/// Response Content-Type of aggregated discovery v2; client-go matches its `g`, `v` and `as`
/// parameters to decide that the body is aggregated rather than legacy.
pub const CONTENT_TYPE_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
/// Response Content-Type of aggregated discovery v2beta1 (same shape as v2).
pub const CONTENT_TYPE_V2BETA1: &str = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
/// `apiVersion` of an aggregated v2 document.
pub const API_VERSION_V2: &str = "apidiscovery.k8s.io/v2";
/// `apiVersion` of an aggregated v2beta1 document.
pub const API_VERSION_V2BETA1: &str = "apidiscovery.k8s.io/v2beta1";

/// `v1.32.0-flotilla.<crate version>`: a valid semantic version (kubectl parses it for its
/// version-skew warning) whose minor matches [`KUBERNETES_MINOR`].
pub(crate) fn git_version() -> String {
    format!("v1.{KUBERNETES_MINOR}.0-flotilla.{}", env!("CARGO_PKG_VERSION"))
}

/// The body of `GET /version` (and `/version/`, which the Python client uses).
///
/// The commit and build date come from the build environment when the build sets
/// `FLOTILLA_GIT_COMMIT` / `FLOTILLA_BUILD_DATE`, otherwise fixed placeholders, so the answer
/// is reproducible.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": git_version(),
        "gitCommit": option_env!("FLOTILLA_GIT_COMMIT").unwrap_or("0000000000000000000000000000000000000000"),
        "gitTreeState": "clean",
        "buildDate": option_env!("FLOTILLA_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "none (built with rustc)",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// Legacy `GET /api`: the core group's versions.
///
/// `server_address` is the `host:port` clients should use (upstream reports the address the
/// request arrived on).
pub fn api_versions(server_address: &str) -> Value {
    let versions: Vec<&str> = groups().into_iter().filter(|(g, _)| g.is_empty()).map(|(_, v)| v).collect();
    json!({
        "kind": "APIVersions",
        "versions": versions,
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Served non-core groups in discovery order, each with its versions, preferred first.
fn named_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (group, version) in groups().into_iter().filter(|(g, _)| !g.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => out.push((group, vec![version])),
        }
    }
    out
}

fn group_version_for_discovery(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

/// Legacy `GET /apis`: every non-core group with its versions and preferred version.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = named_groups()
        .into_iter()
        .map(|(group, versions)| {
            json!({
                "name": group,
                "versions": versions.iter().map(|v| group_version_for_discovery(group, v)).collect::<Vec<_>>(),
                "preferredVersion": group_version_for_discovery(group, versions[0]),
            })
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resources_of<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES.iter().filter(move |r| r.group == group && r.version == version)
}

/// A stable per-resource token; clients only compare it for equality across discoveries, so
/// any deterministic function of the stored group/version/kind will do.
fn storage_version_hash(r: &Resource) -> String {
    let key = format!("{}/{}/{}", r.group, r.version, r.kind);
    format!("{:016X}", crate::openapi::fnv1a_64(key.as_bytes()))
}

fn legacy_resource(r: &Resource) -> Value {
    let mut entry = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": crate::resources::VERBS,
        "storageVersionHash": storage_version_hash(r),
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    entry
}

/// A `<plural>/<sub>` entry. Group and version are set only when they differ from the
/// parent's, as upstream does; `kubectl drain` requires `group: policy, version: v1` on
/// `pods/eviction` before it will evict instead of delete.
fn legacy_subresource(r: &Resource, s: &Subresource) -> Value {
    let mut entry = json!({
        "name": format!("{}/{}", r.plural, s.name),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": s.kind,
        "verbs": s.verbs,
    });
    if (s.group, s.version) != (r.group, r.version) {
        entry["group"] = json!(s.group);
        entry["version"] = json!(s.version);
    }
    entry
}

/// Legacy `GET /api/v1` or `GET /apis/<group>/<version>` (`group` is `""` for the core
/// group): an `APIResourceList`, or `None` when this group-version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut entries = Vec::new();
    for r in resources_of(group, version) {
        entries.push(legacy_resource(r));
        entries.extend(r.subresources.iter().map(|s| legacy_subresource(r, s)));
    }
    if entries.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource(r: &Resource) -> Value {
    let subresources: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| json!({"subresource": s.name, "responseKind": gvk(s.group, s.version, s.kind), "verbs": s.verbs}))
        .collect();
    let mut entry = json!({
        "resource": r.plural,
        "responseKind": gvk(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": crate::resources::VERBS,
    });
    if !r.short_names.is_empty() {
        entry["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        entry["categories"] = json!(r.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

fn aggregated_group(group: &str, versions: &[&str]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let resources: Vec<Value> = resources_of(group, v).map(aggregated_resource).collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// Aggregated discovery (`APIGroupDiscoveryList`) for `GET /api` when `core`, else `GET /apis`.
///
/// `api_version` is the second element returned by [`negotiate_aggregated`]
/// ([`API_VERSION_V2`] or [`API_VERSION_V2BETA1`]); the two versions share this shape. The core
/// document has one item named `""`; the other has one item per group, preferred version
/// first (clients take the first version as preferred).
pub fn aggregated(core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        let versions: Vec<&str> = groups().into_iter().filter(|(g, _)| g.is_empty()).map(|(_, v)| v).collect();
        vec![aggregated_group("", &versions)]
    } else {
        named_groups().iter().map(|(group, versions)| aggregated_group(group, versions)).collect()
    };
    json!({"kind": DISCOVERY_KIND, "apiVersion": api_version, "metadata": {}, "items": items})
}

/// Which aggregated discovery version one media range of an `Accept` header asks for.
///
/// Parameters may come in any order, with optional whitespace and quoted values; a range with
/// `q=0` (explicitly not acceptable) or an unparsable `q` asks for nothing.
fn aggregated_version_of(range: &str) -> Option<&'static str> {
    let mut parts = range.split(';');
    let media_type = parts.next()?.trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let (mut g, mut v, mut as_kind) = (None, None, None);
    for param in parts {
        let Some((name, value)) = param.split_once('=') else { continue };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "g" => g = Some(value),
            "v" => v = Some(value),
            "as" => as_kind = Some(value),
            "q" if value.parse::<f32>().ok()? <= 0.0 => return None,
            _ => {}
        }
    }
    if g != Some(DISCOVERY_GROUP) || as_kind != Some(DISCOVERY_KIND) {
        return None;
    }
    match v? {
        "v2" => Some("v2"),
        "v2beta1" => Some("v2beta1"),
        _ => None,
    }
}

/// Content negotiation for `/api` and `/apis`.
///
/// Returns the response Content-Type and the document's `apiVersion` when the `Accept` header
/// lists aggregated discovery (v2 preferred over v2beta1 wherever each appears), or `None` to
/// answer with legacy discovery (no header, `application/json`, `*/*`, protobuf...).
pub fn negotiate_aggregated(accept: Option<&str>) -> Option<(&'static str, &'static str)> {
    let versions: Vec<&str> = accept?.split(',').filter_map(aggregated_version_of).collect();
    if versions.contains(&"v2") {
        Some((CONTENT_TYPE_V2, API_VERSION_V2))
    } else if versions.contains(&"v2beta1") {
        Some((CONTENT_TYPE_V2BETA1, API_VERSION_V2BETA1))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Accept header kubectl 1.32 sends to `/api` and `/apis`.
    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
        application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

    fn names(list: &Value) -> Vec<String> {
        list["resources"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn version_reports_minor_32_and_a_semver_git_version() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        let git = v["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.32.0-flotilla."), "{git}");
        assert_eq!(v["platform"], "linux/amd64");
    }

    #[test]
    fn kubectl_accept_header_negotiates_v2() {
        assert_eq!(negotiate_aggregated(Some(KUBECTL_ACCEPT)), Some((CONTENT_TYPE_V2, API_VERSION_V2)));
    }

    #[test]
    fn negotiation_ignores_parameter_order_spacing_and_quotes() {
        let accept = "application/json; as=APIGroupDiscoveryList; v=\"v2beta1\" ;g=apidiscovery.k8s.io";
        assert_eq!(negotiate_aggregated(Some(accept)), Some((CONTENT_TYPE_V2BETA1, API_VERSION_V2BETA1)));
        // v2 wins even when listed after v2beta1.
        let accept = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList, \
                      APPLICATION/JSON;as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2";
        assert_eq!(negotiate_aggregated(Some(accept)), Some((CONTENT_TYPE_V2, API_VERSION_V2)));
    }

    #[test]
    fn plain_or_foreign_accept_headers_get_legacy_discovery() {
        for accept in [
            None,
            Some("application/json"),
            Some("*/*"),
            Some("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"),
            Some("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"),
            Some("application/json;g=meta.k8s.io;v=v2;as=APIGroupDiscoveryList"),
            Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0"),
            Some("application/json;g=apidiscovery.k8s.io;v=v2"),
        ] {
            assert_eq!(negotiate_aggregated(accept), None, "{accept:?}");
        }
    }

    #[test]
    fn negotiated_content_type_carries_the_parameters_client_go_checks() {
        for (ct, api_version) in [(CONTENT_TYPE_V2, API_VERSION_V2), (CONTENT_TYPE_V2BETA1, API_VERSION_V2BETA1)] {
            // The response type must itself negotiate back to the same version.
            assert_eq!(negotiate_aggregated(Some(ct)), Some((ct, api_version)));
            assert!(api_version.ends_with(ct.split("v=").nth(1).unwrap().split(';').next().unwrap()));
        }
    }

    #[test]
    fn legacy_api_lists_v1_and_the_server_address() {
        let api = api_versions("10.0.0.1:6443");
        assert_eq!(api["kind"], "APIVersions");
        assert_eq!(api["versions"], json!(["v1"]));
        assert_eq!(api["serverAddressByClientCIDRs"][0]["serverAddress"], "10.0.0.1:6443");
    }

    #[test]
    fn legacy_group_list_has_every_non_core_group_with_a_preferred_version() {
        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        let served: Vec<String> =
            groups().iter().filter(|(g, _)| !g.is_empty()).map(|(g, v)| format!("{g}/{v}")).collect();
        let mut listed = Vec::new();
        for g in list["groups"].as_array().unwrap() {
            assert_ne!(g["name"], "");
            let preferred = g["preferredVersion"]["groupVersion"].as_str().unwrap();
            assert!(g["versions"].as_array().unwrap().iter().any(|v| v["groupVersion"] == preferred));
            listed.extend(
                g["versions"].as_array().unwrap().iter().map(|v| v["groupVersion"].as_str().unwrap().to_string()),
            );
        }
        assert_eq!(listed, served);
    }

    #[test]
    fn drain_finds_pods_eviction_in_api_v1() {
        let list = api_resource_list("", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let eviction = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["version"], "v1");
        assert_eq!(eviction["kind"], "Eviction");
        assert_eq!(eviction["verbs"], json!(["create"]));
        // Same-group subresources do not repeat group/version.
        let status = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "pods/status").unwrap();
        assert!(status.get("group").is_none());
    }

    #[test]
    fn scale_subresources_name_autoscaling_v1_scale() {
        let list = api_resource_list("apps", "v1").unwrap();
        assert_eq!(list["groupVersion"], "apps/v1");
        let scale = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments/scale").unwrap();
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
        );
        let deploy = list["resources"].as_array().unwrap().iter().find(|r| r["name"] == "deployments").unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert_eq!(deploy["categories"], json!(["all"]));
        assert_eq!(deploy["singularName"], "deployment");
        assert!(deploy["storageVersionHash"].as_str().is_some_and(|h| !h.is_empty()));
    }

    #[test]
    fn every_resource_appears_in_exactly_one_group_version_list() {
        let lists: Vec<(String, Vec<String>)> =
            groups().into_iter().map(|(g, v)| (format!("{g}/{v}"), names(&api_resource_list(g, v).unwrap()))).collect();
        for r in RESOURCES {
            let holders: Vec<&String> =
                lists.iter().filter(|(_, n)| n.contains(&r.plural.to_string())).map(|(gv, _)| gv).collect();
            assert_eq!(holders, vec![&format!("{}/{}", r.group, r.version)], "{}", r.plural);
            for s in r.subresources {
                let name = format!("{}/{}", r.plural, s.name);
                assert_eq!(lists.iter().filter(|(_, n)| n.contains(&name)).count(), 1, "{name}");
            }
        }
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn aggregated_core_is_one_unnamed_group_with_pods() {
        let doc = aggregated(true, API_VERSION_V2);
        assert_eq!(doc["kind"], "APIGroupDiscoveryList");
        assert_eq!(doc["apiVersion"], API_VERSION_V2);
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v1 = &items[0]["versions"][0];
        assert_eq!((&v1["version"], &v1["freshness"]), (&json!("v1"), &json!("Current")));
        let pods = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "pods").unwrap();
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        let eviction =
            pods["subresources"].as_array().unwrap().iter().find(|s| s["subresource"] == "eviction").unwrap();
        assert_eq!(eviction["responseKind"], json!({"group": "policy", "version": "v1", "kind": "Eviction"}));
        let nodes = v1["resources"].as_array().unwrap().iter().find(|r| r["resource"] == "nodes").unwrap();
        assert_eq!((&nodes["scope"], &nodes["shortNames"]), (&json!("Cluster"), &json!(["no"])));
    }

    #[test]
    fn aggregated_apis_covers_every_resource_once_with_a_response_kind() {
        let doc = aggregated(false, API_VERSION_V2BETA1);
        assert_eq!(doc["apiVersion"], API_VERSION_V2BETA1);
        let mut seen = Vec::new();
        for core in [true, false] {
            for item in aggregated(core, API_VERSION_V2)["items"].as_array().unwrap() {
                assert_eq!(item["metadata"]["name"] == "", core);
                for version in item["versions"].as_array().unwrap() {
                    for r in version["resources"].as_array().unwrap() {
                        assert_eq!(r["responseKind"]["group"], item["metadata"]["name"]);
                        assert!(r["verbs"].as_array().is_some_and(|v| !v.is_empty()));
                        seen.push(r["resource"].as_str().unwrap().to_string());
                    }
                }
            }
        }
        let mut expected: Vec<String> = RESOURCES.iter().map(|r| r.plural.to_string()).collect();
        seen.sort();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn documents_are_identical_across_calls() {
        assert_eq!(aggregated(false, API_VERSION_V2).to_string(), aggregated(false, API_VERSION_V2).to_string());
        assert_eq!(api_resource_list("", "v1"), api_resource_list("", "v1"));
    }
}
