//! Field selectors: upstream's `fields.Selector` plus the per-resource table of selectable
//! fields (upstream's field label conversion functions and `ToSelectableFields`).
//!
//! A selector is an AND of `field=value` / `field!=value` terms. Values may carry `\,` `\=`
//! `\\` escapes (upstream's `fields.EscapeValue`); field names are taken literally. Which
//! fields a resource can be selected by is a fixed table: [`FieldSelector::check_supported`]
//! rejects the rest before any object is read. Values are read from the unstructured object
//! with upstream's zero values for absent fields (`""`, `false`, `0`), because typed Go
//! objects always have those fields and kubectl relies on `spec.nodeName=` matching
//! unscheduled pods.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::SelectorError;

/// How one selectable field is read from an object.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// A string at a path; absent reads as `""`.
    Str(&'static [&'static str]),
    /// A boolean at a path, printed `true`/`false`; absent reads as `false`.
    Bool(&'static [&'static str]),
    /// An integer at a path, printed in decimal; absent reads as `0`.
    Int(&'static [&'static str]),
    /// A pod's primary IP: `status.podIPs[0].ip`, else `status.podIP`.
    PodIp,
    /// An event's source: `source.component`, else `reportingComponent` (as upstream).
    EventComponent,
}

/// Fields every resource can be selected by.
const COMMON: &[(&str, Source)] = &[
    ("metadata.name", Source::Str(&["metadata", "name"])),
    ("metadata.namespace", Source::Str(&["metadata", "namespace"])),
];

/// Resource-specific selectable fields, by plural.
const BY_RESOURCE: &[(&str, &[(&str, Source)])] = &[
    (
        "pods",
        &[
            ("spec.nodeName", Source::Str(&["spec", "nodeName"])),
            ("spec.restartPolicy", Source::Str(&["spec", "restartPolicy"])),
            ("spec.schedulerName", Source::Str(&["spec", "schedulerName"])),
            ("spec.serviceAccountName", Source::Str(&["spec", "serviceAccountName"])),
            ("spec.hostNetwork", Source::Bool(&["spec", "hostNetwork"])),
            ("status.phase", Source::Str(&["status", "phase"])),
            ("status.podIP", Source::PodIp),
            ("status.nominatedNodeName", Source::Str(&["status", "nominatedNodeName"])),
        ],
    ),
    (
        "events",
        &[
            ("involvedObject.kind", Source::Str(&["involvedObject", "kind"])),
            ("involvedObject.namespace", Source::Str(&["involvedObject", "namespace"])),
            ("involvedObject.name", Source::Str(&["involvedObject", "name"])),
            ("involvedObject.uid", Source::Str(&["involvedObject", "uid"])),
            ("involvedObject.apiVersion", Source::Str(&["involvedObject", "apiVersion"])),
            ("involvedObject.resourceVersion", Source::Str(&["involvedObject", "resourceVersion"])),
            ("involvedObject.fieldPath", Source::Str(&["involvedObject", "fieldPath"])),
            ("reason", Source::Str(&["reason"])),
            ("reportingComponent", Source::Str(&["reportingComponent"])),
            ("source", Source::EventComponent),
            ("type", Source::Str(&["type"])),
        ],
    ),
    ("secrets", &[("type", Source::Str(&["type"]))]),
    ("nodes", &[("spec.unschedulable", Source::Bool(&["spec", "unschedulable"]))]),
    ("namespaces", &[("status.phase", Source::Str(&["status", "phase"]))]),
    ("replicasets", &[("status.replicas", Source::Int(&["status", "replicas"]))]),
    // Upstream names the field `successful` although the object's field is `succeeded`.
    ("jobs", &[("status.successful", Source::Int(&["status", "succeeded"]))]),
];

fn source(plural: &str, field: &str) -> Option<Source> {
    let specific = BY_RESOURCE.iter().filter(|(p, _)| *p == plural).flat_map(|(_, fields)| fields.iter());
    COMMON.iter().chain(specific).find(|(f, _)| *f == field).map(|(_, s)| *s)
}

fn at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| v.get(seg))
}

fn str_at(obj: &Value, path: &[&str]) -> String {
    at(obj, path).and_then(Value::as_str).unwrap_or_default().to_string()
}

impl Source {
    fn read(self, obj: &Value) -> String {
        match self {
            Source::Str(path) => str_at(obj, path),
            Source::Bool(path) => at(obj, path).and_then(Value::as_bool).unwrap_or(false).to_string(),
            Source::Int(path) => at(obj, path).and_then(Value::as_i64).unwrap_or(0).to_string(),
            Source::PodIp => {
                let first = obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str);
                first.map(str::to_string).unwrap_or_else(|| str_at(obj, &["status", "podIP"]))
            }
            Source::EventComponent => {
                let component = str_at(obj, &["source", "component"]);
                if component.is_empty() {
                    str_at(obj, &["reportingComponent"])
                } else {
                    component
                }
            }
        }
    }
}

/// One term: `field=value` (`equals`) or `field!=value`. The value is unescaped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Term {
    field: String,
    equals: bool,
    value: String,
}

/// A parsed field selector: the AND of its terms. The empty selector selects everything.
///
/// Terms are kept sorted, so equal selectors compare and print identically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

impl FieldSelector {
    /// Parses a `fieldSelector` query parameter: comma-separated `f=v`, `f==v`, `f!=v`. The
    /// empty string (and empty terms) select everything. Field names are not checked here;
    /// see [`FieldSelector::check_supported`].
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        // Upstream sorts the raw terms first; doing the same reports the same bad term.
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, equals, raw)) = split_term(part) else {
                return Err(SelectorError::Field(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            let value = unescape_value(raw).map_err(SelectorError::Field)?;
            terms.push(Term { field: field.to_string(), equals, value });
        }
        terms.sort();
        Ok(FieldSelector { terms })
    }

    /// Rejects a field the resource cannot be selected by, with upstream's message.
    pub fn check_supported(&self, plural: &str) -> Result<(), SelectorError> {
        match self.terms.iter().find(|t| source(plural, &t.field).is_none()) {
            Some(t) => Err(SelectorError::UnsupportedField(t.field.clone())),
            None => Ok(()),
        }
    }

    /// Whether an object of resource `plural` satisfies every term. A field the resource
    /// does not support reads as `""` (callers reject those first with `check_supported`).
    pub fn matches(&self, plural: &str, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let have = source(plural, &t.field).map(|s| s.read(obj)).unwrap_or_default();
            (have == t.value) == t.equals
        })
    }

    /// The value a selector compares `field` with for an object of resource `plural`, or
    /// `None` if the resource cannot be selected by that field.
    pub fn field_value(plural: &str, obj: &Value, field: &str) -> Option<String> {
        source(plural, field).map(|s| s.read(obj))
    }

    /// Whether the selector restricts nothing.
    pub fn is_everything(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value the selector requires `field` to equal, if it has an `=` term on it: lets
    /// `metadata.name=x` become a single-key read.
    pub fn single_value(&self, field: &str) -> Option<&str> {
        self.terms.iter().find(|t| t.equals && t.field == field).map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Terms joined by `,`, values escaped; parses back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            let sep = if i > 0 { "," } else { "" };
            let op = if t.equals { "=" } else { "!=" };
            write!(f, "{sep}{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Upstream's `fields.EscapeValue`: `\` `,` `=` get a backslash so a value parses back intact.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas that are not escaped; the escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==`, `=`, tried in that order at each
/// position). Returns the field, whether it is an equality, and the raw value.
fn split_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, equals) in [("!=", false), ("==", true), ("=", true)] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], equals, value));
            }
        }
    }
    None
}

/// Upstream's `fields.UnescapeValue`: only `\\`, `\,` and `\=` are escapes, and a bare `,`
/// or `=` is an error.
fn unescape_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid field selector: invalid escape sequence: \\{e}")),
                None => return Err("invalid field selector: invalid escape sequence: \\".to_string()),
            },
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: '{c}'")),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn sel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).expect("test selector parses")
    }

    fn field_error(s: &str) -> String {
        match FieldSelector::parse(s) {
            Err(SelectorError::Field(msg)) => msg,
            other => panic!("{s:?} should fail as a field selector, got {other:?}"),
        }
    }

    #[test]
    fn operators_and_terms_parse() {
        let s = sel("metadata.name==web,metadata.namespace!=kube-system");
        assert_eq!(s.to_string(), "metadata.name=web,metadata.namespace!=kube-system");
        assert_eq!(sel("metadata.name=web"), sel("metadata.name==web"));
        assert!(sel("").is_everything());
        assert!(sel(",,").is_everything());
        assert!(!s.is_everything());
        assert_eq!(
            sel("a="),
            FieldSelector { terms: vec![Term { field: "a".into(), equals: true, value: "".into() }] }
        );
    }

    #[test]
    fn escaped_values_unescape_and_print_escaped() {
        let s = sel(r"metadata.name=a\,b\=c\\d,type!=x");
        assert_eq!(s.single_value("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d,type!=x");
        assert_eq!(FieldSelector::parse(&s.to_string()), Ok(s));
        assert_eq!(sel("f!=!x").to_string(), "f!=!x");
    }

    #[test]
    fn bad_terms_and_escapes_are_rejected() {
        assert_eq!(field_error("b=1,nonsense"), "invalid selector: 'b=1,nonsense'; can't understand 'nonsense'");
        assert_eq!(field_error(r"a=x\y"), r"invalid field selector: invalid escape sequence: \y");
        assert_eq!(field_error(r"a=x\"), r"invalid field selector: invalid escape sequence: \");
        assert_eq!(field_error("a=b=c"), "invalid field selector: unescaped character in value: '='");
    }

    #[test]
    fn unsupported_fields_are_named_in_upstream_words() {
        let s = sel("metadata.name=x,spec.nodeName=n");
        assert_eq!(s.check_supported("pods"), Ok(()));
        let err = s.check_supported("deployments").expect_err("deployments lack spec.nodeName");
        assert_eq!(err, SelectorError::UnsupportedField("spec.nodeName".into()));
        assert_eq!(err.to_string(), "field label not supported: spec.nodeName");
        assert_eq!(
            sel("metadata.name = x").check_supported("pods").map_err(|e| e.to_string()),
            Err("field label not supported: metadata.name ".to_string())
        );
        assert_eq!(sel("type=Opaque").check_supported("secrets"), Ok(()));
        assert!(sel("type=Opaque").check_supported("configmaps").is_err());
        assert_eq!(sel("metadata.namespace=x").check_supported("customthings"), Ok(()));
    }

    #[test]
    fn pod_fields_read_zero_values_when_absent() {
        let unbound = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {}, "status": {}});
        let bound = json!({
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"nodeName": "n1", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.1"}]}
        });
        assert!(sel("spec.nodeName=").matches("pods", &unbound));
        assert!(!sel("spec.nodeName=").matches("pods", &bound));
        assert!(sel("spec.nodeName=n1,status.phase!=Failed").matches("pods", &bound));
        assert!(sel("spec.hostNetwork=false").matches("pods", &unbound));
        assert!(sel("spec.hostNetwork=true").matches("pods", &bound));
        assert_eq!(FieldSelector::field_value("pods", &bound, "status.podIP").as_deref(), Some("10.0.0.1"));
        let v4_only = json!({"status": {"podIP": "10.0.0.9"}});
        assert_eq!(FieldSelector::field_value("pods", &v4_only, "status.podIP").as_deref(), Some("10.0.0.9"));
        assert_eq!(FieldSelector::field_value("pods", &bound, "metadata.namespace").as_deref(), Some("default"));
        assert_eq!(FieldSelector::field_value("nodes", &bound, "spec.nodeName"), None);
    }

    #[test]
    fn event_and_other_resource_fields() {
        let ev = json!({
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u1"},
            "reason": "Scheduled", "type": "Normal", "reportingComponent": "default-scheduler"
        });
        let describe = sel("involvedObject.name=p,involvedObject.namespace=default,involvedObject.uid=u1");
        assert_eq!(describe.check_supported("events"), Ok(()));
        assert!(describe.matches("events", &ev));
        assert!(!sel("involvedObject.uid=u2").matches("events", &ev));
        assert!(sel("source=default-scheduler,type=Normal").matches("events", &ev));
        let with_source = json!({"source": {"component": "kubelet"}, "reportingComponent": "x"});
        assert!(sel("source=kubelet").matches("events", &with_source));
        assert!(sel("spec.unschedulable=true").matches("nodes", &json!({"spec": {"unschedulable": true}})));
        assert!(sel("spec.unschedulable=false").matches("nodes", &json!({"spec": {}})));
        assert!(sel("status.replicas=0").matches("replicasets", &json!({"status": {}})));
        assert!(sel("status.replicas=3").matches("replicasets", &json!({"status": {"replicas": 3}})));
        assert!(sel("status.successful=1").matches("jobs", &json!({"status": {"succeeded": 1}})));
        assert!(sel("status.phase=Active").matches("namespaces", &json!({"status": {"phase": "Active"}})));
    }

    #[test]
    fn single_value_finds_only_equality_terms() {
        assert_eq!(sel("metadata.name=web").single_value("metadata.name"), Some("web"));
        assert_eq!(sel("metadata.name!=web").single_value("metadata.name"), None);
        assert_eq!(sel("metadata.namespace=a").single_value("metadata.name"), None);
        assert_eq!(sel("metadata.name=").single_value("metadata.name"), Some(""));
    }

    proptest! {
        #[test]
        fn any_value_survives_escaping(
            value in "[a-z,=\\\\!. ]{0,12}",
            equals in any::<bool>(),
        ) {
            let op = if equals { "=" } else { "!=" };
            let text = format!("metadata.name{op}{}", escape_value(&value));
            let s = FieldSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            let obj = json!({"metadata": {"name": value}});
            prop_assert_eq!(s.matches("pods", &obj), equals);
            prop_assert_eq!(s.single_value("metadata.name"), equals.then_some(value.as_str()));
            prop_assert_eq!(FieldSelector::parse(&s.to_string()), Ok(s));
        }
    }
}
