//! What can go wrong decoding a protobuf request body.

use std::fmt;

/// Why a protobuf body could not be turned into a JSON object.
///
/// Status mapping: [`MissingMagic`](Self::MissingMagic) and [`Malformed`](Self::Malformed)
/// are the client's fault (400 BadRequest); [`UnsupportedKind`](Self::UnsupportedKind) and
/// [`UnknownField`](Self::UnknownField) are limits of this server, answered with 415
/// UnsupportedMediaType so the message can tell the user to send JSON instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body does not start with the 4-byte `k8s\0` prefix every Kubernetes protobuf
    /// body carries.
    MissingMagic,
    /// The body is not a well-formed `runtime.Unknown` envelope or object: truncated,
    /// a bad varint, a wrong wire type, invalid UTF-8, a time out of range...
    Malformed {
        /// Where in the object (`spec.template.spec.containers[0].image`), or `envelope`.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// The envelope names a group/version/kind this decoder has no schema for.
    UnsupportedKind {
        /// The envelope's apiVersion (`apps/v1`).
        api_version: String,
        /// The envelope's kind (`Deployment`).
        kind: String,
    },
    /// The object sets (to a non-zero value) a field this decoder's schema does not list, so
    /// decoding would silently drop data.
    UnknownField {
        /// The path of the message holding the field (`spec.template.spec.volumes[0]`).
        path: String,
        /// The upstream Go type of that message (`VolumeSource`).
        message: &'static str,
        /// The protobuf field number (see upstream `generated.proto`).
        number: u32,
    },
}

impl fmt::Display for ProtobufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtobufError::MissingMagic => {
                f.write_str("protobuf body does not start with the Kubernetes prefix \"k8s\\x00\"")
            }
            ProtobufError::Malformed { path, reason } => write!(f, "invalid protobuf body at {path}: {reason}"),
            ProtobufError::UnsupportedKind { api_version, kind } => write!(
                f,
                "protobuf request bodies for {api_version}, Kind={kind} are not supported by this server; \
                 send the object as application/json"
            ),
            ProtobufError::UnknownField { path, message, number } => write!(
                f,
                "protobuf field {number} of {message} at {path} is not supported by this server; \
                 send the object as application/json"
            ),
        }
    }
}

impl std::error::Error for ProtobufError {}
