use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::X509Certificate;

use super::*;
use crate::identity::{cert_identity, CertIdentity};

const DAY: Duration = Duration::from_secs(86_400);

fn der(pem: &str) -> Vec<u8> {
    encoding::single_certificate(pem, "test certificate").expect("one certificate").to_vec()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    encoding::parse_certificate(der, "test certificate").expect("parses")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| s.to_string()).collect()
}

/// `t` is within a minute of `expected` (the test itself takes a moment).
fn assert_near(t: OffsetDateTime, expected: OffsetDateTime) {
    assert!((t - expected).abs() < time::Duration::minutes(1), "{t} is not near {expected}");
}

fn key_identifier(cert: &X509Certificate<'_>, authority: bool) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) if !authority => Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) if authority => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
        .expect("key identifier present")
}

#[test]
fn generated_ca_is_a_self_signed_p256_ca() {
    let ca = Ca::generate("flotilla-ca", 10 * DAY).expect("generate");
    let der = der(ca.cert_pem());
    let cert = parse(&der);
    assert_eq!(cert.subject().to_string(), "CN=flotilla-ca");
    assert_eq!(cert.issuer().as_raw(), cert.subject().as_raw());
    cert.verify_signature(None).expect("self-signed");
    let constraints = cert.basic_constraints().expect("valid").expect("present").value;
    assert!(constraints.ca);
    assert_eq!(constraints.path_len_constraint, Some(0));
    let usage = cert.key_usage().expect("valid").expect("present").value;
    assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
    assert_eq!(cert.public_key().algorithm.algorithm, x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY);
    let now = OffsetDateTime::now_utc();
    assert_near(cert.validity().not_before.to_datetime(), now - time::Duration::hours(1));
    assert_near(cert.validity().not_after.to_datetime(), now + time::Duration::days(10));
}

#[test]
fn generate_save_load_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("etc/pki");
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    ca.save(&pki_dir).expect("save creates the directory");
    assert_eq!(mode(&pki_dir.join("ca.key")), 0o600);
    assert_eq!(mode(&pki_dir.join("ca.crt")), 0o644);

    let loaded = Ca::load(&pki_dir).expect("load");
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.issuer.key().serialize_pem(), ca.issuer.key().serialize_pem());
    // The loaded CA signs with the same key: the original's public key verifies its work.
    let issued = loaded.issue_client("alice", &[], DAY).expect("issue");
    let (ca_der, leaf_der) = (der(ca.cert_pem()), der(&issued.cert_pem));
    parse(&leaf_der).verify_signature(Some(parse(&ca_der).public_key())).expect("signed by the CA key");
}

#[test]
fn save_refuses_to_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Ca::generate("first", DAY).expect("generate");
    first.save(dir.path()).expect("save");
    let second = Ca::generate("second", DAY).expect("generate");
    let err = second.save(dir.path()).expect_err("files exist");
    assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
    assert_eq!(Ca::load(dir.path()).expect("load").cert_pem(), first.cert_pem(), "the first CA is intact");

    // A lone key (say, from an interrupted bootstrap) is not overwritten either.
    let lone = tempfile::tempdir().expect("tempdir");
    std::fs::write(lone.path().join("ca.key"), b"precious").expect("write");
    assert!(matches!(second.save(lone.path()), Err(PkiError::AlreadyExists { .. })));
    assert_eq!(std::fs::read(lone.path().join("ca.key")).expect("read"), b"precious");
    assert!(!lone.path().join("ca.crt").exists());
}

#[test]
fn load_names_the_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Ca::load(dir.path()).expect_err("empty directory");
    assert!(err.to_string().contains("ca.crt"), "{err}");
}

#[test]
fn from_pem_rejects_a_key_that_does_not_match() {
    let a = Ca::generate("a", DAY).expect("generate");
    let b = Ca::generate("b", DAY).expect("generate");
    let err = Ca::from_pem(a.cert_pem(), &b.issuer.key().serialize_pem()).expect_err("mismatch");
    assert!(matches!(err, PkiError::KeyMismatch), "{err}");
}

#[test]
fn from_pem_rejects_a_certificate_that_is_not_a_ca() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let client = ca.issue_client("alice", &[], DAY).expect("issue");
    let err = Ca::from_pem(&client.cert_pem, &client.key_pem).expect_err("not a CA");
    assert!(matches!(err, PkiError::NotCa { .. }), "{err}");
    let server = ca.issue_server("apiserver", &[], &strings(&["10.0.0.1"]), DAY).expect("issue");
    assert!(matches!(Ca::from_pem(&server.cert_pem, &server.key_pem), Err(PkiError::NotCa { .. })));
}

#[test]
fn issue_server_carries_its_groups_as_subject_organizations() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let groups = strings(&[crate::REPLICAS_GROUP, "extra"]);
    let issued = ca.issue_server("n1", &groups, &strings(&["10.0.0.1"]), DAY).expect("issue");
    let identity = crate::cert_identity(&der(&issued.cert_pem)).expect("identity");
    assert_eq!(identity, crate::CertIdentity { user: "n1".into(), groups });
    assert!(ca.issue_server("n1", &strings(&[""]), &strings(&["10.0.0.1"]), DAY).is_err(), "empty group");
}

#[test]
fn issue_server_sets_sans_ekus_issuer_and_validity() {
    let ca = Ca::generate("flotilla-ca", 30 * DAY).expect("generate");
    let hosts = strings(&["10.1.2.3", "api.flotilla.local", "::1"]);
    let issued = ca.issue_server("flotilla-apiserver", &[], &hosts, 7 * DAY).expect("issue");
    let (ca_der, leaf_der) = (der(ca.cert_pem()), der(&issued.cert_pem));
    let (ca_cert, cert) = (parse(&ca_der), parse(&leaf_der));

    let san = cert.subject_alternative_name().expect("valid").expect("present");
    assert!(!san.critical, "the subject is not empty, so the SAN need not be critical");
    let sans = &san.value.general_names;
    let mut ipv6_loopback = [0u8; 16];
    ipv6_loopback[15] = 1;
    assert_eq!(
        sans,
        &[
            GeneralName::IPAddress(&[10, 1, 2, 3]),
            GeneralName::DNSName("api.flotilla.local"),
            GeneralName::IPAddress(&ipv6_loopback)
        ]
    );
    let eku = cert.extended_key_usage().expect("valid").expect("present").value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!cert.is_ca());
    let usage = cert.key_usage().expect("valid").expect("present").value;
    assert!(usage.digital_signature() && !usage.key_cert_sign());

    assert_eq!(cert.subject().to_string(), "CN=flotilla-apiserver");
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    assert_eq!(key_identifier(&cert, true), key_identifier(&ca_cert, false));
    cert.verify_signature(Some(ca_cert.public_key())).expect("signed by the CA");
    assert_ne!(cert.public_key().raw, ca_cert.public_key().raw, "a new key");

    let now = OffsetDateTime::now_utc();
    assert_near(cert.validity().not_before.to_datetime(), now - time::Duration::hours(1));
    assert_near(cert.validity().not_after.to_datetime(), now + time::Duration::days(7));
    let not_after = issued.not_after().expect("not_after");
    assert_eq!(not_after, SystemTime::from(cert.validity().not_after.to_datetime()));
}

#[test]
fn issue_server_rejects_bad_hosts() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    assert!(matches!(ca.issue_server("api", &[], &[], DAY), Err(PkiError::NoHosts)));
    let err = ca.issue_server("api", &[], &strings(&["10.0.0.1", "not a host"]), DAY).expect_err("bad host");
    assert!(matches!(err, PkiError::InvalidHost { ref host, .. } if host == "not a host"), "{err}");
}

#[test]
fn issue_client_carries_user_and_groups_in_order() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let groups = strings(&["system:nodes", "system:authenticated", "ops"]);
    let issued = ca.issue_client("system:node:worker-1", &groups, DAY).expect("issue");
    let (ca_der, leaf_der) = (der(ca.cert_pem()), der(&issued.cert_pem));
    let cert = parse(&leaf_der);

    let identity = cert_identity(&leaf_der).expect("identity");
    assert_eq!(identity, CertIdentity { user: "system:node:worker-1".into(), groups });
    let eku = cert.extended_key_usage().expect("valid").expect("present").value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(cert.subject_alternative_name().expect("valid").is_none());
    cert.verify_signature(Some(parse(&ca_der).public_key())).expect("signed by the CA");
}

#[test]
fn issue_client_rejects_empty_names() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    assert!(matches!(ca.issue_client("", &[], DAY), Err(PkiError::InvalidName { .. })));
    assert!(matches!(ca.issue_client("bob", &strings(&["ops", ""]), DAY), Err(PkiError::InvalidName { .. })));
}

#[test]
fn issued_certificates_never_outlive_the_ca() {
    let ca = Ca::generate("short-lived-ca", DAY).expect("generate");
    let issued = ca.issue_client("alice", &[], 365 * DAY).expect("issue");
    let ca_not_after = parse(&der(ca.cert_pem())).validity().not_after.to_datetime();
    assert_eq!(issued.not_after().expect("not_after"), SystemTime::from(ca_not_after));
}

#[test]
fn issued_save_overwrites_with_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs_dir = dir.path().join("certs");
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let first = ca.issue_client("alice", &[], DAY).expect("issue");
    let second = ca.issue_client("alice", &[], DAY).expect("issue");
    first.save(&certs_dir, "alice").expect("save creates the directory");
    second.save(&certs_dir, "alice").expect("save overwrites");
    let (crt, key) = (certs_dir.join("alice.crt"), certs_dir.join("alice.key"));
    assert_eq!(std::fs::read_to_string(&crt).expect("read"), second.cert_pem);
    assert_eq!(std::fs::read_to_string(&key).expect("read"), second.key_pem);
    assert_eq!(mode(&crt), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(std::fs::read_dir(&certs_dir).expect("read_dir").count(), 2, "no temporary files left");
    assert!(matches!(second.save(&certs_dir, "../escape"), Err(PkiError::InvalidFileName { .. })));
}

#[test]
fn debug_does_not_show_the_key() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let shown = format!("{ca:?}");
    assert!(shown.contains("CN=flotilla-ca"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn a_signing_request_gets_the_callers_subject_on_the_requesters_key() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    // The request asks for system:masters; the CA names whom the caller says.
    let (request, key_pem) = crate::signing_request("system:masters").expect("request");
    let groups = strings(&["system:nodes"]);
    let cert_pem = ca.sign_client_request(&request, "system:node:n1", &groups, DAY).expect("sign");
    let id: CertIdentity = cert_identity(&der(&cert_pem)).expect("identity");
    assert_eq!(id.user, "system:node:n1");
    assert_eq!(id.groups, groups);
    // The certificate carries the requester's key: it pairs with the key the requester kept.
    crate::check_client_pair(ca.cert_pem(), &cert_pem, &key_pem).expect("certificate and key pair up");
    let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key").serialize_pem();
    assert!(crate::check_client_pair(ca.cert_pem(), &cert_pem, &other).is_err(), "another key pairs up");
    let stranger = Ca::generate("another-ca", DAY).expect("generate");
    assert!(crate::check_client_pair(stranger.cert_pem(), &cert_pem, &key_pem).is_err(), "another CA's");
}

#[test]
fn a_tampered_or_malformed_signing_request_is_refused() {
    let ca = Ca::generate("flotilla-ca", DAY).expect("generate");
    let (request, _) = crate::signing_request("n1").expect("request");
    let mut body = pem::parse(&request).expect("PEM").into_contents();
    let at = body.len() - 10;
    body[at] ^= 0xff; // inside the signature
    let tampered = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", body));
    assert!(matches!(ca.sign_client_request(&tampered, "u", &[], DAY), Err(PkiError::Pem { .. })));
    assert!(matches!(ca.sign_client_request("not pem", "u", &[], DAY), Err(PkiError::Pem { .. })));
    assert!(ca.sign_client_request(&request, "", &[], DAY).is_err(), "an empty user");
}
