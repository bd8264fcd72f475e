//! Strict field validation (`?fieldValidation=Strict`, which kubectl sends by default):
//! unknown and duplicate fields, plus the type errors every decode reports.
//!
//! Unknown fields are found by deserializing the object into its k8s-openapi type through
//! [`Tracked`], a `serde::Deserializer` over a `serde_json::Value` that knows the path of
//! every value and, when a struct asks for its fields, records the keys the struct does not
//! have. So exactly the names the schema lacks are reported (also when their value is
//! `null`), an unknown subtree is skipped as upstream skips it, and a type error carries the
//! path where it happened. Duplicate keys cannot survive parsing into a `Value`, so they are
//! found by a separate scan of the raw bytes.
//!
//! Messages match upstream (`unknown field "spec.replicass"`, `duplicate field
//! "metadata.name"`); the registry joins them behind `strict decoding error: ` for a 400
//! BadRequest (Strict) or returns them as warnings (Warn). A decode `Err` is a 400 in every
//! mode, as upstream cannot decode such a body at all.

use std::cell::RefCell;
use std::fmt;

use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, policy, rbac, storage};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

use super::go_quote;

/// Reports every field of `obj` that the k8s-openapi type of `plural` does not have, as
/// `unknown field "<path>"` messages. `plural` may name a subresource (`deployments/scale`,
/// `pods/eviction`, `pods/binding`, `<plural>/status`). Plurals without a typed schema
/// report nothing. `Err` is a decode error (a value of the wrong JSON type, bad base64...).
pub fn unknown_fields(plural: &str, obj: &Value) -> Result<Vec<String>, String> {
    Ok(unknown_paths(plural, obj)?.iter().map(|p| format!("unknown field {}", go_quote(p))).collect())
}

/// Reports every key that appears twice in one JSON object of `body`, as
/// `duplicate field "<path>"` messages, in document order. Malformed JSON is left to the
/// parser: the scan stops where the body stops making sense.
pub fn duplicate_fields(body: &[u8]) -> Vec<String> {
    scan_keys(body)
        .into_iter()
        .filter(|k| k.duplicate)
        .map(|k| format!("duplicate field {}", go_quote(&k.path)))
        .collect()
}

/// Unknown and duplicate fields of a raw JSON body together, in document order, the way
/// upstream lists them: a key that is both unknown and duplicated is reported once, as
/// unknown, and nothing inside an unknown field is reported.
pub fn strict_errors(plural: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let obj: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let unknown = unknown_paths(plural, &obj)?;
    let under_unknown =
        |p: &str| unknown.iter().any(|u| p.strip_prefix(u.as_str()).is_some_and(|rest| rest.starts_with(['.', '['])));
    let mut reported: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let keys = scan_keys(body);
    for key in &keys {
        if unknown.contains(&key.path) {
            if !reported.contains(&key.path.as_str()) {
                reported.push(&key.path);
                out.push(format!("unknown field {}", go_quote(&key.path)));
            }
        } else if key.duplicate && !under_unknown(&key.path) {
            out.push(format!("duplicate field {}", go_quote(&key.path)));
        }
    }
    for u in unknown.iter().filter(|u| !reported.contains(&u.as_str())) {
        out.push(format!("unknown field {}", go_quote(u)));
    }
    Ok(out)
}

/// Deserializes `obj` as `T` through [`Tracked`], returning the unknown paths.
/// Removes every field the k8s-openapi type of `plural` lacks, as upstream's decoder drops
/// them when validation is not Strict (so an unknown field is never stored). `Err` is a
/// decode error, as for [`unknown_fields`].
pub fn drop_unknown_fields(plural: &str, obj: &mut Value) -> Result<(), String> {
    for path in unknown_paths(plural, obj)? {
        remove_path(obj, &path);
    }
    Ok(())
}

/// Remove the value at a path like `spec.containers[0].foo` (a path `unknown_paths` built).
fn remove_path(obj: &mut Value, path: &str) {
    let mut segs: Vec<&str> = path.split('.').collect();
    let Some(last) = segs.pop() else { return };
    let mut cur = obj;
    for seg in segs {
        let (name, indexes) = seg.split_once('[').unwrap_or((seg, ""));
        let Some(next) = cur.get_mut(name) else { return };
        cur = next;
        for idx in indexes.split('[').filter(|i| !i.is_empty()) {
            let Some(next) = idx.trim_end_matches(']').parse::<usize>().ok().and_then(|i| cur.get_mut(i)) else {
                return;
            };
            cur = next;
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

fn check<T: DeserializeOwned>(obj: &Value) -> Result<Vec<String>, String> {
    let unknown = RefCell::new(Vec::new());
    T::deserialize(Tracked { value: obj, path: String::new(), parent: "", unknown: &unknown })
        .map_err(|e| e.to_string())?;
    Ok(unknown.into_inner())
}

fn unknown_paths(plural: &str, obj: &Value) -> Result<Vec<String>, String> {
    // apiVersion and kind are checked by the registry; the typed structs reject a mismatch
    // with a less helpful message, so they are left out of this pass.
    let mut body = obj.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    let (base, sub) = plural.split_once('/').unwrap_or((plural, ""));
    match (base, sub) {
        (_, "scale") => check::<autoscaling::v1::Scale>(&body),
        ("pods", "binding") => check::<core::v1::Binding>(&body),
        ("pods", "eviction") => check::<policy::v1::Eviction>(&body),
        ("namespaces", _) => check::<core::v1::Namespace>(&body),
        ("nodes", _) => check::<core::v1::Node>(&body),
        ("pods", _) => check::<core::v1::Pod>(&body),
        ("services", _) => check::<core::v1::Service>(&body),
        ("endpoints", _) => check::<core::v1::Endpoints>(&body),
        ("configmaps", _) => check::<core::v1::ConfigMap>(&body),
        ("secrets", _) => check::<core::v1::Secret>(&body),
        ("serviceaccounts", _) => check::<core::v1::ServiceAccount>(&body),
        ("events", _) => check::<core::v1::Event>(&body),
        ("persistentvolumes", _) => check::<core::v1::PersistentVolume>(&body),
        ("persistentvolumeclaims", _) => check::<core::v1::PersistentVolumeClaim>(&body),
        ("deployments", _) => check::<apps::v1::Deployment>(&body),
        ("replicasets", _) => check::<apps::v1::ReplicaSet>(&body),
        ("statefulsets", _) => check::<apps::v1::StatefulSet>(&body),
        ("daemonsets", _) => check::<apps::v1::DaemonSet>(&body),
        ("controllerrevisions", _) => check::<apps::v1::ControllerRevision>(&body),
        ("jobs", _) => check::<batch::v1::Job>(&body),
        ("leases", _) => check::<coordination::v1::Lease>(&body),
        ("storageclasses", _) => check::<storage::v1::StorageClass>(&body),
        ("poddisruptionbudgets", _) => check::<policy::v1::PodDisruptionBudget>(&body),
        ("roles", _) => check::<rbac::v1::Role>(&body),
        ("clusterroles", _) => check::<rbac::v1::ClusterRole>(&body),
        ("rolebindings", _) => check::<rbac::v1::RoleBinding>(&body),
        ("clusterrolebindings", _) => check::<rbac::v1::ClusterRoleBinding>(&body),
        _ => Ok(Vec::new()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What went wrong while decoding, and where.
#[derive(Debug)]
struct DecodeError {
    /// The path and the Go-ish name of the struct holding the field, once known.
    at: Option<(String, &'static str)>,
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    Type { found: &'static str, expected: String },
    Other(String),
}

impl DecodeError {
    /// Pins the error to the innermost path it came from.
    fn at(mut self, path: &str, parent: &'static str) -> Self {
        if self.at.is_none() {
            self.at = Some((path.to_string(), parent));
        }
        self
    }
}

/// Go's name for what serde expected (`i32` is `int32`, a struct `DeploymentSpec` is
/// `v1.DeploymentSpec`).
fn go_type(expected: &str) -> String {
    match expected {
        "i32" => "int32".into(),
        "i64" => "int64".into(),
        "f64" => "float64".into(),
        "a string" | "string" => "string".into(),
        "a boolean" => "bool".into(),
        "a sequence" => "array".into(),
        "a map" => "map".into(),
        other if other.chars().next().is_some_and(char::is_uppercase) && !other.contains(' ') => format!("v1.{other}"),
        other => other.into(),
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, parent) = self.at.as_ref().map_or(("", ""), |(p, s)| (p.as_str(), *s));
        match &self.kind {
            ErrorKind::Type { found, expected } if path.is_empty() => {
                write!(f, "json: cannot unmarshal {found} into Go value of type {}", go_type(expected))
            }
            ErrorKind::Type { found, expected } => {
                let owner = if parent.is_empty() { String::new() } else { format!("{parent}.") };
                write!(
                    f,
                    "json: cannot unmarshal {found} into Go struct field {owner}{path} of type {}",
                    go_type(expected)
                )
            }
            ErrorKind::Other(msg) if path.is_empty() => write!(f, "{msg}"),
            ErrorKind::Other(msg) => write!(f, "error decoding {}: {msg}", go_quote(path)),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError { at: None, kind: ErrorKind::Other(msg.to_string()) }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let found = match unexp {
            de::Unexpected::Bool(_) => "bool",
            de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => "number",
            de::Unexpected::Str(_) | de::Unexpected::Char(_) => "string",
            de::Unexpected::Seq => "array",
            de::Unexpected::Map => "object",
            de::Unexpected::Unit => "null",
            _ => "value",
        };
        DecodeError { at: None, kind: ErrorKind::Type { found, expected: exp.to_string() } }
    }
}

/// A `Deserializer` over a JSON value that knows its path and records unknown struct keys.
struct Tracked<'a> {
    value: &'a Value,
    path: String,
    /// The struct this value is a field of, for Go-style type error messages.
    parent: &'static str,
    unknown: &'a RefCell<Vec<String>>,
}

impl<'a> Tracked<'a> {
    fn child(&self, value: &'a Value, path: String, parent: &'static str) -> Tracked<'a> {
        Tracked { value, path, parent, unknown: self.unknown }
    }

    fn visit<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        struct_name: Option<&'static str>,
    ) -> Result<V::Value, DecodeError> {
        let (path, parent) = (self.path.clone(), self.parent);
        let result = match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(i)) => visitor.visit_i64(i),
                _ => visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(Seq { items: items.iter().enumerate(), owner: &self }),
            Value::Object(m) => {
                let owner = struct_name.unwrap_or(self.parent);
                visitor.visit_map(Fields { entries: m.iter(), pending: None, owner: &self, struct_name: owner })
            }
        };
        result.map_err(|e| e.at(&path, parent))
    }
}

impl<'de> de::Deserializer<'de> for Tracked<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.visit(visitor, None)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        if let Value::Object(m) = self.value {
            let mut unknown = self.unknown.borrow_mut();
            unknown.extend(m.keys().filter(|k| !fields.contains(&k.as_str())).map(|k| join(&self.path, k)));
        }
        self.visit(visitor, Some(name))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// An unknown field's value: upstream does not look inside it, and neither do we.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map identifier enum
    }
}

struct Seq<'a, 'b> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Value>>,
    owner: &'b Tracked<'a>,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, '_> {
    type Error = DecodeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, v)) => {
                let path = format!("{}[{i}]", self.owner.path);
                seed.deserialize(self.owner.child(v, path, self.owner.parent)).map(Some)
            }
        }
    }
}

struct Fields<'a, 'b> {
    entries: serde_json::map::Iter<'a>,
    pending: Option<(&'a String, &'a Value)>,
    owner: &'b Tracked<'a>,
    struct_name: &'static str,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_> {
    type Error = DecodeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DecodeError> {
        match self.entries.next() {
            None => Ok(None),
            Some((k, v)) => {
                self.pending = Some((k, v));
                seed.deserialize(k.as_str().into_deserializer()).map(Some)
            }
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DecodeError> {
        let Some((k, v)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before key"));
        };
        seed.deserialize(self.owner.child(v, join(&self.owner.path, k), self.struct_name))
    }
}

/// One object key met while scanning raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyEvent {
    path: String,
    /// The key was already present in the same object.
    duplicate: bool,
}

/// Nesting deeper than this is not scanned: serde_json refuses to parse past 128 levels
/// anyway, so a deeper body never reaches validation.
const MAX_SCAN_DEPTH: usize = 128;

/// Every object key of `body` with its path, in document order.
fn scan_keys(body: &[u8]) -> Vec<KeyEvent> {
    let mut scanner = Scanner { b: body, i: 0, out: Vec::new() };
    let _ = scanner.value("", 0);
    scanner.out
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    out: Vec<KeyEvent>,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    /// Consumes one JSON value; `None` means the body is malformed here.
    fn value(&mut self, path: &str, depth: usize) -> Option<()> {
        if depth > MAX_SCAN_DEPTH {
            return None;
        }
        self.skip_ws();
        match *self.b.get(self.i)? {
            b'{' => self.object(path, depth),
            b'[' => self.array(path, depth),
            b'"' => self.string().map(drop),
            _ => {
                while self.b.get(self.i).is_some_and(|c| !matches!(c, b',' | b']' | b'}') && !c.is_ascii_whitespace()) {
                    self.i += 1;
                }
                Some(())
            }
        }
    }

    /// Consumes a string and returns its decoded text.
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        self.i += 1;
        loop {
            match *self.b.get(self.i)? {
                b'\\' => self.i += 2,
                b'"' => break,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        let raw = self.b.get(start..self.i)?;
        Some(serde_json::from_slice::<String>(raw).unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()))
    }

    fn object(&mut self, path: &str, depth: usize) -> Option<()> {
        self.i += 1;
        let mut seen = std::collections::BTreeSet::new();
        loop {
            self.skip_ws();
            match *self.b.get(self.i)? {
                b'}' => break,
                b'"' => {}
                _ => return None,
            }
            let key = self.string()?;
            let child = join(path, &key);
            self.out.push(KeyEvent { path: child.clone(), duplicate: !seen.insert(key) });
            self.skip_ws();
            if *self.b.get(self.i)? != b':' {
                return None;
            }
            self.i += 1;
            self.value(&child, depth + 1)?;
            if self.closes(b'}')? {
                break;
            }
        }
        self.i += 1;
        Some(())
    }

    fn array(&mut self, path: &str, depth: usize) -> Option<()> {
        self.i += 1;
        let mut index = 0;
        loop {
            self.skip_ws();
            if *self.b.get(self.i)? == b']' {
                break;
            }
            self.value(&format!("{path}[{index}]"), depth + 1)?;
            index += 1;
            if self.closes(b']')? {
                break;
            }
        }
        self.i += 1;
        Some(())
    }

    /// After a member or element: `true` at the container's `close` byte (left for the caller
    /// to consume), `false` after consuming a `,`; `None` on anything else.
    fn closes(&mut self, close: u8) -> Option<bool> {
        self.skip_ws();
        match *self.b.get(self.i)? {
            b',' => {
                self.i += 1;
                Some(false)
            }
            c => (c == close).then_some(true),
        }
    }
}

#[cfg(test)]
mod tests;
