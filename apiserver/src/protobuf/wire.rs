//! Protobuf wire format: varints and tagged fields, read from a borrowed buffer.
//!
//! This layer knows nothing of Kubernetes: it splits a message into `(field number, value)`
//! pairs. Every read is bounds-checked and returns [`WireError`] instead of panicking, and a
//! length-delimited value is a sub-slice of the input (no copies).

use std::fmt;

/// Why a buffer is not a well-formed protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireError {
    /// The input ended inside a varint, a fixed-width value or a length-delimited value.
    Truncated,
    /// A varint ran past 10 bytes (more than 64 bits).
    VarintTooLong,
    /// Wire types 3 and 4 (groups, unused by Kubernetes) and 6, 7 (undefined).
    UnsupportedWireType(u8),
    /// Field number 0 or above 2^29 - 1.
    BadFieldNumber,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("unexpected end of data"),
            WireError::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireError::UnsupportedWireType(t) => write!(f, "unsupported wire type {t}"),
            WireError::BadFieldNumber => f.write_str("invalid field number"),
        }
    }
}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

impl WireValue<'_> {
    /// The wire type's name, for error messages.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "varint",
            WireValue::Fixed64(_) => "fixed64",
            WireValue::Fixed32(_) => "fixed32",
            WireValue::Len(_) => "length-delimited",
        }
    }

    /// Whether this is the encoding of a zero/empty value, which gogo writes for every unset
    /// non-pointer field.
    pub(super) fn is_zero(&self) -> bool {
        match *self {
            WireValue::Varint(v) | WireValue::Fixed64(v) => v == 0,
            WireValue::Fixed32(v) => v == 0,
            WireValue::Len(bytes) => bytes.is_empty(),
        }
    }
}

/// Iterates over the fields of one message.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

/// Largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// The next field, or `None` at the end of the message.
    pub(super) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::BadFieldNumber);
        }
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => WireValue::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Truncated)?;
                WireValue::Len(self.take(len)?)
            }
            5 => WireValue::Fixed32(u32::from_le_bytes(self.take_array()?)),
            other => return Err(WireError::UnsupportedWireType(other as u8)),
        };
        // Checked above: number fits in 29 bits.
        Ok(Some((number as u32, value)))
    }

    /// Reads a base-128 varint.
    pub(super) fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err(WireError::VarintTooLong)
        } else {
            Err(WireError::Truncated)
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Whether every byte has been consumed.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, WireError> {
        let mut reader = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(field) = reader.next_field()? {
            out.push(field);
        }
        Ok(out)
    }

    #[test]
    fn reads_each_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x12, 0x02, b'h', b'i', // 2: "hi"
            0x19, 1, 0, 0, 0, 0, 0, 0, 0, // 3: fixed64 1
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        let got = fields(&buf).unwrap();
        assert_eq!(
            got,
            vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Len(b"hi")),
                (3, WireValue::Fixed64(1)),
                (4, WireValue::Fixed32(2)),
            ]
        );
    }

    #[test]
    fn large_field_numbers_and_max_varint() {
        // Field 16 needs a two-byte key; -1 as int64 is a ten-byte varint.
        let buf = [0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(fields(&buf).unwrap(), vec![(16, WireValue::Varint(u64::MAX))]);
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(fields(&[0x08]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x08, 0x80]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x12, 0x05, b'a']), Err(WireError::Truncated));
        assert_eq!(fields(&[0x19, 1, 2]), Err(WireError::Truncated));
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(WireError::VarintTooLong)
        );
        assert_eq!(fields(&[0x0b]), Err(WireError::UnsupportedWireType(3)));
        assert_eq!(fields(&[0x00, 0x00]), Err(WireError::BadFieldNumber));
        // A length that cannot fit in memory is reported as truncation, not an overflow.
        assert_eq!(
            fields(&[0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn zero_values_are_recognised() {
        assert!(WireValue::Varint(0).is_zero());
        assert!(WireValue::Len(b"").is_zero());
        assert!(!WireValue::Len(b"x").is_zero());
        assert!(!WireValue::Fixed32(1).is_zero());
    }
}
