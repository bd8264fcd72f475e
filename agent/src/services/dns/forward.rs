//! Forwarding: a query for a name outside the cluster zone goes to the upstreams in order,
//! and the first good answer is relayed to the client as the upstream wrote it.
//!
//! Each upstream exchange uses a fresh socket and a random ID, and only a response with
//! that ID and the same question is taken (a stray or spoofed datagram is ignored). Over
//! UDP first; a truncated answer to a client that asked over TCP is asked again over TCP,
//! while a UDP client gets the truncated answer and retries over TCP itself. SERVFAIL and
//! REFUSED count as no answer: the next upstream may do better.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::reply::Transport;

/// How long one upstream gets to answer before the next is tried. Resolvers commonly wait
/// 5 s before they retry (glibc's `timeout:5`), so two upstreams fit in one client attempt.
pub(super) const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest upstream UDP answer read: the most one datagram holds.
const MAX_UDP_ANSWER: usize = 65_535;

/// The upstreams of one server.
#[derive(Debug, Clone)]
pub(super) struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    /// Forward to `upstreams`, except to the server itself at `own` (a host resolv.conf that
    /// names the cluster DNS would otherwise make every query loop until it times out).
    pub(super) fn new(upstreams: Vec<SocketAddr>, own: SocketAddr, timeout: Duration) -> Forwarder {
        let is_self =
            |u: &SocketAddr| *u == own || (u.port() == own.port() && own.ip().is_unspecified() && u.ip().is_loopback());
        let kept: Vec<SocketAddr> = upstreams.iter().copied().filter(|u| !is_self(u)).collect();
        if kept.len() < upstreams.len() {
            tracing::warn!(address = %own, "an upstream of the cluster DNS is the server itself; skipping it");
        }
        Forwarder { upstreams: kept, timeout }
    }

    /// The first good answer of an upstream to `request` (whose wire form is `raw`), with
    /// the client's ID; `None` when no upstream gave one.
    pub(super) async fn forward(&self, request: &Message, raw: &[u8], transport: Transport) -> Option<Vec<u8>> {
        for upstream in &self.upstreams {
            match tokio::time::timeout(self.timeout, exchange(*upstream, request, raw, transport)).await {
                Ok(Ok(mut answer)) => {
                    answer[..2].copy_from_slice(&request.id().to_be_bytes());
                    return Some(answer);
                }
                Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "upstream DNS failed"),
                Err(_) => tracing::debug!(%upstream, "upstream DNS timed out"),
            }
        }
        None
    }
}

/// One upstream's answer to `request`, UDP first, then TCP if the client came over TCP and
/// the UDP answer was truncated.
async fn exchange(upstream: SocketAddr, request: &Message, raw: &[u8], transport: Transport) -> io::Result<Vec<u8>> {
    let (bytes, answer) = over_udp(upstream, request, raw).await?;
    let (bytes, answer) = if answer.truncated() && transport == Transport::Tcp {
        over_tcp(upstream, request, raw).await?
    } else {
        (bytes, answer)
    };
    match answer.response_code() {
        code @ (ResponseCode::ServFail | ResponseCode::Refused) => Err(io::Error::other(format!("answered {code}"))),
        _ => Ok(bytes),
    }
}

async fn over_udp(upstream: SocketAddr, request: &Message, raw: &[u8]) -> io::Result<(Vec<u8>, Message)> {
    let (query, id) = with_fresh_id(raw);
    let local: SocketAddr =
        if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(&query).await?;
    let mut buf = vec![0; MAX_UDP_ANSWER];
    loop {
        let n = socket.recv(&mut buf).await?;
        if let Some(answer) = answer_to(&buf[..n], id, request) {
            return Ok((buf[..n].to_vec(), answer));
        }
    }
}

async fn over_tcp(upstream: SocketAddr, request: &Message, raw: &[u8]) -> io::Result<(Vec<u8>, Message)> {
    let (query, id) = with_fresh_id(raw);
    let len = u16::try_from(query.len()).map_err(|_| io::Error::other("query too long for TCP"))?;
    let mut stream = TcpStream::connect(upstream).await?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    let answer = answer_to(&buf, id, request).ok_or_else(|| io::Error::other("answer to another question"))?;
    Ok((buf, answer))
}

/// `raw` with a random ID in place of the client's, and that ID.
fn with_fresh_id(raw: &[u8]) -> (Vec<u8>, u16) {
    let id: u16 = rand::random();
    let mut query = raw.to_vec();
    query[..2].copy_from_slice(&id.to_be_bytes());
    (query, id)
}

/// `bytes` decoded, if they are the response with `id` to the question of `request`.
fn answer_to(bytes: &[u8], id: u16, request: &Message) -> Option<Message> {
    let answer = Message::from_vec(bytes).ok()?;
    let matches =
        answer.id() == id && answer.message_type() == MessageType::Response && answer.queries() == request.queries();
    matches.then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_itself_is_never_an_upstream() {
        let own: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let ups = ["127.0.0.1:53", "127.0.0.53:53", "10.0.0.2:53", "127.0.0.1:5353"].map(|s| s.parse().unwrap());
        let f = Forwarder::new(ups.to_vec(), own, UPSTREAM_TIMEOUT);
        assert_eq!(f.upstreams, vec![ups[2], ups[3]]);
        let own: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert_eq!(Forwarder::new(ups.to_vec(), own, UPSTREAM_TIMEOUT).upstreams, ups[..3].to_vec());
    }
}
