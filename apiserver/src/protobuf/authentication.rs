//! Schema tables for `authentication.k8s.io/v1` TokenRequest, which `kubectl create token`
//! sends as protobuf to `serviceaccounts/<name>/token`.
//!
//! Like the access reviews it is never stored: the answer is the request with `status`
//! filled in, so a `status` in the request is dropped. Field numbers are those of upstream
//! `k8s.io/api/authentication/v1` (note `expirationSeconds` = 4 after `boundObjectRef` = 3).

use super::meta::OBJECT_META;
use super::schema::Kind::*;
use super::schema::{msg, one, ptr, rep, skip, Message};

/// `TokenRequest` (authentication/v1).
pub(super) static TOKEN_REQUEST: Message = msg(
    "TokenRequest",
    &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&TOKEN_REQUEST_SPEC)), skip(3, "status")],
);

/// `TokenRequestSpec` (authentication/v1).
pub(super) static TOKEN_REQUEST_SPEC: Message = msg(
    "TokenRequestSpec",
    &[
        rep(1, "audiences", Str),
        ptr(3, "boundObjectRef", Msg(&BOUND_OBJECT_REFERENCE)),
        ptr(4, "expirationSeconds", Int),
    ],
);

/// `BoundObjectReference` (authentication/v1).
pub(super) static BOUND_OBJECT_REFERENCE: Message = msg(
    "BoundObjectReference",
    &[one(1, "kind", Str), one(2, "apiVersion", Str), one(3, "name", Str), one(4, "uid", Str)],
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decode;
    use super::super::encode::{body, Pb};

    #[test]
    fn create_token_with_an_audience_a_duration_and_a_bound_pod() {
        // kubectl create token builder --audience vault --duration 20m --bound-object-kind Pod
        // --bound-object-name p --bound-object-uid u
        let bound = Pb::default().str(1, "Pod").str(2, "v1").str(3, "p").str(4, "u");
        let spec = Pb::default().str(1, "vault").msg(3, bound).int(4, 1200);
        let meta = Pb::default().str(1, "builder").str(3, "ci");
        let status = Pb::default().str(1, "a token sent along");
        let raw = Pb::default().msg(1, meta).msg(2, spec).msg(3, status);
        let decoded = decode(&body("authentication.k8s.io/v1", "TokenRequest", raw)).expect("decodes");
        assert_eq!(
            decoded,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                   "metadata": {"name": "builder", "namespace": "ci"},
                   "spec": {"audiences": ["vault"], "expirationSeconds": 1200,
                            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}})
        );
    }
}
