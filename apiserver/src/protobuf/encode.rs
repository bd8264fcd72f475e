//! A minimal protobuf writer, for building test bodies that exercise the decoder beyond
//! the captured kubectl fixtures. Test-only.

use super::envelope::MAGIC;

/// A message under construction; each method appends one field.
#[derive(Debug, Default, Clone)]
pub(super) struct Pb(pub Vec<u8>);

impl Pb {
    fn key(mut self, field: u32, wire_type: u8) -> Self {
        self.raw_varint(u64::from(field) << 3 | u64::from(wire_type));
        self
    }

    pub(super) fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    /// A varint field; negative values are written as 64-bit two's complement, like Go.
    pub(super) fn int(self, field: u32, v: i64) -> Self {
        let mut s = self.key(field, 0);
        s.raw_varint(v as u64);
        s
    }

    pub(super) fn fixed32(self, field: u32, v: u32) -> Self {
        let mut s = self.key(field, 5);
        s.0.extend_from_slice(&v.to_le_bytes());
        s
    }

    pub(super) fn bytes(self, field: u32, b: &[u8]) -> Self {
        let mut s = self.key(field, 2);
        s.raw_varint(b.len() as u64);
        s.0.extend_from_slice(b);
        s
    }

    pub(super) fn str(self, field: u32, v: &str) -> Self {
        self.bytes(field, v.as_bytes())
    }

    pub(super) fn msg(self, field: u32, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }

    /// A `map<string, string>` entry.
    pub(super) fn entry(self, field: u32, k: &str, v: &str) -> Self {
        self.msg(field, Pb::default().str(1, k).str(2, v))
    }
}

/// A full request body: magic, envelope, object.
pub(super) fn body(api_version: &str, kind: &str, raw: Pb) -> Vec<u8> {
    let type_meta = Pb::default().str(1, api_version).str(2, kind);
    let unknown = Pb::default().msg(1, type_meta).msg(2, raw).str(3, "").str(4, "");
    [MAGIC.as_slice(), &unknown.0].concat()
}

/// `ObjectMeta` as gogo writes it: every non-pointer field present, most of them empty.
pub(super) fn meta(name: &str) -> Pb {
    Pb::default().str(1, name).str(2, "").str(3, "").str(4, "").str(5, "").str(6, "").int(7, 0).bytes(8, b"")
}

/// An object's leading `metadata` field (field 1 of every kind).
pub(super) fn object(name: &str) -> Pb {
    Pb::default().msg(1, meta(name))
}

/// `IntOrString` holding an int.
pub(super) fn int_or_string(v: i64) -> Pb {
    Pb::default().int(1, 0).int(2, v).str(3, "")
}

/// `IntOrString` holding a string.
pub(super) fn int_or_string_str(v: &str) -> Pb {
    Pb::default().int(1, 1).int(2, 0).str(3, v)
}
