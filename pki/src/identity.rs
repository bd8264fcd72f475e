//! The Kubernetes identity a verified client certificate carries, read the way the upstream
//! API server reads it: user = subject CN, groups = every subject O, in order.

use crate::encoding;
use crate::error::{PkiError, Result};

/// The Kubernetes identity a client certificate carries: user = subject CN, groups = subject O
/// values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIdentity {
    pub user: String,
    pub groups: Vec<String>,
}

impl CertIdentity {
    /// Whether the identity is in at least one of `groups`.
    pub fn in_any(&self, groups: &[&str]) -> bool {
        self.groups.iter().any(|g| groups.contains(&g.as_str()))
    }
}

/// Parse the identity from a DER certificate (as rustls hands over the peer's end-entity cert).
/// Error if there is no CN.
///
/// This does not verify anything: call it only on a certificate the TLS handshake verified.
/// An empty CN counts as none, and more than one CN is an error rather than a guess at which
/// one names the user.
pub fn cert_identity(der: &[u8]) -> Result<CertIdentity> {
    const WHAT: &str = "client certificate";
    let cert = encoding::parse_certificate(der, WHAT)?;
    let subject = cert.subject();
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        attr.as_str().map(str::to_string).map_err(|e| PkiError::Certificate {
            what: WHAT,
            reason: format!("subject attribute is not a string: {e}"),
        })
    };

    let mut common_names = subject.iter_common_name();
    let user = common_names.next().map(text).transpose()?.filter(|cn| !cn.is_empty()).ok_or(PkiError::NoCommonName)?;
    if common_names.next().is_some() {
        return Err(PkiError::Certificate { what: WHAT, reason: "more than one subject CN".into() });
    }
    let groups = subject.iter_organization().map(text).collect::<Result<_>>()?;
    Ok(CertIdentity { user, groups })
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;

    fn self_signed(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("sign").der().to_vec()
    }

    #[test]
    fn certificate_without_common_name_has_no_identity() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, "system:masters");
        let err = cert_identity(&self_signed(params)).expect_err("no CN");
        assert!(matches!(err, PkiError::NoCommonName), "{err}");
    }

    #[test]
    fn organizations_are_optional() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "system:kube-scheduler");
        let identity = cert_identity(&self_signed(params)).expect("identity");
        assert_eq!(identity, CertIdentity { user: "system:kube-scheduler".into(), groups: vec![] });
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(cert_identity(b"not DER"), Err(PkiError::Certificate { .. })));
    }
}
