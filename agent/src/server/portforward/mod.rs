//! `kubectl port-forward`: the agent's SPDY/3.1 port-forward server.
//!
//! kubectl 1.32 upgrades `…/pods/p/portforward` either to a websocket with subprotocol
//! `SPDY/3.1+portforward.k8s.io` whose binary messages carry a raw SPDY byte stream
//! ([`serve`]), or, as a fallback, to raw SPDY/3.1 (`Upgrade: SPDY/3.1`,
//! `X-Stream-Protocol-Version: portforward.k8s.io`, [`serve_io`]). Both run the same
//! session. The HTTP endpoint does the upgrade and must echo the subprotocol / protocol
//! version; this module starts right after.
//!
//! Layers, bottom up:
//! - [`frame`]: SPDY/3.1 frames ⇄ bytes;
//! - [`headers`]: name/value header blocks, zlib-compressed with the SPDY/3 dictionary;
//! - [`session`]: the stream multiplexer (flow control, ping, goaway) handing
//!   peer-opened streams out as [`stream::Stream`] handles;
//! - `dispatch`: pairs each request's `error` and `data` streams (headers `streamtype`,
//!   `port`, `requestid`) and runs `forward`: a TCP connection to `pod_ip:port`, copied
//!   both ways, with failures reported as text on the error stream;
//! - `websocket`: adapts websocket messages to the byte stream.
//!
//! Invariants: every data stream connects to `pod_ip` and nowhere else; when the client
//! goes away, every pod connection of the session is closed; memory per session is
//! bounded (see the `MAX_*` constants of [`frame`], [`headers`] and [`session`]).

pub mod frame;
pub mod headers;
pub mod session;
pub mod stream;

mod dispatch;
mod forward;
mod websocket;
mod writer;

use std::net::IpAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// The websocket subprotocol kubectl asks for; the upgrade must select it.
pub const WEBSOCKET_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// The `X-Stream-Protocol-Version` of the raw SPDY fallback; the 101 must echo it.
pub const STREAM_PROTOCOL: &str = "portforward.k8s.io";

/// Peer-opened streams waiting for the dispatcher, which files them without I/O.
const ACCEPT_QUEUE: usize = 16;

/// Serves port-forward over an upgraded websocket (SPDY in binary messages) until the
/// client goes away; every data stream connects to `pod_ip:port` over TCP.
pub async fn serve(socket: axum::extract::ws::WebSocket, pod_ip: IpAddr) {
    websocket::serve(socket, pod_ip).await;
}

/// Serves port-forward over a raw SPDY/3.1 byte stream (the `Upgrade: SPDY/3.1`
/// fallback) until the client goes away.
pub async fn serve_io<S>(io: S, pod_ip: IpAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (accept_tx, accept_rx) = mpsc::channel(ACCEPT_QUEUE);
    let (result, ()) = tokio::join!(session::run(io, accept_tx), dispatch::dispatch(accept_rx, pod_ip));
    match result {
        Ok(()) => tracing::debug!(%pod_ip, "port-forward session closed by the client"),
        Err(error) => tracing::warn!(%pod_ip, %error, "port-forward session ended"),
    }
}
