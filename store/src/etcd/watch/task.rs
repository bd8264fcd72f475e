//! One watch of a watch stream: a task that turns a [`Watcher`]'s items into
//! `WatchResponse`s on the stream's outgoing queue.
//!
//! Per response: the watch's filters (NOPUT, NODELETE) are applied, `prev_kv` is stripped
//! unless asked for, revisions that filter to nothing are skipped, and whatever revisions
//! the watcher already has in hand are merged into one response up to [`MERGE_BYTES`]; a
//! revision is never split, unless the watch asked for fragments (see [`super::fragment`]).
//!
//! Progress: asked to sync to revision X (a progress request for the stream, or this watch's
//! own progress-notify tick), the task sends every event up to X and nothing newer. It is
//! synced once its watcher has nothing in hand and expects revision X+1 or later next. A
//! revision that is applied but whose watch notice is not yet published shows up as "not
//! yet synced", so the task waits for the notice, polling every [`SYNC_POLL`].

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Interval;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::config::MAX_REQUEST_BYTES;
use crate::mvcc::{EVENT_DELETE, EVENT_PUT};
use crate::node::StoreNode;
use crate::pb::{PbEvent, PbWatchResponse};
use crate::watch::{WatchItem, Watcher};

/// The stream's outgoing responses.
pub(super) type Out = mpsc::Sender<Result<PbWatchResponse, Status>>;

/// Merging revisions into one response stops before it would pass this many bytes of
/// events: enough to make catching up cheap, small enough that a stalled client's queue
/// ([`super::STREAM_BUFFER`] responses) pins little memory. A single revision may be larger.
pub const MERGE_BYTES: usize = 256 * 1024;

/// How often a task checks whether a revision it must sync to has reached it. The gap it
/// covers (apply done, notice not yet published) lasts microseconds, so this is rarely hit.
const SYNC_POLL: Duration = Duration::from_millis(5);

/// What a watch was created with.
pub(super) struct Spec {
    pub id: i64,
    /// The requested start revision (0: from now).
    pub start_revision: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    /// Cut responses larger than the request limit into fragments.
    pub fragment: bool,
    /// Send a progress notification after each quiet period this long.
    pub progress_notify: Option<Duration>,
}

/// Requests from the stream to one of its watch tasks.
pub(super) enum Control {
    /// Send every event up to `revision` and nothing newer; then acknowledge (true if this
    /// watch may be told of progress at `revision`) and hold further events until `release`.
    Sync { revision: i64, ack: oneshot::Sender<bool>, release: CancellationToken },
}

/// The task has stopped: canceled, compacted, the client went away, or the node stopped.
struct Ended;

pub(super) struct WatchTask {
    pub spec: Spec,
    pub watcher: Watcher,
    pub node: Arc<StoreNode>,
    pub out: Out,
    pub control: mpsc::Receiver<Control>,
    pub cancel: CancellationToken,
    /// An item read but not sent yet: past a sync point or past the merge budget.
    pub held: Option<WatchItem>,
    /// Events were sent since the last progress tick (etcd then skips the notification).
    pub sent_events: bool,
}

impl WatchTask {
    pub(super) async fn run(mut self) {
        let mut ticker = self.spec.progress_notify.map(|period| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let Err(Ended) = self.serve(&mut ticker).await;
    }

    async fn serve(&mut self, ticker: &mut Option<Interval>) -> Result<std::convert::Infallible, Ended> {
        loop {
            if let Some(item) = self.held.take() {
                self.deliver(item, None).await?;
                continue;
            }
            tokio::select! {
                biased;
                () = self.cancel.cancelled() => return Err(Ended),
                control = self.control.recv() => match control {
                    Some(Control::Sync { revision, ack, release }) => {
                        self.sync_to(revision).await?;
                        let _ = ack.send(self.may_report(revision));
                        tokio::select! {
                            biased;
                            () = self.cancel.cancelled() => return Err(Ended),
                            () = release.cancelled() => {}
                        }
                    }
                    None => return Err(Ended),
                },
                () = tick(ticker) => {
                    if !std::mem::replace(&mut self.sent_events, false) {
                        let revision = self.node.current_revision();
                        self.sync_to(revision).await?;
                        if self.may_report(revision) {
                            self.send(self.response(revision, Vec::new())).await?;
                        }
                    }
                }
                item = self.watcher.next() => match item {
                    Some(item) => self.deliver(item, None).await?,
                    None => return Err(Ended),
                },
            }
        }
    }

    /// etcd reports no progress below a watch's requested start revision.
    fn may_report(&self, revision: i64) -> bool {
        revision >= self.spec.start_revision
    }

    /// Send `first` merged with whatever else is already read, never past `limit`.
    async fn deliver(&mut self, first: WatchItem, limit: Option<i64>) -> Result<(), Ended> {
        let (mut last, mut events) = match first {
            WatchItem::Compacted { compact_revision } => {
                let resp = PbWatchResponse {
                    header: Some(self.node.header()),
                    watch_id: self.spec.id,
                    canceled: true,
                    compact_revision,
                    ..Default::default()
                };
                self.send(resp).await?;
                return Err(Ended);
            }
            WatchItem::Events { revision, events } => (revision, self.filter(events)),
        };
        let mut bytes: usize = events.iter().map(Message::encoded_len).sum();
        while let Some(Some(item)) = self.watcher.next().now_or_never() {
            match item {
                WatchItem::Events { revision, events: more } if limit.is_none_or(|l| revision <= l) => {
                    let more = self.filter(more);
                    let more_bytes: usize = more.iter().map(Message::encoded_len).sum();
                    if !events.is_empty() && bytes + more_bytes > MERGE_BYTES {
                        self.held = Some(WatchItem::Events { revision, events: more });
                        break;
                    }
                    events.extend(more);
                    bytes += more_bytes;
                    last = revision;
                }
                other => {
                    self.held = Some(other);
                    break;
                }
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        let resp = self.response(last, events);
        if self.spec.fragment {
            for part in super::fragment::split(resp, MAX_REQUEST_BYTES) {
                self.send(part).await?;
            }
        } else {
            self.send(resp).await?;
        }
        self.sent_events = true;
        Ok(())
    }

    /// Send every event up to `revision` and hold anything newer.
    async fn sync_to(&mut self, revision: i64) -> Result<(), Ended> {
        loop {
            match self.held.take() {
                Some(WatchItem::Events { revision: r, events }) if r > revision => {
                    // Items come in revision order: everything before this one is sent.
                    self.held = Some(WatchItem::Events { revision: r, events });
                    return Ok(());
                }
                Some(item) => {
                    self.deliver(item, Some(revision)).await?;
                    continue;
                }
                None => {}
            }
            match self.watcher.next().now_or_never() {
                Some(Some(item)) => self.held = Some(item),
                Some(None) => return Err(Ended),
                None if self.watcher.next_revision() > revision => return Ok(()),
                None => {
                    tokio::select! {
                        biased;
                        () = self.cancel.cancelled() => return Err(Ended),
                        item = self.watcher.next() => self.held = Some(item.ok_or(Ended)?),
                        () = tokio::time::sleep(SYNC_POLL) => {}
                    }
                }
            }
        }
    }

    /// Apply the watch's filters and drop `prev_kv` unless asked for.
    fn filter(&self, events: Vec<PbEvent>) -> Vec<PbEvent> {
        events
            .into_iter()
            .filter(|e| match e.r#type {
                EVENT_PUT => !self.spec.no_put,
                EVENT_DELETE => !self.spec.no_delete,
                _ => true,
            })
            .map(|mut e| {
                if !self.spec.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }

    /// A response for this watch; its header revision is the last revision it covers.
    fn response(&self, revision: i64, events: Vec<PbEvent>) -> PbWatchResponse {
        let mut header = self.node.header();
        header.revision = revision;
        PbWatchResponse { header: Some(header), watch_id: self.spec.id, events, ..Default::default() }
    }

    /// Queue a response; gives up if the watch is canceled or the client is gone.
    async fn send(&self, resp: PbWatchResponse) -> Result<(), Ended> {
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Ended),
            sent = self.out.send(Ok(resp)) => sent.map_err(|_| Ended),
        }
    }
}

/// The next progress tick, or never when the watch did not ask for progress.
async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
