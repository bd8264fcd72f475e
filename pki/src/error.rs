//! The crate's error type. Every variant names the file or the input at fault, because these
//! errors mostly surface at startup, where an operator has to find the wrong file.

use std::io;
use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, PkiError>;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done: "reading", "creating", ...
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("refusing to overwrite existing {}", path.display())]
    AlreadyExists { path: PathBuf },

    #[error("{} holds no PEM block", path.display())]
    NotPem { path: PathBuf },

    #[error("invalid file name {name:?}: {reason}")]
    InvalidFileName { name: String, reason: &'static str },

    /// PEM text that does not decode, or holds the wrong number or kind of items.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input: "CA certificate", "server private key", ...
        what: &'static str,
        reason: String,
    },

    /// A certificate that does not parse, or lacks something this crate needs.
    #[error("{what}: {reason}")]
    Certificate { what: &'static str, reason: String },

    #[error("the private key does not match the certificate")]
    KeyMismatch,

    #[error("certificate {subject:?} is not a CA: {reason}")]
    NotCa { subject: String, reason: &'static str },

    #[error("a server certificate needs at least one host")]
    NoHosts,

    #[error("invalid host {host:?} for a server certificate: {reason}")]
    InvalidHost { host: String, reason: &'static str },

    /// An empty common name, user or group.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName { what: &'static str, value: String, reason: &'static str },

    #[error("invalid validity: {reason}")]
    Validity { reason: String },

    #[error("the certificate has no subject common name (CN)")]
    NoCommonName,

    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),

    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),

    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),

    /// An error about the CA files in a directory (from [`crate::Ca::load`]).
    #[error("CA in {}: {source}", dir.display())]
    Load { dir: PathBuf, source: Box<PkiError> },
}

impl PkiError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        PkiError::Io { action, path: path.into(), source }
    }
}
