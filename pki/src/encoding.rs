//! Encodings: reading PEM files, decoding certificates and private keys, encoding the
//! certificates this crate signs itself, and parsing X.509.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use x509_parser::certificate::X509Certificate;

use crate::error::{PkiError, Result};

/// Read a PEM file to a String, with an error naming the path.
///
/// The file must hold at least one PEM block, so that a wrong path (a DER file, a directory
/// listing, an empty file) fails here, naming the file, rather than later as a TLS error.
pub fn read_pem(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| PkiError::io("reading", path, e))?;
    if !text.contains("-----BEGIN ") {
        return Err(PkiError::NotPem { path: path.to_path_buf() });
    }
    Ok(text)
}

/// All certificates in `pem`, in order; at least one.
pub(crate) fn certificates(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Pem { what, reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(PkiError::Pem { what, reason: "no CERTIFICATE block".into() });
    }
    Ok(certs)
}

/// The one certificate in `pem`; more than one is an error, as it would be ambiguous.
/// Every certificate in PEM text, as DER (for clients that take their trust anchors so).
pub fn certificates_der(pem: &str) -> Result<Vec<Vec<u8>>> {
    Ok(certificates(pem, "certificate")?.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// Hex SHA-256 of the DER of the one certificate in `pem` (how a join token names its CA);
/// more than one is an error, so no other certificate can ride along with the hashed one.
pub fn certificate_sha256(pem: &str) -> Result<String> {
    let der = single_certificate(pem, "certificate")?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn single_certificate(pem: &str, what: &'static str) -> Result<CertificateDer<'static>> {
    let mut certs = certificates(pem, what)?;
    if certs.len() > 1 {
        return Err(PkiError::Pem { what, reason: format!("{} CERTIFICATE blocks, expected one", certs.len()) });
    }
    Ok(certs.remove(0))
}

/// The first private key in `pem` (PKCS#8, SEC1 or PKCS#1).
pub(crate) fn private_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Pem { what, reason: e.to_string() })
}

/// A DER certificate as PEM, with `\n` line endings.
pub(crate) fn encode_certificate(der: &[u8]) -> String {
    let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    ::pem::encode_config(&::pem::Pem::new("CERTIFICATE", der.to_vec()), config)
}

/// A DER certificate, parsed.
pub(crate) fn parse_certificate<'a>(der: &'a [u8], what: &'static str) -> Result<X509Certificate<'a>> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| PkiError::Certificate { what, reason: e.to_string() })?;
    Ok(cert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_pem_names_the_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("absent.crt");
        let err = read_pem(&path).expect_err("absent file");
        assert!(err.to_string().contains("absent.crt"), "{err}");
    }

    #[test]
    fn read_pem_rejects_a_file_without_pem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("garbage.crt");
        std::fs::write(&path, b"not a certificate").expect("write");
        let err = read_pem(&path).expect_err("no PEM block");
        assert!(matches!(err, PkiError::NotPem { .. }), "{err}");
        assert!(err.to_string().contains("garbage.crt"), "{err}");
    }

    #[test]
    fn certificates_require_at_least_one_block() {
        let err = certificates("", "test bundle").expect_err("empty");
        assert!(err.to_string().starts_with("test bundle"), "{err}");
    }
}
