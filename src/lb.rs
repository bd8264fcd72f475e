//! `flotilla lb`: a TCP load balancer in front of the replicas' Kubernetes API, like the one
//! the k3s agent runs. kubectl takes one server per kubeconfig cluster entry; pointed at
//! this balancer it keeps working when any one replica dies.
//!
//! Data flow: every accepted connection is connected to one replica and spliced byte for
//! byte (`copy_bidirectional`). Nothing is parsed, so watches and the upgraded connections
//! of exec and port-forward pass through unchanged; a connection lives and dies with its
//! replica (kubectl reconnects, and the new connection goes elsewhere).
//!
//! Which replica ([`Backends::order`]): those that passed their last health check before
//! those that failed it, the last one that accepted a connection first among equals, then
//! the order given. A connection is tried on each replica at most once, each attempt bounded
//! by [`CONNECT_TIMEOUT`]; a refusal marks that replica down at once, so the next client
//! does not wait on it. A background check (`GET /readyz` every `--health-interval-ms`)
//! marks replicas up and down. `/readyz` rather than a bare connect: a replica cut off in a
//! minority still accepts connections but cannot serve linearizable reads or writes.
//!
//! At most [`MAX_CONNECTIONS`] client connections are open at once; further ones wait in
//! the listen backlog.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dial::{ClientTls, Target};

#[derive(Args, Debug)]
pub struct LbArgs {
    /// Address to accept client connections on.
    #[arg(long, env = "FLOTILLA_LB_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// The replicas' Kubernetes API URLs, preferred in this order (repeat the flag or
    /// separate with commas).
    #[arg(long = "server", env = "FLOTILLA_LB_SERVERS", value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// Milliseconds between health checks (`GET /readyz` on every replica).
    #[arg(long, default_value_t = 1000)]
    health_interval_ms: u64,
    /// For https:// replicas: the CA that signed their certificates, which the health
    /// checks verify (clients' connections pass through untouched and are verified by the
    /// clients themselves).
    #[arg(long, env = "FLOTILLA_LB_CACERT", value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
}

/// How long connecting to a replica may take before the next one is tried: a replica on
/// loopback or a LAN answers in well under a millisecond, and a client waits this long for
/// each dead replica the health check has not caught yet.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a health check may take. `/readyz` waits for a read barrier on the store, which
/// takes one heartbeat round trip with a leader and fails at its own timeout without one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Client connections open at once. A kubectl holds one or two (more with `-w` or
/// port-forward); a dashboard holds one watch. Far above what a development cluster's
/// clients open, far below the default file-descriptor limit (two per connection).
pub const MAX_CONNECTIONS: usize = 1024;
/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub async fn run(args: LbArgs) -> anyhow::Result<()> {
    let servers: Vec<String> = args.servers.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    if servers.is_empty() {
        bail!("--server: at least one replica URL is needed");
    }
    let https = crate::store_security::all_https("--server", &servers)?;
    let tls = match (&args.cacert, https) {
        (Some(ca), true) => Some(ClientTls::from_files(ca, None).context("--cacert")?),
        (None, true) => bail!("https:// replicas need --cacert: the health checks verify their certificates"),
        (Some(_), false) => bail!("--cacert needs https:// replicas"),
        (None, false) => None,
    };
    let targets = servers.iter().map(|s| Target::new(s, tls.as_ref())).collect::<anyhow::Result<Vec<_>>>()?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let addrs: Vec<SocketAddr> = targets.iter().map(|t| t.addr).collect();
    tracing::info!(listen = %listener.local_addr()?, servers = ?addrs, tls = https, "load balancer listening");
    let lb = Lb::new(listener, targets, Duration::from_millis(args.health_interval_ms.max(1)));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(lb.run(cancel.clone()));
    crate::server::wait_for_signal().await?;
    cancel.cancel();
    task.await.context("load balancer task")?;
    Ok(())
}

/// What the balancer knows of its replicas; every decision is made here, without I/O.
#[derive(Debug, Clone)]
pub struct Backends {
    addrs: Vec<SocketAddr>,
    /// Whether each replica passed its last check or accepted the last connection to it.
    /// All start up: an unchecked replica is worth trying.
    up: Vec<bool>,
    /// The replica that accepted the last connection.
    preferred: Option<usize>,
}

impl Backends {
    pub fn new(addrs: Vec<SocketAddr>) -> Self {
        assert!(!addrs.is_empty(), "a balancer needs at least one replica");
        Self { up: vec![true; addrs.len()], addrs, preferred: None }
    }

    pub fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// Every replica, in the order a new connection tries them: up before down, the
    /// preferred one first among equals, then the order given. Down ones stay in the list,
    /// last: their mark may be older than their recovery.
    pub fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.addrs.len()).collect();
        order.sort_by_key(|&i| (!self.up[i], self.preferred != Some(i), i));
        order
    }

    /// Replica `i` accepted a connection: it is up and preferred. True when it was not the
    /// preferred one before (the balancer moved).
    pub fn connected(&mut self, i: usize) -> bool {
        self.up[i] = true;
        self.preferred.replace(i) != Some(i)
    }

    /// Replica `i` refused a connection or did not answer in time. True when it counted as
    /// up until now.
    pub fn failed(&mut self, i: usize) -> bool {
        std::mem::replace(&mut self.up[i], false)
    }

    /// The result of a health check of replica `i`. True when that changes its mark.
    pub fn checked(&mut self, i: usize, ok: bool) -> bool {
        std::mem::replace(&mut self.up[i], ok) != ok
    }
}

/// The balancer: a listener and its replicas. See the module doc.
pub struct Lb {
    listener: TcpListener,
    backends: Arc<Mutex<Backends>>,
    /// The replicas, in the order of `backends`, as the health checks reach them.
    targets: Vec<Target>,
    check_interval: Duration,
}

impl Lb {
    pub fn new(listener: TcpListener, targets: Vec<Target>, check_interval: Duration) -> Self {
        let backends = Arc::new(Mutex::new(Backends::new(targets.iter().map(|t| t.addr).collect())));
        Self { listener, backends, targets, check_interval }
    }

    /// Accept and forward until `cancel` fires; open connections are then dropped.
    pub async fn run(self, cancel: CancellationToken) {
        let checks = tokio::spawn(check_loop(self.backends.clone(), self.targets, self.check_interval, cancel.clone()));
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut conns = JoinSet::new();
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => break,
                p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let inbound = match accepted {
                Ok((inbound, _)) => inbound,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let backends = self.backends.clone();
            conns.spawn(async move {
                forward(inbound, &backends).await;
                drop(permit);
            });
            while conns.try_join_next().is_some() {}
        }
        conns.shutdown().await;
        let _ = checks.await;
    }
}

fn lock(backends: &Mutex<Backends>) -> std::sync::MutexGuard<'_, Backends> {
    // A panic while holding the lock leaves plain marks behind, still usable.
    backends.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Connect `inbound` to a replica and copy both ways until either side closes.
async fn forward(mut inbound: TcpStream, backends: &Mutex<Backends>) {
    let _ = inbound.set_nodelay(true);
    let Some(mut outbound) = connect(backends).await else { return };
    let _ = outbound.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await {
        tracing::debug!(error = %e, "connection ended");
    }
}

/// A connection to the first replica of [`Backends::order`] that accepts one; marks are
/// updated on the way. None (the client is disconnected) when none does.
async fn connect(backends: &Mutex<Backends>) -> Option<TcpStream> {
    let (order, addrs) = {
        let b = lock(backends);
        let order = b.order();
        let addrs: Vec<SocketAddr> = order.iter().map(|&i| b.addr(i)).collect();
        (order, addrs)
    };
    for (i, addr) in order.into_iter().zip(addrs) {
        let error = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if lock(backends).connected(i) {
                    tracing::info!(replica = %addr, "forwarding new connections to this replica");
                }
                return Some(stream);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no connection within {CONNECT_TIMEOUT:?}"),
        };
        if lock(backends).failed(i) {
            tracing::warn!(replica = %addr, error, "replica unreachable; trying the next");
        }
    }
    tracing::warn!("no replica accepted the connection; closing it");
    None
}

/// Check every replica each `interval` until `cancel` fires.
async fn check_loop(
    backends: Arc<Mutex<Backends>>,
    targets: Vec<Target>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let results = futures::future::join_all(targets.iter().map(ready)).await;
        let mut b = lock(&backends);
        for (i, result) in results.into_iter().enumerate() {
            if b.checked(i, result.is_ok()) {
                match result {
                    Ok(()) => tracing::info!(replica = %targets[i].addr, "replica ready"),
                    Err(e) => tracing::warn!(replica = %targets[i].addr, error = %e, "replica not ready"),
                }
            }
        }
    }
}

/// Ok when `GET /readyz` answers 200 within [`CHECK_TIMEOUT`].
async fn ready(target: &Target) -> anyhow::Result<()> {
    let code = tokio::time::timeout(CHECK_TIMEOUT, http_status(target, "/readyz"))
        .await
        .with_context(|| format!("no answer within {CHECK_TIMEOUT:?}"))??;
    if code != 200 {
        bail!("/readyz answered {code}");
    }
    Ok(())
}

/// The status code of a GET, plain or TLS (enough for a health check; no client library).
pub(crate) async fn http_status(target: &Target, path: &str) -> anyhow::Result<u16> {
    let mut conn = target.dial().await?;
    let addr = target.addr;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await?;
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await?;
    let line = std::str::from_utf8(&head)?;
    line.get(9..12).and_then(|c| c.parse().ok()).context("malformed HTTP status line")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u16) -> Backends {
        Backends::new((1..=n).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect())
    }

    #[test]
    fn before_any_news_the_order_given() {
        assert_eq!(backends(3).order(), vec![0, 1, 2]);
    }

    #[test]
    fn the_last_good_replica_is_kept_and_a_failed_one_goes_last() {
        let mut b = backends(3);
        assert!(b.connected(0));
        assert!(!b.connected(0), "same replica: no move");
        assert!(b.failed(0));
        assert!(!b.failed(0), "already down");
        assert_eq!(b.order(), vec![1, 2, 0], "the dead one is tried last, not never");
        assert!(b.connected(1));
        assert_eq!(b.order(), vec![1, 2, 0]);
        // The first one recovers: the balancer stays where it is rather than moving back.
        assert!(b.checked(0, true));
        assert_eq!(b.order(), vec![1, 0, 2]);
    }

    #[test]
    fn a_replica_failing_its_check_is_avoided_even_when_preferred() {
        let mut b = backends(3);
        b.connected(2);
        assert_eq!(b.order(), vec![2, 0, 1]);
        assert!(b.checked(2, false), "a minority replica: accepts connections, not ready");
        assert!(!b.checked(2, false));
        assert_eq!(b.order(), vec![0, 1, 2]);
    }

    #[test]
    fn with_every_replica_down_the_preferred_one_is_tried_first() {
        let mut b = backends(3);
        b.connected(1);
        for i in 0..3 {
            b.checked(i, false); // an election: no replica is ready for a moment
        }
        assert_eq!(b.order(), vec![1, 0, 2]);
    }

    /// A replica stand-in: answers `/readyz` with `ready` and anything else with `name`.
    async fn fake_replica(name: &'static str, ready: u16) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let body = if buf[..n].starts_with(b"GET /readyz") { "" } else { name };
                    let code = if buf[..n].starts_with(b"GET /readyz") { ready } else { 200 };
                    let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        (addr, task)
    }

    /// The body of `GET /` through the balancer at `lb`.
    async fn answer(lb: SocketAddr) -> String {
        let mut conn = TcpStream::connect(lb).await.unwrap();
        conn.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut out = String::new();
        let _ = conn.read_to_string(&mut out).await;
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
    }

    async fn start(addrs: Vec<SocketAddr>, cancel: &CancellationToken) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let at = listener.local_addr().unwrap();
        let targets = addrs.iter().map(|a| Target::new(&format!("http://{a}"), None).unwrap()).collect();
        tokio::spawn(Lb::new(listener, targets, Duration::from_millis(50)).run(cancel.clone()));
        at
    }

    #[tokio::test]
    async fn connections_move_to_the_next_replica_when_the_used_one_dies() {
        let (a, a_task) = fake_replica("a", 200).await;
        let (b, _b_task) = fake_replica("b", 200).await;
        let cancel = CancellationToken::new();
        let lb = start(vec![a, b], &cancel).await;
        assert_eq!(answer(lb).await, "a");
        a_task.abort();
        let _ = a_task.await; // the listener is closed: a refuses connections
        assert_eq!(answer(lb).await, "b", "the very next connection, not after a health check");
        assert_eq!(answer(lb).await, "b");
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_replica_that_is_not_ready_gets_no_new_connections() {
        let (a, _a_task) = fake_replica("a", 500).await;
        let (b, _b_task) = fake_replica("b", 200).await;
        let cancel = CancellationToken::new();
        let lb = start(vec![a, b], &cancel).await;
        // Until the first check, a is tried first; once it has failed one, b gets the traffic.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while answer(lb).await != "b" {
            assert!(tokio::time::Instant::now() < deadline, "a never marked down");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..5 {
            assert_eq!(answer(lb).await, "b");
        }
        cancel.cancel();
    }
}
