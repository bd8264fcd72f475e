//! A list+watch of one kind of object that survives API server failover.
//!
//! Invariants:
//! - The consumer first gets [`Event::Listed`] with every matching object, then
//!   [`Event::Applied`] / [`Event::Deleted`] in resourceVersion order. Another `Listed`
//!   may come at any time and replaces everything known: objects missing from it are gone.
//! - A watch that ends or whose server stops answering is resumed from the last
//!   resourceVersion seen (on the next server, after a failover): the servers share one
//!   store, so its revisions mean the same on each. Only 410 Gone (a compacted revision)
//!   causes a re-list.
//! - A watch silent for longer than [`WATCH_SECONDS`] plus [`WATCH_IDLE_SLACK`] counts
//!   as a hung server.
//! - Retries back off from [`RETRY_MIN`] to [`RETRY_MAX`], so an outage costs little.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::Resource;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{classify, ApiPool, ServerId};
use crate::error::AgentError;

/// How long the server keeps one watch open (`timeoutSeconds`); it then ends cleanly and
/// is resumed, which also proves now and then that the server is alive.
pub const WATCH_SECONDS: u32 = 60;
/// How much longer than [`WATCH_SECONDS`] a watch may stay silent before it is abandoned.
pub const WATCH_IDLE_SLACK: Duration = Duration::from_secs(15);
/// First wait after a failed list or watch.
const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest wait between retries during an outage.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// What the consumer of a watch gets.
#[derive(Debug, Clone)]
pub enum Event<K> {
    Listed(Vec<K>),
    Applied(K),
    Deleted(K),
}

/// Which objects to watch.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub namespace: Option<String>,
    pub fields: Option<String>,
    pub labels: Option<String>,
}

impl Selector {
    fn api<K>(&self, client: kube::Client) -> kube::Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match &self.namespace {
            Some(ns) => kube::Api::namespaced(client, ns),
            None => kube::Api::all(client),
        }
    }
}

/// Why the inner watch loop stopped.
enum End {
    /// Resume from the last resourceVersion.
    Resume,
    /// 410 Gone: list again.
    Relist,
    Cancelled,
}

/// List and watch `selector`'s objects into `tx` until `cancel` fires or `tx` closes.
pub async fn run<K>(pool: Arc<ApiPool>, selector: Selector, tx: mpsc::Sender<Event<K>>, cancel: CancellationToken)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut delay = RETRY_MIN;
    while !cancel.is_cancelled() {
        let params = ListParams {
            field_selector: selector.fields.clone(),
            label_selector: selector.labels.clone(),
            ..ListParams::default()
        };
        let (sel, params) = (&selector, &params);
        let list = match pool.call(move |c| async move { sel.api::<K>(c).list(params).await }).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, "list failed; retrying");
                sleep(&mut delay, &cancel).await;
                continue;
            }
        };
        delay = RETRY_MIN;
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        if tx.send(Event::Listed(list.items)).await.is_err() {
            return;
        }
        loop {
            match watch_once(&pool, &selector, &mut version, &tx, &cancel).await {
                Ok(End::Cancelled) => return,
                Ok(End::Relist) => break,
                Ok(End::Resume) => delay = RETRY_MIN,
                Err(e) => {
                    tracing::warn!(kind = K::kind(&()).as_ref(), error = %e, version, "watch failed; resuming");
                    sleep(&mut delay, &cancel).await;
                }
            }
            if cancel.is_cancelled() {
                return;
            }
        }
    }
}

/// One watch request, from `version`, until it ends; keeps `version` up to date.
async fn watch_once<K>(
    pool: &ApiPool,
    selector: &Selector,
    version: &mut String,
    tx: &mpsc::Sender<Event<K>>,
    cancel: &CancellationToken,
) -> Result<End, AgentError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut params = WatchParams::default().timeout(WATCH_SECONDS);
    params.field_selector = selector.fields.clone();
    params.label_selector = selector.labels.clone();
    let (server, client) = pool.current();
    let opened = tokio::time::timeout(pool.request_timeout(), selector.api::<K>(client).watch(&params, version)).await;
    let stream = match opened {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let e = classify(e);
            return if e.is_gone() { Ok(End::Relist) } else { Err(failed(pool, server, e)) };
        }
        Err(_) => {
            return Err(failed(pool, server, AgentError::Unreachable { last: "watch did not open in time".into() }))
        }
    };
    let mut stream = stream.map_err(classify).boxed();
    let idle = Duration::from_secs(WATCH_SECONDS.into()) + WATCH_IDLE_SLACK;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Ok(End::Cancelled),
            next = tokio::time::timeout(idle, stream.next()) => next,
        };
        let event = match next {
            Err(_) => return Err(failed(pool, server, AgentError::Unreachable { last: "watch went silent".into() })),
            Ok(None) => return Ok(End::Resume),
            Ok(Some(Err(e))) => return Err(failed(pool, server, e)),
            Ok(Some(Ok(event))) => event,
        };
        let out = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                advance(version, &o);
                Event::Applied(o)
            }
            WatchEvent::Deleted(o) => {
                advance(version, &o);
                Event::Deleted(o)
            }
            WatchEvent::Bookmark(b) => {
                *version = b.metadata.resource_version;
                continue;
            }
            WatchEvent::Error(status) if status.code == 410 => return Ok(End::Relist),
            WatchEvent::Error(status) => {
                return Err(AgentError::Client(format!("watch error {}: {}", status.code, status.message)))
            }
        };
        if tx.send(out).await.is_err() {
            return Ok(End::Cancelled);
        }
    }
}

fn advance<K: Resource>(version: &mut String, object: &K) {
    if let Some(v) = object.meta().resource_version.as_ref() {
        version.clone_from(v);
    }
}

/// An unreachable server is failed over; the error is passed on.
fn failed(pool: &ApiPool, server: ServerId, e: AgentError) -> AgentError {
    if let AgentError::Unreachable { last } = &e {
        pool.failed(server, last);
    }
    e
}

async fn sleep(delay: &mut Duration, cancel: &CancellationToken) {
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = tokio::time::sleep(*delay) => {}
    }
    *delay = (*delay * 2).min(RETRY_MAX);
}
