//! An issued certificate and its private key, as PEM, and how they are written to disk.

use std::path::Path;
use std::time::SystemTime;

use crate::disk;
use crate::encoding;
use crate::error::{PkiError, Result};

/// An issued certificate with its new private key (PEM).
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Issued {
    /// Write `dir/<name>.crt` (0644) and `dir/<name>.key` (0600), creating `dir`; overwrites
    /// (through a temporary file and rename, so a reader never sees half a file).
    ///
    /// The key is written before the certificate, so a reader that finds the new certificate
    /// also finds its key; one that reads in between may pair the old certificate with the new
    /// key, which rustls rejects as a mismatch, and should retry.
    pub fn save(&self, dir: &Path, name: &str) -> Result<()> {
        check_file_name(name)?;
        disk::create_dir(dir)?;
        disk::replace(&dir.join(format!("{name}.key")), self.key_pem.as_bytes(), disk::KEY_MODE)?;
        disk::replace(&dir.join(format!("{name}.crt")), self.cert_pem.as_bytes(), disk::CERT_MODE)
    }

    /// When the certificate stops being valid.
    pub fn not_after(&self) -> Result<SystemTime> {
        let der = encoding::certificates(&self.cert_pem, "issued certificate")?.remove(0);
        let cert = encoding::parse_certificate(&der, "issued certificate")?;
        Ok(cert.validity().not_after.to_datetime().into())
    }
}

/// When the first certificate of `cert_pem` starts and stops being valid.
pub fn validity(cert_pem: &str) -> Result<(SystemTime, SystemTime)> {
    let der = encoding::certificates(cert_pem, "certificate")?.remove(0);
    let cert = encoding::parse_certificate(&der, "certificate")?;
    let v = cert.validity();
    Ok((v.not_before.to_datetime().into(), v.not_after.to_datetime().into()))
}

/// The hosts a certificate names in its subjectAltName: DNS names as written, IP addresses
/// in their canonical text form.
pub fn certificate_hosts(cert_pem: &str) -> Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let der = encoding::certificates(cert_pem, "certificate")?.remove(0);
    let cert = encoding::parse_certificate(&der, "certificate")?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| crate::PkiError::Certificate { what: "certificate", reason: e.to_string() })?;
    let names = san.map(|s| s.value.general_names.clone()).unwrap_or_default();
    Ok(names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// When a certificate is due for renewal: two thirds into its lifetime, counted from when it
/// was issued (its not-before, which the CA backdates by [`crate::CLOCK_SKEW`]); now for a
/// certificate that does not parse.
pub fn renew_at(cert_pem: &str) -> SystemTime {
    let Ok((not_before, not_after)) = validity(cert_pem) else { return SystemTime::now() };
    let issued = (not_before + crate::CLOCK_SKEW).min(not_after);
    let lifetime = not_after.duration_since(issued).unwrap_or_default();
    issued + lifetime * 2 / 3
}

/// A new P-256 key and a certificate signing request for it (PEM, subject CN = `common_name`):
/// what a client sends to have its own key certified, keeping the key to itself. Returns
/// `(request_pem, key_pem)`.
pub fn signing_request(common_name: &str) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let request = params.serialize_request(&key)?.pem()?;
    Ok((request, key.serialize_pem()))
}

/// `name` becomes a file name in `dir`: it must not reach elsewhere or hide.
fn check_file_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.contains(['/', '\\', '\0']) {
        "contains a path separator or NUL"
    } else if name.starts_with('.') {
        "starts with a dot"
    } else if name == "ca" {
        "is the CA's own (ca.crt, ca.key)"
    } else {
        return Ok(());
    };
    Err(PkiError::InvalidFileName { name: name.to_string(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_hosts_are_its_dns_names_and_addresses() {
        let ca = crate::Ca::generate("ca", std::time::Duration::from_secs(86_400)).unwrap();
        let hosts: Vec<String> =
            ["127.0.0.1", "localhost", "fd00::1", "n1.lan"].iter().map(|h| h.to_string()).collect();
        let issued = ca.issue_server("s", &[], &hosts, std::time::Duration::from_secs(300)).unwrap();
        let mut got = certificate_hosts(&issued.cert_pem).unwrap();
        got.sort();
        let mut want = hosts.clone();
        want.sort();
        assert_eq!(got, want);
        assert!(certificate_hosts("not a certificate").is_err());
    }

    #[test]
    fn renewal_is_due_two_thirds_into_the_lifetime() {
        let ca = crate::Ca::generate("ca", std::time::Duration::from_secs(86_400)).unwrap();
        let issued = ca.issue_client("system:node:n1", &[], std::time::Duration::from_secs(300)).unwrap();
        let at = renew_at(&issued.cert_pem);
        let from_now = at.duration_since(SystemTime::now()).unwrap_or_default().as_secs();
        assert!((195..=200).contains(&from_now), "renewal {from_now} s from now, want about 200");
    }

    #[test]
    fn file_names_stay_in_their_directory() {
        for bad in ["", "..", "../x", "a/b", ".hidden", "nul\0", "ca"] {
            assert!(matches!(check_file_name(bad), Err(PkiError::InvalidFileName { .. })), "{bad:?}");
        }
        check_file_name("apiserver").expect("plain name");
        check_file_name("node-1.kubelet").expect("dots inside");
    }
}
