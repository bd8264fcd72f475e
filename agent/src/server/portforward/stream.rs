//! [`Stream`]: the handle to one peer-opened SPDY stream, talking to its session.
//!
//! Data flows through channels owned by the session task (see `session.rs`):
//! - inbound: the session pushes [`Inbound`] items; the handle owner must call
//!   [`Stream::release`] once it has consumed a chunk, which lets the session grow the
//!   peer's window and, for peers that ignore windows, resume reading the socket;
//! - outbound: [`Stream::send`] waits until the session has framed the chunk inside the
//!   peer's flow-control window, so at most one chunk per stream waits in the session.
//!
//! Dropping a handle resets the stream if we had not finished it, and releases whatever
//! it received and did not release.

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::frame::rst;
use super::headers::HeaderBlock;

/// What the peer sent on a stream, in order. Nothing follows `Fin` or `Reset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Data(Bytes),
    /// The peer will send no more (it may still receive).
    Fin,
    /// The peer reset the stream, or the session ended.
    Reset,
}

/// The session is gone or the stream was reset; nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream closed")]
pub struct Closed;

/// Requests from stream handles to the session task.
///
/// The channel carrying them is unbounded, yet bounded in practice: each handle has at
/// most one `Send` outstanding (the caller awaits its ack), issues one `Release` per
/// received chunk (inbound bytes are bounded by the session), and one-shot commands
/// otherwise; handles are bounded by `MAX_STREAMS`. Unbounded lets `Drop` report.
#[derive(Debug)]
pub(super) enum Command {
    Reply { id: u32 },
    Send { id: u32, data: Bytes, fin: bool, done: oneshot::Sender<()> },
    Release { id: u32, len: usize },
    Reset { id: u32, status: u32 },
    Dropped { id: u32, unreleased: usize },
}

/// A stream the peer opened; see the module doc.
#[derive(Debug)]
pub struct Stream {
    id: u32,
    headers: HeaderBlock,
    inbound: mpsc::UnboundedReceiver<Inbound>,
    commands: mpsc::UnboundedSender<Command>,
    /// Bytes handed out by `recv` and not yet released.
    unreleased: usize,
}

impl Stream {
    pub(super) fn new(
        id: u32,
        headers: HeaderBlock,
        inbound: mpsc::UnboundedReceiver<Inbound>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self { id, headers, inbound, commands, unreleased: 0 }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the peer's SYN_STREAM.
    pub fn headers(&self) -> &HeaderBlock {
        &self.headers
    }

    /// Accepts the stream (SYN_REPLY). Must come before any [`Stream::send`].
    pub fn reply(&self) {
        let _ = self.commands.send(Command::Reply { id: self.id });
    }

    /// The next thing the peer sent; `Reset` once the session is gone.
    pub async fn recv(&mut self) -> Inbound {
        match self.inbound.recv().await {
            Some(Inbound::Data(data)) => {
                self.unreleased += data.len();
                Inbound::Data(data)
            }
            Some(other) => other,
            None => Inbound::Reset,
        }
    }

    /// Reports `len` received bytes as consumed, reopening the peer's window.
    pub fn release(&mut self, len: usize) {
        debug_assert!(len <= self.unreleased, "released more than received");
        let len = len.min(self.unreleased);
        self.unreleased -= len;
        let _ = self.commands.send(Command::Release { id: self.id, len });
    }

    /// A handle for the sending direction, usable while this one receives.
    pub fn sender(&self) -> StreamSender {
        StreamSender { id: self.id, commands: self.commands.clone() }
    }

    /// See [`StreamSender::send`].
    pub async fn send(&self, data: Bytes) -> Result<(), Closed> {
        self.sender().send(data).await
    }

    /// See [`StreamSender::finish`].
    pub async fn finish(&self) -> Result<(), Closed> {
        self.sender().finish().await
    }

    /// See [`StreamSender::send_and_finish`].
    pub async fn send_and_finish(&self, data: Bytes) -> Result<(), Closed> {
        self.sender().send_and_finish(data).await
    }

    /// Aborts the stream in both directions (RST_STREAM with `status`).
    pub fn reset(&self, status: u32) {
        let _ = self.commands.send(Command::Reset { id: self.id, status });
    }
}

/// The sending direction of a [`Stream`]; dropping it does nothing.
#[derive(Debug, Clone)]
pub struct StreamSender {
    id: u32,
    commands: mpsc::UnboundedSender<Command>,
}

impl StreamSender {
    /// Sends `data`, waiting until it is framed within the peer's window.
    pub async fn send(&self, data: Bytes) -> Result<(), Closed> {
        self.send_frame(data, false).await
    }

    /// Sends FIN: we will send nothing more on this stream.
    pub async fn finish(&self) -> Result<(), Closed> {
        self.send_frame(Bytes::new(), true).await
    }

    /// Sends FIN after `data`, in the same frame.
    pub async fn send_and_finish(&self, data: Bytes) -> Result<(), Closed> {
        self.send_frame(data, true).await
    }

    async fn send_frame(&self, data: Bytes, fin: bool) -> Result<(), Closed> {
        let (done, acked) = oneshot::channel();
        self.commands.send(Command::Send { id: self.id, data, fin, done }).map_err(|_| Closed)?;
        acked.await.map_err(|_| Closed)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Close first so the session cannot deliver (and count) more after the drain.
        self.inbound.close();
        let mut unreleased = self.unreleased;
        while let Ok(item) = self.inbound.try_recv() {
            if let Inbound::Data(data) = item {
                unreleased += data.len();
            }
        }
        let _ = self.commands.send(Command::Dropped { id: self.id, unreleased });
    }
}

/// Reset status for a stream whose handle is dropped before we finished it.
pub(super) const DROPPED_STATUS: u32 = rst::CANCEL;
