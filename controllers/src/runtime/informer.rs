//! [`Informer`]: keeps a [`Store`] equal to the objects of one kind, by list then watch.
//!
//! Data flow: a linearizable `list` fills the cache ([`Writer::replace`], which marks it
//! synced and reports what changed since the previous list), then a `watch` from the
//! list's resourceVersion applies each event in order. When the watch ends — a 410
//! Expired (its revision was compacted), any other error event, an event that does not
//! decode, or a plain end — the informer lists again; the diff against the cache reports
//! the changes missed meanwhile, deletions included.
//!
//! Invariants:
//! - The cache only moves forward: the watch starts at the list's revision and applies
//!   events in revision order, so it never shows an older state than it has shown.
//! - Nothing is skipped silently: whenever the informer cannot be sure it saw every event,
//!   it re-lists.
//! - Retries are bounded in rate: list/watch cycles that deliver no event are spaced by
//!   [`Backoff::INFORMER`] (by default), so an unavailable store is not hammered.
//!
//! The source is a [`ListWatch`]: [`ApiSource`] over the in-process client in production;
//! tests wrap it to inject faults (e.g. compact the store before a watch starts).

use std::future::Future;

use flotilla_apiserver::client::{Api, Client, Event, Watch};
use flotilla_apiserver::registry::ListOptions;
use flotilla_apiserver::selector::{FieldSelector, LabelSelector};
use flotilla_apiserver::watch::WatchOptions;
use flotilla_apiserver::{ApiError, ApiResult};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::backoff::Backoff;
use super::store::{Object, Store, Writer};

/// Where an informer reads from: a complete list and a watch from a revision.
pub trait ListWatch<K>: Send + Sync + 'static {
    /// Every selected object and the list's resourceVersion, read linearizably.
    fn list(&self) -> impl Future<Output = ApiResult<(Vec<K>, i64)>> + Send;
    /// The changes after `resource_version`, in order.
    fn watch(&self, resource_version: i64) -> impl Future<Output = ApiResult<Watch<K>>> + Send;
}

/// Which objects an informer caches, and how it retries.
#[derive(Debug, Clone)]
pub struct InformerConfig {
    /// Only this namespace (None: all namespaces, or a cluster-scoped kind).
    pub namespace: Option<String>,
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    /// Spacing of list/watch cycles that delivered no event.
    pub backoff: Backoff,
}

impl Default for InformerConfig {
    fn default() -> Self {
        Self { namespace: None, label_selector: None, field_selector: None, backoff: Backoff::INFORMER }
    }
}

/// The in-process API as an informer source.
pub struct ApiSource<K> {
    api: Api<K>,
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
}

impl<K: Object> ApiSource<K> {
    pub fn new(client: &Client, config: &InformerConfig) -> Self {
        Self {
            api: client.api::<K>(config.namespace.as_deref()),
            label: config.label_selector.clone(),
            field: config.field_selector.clone(),
        }
    }
}

impl<K: Object> ListWatch<K> for ApiSource<K> {
    async fn list(&self) -> ApiResult<(Vec<K>, i64)> {
        // No resourceVersion: the registry serves it linearizably (a quorum read).
        let opts = ListOptions { label: self.label.clone(), field: self.field.clone(), ..Default::default() };
        self.api.list(&opts).await
    }

    async fn watch(&self, resource_version: i64) -> ApiResult<Watch<K>> {
        let opts = WatchOptions {
            resource_version: Some(resource_version.to_string()),
            label: self.label.clone(),
            field: self.field.clone(),
            // Bookmarks keep the resume point current while nothing changes.
            bookmarks: true,
            bookmark_interval: None,
        };
        self.api.watch(opts).await
    }
}

/// Why a watch stopped and the cache must be re-listed.
#[derive(Debug)]
enum Relist {
    /// The watch could not start or ended with an error event (410 Expired among them).
    Failed(String),
    /// The watch ended without an error.
    Ended,
}

/// Fills and maintains one [`Store`]; run it with [`Informer::run`].
pub struct Informer<K, S = ApiSource<K>> {
    source: S,
    writer: Writer<K>,
    backoff: Backoff,
}

impl<K: Object> Informer<K> {
    /// An informer over the in-process API.
    pub fn new(client: &Client, config: InformerConfig) -> Self {
        Self::with_source(ApiSource::new(client, &config), config.backoff)
    }
}

impl<K: Object, S: ListWatch<K>> Informer<K, S> {
    pub fn with_source(source: S, backoff: Backoff) -> Self {
        Self { source, writer: Writer::new(), backoff }
    }

    /// A read handle on the cache this informer maintains.
    pub fn store(&self) -> Store<K> {
        self.writer.store()
    }

    /// List and watch until `cancel` fires. Afterwards the store keeps its last content
    /// (and stays "synced") but is no longer updated: a new leadership term builds new
    /// informers.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("informer", kind = K::KIND);
        async move {
            // Consecutive list/watch cycles that delivered no watch event.
            let mut idle_cycles: u32 = 0;
            loop {
                let delay = self.backoff.delay(idle_cycles);
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                let cycle = tokio::select! {
                    _ = cancel.cancelled() => return,
                    cycle = self.cycle() => cycle,
                };
                match cycle {
                    Ok((relist, delivered)) => {
                        idle_cycles = if delivered { 0 } else { idle_cycles.saturating_add(1) };
                        match relist {
                            Relist::Failed(why) => tracing::info!(reason = %why, "watch ended; re-listing"),
                            Relist::Ended => tracing::debug!("watch ended; re-listing"),
                        }
                    }
                    Err(e) => {
                        idle_cycles = idle_cycles.saturating_add(1);
                        tracing::warn!(error = %e, retry_in = ?self.backoff.delay(idle_cycles), "list failed");
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// One list, then the watch from it until it ends. Returns why it ended and whether
    /// the watch delivered anything; `Err` when the list itself failed.
    async fn cycle(&mut self) -> ApiResult<(Relist, bool)> {
        let (items, mut rv) = self.source.list().await?;
        tracing::debug!(objects = items.len(), resource_version = rv, "listed");
        self.writer.replace(items).await;
        let mut watch = match self.source.watch(rv).await {
            Ok(w) => w,
            Err(e @ ApiError::Expired(_)) => return Ok((Relist::Failed(e.to_string()), false)),
            Err(e) => return Ok((Relist::Failed(format!("watch did not start: {e}")), false)),
        };
        let mut delivered = false;
        loop {
            let event = match watch.next().await {
                None => return Ok((Relist::Ended, delivered)),
                Some(Err(e)) => return Ok((Relist::Failed(format!("undecodable event: {e}")), delivered)),
                Some(Ok(event)) => event,
            };
            match event {
                Event::Added(obj) | Event::Modified(obj) => {
                    rv = resource_version(&obj).unwrap_or(rv);
                    self.writer.apply(obj).await;
                }
                Event::Deleted(obj) => {
                    rv = resource_version(&obj).unwrap_or(rv);
                    self.writer.delete(&obj).await;
                }
                Event::Bookmark(b) => rv = rv.max(b),
                Event::Error(status) => {
                    let code = status.get("code").and_then(|c| c.as_i64()).unwrap_or(0);
                    let message = status.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    return Ok((Relist::Failed(format!("error event {code}: {message}")), delivered));
                }
            }
            delivered = true;
            tracing::trace!(resource_version = rv, "event applied");
        }
    }
}

fn resource_version<K: Object>(obj: &K) -> Option<i64> {
    obj.metadata().resource_version.as_deref()?.parse().ok()
}
