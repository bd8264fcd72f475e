use std::net::SocketAddr;

use axum::body::Body;
use axum::http::StatusCode;
use flotilla_pki::CertIdentity;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::http::{router, ApiConfig};

const TOKENS: &str = "# bootstrap tokens\n\
                      s3cret,alice,uid-1,\"dev,ops\"\n\
                      \n\
                      other,bob,uid-2\n\
                      root-token,root,uid-0,system:masters\n";

fn authenticator(anonymous: bool) -> Authenticator {
    Authenticator { tokens: parse_token_file(TOKENS).expect("valid file"), anonymous, bootstrap_tokens: false }
}

fn names(user: &UserInfo) -> (&str, &str, Vec<&str>) {
    (user.name.as_str(), user.uid.as_str(), user.groups.iter().map(String::as_str).collect())
}

#[test]
fn the_token_file_gives_users_their_uid_and_groups_plus_authenticated() {
    let a = authenticator(false);
    let alice = a.authenticate(None, Some("s3cret"), "/api").expect("alice");
    assert_eq!(names(&alice), ("alice", "uid-1", vec!["dev", "ops", AUTHENTICATED]));
    let bob = a.authenticate(None, Some("other"), "/api").expect("bob");
    assert_eq!(names(&bob), ("bob", "uid-2", vec![AUTHENTICATED]));
}

#[test]
fn a_certificate_wins_over_a_token_and_carries_its_groups() {
    let cert = CertIdentity { user: "admin".into(), groups: vec!["system:masters".into()] };
    let user = authenticator(false).authenticate(Some(&cert), Some("wrong"), "/api").expect("by certificate");
    assert_eq!(names(&user), ("admin", "", vec!["system:masters", AUTHENTICATED]));
}

#[test]
fn a_bad_token_is_refused_even_when_anonymous_requests_are_allowed() {
    assert!(authenticator(true).authenticate(None, Some("nope"), "/api").is_err());
    assert!(authenticator(false).authenticate(None, Some("nope"), "/readyz").is_err());
}

#[test]
fn without_credentials_only_the_public_paths_unless_anonymous_is_on() {
    let closed = authenticator(false);
    assert!(closed.authenticate(None, None, "/api/v1/pods").is_err());
    assert!(closed.authenticate(None, None, "/metrics").is_err());
    for path in ["/readyz", "/livez", "/healthz", "/version"] {
        assert_eq!(closed.authenticate(None, None, path).expect(path), UserInfo::anonymous());
    }
    let open = authenticator(true);
    assert_eq!(open.authenticate(None, None, "/api/v1/pods").expect("anonymous"), UserInfo::anonymous());
}

#[test]
fn malformed_token_files_are_refused_with_the_line() {
    for (text, want) in [
        ("tok,alice\n", "line 1: want token,user,uid"),
        ("a,b,c\n\"unclosed,u,1\n", "line 2: a quoted field is not closed"),
        ("t,u,1\nt,v,2\n", "line 2: the token is given twice"),
        (",u,1\n", "line 1: the token and the user must not be empty"),
        ("t,u,1,g,h\n", "line 1: more than four columns"),
        ("t,u,1,\"g\"x\n", "line 1: text after a quoted field"),
    ] {
        let err = parse_token_file(text).expect_err(text);
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let quoted = parse_token_file("\"to,ken\",\"say \"\"hi\"\"\",7\n").expect("quotes");
    assert_eq!(quoted["to,ken"].name, "say \"hi\"");
}

#[test]
fn debug_output_never_shows_a_token() {
    let shown = format!("{:?}", authenticator(false));
    assert!(!shown.contains("s3cret") && shown.contains("tokens: 3"), "{shown}");
}

#[test]
fn a_missing_token_file_is_an_error_naming_it() {
    let err = Authenticator::new(Some(Path::new("/nonexistent/tokens.csv")), false).expect_err("missing");
    assert!(err.contains("/nonexistent/tokens.csv"), "{err}");
}

async fn get(app: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = axum::http::Request::builder().uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.extension(ConnectInfo(Peer::address(SocketAddr::from(([127, 0, 0, 1], 5000)))));
    let resp = app.clone().oneshot(req.body(Body::empty()).expect("request")).await.expect("infallible");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_router_answers_401_as_upstream_and_serves_known_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    let config = ApiConfig { authn: Some(Arc::new(authenticator(false))), ..ApiConfig::default() };
    let app = router(registry, config);
    let (code, body) = get(&app, "/api/v1/namespaces", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!((body["reason"].as_str(), body["message"].as_str()), (Some("Unauthorized"), Some("Unauthorized")));
    assert_eq!(get(&app, "/api/v1/namespaces", Some("nope")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&app, "/api/v1/namespaces", Some("root-token")).await.0, StatusCode::OK);
    // Authenticated, but nothing binds alice to a role: 403 naming her, not 401.
    let (code, body) = get(&app, "/api/v1/namespaces", Some("s3cret")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("User \"alice\" cannot list")), "{body}");
    assert_eq!(get(&app, "/version", None).await.0, StatusCode::OK);
    // Another scheme is not a credential, and is not downgraded to anonymous either.
    let req = axum::http::Request::get("/version").header(header::AUTHORIZATION, "Basic YWxpY2U6cHc=");
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let req = axum::http::Request::get("/api/v1/namespaces").header(header::AUTHORIZATION, "bearer root-token");
    let resp = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "the scheme is case-insensitive");
    // An encoded '/' would be authorized as a pod and served as its status: refused.
    let req = axum::http::Request::put("/api/v1/namespaces/default/pods/p%2Fstatus")
        .header(header::AUTHORIZATION, "Bearer root-token");
    let resp = app.clone().oneshot(req.body(Body::from("{}")).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn whoami_reports_the_authenticated_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    // Asking who one is needs the default system:basic-user binding.
    crate::bootstrap::ensure_rbac_defaults(registry.clone(), tokio_util::sync::CancellationToken::new()).await;
    let config = ApiConfig { authn: Some(Arc::new(authenticator(false))), ..ApiConfig::default() };
    let app = router(registry, config);
    let req = axum::http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = serde_json::from_slice(&resp.into_body().collect().await.expect("body").to_bytes()).unwrap();
    let info = &body["status"]["userInfo"];
    assert_eq!((info["username"].as_str(), info["uid"].as_str()), (Some("alice"), Some("uid-1")));
    assert_eq!(info["groups"], serde_json::json!(["dev", "ops", AUTHENTICATED]));
}
