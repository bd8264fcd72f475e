//! Label selectors: upstream's `labels.Selector`, parsed from a `labelSelector` string or built
//! from a `metav1.LabelSelector` object.
//!
//! A selector is an AND of requirements (`key=v`, `key in (a,b)`, `!key`, `key>3`...). Every
//! requirement is validated when built (key and value syntax, operator arity), so matching
//! never fails: it only looks labels up. The string grammar, the error texts and the matching
//! rules (`!=` and `notin` select objects without the label) are upstream's. Keys and values
//! are checked by the same rules as objects' labels (`validation::names`, upstream's
//! `IsQualifiedName` and `IsValidLabelValue`). The string grammar lives in `label_parse.rs`;
//! this file holds the model, its validation and matching.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::label_parse;
use super::SelectorError;
use crate::validation::names::{is_label_value, is_qualified_name};

/// How a requirement relates a label to its values. `==` parses to `Equals`: upstream keeps
/// the spelling apart, but it selects the same objects, so the canonical form drops it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Op {
    Equals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One validated requirement. `values` is sorted and free of duplicates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    /// Validates like upstream's `labels.NewRequirement`, collecting every problem into one
    /// message (upstream's aggregate error: one text, or `[a, b]` for several).
    pub(super) fn new(key: &str, op: Op, values: Vec<String>) -> Result<Self, String> {
        let mut errs: Vec<String> = Vec::new();
        errs.extend(key_error(key));
        let arity = match op {
            Op::In | Op::NotIn if values.is_empty() => Some("for 'in', 'notin' operators, values set can't be empty"),
            Op::Equals | Op::NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Op::GreaterThan | Op::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(detail) = arity {
            errs.push(format!("values: Invalid value: {}: {detail}", go_string_slice(&values)));
        }
        for (i, v) in values.iter().enumerate() {
            if matches!(op, Op::GreaterThan | Op::LessThan) && v.parse::<i64>().is_err() {
                errs.push(format!(
                    "values[{i}]: Invalid value: {v:?}: for 'Gt', 'Lt' operators, the value must be an integer"
                ));
            }
            let value_errs = is_label_value(v);
            if !value_errs.is_empty() {
                errs.push(format!("values[{i}][{key}]: Invalid value: {v:?}: {}", value_errs.join("; ")));
            }
        }
        if !errs.is_empty() {
            return Err(aggregate(errs));
        }
        let values: BTreeSet<String> = values.into_iter().collect();
        Ok(Requirement { key: key.to_string(), op, values: values.into_iter().collect() })
    }

    fn matches<'a>(&self, lookup: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let found = lookup(&self.key);
        let listed = |v: &str| self.values.iter().any(|x| x == v);
        match self.op {
            Op::Equals | Op::In => found.is_some_and(listed),
            // Upstream: an object without the label is "not equal" to any value.
            Op::NotEquals | Op::NotIn => !found.is_some_and(listed),
            Op::Exists => found.is_some(),
            Op::DoesNotExist => found.is_none(),
            Op::GreaterThan | Op::LessThan => {
                let (Some(have), Some(want)) = (
                    found.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.op == Op::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, values) = (&self.key, self.values.join(","));
        match self.op {
            Op::Equals => write!(f, "{key}={values}"),
            Op::NotEquals => write!(f, "{key}!={values}"),
            Op::In => write!(f, "{key} in ({values})"),
            Op::NotIn => write!(f, "{key} notin ({values})"),
            Op::Exists => write!(f, "{key}"),
            Op::DoesNotExist => write!(f, "!{key}"),
            Op::GreaterThan => write!(f, "{key}>{values}"),
            Op::LessThan => write!(f, "{key}<{values}"),
        }
    }
}

/// A parsed, validated label selector: the AND of its requirements.
///
/// The empty selector selects everything. Requirements are kept sorted (by key, then
/// operator and values) without duplicates, so selectors that differ only in the order or
/// repetition of their requirements compare equal and print identically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a `labelSelector` query parameter. The empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let requirements = label_parse::parse(s).map_err(SelectorError::Label)?;
        Ok(Self::from_requirements(requirements))
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        // Sorting by key first, as upstream does, keeps its printed order; sorting on by
        // operator and values too makes the order independent of how the input was written.
        requirements.sort();
        requirements.dedup();
        LabelSelector { requirements }
    }

    /// Whether a label set satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(&|k: &str| labels.get(k).map(String::as_str))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement. A missing or
    /// malformed `labels` map counts as no labels.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches_with(&|k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, lookup: &impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements.iter().all(|r| r.matches(lookup))
    }

    /// Whether the selector restricts nothing (an empty string or an empty object).
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON object (`matchLabels` plus
    /// `matchExpressions` with `In`, `NotIn`, `Exists`, `DoesNotExist`), as controllers read
    /// `spec.selector`. `{}` selects everything.
    ///
    /// A `null` or absent selector is an error here: upstream treats it as selecting nothing,
    /// which this type cannot express, and a caller should then select nothing.
    pub fn from_label_selector(sel: &Value) -> Result<Self, SelectorError> {
        let invalid = |m: String| SelectorError::Label(m);
        let obj = match sel {
            Value::Object(obj) => obj,
            Value::Null => return Err(invalid("a null label selector selects nothing".into())),
            _ => return Err(invalid("a label selector must be an object".into())),
        };
        let mut requirements = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let v = v.as_str().ok_or_else(|| invalid(format!("matchLabels[{k}]: must be a string")))?;
                    requirements.push(Requirement::new(k, Op::Equals, vec![v.to_string()]).map_err(invalid)?);
                }
            }
            Some(_) => return Err(invalid("matchLabels: must be an object".into())),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for expr in exprs {
                    requirements.push(expression(expr).map_err(invalid)?);
                }
            }
            Some(_) => return Err(invalid("matchExpressions: must be an array".into())),
        }
        Ok(Self::from_requirements(requirements))
    }
}

/// One `matchExpressions` entry: `{"key": k, "operator": "In", "values": [..]}`.
fn expression(expr: &Value) -> Result<Requirement, String> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
    let operator = expr.get("operator").and_then(Value::as_str).unwrap_or_default();
    let op = match operator {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" => Op::Exists,
        "DoesNotExist" => Op::DoesNotExist,
        other => return Err(format!("{other:?} is not a valid label selector operator")),
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(vs)) => vs
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("values of {key:?}: must be strings")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("values of {key:?}: must be an array")),
    };
    Requirement::new(key, op, values)
}

impl fmt::Display for LabelSelector {
    /// The canonical string: requirements joined by `,`, values sorted. It parses back to an
    /// equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Upstream's `validateLabelKey`: the error for a key that is not a qualified name.
pub(super) fn key_error(key: &str) -> Option<String> {
    let errs = is_qualified_name(key);
    (!errs.is_empty()).then(|| format!("key: Invalid value: {key:?}: {}", errs.join("; ")))
}

/// Go's `%#v` of a `[]string`, as upstream prints a bad values list.
fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Upstream's aggregate error text: duplicates dropped, one message bare, several in `[..]`.
fn aggregate(mut errs: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    if errs.len() == 1 {
        errs.remove(0)
    } else {
        format!("[{}]", errs.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).expect("test selector parses")
    }

    #[test]
    fn negative_operators_select_objects_without_the_label() {
        let none = labels(&[]);
        assert!(sel("a!=x").matches(&none));
        assert!(sel("a notin (x,y)").matches(&none));
        assert!(sel("!a").matches(&none));
        assert!(!sel("a=x").matches(&none));
        assert!(!sel("a in (x)").matches(&none));
        assert!(!sel("a").matches(&none));
        assert!(!sel("a!=x").matches(&labels(&[("a", "x")])));
        assert!(sel("a!=x").matches(&labels(&[("a", "y")])));
    }

    #[test]
    fn gt_and_lt_compare_integers_and_skip_other_values() {
        assert!(sel("n>9").matches(&labels(&[("n", "10")])));
        assert!(!sel("n>10").matches(&labels(&[("n", "10")])));
        assert!(sel("n<10").matches(&labels(&[("n", "9")])));
        assert!(!sel("n<10").matches(&labels(&[("n", "x")])));
        assert!(!sel("n<10").matches(&labels(&[])));
    }

    #[test]
    fn requirements_are_anded_and_empty_selects_everything() {
        let s = sel("app=web,tier in (fe,be),!canary");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("canary", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(sel("").is_everything());
        assert!(sel("").matches(&labels(&[("any", "thing")])));
        assert!(!s.is_everything());
    }

    #[test]
    fn order_and_repetition_do_not_change_the_selector() {
        assert_eq!(sel("a!=2,a=1"), sel("a=1, a!=2 ,a==1"));
        assert_eq!(sel("b,a in (y,x)").to_string(), "a in (x,y),b");
        assert_ne!(sel("a=1"), sel("a in (1)"));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "web", "n": "3"}}});
        assert!(sel("app=web,n>2").matches_object(&pod));
        assert!(!sel("app=db").matches_object(&pod));
        let bare = json!({"metadata": {"name": "p"}});
        assert!(sel("app!=web").matches_object(&bare));
        assert!(!sel("app").matches_object(&bare));
        assert!(sel("!app").matches_object(&json!({})));
    }

    #[test]
    fn from_label_selector_reads_match_labels_and_expressions() {
        let s = LabelSelector::from_label_selector(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ]
        }))
        .expect("valid selector");
        assert_eq!(s.to_string(), "app=web,!canary,env notin (dev),team,tier in (be,fe)");
        assert_eq!(LabelSelector::parse(&s.to_string()), Ok(s.clone()));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "be"), ("team", "t")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "be")])));
        assert!(LabelSelector::from_label_selector(&json!({})).expect("empty is valid").is_everything());
    }

    #[test]
    fn from_label_selector_rejects_what_upstream_rejects() {
        let err = |v: Value| LabelSelector::from_label_selector(&v).expect_err("invalid").to_string();
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]})),
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist"
        );
        assert!(err(json!({"matchLabels": {"a b": "x"}})).starts_with("key: Invalid value: \"a b\": name part"));
        assert!(err(json!({"matchLabels": {"a": 1}})).contains("must be a string"));
        assert_eq!(err(Value::Null), "a null label selector selects nothing");
    }
}
