//! Bootstrap tokens, as upstream's bootstrap token authenticator reads them: a bearer token
//! `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`) is good while Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` holds that
//! `token-id` and `token-secret`, says `usage-bootstrap-authentication: "true"`, is not
//! past its `expiration` (RFC 3339) and is not being deleted. The user is
//! `system:bootstrap:<id>` in `system:bootstrappers`, plus the groups in `auth-extra-groups`
//! (each must start with `system:bootstrappers:`, else the token is refused).
//!
//! What a token may do is RBAC's business; the default binding lets `system:bootstrappers`
//! ask for a node certificate and nothing else (see `node_certificate`). `flotilla token
//! create` makes such Secrets; so does kubectl.

use serde_json::Value;

use crate::registry::Registry;
use crate::resources;

/// The group of every bootstrap token's user.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// A token's user is this followed by the token's id.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// The namespace of the tokens' Secrets.
pub const NAMESPACE: &str = "kube-system";
/// Their names are this followed by the token's id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// Their type.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";

/// `(id, secret)` of a string shaped like a bootstrap token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The user of bootstrap token `token` (already [`parse`]d as `id`, `secret`), from its
/// Secret; `Err` with the reason for a 401 (or [`super::BUSY`]).
pub async fn authenticate(registry: &Registry, id: &str, secret: &str) -> Result<super::UserInfo, &'static str> {
    static QUEUE: super::LookupQueue = super::lookup_queue();
    let _turn = super::lookup_turn(&QUEUE).await?;
    let secrets = resources::lookup("", "v1", "secrets").expect("secrets are served");
    let Ok(stored) = registry.get(secrets, Some(NAMESPACE), &format!("{SECRET_PREFIX}{id}")).await else {
        return Err("no such bootstrap token");
    };
    check(&stored, id, secret, jiff::Timestamp::now())
}

/// The checks of the module doc on `stored`, the token's Secret, at `now`.
pub fn check(stored: &Value, id: &str, secret: &str, now: jiff::Timestamp) -> Result<super::UserInfo, &'static str> {
    if stored["type"].as_str() != Some(SECRET_TYPE) {
        return Err("the token's Secret is not of type bootstrap.kubernetes.io/token");
    }
    if !stored["metadata"]["deletionTimestamp"].is_null() {
        return Err("the bootstrap token is being deleted");
    }
    // Absent is `Ok(None)`; present but unreadable is an error, never taken as absent.
    let field = |key: &str| -> Result<Option<String>, &'static str> {
        use base64::Engine;
        let value = &stored["data"][key];
        if value.is_null() {
            return Ok(None);
        }
        let raw = value.as_str().and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
        raw.and_then(|r| String::from_utf8(r).ok()).map(Some).ok_or("the token's Secret holds an unreadable field")
    };
    if field("token-id")?.as_deref() != Some(id) {
        return Err("the token's Secret names another id");
    }
    let stored_secret = field("token-secret")?.unwrap_or_default();
    if !constant_time_eq(stored_secret.as_bytes(), secret.as_bytes()) {
        return Err("wrong bootstrap token secret");
    }
    if field("usage-bootstrap-authentication")?.as_deref() != Some("true") {
        return Err("the bootstrap token is not for authentication");
    }
    if let Some(expiration) = field("expiration")? {
        let at: jiff::Timestamp = expiration.parse().map_err(|_| "the bootstrap token's expiration is malformed")?;
        if at <= now {
            return Err("the bootstrap token has expired");
        }
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for extra in field("auth-extra-groups")?.unwrap_or_default().split(',').map(str::trim).filter(|g| !g.is_empty()) {
        if !is_extra_group(extra) {
            return Err("auth-extra-groups may only name system:bootstrappers:* groups");
        }
        groups.push(extra.to_string());
    }
    Ok(super::UserInfo::authenticated(format!("{USER_PREFIX}{id}"), String::new(), groups))
}

/// Upstream's `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`.
fn is_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix(&format!("{BOOTSTRAPPERS_GROUP}:")) else { return false };
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !rest.is_empty()
        && rest.len() <= 256
        && rest.bytes().all(|b| allowed(b) || b == b':' || b == b'-')
        && rest.bytes().last().is_some_and(allowed)
}

/// Equal contents, compared in time that depends only on the lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(extra: &[(&str, &str)]) -> Value {
        let mut data = json!({
            "token-id": b64("abcdef"),
            "token-secret": b64("0123456789abcdef"),
            "usage-bootstrap-authentication": b64("true"),
        });
        for (k, v) in extra {
            data[*k] = json!(b64(v));
        }
        json!({"type": SECRET_TYPE, "metadata": {"name": "bootstrap-token-abcdef"}, "data": data})
    }

    fn now() -> jiff::Timestamp {
        "2026-11-29T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn only_well_formed_tokens_parse() {
        assert_eq!(parse("abcdef.0123456789abcdef"), Some(("abcdef", "0123456789abcdef")));
        for bad in
            ["abcdef0123456789abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde"]
        {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_good_token_is_its_bootstrapper_with_extra_groups() {
        let user = check(
            &secret(&[("auth-extra-groups", "system:bootstrappers:worker")]),
            "abcdef",
            "0123456789abcdef",
            now(),
        )
        .expect("good token");
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(user.groups, ["system:bootstrappers", "system:bootstrappers:worker", "system:authenticated"]);
    }

    #[test]
    fn wrong_expired_unusable_or_overreaching_tokens_are_refused() {
        let good = "0123456789abcdef";
        assert!(check(&secret(&[]), "abcdef", "0123456789abcdee", now()).is_err(), "wrong secret");
        assert!(check(&secret(&[]), "abcdeg", good, now()).is_err(), "id mismatch");
        assert!(check(&secret(&[("expiration", "2026-11-29T11:59:59Z")]), "abcdef", good, now()).is_err());
        assert!(check(&secret(&[("expiration", "2026-11-29T12:00:01Z")]), "abcdef", good, now()).is_ok());
        assert!(check(&secret(&[("expiration", "tomorrow")]), "abcdef", good, now()).is_err());
        assert!(check(&secret(&[("usage-bootstrap-authentication", "false")]), "abcdef", good, now()).is_err());
        assert!(check(&secret(&[("auth-extra-groups", "system:masters")]), "abcdef", good, now()).is_err());
        assert!(check(&secret(&[("auth-extra-groups", "system:bootstrappers:Ops")]), "abcdef", good, now()).is_err());
        assert!(check(&secret(&[("auth-extra-groups", "system:bootstrappers:")]), "abcdef", good, now()).is_err());
        let mut garbled = secret(&[]);
        garbled["data"]["expiration"] = json!("//79"); // base64 of bytes that are not UTF-8
        assert!(check(&garbled, "abcdef", good, now()).is_err(), "an unreadable expiration is not no expiration");
        garbled["data"]["expiration"] = json!(17);
        assert!(check(&garbled, "abcdef", good, now()).is_err());
        let mut opaque = secret(&[]);
        opaque["type"] = json!("Opaque");
        assert!(check(&opaque, "abcdef", good, now()).is_err(), "another type");
        let mut deleting = secret(&[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-29T11:00:00Z");
        assert!(check(&deleting, "abcdef", good, now()).is_err(), "being deleted");
    }
}
