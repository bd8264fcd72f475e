//! The etcd `Watch` service: one bidirectional stream carries many watches.
//!
//! Per stream, one task reads the client's requests and owns the stream's watches; each
//! watch is a task of its own ([`task::WatchTask`]) that feeds the stream's bounded
//! outgoing queue. A slow client fills that queue and so blocks only its own stream's
//! watch tasks; apply never waits (watchers catch up from history).
//!
//! Protocol, as etcd 3.4 (`v3rpc/watch.go`):
//! - create: answered first with `created: true` and the watch ID (assigned per stream from
//!   0 when the client passes 0), then events. A refused create (negative start revision,
//!   empty range, ID already in use) is answered `created: true, canceled: true` with
//!   watch ID -1 and a `cancel_reason`. An empty key means `"\0"`, the smallest key.
//! - a watch whose start revision is compacted is created, then answered with
//!   `compact_revision` and `canceled: true`, and ends.
//! - cancel: the watch stops, then `canceled: true` is sent; an unknown ID gets no answer.
//! - progress request: once every watch of the stream has sent all events up to the
//!   current revision R (and none newer), one response with watch ID -1 and header revision
//!   R (at once when the stream has no watch, as etcd 3.4). Nothing is sent while a watch
//!   starts after R (as etcd 3.5+: a client would take R as that watch's progress).
//! - `progress_notify`: a watch that sent no events for [`PROGRESS_NOTIFY_INTERVAL`] gets an
//!   empty response at the current revision.
//!
//! The stream ends when the client goes away (a client that only half-closes its request
//! side keeps receiving events, as with etcd), or with "server stopped" once the node has
//! shut down. Ending the stream cancels and joins every watch task. A client that asks for a leader (`hasleader: true` metadata, set by etcdctl
//! and clientv3's `WithRequireLeader`) is refused without one, and its stream ends with
//! "no leader" when the member loses its leader for two election timeouts.

mod fragment;
mod task;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use self::task::{Control, Out, Spec, WatchTask};
use super::{check_leader, has_leader, requires_leader, status};
use crate::error::StoreError;
use crate::mvcc::key_range::KeyRange;
use crate::node::StoreNode;
use crate::pb::{PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService};

/// How long a watch with `progress_notify` may stay quiet before it is told the current
/// revision; etcd's default (`--experimental-watch-progress-notify-interval`).
pub const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// Responses queued per stream before its watch tasks wait for the client to read. Enough
/// to absorb a burst of small revisions; with merged responses of about
/// [`task::MERGE_BYTES`] it bounds what a stalled client pins to a few MiB.
const STREAM_BUFFER: usize = 16;

/// Control messages queued per watch. The stream sends one and waits for its answer before
/// sending another, so one slot suffices.
const CONTROL_BUFFER: usize = 1;

/// Filter values of `WatchCreateRequest.filters`.
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;

/// Leader checks without a leader after which a leader-requiring stream ends.
const LEADERLESS_CHECKS: u32 = 2;

#[derive(Clone)]
pub struct WatchService {
    node: Arc<StoreNode>,
    progress_notify_interval: Duration,
}

impl WatchService {
    pub fn new(node: Arc<StoreNode>) -> Self {
        Self { node, progress_notify_interval: PROGRESS_NOTIFY_INTERVAL }
    }

    /// Change how long a `progress_notify` watch stays quiet before a notification.
    pub fn with_progress_notify_interval(mut self, interval: Duration) -> Self {
        self.progress_notify_interval = interval;
        self
    }
}

#[tonic::async_trait]
impl PbWatchService for WatchService {
    type WatchStream = ReceiverStream<Result<PbWatchResponse, Status>>;

    async fn watch(&self, req: Request<Streaming<PbWatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        check_leader(&req, &self.node)?;
        let require_leader = requires_leader(&req);
        let (out, rx) = mpsc::channel(STREAM_BUFFER);
        let stream = WatchStream {
            node: self.node.clone(),
            out,
            progress_notify_interval: self.progress_notify_interval,
            require_leader,
            watches: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(stream.run(req.into_inner()));
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A running watch, as its stream sees it.
struct Watch {
    control: mpsc::Sender<Control>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The client is gone: the stream is over.
struct Gone;

/// What a create request asks for (the request type itself is not exported by etcd-client).
struct Create {
    key: Vec<u8>,
    range_end: Vec<u8>,
    start_revision: i64,
    progress_notify: bool,
    filters: Vec<i32>,
    prev_kv: bool,
    watch_id: i64,
    fragment: bool,
}

struct WatchStream {
    node: Arc<StoreNode>,
    out: Out,
    progress_notify_interval: Duration,
    require_leader: bool,
    /// Watches by ID, including finished ones until the client cancels them (as etcd).
    watches: BTreeMap<i64, Watch>,
    /// The next ID to try when the client lets the server choose.
    next_id: i64,
}

impl WatchStream {
    async fn run(mut self, requests: Streaming<PbWatchRequest>) {
        let ended = self.serve(requests).await;
        for w in self.watches.values() {
            w.cancel.cancel();
        }
        for (_, w) in std::mem::take(&mut self.watches) {
            let _ = w.task.await;
        }
        if let Err(e) = ended {
            // The stream ends with this status; a client too far behind to take it just
            // sees the stream end.
            let _ = self.out.try_send(Err(e));
        }
    }

    async fn serve(&mut self, mut requests: Streaming<PbWatchRequest>) -> Result<(), Status> {
        let mut health_check = tokio::time::interval(self.node.config().election_timeout);
        let mut leaderless = 0;
        let mut reading = true;
        loop {
            let next = tokio::select! {
                () = self.out.closed() => return Ok(()),
                next = requests.message(), if reading => next,
                _ = health_check.tick() => {
                    if self.node.raft().metrics().borrow().running_state.is_err() {
                        return Err(status(StoreError::Stopped));
                    }
                    leaderless = if has_leader(&self.node) { 0 } else { leaderless + 1 };
                    if self.require_leader && leaderless >= LEADERLESS_CHECKS {
                        return Err(status(StoreError::NoLeader));
                    }
                    continue;
                }
            };
            let handled = match next {
                Ok(Some(req)) => self.handle(req).await,
                Ok(None) => {
                    reading = false;
                    Ok(())
                }
                Err(e) => {
                    tracing::debug!(error = %e, "watch stream receive failed");
                    return Ok(());
                }
            };
            if let Err(Gone) = handled {
                return Ok(());
            }
        }
    }

    async fn handle(&mut self, req: PbWatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let c = Create {
                    key: c.key,
                    range_end: c.range_end,
                    start_revision: c.start_revision,
                    progress_notify: c.progress_notify,
                    filters: c.filters,
                    prev_kv: c.prev_kv,
                    watch_id: c.watch_id,
                    fragment: c.fragment,
                };
                self.create(c).await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => self.cancel(c.watch_id).await,
            Some(PbWatchRequestUnion::ProgressRequest(_)) => self.progress().await,
            None => Ok(()),
        }
    }

    async fn create(&mut self, c: Create) -> Result<(), Gone> {
        let key = if c.key.is_empty() { vec![0] } else { c.key };
        if c.start_revision < 0 {
            return self.refuse_create("etcdserver: mvcc: required revision has been compacted").await;
        }
        if !c.range_end.is_empty() && c.range_end != [0] && key >= c.range_end {
            return self.refuse_create("mvcc: watcher range is empty").await;
        }
        let id = if c.watch_id == 0 {
            while self.watches.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        } else if self.watches.contains_key(&c.watch_id) {
            return self.refuse_create("mvcc: duplicate watch ID provided on the WatchStream").await;
        } else {
            c.watch_id
        };
        let watcher = self.node.watch(KeyRange::new(&key, &c.range_end), c.start_revision);
        let mut header = self.node.header();
        if c.start_revision == 0 {
            // The watch sees everything after the revision it was created at; say which.
            header.revision = watcher.next_revision() - 1;
        }
        self.send(PbWatchResponse { header: Some(header), watch_id: id, created: true, ..Default::default() }).await?;

        let (control_tx, control) = mpsc::channel(CONTROL_BUFFER);
        let cancel = CancellationToken::new();
        let task = WatchTask {
            spec: Spec {
                id,
                start_revision: c.start_revision,
                no_put: c.filters.contains(&FILTER_NOPUT),
                no_delete: c.filters.contains(&FILTER_NODELETE),
                prev_kv: c.prev_kv,
                fragment: c.fragment,
                progress_notify: c.progress_notify.then_some(self.progress_notify_interval),
            },
            watcher,
            node: self.node.clone(),
            out: self.out.clone(),
            control,
            cancel: cancel.clone(),
            held: None,
            sent_events: false,
        };
        let task = tokio::spawn(task.run());
        self.watches.insert(id, Watch { control: control_tx, cancel, task });
        Ok(())
    }

    async fn refuse_create(&self, reason: &str) -> Result<(), Gone> {
        self.send(PbWatchResponse {
            header: Some(self.node.header()),
            watch_id: -1,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        })
        .await
    }

    async fn cancel(&mut self, id: i64) -> Result<(), Gone> {
        let Some(w) = self.watches.remove(&id) else { return Ok(()) };
        w.cancel.cancel();
        // Joined before answering, so no event of this watch follows the answer.
        let _ = w.task.await;
        self.send(PbWatchResponse {
            header: Some(self.node.header()),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await
    }

    /// Bring every watch to the current revision, hold them there, announce it, release.
    async fn progress(&mut self) -> Result<(), Gone> {
        let revision = self.node.current_revision();
        let release = CancellationToken::new();
        let _release_on_return = release.clone().drop_guard();
        let mut acks = Vec::new();
        for w in self.watches.values() {
            let (ack, acked) = oneshot::channel();
            let sync = Control::Sync { revision, ack, release: release.clone() };
            tokio::select! {
                () = self.out.closed() => return Err(Gone),
                // A finished watch has dropped its receiver: nothing to wait for.
                sent = w.control.send(sync) => if sent.is_ok() { acks.push(acked) },
            }
        }
        let mut report = true;
        for acked in acks {
            tokio::select! {
                () = self.out.closed() => return Err(Gone),
                // A watch that ended meanwhile (compacted, say) does not hold progress back.
                ok = acked => report &= ok.unwrap_or(true),
            }
        }
        if !report {
            return Ok(());
        }
        let mut header = self.node.header();
        header.revision = revision;
        self.send(PbWatchResponse { header: Some(header), watch_id: -1, ..Default::default() }).await
    }

    async fn send(&self, resp: PbWatchResponse) -> Result<(), Gone> {
        self.out.send(Ok(resp)).await.map_err(|_| Gone)
    }
}
