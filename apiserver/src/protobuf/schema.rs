//! The shape of a schema table: which wire field becomes which JSON member, and how.
//!
//! Every Kubernetes message this decoder understands is a `static Message` listing its fields
//! by protobuf field number (the tables live in `meta.rs`, `core.rs`, `pod.rs`,
//! `container.rs`, `volume.rs` and `workloads.rs`). The numbers and camelCase names are the
//! ones in upstream `generated.proto` (k8s.io/api and k8s.io/apimachinery at v0.32.4), and the
//! [`Card`] of each field follows the Go type in upstream `types.go`: a Go pointer becomes
//! [`Card::Pointer`], an embedded struct tagged `json:",inline"` becomes [`Kind::Inline`].
//!
//! Invariant: the tables form an acyclic graph, so decoding depth is bounded by the schema
//! and never by the input.

/// A message type: its upstream Go name (for error messages) and its known fields.
#[derive(Debug)]
pub(super) struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

impl Message {
    /// The field with protobuf number `number`, if this decoder knows it.
    pub(super) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

/// One field of a message.
#[derive(Debug)]
pub(super) struct Field {
    pub number: u32,
    /// The JSON member name (empty for [`Kind::Inline`], whose members land in the parent).
    pub name: &'static str,
    pub kind: Kind,
    pub card: Card,
}

/// How a single wire value is turned into JSON.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// `string`, checked to be UTF-8.
    Str,
    /// `bytes`, rendered as standard base64 with padding (what Go's `encoding/json` does).
    Bytes,
    /// `int32`/`int64` varint (two's complement, so negative int32 values decode too).
    Int,
    Bool,
    /// `metav1.Time` `{seconds, nanos}` as RFC 3339 at second precision, like upstream JSON.
    Time,
    /// `intstr.IntOrString` `{type, intVal, strVal}` as a JSON number or string.
    IntOrString,
    /// `resource.Quantity` `{string}` as its string.
    Quantity,
    /// `metav1.FieldsV1` `{Raw}`: raw bytes that are themselves JSON.
    RawJson,
    Msg(&'static Message),
    /// An embedded Go struct tagged `json:",inline"`: its members merge into the parent
    /// object (`Volume` embeds `VolumeSource`, `Probe` embeds `ProbeHandler`...).
    Inline(&'static Message),
    /// Read and discarded (object `status`: the server owns it and resets it on create).
    Skip,
}

/// How often a field may occur and how its zero value is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Card {
    /// A Go non-pointer field. gogo always writes these, so a zero value (`""`, 0, false,
    /// empty message, zero time) means "unset" and is left out of the JSON.
    One,
    /// A Go pointer field. gogo writes it only when non-nil, so a zero value on the wire was
    /// set on purpose (`replicas: 0`) and is kept.
    Pointer,
    /// `repeated`: a JSON array; every element is kept, empty ones included.
    Repeated,
    /// `map<string, V>`: entries `{1: key, 2: value}` become a JSON object.
    Map,
}

/// Builds a message table.
pub(super) const fn msg(name: &'static str, fields: &'static [Field]) -> Message {
    Message { name, fields }
}

/// A non-pointer field (zero means unset).
pub(super) const fn one(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, card: Card::One }
}

/// A pointer field (zero is a real value).
pub(super) const fn ptr(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, card: Card::Pointer }
}

/// A repeated field.
pub(super) const fn rep(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, card: Card::Repeated }
}

/// A `map<string, kind>` field.
pub(super) const fn map(number: u32, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, card: Card::Map }
}

/// An inline embedded message.
pub(super) const fn inline(number: u32, message: &'static Message) -> Field {
    Field { number, name: "", kind: Kind::Inline(message), card: Card::One }
}

/// A field that is read and dropped.
pub(super) const fn skip(number: u32, name: &'static str) -> Field {
    Field { number, name, kind: Kind::Skip, card: Card::One }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::KINDS;
    use super::*;

    /// Checks one message and recurses; `stack` detects cycles, `seen` avoids rework.
    fn check(m: &'static Message, stack: &mut Vec<&'static str>, seen: &mut HashSet<&'static str>) {
        assert!(!stack.contains(&m.name), "schema cycle through {stack:?} -> {}", m.name);
        if !seen.insert(m.name) {
            return;
        }
        stack.push(m.name);
        let mut numbers = HashSet::new();
        let mut names = HashSet::new();
        for f in m.fields {
            assert!(f.number >= 1 && numbers.insert(f.number), "{}: duplicate field {}", m.name, f.number);
            match f.kind {
                Kind::Inline(inner) => {
                    assert!(f.name.is_empty() && f.card == Card::One, "{}: bad inline {}", m.name, f.number);
                    // The inlined members share the parent's JSON object.
                    names.extend(inner.fields.iter().map(|g| g.name).filter(|n| !n.is_empty()));
                    check(inner, stack, seen);
                }
                kind => {
                    let first = f.name.chars().next();
                    assert!(first.is_some_and(|c| c.is_ascii_lowercase()), "{}: bad name {:?}", m.name, f.name);
                    assert!(names.insert(f.name), "{}: duplicate name {}", m.name, f.name);
                    if matches!(kind, Kind::Skip) {
                        assert_eq!(f.name, "status", "{}: only status is skipped", m.name);
                    }
                    if f.card == Card::Map {
                        assert!(matches!(kind, Kind::Str | Kind::Bytes | Kind::Quantity), "{}.{}", m.name, f.name);
                    }
                    if let Kind::Msg(inner) = kind {
                        check(inner, stack, seen);
                    }
                }
            }
        }
        stack.pop();
    }

    #[test]
    fn tables_are_consistent_and_acyclic() {
        let mut seen = HashSet::new();
        for (_, kind, m) in KINDS {
            assert_eq!(m.name, *kind);
            assert!(m.field(1).is_some_and(|f| f.name == "metadata"), "{kind} has no metadata");
            check(m, &mut Vec::new(), &mut seen);
        }
        // Every table in the files is reachable from a registered kind.
        assert_eq!(seen.len(), 130);
    }
}
