//! `flotilla-pki`: the cluster's public-key infrastructure — one certificate authority, the
//! server and client certificates it issues, and the rustls configurations that use them.
//!
//! Data flow: a [`Ca`] is generated once (or loaded from `ca.crt`/`ca.key`), it issues
//! [`Issued`] certificate/key pairs that are written next to it, and [`server_config`],
//! [`server_config_mutual`] and [`client_config`] turn PEM text into rustls configurations.
//! On the serving side, [`cert_identity`] maps a verified client certificate to a Kubernetes
//! user and groups; [`TlsIncoming`] accepts TLS connections for every listener.
//!
//! Invariants:
//! - **CA**: self-signed, ECDSA P-256, basicConstraints `CA:true` with path length 0 (it signs
//!   only end-entity certificates), keyUsage keyCertSign + cRLSign + digitalSignature.
//! - **Server certificate**: one SAN per host (an IP SAN for an IP literal, else a DNS SAN),
//!   keyUsage digitalSignature, extendedKeyUsage serverAuth **and** clientAuth, because a
//!   replica presents the same certificate when it dials its peers.
//! - **Client certificate**: subject CN = user and one subject O per group, in order (the
//!   Kubernetes convention), keyUsage digitalSignature, extendedKeyUsage clientAuth only, so
//!   it can never pass as a server.
//! - Every issued certificate has a new P-256 key, is signed by the CA, names the CA's subject
//!   byte for byte as its issuer, and carries an authority key identifier.
//! - **Validity**: not-before is [`CLOCK_SKEW`] in the past so that machines whose clocks lag
//!   accept a certificate issued just now; not-after is now plus the requested validity, but
//!   never later than the CA's own not-after.
//! - **Files**: certificates are written mode 0644, private keys mode 0600, each through a
//!   temporary file so that a reader never sees half a file. [`Ca::save`] never overwrites;
//!   [`Issued::save`] replaces.
//! - **TLS**: always the ring provider, passed explicitly (a process-wide default provider is
//!   never consulted), rustls' safe default protocol versions, ALPN `http/1.1` ([`with_alpn`] sets `h2` for
//!   the gRPC ports).

pub mod accept;
mod ca;
mod disk;
mod encoding;
mod error;
mod identity;
mod issued;
pub mod jwt;
mod profile;
pub mod reload;
mod tbs;
mod tls;

/// The group whose members may do everything (Kubernetes' break-glass group); on the etcd API,
/// the only clients besides the replicas.
pub const MASTERS_GROUP: &str = "system:masters";
/// The group a replica's certificate carries: only its members may speak on the peer port
/// (Raft and forwarding) and use the etcd API as replicas.
pub const REPLICAS_GROUP: &str = "system:flotilla-replicas";

pub use accept::{Accepted, TlsIncoming};
pub use ca::Ca;
pub use encoding::{certificate_sha256, certificates_der, read_pem};
pub use error::{PkiError, Result};
pub use identity::{cert_identity, CertIdentity};
pub use issued::{certificate_hosts, renew_at, signing_request, validity, Issued};
pub use profile::CLOCK_SKEW;
pub use reload::CertFiles;
pub use tls::{
    check_client_pair, client_config, client_config_any_server, client_config_unverified, server_config,
    server_config_mutual, with_alpn, ALPN_H2,
};
