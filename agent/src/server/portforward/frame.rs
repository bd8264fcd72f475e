//! SPDY/3.1 frame codec: bytes ⇄ [`Frame`], nothing else.
//!
//! Every frame starts with 8 bytes. A control frame is `1 | version(15) | type(16)`,
//! then `flags(8) | length(24)`; a data frame is `0 | stream-id(31)`, then
//! `flags(8) | length(24)`. `length` counts the payload after those 8 bytes.
//!
//! Invariants:
//! - [`Frame::decode`] consumes exactly one whole frame from the buffer or nothing: a
//!   partial frame stays in the buffer until more bytes arrive, so the caller may feed
//!   arbitrary chunks (websocket messages split frames anywhere).
//! - A frame announcing a payload over [`MAX_FRAME_PAYLOAD`] is an error before any of
//!   it is buffered, which bounds memory per session.
//! - Header blocks stay compressed here: their zlib context spans the whole session in
//!   one direction, so only the session (see `headers.rs`) may decompress them, in order.
//! - Unknown control frame types decode to [`Frame::Unknown`] and are ignored, as the
//!   spec asks; reserved bits (the high bit of stream ids and deltas) are masked off.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The only SPDY version spoken (SPDY/3 and 3.1 share version number 3).
pub const VERSION: u16 = 3;

/// Largest frame payload accepted. A flow-controlled peer cannot send more than its
/// 64 KiB window in one frame and kubectl's spdystream writes at most 32 KiB per frame;
/// 1 MiB leaves room for header blocks and odd peers while bounding the read buffer.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;

/// Largest payload the 24-bit length field can carry; outgoing data is split below it.
pub const MAX_ENCODABLE_PAYLOAD: usize = (1 << 24) - 1;

/// Control and data frame flag: this is the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// SYN_STREAM flag: the recipient must not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// SETTINGS id of the initial per-stream flow-control window.
pub const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const HEADER_LEN: usize = 8;
const ID_MASK: u32 = 0x7fff_ffff;

/// RST_STREAM status codes (SPDY/3 §2.6.3).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const STREAM_IN_USE: u32 = 8;
    pub const STREAM_ALREADY_CLOSED: u32 = 9;
}

/// GOAWAY status codes (SPDY/3 §2.6.6).
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INTERNAL_ERROR: u32 = 2;
}

/// One SETTINGS entry: `flags(8) | id(24)`, then a 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// One SPDY/3.1 frame. `header_block` fields hold the still-compressed name/value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        header_block: Bytes,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        header_block: Bytes,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings {
        flags: u8,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        header_block: Bytes,
    },
    /// `stream_id` 0 is the session-level window (new in SPDY/3.1).
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame type this codec does not know; ignored by the session.
    Unknown {
        frame_type: u16,
    },
}

/// A byte sequence that is not a valid SPDY/3.1 frame; the session must end (GOAWAY).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame payload of {len} bytes exceeds the {MAX_FRAME_PAYLOAD}-byte limit")]
    TooLarge { len: usize },
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    #[error("malformed {kind} frame: {why}")]
    Malformed { kind: &'static str, why: &'static str },
}

impl Frame {
    /// Decodes one frame from the front of `buf`, or returns `Ok(None)` (consuming
    /// nothing) when `buf` does not yet hold a whole frame.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let flags = buf[4];
        let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if len > MAX_FRAME_PAYLOAD {
            return Err(FrameError::TooLarge { len });
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & ID_MASK, flags, data: payload }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        decode_control((first & 0xffff) as u16, flags, payload).map(Some)
    }

    /// Appends the wire form of this frame to `out`.
    ///
    /// Panics if a payload exceeds [`MAX_ENCODABLE_PAYLOAD`]: callers split data first.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Frame::Data { stream_id, flags, data } => {
                out.put_u32(stream_id & ID_MASK);
                put_flags_len(out, *flags, data.len());
                out.put_slice(data);
            }
            Frame::SynStream { stream_id, associated_id, priority, flags, header_block } => {
                control_header(out, TYPE_SYN_STREAM, *flags, 10 + header_block.len());
                out.put_u32(stream_id & ID_MASK);
                out.put_u32(associated_id & ID_MASK);
                out.put_u8((priority & 0x7) << 5);
                out.put_u8(0); // credential slot, unused since SPDY/3.1
                out.put_slice(header_block);
            }
            Frame::SynReply { stream_id, flags, header_block } => {
                control_header(out, TYPE_SYN_REPLY, *flags, 4 + header_block.len());
                out.put_u32(stream_id & ID_MASK);
                out.put_slice(header_block);
            }
            Frame::Headers { stream_id, flags, header_block } => {
                control_header(out, TYPE_HEADERS, *flags, 4 + header_block.len());
                out.put_u32(stream_id & ID_MASK);
                out.put_slice(header_block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8);
                out.put_u32(stream_id & ID_MASK);
                out.put_u32(*status);
            }
            Frame::Settings { flags, entries } => {
                control_header(out, TYPE_SETTINGS, *flags, 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for e in entries {
                    out.put_u32(u32::from(e.flags) << 24 | (e.id & 0x00ff_ffff));
                    out.put_u32(e.value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway { last_good_stream_id, status } => {
                control_header(out, TYPE_GOAWAY, 0, 8);
                out.put_u32(last_good_stream_id & ID_MASK);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.put_u32(stream_id & ID_MASK);
                out.put_u32(delta & ID_MASK);
            }
            Frame::Unknown { frame_type } => control_header(out, *frame_type, 0, 0),
        }
    }
}

fn control_header(out: &mut BytesMut, frame_type: u16, flags: u8, len: usize) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(frame_type);
    put_flags_len(out, flags, len);
}

fn put_flags_len(out: &mut BytesMut, flags: u8, len: usize) {
    assert!(len <= MAX_ENCODABLE_PAYLOAD, "frame payload of {len} bytes does not fit 24 bits");
    out.put_u32(u32::from(flags) << 24 | len as u32);
}

fn decode_control(frame_type: u16, flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
    let need = |kind, min: usize, p: &Bytes| {
        if p.len() < min {
            Err(FrameError::Malformed { kind, why: "payload too short" })
        } else {
            Ok(())
        }
    };
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            need("SYN_STREAM", 10, &p)?;
            let stream_id = p.get_u32() & ID_MASK;
            let associated_id = p.get_u32() & ID_MASK;
            let priority = p.get_u8() >> 5;
            let _slot = p.get_u8();
            Frame::SynStream { stream_id, associated_id, priority, flags, header_block: p }
        }
        TYPE_SYN_REPLY => {
            need("SYN_REPLY", 4, &p)?;
            Frame::SynReply { stream_id: p.get_u32() & ID_MASK, flags, header_block: p }
        }
        TYPE_HEADERS => {
            need("HEADERS", 4, &p)?;
            Frame::Headers { stream_id: p.get_u32() & ID_MASK, flags, header_block: p }
        }
        TYPE_RST_STREAM => {
            need("RST_STREAM", 8, &p)?;
            Frame::RstStream { stream_id: p.get_u32() & ID_MASK, status: p.get_u32() }
        }
        TYPE_SETTINGS => decode_settings(flags, p)?,
        TYPE_PING => {
            need("PING", 4, &p)?;
            Frame::Ping { id: p.get_u32() }
        }
        TYPE_GOAWAY => {
            need("GOAWAY", 4, &p)?;
            let last_good_stream_id = p.get_u32() & ID_MASK;
            // SPDY/2 GOAWAY had no status; treat a missing one as OK.
            let status = if p.remaining() >= 4 { p.get_u32() } else { goaway::OK };
            Frame::GoAway { last_good_stream_id, status }
        }
        TYPE_WINDOW_UPDATE => {
            need("WINDOW_UPDATE", 8, &p)?;
            Frame::WindowUpdate { stream_id: p.get_u32() & ID_MASK, delta: p.get_u32() & ID_MASK }
        }
        other => Frame::Unknown { frame_type: other },
    };
    Ok(frame)
}

fn decode_settings(flags: u8, mut p: Bytes) -> Result<Frame, FrameError> {
    let malformed = |why| FrameError::Malformed { kind: "SETTINGS", why };
    if p.len() < 4 {
        return Err(malformed("payload too short"));
    }
    let count = p.get_u32() as usize;
    if p.remaining() != count.saturating_mul(8) {
        return Err(malformed("entry count does not match length"));
    }
    let entries = (0..count)
        .map(|_| {
            let flag_id = p.get_u32();
            Setting { flags: (flag_id >> 24) as u8, id: flag_id & 0x00ff_ffff, value: p.get_u32() }
        })
        .collect();
    Ok(Frame::Settings { flags, entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let wire = buf.clone();
        // Fed one byte at a time, nothing decodes until the last byte arrives.
        let mut partial = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            partial.put_u8(*b);
            let got = Frame::decode(&mut partial).expect("valid frame");
            if i + 1 < wire.len() {
                assert_eq!(got, None, "decoded early at byte {i}");
            } else {
                assert_eq!(got, Some(frame.clone()));
            }
        }
        assert!(partial.is_empty());
    }

    #[test]
    fn every_frame_type_round_trips() {
        let hb = Bytes::from_static(b"\x78\xf9compressed");
        round_trip(Frame::SynStream {
            stream_id: 5,
            associated_id: 0,
            priority: 3,
            flags: FLAG_FIN,
            header_block: hb.clone(),
        });
        round_trip(Frame::SynReply { stream_id: 7, flags: 0, header_block: hb.clone() });
        round_trip(Frame::Headers { stream_id: 7, flags: FLAG_FIN, header_block: hb });
        round_trip(Frame::RstStream { stream_id: 9, status: rst::CANCEL });
        round_trip(Frame::Settings {
            flags: 0,
            entries: vec![Setting { flags: 1, id: SETTINGS_INITIAL_WINDOW_SIZE, value: 1 << 20 }],
        });
        round_trip(Frame::Ping { id: 0xdead_beef });
        round_trip(Frame::GoAway { last_good_stream_id: 11, status: goaway::PROTOCOL_ERROR });
        round_trip(Frame::WindowUpdate { stream_id: 0, delta: 65536 });
        round_trip(Frame::Data { stream_id: 3, flags: FLAG_FIN, data: Bytes::from_static(b"hello") });
        round_trip(Frame::Data { stream_id: 3, flags: 0, data: Bytes::new() });
    }

    #[test]
    fn decodes_kubectl_ping_and_two_frames_in_one_buffer() {
        // The PING kubectl 1.32 sent at offset 0x60 of a captured session, twice.
        let mut buf = BytesMut::from(&b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
        buf.extend_from_slice(&buf.clone());
        assert_eq!(Frame::decode(&mut buf), Ok(Some(Frame::Ping { id: 1 })));
        assert_eq!(Frame::decode(&mut buf), Ok(Some(Frame::Ping { id: 1 })));
        assert_eq!(Frame::decode(&mut buf), Ok(None));
    }

    #[test]
    fn rejects_oversized_frames_before_buffering_them() {
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x01\x00\x20\x00\x00"[..]); // 2 MiB data frame
        assert_eq!(Frame::decode(&mut buf), Err(FrameError::TooLarge { len: 2 << 20 }));
    }

    #[test]
    fn rejects_other_versions_and_malformed_payloads() {
        let mut v2 = BytesMut::from(&b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
        assert_eq!(Frame::decode(&mut v2), Err(FrameError::UnsupportedVersion(2)));
        let mut short = BytesMut::from(&b"\x80\x03\x00\x03\x00\x00\x00\x04\x00\x00\x00\x01"[..]);
        assert!(matches!(Frame::decode(&mut short), Err(FrameError::Malformed { kind: "RST_STREAM", .. })));
        let mut settings = BytesMut::from(&b"\x80\x03\x00\x04\x00\x00\x00\x04\x00\x00\x00\x02"[..]);
        assert!(matches!(Frame::decode(&mut settings), Err(FrameError::Malformed { kind: "SETTINGS", .. })));
    }

    #[test]
    fn unknown_control_types_are_skipped_and_reserved_bits_masked() {
        let mut buf = BytesMut::from(&b"\x80\x03\x00\x0a\x00\x00\x00\x02\xff\xff"[..]);
        assert_eq!(Frame::decode(&mut buf), Ok(Some(Frame::Unknown { frame_type: 10 })));
        let mut wu = BytesMut::from(&b"\x80\x03\x00\x09\x00\x00\x00\x08\x80\x00\x00\x01\x80\x00\x00\x10"[..]);
        assert_eq!(Frame::decode(&mut wu), Ok(Some(Frame::WindowUpdate { stream_id: 1, delta: 16 })));
    }
}
