//! [`Rewriter`]: the client-to-server half of [`super::AuthorityFix`] as a pure state
//! machine (bytes in, bytes out, no I/O), so tests can drive it byte by byte.
//!
//! Phases: the 24-byte connection preface, then frames. A non-header frame is forwarded
//! as its bytes arrive (its header at once, its payload streamed); a header block is held
//! until END_HEADERS, then re-emitted rewritten. Giving up forwards what was held and
//! everything after it, unchanged, for the rest of the connection.

use crate::etcd::hpack::{self, HpackError};

pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const FRAME_HEADER_BYTES: usize = 9;

const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_BYTES: usize = 5;

/// SETTINGS_MAX_FRAME_SIZE of the server: hyper keeps RFC 7540's default, so header frames
/// are re-emitted in pieces no larger, and a larger one from the client is not ours to fix.
pub(super) const MAX_FRAME_PAYLOAD: usize = 16_384;

/// SETTINGS_HEADER_TABLE_SIZE of the server: hyper keeps RFC 7540's default, so the client's
/// encoder may use at most this much dynamic table.
const SERVER_HEADER_TABLE_SIZE: usize = 4096;

/// Bound on one header block, both as received (all its frames) and decoded (counted as RFC
/// 7540's header list size). hyper refuses header lists over 16 KiB, so a larger block would
/// be refused anyway; the bound keeps a client from making the wrapper buffer without limit.
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 * 1024;

/// Why a connection is left alone (logged at debug: hyper reports the failure itself).
#[derive(Debug, thiserror::Error)]
enum GiveUp {
    #[error("{0}")]
    Frame(&'static str),
    #[error("bad HPACK: {0}")]
    Hpack(#[from] HpackError),
}

enum Phase {
    Preface,
    Frames,
    Passthrough,
}

/// A header block being collected: a HEADERS frame and CONTINUATIONs until END_HEADERS.
struct Block {
    /// As received, reserved bit included.
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_BYTES]>,
    fragment: Vec<u8>,
}

/// Rewrites one connection's client-to-server bytes (see the module docs).
pub struct Rewriter {
    phase: Phase,
    /// Received, not yet forwarded or held: between feeds, at most the incomplete start of
    /// one frame (non-header payloads stream through, header frames are bounded).
    pending: Vec<u8>,
    /// Payload bytes of a passed-through frame still to forward.
    skip: usize,
    /// The raw frames of the block being collected: forwarded as they were on give-up.
    held: Vec<u8>,
    block: Option<Block>,
    decoder: hpack::Decoder,
}

impl Default for Rewriter {
    fn default() -> Self {
        Self {
            phase: Phase::Preface,
            pending: Vec::new(),
            skip: 0,
            held: Vec::new(),
            block: None,
            decoder: hpack::Decoder::new(SERVER_HEADER_TABLE_SIZE),
        }
    }
}

impl Rewriter {
    /// Whether everything from now on is forwarded as is.
    pub fn is_passthrough(&self) -> bool {
        matches!(self.phase, Phase::Passthrough)
    }

    /// Takes the next bytes from the client; appends to `out` what can be forwarded now.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if self.is_passthrough() {
            out.extend_from_slice(data);
            return;
        }
        self.pending.extend_from_slice(data);
        let mut pos = 0;
        match self.advance(&mut pos, out) {
            Ok(()) => drop(self.pending.drain(..pos)),
            Err(reason) => self.give_up(pos, &reason, out),
        }
    }

    /// The client closed its side: forwards whatever was held back (an incomplete frame).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.pending.is_empty() || !self.held.is_empty() {
            self.give_up(0, &GiveUp::Frame("stream ends inside a frame"), out);
        }
        self.phase = Phase::Passthrough;
    }

    fn give_up(&mut self, pos: usize, reason: &GiveUp, out: &mut Vec<u8>) {
        tracing::debug!(%reason, "HTTP/2 stream not understood; forwarding it unchanged");
        out.append(&mut self.held);
        out.extend_from_slice(&self.pending[pos..]);
        self.pending = Vec::new();
        self.block = None;
        self.phase = Phase::Passthrough;
    }

    /// Forwards complete frames from `pending[*pos..]`, moving `pos` past what is consumed.
    fn advance(&mut self, pos: &mut usize, out: &mut Vec<u8>) -> Result<(), GiveUp> {
        if let Phase::Preface = self.phase {
            let have = self.pending.len().min(PREFACE.len());
            if self.pending[..have] != PREFACE[..have] {
                return Err(GiveUp::Frame("no HTTP/2 connection preface"));
            }
            if have < PREFACE.len() {
                return Ok(());
            }
            out.extend_from_slice(PREFACE);
            *pos = PREFACE.len();
            self.phase = Phase::Frames;
        }
        loop {
            let rest = &self.pending[*pos..];
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                out.extend_from_slice(&rest[..n]);
                *pos += n;
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
                continue;
            }
            let Some(header) = FrameHeader::parse(rest) else { return Ok(()) };
            let in_block = self.block.is_some();
            if !in_block && !matches!(header.kind, HEADERS | CONTINUATION | PUSH_PROMISE) {
                out.extend_from_slice(&rest[..FRAME_HEADER_BYTES]);
                *pos += FRAME_HEADER_BYTES;
                self.skip = header.len;
                continue;
            }
            if in_block && header.kind != CONTINUATION {
                return Err(GiveUp::Frame("another frame inside a header block"));
            }
            if header.len > MAX_FRAME_PAYLOAD {
                return Err(GiveUp::Frame("header frame over SETTINGS_MAX_FRAME_SIZE"));
            }
            let frame_len = FRAME_HEADER_BYTES + header.len;
            if self.held.len() + frame_len > MAX_HEADER_BLOCK_BYTES {
                return Err(GiveUp::Frame("header block over MAX_HEADER_BLOCK_BYTES"));
            }
            if rest.len() < frame_len {
                return Ok(());
            }
            // From here the frame is held: a give-up forwards it from `held`.
            self.held.extend_from_slice(&rest[..frame_len]);
            *pos += frame_len;
            let payload = &self.held[self.held.len() - header.len..];
            match header.kind {
                HEADERS => self.block = Some(Block::start(&header, payload)?),
                CONTINUATION => {
                    let block = self.block.as_mut().ok_or(GiveUp::Frame("CONTINUATION outside a header block"))?;
                    if (block.stream_id ^ header.stream_id) & STREAM_ID_MASK != 0 {
                        return Err(GiveUp::Frame("CONTINUATION on another stream"));
                    }
                    block.fragment.extend_from_slice(payload);
                }
                _ => return Err(GiveUp::Frame("PUSH_PROMISE from a client")),
            }
            if header.flags & END_HEADERS != 0 {
                let block = self.block.take().expect("a block is open after HEADERS or CONTINUATION");
                self.rewrite(&block, out)?;
                self.held.clear();
            }
        }
    }

    /// Decodes a complete block, repairs `:authority`, and emits it re-encoded.
    fn rewrite(&mut self, block: &Block, out: &mut Vec<u8>) -> Result<(), GiveUp> {
        let mut fields = self.decoder.decode(&block.fragment, MAX_HEADER_BLOCK_BYTES)?;
        for field in &mut fields {
            if field.name == b":authority" {
                strip_scheme(&mut field.value);
            }
        }
        let mut encoded = Vec::new();
        hpack::encode(&fields, &mut encoded);

        let prefix = block.priority.map_or(0, |_| PRIORITY_BYTES);
        let (first, mut rest) = encoded.split_at(encoded.len().min(MAX_FRAME_PAYLOAD - prefix));
        let mut flags = if block.end_stream { END_STREAM } else { 0 };
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        write_frame_header(out, prefix + first.len(), HEADERS, flags, block.stream_id);
        if let Some(priority) = &block.priority {
            out.extend_from_slice(priority);
        }
        out.extend_from_slice(first);
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
            let flags = if tail.is_empty() { END_HEADERS } else { 0 };
            write_frame_header(out, chunk.len(), CONTINUATION, flags, block.stream_id);
            out.extend_from_slice(chunk);
            rest = tail;
        }
        Ok(())
    }
}

/// `http://host:port/` becomes `host:port`; anything without a scheme is left as it is.
fn strip_scheme(value: &mut Vec<u8>) {
    for scheme in [&b"http://"[..], b"https://"] {
        if value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
            value.drain(..scheme.len());
            if value.last() == Some(&b'/') {
                value.pop();
            }
            return;
        }
    }
}

/// The stream identifier without RFC 7540's reserved bit.
const STREAM_ID_MASK: u32 = 0x7fff_ffff;

struct FrameHeader {
    len: usize,
    kind: u8,
    flags: u8,
    stream_id: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; FRAME_HEADER_BYTES] = b.get(..FRAME_HEADER_BYTES)?.try_into().ok()?;
        Some(Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        })
    }
}

fn write_frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    assert!(len <= MAX_FRAME_PAYLOAD, "frames are cut to the frame size");
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
}

impl Block {
    /// Parses a HEADERS payload (RFC 7540 §6.2): padding dropped, priority kept.
    fn start(header: &FrameHeader, payload: &[u8]) -> Result<Self, GiveUp> {
        if header.stream_id & STREAM_ID_MASK == 0 {
            return Err(GiveUp::Frame("HEADERS on stream 0"));
        }
        let mut p = payload;
        let mut pad = 0;
        if header.flags & PADDED != 0 {
            let (&n, tail) = p.split_first().ok_or(GiveUp::Frame("PADDED HEADERS without a pad length"))?;
            pad = usize::from(n);
            p = tail;
        }
        let mut priority = None;
        if header.flags & PRIORITY != 0 {
            let (fields, tail) =
                p.split_first_chunk::<PRIORITY_BYTES>().ok_or(GiveUp::Frame("HEADERS too short for its priority"))?;
            priority = Some(*fields);
            p = tail;
        }
        let fragment =
            p.len().checked_sub(pad).map(|n| &p[..n]).ok_or(GiveUp::Frame("padding longer than the frame"))?;
        Ok(Self {
            stream_id: header.stream_id,
            end_stream: header.flags & END_STREAM != 0,
            priority,
            fragment: fragment.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
