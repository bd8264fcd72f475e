//! `serve_io` driven by a test SPDY/3.1 client (tests/portforward/client.rs) over an
//! in-memory pipe, forwarding to TCP echo servers on 127.0.0.1.

#[path = "portforward/client.rs"]
mod client;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bytes::Bytes;
use client::{read_to_end, Client, Event, FlowControl};
use flotilla_agent::server::portforward::frame::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const DEADLINE: Duration = Duration::from_secs(20);

/// A TCP echo server; each finished connection reports the bytes it echoed.
struct Echo {
    port: u16,
    closed: mpsc::UnboundedReceiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn echo_server() -> Echo {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, closed) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut total = 0;
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    if conn.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    total += n;
                }
                let _ = conn.shutdown().await;
                let _ = tx.send(total);
            });
        }
    });
    Echo { port, closed, task }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn two_concurrent_connections_echo_and_close_cleanly() {
    let echo = echo_server().await;
    let client = Client::connect(LOCALHOST, FlowControl::Honour { stream_window: 64 * 1024 }).await;
    let mut a = within("open a", client.open_request(echo.port, 0)).await;
    let mut b = within("open b", client.open_request(echo.port, 1)).await;

    client.send(b.data_id, Bytes::from_static(b"from b"), false).await;
    client.send(a.data_id, Bytes::from_static(b"from a"), false).await;
    client.write(Frame::Ping { id: 1 }).await;
    let got_b = within("echo b", b.data.recv()).await;
    let got_a = within("echo a", a.data.recv()).await;
    assert_eq!(got_a, Some(Event::Data(Bytes::from_static(b"from a"))));
    assert_eq!(got_b, Some(Event::Data(Bytes::from_static(b"from b"))));

    // The client's FIN half-closes the pod connection; the pod's EOF comes back as FIN,
    // and the error stream then ends empty (success).
    client.finish(a.data_id).await;
    assert_eq!(within("a's FIN", read_to_end(&mut a.data)).await, (vec![], Event::Fin));
    assert_eq!(within("a's error stream", read_to_end(&mut a.error)).await, (vec![], Event::Fin));
    // b still works after a is gone.
    client.send(b.data_id, Bytes::from_static(b"again"), true).await;
    assert_eq!(within("b's rest", read_to_end(&mut b.data)).await, (b"again".to_vec(), Event::Fin));
    assert_eq!(within("b's error stream", read_to_end(&mut b.error)).await, (vec![], Event::Fin));
    assert_eq!(client.pings(), vec![1], "PING echoed");
    assert_eq!((a.error_id, a.data_id, b.error_id, b.data_id), (1, 3, 5, 7));
}

async fn echo_large(mode: FlowControl, len: usize) -> Client {
    let echo = echo_server().await;
    let client = Client::connect(LOCALHOST, mode).await;
    let mut req = within("open", client.open_request(echo.port, 0)).await;
    let payload = pattern(len, 7);
    let (received, ()) = within("large echo", async {
        tokio::join!(read_to_end(&mut req.data), async {
            client.send(req.data_id, payload.clone(), true).await;
        })
    })
    .await;
    assert_eq!(received.1, Event::Fin);
    assert!(received.0 == payload[..], "echo differs ({} of {len} bytes)", received.0.len());
    client
}

#[tokio::test]
async fn large_transfer_respects_flow_control_both_ways() {
    // A 16 KiB stream window is below the server's 32 KiB read chunk: a server ignoring
    // it would send oversize frames, which the client flags.
    let client = echo_large(FlowControl::Honour { stream_window: 16 * 1024 }, 1 << 20).await;
    assert_eq!(client.violation(), None);
    // 1 MiB upload within 64 KiB windows needs many WINDOW_UPDATEs, per stream and session.
    assert!(client.updates_received(3) >= 8, "stream updates: {}", client.updates_received(3));
    assert!(client.updates_received(0) >= 8, "session updates: {}", client.updates_received(0));
}

#[tokio::test]
async fn peer_without_flow_control_is_not_stalled() {
    // Like kubectl's spdystream: no SETTINGS, no WINDOW_UPDATE, sends regardless.
    echo_large(FlowControl::Ignore, 1 << 20).await;
}

#[tokio::test]
async fn closed_port_is_reported_on_the_error_stream() {
    let port = {
        let l = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
        l.local_addr().expect("addr").port()
    }; // dropped: nothing listens there now
    let client = Client::connect(LOCALHOST, FlowControl::Ignore).await;
    let mut req = within("open", client.open_request(port, 0)).await;
    let (message, end) = within("error stream", read_to_end(&mut req.error)).await;
    let message = String::from_utf8(message).expect("text");
    assert_eq!(end, Event::Fin);
    assert!(message.contains(&format!("error forwarding port {port} to pod 127.0.0.1")), "{message}");
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert_eq!(within("data stream", read_to_end(&mut req.data)).await, (vec![], Event::Fin));
}

#[tokio::test]
async fn invalid_streams_are_refused_and_the_session_goes_on() {
    use flotilla_agent::server::portforward::headers::HeaderBlock;
    let echo = echo_server().await;
    let client = Client::connect(LOCALHOST, FlowControl::Ignore).await;
    let (_, mut no_port) = within("open", client.open(HeaderBlock::default().with("streamtype", "data"))).await;
    assert!(matches!(within("reset", no_port.recv()).await, Some(Event::Reset(_))));
    let mut req = within("open", client.open_request(echo.port, 9)).await;
    client.send(req.data_id, Bytes::from_static(b"ok"), true).await;
    assert_eq!(within("echo", read_to_end(&mut req.data)).await, (b"ok".to_vec(), Event::Fin));
}

#[tokio::test]
async fn client_close_tears_down_every_pod_connection() {
    let mut echo = echo_server().await;
    let client = Client::connect(LOCALHOST, FlowControl::Ignore).await;
    let mut reqs = Vec::new();
    for request in 0..3 {
        let mut req = within("open", client.open_request(echo.port, request)).await;
        client.send(req.data_id, Bytes::from_static(b"ping"), false).await;
        assert_eq!(within("echo", req.data.recv()).await, Some(Event::Data(Bytes::from_static(b"ping"))));
        reqs.push(req);
    }
    client.close().await;
    for _ in 0..3 {
        assert_eq!(within("pod connection closed", echo.closed.recv()).await, Some(4));
    }
    let Client { server, .. } = client;
    within("serve_io returns", server).await.expect("serve_io did not panic");
}

#[path = "portforward/kubectl.rs"]
mod kubectl;
