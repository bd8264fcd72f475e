//! The `runtime.Unknown` envelope every Kubernetes protobuf body is wrapped in:
//! `"k8s\0"` then `Unknown{1: typeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding,
//! 4: contentType}`, where `raw` is the object's own message.

use super::error::ProtobufError;
use super::value;
use super::wire::{Reader, WireError, WireValue};

/// The 4-byte prefix that marks a Kubernetes protobuf body.
pub(super) const MAGIC: &[u8; 4] = b"k8s\0";

/// A parsed envelope; `raw` borrows from the body.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Envelope<'a> {
    pub api_version: String,
    pub kind: String,
    pub raw: &'a [u8],
}

fn malformed(reason: impl ToString) -> ProtobufError {
    ProtobufError::Malformed { path: "envelope".into(), reason: reason.to_string() }
}

fn bytes<'a>(value: WireValue<'a>, what: &str) -> Result<&'a [u8], ProtobufError> {
    match value {
        WireValue::Len(b) => Ok(b),
        other => Err(malformed(format!("{what} is a {}, not length-delimited", other.type_name()))),
    }
}

fn string(value: WireValue<'_>, what: &str) -> Result<String, ProtobufError> {
    value::utf8(bytes(value, what)?, what).map_err(|_| malformed(format!("{what} is not valid UTF-8")))
}

impl<'a> Envelope<'a> {
    /// Checks the magic and reads the envelope. Unknown envelope fields are skipped, as
    /// upstream's generated unmarshaller does.
    pub(super) fn parse(body: &'a [u8]) -> Result<Self, ProtobufError> {
        let unknown = body.strip_prefix(MAGIC.as_slice()).ok_or(ProtobufError::MissingMagic)?;
        let mut envelope = Envelope { api_version: String::new(), kind: String::new(), raw: &[] };
        let mut reader = Reader::new(unknown);
        while let Some((number, value)) = reader.next_field().map_err(malformed)? {
            match number {
                1 => envelope.read_type_meta(bytes(value, "typeMeta")?).map_err(malformed)?,
                2 => envelope.raw = bytes(value, "raw")?,
                // Upstream never compresses request bodies; a set encoding means `raw` is not
                // the object's message, so decoding it would produce garbage.
                3 => {
                    let encoding = string(value, "contentEncoding")?;
                    if !encoding.is_empty() {
                        return Err(malformed(format!("contentEncoding {encoding:?} is not supported")));
                    }
                }
                // contentType names the encoding of `raw`; upstream's decoder ignores it too.
                _ => {}
            }
        }
        if envelope.kind.is_empty() {
            return Err(malformed("typeMeta.kind is not set"));
        }
        if envelope.raw.is_empty() {
            return Err(malformed("raw (the object) is empty"));
        }
        Ok(envelope)
    }

    fn read_type_meta(&mut self, buf: &[u8]) -> Result<(), ProtobufError> {
        let mut reader = Reader::new(buf);
        while let Some((number, value)) = reader.next_field().map_err(|e: WireError| malformed(e))? {
            match number {
                1 => self.api_version = string(value, "typeMeta.apiVersion")?,
                2 => self.kind = string(value, "typeMeta.kind")?,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(unknown: &[u8]) -> Vec<u8> {
        [MAGIC.as_slice(), unknown].concat()
    }

    #[test]
    fn parses_type_meta_and_raw() {
        // typeMeta{apiVersion "v1", kind "X"}, raw [0x0a, 0x00], contentEncoding "", contentType "".
        let b = body(&[
            0x0a, 0x07, 0x0a, 0x02, b'v', b'1', 0x12, 0x01, b'X', 0x12, 0x02, 0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
        ]);
        let e = Envelope::parse(&b).unwrap();
        assert_eq!(e, Envelope { api_version: "v1".into(), kind: "X".into(), raw: &[0x0a, 0x00] });
    }

    #[test]
    fn requires_the_magic() {
        assert_eq!(Envelope::parse(b"k8s"), Err(ProtobufError::MissingMagic));
        assert_eq!(Envelope::parse(b"{\"kind\":\"ConfigMap\"}"), Err(ProtobufError::MissingMagic));
        assert_eq!(Envelope::parse(b""), Err(ProtobufError::MissingMagic));
    }

    #[test]
    fn rejects_missing_kind_missing_raw_and_compression() {
        let no_kind = body(&[0x12, 0x02, 0x0a, 0x00]);
        assert!(matches!(Envelope::parse(&no_kind), Err(ProtobufError::Malformed { .. })));
        let no_raw = body(&[0x0a, 0x03, 0x12, 0x01, b'X']);
        assert!(matches!(Envelope::parse(&no_raw), Err(ProtobufError::Malformed { .. })));
        let gzip = body(&[0x0a, 0x03, 0x12, 0x01, b'X', 0x12, 0x01, 0x00, 0x1a, 0x04, b'g', b'z', b'i', b'p']);
        let err = Envelope::parse(&gzip).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
        let bad_utf8 = body(&[0x0a, 0x03, 0x12, 0x01, 0xff, 0x12, 0x01, 0x00]);
        assert!(matches!(Envelope::parse(&bad_utf8), Err(ProtobufError::Malformed { .. })));
    }
}
