//! SPDY over WebSocket (kubectl ≥ 1.31, `Sec-WebSocket-Protocol: SPDY/3.1+portforward.k8s.io`).
//!
//! client-go's `TunnelingConnection` treats the websocket as a byte pipe: every binary
//! message carries the next raw bytes of the SPDY stream, split anywhere (its framer
//! writes a frame in several messages). So this adapter only pumps message payloads
//! into an in-memory pipe that [`super::serve_io`] reads, and the session's output back
//! as binary messages. Invariants:
//! - a text message, a close or a broken socket ends the input (EOF to the session);
//! - when the session ends we send a normal close (1000), which client-go reads as EOF;
//! - memory is bounded by the pipe ([`PIPE_BUFFER`]) plus one message in flight.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Bytes buffered each way between the websocket and the session: one flow-control
/// window, so a window's worth of frames never waits on the pump.
const PIPE_BUFFER: usize = 64 * 1024;

/// After the session ended and we sent close, how long the client may take to answer
/// with its own close before we drop the socket.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The websocket close code for a normal closure.
const NORMAL_CLOSURE: u16 = 1000;

/// Serves one port-forward session over an upgraded websocket until either side ends.
pub(super) async fn serve(socket: WebSocket, pod_ip: IpAddr) {
    let (session_end, pump_end) = tokio::io::duplex(PIPE_BUFFER);
    tokio::join!(super::serve_io(session_end, pod_ip), pump(socket, pump_end));
}

async fn pump(socket: WebSocket, pipe: DuplexStream) {
    let (mut ws_out, mut ws_in) = socket.split();
    let (mut pipe_read, mut pipe_write) = tokio::io::split(pipe);
    let inbound = async move {
        while let Some(Ok(message)) = ws_in.next().await {
            match message {
                Message::Binary(bytes) => {
                    if pipe_write.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Text(_) | Message::Close(_) => break,
            }
        }
        let _ = pipe_write.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; PIPE_BUFFER];
        while let Ok(n @ 1..) = pipe_read.read(&mut buf).await {
            if ws_out.send(Message::Binary(Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                return;
            }
        }
        let close = CloseFrame { code: NORMAL_CLOSURE, reason: "".into() };
        let _ = ws_out.send(Message::Close(Some(close))).await;
        tokio::time::sleep(CLOSE_GRACE).await;
    };
    // Whichever ends first: input gone (the session sees EOF and winds down on its own)
    // or output done and the grace period over.
    tokio::select! {
        () = inbound => {}
        () = outbound => {}
    }
}
