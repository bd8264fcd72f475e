//! Handler-level tests of the Kubernetes API server: the real `axum::Router` driven with
//! `tower::ServiceExt::oneshot` (no socket) over a real single-member store.
//!
//! What each module covers, and why it matters to clients:
//! - [`discovery`]: `/version`, `/api`, `/apis` (legacy and aggregated), per-group-version
//!   lists, `/openapi/v3`, health endpoints, unknown paths — what kubectl reads before any
//!   request.
//! - [`crud`]: create/get/list/update on namespaced and cluster-scoped kinds, defaults,
//!   server-owned metadata, selectors, paging, optimistic concurrency, dry runs.
//! - [`lifecycle`]: deletion — finalizers, propagation policy, preconditions, graceful pods,
//!   deletecollection — and the status subresource's split from the main resource.
//! - [`patch`]: the four patch types, their failures, and resourceVersion preconditions.
//! - [`subresources`]: scale, binding, eviction (with disruption budgets), log.
//! - [`decoding`]: `fieldValidation=Strict`, protobuf bodies from kubectl 1.32 fixtures,
//!   Table output and Accept negotiation.
//! - [`watch`]: watch start rules, event types, selectors, timeouts, bookmarks, compaction.
//! - [`services`]: cluster IP and node port allocation (unique, in range, released).
//! - [`kubernetes_service`]: the `kubernetes` Service's Endpoints follow the replicas.
//! - [`client`]: the in-process typed client the controllers use.
//! - [`semantics`]: smaller upstream rules (system namespaces, finalize, uid preconditions,
//!   includeObject, list resourceVersions, create-on-update, warnings).
//!
//! Expected status codes, `reason`s, `details` and messages are upstream's (kube-apiserver
//! 1.32), since clients branch on them.

mod http {
    pub mod client;
    pub mod crud;
    pub mod decoding;
    pub mod discovery;
    pub mod kubernetes_service;
    pub mod lifecycle;
    pub mod patch;
    pub mod semantics;
    pub mod services;
    pub mod subresources;
    pub mod support;
    pub mod watch;
    pub mod watch_stream;
}
