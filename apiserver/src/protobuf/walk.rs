//! The schema-driven walk: one protobuf message plus its [`Message`] table in, one JSON
//! object out.
//!
//! Rules (see [`Card`] for why):
//! - non-pointer fields ([`Card::One`]) are dropped when zero: `""`, 0, false, `{}`, `[]`,
//!   the zero time, IntOrString 0 / `""`;
//! - pointer fields keep whatever was sent (`replicas: 0`, `immutable: false`, `{}`);
//! - repeated and map fields keep every element; an empty list or map is simply absent,
//!   because gogo writes nothing for it;
//! - a field missing from the table is skipped if its wire value is zero (gogo writes every
//!   non-pointer field, including ones this server does not model) and is an
//!   [`ProtobufError::UnknownField`] otherwise, so data is never dropped silently;
//! - the last occurrence of a singular field wins.

use std::fmt;

use serde_json::{Map, Value};

use super::error::ProtobufError;
use super::schema::{Card, Field, Kind, Message};
use super::value::{self, LeafError};
use super::wire::{Reader, WireValue};

/// Where the walk is, for error messages; lives on the stack, rendered only on error.
#[derive(Debug, Clone, Copy)]
pub(super) enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'static str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("<root>"),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

fn malformed(path: &Path<'_>, reason: impl fmt::Display) -> ProtobufError {
    ProtobufError::Malformed { path: path.to_string(), reason: reason.to_string() }
}

fn leaf_error(path: &Path<'_>, e: LeafError) -> ProtobufError {
    match e {
        LeafError::Wire(w) => malformed(path, w),
        LeafError::Invalid(reason) => malformed(path, reason),
    }
}

/// Decodes `buf` as an instance of `message`.
pub(super) fn message(
    buf: &[u8],
    message: &'static Message,
    path: &Path<'_>,
) -> Result<Map<String, Value>, ProtobufError> {
    let mut out = Map::new();
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.next_field().map_err(|e| malformed(path, e))? {
        let Some(field) = message.field(number) else {
            if value.is_zero() {
                continue;
            }
            return Err(ProtobufError::UnknownField { path: path.to_string(), message: message.name, number });
        };
        match field.kind {
            Kind::Skip => {}
            Kind::Inline(inner) => {
                // The embedded struct's members belong to this object, and so does its path.
                let bytes = len(value, path)?;
                out.extend(self::message(bytes, inner, path)?);
            }
            _ => add(field, value, &Path::Field(path, field.name), &mut out)?,
        }
    }
    Ok(out)
}

/// Adds one wire occurrence of `field` to `out`, as its cardinality says.
fn add(
    field: &Field,
    value: WireValue<'_>,
    path: &Path<'_>,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    match field.card {
        Card::One | Card::Pointer => match single(field.kind, value, path)? {
            Some(v) if field.card == Card::Pointer || !is_zero(&v) => {
                out.insert(field.name.to_owned(), v);
            }
            // A zero non-pointer value means "unset", and a later occurrence overrides an earlier one.
            _ => {
                out.remove(field.name);
            }
        },
        Card::Repeated => {
            let Value::Array(items) = out.entry(field.name).or_insert_with(|| Value::Array(Vec::new())) else {
                return Err(malformed(path, "field is both repeated and singular"));
            };
            append(field.kind, value, path, items)?;
            // An empty packed run adds nothing; leave no empty list behind for it.
            if items.is_empty() {
                out.remove(field.name);
            }
        }
        Card::Map => {
            let (key, item) = map_entry(field.kind, value, path)?;
            let Value::Object(object) = out.entry(field.name).or_insert_with(|| Value::Object(Map::new())) else {
                return Err(malformed(path, "field is both a map and not a map"));
            };
            object.insert(key, item);
        }
    }
    Ok(())
}

/// Appends one wire occurrence of a repeated field: one element, or a packed run of ints.
fn append(kind: Kind, value: WireValue<'_>, path: &Path<'_>, items: &mut Vec<Value>) -> Result<(), ProtobufError> {
    if let (Kind::Int, WireValue::Len(packed)) = (kind, value) {
        // proto2 writes repeated ints unpacked, but a packed run is also valid protobuf.
        let mut reader = Reader::new(packed);
        while !reader.is_empty() {
            let v = reader.varint().map_err(|e| malformed(path, e))?;
            items.push(Value::from(v as i64));
        }
    } else if let Some(v) = single(kind, value, &Path::Index(path, items.len()))? {
        items.push(v);
    }
    Ok(())
}

/// Reads one `map<string, V>` entry (`{1: key, 2: value}`).
fn map_entry(kind: Kind, value: WireValue<'_>, path: &Path<'_>) -> Result<(String, Value), ProtobufError> {
    let mut reader = Reader::new(len(value, path)?);
    let (mut key, mut item) = (String::new(), WireValue::Len(&[]));
    while let Some((number, v)) = reader.next_field().map_err(|e| malformed(path, e))? {
        match number {
            1 => key = value::utf8(len(v, path)?, "map key").map_err(|e| leaf_error(path, e))?,
            2 => item = v,
            _ => {}
        }
    }
    // An absent value is the empty one, which for every map value kind in use (string, bytes,
    // Quantity) is the empty string.
    Ok((key, single(kind, item, path)?.unwrap_or(Value::Null)))
}

/// Converts one wire value of `kind`; `None` means "unset" (the zero time).
fn single(kind: Kind, value: WireValue<'_>, path: &Path<'_>) -> Result<Option<Value>, ProtobufError> {
    let leaf = |r: Result<Value, LeafError>| r.map(Some).map_err(|e| leaf_error(path, e));
    match kind {
        Kind::Str => leaf(value::utf8(len(value, path)?, "string").map(Value::String)),
        Kind::Bytes => Ok(Some(Value::String(value::base64(len(value, path)?)))),
        // int32 and int64 both travel as a 64-bit two's complement varint.
        Kind::Int => Ok(Some(Value::from(varint(value, path)? as i64))),
        Kind::Bool => Ok(Some(Value::Bool(varint(value, path)? != 0))),
        Kind::Time => value::time(len(value, path)?).map_err(|e| leaf_error(path, e)),
        Kind::IntOrString => leaf(value::int_or_string(len(value, path)?)),
        Kind::Quantity => leaf(value::quantity(len(value, path)?)),
        Kind::RawJson => leaf(value::raw_json(len(value, path)?)),
        Kind::Msg(inner) => Ok(Some(Value::Object(message(len(value, path)?, inner, path)?))),
        // Handled by the caller; reaching here would mean a schema table misuse.
        Kind::Skip | Kind::Inline(_) => Ok(None),
    }
}

fn len<'a>(value: WireValue<'a>, path: &Path<'_>) -> Result<&'a [u8], ProtobufError> {
    match value {
        WireValue::Len(bytes) => Ok(bytes),
        other => Err(malformed(path, format!("expected a length-delimited value, found a {}", other.type_name()))),
    }
}

fn varint(value: WireValue<'_>, path: &Path<'_>) -> Result<u64, ProtobufError> {
    match value {
        WireValue::Varint(v) => Ok(v),
        other => Err(malformed(path, format!("expected a varint, found a {}", other.type_name()))),
    }
}

/// Whether `v` is what Go's zero value of its field decodes to.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::encode::{int_or_string, meta, Pb};
    use super::super::{container, meta as meta_schema, pod, volume};
    use super::*;

    fn decode(buf: Pb, schema: &'static Message) -> Result<Value, ProtobufError> {
        message(&buf.0, schema, &Path::Root).map(Value::Object)
    }

    #[test]
    fn unknown_fields_are_skipped_only_when_zero() {
        // Field 99 is not in ObjectMeta: zero values of any wire type are what gogo writes
        // for an unset field this server does not model.
        let zero = meta("a").int(99, 0).str(98, "").fixed32(97, 0);
        assert_eq!(decode(zero, &meta_schema::OBJECT_META).unwrap(), json!({"name": "a"}));

        // A gcePersistentDisk volume (VolumeSource field 3, not modelled).
        let gce = Pb::default().msg(3, Pb::default().str(1, "disk-1"));
        let set = Pb::default().msg(1, Pb::default().str(1, "data").msg(2, gce));
        let err = decode(set, &pod::POD_SPEC).unwrap_err();
        let want = ProtobufError::UnknownField { path: "volumes[0]".into(), message: "VolumeSource", number: 3 };
        assert_eq!(err, want);
        assert!(err.to_string().contains("application/json"), "{err}");
    }

    #[test]
    fn errors_name_the_field_path() {
        let container = Pb::default().str(1, "c").int(2, 7);
        let spec = Pb::default().msg(2, Pb::default().str(1, "ok")).msg(2, container);
        let err = decode(spec, &pod::POD_SPEC).unwrap_err();
        let ProtobufError::Malformed { path, reason } = err else { panic!("wrong error {err:?}") };
        assert_eq!(path, "containers[1].image");
        assert!(reason.contains("length-delimited"), "{reason}");

        let bad_utf8 = Pb::default().bytes(1, &[b'a', 0xc3]);
        let err = decode(bad_utf8, &meta_schema::OBJECT_META).unwrap_err();
        assert!(matches!(&err, ProtobufError::Malformed { path, .. } if path == "name"), "{err:?}");
    }

    #[test]
    fn ints_negative_packed_and_unpacked() {
        // supplementalGroups: one unpacked element, then a packed run; fsGroup is a pointer.
        let mut packed = Pb::default();
        packed.raw_varint(2000);
        packed.raw_varint(3000);
        let ctx = Pb::default().int(4, 1000).bytes(4, &packed.0).bytes(4, b"").int(5, 0).int(2, -1);
        let got = decode(ctx, &pod::POD_SECURITY_CONTEXT).unwrap();
        assert_eq!(got, json!({"supplementalGroups": [1000, 2000, 3000], "fsGroup": 0, "runAsUser": -1}));
        let empty_run = Pb::default().bytes(4, b"");
        assert_eq!(decode(empty_run, &pod::POD_SECURITY_CONTEXT).unwrap(), json!({}));
    }

    #[test]
    fn pointer_messages_keep_empty_and_non_pointer_ones_drop_it() {
        // emptyDir is a pointer: `emptyDir: {}` is the whole point of the volume. resources is
        // a non-pointer struct gogo always writes.
        let volume = Pb::default().str(1, "scratch").msg(2, Pb::default().msg(2, Pb::default().str(1, "")));
        assert_eq!(decode(volume, &volume::VOLUME).unwrap(), json!({"name": "scratch", "emptyDir": {}}));
        let c = Pb::default().str(1, "c").msg(8, Pb::default());
        assert_eq!(decode(c, &container::CONTAINER).unwrap(), json!({"name": "c"}));
    }

    #[test]
    fn inline_members_merge_into_the_parent() {
        let handler = Pb::default().msg(2, Pb::default().str(1, "/healthz").msg(2, int_or_string(8080)).str(4, "HTTP"));
        let probe = Pb::default().msg(1, handler).int(2, 5).int(3, 0);
        let got = decode(probe, &container::PROBE).unwrap();
        assert_eq!(
            got,
            json!({"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "initialDelaySeconds": 5})
        );

        let key_ref = Pb::default().msg(1, Pb::default().str(1, "creds")).str(2, "password");
        assert_eq!(
            decode(key_ref, &container::SECRET_KEY_SELECTOR).unwrap(),
            json!({"name": "creds", "key": "password"})
        );
    }

    #[test]
    fn times_and_managed_fields() {
        let created = Pb::default().int(1, 1_767_323_045).int(2, 123);
        let deleted_at_epoch = Pb::default().int(1, 0);
        let fields_v1 = Pb::default().str(1, r#"{"f:data":{}}"#);
        let entry = Pb::default().str(1, "kubectl").str(2, "Update").msg(7, fields_v1);
        let m = meta("t").msg(8, created).msg(9, deleted_at_epoch).msg(17, entry);
        let want = json!({
            "name": "t",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "deletionTimestamp": "1970-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:data": {}}}],
        });
        assert_eq!(decode(m, &meta_schema::OBJECT_META).unwrap(), want);

        let far_future = meta("t").msg(8, Pb::default().int(1, 253_402_300_800));
        let err = decode(far_future, &meta_schema::OBJECT_META).unwrap_err();
        assert!(matches!(&err, ProtobufError::Malformed { path, .. } if path == "creationTimestamp"), "{err:?}");
    }

    #[test]
    fn last_singular_occurrence_wins() {
        let m = Pb::default().str(1, "first").str(1, "second").str(3, "ns").str(3, "");
        assert_eq!(decode(m, &meta_schema::OBJECT_META).unwrap(), json!({"name": "second"}));
    }

    #[test]
    fn random_bytes_never_panic() {
        // xorshift64: deterministic, so a failure reproduces.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            // Bias towards small field numbers and wire type 2 so the walk goes deep.
            let buf: Vec<u8> = (0..len).map(|_| if next() % 3 == 0 { 0x0a } else { next() as u8 }).collect();
            let _ = message(&buf, &pod::POD_SPEC, &Path::Root);
            let _ = message(&buf, &container::CONTAINER, &Path::Root);
        }
    }
}
