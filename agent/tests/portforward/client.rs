//! A tiny SPDY/3.1 port-forward client for the tests, built on the agent's codec.
//!
//! It behaves like kubectl (error stream, then data stream, `requestid` headers), in one
//! of two modes: `FlowControl::Honour` announces a stream window with SETTINGS, checks
//! that the server never exceeds what it granted, grants back what it received, and
//! sends within the server's windows; `FlowControl::Ignore` behaves like spdystream:
//! no SETTINGS, no WINDOW_UPDATE, sends without looking at windows.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use flotilla_agent::server::portforward::frame::{Frame, Setting, FLAG_FIN, SETTINGS_INITIAL_WINDOW_SIZE};
use flotilla_agent::server::portforward::headers::{HeaderBlock, HeaderCompressor, HeaderDecompressor};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

pub const SERVER_WINDOW: i64 = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FlowControl {
    /// Announce this per-stream window and honour/check windows both ways.
    Honour {
        stream_window: u32,
    },
    Ignore,
}

/// What the server sent on one stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Data(Bytes),
    Fin,
    Reset(u32),
}

#[derive(Default)]
struct Shared {
    /// Our send windows as granted by the server (stream 0 = session).
    send_windows: HashMap<u32, i64>,
    /// What the server may still send us (stream 0 = session), when honouring.
    recv_windows: HashMap<u32, i64>,
    replies: Vec<u32>,
    inbound: HashMap<u32, mpsc::UnboundedSender<Event>>,
    /// WINDOW_UPDATE frames received, per stream id.
    updates_received: HashMap<u32, usize>,
    pings: Vec<u32>,
    goaway: Option<u32>,
    violation: Option<String>,
}

type Writer = Arc<tokio::sync::Mutex<(WriteHalf<DuplexStream>, HeaderCompressor)>>;

pub struct Client {
    writer: Writer,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    mode: FlowControl,
    next_id: Mutex<u32>,
    _reader: JoinHandle<()>,
    pub server: JoinHandle<()>,
}

impl Client {
    /// Starts `serve_io` on one end of a pipe and this client on the other.
    pub async fn connect(pod_ip: IpAddr, mode: FlowControl) -> Client {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(flotilla_agent::server::portforward::serve_io(theirs, pod_ip));
        let (read, write) = tokio::io::split(ours);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let changed = Arc::new(Notify::new());
        let writer: Writer = Arc::new(tokio::sync::Mutex::new((write, HeaderCompressor::new())));
        let reader = tokio::spawn(read_frames(read, writer.clone(), shared.clone(), changed.clone(), mode));
        let client = Client { writer, shared, changed, mode, next_id: Mutex::new(1), _reader: reader, server };
        shared_init(&client.shared, mode);
        if let FlowControl::Honour { stream_window } = mode {
            let entry = Setting { flags: 0, id: SETTINGS_INITIAL_WINDOW_SIZE, value: stream_window };
            client.write(Frame::Settings { flags: 0, entries: vec![entry] }).await;
        }
        client
    }

    pub async fn write(&self, frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let mut w = self.writer.lock().await;
        let _ = w.0.write_all(&buf).await;
    }

    /// Closes our side of the connection.
    pub async fn close(&self) {
        let _ = self.writer.lock().await.0.shutdown().await;
    }

    /// Opens one stream with `headers` and waits for its SYN_REPLY.
    pub async fn open(&self, headers: HeaderBlock) -> (u32, mpsc::UnboundedReceiver<Event>) {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            let id = *next;
            *next += 2;
            id
        };
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut s = self.shared.lock().unwrap();
            s.inbound.insert(id, tx);
            let w = match self.mode {
                FlowControl::Honour { stream_window } => i64::from(stream_window),
                FlowControl::Ignore => i64::MAX / 2,
            };
            s.recv_windows.insert(id, w);
            s.send_windows.insert(id, SERVER_WINDOW);
        }
        {
            let mut w = self.writer.lock().await;
            let header_block = w.1.compress(&headers).expect("compress");
            let frame = Frame::SynStream { stream_id: id, associated_id: 0, priority: 0, flags: 0, header_block };
            let mut buf = BytesMut::new();
            frame.encode(&mut buf);
            w.0.write_all(&buf).await.expect("write SYN_STREAM");
        }
        self.wait(|s| s.replies.contains(&id) || !s.inbound.contains_key(&id) || s.goaway.is_some()).await;
        (id, rx)
    }

    /// Opens a kubectl-style request: error stream (finished at once), then data stream.
    pub async fn open_request(&self, port: u16, request: u32) -> Request {
        let headers = |kind: &str| {
            HeaderBlock::default()
                .with("streamType", kind)
                .with("port", &port.to_string())
                .with("requestID", &request.to_string())
        };
        let (error_id, error) = self.open(headers("error")).await;
        self.write(Frame::Data { stream_id: error_id, flags: FLAG_FIN, data: Bytes::new() }).await;
        let (data_id, data) = self.open(headers("data")).await;
        Request { error_id, error, data_id, data }
    }

    /// Sends `data` on `id`, within the server's windows when honouring them.
    pub async fn send(&self, id: u32, mut data: Bytes, fin: bool) {
        while !data.is_empty() {
            let n = match self.mode {
                FlowControl::Ignore => data.len().min(32 * 1024),
                FlowControl::Honour { .. } => {
                    let window = self.wait_window(id).await;
                    data.len().min(window).min(32 * 1024)
                }
            };
            {
                let mut s = self.shared.lock().unwrap();
                *s.send_windows.get_mut(&id).expect("open stream") -= n as i64;
                *s.send_windows.get_mut(&0).expect("session") -= n as i64;
            }
            let chunk = data.split_to(n);
            let flags = if fin && data.is_empty() { FLAG_FIN } else { 0 };
            self.write(Frame::Data { stream_id: id, flags, data: chunk }).await;
        }
    }

    pub async fn finish(&self, id: u32) {
        self.write(Frame::Data { stream_id: id, flags: FLAG_FIN, data: Bytes::new() }).await;
    }

    async fn wait_window(&self, id: u32) -> usize {
        loop {
            let notified = self.changed.notified();
            {
                let s = self.shared.lock().unwrap();
                let w = s.send_windows[&id].min(s.send_windows[&0]);
                if w > 0 {
                    return w as usize;
                }
            }
            notified.await;
        }
    }

    async fn wait(&self, done: impl Fn(&Shared) -> bool) {
        loop {
            let notified = self.changed.notified();
            if done(&self.shared.lock().unwrap()) {
                return;
            }
            notified.await;
        }
    }

    pub fn updates_received(&self, id: u32) -> usize {
        self.shared.lock().unwrap().updates_received.get(&id).copied().unwrap_or(0)
    }

    pub fn pings(&self) -> Vec<u32> {
        self.shared.lock().unwrap().pings.clone()
    }

    /// A flow-control violation the reader saw, if any.
    pub fn violation(&self) -> Option<String> {
        self.shared.lock().unwrap().violation.clone()
    }
}

fn shared_init(shared: &Mutex<Shared>, mode: FlowControl) {
    let mut s = shared.lock().unwrap();
    s.send_windows.insert(0, SERVER_WINDOW);
    let session = if mode == FlowControl::Ignore { i64::MAX / 2 } else { SERVER_WINDOW };
    s.recv_windows.insert(0, session);
}

pub struct Request {
    pub error_id: u32,
    pub error: mpsc::UnboundedReceiver<Event>,
    pub data_id: u32,
    pub data: mpsc::UnboundedReceiver<Event>,
}

/// Reads everything on `rx` up to FIN or reset; returns the bytes and the final event.
pub async fn read_to_end(rx: &mut mpsc::UnboundedReceiver<Event>) -> (Vec<u8>, Event) {
    let mut out = Vec::new();
    loop {
        match rx.recv().await {
            Some(Event::Data(d)) => out.extend_from_slice(&d),
            Some(end) => return (out, end),
            None => return (out, Event::Reset(0)),
        }
    }
}

async fn read_frames(
    mut read: tokio::io::ReadHalf<DuplexStream>,
    writer: Writer,
    shared: Arc<Mutex<Shared>>,
    changed: Arc<Notify>,
    mode: FlowControl,
) {
    let mut decompressor = HeaderDecompressor::new();
    let mut buf = BytesMut::new();
    let mut grants: Vec<Frame> = Vec::new();
    loop {
        while let Some(frame) = Frame::decode(&mut buf).expect("server sends valid frames") {
            on_frame(frame, &shared, &mut decompressor, mode, &mut grants);
            changed.notify_waiters();
        }
        // Grant back what we received; the window counts it only once the grant is out.
        for grant in std::mem::take(&mut grants) {
            let mut out = BytesMut::new();
            grant.encode(&mut out);
            let _ = writer.lock().await.0.write_all(&out).await;
            if let Frame::WindowUpdate { stream_id, delta } = grant {
                *shared.lock().unwrap().recv_windows.entry(stream_id).or_insert(0) += i64::from(delta);
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let mut s = shared.lock().unwrap();
    s.inbound.clear();
    drop(s);
    changed.notify_waiters();
}

fn on_frame(
    frame: Frame,
    shared: &Mutex<Shared>,
    d: &mut HeaderDecompressor,
    mode: FlowControl,
    grants: &mut Vec<Frame>,
) {
    let mut s = shared.lock().unwrap();
    match frame {
        Frame::SynReply { stream_id, header_block, .. } => {
            d.decompress(&header_block).expect("reply headers");
            s.replies.push(stream_id);
        }
        Frame::Data { stream_id, flags, data } => {
            let len = data.len() as i64;
            if let FlowControl::Honour { .. } = mode {
                for id in [stream_id, 0] {
                    let w = s.recv_windows.entry(id).or_insert(0);
                    *w -= len;
                    let left = *w;
                    if left < 0 && s.violation.is_none() {
                        s.violation = Some(format!("server overran the window of stream {id} by {} bytes", -left));
                    }
                }
                if len > 0 {
                    grants.push(Frame::WindowUpdate { stream_id, delta: len as u32 });
                    grants.push(Frame::WindowUpdate { stream_id: 0, delta: len as u32 });
                }
            }
            if let Some(tx) = s.inbound.get(&stream_id) {
                if !data.is_empty() {
                    let _ = tx.send(Event::Data(data));
                }
                if flags & FLAG_FIN != 0 {
                    let _ = tx.send(Event::Fin);
                }
            }
        }
        Frame::RstStream { stream_id, status } => {
            if let Some(tx) = s.inbound.remove(&stream_id) {
                let _ = tx.send(Event::Reset(status));
            }
        }
        Frame::WindowUpdate { stream_id, delta } => {
            *s.send_windows.entry(stream_id).or_insert(0) += i64::from(delta);
            *s.updates_received.entry(stream_id).or_insert(0) += 1;
        }
        Frame::Ping { id } => s.pings.push(id),
        Frame::GoAway { status, .. } => s.goaway = Some(status),
        other => panic!("unexpected frame from the server: {other:?}"),
    }
}
