//! Schema tables for apimachinery meta/v1 types shared by every object: `ObjectMeta` and
//! `LabelSelector`.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/apimachinery
//! v0.32.4); `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`).
//! `creationTimestamp` is a non-pointer `Time`, so the empty message kubectl sends for it is
//! dropped like any other unset value.

use super::schema::Kind::*;
use super::schema::{map, msg, one, ptr, rep, Message};

/// `ObjectMeta` (meta/v1).
pub(super) static OBJECT_META: Message = msg(
    "ObjectMeta",
    &[
        one(1, "name", Str),
        one(2, "generateName", Str),
        one(3, "namespace", Str),
        one(4, "selfLink", Str),
        one(5, "uid", Str),
        one(6, "resourceVersion", Str),
        one(7, "generation", Int),
        one(8, "creationTimestamp", Time),
        ptr(9, "deletionTimestamp", Time),
        ptr(10, "deletionGracePeriodSeconds", Int),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        rep(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        rep(14, "finalizers", Str),
        rep(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
);

/// `OwnerReference` (meta/v1).
pub(super) static OWNER_REFERENCE: Message = msg(
    "OwnerReference",
    &[
        one(5, "apiVersion", Str),
        one(1, "kind", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        ptr(6, "controller", Bool),
        ptr(7, "blockOwnerDeletion", Bool),
    ],
);

/// `ManagedFieldsEntry` (meta/v1).
pub(super) static MANAGED_FIELDS_ENTRY: Message = msg(
    "ManagedFieldsEntry",
    &[
        one(1, "manager", Str),
        one(2, "operation", Str),
        one(3, "apiVersion", Str),
        ptr(4, "time", Time),
        one(6, "fieldsType", Str),
        ptr(7, "fieldsV1", RawJson),
        one(8, "subresource", Str),
    ],
);

/// `LabelSelector` (meta/v1).
pub(super) static LABEL_SELECTOR: Message =
    msg("LabelSelector", &[map(1, "matchLabels", Str), rep(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT))]);

/// `LabelSelectorRequirement` (meta/v1).
pub(super) static LABEL_SELECTOR_REQUIREMENT: Message =
    msg("LabelSelectorRequirement", &[one(1, "key", Str), one(2, "operator", Str), rep(3, "values", Str)]);
