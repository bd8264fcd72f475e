//! Label and field selectors, as the API server applies them to `list` and `watch`.
//!
//! Role: turn the `labelSelector` and `fieldSelector` query parameters (and, for controllers,
//! a `metav1.LabelSelector` object) into values that decide whether a stored object is
//! selected. The grammars, the validation rules and the error texts follow upstream's
//! `k8s.io/apimachinery/pkg/labels` and `pkg/fields`, because kubectl and client libraries
//! build these strings and users read the errors.
//!
//! Data flow: handler parses both parameters once per request ([`LabelSelector::parse`],
//! [`FieldSelector::parse`]), checks the field selector against the resource
//! ([`FieldSelector::check_supported`], upstream's field label conversion), then evaluates
//! both against every listed object and every watch event's object.
//!
//! Invariants: a parsed selector holds only requirements that passed validation, sorted into a
//! canonical order, so two selectors that print the same compare equal, and printing then
//! parsing yields an equal selector.
//!
//! Beside those, the selectors that place pods on nodes, on typed objects, for the scheduler
//! and the controllers: [`node`] (`nodeSelector`, node affinity terms with `matchFields`) and
//! [`toleration`] (which taints a pod tolerates).

mod field;
mod label;
mod label_parse;
pub mod node;
pub mod toleration;

pub use field::FieldSelector;
pub use label::LabelSelector;

/// Why a selector was rejected. Every variant is a client error: 400 BadRequest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector (a `labelSelector` string or a `metav1.LabelSelector` object) does
    /// not parse, or names an invalid key, value or operator. The text is upstream's.
    #[error("{0}")]
    Label(String),
    /// The `fieldSelector` string does not parse (a term without an operator, a bad escape).
    #[error("{0}")]
    Field(String),
    /// The field selector names a field the resource cannot be selected by.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}
