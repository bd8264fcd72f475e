use serde_json::json;

use super::*;
use crate::authz::attributes::test_support::res;
use crate::authz::bootstrap_roles;
use crate::registry::WriteOptions;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
}

#[test]
fn rules_match_verbs_groups_resources_subresources_and_names() {
    let rule = Rule::from_json(&json!({"apiGroups": ["", "apps"], "resources": ["pods", "deployments/scale"],
                                       "verbs": ["get", "list"]}));
    assert!(rule.allows(&res("get", "", "pods", "", "a", "p")));
    assert!(rule.allows(&res("list", "apps", "pods", "", "a", "")));
    assert!(!rule.allows(&res("delete", "", "pods", "", "a", "p")), "verb");
    assert!(!rule.allows(&res("get", "batch", "pods", "", "a", "p")), "group");
    assert!(!rule.allows(&res("get", "", "pods", "log", "a", "p")), "a subresource is its own resource");
    assert!(rule.allows(&res("get", "apps", "deployments", "scale", "a", "web")));
    assert!(!rule.allows(&res("get", "apps", "deployments", "", "a", "web")));

    let named = Rule::from_json(&json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"],
                                        "verbs": ["*"]}));
    assert!(named.allows(&res("update", "", "configmaps", "", "a", "one")));
    assert!(!named.allows(&res("update", "", "configmaps", "", "a", "two")));
    assert!(!named.allows(&res("list", "", "configmaps", "", "a", "")), "resourceNames never allow a collection");

    let wild = Rule::from_json(&json!({"apiGroups": ["*"], "resources": ["*/status", "pods/*"], "verbs": ["patch"]}));
    assert!(wild.allows(&res("patch", "apps", "deployments", "status", "a", "web")));
    assert!(!wild.allows(&res("patch", "", "pods", "exec", "a", "p")), "`pods/*` is no pattern upstream");
    assert!(!wild.allows(&res("patch", "", "pods", "", "a", "p")));
    let star_name = Rule::from_json(&json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["*"],
                                            "verbs": ["get"]}));
    assert!(!star_name.allows(&res("get", "", "secrets", "", "a", "s")), "resourceNames compare literally");

    let urls = Rule::from_json(&json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
    assert!(urls.allows(&Attributes::NonResource { verb: "get".into(), path: "/healthz".into() }));
    assert!(urls.allows(&Attributes::NonResource { verb: "get".into(), path: "/apis/apps/v1".into() }));
    assert!(!urls.allows(&Attributes::NonResource { verb: "get".into(), path: "/metrics".into() }));
    assert!(!urls.allows(&res("get", "", "pods", "", "a", "p")), "URL rules never allow resources");
}

#[test]
fn subjects_name_users_groups_and_service_accounts() {
    let jane = user("jane", &["dev", "system:authenticated"]);
    assert!(subject_matches(&json!({"kind": "User", "name": "jane"}), &jane, ""));
    assert!(subject_matches(&json!({"kind": "Group", "name": "dev"}), &jane, ""));
    assert!(!subject_matches(&json!({"kind": "Group", "name": "jane"}), &jane, ""));
    let sa = user("system:serviceaccount:ci:builder", &[]);
    assert!(subject_matches(&json!({"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}), &sa, ""));
    assert!(subject_matches(&json!({"kind": "ServiceAccount", "name": "builder"}), &sa, "ci"), "binding's namespace");
    assert!(!subject_matches(&json!({"kind": "ServiceAccount", "name": "builder"}), &sa, "other"));
    let nameless = user("system:serviceaccount::builder", &[]);
    assert!(!subject_matches(&json!({"kind": "ServiceAccount", "name": "builder"}), &nameless, ""), "no namespace");
}

#[test]
fn the_default_roles_and_bindings_are_valid() {
    for role in bootstrap_roles::cluster_roles() {
        assert_eq!(crate::validation::validate_create("clusterroles", &role), vec![], "{}", role["metadata"]["name"]);
    }
    for binding in bootstrap_roles::cluster_role_bindings() {
        let name = binding["metadata"]["name"].clone();
        assert_eq!(crate::validation::validate_create("clusterrolebindings", &binding), vec![], "{name}");
    }
}

async fn create(registry: &Registry, plural: &str, ns: Option<&str>, obj: serde_json::Value) {
    let res = resources::lookup("rbac.authorization.k8s.io", "v1", plural).expect("served");
    registry.create(res, ns, obj, &WriteOptions::default()).await.expect("created");
}

#[tokio::test]
async fn bindings_in_the_store_decide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    for role in bootstrap_roles::cluster_roles() {
        create(&registry, "clusterroles", None, role).await;
    }
    let namespaces = resources::lookup("", "v1", "namespaces").expect("served");
    registry.create(namespaces, None, json!({"metadata": {"name": "team"}}), &WriteOptions::default()).await.unwrap();
    let jane = user("jane", &["dev", "system:authenticated"]);
    let list_pods = res("list", "", "pods", "", "team", "");
    assert!(!authorize(&registry, &jane, &list_pods).await.unwrap(), "nothing is bound to jane yet");
    assert!(authorize(&registry, &user("root", &[MASTERS]), &list_pods).await.unwrap(), "system:masters");

    // `view` bound to group dev in namespace team: reads there, nowhere else, no writes, no Secrets.
    create(
        &registry,
        "rolebindings",
        Some("team"),
        json!({"metadata": {"name": "dev-view", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "dev"}]}),
    )
    .await;
    assert!(authorize(&registry, &jane, &list_pods).await.unwrap());
    assert!(!authorize(&registry, &jane, &res("list", "", "pods", "", "other", "")).await.unwrap());
    assert!(!authorize(&registry, &jane, &res("create", "", "pods", "", "team", "")).await.unwrap());
    assert!(!authorize(&registry, &jane, &res("get", "", "secrets", "", "team", "s")).await.unwrap());

    // A Role of the namespace, bound to the user by name; and a binding to a missing role.
    create(
        &registry,
        "roles",
        Some("team"),
        json!({"metadata": {"name": "cm-writer", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]}),
    )
    .await;
    create(
        &registry,
        "rolebindings",
        Some("team"),
        json!({"metadata": {"name": "jane-cm", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
                            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "ghost"}]}),
    )
    .await;
    create(
        &registry,
        "clusterrolebindings",
        None,
        json!({"metadata": {"name": "jane-missing"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "no-such-role"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]}),
    )
    .await;
    assert!(authorize(&registry, &jane, &res("create", "", "configmaps", "", "team", "")).await.unwrap());
    assert!(!authorize(&registry, &jane, &res("delete", "", "configmaps", "", "team", "c")).await.unwrap());
    assert!(!authorize(&registry, &jane, &res("get", "", "nodes", "", "", "n1")).await.unwrap());
}
