//! The cluster certificate authority: generated once, saved as `ca.crt`/`ca.key`, loaded by
//! every replica, and used to issue server and client certificates.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rcgen::{Issuer, KeyPair, PublicKeyData, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::PrivateKeyDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use crate::error::{PkiError, Result};
use crate::issued::Issued;
use crate::profile::{self, Window};
use crate::{disk, encoding, tbs};

const CERT_FILE: &str = "ca.crt";
const KEY_FILE: &str = "ca.key";

/// A cluster certificate authority: its certificate and key.
pub struct Ca {
    cert_pem: String,
    /// The CA's subject exactly as its certificate encodes it: the issuer of what it signs.
    subject_der: Vec<u8>,
    /// For messages and `Debug`.
    subject: String,
    not_after: OffsetDateTime,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256), CN = `common_name`, valid from now for `validity`,
    /// basicConstraints CA:true, key usages keyCertSign + cRLSign + digitalSignature.
    pub fn generate(common_name: &str, validity: Duration) -> Result<Ca> {
        let params = profile::ca(common_name, Window::starting_now(validity)?)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        // Through the same checks as a CA read from disk, so both are built one way.
        Ca::from_pem(&cert.pem(), &key.serialize_pem())
    }

    /// From PEM text (certificate and PKCS#8 private key), checking that the key matches the
    /// certificate and that it is a CA.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let der = encoding::single_certificate(cert_pem, "CA certificate")?;
        let cert = encoding::parse_certificate(&der, "CA certificate")?;
        let subject = cert.subject().to_string();
        check_is_ca(&cert, &subject)?;

        let bad_key = |reason: String| PkiError::Pem { what: "CA private key", reason };
        let key = match encoding::private_key(key_pem, "CA private key")? {
            PrivateKeyDer::Pkcs8(key) => KeyPair::try_from(&key).map_err(|e| bad_key(e.to_string()))?,
            _ => return Err(bad_key("not a PKCS#8 private key".into())),
        };
        if key.der_bytes() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(PkiError::KeyMismatch);
        }

        let subject_der = cert.subject().as_raw().to_vec();
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&der, key)?;
        Ok(Ca { cert_pem: cert_pem.to_string(), subject_der, subject, not_after, issuer })
    }

    /// From `dir/ca.crt` and `dir/ca.key`.
    pub fn load(dir: &Path) -> Result<Ca> {
        let cert_pem = encoding::read_pem(&dir.join(CERT_FILE))?;
        let key_pem = encoding::read_pem(&dir.join(KEY_FILE))?;
        Ca::from_pem(&cert_pem, &key_pem).map_err(|e| PkiError::Load { dir: dir.to_path_buf(), source: Box::new(e) })
    }

    /// Write `dir/ca.crt` (0644) and `dir/ca.key` (0600), creating `dir`; refuses (error) to
    /// overwrite existing files.
    ///
    /// The CA is the root of trust: silently replacing it would orphan every certificate it
    /// issued, so an existing file is left alone and reported.
    pub fn save(&self, dir: &Path) -> Result<()> {
        disk::create_dir(dir)?;
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(PkiError::AlreadyExists { path: path.clone() });
            }
        }
        disk::create_new(&key_path, self.issuer.key().serialize_pem().as_bytes(), disk::KEY_MODE)?;
        if let Err(e) = disk::create_new(&cert_path, self.cert_pem.as_bytes(), disk::CERT_MODE) {
            // Do not leave a key without its certificate: the next save would refuse.
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        Ok(())
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `hosts` (each an IP address literal -> IP SAN, else a DNS SAN;
    /// at least one host, else error), CN = `common_name` and one subject O per group in
    /// `groups`, extendedKeyUsage serverAuth AND clientAuth (replicas also use it as a client
    /// towards their peers, where [`REPLICAS_GROUP`](crate::REPLICAS_GROUP) admits them),
    /// signed by this CA, new P-256 key.
    pub fn issue_server(
        &self,
        common_name: &str,
        groups: &[String],
        hosts: &[String],
        validity: Duration,
    ) -> Result<Issued> {
        check_subject("common name", common_name, groups)?;
        let params = profile::server(common_name, hosts, self.window(validity)?)?;
        self.issue(params, &tbs::subject_name(common_name, groups))
    }

    /// A client certificate for user `user` (subject CN) in `groups` (one subject O per group,
    /// the Kubernetes convention), extendedKeyUsage clientAuth, signed by this CA, new P-256
    /// key.
    pub fn issue_client(&self, user: &str, groups: &[String], validity: Duration) -> Result<Issued> {
        check_subject("user", user, groups)?;
        let params = profile::client(user, self.window(validity)?);
        self.issue(params, &tbs::subject_name(user, groups))
    }

    fn window(&self, validity: Duration) -> Result<Window> {
        Window::starting_now(validity)?.capped_at(self.not_after)
    }

    /// A client certificate for `user` in `groups`, as [`Ca::issue_client`], for the key of a
    /// certificate signing request (PEM), whose signature proves its holder has that key.
    /// Only the key is taken from the request: its subject and extensions are ignored, so the
    /// caller alone decides who the certificate names. Returns the certificate (PEM).
    pub fn sign_client_request(
        &self,
        request_pem: &str,
        user: &str,
        groups: &[String],
        validity: Duration,
    ) -> Result<String> {
        check_subject("user", user, groups)?;
        let request = rcgen::CertificateSigningRequestParams::from_pem(request_pem)
            .map_err(|e| PkiError::Pem { what: "certificate signing request", reason: e.to_string() })?;
        let params = profile::client(user, self.window(validity)?);
        self.sign(params, &request.public_key, &tbs::subject_name(user, groups))
    }

    fn issue(&self, params: rcgen::CertificateParams, subject: &[u8]) -> Result<Issued> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert_pem = self.sign(params, &key, subject)?;
        Ok(Issued { cert_pem, key_pem: key.serialize_pem() })
    }

    /// `params` for `key`, named `subject`, signed by this CA; PEM.
    fn sign(&self, params: rcgen::CertificateParams, key: &impl PublicKeyData, subject: &[u8]) -> Result<String> {
        let draft = params.signed_by(key, &self.issuer)?;
        let der = tbs::rename_and_sign(draft.der(), &self.subject_der, subject, self.issuer.key())?;
        Ok(encoding::encode_certificate(&der))
    }
}

impl fmt::Debug for Ca {
    /// Never shows the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").field("subject", &self.subject).field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// The subject's name (`what`: "user", "common name") and every group are valid names.
fn check_subject(what: &'static str, name: &str, groups: &[String]) -> Result<()> {
    profile::check_name(what, name)?;
    groups.iter().try_for_each(|group| profile::check_name("group", group))
}

/// basicConstraints CA:true, and keyCertSign if a keyUsage extension is present.
fn check_is_ca(cert: &X509Certificate<'_>, subject: &str) -> Result<()> {
    let not_ca = |reason| PkiError::NotCa { subject: subject.to_string(), reason };
    let constraints = cert.basic_constraints().map_err(|_| not_ca("malformed basicConstraints"))?;
    if !constraints.is_some_and(|c| c.value.ca) {
        return Err(not_ca("basicConstraints is not CA:true"));
    }
    let usage = cert.key_usage().map_err(|_| not_ca("malformed keyUsage"))?;
    if usage.is_some_and(|u| !u.value.key_cert_sign()) {
        return Err(not_ca("keyUsage lacks keyCertSign"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
