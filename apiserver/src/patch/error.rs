//! Why a PATCH body could not be applied.
//!
//! Each variant maps to one HTTP status, following what the upstream API server returns for the
//! same failure (`staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go`). The caller turns
//! the variant into a Kubernetes `Status` with [`PatchError::status_code`].

/// A PATCH body that is malformed or cannot be applied to the live object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a well-formed patch of its type: not JSON/YAML, a JSON patch that is not
    /// an array of operations, a merge or strategic patch that is not a JSON object.
    /// Upstream: 400 BadRequest.
    #[error("error decoding patch: {0}")]
    Decode(String),
    /// A strategic-merge-patch directive is malformed: `$retainKeys`, `$setElementOrder/<f>` or
    /// `$deleteFromPrimitiveList/<f>` not a list or naming no field, a patch key missing from
    /// `$retainKeys`, a `$setElementOrder` list that contradicts the patch list, an unknown
    /// `$patch` value. Upstream answers 400 BadRequest for the first group and 500 for the last
    /// two; a client mistake is not a server fault, so all are 400 here.
    #[error("{0}")]
    Directive(String),
    /// The patch is well-formed but cannot be applied to this object: a JSON patch operation
    /// failed (`test` mismatch, missing path), a merge-list item lacks its merge key, a list of
    /// lists in a merged list, or the result is not an object. Upstream: 422 Invalid
    /// (`NewGenericServerResponse(http.StatusUnprocessableEntity, ...)`).
    #[error("{0}")]
    Unprocessable(String),
    /// A JSON patch with more operations than upstream accepts. Upstream: 413 RequestEntityTooLarge.
    #[error("The allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit, [`super::MAX_JSON_PATCH_OPERATIONS`].
        max: usize,
        /// How many operations the body held.
        got: usize,
    },
}

impl PatchError {
    /// The HTTP status upstream answers with for this failure.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::Decode(_) | PatchError::Directive(_) => 400,
            PatchError::Unprocessable(_) => 422,
            PatchError::TooManyOperations { .. } => 413,
        }
    }
}
