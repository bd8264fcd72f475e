//! Schema tables for the core/v1 kinds `kubectl create` makes outside pods: Namespace,
//! ConfigMap, Secret, Service, ServiceAccount, and the object references they use.
//!
//! Field numbers and names are those of upstream `generated.proto` (k8s.io/api v0.32.4);
//! `one`/`ptr` follow whether the Go field is a pointer (see `schema.rs`). `status` is read
//! and dropped: the server owns it.

use super::meta::OBJECT_META;
use super::schema::Kind::*;
use super::schema::{map, msg, one, ptr, rep, skip, Message};

/// `Namespace` (core/v1).
pub(super) static NAMESPACE: Message =
    msg("Namespace", &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&NAMESPACE_SPEC)), skip(3, "status")]);

/// `NamespaceSpec` (core/v1).
pub(super) static NAMESPACE_SPEC: Message = msg("NamespaceSpec", &[rep(1, "finalizers", Str)]);

/// `ConfigMap` (core/v1).
pub(super) static CONFIG_MAP: Message = msg(
    "ConfigMap",
    &[
        one(1, "metadata", Msg(&OBJECT_META)),
        ptr(4, "immutable", Bool),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
    ],
);

/// `Secret` (core/v1).
pub(super) static SECRET: Message = msg(
    "Secret",
    &[
        one(1, "metadata", Msg(&OBJECT_META)),
        ptr(5, "immutable", Bool),
        map(2, "data", Bytes),
        map(4, "stringData", Str),
        one(3, "type", Str),
    ],
);

/// `Service` (core/v1).
pub(super) static SERVICE: Message =
    msg("Service", &[one(1, "metadata", Msg(&OBJECT_META)), one(2, "spec", Msg(&SERVICE_SPEC)), skip(3, "status")]);

/// `ServiceSpec` (core/v1).
pub(super) static SERVICE_SPEC: Message = msg(
    "ServiceSpec",
    &[
        rep(1, "ports", Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        one(3, "clusterIP", Str),
        rep(18, "clusterIPs", Str),
        one(4, "type", Str),
        rep(5, "externalIPs", Str),
        one(7, "sessionAffinity", Str),
        one(8, "loadBalancerIP", Str),
        rep(9, "loadBalancerSourceRanges", Str),
        one(10, "externalName", Str),
        one(11, "externalTrafficPolicy", Str),
        one(12, "healthCheckNodePort", Int),
        one(13, "publishNotReadyAddresses", Bool),
        ptr(14, "sessionAffinityConfig", Msg(&SESSION_AFFINITY_CONFIG)),
        rep(19, "ipFamilies", Str),
        ptr(17, "ipFamilyPolicy", Str),
        ptr(20, "allocateLoadBalancerNodePorts", Bool),
        ptr(21, "loadBalancerClass", Str),
        ptr(22, "internalTrafficPolicy", Str),
        ptr(23, "trafficDistribution", Str),
    ],
);

/// `ServicePort` (core/v1).
pub(super) static SERVICE_PORT: Message = msg(
    "ServicePort",
    &[
        one(1, "name", Str),
        one(2, "protocol", Str),
        ptr(6, "appProtocol", Str),
        one(3, "port", Int),
        one(4, "targetPort", IntOrString),
        one(5, "nodePort", Int),
    ],
);

/// `SessionAffinityConfig` (core/v1).
pub(super) static SESSION_AFFINITY_CONFIG: Message =
    msg("SessionAffinityConfig", &[ptr(1, "clientIP", Msg(&CLIENT_IP_CONFIG))]);

/// `ClientIPConfig` (core/v1).
pub(super) static CLIENT_IP_CONFIG: Message = msg("ClientIPConfig", &[ptr(1, "timeoutSeconds", Int)]);

/// `ServiceAccount` (core/v1).
pub(super) static SERVICE_ACCOUNT: Message = msg(
    "ServiceAccount",
    &[
        one(1, "metadata", Msg(&OBJECT_META)),
        rep(2, "secrets", Msg(&OBJECT_REFERENCE)),
        rep(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        ptr(4, "automountServiceAccountToken", Bool),
    ],
);

/// `ObjectReference` (core/v1).
pub(super) static OBJECT_REFERENCE: Message = msg(
    "ObjectReference",
    &[
        one(1, "kind", Str),
        one(2, "namespace", Str),
        one(3, "name", Str),
        one(4, "uid", Str),
        one(5, "apiVersion", Str),
        one(6, "resourceVersion", Str),
        one(7, "fieldPath", Str),
    ],
);

/// `LocalObjectReference` (core/v1).
pub(super) static LOCAL_OBJECT_REFERENCE: Message = msg("LocalObjectReference", &[one(1, "name", Str)]);
