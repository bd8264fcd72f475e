use std::time::Duration;

use flotilla_pki::jwt::{new_signing_key_pem, JwtSigner};
use serde_json::json;

use super::authenticate::{check_objects, check_token, Claims};
use super::*;
use crate::registry::WriteOptions;
use crate::resources;

const NOW: i64 = 1_800_000_000;

fn accounts() -> ServiceAccounts {
    let signer = JwtSigner::from_pem(&new_signing_key_pem().unwrap()).unwrap();
    let keys = vec![signer.verifying_key().clone()];
    ServiceAccounts {
        issuer: DEFAULT_ISSUER.into(),
        audiences: vec![DEFAULT_ISSUER.into()],
        signer: Some(signer),
        keys,
        max_expiration: None,
    }
}

fn grant(bound: Option<Bound>) -> Grant {
    Grant {
        namespace: "ci".into(),
        name: "builder".into(),
        uid: "sa-uid".into(),
        audiences: vec![DEFAULT_ISSUER.into()],
        lifetime: Duration::from_secs(3600),
        bound,
        node: Some(("n1".into(), "node-uid".into())),
    }
}

#[test]
fn an_issued_token_names_its_account_and_bound_pod() {
    let sa = accounts();
    let pod = Bound { kind: "Pod".into(), name: "p".into(), uid: "pod-uid".into() };
    let (token, exp) = sa.issue(&grant(Some(pod.clone())), NOW).unwrap();
    assert_eq!(exp, NOW + 3600);
    let claims = check_token(&sa, &token, NOW + 10).unwrap();
    assert_eq!(
        claims,
        Claims { namespace: "ci".into(), name: "builder".into(), uid: "sa-uid".into(), bound: Some(pod) }
    );
    let user = claims.user();
    assert_eq!(user.name, "system:serviceaccount:ci:builder");
    assert_eq!(user.groups, ["system:serviceaccounts", "system:serviceaccounts:ci", "system:authenticated"]);
}

#[test]
fn expired_early_foreign_or_misaddressed_tokens_are_refused() {
    let sa = accounts();
    let (token, _) = sa.issue(&grant(None), NOW).unwrap();
    assert_eq!(check_token(&sa, &token, NOW + 3600), Err("the token has expired"));
    assert_eq!(check_token(&sa, &token, NOW - 61), Err("the token is not valid yet"));
    assert!(check_token(&sa, &token, NOW - 60).is_ok(), "a minute of clock skew is fine");

    let other_issuer = ServiceAccounts { issuer: "https://elsewhere".into(), ..accounts() };
    let (foreign, _) = other_issuer.issue(&grant(None), NOW).unwrap();
    assert_eq!(check_token(&sa, &foreign, NOW), Err("invalid bearer token"), "another key");

    let same_key_other_issuer = ServiceAccounts {
        issuer: "https://elsewhere".into(),
        audiences: sa.audiences.clone(),
        signer: None,
        keys: sa.keys.clone(),
        max_expiration: None,
    };
    assert_eq!(check_token(&same_key_other_issuer, &token, NOW), Err("the token has another issuer"));

    let vault = Grant { audiences: vec!["vault".into()], ..grant(None) };
    let (for_vault, _) = sa.issue(&vault, NOW).unwrap();
    assert_eq!(check_token(&sa, &for_vault, NOW), Err("the token is not for this server's audiences"));
}

#[test]
fn a_server_without_a_signing_key_issues_nothing() {
    let verify_only = ServiceAccounts { signer: None, ..accounts() };
    assert!(verify_only.issue(&grant(None), NOW).unwrap_err().contains("--service-account-signing-key-file"));
}

/// Deleting the ServiceAccount or the bound pod revokes the token, and so does replacing
/// either with a namesake.
#[tokio::test]
async fn a_token_dies_with_its_account_and_its_bound_pod() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    let (accounts_res, pods) =
        (resources::lookup("", "v1", "serviceaccounts").unwrap(), resources::lookup("", "v1", "pods").unwrap());
    let opts = WriteOptions::default();
    let create_sa = || registry.create(accounts_res, Some("default"), json!({"metadata": {"name": "builder"}}), &opts);
    let sa = create_sa().await.unwrap();
    let pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "builder",
        "containers": [{"name": "c", "image": "busybox"}]}});
    let p = registry.create(pods, Some("default"), pod.clone(), &opts).await.unwrap();
    let uid = |o: &serde_json::Value| o["metadata"]["uid"].as_str().unwrap().to_string();
    let claims = Claims {
        namespace: "default".into(),
        name: "builder".into(),
        uid: uid(&sa),
        bound: Some(Bound { kind: "Pod".into(), name: "p".into(), uid: uid(&p) }),
    };
    let now = jiff::Timestamp::now().as_second();
    assert_eq!(check_objects(&registry, &claims, now).await, Ok(()));

    let delete = crate::registry::DeleteOptions { grace_period_seconds: Some(0), ..Default::default() };
    registry.delete(pods, Some("default"), "p", &delete).await.unwrap();
    assert_eq!(check_objects(&registry, &claims, now).await, Err("the token's bound object is gone"));
    registry.create(pods, Some("default"), pod, &opts).await.unwrap();
    assert_eq!(
        check_objects(&registry, &claims, now).await,
        Err("the token's bound object was replaced since the token was issued")
    );

    let unbound = Claims { bound: None, ..claims };
    assert_eq!(check_objects(&registry, &unbound, now).await, Ok(()));
    registry.delete(accounts_res, Some("default"), "builder", &delete).await.unwrap();
    assert_eq!(check_objects(&registry, &unbound, now).await, Err("the service account is gone"));
    create_sa().await.unwrap();
    assert_eq!(
        check_objects(&registry, &unbound, now).await,
        Err("the service account was deleted and recreated since the token was issued")
    );
}

/// A node gets a token only bound by uid to its own pod running as the account; every
/// other ask is the same 403, whether or not what it names exists.
#[tokio::test]
async fn a_node_gets_tokens_only_for_its_own_pods() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, registry) = crate::testing::solo_registry(dir.path()).await;
    let (accounts_res, pods) =
        (resources::lookup("", "v1", "serviceaccounts").unwrap(), resources::lookup("", "v1", "pods").unwrap());
    let opts = WriteOptions::default();
    registry.create(accounts_res, Some("default"), json!({"metadata": {"name": "builder"}}), &opts).await.unwrap();
    let pod = json!({"metadata": {"name": "p"}, "spec": {"serviceAccountName": "builder", "nodeName": "n1",
        "containers": [{"name": "c", "image": "busybox"}]}});
    let p = registry.create(pods, Some("default"), pod, &opts).await.unwrap();
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let sa = accounts();
    let ask = |node: &'static str, account: &'static str, bound: serde_json::Value| {
        let body = json!({"spec": {"boundObjectRef": bound}});
        let (registry, sa) = (&registry, &sa);
        async move { request::create(registry, Some(sa), "default", account, Some(node), body).await }
    };
    let own = json!({"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": uid});
    let answer = ask("n1", "builder", own.clone()).await.expect("its own pod's token");
    let token = answer["status"]["token"].as_str().unwrap();
    let claims = check_token(&sa, token, jiff::Timestamp::now().as_second()).unwrap();
    assert_eq!(claims.bound.map(|b| b.uid), Some(uid.to_string()));
    let refused =
        |r: crate::error::ApiResult<serde_json::Value>| matches!(r, Err(crate::error::ApiError::Forbidden(_)));
    assert!(refused(ask("n2", "builder", own.clone()).await), "another node's pod");
    assert!(refused(ask("n1", "default", own.clone()).await), "another account than the pod's");
    assert!(refused(ask("n1", "builder", json!({"kind": "Pod", "name": "p"})).await), "no uid");
    assert!(refused(ask("n1", "builder", json!({"kind": "Pod", "name": "gone", "uid": "x"})).await), "no such pod");
    assert!(refused(ask("n1", "builder", json!({"kind": "Secret", "name": "s", "uid": "x"})).await), "a Secret");
    assert!(refused(ask("n1", "builder", serde_json::Value::Null).await), "unbound");
    // The same asks by a user (no node) are the registry's business: a missing pod is 404.
    let by_user = request::create(
        &registry,
        Some(&sa),
        "default",
        "builder",
        None,
        json!({"spec": {"boundObjectRef": {"kind": "Pod", "name": "gone"}}}),
    )
    .await;
    assert!(matches!(by_user, Err(crate::error::ApiError::NotFound(_))));
}
