//! The server side of one SPDY/3.1 session: a stream multiplexer with flow control.
//!
//! Data flow: a reader loop in the session task decodes frames from the byte stream and
//! updates the state; peer-opened streams go to the acceptor as [`Stream`] handles;
//! handles send [`Command`]s back; encoded frames go through a bounded queue to a writer
//! task that owns the write half. One task owns all state, so no locks.
//!
//! Invariants:
//! - Header blocks are (de)compressed in wire order by the session task alone, so both
//!   zlib contexts stay in step with the peer's.
//! - Streams opened by the peer have odd, increasing ids; others are refused with
//!   RST_STREAM, and at most [`MAX_STREAMS`] are open at once.
//! - Receive side: we grant the SPDY/3.1 default 64 KiB per stream and per session and
//!   send WINDOW_UPDATE as handles release data. We never reset a peer for overrunning a
//!   window, because kubectl's spdystream ignores flow control; instead the socket is not
//!   read while more than [`MAX_BUFFERED_INBOUND`] bytes wait in handles, which bounds
//!   memory (head-of-line blocking only for such peers).
//! - Send side: windows are always tracked, but only enforced once the peer has shown it
//!   does flow control (it sent SETTINGS or WINDOW_UPDATE); spdystream never sends
//!   WINDOW_UPDATE and would otherwise stall after 64 KiB. Once enforced, no DATA frame
//!   exceeds min(stream window, session window).
//! - Nothing is sent on a stream after its FIN or RST_STREAM; a stream is forgotten once
//!   both sides are closed or it was reset.
//! - The session ends when the peer's byte stream ends or breaks, or on a protocol error
//!   (after sending GOAWAY); then every handle sees [`Inbound::Reset`] and `send` fails.

use std::collections::{HashMap, VecDeque};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadHalf};
use tokio::sync::{mpsc, oneshot};

use super::frame::{self, goaway, rst, Frame, FrameError, FLAG_FIN, FLAG_UNIDIRECTIONAL};
use super::headers::{HeaderBlock, HeaderCompressor, HeaderDecompressor, HeaderError};
use super::stream::{Command, Inbound, Stream, DROPPED_STATUS};
use super::writer;

/// The SPDY/3.1 initial flow-control window, per stream and per session.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;

/// Streams open at once; each port-forward connection takes two.
pub const MAX_STREAMS: usize = 256;

/// Received bytes waiting in handles beyond which the socket is not read. A peer that
/// respects our 64 KiB session window never gets here; four windows of slack.
pub const MAX_BUFFERED_INBOUND: usize = 4 * DEFAULT_WINDOW as usize;

/// Encoded frames queued for the writer task; beyond this the session waits for the
/// socket, which is the backpressure we want when the peer reads slowly.
const WRITE_QUEUE: usize = 64;

/// Largest DATA frame we send; matches what the peer's window allows at most.
const MAX_DATA_FRAME: usize = DEFAULT_WINDOW as usize;

/// How reading the socket grows the buffer.
const READ_CHUNK: usize = 16 * 1024;

/// Why a session ended other than the peer going away.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("header block: {0}")]
    Header(#[from] HeaderError),
    #[error("reading the connection: {0}")]
    Io(#[from] std::io::Error),
}

struct StreamState {
    /// Where the peer's data goes; `None` once the peer sent FIN.
    inbound: Option<mpsc::UnboundedSender<Inbound>>,
    send_window: i64,
    /// Released bytes not yet granted back to the peer with WINDOW_UPDATE.
    recv_unacked: u32,
    pending: VecDeque<Pending>,
    /// We sent FIN (or the stream is unidirectional): nothing more to send.
    local_closed: bool,
    replied: bool,
}

struct Pending {
    data: Bytes,
    fin: bool,
    done: oneshot::Sender<()>,
}

/// Runs one session over `io` until the peer goes away; peer-opened streams go to
/// `accept`. Returns `Ok` when the peer closed the connection.
pub async fn run<S>(io: S, accept: mpsc::Sender<Stream>) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(WRITE_QUEUE);
    let writer_task = tokio::spawn(writer::write_frames(writer, out_rx, MAX_DATA_FRAME));
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let mut session = Session::new(out_tx, commands_tx, accept);
    let result = session.serve(&mut reader, commands).await;
    if let Err(e) = &result {
        let status = if matches!(e, SessionError::Io(_)) { goaway::INTERNAL_ERROR } else { goaway::PROTOCOL_ERROR };
        session.emit(Frame::GoAway { last_good_stream_id: session.last_peer_stream, status }).await;
    }
    drop(session); // closes the queue: the writer drains it and shuts the write half
    let _ = writer_task.await;
    match result {
        Err(SessionError::Io(e)) if is_disconnect(&e) => Ok(()),
        other => other,
    }
}

fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
}

struct Session {
    streams: HashMap<u32, StreamState>,
    /// Highest stream id the peer opened (0 before any).
    last_peer_stream: u32,
    session_send_window: i64,
    session_recv_unacked: u32,
    /// Send window of new streams (the peer's SETTINGS_INITIAL_WINDOW_SIZE).
    initial_send_window: i64,
    enforce_send_window: bool,
    /// Bytes delivered to handles and not yet released (see MAX_BUFFERED_INBOUND).
    buffered: usize,
    peer_going_away: bool,
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
    out: mpsc::Sender<Bytes>,
    commands_tx: mpsc::UnboundedSender<Command>,
    accept: mpsc::Sender<Stream>,
}

impl Session {
    fn new(
        out: mpsc::Sender<Bytes>,
        commands_tx: mpsc::UnboundedSender<Command>,
        accept: mpsc::Sender<Stream>,
    ) -> Self {
        Self {
            streams: HashMap::new(),
            last_peer_stream: 0,
            session_send_window: i64::from(DEFAULT_WINDOW),
            session_recv_unacked: 0,
            initial_send_window: i64::from(DEFAULT_WINDOW),
            enforce_send_window: false,
            buffered: 0,
            peer_going_away: false,
            compressor: HeaderCompressor::new(),
            decompressor: HeaderDecompressor::new(),
            out,
            commands_tx,
            accept,
        }
    }

    async fn serve<R: AsyncRead>(
        &mut self,
        reader: &mut ReadHalf<R>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> Result<(), SessionError> {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            tokio::select! {
                read = reader.read_buf(&mut buf), if self.buffered < MAX_BUFFERED_INBOUND => {
                    if read? == 0 {
                        return Ok(());
                    }
                    while let Some(frame) = Frame::decode(&mut buf)? {
                        self.on_frame(frame).await?;
                    }
                    buf.reserve(READ_CHUNK);
                }
                Some(command) = commands.recv() => self.on_command(command).await?,
            }
        }
    }

    /// Queues one frame for the writer; a closed queue means the connection is gone,
    /// which the reader notices on its own.
    async fn emit(&mut self, frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let _ = self.out.send(buf.freeze()).await;
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), SessionError> {
        match frame {
            Frame::SynStream { stream_id, flags, header_block, .. } => {
                // Decompress even refused streams: the zlib context must stay in step.
                let headers = self.decompressor.decompress(&header_block)?;
                self.on_syn_stream(stream_id, flags, headers).await;
            }
            Frame::SynReply { stream_id, header_block, .. } => {
                self.decompressor.decompress(&header_block)?;
                self.emit(Frame::RstStream { stream_id, status: rst::PROTOCOL_ERROR }).await;
            }
            Frame::Headers { stream_id, flags, header_block } => {
                self.decompressor.decompress(&header_block)?;
                if flags & FLAG_FIN != 0 {
                    self.on_data(stream_id, FLAG_FIN, Bytes::new()).await;
                }
            }
            Frame::Data { stream_id, flags, data } => self.on_data(stream_id, flags, data).await,
            Frame::RstStream { stream_id, .. } => self.close_stream(stream_id),
            Frame::Settings { entries, .. } => {
                for setting in entries.iter().filter(|s| s.id == frame::SETTINGS_INITIAL_WINDOW_SIZE) {
                    let delta = i64::from(setting.value) - self.initial_send_window;
                    self.initial_send_window = i64::from(setting.value);
                    self.streams.values_mut().for_each(|s| s.send_window += delta);
                }
                self.enforce_send_window = true;
                self.flush_all().await;
            }
            // Odd ids are the client's pings, to be echoed; even ones would be our own.
            Frame::Ping { id } if id % 2 == 1 => self.emit(Frame::Ping { id }).await,
            Frame::Ping { .. } | Frame::Unknown { .. } => {}
            Frame::GoAway { .. } => self.peer_going_away = true,
            Frame::WindowUpdate { stream_id, delta } => {
                if stream_id == 0 {
                    self.session_send_window += i64::from(delta);
                } else if let Some(s) = self.streams.get_mut(&stream_id) {
                    s.send_window += i64::from(delta);
                }
                self.enforce_send_window = true;
                self.flush_all().await;
            }
        }
        Ok(())
    }

    async fn on_syn_stream(&mut self, id: u32, flags: u8, headers: HeaderBlock) {
        if id % 2 == 0 || id <= self.last_peer_stream {
            return self.emit(Frame::RstStream { stream_id: id, status: rst::PROTOCOL_ERROR }).await;
        }
        self.last_peer_stream = id;
        if self.peer_going_away || self.streams.len() >= MAX_STREAMS {
            return self.emit(Frame::RstStream { stream_id: id, status: rst::REFUSED_STREAM }).await;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut state = StreamState {
            inbound: Some(tx),
            send_window: self.initial_send_window,
            recv_unacked: 0,
            pending: VecDeque::new(),
            local_closed: flags & FLAG_UNIDIRECTIONAL != 0,
            replied: false,
        };
        if flags & FLAG_FIN != 0 {
            let _ = state.inbound.take().map(|tx| tx.send(Inbound::Fin));
        }
        self.streams.insert(id, state);
        let handle = Stream::new(id, headers, rx, self.commands_tx.clone());
        if self.accept.send(handle).await.is_err() {
            // Nobody accepts streams any more; the dropped handle resets this one.
            tracing::debug!(stream = id, "port-forward stream arrived after the acceptor stopped");
        }
    }

    async fn on_data(&mut self, id: u32, flags: u8, data: Bytes) {
        let len = data.len();
        let delivered = match self.streams.get_mut(&id).and_then(|s| s.inbound.as_ref()) {
            Some(tx) => len > 0 && tx.send(Inbound::Data(data)).is_ok(),
            None => {
                if id > self.last_peer_stream {
                    self.emit(Frame::RstStream { stream_id: id, status: rst::INVALID_STREAM }).await;
                }
                false
            }
        };
        if delivered {
            self.buffered += len;
        } else {
            self.grant(0, len).await; // nobody will release these bytes
        }
        if flags & FLAG_FIN != 0 {
            if let Some(s) = self.streams.get_mut(&id) {
                let _ = s.inbound.take().map(|tx| tx.send(Inbound::Fin));
                if s.local_closed {
                    self.streams.remove(&id);
                }
            }
        }
    }

    /// Forgets a stream (peer reset, or we reset it): its handle sees `Reset` and its
    /// waiting sends fail.
    fn close_stream(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            let _ = s.inbound.map(|tx| tx.send(Inbound::Reset));
        }
    }

    async fn on_command(&mut self, command: Command) -> Result<(), SessionError> {
        match command {
            Command::Reply { id } => {
                if let Some(s) = self.streams.get_mut(&id).filter(|s| !s.replied) {
                    s.replied = true;
                    let header_block = self.compressor.compress(&HeaderBlock::default())?;
                    self.emit(Frame::SynReply { stream_id: id, flags: 0, header_block }).await;
                }
            }
            Command::Send { id, data, fin, done } => {
                if let Some(s) = self.streams.get_mut(&id).filter(|s| !s.local_closed) {
                    debug_assert!(s.replied, "data sent before SYN_REPLY");
                    s.pending.push_back(Pending { data, fin, done });
                    self.flush(id).await;
                }
            }
            Command::Release { id, len } => {
                self.buffered -= len;
                self.grant(id, len).await;
            }
            Command::Reset { id, status } => {
                if self.streams.contains_key(&id) {
                    self.close_stream(id);
                    self.emit(Frame::RstStream { stream_id: id, status }).await;
                }
            }
            Command::Dropped { id, unreleased } => {
                self.buffered -= unreleased;
                self.grant(id, unreleased).await;
                if let Some(s) = self.streams.remove(&id) {
                    if !s.local_closed {
                        self.emit(Frame::RstStream { stream_id: id, status: DROPPED_STATUS }).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Credits `len` consumed bytes to the session window and, when `id` is an open
    /// stream, to its window; sends WINDOW_UPDATE once half a window is owed.
    async fn grant(&mut self, id: u32, len: usize) {
        let len = u32::try_from(len).expect("frames are far below 4 GiB");
        let mut updates = Vec::new();
        if let Some(s) = self.streams.get_mut(&id).filter(|s| s.inbound.is_some()) {
            s.recv_unacked += len;
            if s.recv_unacked >= DEFAULT_WINDOW / 2 {
                updates.push(Frame::WindowUpdate { stream_id: id, delta: std::mem::take(&mut s.recv_unacked) });
            }
        }
        self.session_recv_unacked += len;
        if self.session_recv_unacked >= DEFAULT_WINDOW / 2 {
            updates.push(Frame::WindowUpdate { stream_id: 0, delta: std::mem::take(&mut self.session_recv_unacked) });
        }
        for update in updates {
            self.emit(update).await;
        }
    }

    async fn flush_all(&mut self) {
        let waiting: Vec<u32> = self.streams.iter().filter(|(_, s)| !s.pending.is_empty()).map(|(id, _)| *id).collect();
        for id in waiting {
            self.flush(id).await;
        }
    }

    /// Frames as much of stream `id`'s pending output as the windows allow.
    async fn flush(&mut self, id: u32) {
        loop {
            let enforce = self.enforce_send_window;
            let session_window = self.session_send_window;
            let Some(s) = self.streams.get_mut(&id) else { return };
            let Some(p) = s.pending.front_mut() else { return };
            let allowed = if enforce { s.send_window.min(session_window).max(0) as usize } else { usize::MAX };
            let n = p.data.len().min(allowed).min(MAX_DATA_FRAME);
            if n == 0 && !p.data.is_empty() {
                return; // wait for WINDOW_UPDATE
            }
            let chunk = p.data.split_to(n);
            let last = p.data.is_empty();
            let fin = last && p.fin;
            s.send_window -= n as i64;
            if last {
                let p = s.pending.pop_front().expect("front exists");
                let _ = p.done.send(());
                s.local_closed |= fin;
            }
            let remove = fin && s.inbound.is_none();
            self.session_send_window -= n as i64;
            if remove {
                self.streams.remove(&id);
            }
            self.emit(Frame::Data { stream_id: id, flags: if fin { FLAG_FIN } else { 0 }, data: chunk }).await;
        }
    }
}
