//! Schema tables for `authorization.k8s.io/v1` SelfSubjectAccessReview, which
//! `kubectl auth can-i` sends as protobuf.
//!
//! The review is not a stored resource: it is a create-only endpoint whose answer is the
//! same object with `status` filled in, so, as everywhere, a `status` in the request is read
//! and dropped. Field numbers and names are those of upstream `generated.proto` (k8s.io/api
//! v0.32.4); `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`).

use super::meta::{LABEL_SELECTOR_REQUIREMENT, OBJECT_META};
use super::schema::Kind::*;
use super::schema::{msg, one, ptr, rep, skip, Message};

/// `SelfSubjectAccessReview` (authorization/v1).
pub(super) static SELF_SUBJECT_ACCESS_REVIEW: Message = msg(
    "SelfSubjectAccessReview",
    &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)), skip(3, "status")],
);

/// `SelfSubjectAccessReviewSpec` (authorization/v1).
pub(super) static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = msg(
    "SelfSubjectAccessReviewSpec",
    &[
        ptr(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        ptr(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
);

/// `ResourceAttributes` (authorization/v1).
pub(super) static RESOURCE_ATTRIBUTES: Message = msg(
    "ResourceAttributes",
    &[
        one(1, "namespace", Str),
        one(2, "verb", Str),
        one(3, "group", Str),
        one(4, "version", Str),
        one(5, "resource", Str),
        one(6, "subresource", Str),
        one(7, "name", Str),
        ptr(8, "fieldSelector", Msg(&FIELD_SELECTOR_ATTRIBUTES)),
        ptr(9, "labelSelector", Msg(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
);

/// `FieldSelectorAttributes` (authorization/v1).
pub(super) static FIELD_SELECTOR_ATTRIBUTES: Message = msg(
    "FieldSelectorAttributes",
    &[one(1, "rawSelector", Str), rep(2, "requirements", Msg(&FIELD_SELECTOR_REQUIREMENT))],
);

/// `FieldSelectorRequirement` (meta/v1; only the access reviews use it).
pub(super) static FIELD_SELECTOR_REQUIREMENT: Message =
    msg("FieldSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), rep(3, "values", Str)]);

/// `LabelSelectorAttributes` (authorization/v1).
pub(super) static LABEL_SELECTOR_ATTRIBUTES: Message = msg(
    "LabelSelectorAttributes",
    &[one(1, "rawSelector", Str), rep(2, "requirements", Msg(&LABEL_SELECTOR_REQUIREMENT))],
);

/// `NonResourceAttributes` (authorization/v1).
pub(super) static NON_RESOURCE_ATTRIBUTES: Message =
    msg("NonResourceAttributes", &[one(1, "path", Str), one(2, "verb", Str)]);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::decode;
    use super::super::encode::{body, object, Pb};

    const V1: &str = "authorization.k8s.io/v1";

    /// `ResourceAttributes` as gogo writes it: all seven strings, empty ones included.
    fn resource_attributes(attrs: [&str; 7]) -> Pb {
        attrs.iter().zip(1..).fold(Pb::default(), |pb, (v, n)| pb.str(n, v))
    }

    #[test]
    fn can_i_on_a_resource() {
        // kubectl auth can-i list deployments.apps --subresource=scale -n prod, with the
        // selector limits kubectl 1.32 can add; a status sent along is dropped.
        let field_selector = Pb::default()
            .str(1, "spec.nodeName=node-1")
            .msg(2, Pb::default().str(1, "spec.nodeName").str(2, "In").str(3, "node-1"));
        let label_selector = Pb::default().str(1, "").msg(2, Pb::default().str(1, "app").str(2, "Exists"));
        let attrs = resource_attributes(["prod", "list", "apps", "", "deployments", "scale", ""])
            .msg(8, field_selector)
            .msg(9, label_selector);
        let status = Pb::default().int(1, 1).str(2, "sent by mistake");
        let raw = object("").msg(2, Pb::default().msg(1, attrs)).msg(3, status);
        // kubectl sends an empty ObjectMeta, which is unset and so left out like any other.
        let want = json!({
            "apiVersion": V1, "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": "prod", "verb": "list", "group": "apps", "resource": "deployments", "subresource": "scale",
                "fieldSelector": {"rawSelector": "spec.nodeName=node-1",
                    "requirements": [{"key": "spec.nodeName", "operator": "In", "values": ["node-1"]}]},
                "labelSelector": {"requirements": [{"key": "app", "operator": "Exists"}]},
            }},
        });
        assert_eq!(decode(&body(V1, "SelfSubjectAccessReview", raw)).unwrap(), want);
    }

    #[test]
    fn can_i_on_a_non_resource_url() {
        // kubectl auth can-i get /healthz
        let spec = Pb::default().msg(2, Pb::default().str(1, "/healthz").str(2, "get"));
        let raw = object("").msg(2, spec);
        let want = json!({
            "apiVersion": V1, "kind": "SelfSubjectAccessReview",
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
        });
        assert_eq!(decode(&body(V1, "SelfSubjectAccessReview", raw)).unwrap(), want);
    }

    #[test]
    fn only_the_self_review_is_decoded() {
        let raw = object("").msg(2, Pb::default().str(3, "jane"));
        let err = decode(&body(V1, "SubjectAccessReview", raw)).unwrap_err();
        assert!(err.to_string().contains("authorization.k8s.io/v1, Kind=SubjectAccessReview"), "{err}");
    }
}
