//! Kubernetes watches over store watches.
//!
//! A watch on a collection is a store watch on the collection's key prefix, translated to
//! ADDED / MODIFIED / DELETED events and filtered by the label and field selectors.
//!
//! Start rules (upstream's): no resourceVersion or "0" → synthetic ADDED events for every
//! matching object at the current revision R, then changes after R; `N` → changes after N;
//! a compacted N → one ERROR event carrying a 410 Expired Status, then the end.
//!
//! Invariants:
//! - Events come in revision order with nothing skipped (the store watcher guarantees it).
//! - Selectors are applied to both the old and the new state, so an object that stops
//!   matching is sent as DELETED and one that starts matching as ADDED: a client's cache
//!   built from the stream always equals a fresh filtered list.
//! - A bookmark at revision B is sent only when every event up to B has been sent.

use std::collections::VecDeque;
use std::time::Duration;

use flotilla_store::mvcc::EVENT_DELETE;
use flotilla_store::pb::PbEvent;
use flotilla_store::watch::{WatchItem, Watcher};
use serde_json::{json, Value};

use crate::encryption::Encryption;
use crate::error::{ApiError, ApiResult};
use crate::registry::{ListOptions, Registry};
use crate::resources::Resource;
use crate::selector::{FieldSelector, LabelSelector};
use crate::storage::{decode, set_resource_version, Storage};

/// How often an idle watch with `allowWatchBookmarks` reports its progress (upstream sends
/// about one a minute; clients only use them to restart cheaply).
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    Added(Value),
    Modified(Value),
    Deleted(Value),
    Bookmark(i64),
    Error(Value),
}

impl WatchEvent {
    /// The `{"type": ..., "object": ...}` line, with the object rendered by `render`
    /// (identity, or a one-row Table).
    pub fn to_json(&self, res: &Resource, render: impl Fn(&Value) -> Value) -> Value {
        match self {
            WatchEvent::Added(o) => json!({"type": "ADDED", "object": render(o)}),
            WatchEvent::Modified(o) => json!({"type": "MODIFIED", "object": render(o)}),
            WatchEvent::Deleted(o) => json!({"type": "DELETED", "object": render(o)}),
            WatchEvent::Bookmark(rv) => json!({"type": "BOOKMARK", "object": {
                "kind": res.kind, "apiVersion": res.api_version(),
                "metadata": {"resourceVersion": rv.to_string()}}}),
            WatchEvent::Error(status) => json!({"type": "ERROR", "object": status}),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    pub resource_version: Option<String>,
    pub label: Option<LabelSelector>,
    pub field: Option<FieldSelector>,
    pub bookmarks: bool,
    pub bookmark_interval: Option<Duration>,
}

/// A running watch: call [`EventStream::next`] until it returns `None`.
pub struct EventStream {
    res: &'static Resource,
    opts: WatchOptions,
    /// Opens sealed Secrets.
    enc: Option<std::sync::Arc<Encryption>>,
    watcher: Option<Watcher>,
    pending: VecDeque<WatchEvent>,
    bookmarks: Option<tokio::time::Interval>,
    /// The watch ended (after an ERROR event).
    done: bool,
}

impl Registry {
    /// Start a watch on `res` (in `ns`, when given).
    pub async fn watch(&self, res: &'static Resource, ns: Option<&str>, opts: WatchOptions) -> ApiResult<EventStream> {
        if let Some(f) = &opts.field {
            f.check_supported(res.plural).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        }
        let prefix = Storage::prefix(res, ns);
        let mut pending = VecDeque::new();
        let start = match opts.resource_version.as_deref().filter(|rv| !rv.is_empty()) {
            None | Some("0") => {
                let list_opts =
                    ListOptions { label: opts.label.clone(), field: opts.field.clone(), ..Default::default() };
                let list = self.list(res, ns, &list_opts).await?;
                pending.extend(list.items.into_iter().map(WatchEvent::Added));
                list.resource_version + 1
            }
            Some(rv) => {
                let rv: i64 = rv
                    .parse()
                    .ok()
                    .filter(|r| *r >= 0)
                    .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version: {rv}")))?;
                rv + 1
            }
        };
        let watcher = self.storage().watch(&prefix, start);
        let bookmarks = opts.bookmarks.then(|| {
            let every = opts.bookmark_interval.unwrap_or(BOOKMARK_INTERVAL);
            let mut i = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let enc = self.storage().encryption().cloned();
        Ok(EventStream { res, opts, enc, watcher: Some(watcher), pending, bookmarks, done: false })
    }
}

impl EventStream {
    /// The next event; `None` when the watch has ended. Cancel-safe.
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            let watcher = self.watcher.as_mut()?;
            let item = match self.bookmarks.as_mut() {
                Some(timer) => tokio::select! {
                    item = watcher.next() => item,
                    _ = timer.tick() => return Some(WatchEvent::Bookmark(watcher.next_revision() - 1)),
                },
                None => watcher.next().await,
            };
            match item {
                Some(WatchItem::Events { events, .. }) => {
                    for e in events {
                        if let Some(ev) = self.translate(e) {
                            self.pending.push_back(ev);
                        }
                    }
                }
                Some(WatchItem::Compacted { compact_revision }) => {
                    self.done = true;
                    let (_, status) = ApiError::Expired(format!(
                        "too old resource version: {} ({compact_revision})",
                        self.opts.resource_version.as_deref().unwrap_or("0")
                    ))
                    .status();
                    return Some(WatchEvent::Error(status));
                }
                None => return None,
            }
        }
    }

    /// The revision every event up to which has been delivered (for a final bookmark).
    pub fn progress(&self) -> Option<i64> {
        self.watcher.as_ref().map(|w| w.next_revision() - 1)
    }

    pub fn wants_bookmarks(&self) -> bool {
        self.opts.bookmarks
    }

    fn matches(&self, obj: &Value) -> bool {
        self.opts.label.as_ref().is_none_or(|l| l.matches_object(obj))
            && self.opts.field.as_ref().is_none_or(|f| f.matches(self.res.plural, obj))
    }

    /// One store event as a Kubernetes event, after the selectors.
    fn translate(&self, e: PbEvent) -> Option<WatchEvent> {
        let kv = e.kv?;
        let revision = kv.mod_revision;
        let old = e.prev_kv.and_then(|p| decode(self.enc.as_deref(), p).ok()).map(|s| s.object);
        if e.r#type == EVENT_DELETE {
            let mut old = old?;
            set_resource_version(&mut old, revision);
            return self.matches(&old).then_some(WatchEvent::Deleted(old));
        }
        let new = decode(self.enc.as_deref(), kv).ok()?.object;
        let was = old.as_ref().is_some_and(|o| self.matches(o));
        match (was, self.matches(&new)) {
            (true, true) => Some(WatchEvent::Modified(new)),
            (false, true) => Some(WatchEvent::Added(new)),
            (true, false) => Some(WatchEvent::Deleted(new)),
            (false, false) => None,
        }
    }
}
