//! Label selectors of pod affinity terms, compiled once per pod and matched per pod or
//! namespace. The requirement semantics are shared with node selectors
//! ([`flotilla_apiserver::selector::node`]): `In` needs the key with one of the values,
//! `NotIn` is true when the key is absent; `Gt`/`Lt` are not label selector operators.
//!
//! Invariants: a missing selector matches nothing, an empty one everything, and a malformed
//! one (a bad operator or arity) nothing.

use flotilla_apiserver::selector::node::{Labels, Requirement};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A compiled `metav1.LabelSelector`; `None` inside means "matches nothing".
#[derive(Debug, Clone)]
pub struct LabelSelectorMatcher(Option<Vec<Requirement>>);

impl LabelSelectorMatcher {
    pub fn new(selector: Option<&LabelSelector>) -> Self {
        let Some(selector) = selector else { return LabelSelectorMatcher(None) };
        let mut reqs: Vec<Requirement> =
            selector.match_labels.iter().flatten().map(|(k, v)| Requirement::equals(k, v)).collect();
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.as_deref().unwrap_or(&[]);
            match Requirement::label(&expr.key, &expr.operator, values) {
                Some(req) => reqs.push(req),
                None => return LabelSelectorMatcher(None),
            }
        }
        LabelSelectorMatcher(Some(reqs))
    }

    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.0.as_ref().is_some_and(|reqs| reqs.iter().all(|r| r.matches_labels(labels)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(!LabelSelectorMatcher::new(None).matches(&l), "missing selector matches nothing");
        assert!(LabelSelectorMatcher::new(Some(&LabelSelector::default())).matches(&l), "empty matches all");
        let sel = |exprs: Vec<(&str, &str, &[&str])>, match_labels: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(match_labels)),
            match_expressions: Some(
                exprs
                    .into_iter()
                    .map(|(k, op, vs)| LabelSelectorRequirement {
                        key: k.into(),
                        operator: op.into(),
                        values: Some(vs.iter().map(|v| v.to_string()).collect()),
                    })
                    .collect(),
            ),
        };
        assert!(LabelSelectorMatcher::new(Some(&sel(vec![], &[("app", "web")]))).matches(&l));
        assert!(!LabelSelectorMatcher::new(Some(&sel(vec![], &[("app", "db")]))).matches(&l));
        assert!(LabelSelectorMatcher::new(Some(&sel(vec![("tier", "In", &["front"])], &[("app", "web")]))).matches(&l));
        assert!(!LabelSelectorMatcher::new(Some(&sel(vec![("tier", "NotIn", &["front"])], &[]))).matches(&l));
        // Gt is not a label selector operator: the selector is invalid and matches nothing.
        assert!(!LabelSelectorMatcher::new(Some(&sel(vec![("tier", "Gt", &["1"])], &[]))).matches(&l));
    }
}
