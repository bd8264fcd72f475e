//! Per-resource validation of objects, the way upstream's `validation` packages do it.
//!
//! Role: the registry calls [`validate_create`] / [`validate_update`] on every create, update
//! and patch, *after* [`crate::defaults::apply_defaults`] (upstream validates defaulted
//! objects, so e.g. a missing `imagePullPolicy` is only an error if defaulting was skipped).
//! A non-empty result becomes a 422 `Invalid` Status whose `details.causes[]` are
//! `{reason, message: FieldError::body(), field}`; its summary message is built from those
//! causes in one place, [`crate::error::ApiError::status`].
//!
//! Invariants: validation never panics on malformed input; a field of the wrong JSON type is
//! treated as absent here, because type errors are reported earlier (and as 400) by
//! [`strict::unknown_fields`]. Messages follow upstream's `field.Error` formatting
//! (`<field>: <Type>[: <value>][: <detail>]`) with Go-syntax values, so kubectl prints what a
//! real cluster would.
//!
//! Data flow: `validate_*` dispatch on the plural to one module per API area (`pod`,
//! `apps`, `service`, `config`, `storage`, `rbac`, `cluster`), each of which calls `meta`
//! for `metadata` and the shared name rules in `names`.

mod apps;
mod cluster;
mod config;
mod container;
mod meta;
pub(crate) mod names;
mod pod;
pub mod quantity;
mod rbac;
mod service;
mod storage;
pub mod strict;

pub(crate) use pod::VOLUME_SOURCES;
pub(crate) use rbac::RBAC_GROUP;
pub use strict::{drop_unknown_fields, duplicate_fields, strict_errors, unknown_fields};

use serde_json::{Map, Value};

/// One validation failure, shaped like upstream's `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path (`spec.template.spec.containers[0].image`); goes to `causes[].field`.
    pub field: String,
    /// The upstream cause type: `FieldValueRequired`, `FieldValueInvalid`,
    /// `FieldValueNotSupported`, `FieldValueForbidden`, `FieldValueDuplicate`,
    /// `FieldValueTooLong` or `FieldValueNotFound` (none of the rules here produce
    /// upstream's `FieldValueTooMany`).
    pub reason: &'static str,
    /// The whole message, `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
}

impl FieldError {
    /// The message without the `<field>: ` prefix: what upstream puts in `causes[].message`.
    pub fn body(&self) -> &str {
        self.message.strip_prefix(&format!("{}: ", self.field)).unwrap_or(&self.message)
    }
}

/// Validates an object about to be created. `plural` is the URL plural (`deployments`);
/// unknown plurals get the generic metadata checks only.
pub fn validate_create(plural: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Errors::default();
    match plural {
        "pods" => pod::validate_pod(obj, &mut errs),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" | "jobs" => {
            apps::validate(plural, obj, &mut errs)
        }
        "services" => service::validate_service(obj, &mut errs),
        "configmaps" | "secrets" => config::validate(plural, obj, &mut errs),
        "persistentvolumes" | "persistentvolumeclaims" | "storageclasses" => storage::validate(plural, obj, &mut errs),
        "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings" => rbac::validate(plural, obj, &mut errs),
        _ => cluster::validate(plural, obj, &mut errs),
    }
    errs.0
}

/// Validates an update: the create rules on `new` plus upstream's immutability rules
/// comparing `new` with the stored `old`.
pub fn validate_update(plural: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Errors::default();
    meta::validate_meta_update(new, old, &mut errs);
    validate_kind_update(plural, new, old, &mut errs);
    errs.0.extend(validate_create(plural, new));
    errs.0
}

/// The update rules of the kind alone (what may change in its spec), by plural.
fn validate_kind_update(plural: &str, new: &Value, old: &Value, errs: &mut Errors) {
    match plural {
        "pods" => pod::validate_pod_update(new, old, errs),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" | "jobs" => {
            apps::validate_update(plural, new, old, errs)
        }
        "services" => service::validate_service_update(new, old, errs),
        "configmaps" | "secrets" => config::validate_update(plural, new, old, errs),
        "persistentvolumes" | "persistentvolumeclaims" | "storageclasses" => {
            storage::validate_update(plural, new, old, errs)
        }
        "controllerrevisions" => cluster::validate_controller_revision_update(new, old, errs),
        "rolebindings" | "clusterrolebindings" => rbac::validate_update(plural, new, old, errs),
        _ => {}
    }
}

/// A field path, printed like upstream's `field.Path` (`spec.ports[0].name`, `data[key]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root(name: &str) -> Path {
        Path(name.to_string())
    }

    pub(crate) fn child(&self, name: &str) -> Path {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    pub(crate) fn key(&self, k: &str) -> Path {
        Path(format!("{}[{k}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bad value as upstream prints it: Go `%q` for strings, `%v` for numbers and booleans,
/// Go syntax (pre-rendered) for anything structured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bad {
    Str(String),
    Int(i64),
    Raw(String),
}

impl Bad {
    pub(crate) fn str(s: &str) -> Bad {
        Bad::Str(s.to_string())
    }

    /// A JSON value: strings quoted, numbers and booleans bare, `null`, else compact JSON.
    pub(crate) fn json(v: Option<&Value>) -> Bad {
        match v {
            Some(Value::String(s)) => Bad::Str(s.clone()),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Bad::Int(i),
                None => Bad::Raw(n.to_string()),
            },
            Some(Value::Bool(b)) => Bad::Raw(b.to_string()),
            None | Some(Value::Null) => Bad::Raw("null".to_string()),
            Some(other) => Bad::Raw(other.to_string()),
        }
    }

    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(i) => i.to_string(),
            Bad::Raw(r) => r.clone(),
        }
    }
}

/// Go's `%q` for the strings we meet: escapes quotes, backslashes and control characters.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The error list a validation pass appends to.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: &Path, reason: &'static str, body: String) {
        let message = format!("{}: {body}", path.as_str());
        self.0.push(FieldError { field: path.as_str().to_string(), reason, message });
    }

    fn with_detail(head: &str, detail: &str) -> String {
        if detail.is_empty() {
            head.to_string()
        } else {
            format!("{head}: {detail}")
        }
    }

    pub(crate) fn required(&mut self, path: &Path, detail: &str) {
        self.push(path, "FieldValueRequired", Self::with_detail("Required value", detail));
    }

    pub(crate) fn invalid(&mut self, path: &Path, bad: Bad, detail: &str) {
        let head = format!("Invalid value: {}", bad.render());
        self.push(path, "FieldValueInvalid", Self::with_detail(&head, detail));
    }

    pub(crate) fn not_supported(&mut self, path: &Path, bad: Bad, supported: &[&str]) {
        let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        let head = format!("Unsupported value: {}", bad.render());
        let detail = if quoted.is_empty() { String::new() } else { format!("supported values: {}", quoted.join(", ")) };
        self.push(path, "FieldValueNotSupported", Self::with_detail(&head, &detail));
    }

    pub(crate) fn forbidden(&mut self, path: &Path, detail: &str) {
        self.push(path, "FieldValueForbidden", Self::with_detail("Forbidden", detail));
    }

    pub(crate) fn duplicate(&mut self, path: &Path, bad: Bad) {
        self.push(path, "FieldValueDuplicate", format!("Duplicate value: {}", bad.render()));
    }

    pub(crate) fn not_found(&mut self, path: &Path, bad: Bad) {
        self.push(path, "FieldValueNotFound", format!("Not found: {}", bad.render()));
    }

    pub(crate) fn too_long(&mut self, path: &Path, max_bytes: usize) {
        self.push(path, "FieldValueTooLong", format!("Too long: may not be more than {max_bytes} bytes"));
    }

    /// `field is immutable`, upstream's `ValidateImmutableField`.
    pub(crate) fn immutable(&mut self, path: &Path, new_value: Bad) {
        self.invalid(path, new_value, "field is immutable");
    }

    /// One `Invalid` per message, as upstream does with the `Is*` string-list validators.
    pub(crate) fn invalid_each(&mut self, path: &Path, value: &str, msgs: Vec<String>) {
        for m in msgs {
            self.invalid(path, Bad::str(value), &m);
        }
    }
}

/// `obj[key]` when obj is an object.
pub(crate) fn field<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.as_object().and_then(|m| m.get(key)).filter(|v| !v.is_null())
}

/// What an absent part of an object reads as: rules treat it like an empty one.
pub(crate) static NULL: Value = Value::Null;

/// `obj[key]`, or [`NULL`] when absent.
pub(crate) fn field_or_null<'a>(obj: &'a Value, key: &str) -> &'a Value {
    field(obj, key).unwrap_or(&NULL)
}

/// `obj[key]` as a string, `""` when absent or not a string (Go's zero value).
pub(crate) fn str_field<'a>(obj: &'a Value, key: &str) -> &'a str {
    field(obj, key).and_then(Value::as_str).unwrap_or("")
}

/// `obj[key]` as an integer, `None` when absent or not an integer.
pub(crate) fn int_field(obj: &Value, key: &str) -> Option<i64> {
    field(obj, key).and_then(Value::as_i64)
}

/// `obj[key]` as an array, empty when absent or not an array.
pub(crate) fn arr_field<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    field(obj, key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// `obj[key]` as an object, `None` when absent or not an object.
pub(crate) fn obj_field<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    field(obj, key).and_then(Value::as_object)
}

/// Upstream's `Semantic.DeepEqual` on JSON: absent, `null` and zero values (`""`, `0`,
/// `false`, `[]`, `{}`) are equal, so a client re-sending defaults is not a change.
pub(crate) fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn is_zero(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Bool(b)) => !b,
            Some(Value::Number(n)) => n.as_f64() == Some(0.0),
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.values().all(|v| is_zero(Some(v))),
        }
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.keys().chain(y.keys()).all(|k| semantic_eq(x.get(k), y.get(k)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(Some(p), Some(q)))
        }
        (Some(x), Some(y)) if !x.is_null() && !y.is_null() => x == y || (is_zero(Some(x)) && is_zero(Some(y))),
        _ => is_zero(a) && is_zero(b),
    }
}

/// The non-negative check upstream applies to counts (`ValidateNonnegativeField`).
pub(crate) fn nonnegative(obj: &Value, key: &str, path: &Path, errs: &mut Errors) {
    if let Some(v) = int_field(obj, key) {
        if v < 0 {
            errs.invalid(&path.child(key), Bad::Int(v), names::IS_NEGATIVE);
        }
    }
}

/// A string field restricted to a set of values: `Required` when empty, else `NotSupported`.
pub(crate) fn one_of(obj: &Value, key: &str, path: &Path, supported: &[&str], errs: &mut Errors) {
    let v = str_field(obj, key);
    if v.is_empty() {
        errs.required(&path.child(key), "");
    } else if !supported.contains(&v) {
        errs.not_supported(&path.child(key), Bad::str(v), supported);
    }
}

/// Like [`one_of`] but an absent value is fine (optional enums).
pub(crate) fn optional_one_of(obj: &Value, key: &str, path: &Path, supported: &[&str], errs: &mut Errors) {
    if !str_field(obj, key).is_empty() {
        one_of(obj, key, path, supported, errs);
    }
}

/// Test helpers shared by the per-area test modules: error messages, in order.
#[cfg(test)]
pub(crate) mod testing {
    use super::{validate_create, validate_kind_update, Errors, Value};

    /// The messages one validation pass reports.
    pub(crate) fn messages(pass: impl FnOnce(&mut Errors)) -> Vec<String> {
        let mut errs = Errors::default();
        pass(&mut errs);
        errs.0.into_iter().map(|e| e.message).collect()
    }

    /// The create rules of the kind `plural`, on `obj`.
    pub(crate) fn create(plural: &str, obj: &Value) -> Vec<String> {
        validate_create(plural, obj).into_iter().map(|e| e.message).collect()
    }

    /// The update rules of the kind `plural` alone: no metadata or create rules on `new`.
    pub(crate) fn update(plural: &str, new: &Value, old: &Value) -> Vec<String> {
        messages(|errs| validate_kind_update(plural, new, old, errs))
    }
}

#[cfg(test)]
mod tests;
