//! The shared controller runtime, after kube-runtime and client-go.
//!
//! ```text
//!  Informer<K> ── list+watch ──▶ Writer<K> ──▶ Store<K> (Arc snapshots: get/list/list_in)
//!                                   │ Change<K> (bounded, backpressure)
//!                                   ▼
//!  Controller ── feeds: key / owner key / mapper ──▶ WorkQueue ──▶ N workers
//!                                                               └─ Reconciler::reconcile(key) -> Action
//! ```
//!
//! - [`informer`]: one cache per kind (optionally one namespace, label/field selector), filled
//!   by a linearizable list and kept current by a watch; re-lists when the watch ends.
//! - [`store`]: the cache's read handle [`Store`] and single [`Writer`]; change notifications.
//! - [`queue`]: deduplicated keys, never one key in two workers, delays and per-key backoff.
//! - [`controller`]: the runner: waits for caches, queues every primary key once, then
//!   reconciles with `workers` tasks, one tracing span per reconcile, until cancelled.
//! - [`owner`]: dependent → controlling owner key (a Pod change queues its ReplicaSet), and
//!   owner → the controller reference it puts on what it creates.
//! - [`shared`]: one informer per kind shared by every component of a leadership term.
//! - [`events`]: the Event recorder (`kubectl get events` / `describe`).
//! - [`backoff`], [`key`]: the small value types the others share.
//!
//! Invariants the runtime guarantees to every controller: a key is never reconciled by two
//! workers at once; a change applied to a cache is seen by the reconcile it triggers; no
//! reconcile runs before the caches it reads have synced.

pub mod backoff;
pub mod controller;
pub mod events;
pub mod informer;
pub mod key;
pub mod owner;
pub mod queue;
pub mod shared;
pub mod store;

pub use backoff::Backoff;
pub use controller::{Action, Controller, ControllerConfig, ErrorAction, Reconciler};
pub use events::{EventType, Recorder};
pub use informer::{ApiSource, Informer, InformerConfig, ListWatch};
pub use key::Key;
pub use queue::WorkQueue;
pub use shared::SharedInformers;
pub use store::{Change, Object, Store, Writer, CHANGE_BUFFER};
