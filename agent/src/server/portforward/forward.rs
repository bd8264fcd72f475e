//! One forwarded connection: a (data, error) stream pair ⇄ a TCP connection to the pod.
//!
//! Semantics follow the kubelet's (`pkg/kubelet/cri/streaming/portforward`) so kubectl
//! behaves as with a real node:
//! - the TCP connection to `pod_ip:port` is made when both streams are there; if it
//!   fails, the reason is written on the error stream and both streams are finished;
//! - client data → pod; the client's FIN half-closes the pod connection (write side);
//! - pod data → client; the pod's EOF sends FIN on the data stream;
//! - the forward ends when both directions are done, or at once when the client resets
//!   the data stream (kubectl does that after reading our FIN); then the error stream is
//!   finished (empty: success), which is what kubectl waits for.
//! - Client data that can no longer be written to the pod is read and dropped, so the
//!   session's inbound buffer never fills up with it.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::stream::{Inbound, Stream, StreamSender};

/// How long connecting to the pod may take before the error stream reports it. The
/// pod network is local to the node, so a healthy connect takes milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes read from the pod per DATA frame; matches spdystream's io.Copy chunks.
const READ_CHUNK: usize = 32 * 1024;

/// Forwards one connection; returns when it is over.
pub(super) async fn forward(mut data: Stream, error: Stream, target: SocketAddr) {
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return fail(data, error, target, &e.to_string()).await,
        Err(_) => return fail(data, error, target, "connection timed out").await,
    };
    let id = data.id();
    tracing::debug!(%target, stream = id, "port-forward connected");
    let (pod_read, pod_write) = tcp.into_split();
    let down = pod_to_client(pod_read, data.sender());
    let up = client_to_pod(&mut data, pod_write);
    tokio::pin!(down, up);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            reset = &mut up, if !up_done => {
                up_done = true;
                if reset {
                    break;
                }
            }
            () = &mut down, if !down_done => down_done = true,
        }
    }
    let _ = error.finish().await;
    tracing::debug!(%target, stream = id, "port-forward done");
}

async fn fail(data: Stream, error: Stream, target: SocketAddr, why: &str) {
    let message = format!("error forwarding port {} to pod {}: {why}", target.port(), target.ip());
    tracing::debug!(%target, "{message}");
    let _ = error.send_and_finish(Bytes::from(message)).await;
    let _ = data.finish().await;
}

/// Copies pod → client until the pod's EOF (then FIN) or an error.
async fn pod_to_client(mut pod: OwnedReadHalf, data: StreamSender) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match pod.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                if data.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading from the pod failed");
                break;
            }
        }
    }
    let _ = data.finish().await;
}

/// Copies client → pod until the client's FIN (returns false) or reset (returns true).
async fn client_to_pod(data: &mut Stream, mut pod: OwnedWriteHalf) -> bool {
    let mut pod_open = true;
    loop {
        match data.recv().await {
            Inbound::Data(chunk) => {
                if pod_open && pod.write_all(&chunk).await.is_err() {
                    pod_open = false; // keep draining so the session buffer empties
                }
                data.release(chunk.len());
            }
            Inbound::Fin => {
                let _ = pod.shutdown().await;
                return false;
            }
            Inbound::Reset => return true,
        }
    }
}
