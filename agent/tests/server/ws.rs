//! A minimal websocket client (RFC 6455) for tests: the upgrade handshake, masked binary
//! frames out, unmasked frames in. Enough to speak `v5.channel.k8s.io` to the agent.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Ws {
    stream: TcpStream,
}

/// What the server answered instead of switching protocols.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub head: String,
}

impl Ws {
    /// Open `path` on `addr` with `protocol` and extra `headers` (`Name: value` lines).
    pub async fn connect(
        addr: std::net::SocketAddr,
        path: &str,
        protocol: &str,
        headers: &[String],
    ) -> Result<Self, Refused> {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: {protocol}\r\n"
        );
        for h in headers {
            request.push_str(h);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("write handshake");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8];
            if stream.read(&mut byte).await.expect("read handshake") == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status != 101 {
            return Err(Refused { status, head });
        }
        assert!(
            head.to_ascii_lowercase().contains(&format!("sec-websocket-protocol: {}", protocol.to_ascii_lowercase())),
            "{head}"
        );
        Ok(Self { stream })
    }

    /// Send one binary message.
    pub async fn send(&mut self, data: &[u8]) {
        let mut frame = vec![0x82];
        match data.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        let mask = [1u8, 2, 3, 4];
        frame.extend_from_slice(&mask);
        frame.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.expect("send frame");
    }

    /// The next binary message; None once the server closed.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        loop {
            let mut h = [0u8; 2];
            self.stream.read_exact(&mut h).await.ok()?;
            let len = match h[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await.ok()?),
                127 => self.stream.read_u64().await.ok()?,
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            self.stream.read_exact(&mut payload).await.ok()?;
            match h[0] & 0x0f {
                0x2 => return Some(payload),
                0x8 => return None,
                _ => continue,
            }
        }
    }

    /// Every message until the server closes: (stdout, stderr, the status JSON).
    pub async fn drain(&mut self) -> (String, String, serde_json::Value) {
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), serde_json::Value::Null);
        while let Some(m) = self.recv().await {
            match m.first() {
                Some(1) => out.extend_from_slice(&m[1..]),
                Some(2) => err.extend_from_slice(&m[1..]),
                Some(3) => status = serde_json::from_slice(&m[1..]).expect("status JSON"),
                _ => {}
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned(), status)
    }
}
