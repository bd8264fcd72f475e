//! SPDY/3 name/value header blocks and their zlib compression.
//!
//! A block is `count(32)` then, per pair, `len(32) name len(32) value`; names are
//! lowercase, several values of one name are joined with NUL. Blocks travel compressed
//! with zlib (RFC 1950) primed with the SPDY/3 dictionary ([`dictionary`]).
//!
//! Invariants:
//! - One [`HeaderCompressor`] per session for what we send and one [`HeaderDecompressor`]
//!   for what we receive: the zlib stream runs across every block of the session in one
//!   direction, so blocks must be compressed and decompressed in wire order.
//! - Each compressed block ends with a zlib sync flush, so the peer can decode it without
//!   waiting for the next one.
//! - A decompressed block larger than [`MAX_HEADER_BLOCK`] is an error (no zlib bombs).

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Largest decompressed header block accepted. Port-forward blocks hold three short
/// headers (~60 bytes); 64 KiB is generous and still bounds memory per frame.
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Header words of the SPDY/3 dictionary, each stored with a 32-bit length prefix.
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// Common values that end the SPDY/3 dictionary, stored without length prefixes.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary (1423 bytes, Adler-32 `0xe3c6a7c2`).
pub fn dictionary() -> Vec<u8> {
    let mut dict = Vec::with_capacity(1423);
    for word in DICTIONARY_WORDS {
        dict.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dict.extend_from_slice(word.as_bytes());
    }
    dict.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    dict
}

/// A header block could not be compressed, decompressed or parsed; the session ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("zlib: {0}")]
    Zlib(String),
    #[error("header block exceeds {MAX_HEADER_BLOCK} bytes")]
    TooLarge,
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
}

/// Decoded name/value pairs in wire order; names are lowercase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderBlock {
    pairs: Vec<(String, String)>,
}

impl HeaderBlock {
    /// Adds `name: value`; the name is lowercased as SPDY requires.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.pairs.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The first value of `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let (_, v) = self.pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(v.split('\0').next().unwrap_or(v))
    }

    /// The uncompressed wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.pairs.len() as u32).to_be_bytes());
        for (name, value) in &self.pairs {
            for s in [name, value] {
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
        out
    }

    /// Parses the uncompressed wire form.
    pub fn parse(mut raw: &[u8]) -> Result<Self, HeaderError> {
        let count = take_u32(&mut raw)? as usize;
        // Each pair takes at least 8 bytes: reject absurd counts before allocating.
        if count > raw.len() / 8 {
            return Err(HeaderError::Malformed("pair count exceeds block length"));
        }
        let mut pairs = Vec::with_capacity(count);
        for _ in 0..count {
            let name = take_string(&mut raw)?;
            let value = take_string(&mut raw)?;
            pairs.push((name.to_ascii_lowercase(), value));
        }
        if !raw.is_empty() {
            return Err(HeaderError::Malformed("trailing bytes after the last pair"));
        }
        Ok(Self { pairs })
    }
}

fn take_u32(raw: &mut &[u8]) -> Result<u32, HeaderError> {
    let (head, rest) = raw.split_first_chunk::<4>().ok_or(HeaderError::Malformed("truncated length"))?;
    *raw = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(raw: &mut &[u8]) -> Result<String, HeaderError> {
    let len = take_u32(raw)? as usize;
    if raw.len() < len {
        return Err(HeaderError::Malformed("truncated string"));
    }
    let (s, rest) = raw.split_at(len);
    *raw = rest;
    String::from_utf8(s.to_vec()).map_err(|_| HeaderError::Malformed("header is not UTF-8"))
}

/// Compresses the header blocks one session sends, in order.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    pub fn new() -> Self {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(&dictionary()).expect("a fresh zlib stream accepts a dictionary");
        Self { zlib }
    }

    /// The compressed form of `block`, ending with a sync flush.
    pub fn compress(&mut self, block: &HeaderBlock) -> Result<Bytes, HeaderError> {
        let input = block.encode();
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            out.reserve(256);
            let before = self.zlib.total_in();
            self.zlib
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| HeaderError::Zlib(e.to_string()))?;
            consumed += (self.zlib.total_in() - before) as usize;
            // zlib has finished the flush once it leaves output space unused.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out.into());
            }
        }
    }
}

impl Default for HeaderCompressor {
    fn default() -> Self {
        Self::new()
    }
}

/// Decompresses the header blocks one session receives, in order.
pub struct HeaderDecompressor {
    zlib: Decompress,
    dictionary: Vec<u8>,
}

impl HeaderDecompressor {
    pub fn new() -> Self {
        Self { zlib: Decompress::new(true), dictionary: dictionary() }
    }

    /// Decompresses and parses one block.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<HeaderBlock, HeaderError> {
        let mut out = Vec::with_capacity(256);
        let mut consumed = 0;
        loop {
            out.reserve(256);
            let before = self.zlib.total_in();
            let result = self.zlib.decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.zlib.total_in() - before) as usize;
            match result {
                Ok(Status::StreamEnd) => return Err(HeaderError::Malformed("zlib stream ended")),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.zlib.set_dictionary(&self.dictionary).map_err(|e| HeaderError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError::Zlib(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(HeaderError::TooLarge);
            }
            if consumed == compressed.len() && out.len() < out.capacity() {
                return HeaderBlock::parse(&out);
            }
        }
    }
}

impl Default for HeaderDecompressor {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header blocks of the first two SYN_STREAMs kubectl 1.32.4 sent to a captured
    /// `kubectl port-forward` session (`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`): the error
    /// streams of requests 0 and 1. The second only decodes with the first's zlib context.
    const KUBECTL_BLOCK_1: &[u8] = b"\x78\xf9\xe3\xc6\xa7\xc2\x02\x25\x3a\x70\x3a\x2b\x29\x4a\x4d\xcc\
        \x85\x16\x25\xac\xa9\xa0\x80\x86\x14\xcb\x45\xa0\x24\xcc\x64\x61\xc0\xc0\xc0\xc0\x59\x04\x89\xc4\
        \x4c\x50\xe2\x66\x34\x00\x00\x00\x00\xff\xff";
    const KUBECTL_BLOCK_2: &[u8] = b"\x22\x5f\xab\x21\x00\x00\x00\xff\xff";

    #[test]
    fn dictionary_matches_the_spdy3_checksum() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        // The zlib DICTID kubectl's blocks carry (bytes 2..6 of KUBECTL_BLOCK_1).
        let adler = Compress::new(Compression::default(), true).set_dictionary(&dict).expect("dictionary");
        assert_eq!(adler, 0xe3c6_a7c2);
    }

    #[test]
    fn decodes_kubectl_header_blocks() {
        let mut d = HeaderDecompressor::new();
        let first = d.decompress(KUBECTL_BLOCK_1).expect("first block");
        assert_eq!(first, HeaderBlock::default().with("streamtype", "error").with("port", "80").with("requestid", "0"));
        let second = d.decompress(KUBECTL_BLOCK_2).expect("second block");
        assert_eq!(second.get("requestID"), Some("1"));
        assert_eq!(second.get("StreamType"), Some("error"));
    }

    #[test]
    fn compressed_blocks_round_trip_across_one_context() {
        let mut c = HeaderCompressor::new();
        let mut d = HeaderDecompressor::new();
        let blocks = [
            HeaderBlock::default(),
            HeaderBlock::default().with("StreamType", "data").with("port", "8080").with("requestID", "7"),
            HeaderBlock::default().with("x", &"v".repeat(5000)),
        ];
        for (i, block) in blocks.iter().enumerate() {
            let wire = c.compress(block).expect("compress");
            if i == 0 {
                assert_eq!(wire[0] & 0x0f, 8, "deflate method");
                assert_ne!(wire[1] & 0x20, 0, "FDICT flag set");
                assert_eq!(&wire[2..6], &[0xe3, 0xc6, 0xa7, 0xc2]);
            }
            assert_eq!(&wire[wire.len() - 4..], &[0, 0, 0xff, 0xff], "ends with a sync flush");
            assert_eq!(&d.decompress(&wire).expect("decompress"), block);
        }
    }

    #[test]
    fn rejects_garbage_and_bombs() {
        assert!(HeaderDecompressor::new().decompress(b"\x78\x9cnot zlib at all").is_err());
        let mut c = HeaderCompressor::new();
        let bomb = c.compress(&HeaderBlock::default().with("x", &"a".repeat(MAX_HEADER_BLOCK))).expect("compress");
        assert!(bomb.len() < 1024, "compresses well");
        assert_eq!(HeaderDecompressor::new().decompress(&bomb), Err(HeaderError::TooLarge));
        assert!(HeaderBlock::parse(b"\x00\x00\x00\x01\x00\x00\x00\x05ab").is_err());
        assert!(HeaderBlock::parse(b"\xff\xff\xff\xff").is_err());
    }
}
