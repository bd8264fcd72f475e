//! A small HPACK (RFC 7541) codec for [`super::authority`]: a [`Decoder`] that mirrors a
//! client's encoder (static and dynamic table, table size updates, Huffman strings) and an
//! [`encode`] that never touches the dynamic table.
//!
//! Encoded output uses only indexed static entries and literals "without indexing" (or
//! "never indexed", as the field arrived), so whoever decodes it keeps an empty dynamic
//! table and every block stands alone.
//!
//! Input is untrusted: lengths are checked against what is left, integers are bounded, the
//! decoded list is capped by the caller, and every failure is an [`HpackError`], never a panic.

mod huffman;

use std::collections::VecDeque;

/// One header field as decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
    /// Sent as "literal never indexed" (RFC 7541 §6.2.3): re-encoded the same way.
    pub never_indexed: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HpackError {
    #[error("header block ends inside a field")]
    Truncated,
    #[error("integer too large")]
    IntegerOverflow,
    #[error("index {0} is in neither table")]
    BadIndex(usize),
    #[error("invalid Huffman string")]
    BadHuffman,
    #[error("dynamic table size update to {0} exceeds the allowed maximum")]
    TableSizeTooLarge(usize),
    #[error("dynamic table size update after a header field")]
    LateSizeUpdate,
    #[error("decoded header list exceeds {0} bytes")]
    ListTooLarge(usize),
}

/// RFC 7541 Appendix A; index i + 1 is `STATIC_TABLE[i]`.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// RFC 7541 §4.1: an entry's size is its name and value plus this overhead. RFC 7540
/// §6.5.2 counts header list sizes the same way.
const ENTRY_OVERHEAD: usize = 32;

/// The largest integer accepted: far above any legitimate length, index or table size
/// here (blocks are bounded well below it), and small enough that decoding cannot overflow.
const MAX_INTEGER: usize = 1 << 28;

/// Decodes the header blocks one peer's encoder sends, in order, keeping the same dynamic
/// table that encoder keeps.
pub(crate) struct Decoder {
    /// Most recent first: dynamic index 62 is `table[0]`.
    table: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    /// SETTINGS_HEADER_TABLE_SIZE of the receiving side: the most a size update may set.
    limit: usize,
}

impl Decoder {
    pub fn new(limit: usize) -> Self {
        Self { table: VecDeque::new(), size: 0, max_size: limit, limit }
    }

    /// Decodes one complete header block, failing once the decoded list (counted as RFC 7540
    /// counts it) exceeds `max_list_bytes`. After an error the table is unspecified.
    pub fn decode(&mut self, block: &[u8], max_list_bytes: usize) -> Result<Vec<Field>, HpackError> {
        let mut r = Reader { buf: block, pos: 0 };
        let mut fields = Vec::new();
        let mut list_bytes = 0;
        while let Some(&first) = block.get(r.pos) {
            let field = if first & 0x80 != 0 {
                let (name, value) = self.lookup(r.integer(7)?)?;
                Field { name: name.to_vec(), value: value.to_vec(), never_indexed: false }
            } else if first & 0x40 != 0 {
                let field = self.literal(&mut r, 6)?;
                self.insert(field.name.clone(), field.value.clone());
                field
            } else if first & 0x20 != 0 {
                // RFC 7541 §4.2: updates come only at the start of a block.
                if !fields.is_empty() {
                    return Err(HpackError::LateSizeUpdate);
                }
                let size = r.integer(5)?;
                if size > self.limit {
                    return Err(HpackError::TableSizeTooLarge(size));
                }
                self.max_size = size;
                self.evict_to(size);
                continue;
            } else {
                let mut field = self.literal(&mut r, 4)?;
                field.never_indexed = first & 0x10 != 0;
                field
            };
            list_bytes += field.name.len() + field.value.len() + ENTRY_OVERHEAD;
            if list_bytes > max_list_bytes {
                return Err(HpackError::ListTooLarge(max_list_bytes));
            }
            fields.push(field);
        }
        Ok(fields)
    }

    fn lookup(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        match index {
            1..=61 => {
                let (name, value) = STATIC_TABLE[index - 1];
                Ok((name.as_bytes(), value.as_bytes()))
            }
            _ => match index.checked_sub(62).and_then(|i| self.table.get(i)) {
                Some((name, value)) => Ok((name, value)),
                None => Err(HpackError::BadIndex(index)),
            },
        }
    }

    /// A literal field whose name index has `prefix_bits` bits (6 with indexing, else 4).
    fn literal(&self, r: &mut Reader<'_>, prefix_bits: u8) -> Result<Field, HpackError> {
        let name = match r.integer(prefix_bits)? {
            0 => r.string()?,
            index => self.lookup(index)?.0.to_vec(),
        };
        Ok(Field { name, value: r.string()?, never_indexed: false })
    }

    /// RFC 7541 §4.4: evict oldest entries to make room; an entry larger than the whole
    /// table empties it and is not added.
    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        self.table.push_front((name, value));
        self.size += size;
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let (name, value) = self.table.pop_back().expect("a non-zero size means entries");
            self.size -= name.len() + value.len() + ENTRY_OVERHEAD;
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, HpackError> {
        let b = *self.buf.get(self.pos).ok_or(HpackError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// RFC 7541 §5.1, the representation bits above the prefix ignored.
    fn integer(&mut self, prefix_bits: u8) -> Result<usize, HpackError> {
        let mask = (1usize << prefix_bits) - 1;
        let mut value = usize::from(self.byte()?) & mask;
        if value < mask {
            return Ok(value);
        }
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            value += usize::from(b & 0x7f) << shift;
            if value > MAX_INTEGER {
                return Err(HpackError::IntegerOverflow);
            }
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
        }
    }

    /// RFC 7541 §5.2.
    fn string(&mut self) -> Result<Vec<u8>, HpackError> {
        let huffman = self.buf.get(self.pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = self.integer(7)?;
        let end = self.pos.checked_add(len).filter(|&end| end <= self.buf.len()).ok_or(HpackError::Truncated)?;
        let raw = &self.buf[self.pos..end];
        self.pos = end;
        if !huffman {
            return Ok(raw.to_vec());
        }
        let mut out = Vec::with_capacity(raw.len() * 8 / 5);
        huffman::decode(raw, &mut out)?;
        Ok(out)
    }
}

/// Appends `fields` as one header block that needs no dynamic table: a field equal to a
/// static entry is indexed (unless never-indexed), anything else is a literal without
/// indexing (or never indexed), naming a static entry where one has the name. No Huffman.
pub(crate) fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for field in fields {
        let mut name_index = 0;
        let mut exact_index = None;
        for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
            if name.as_bytes() == field.name.as_slice() {
                if name_index == 0 {
                    name_index = i + 1;
                }
                if value.as_bytes() == field.value.as_slice() {
                    exact_index = Some(i + 1);
                    break;
                }
            }
        }
        match exact_index {
            Some(index) if !field.never_indexed => encode_integer(out, 0x80, 7, index),
            _ => {
                encode_integer(out, if field.never_indexed { 0x10 } else { 0x00 }, 4, name_index);
                if name_index == 0 {
                    encode_string(out, &field.name);
                }
                encode_string(out, &field.value);
            }
        }
    }
}

fn encode_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u8, value: usize) {
    let mask = (1usize << prefix_bits) - 1;
    if value < mask {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | mask as u8);
    let mut rest = value - mask;
    while rest >= 0x80 {
        out.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    out.push(rest as u8);
}

fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

#[cfg(test)]
pub(crate) mod tests;
