use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use super::*;
use crate::authz::attributes::test_support::res;
use crate::http::authn::Authenticator;
use crate::http::{router, ApiConfig};
use crate::listener::Peer;
use crate::registry::WriteOptions;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo { name: name.into(), uid: String::new(), groups: groups.iter().map(|g| g.to_string()).collect() }
}

#[test]
fn a_node_is_named_system_node_and_in_system_nodes() {
    assert_eq!(node_name(&user("system:node:agent-1", &["system:nodes", "system:authenticated"])), Some("agent-1"));
    assert_eq!(node_name(&user("system:node:agent-1", &["system:authenticated"])), None, "not in the group");
    assert_eq!(node_name(&user("agent-1", &["system:nodes"])), None, "no prefix");
    assert_eq!(node_name(&user("system:node:", &["system:nodes"])), None, "no name");
    assert_eq!(node_name(&user("system:serviceaccount:kube-system:node", &["system:nodes"])), None);
}

#[test]
fn pod_references_are_found_where_upstream_finds_them() {
    let pod = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {
        "imagePullSecrets": [{"name": "pull"}, {"name": ""}],
        "volumes": [
            {"name": "a", "secret": {"secretName": "vol-secret"}},
            {"name": "b", "configMap": {"name": "vol-cm"}},
            {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}},
            {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                    {"configMap": {"name": "proj-cm"}},
                                                    {"downwardAPI": {"items": []}}]}},
            {"name": "e", "emptyDir": {}},
        ],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
        "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "from-cm"}}],
                        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                                {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                                {"name": "Z", "value": "plain"}]}],
        "ephemeralContainers": [{"name": "dbg", "env": [{"name": "W", "valueFrom":
                                 {"secretKeyRef": {"name": "debug-secret", "key": "k"}}}]}],
    }});
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let refs = PodRefs::of(&pod);
    assert_eq!(refs.secrets, set(&["debug-secret", "env-secret", "init-secret", "proj-secret", "pull", "vol-secret"]));
    assert_eq!(refs.config_maps, set(&["env-cm", "from-cm", "proj-cm", "vol-cm"]));
    assert_eq!(refs.claims, set(&["claim"]));
    assert_eq!(PodRefs::of(&json!({"spec": {}})), PodRefs::default());
}

#[test]
fn a_create_by_name_checks_the_body() {
    let nodes = resources::lookup("", "v1", "nodes").expect("served");
    let leases = resources::lookup("coordination.k8s.io", "v1", "leases").expect("served");
    let named = own("agent-1", "nodes", "create", "").expect("a create").expect("with a name to check");
    assert_eq!(named.name(), "agent-1");
    assert!(named.check(nodes, &json!({"metadata": {"name": "agent-1"}})).is_ok());
    let err = named.check(nodes, &json!({"metadata": {"name": "agent-2"}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"nodes "agent-2" is forbidden: node "agent-1" is not allowed to modify node "agent-2""#
    );
    let generated = named.check(nodes, &json!({"metadata": {"generateName": "agent-"}}));
    assert!(matches!(generated, Err(ApiError::Forbidden(_))), "a generated name is not the node's");
    let err = named.check(leases, &json!({"metadata": {"name": "agent-2"}})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "leases.coordination.k8s.io \"agent-2\" is forbidden: can only access node lease with the same name as the \
         requesting node"
    );
    assert_eq!(own("agent-1", "nodes", "update", "agent-1"), Ok(None));
    assert!(own("agent-1", "nodes", "delete", "agent-2").is_err());
    assert!(own("agent-1", "nodes", "deletecollection", "").is_err(), "not every node at once");
}

async fn create(registry: &Registry, plural: &str, ns: Option<&str>, obj: Value) {
    let group = if plural == "leases" { "coordination.k8s.io" } else { "" };
    let res = resources::lookup(group, "v1", plural).expect("served");
    registry.create(res, ns, obj, &WriteOptions::default()).await.expect("created");
}

fn pod(name: &str, node: &str, volumes: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": node, "volumes": volumes,
                    "containers": [{"name": "c", "image": "busybox",
                                    "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": format!("{name}-cm"),
                                                                                            "key": "k"}}}]}]}})
}

/// Nodes agent-1 and agent-2; pod p1 on agent-1 uses Secret s1, ConfigMap p1-cm and claim
/// c1 (bound to volume pv1); pod p2 on agent-2 uses s2, p2-cm and c2 (bound to pv2).
async fn cluster(dir: &std::path::Path) -> (Arc<flotilla_store::StoreNode>, Registry) {
    let (store, registry) = crate::testing::solo_registry(dir).await;
    for n in ["agent-1", "agent-2"] {
        create(&registry, "nodes", None, json!({"metadata": {"name": n}})).await;
    }
    for (p, n) in [("p1", "agent-1"), ("p2", "agent-2")] {
        let i = &p[1..];
        let volumes = json!([{"name": "s", "secret": {"secretName": format!("s{i}")}},
                             {"name": "c", "persistentVolumeClaim": {"claimName": format!("c{i}")}}]);
        create(&registry, "pods", Some("default"), pod(p, n, volumes)).await;
        let secret = json!({"metadata": {"name": format!("s{i}")}, "data": {}});
        create(&registry, "secrets", Some("default"), secret).await;
        let claim = json!({"metadata": {"name": format!("c{i}")},
                           "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": format!("pv{i}"),
                                    "resources": {"requests": {"storage": "1Gi"}}}});
        create(&registry, "persistentvolumeclaims", Some("default"), claim).await;
    }
    (store, registry)
}

#[tokio::test]
async fn a_node_reads_what_its_pods_use_and_nothing_else_of_that_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, registry) = cluster(dir.path()).await;
    let ask = |a: Attributes| {
        let registry = registry.clone();
        async move { authorize(&registry, "agent-1", &a).await.expect("decided") }
    };
    let unrelated = Decision::NoOpinion("no relationship found between node 'agent-1' and this object".into());
    for (resource, ours, theirs) in
        [("secrets", "s1", "s2"), ("configmaps", "p1-cm", "p2-cm"), ("persistentvolumeclaims", "c1", "c2")]
    {
        assert_eq!(ask(res("get", "", resource, "", "default", ours)).await, Decision::Allow, "{resource}");
        assert_eq!(ask(res("get", "", resource, "", "default", theirs)).await, unrelated, "{resource}");
        assert_eq!(ask(res("get", "", resource, "", "other", ours)).await, unrelated, "{resource} in another ns");
    }
    assert_eq!(ask(res("get", "", "persistentvolumes", "", "", "pv1")).await, Decision::Allow);
    assert_eq!(ask(res("get", "", "persistentvolumes", "", "", "pv2")).await, unrelated);
    let only_get = Decision::NoOpinion("can only get individual resources of this type".into());
    assert_eq!(ask(res("list", "", "secrets", "", "default", "")).await, only_get);
    assert_eq!(ask(res("watch", "", "secrets", "", "", "")).await, only_get);
    assert_eq!(ask(res("update", "", "secrets", "", "default", "s1")).await, only_get);
    // Tokens: only for the ServiceAccount its pods run as (p1 runs as `default`).
    assert_eq!(ask(res("create", "", "serviceaccounts", "token", "default", "default")).await, Decision::Allow);
    assert_eq!(ask(res("create", "", "serviceaccounts", "token", "default", "builder")).await, unrelated);
    assert_eq!(ask(res("create", "", "serviceaccounts", "token", "other", "default")).await, unrelated);
    assert_eq!(
        ask(res("get", "", "serviceaccounts", "", "default", "default")).await,
        Decision::NoOpinion(String::new())
    );
    // The reference is read at request time: once p1 is gone, so is s1.
    let pods = resources::lookup("", "v1", "pods").expect("served");
    let now = crate::registry::DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
    registry.delete(pods, Some("default"), "p1", &now).await.expect("deleted");
    assert_eq!(ask(res("get", "", "secrets", "", "default", "s1")).await, unrelated);

    // What the agent needs everywhere, and its Lease.
    for allowed in [
        res("list", "", "pods", "", "", ""),
        res("watch", "", "services", "", "", ""),
        res("get", "", "endpoints", "", "default", "kubernetes"),
        res("get", "", "nodes", "", "", "agent-2"),
        res("update", "", "pods", "status", "default", "p2"),
        res("create", "", "events", "", "web", ""),
        res("patch", "events.k8s.io", "events", "", "web", "e"),
        res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "agent-1"),
        res("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""),
        res("get", "", "secrets", "", "kube-system", "flotilla-node-proxy-token"),
    ] {
        assert_eq!(ask(allowed.clone()).await, Decision::Allow, "{allowed:?}");
    }
    let none = Decision::NoOpinion(String::new());
    for rbac_decides in [
        res("create", "", "pods", "", "default", ""),
        res("get", "", "pods", "log", "default", "p2"),
        res("list", "", "namespaces", "", "", ""),
        res("create", "", "pods", "exec", "default", "p2"),
        res("list", "apps", "deployments", "", "", ""),
    ] {
        assert_eq!(ask(rbac_decides.clone()).await, none, "{rbac_decides:?}");
    }
    let other_lease = ask(res("get", "coordination.k8s.io", "leases", "", "kube-node-lease", "agent-2")).await;
    assert_eq!(other_lease, Decision::NoOpinion(LEASE_NAME_REASON.into()));
    let elsewhere = ask(res("get", "coordination.k8s.io", "leases", "", "default", "agent-1")).await;
    assert!(matches!(elsewhere, Decision::NoOpinion(why) if why.contains("kube-node-lease")));
    let token = ask(res("create", "", "secrets", "", "kube-system", "")).await;
    assert!(matches!(token, Decision::AllowNamed(n) if n.name() == "flotilla-node-proxy-token"));
}

#[tokio::test]
async fn the_restriction_refuses_writes_to_other_nodes_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, registry) = cluster(dir.path()).await;
    let restrict = |a: Attributes| {
        let registry = registry.clone();
        async move { restrict(&registry, "agent-1", &a).await }
    };
    let refused = |r: ApiResult<Option<NamedCreate>>| match r {
        Err(ApiError::Forbidden(why)) => why,
        other => panic!("expected a 403, got {other:?}"),
    };
    for ok in [
        res("patch", "", "nodes", "", "", "agent-1"),
        res("update", "", "nodes", "status", "", "agent-1"),
        res("delete", "", "nodes", "", "", "agent-1"),
        res("patch", "", "pods", "status", "default", "p1"),
        res("delete", "", "pods", "", "default", "p1"),
        res("update", "coordination.k8s.io", "leases", "", "kube-node-lease", "agent-1"),
        res("get", "", "nodes", "", "", "agent-2"),
        res("patch", "", "secrets", "", "default", "s2"),
    ] {
        assert_eq!(restrict(ok.clone()).await.expect("not restricted"), None, "{ok:?}");
    }
    assert_eq!(
        refused(restrict(res("patch", "", "nodes", "", "", "agent-2")).await),
        r#"nodes "agent-2" is forbidden: node "agent-1" is not allowed to modify node "agent-2""#
    );
    assert_eq!(
        refused(restrict(res("update", "", "pods", "status", "default", "p2")).await),
        r#"pods "p2" is forbidden: node "agent-1" can only update pod status for pods with spec.nodeName set to itself"#
    );
    assert_eq!(
        refused(restrict(res("delete", "", "pods", "", "default", "p2")).await),
        r#"pods "p2" is forbidden: node "agent-1" can only delete pods with spec.nodeName set to itself"#
    );
    assert!(refused(restrict(res("delete", "", "nodes", "", "", "agent-2")).await).contains("not allowed to modify"));
    assert!(refused(restrict(res("create", "", "pods", "", "default", "")).await).contains("can only delete pods"));
    assert!(refused(restrict(res("patch", "", "pods", "", "default", "p1")).await).contains("can only delete pods"));
    // Other pod subresources are never a node's to write, even for its own pods.
    for sub in ["binding", "exec", "ephemeralcontainers"] {
        let why = refused(restrict(res("create", "", "pods", sub, "default", "p1")).await);
        assert!(why.contains(&format!("may not write pods/{sub}")), "{why}");
    }
    let lease =
        refused(restrict(res("delete", "coordination.k8s.io", "leases", "", "kube-node-lease", "agent-2")).await);
    assert!(lease.ends_with(LEASE_NAME_REASON), "{lease}");
    let lease = refused(restrict(res("create", "coordination.k8s.io", "leases", "", "default", "")).await);
    assert!(lease.contains("can only access leases in the \"kube-node-lease\" system namespace"), "{lease}");
    let missing = restrict(res("delete", "", "pods", "", "default", "ghost")).await;
    assert!(matches!(missing, Err(ApiError::NotFound(_))), "a missing pod is 404, as upstream: {missing:?}");
    // A create names its object in the body: checked there.
    let named = restrict(res("create", "coordination.k8s.io", "leases", "", "kube-node-lease", "")).await;
    assert_eq!(named.expect("allowed").map(|n| n.name().to_string()).as_deref(), Some("agent-1"));
    let named = restrict(res("create", "", "nodes", "", "", "")).await;
    assert_eq!(named.expect("allowed").map(|n| n.name().to_string()).as_deref(), Some("agent-1"));
}

const TOKENS: &str = "root,root,,system:masters\n\
                      n1,system:node:agent-1,,system:nodes\n\
                      bare,agent-1,,system:nodes\n\
                      jane,jane,,dev\n";

/// The router with authentication by the tokens above, over `registry`.
fn app(registry: Registry, dir: &std::path::Path) -> axum::Router {
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, TOKENS).expect("token file");
    let authn = Authenticator::new(Some(&tokens), false).expect("valid token file");
    router(registry, ApiConfig { authn: Some(Arc::new(authn)), ..ApiConfig::default() })
}

/// `method path` as the holder of `token`, with a JSON (or merge patch) body: status and
/// the Status message (or the object).
async fn call(app: &axum::Router, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let content_type = if method == Method::PATCH { "application/merge-patch+json" } else { "application/json" };
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, content_type)
        .extension(ConnectInfo(Peer::address(SocketAddr::from(([127, 0, 0, 1], 5000)))));
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let resp = app.clone().oneshot(req.body(body).expect("request")).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn bind_cluster_admin(registry: &Registry, user: &str) {
    let res = resources::lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings").expect("served");
    let binding = json!({"metadata": {"name": format!("{user}-admin")},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                     "name": "cluster-admin"},
                         "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}]});
    registry.create(res, None, binding, &WriteOptions::default()).await.expect("bound");
}

#[tokio::test]
async fn requests_by_a_node_go_through_the_node_authorizer_rbac_and_the_restriction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, registry) = cluster(dir.path()).await;
    crate::bootstrap::ensure_rbac_defaults(registry.clone(), tokio_util::sync::CancellationToken::new()).await;
    let app = app(registry.clone(), dir.path());
    let get = |path: &'static str, token: &'static str| {
        let app = app.clone();
        async move { call(&app, token, Method::GET, path, None).await }
    };
    assert_eq!(get("/api/v1/namespaces/default/secrets/s1", "n1").await.0, StatusCode::OK);
    let (code, body) = get("/api/v1/namespaces/default/secrets/s2", "n1").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(
        body["message"],
        "secrets \"s2\" is forbidden: User \"system:node:agent-1\" cannot get resource \"secrets\" in API group \"\" \
         in the namespace \"default\": no relationship found between node 'agent-1' and this object"
    );
    assert_eq!(get("/api/v1/namespaces/default/secrets", "n1").await.0, StatusCode::FORBIDDEN);
    // Others are unaffected: jane gets RBAC's answer, and a system:nodes member without the
    // node prefix is no node at all.
    let (code, body) = get("/api/v1/namespaces/default/secrets/s1", "jane").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().is_some_and(|m| m.ends_with("in the namespace \"default\"")), "{body}");
    assert_eq!(get("/api/v1/namespaces/default/secrets/s1", "bare").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get("/api/v1/nodes", "bare").await.0, StatusCode::FORBIDDEN);
    assert_eq!(get("/api/v1/nodes", "n1").await.0, StatusCode::OK);
    assert_eq!(get("/api/v1/pods?fieldSelector=spec.nodeName%3Dagent-1", "n1").await.0, StatusCode::OK);

    let write = |method: Method, path: &'static str, body: Value| {
        let app = app.clone();
        async move { call(&app, "n1", method, path, Some(body)).await }
    };
    let label = json!({"metadata": {"labels": {"x": "y"}}});
    assert_eq!(write(Method::PATCH, "/api/v1/nodes/agent-1", label.clone()).await.0, StatusCode::OK);
    let (code, body) = write(Method::PATCH, "/api/v1/nodes/agent-2", label.clone()).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some(r#"nodes "agent-2" is forbidden: node "agent-1" is not allowed to modify node "agent-2""#)
        )
    );
    let running = json!({"status": {"phase": "Running"}});
    assert_eq!(
        write(Method::PATCH, "/api/v1/namespaces/default/pods/p1/status", running.clone()).await.0,
        StatusCode::OK
    );
    let (code, _) = write(Method::PATCH, "/api/v1/namespaces/default/pods/p2/status", running).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    // Leases and Nodes: a create names its object in the body, which is checked.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                    "metadata": {"name": name}, "spec": {"holderIdentity": name}})
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let (code, body) = write(Method::POST, leases, lease("agent-2")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(write(Method::POST, leases, lease("agent-1")).await.0, StatusCode::CREATED);
    let mine = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/agent-1";
    assert_eq!(write(Method::PATCH, mine, json!({"spec": {"leaseDurationSeconds": 40}})).await.0, StatusCode::OK);
    let elsewhere = "/apis/coordination.k8s.io/v1/namespaces/default/leases";
    assert_eq!(write(Method::POST, elsewhere, lease("agent-1")).await.0, StatusCode::FORBIDDEN);
    let node = |name: &str| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    let (code, body) = write(Method::POST, "/api/v1/nodes", node("agent-3")).await;
    assert_eq!(
        (code, body["message"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some(r#"nodes "agent-3" is forbidden: node "agent-1" is not allowed to modify node "agent-3""#)
        )
    );
    let nodes = resources::lookup("", "v1", "nodes").expect("served");
    assert!(matches!(registry.get(nodes, None, "agent-3").await, Err(ApiError::NotFound(_))), "nothing stored");

    // Events anywhere; the proxy token, but no other Secret.
    let event = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Node", "name": "agent-1"},
                       "reason": "Starting"});
    assert_eq!(write(Method::POST, "/api/v1/namespaces/default/events", event).await.0, StatusCode::CREATED);
    let secret = |name: &str| json!({"metadata": {"name": name}, "data": {}});
    let (code, body) = write(Method::POST, "/api/v1/namespaces/kube-system/secrets", secret("mine")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let token = secret("flotilla-node-proxy-token");
    assert_eq!(write(Method::POST, "/api/v1/namespaces/kube-system/secrets", token).await.0, StatusCode::CREATED);

    // RBAC may grant a node more reads, never another node's objects.
    bind_cluster_admin(&registry, "system:node:agent-1").await;
    assert_eq!(get("/api/v1/namespaces/default/secrets/s2", "n1").await.0, StatusCode::OK);
    assert_eq!(write(Method::PATCH, "/api/v1/nodes/agent-2", label).await.0, StatusCode::FORBIDDEN);
    assert_eq!(write(Method::DELETE, "/api/v1/namespaces/default/pods/p2", json!({})).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn access_reviews_answer_as_requests_are_decided() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, registry) = cluster(dir.path()).await;
    crate::bootstrap::ensure_rbac_defaults(registry.clone(), tokio_util::sync::CancellationToken::new()).await;
    let app = app(registry, dir.path());
    let review = |token: &'static str, attrs: Value| {
        let app = app.clone();
        async move {
            let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                              "spec": {"resourceAttributes": attrs}});
            let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
            let (code, answer) = call(&app, token, Method::POST, path, Some(body)).await;
            assert_eq!(code, StatusCode::CREATED, "{answer}");
            answer["status"].clone()
        }
    };
    let secret = |name: &str| json!({"verb": "get", "resource": "secrets", "namespace": "default", "name": name});
    assert_eq!(review("n1", secret("s1")).await["allowed"], true);
    let s2 = review("n1", secret("s2")).await;
    assert_eq!(
        s2,
        json!({"allowed": false,
                          "reason": "no relationship found between node 'agent-1' and this object"})
    );
    assert_eq!(review("jane", secret("s1")).await, json!({"allowed": false}));
    assert_eq!(review("bare", secret("s1")).await, json!({"allowed": false}));
    let patch_node = |name: &str| json!({"verb": "patch", "resource": "nodes", "name": name});
    assert_eq!(review("n1", patch_node("agent-1")).await["allowed"], true);
    let other = review("n1", patch_node("agent-2")).await;
    assert_eq!(other["allowed"], false);
    assert!(other["reason"].as_str().is_some_and(|r| r.contains("not allowed to modify node")), "{other}");
    assert_eq!(review("root", patch_node("agent-2")).await["allowed"], true);
}

/// Every request flotilla's agent makes (agent/src: node registration and status, its
/// Lease, the node-proxy token, API server discovery, the pod and service watches, pod
/// status and deletion, the objects a pod's volumes and env read) is let through for its
/// own node. Not found or conflict are fine here: only authorization is checked.
#[tokio::test]
async fn every_request_the_agent_makes_is_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, registry) = cluster(dir.path()).await;
    let app = app(registry, dir.path());
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "agent-1"}});
    let token = json!({"metadata": {"name": "flotilla-node-proxy-token"}, "data": {"token": "MTIz"}});
    let event = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node", "name": "agent-1"}});
    let requests: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::POST, "/api/v1/nodes", Some(json!({"metadata": {"name": "agent-1"}}))),
        (Method::GET, "/api/v1/nodes/agent-1", None),
        (Method::GET, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/agent-1", None),
        (Method::POST, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", Some(lease)),
        (Method::GET, "/api/v1/namespaces/kube-system/secrets/flotilla-node-proxy-token", None),
        (Method::POST, "/api/v1/namespaces/kube-system/secrets", Some(token)),
        (Method::GET, "/api/v1/namespaces/default/endpoints/kubernetes", None),
        (Method::GET, "/api/v1/pods?fieldSelector=spec.nodeName%3Dagent-1", None),
        (Method::GET, "/api/v1/pods?fieldSelector=spec.nodeName%3Dagent-1&watch=true&timeoutSeconds=1", None),
        (Method::GET, "/api/v1/services", None),
        (Method::GET, "/api/v1/services?watch=true&timeoutSeconds=1", None),
        (Method::GET, "/api/v1/endpoints", None),
        (Method::GET, "/api/v1/endpoints?watch=true&timeoutSeconds=1", None),
        (Method::GET, "/api/v1/namespaces/default/pods/p1", None),
        (Method::GET, "/api/v1/namespaces/default/secrets/s1", None),
        (Method::GET, "/api/v1/namespaces/default/configmaps/p1-cm", None),
        (Method::GET, "/api/v1/namespaces/default/persistentvolumeclaims/c1", None),
        (Method::GET, "/api/v1/persistentvolumes/pv1", None),
        (Method::POST, "/api/v1/namespaces/default/events", Some(event)),
        // Authorized; this server issues no tokens (503), which is the handler's business.
        (Method::POST, "/api/v1/namespaces/default/serviceaccounts/default/token", Some(json!({"spec": {}}))),
    ];
    for (method, path, body) in requests {
        let (code, answer) = call(&app, "n1", method.clone(), path, body).await;
        assert!(!matches!(code.as_u16(), 401 | 403), "{method} {path}: {code} {answer}");
    }
    // Writes of what it read: its Node and status, its Lease, its pod's status; then the
    // pod's deletion once stopped.
    for path in [
        "/api/v1/nodes/agent-1",
        "/api/v1/nodes/agent-1/status",
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/agent-1",
        "/api/v1/namespaces/default/pods/p1/status",
    ] {
        let (_, current) = call(&app, "n1", Method::GET, path.trim_end_matches("/status"), None).await;
        let (code, answer) = call(&app, "n1", Method::PUT, path, Some(current)).await;
        assert_eq!(code, StatusCode::OK, "PUT {path}: {answer}");
    }
    let delete = json!({"gracePeriodSeconds": 0});
    let (code, answer) = call(&app, "n1", Method::DELETE, "/api/v1/namespaces/default/pods/p1", Some(delete)).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
}
