//! The names in an issued certificate, written by this crate rather than by rcgen.
//!
//! rcgen keeps one value per attribute type in a distinguished name, but a Kubernetes client
//! certificate needs one O per group. So rcgen builds and signs the certificate (extensions,
//! validity, key), then [`rename_and_sign`] swaps in the subject encoded here and, as issuer,
//! the CA's subject exactly as the CA certificate encodes it (chain building compares the two
//! byte for byte), and signs the to-be-signed part again with the CA key.

use rcgen::{KeyPair, SigningKey};
use yasna::models::ObjectIdentifier;

use crate::error::{PkiError, Result};

const OID_COMMON_NAME: [u64; 4] = [2, 5, 4, 3];
const OID_ORGANIZATION: [u64; 4] = [2, 5, 4, 10];

/// Positions in a v3 TBSCertificate: version, serialNumber, signature, issuer, validity,
/// subject, subjectPublicKeyInfo, then the optional fields.
const ISSUER: usize = 3;
const SUBJECT: usize = 5;
const REQUIRED_FIELDS: usize = 7;

/// A subject name: CN = `common_name`, then one O per entry of `organizations` in order, each
/// in its own RDN and as a UTF8String (what `openssl -subj /CN=u/O=a/O=b` produces).
pub(crate) fn subject_name(common_name: &str, organizations: &[String]) -> Vec<u8> {
    let attributes = std::iter::once((OID_COMMON_NAME, common_name))
        .chain(organizations.iter().map(|o| (OID_ORGANIZATION, o.as_str())));
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for (oid, value) in attributes {
                w.next().write_set(|w| {
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(&oid));
                        w.next().write_utf8_string(value);
                    })
                })
            }
        })
    })
}

/// `cert_der` with its issuer and subject replaced by the given DER names, signed by `key`.
pub(crate) fn rename_and_sign(cert_der: &[u8], issuer: &[u8], subject: &[u8], key: &KeyPair) -> Result<Vec<u8>> {
    let (tbs, signature_algorithm) = yasna::parse_der(cert_der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_der()?;
            let algorithm = r.next().read_der()?;
            r.next().read_der()?; // the signature, to be replaced
            Ok((tbs, algorithm))
        })
    })
    .map_err(malformed)?;

    let mut fields = yasna::parse_der(&tbs, |r| {
        r.read_sequence(|r| {
            let mut fields = Vec::new();
            while let Some(field) = r.read_optional(|r| r.read_der())? {
                fields.push(field);
            }
            Ok(fields)
        })
    })
    .map_err(malformed)?;
    if fields.len() < REQUIRED_FIELDS {
        return Err(PkiError::Certificate {
            what: "certificate being issued",
            reason: format!("{} TBSCertificate fields, expected at least {REQUIRED_FIELDS}", fields.len()),
        });
    }
    fields[ISSUER] = issuer.to_vec();
    fields[SUBJECT] = subject.to_vec();

    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            for field in &fields {
                w.next().write_der(field);
            }
        })
    });
    let signature = key.sign(&tbs)?;
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_der(&signature_algorithm);
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        })
    }))
}

fn malformed(e: yasna::ASN1Error) -> PkiError {
    PkiError::Certificate { what: "certificate being issued", reason: format!("malformed DER: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn subject_name_keeps_every_organization_in_order() {
        let groups = vec!["system:masters".to_string(), "dev".to_string(), "dev".to_string()];
        let der = subject_name("alice", &groups);
        let (rest, name) = X509Name::from_der(&der).expect("parses");
        assert!(rest.is_empty());
        let cn: Vec<_> = name.iter_common_name().map(|a| a.as_str().expect("utf8")).collect();
        let o: Vec<_> = name.iter_organization().map(|a| a.as_str().expect("utf8")).collect();
        assert_eq!(cn, ["alice"]);
        assert_eq!(o, ["system:masters", "dev", "dev"]);
        assert_eq!(name.iter_rdn().count(), 4, "one RDN per attribute");
    }

    #[test]
    fn rename_rejects_garbage() {
        let key = KeyPair::generate().expect("key");
        let err = rename_and_sign(b"\x30\x03\x02\x01\x01", &[], &[], &key).expect_err("not a certificate");
        assert!(matches!(err, PkiError::Certificate { .. }), "{err}");
    }
}
