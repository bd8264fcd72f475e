use super::*;
use crate::{Ca, Issued};

const DAY: Duration = Duration::from_secs(86_400);

fn issue(ca: &Ca, name: &str) -> Issued {
    ca.issue_server(name, &[], &["127.0.0.1".to_string()], DAY).expect("issue")
}

/// Mark both files of `name` in `dir` as modified `secs` seconds from now, so a rewrite is
/// seen as a change whatever the file system's timestamp granularity.
fn touch(dir: &std::path::Path, name: &str, secs: u64) {
    for ext in ["crt", "key"] {
        let file = std::fs::File::options().write(true).open(dir.join(format!("{name}.{ext}"))).expect("open");
        file.set_modified(SystemTime::now() + Duration::from_secs(secs)).expect("set mtime");
    }
}

/// The DER of the leaf `files` presents now.
fn presented(files: &CertFiles) -> Vec<u8> {
    files.current().cert[0].as_ref().to_vec()
}

fn der(issued: &Issued) -> Vec<u8> {
    encoding::certificates(&issued.cert_pem, "test").expect("pem")[0].as_ref().to_vec()
}

#[test]
fn a_renewed_pair_is_presented_once_the_check_interval_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("ca", DAY).expect("CA");
    let (old, new) = (issue(&ca, "old"), issue(&ca, "new"));
    old.save(dir.path(), "server").expect("save");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let files = CertFiles::load(&cert, &key).expect("load");
    assert_eq!(presented(&files), der(&old));

    new.save(dir.path(), "server").expect("renew");
    touch(dir.path(), "server", 1);
    assert_eq!(presented(&files), der(&old), "not looked at before the interval");
    files.expire_check();
    assert_eq!(presented(&files), der(&new), "the renewed pair");
}

#[test]
fn a_pair_that_does_not_load_keeps_the_previous_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("ca", DAY).expect("CA");
    let (first, second) = (issue(&ca, "first"), issue(&ca, "second"));
    first.save(dir.path(), "server").expect("save");
    let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let files = CertFiles::load(&cert, &key).expect("load");

    // Half a renewal: the new certificate with the old key.
    std::fs::write(&cert, &second.cert_pem).expect("write");
    touch(dir.path(), "server", 1);
    files.expire_check();
    assert_eq!(presented(&files), der(&first), "mismatched pair refused");
    std::fs::write(&cert, "garbage").expect("write");
    touch(dir.path(), "server", 2);
    files.expire_check();
    assert_eq!(presented(&files), der(&first), "garbage refused");

    // The renewal completes.
    second.save(dir.path(), "server").expect("save");
    touch(dir.path(), "server", 3);
    files.expire_check();
    assert_eq!(presented(&files), der(&second));
}

#[test]
fn loading_checks_the_pair_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::generate("ca", DAY).expect("CA");
    let (a, b) = (issue(&ca, "a"), issue(&ca, "b"));
    std::fs::write(dir.path().join("a.crt"), &a.cert_pem).expect("write");
    std::fs::write(dir.path().join("b.key"), &b.key_pem).expect("write");
    assert!(CertFiles::load(&dir.path().join("a.crt"), &dir.path().join("b.key")).is_err());
    assert!(CertFiles::load(&dir.path().join("missing.crt"), &dir.path().join("b.key")).is_err());
}
