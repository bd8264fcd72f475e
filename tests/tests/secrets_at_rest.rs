//! Secrets encrypted at rest (`flotilla server --encryption-key-file`): a Secret's value is
//! nowhere in the data dir's files (Raft log, RocksDB) nor in a snapshot, while a ConfigMap's
//! value written alongside is (so the search can find what is there); kubectl reads the
//! Secret back; a rotated key re-seals it; a replica without the key cannot read it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use flotilla_tests::kube::Kubectl;
use flotilla_tests::solo::Solo;
use flotilla_tests::{etcdctl, flotilla_bin, require_etcdctl, wait_for};

fn key_line(name: &str, byte: u8) -> String {
    format!("{name}={}\n", base64::engine::general_purpose::STANDARD.encode([byte; 32]))
}

/// Whether `needle` occurs in any file under `dir`.
fn found_under(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).expect("read dir").filter_map(Result::ok).any(|e| {
        let p = e.path();
        if p.is_dir() {
            found_under(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}

/// The first bytes of the raw stored value of `key`, as etcdctl prints them.
fn raw_prefix(endpoint: &str, key: &str) -> String {
    let out = etcdctl(endpoint, &["get", key, "--print-value-only"], None).expect("etcdctl");
    String::from_utf8_lossy(&out.stdout).chars().take(40).collect()
}

#[test]
fn secrets_are_sealed_on_disk_and_in_snapshots_and_survive_a_key_rotation() {
    require_etcdctl();
    let work = tempfile::tempdir().expect("tempdir");
    let keys = work.path().join("keys");
    std::fs::write(&keys, key_line("first", 1)).unwrap();
    let mut solo = Solo::new(work.path());
    solo.start(&["--encryption-key-file", keys.to_str().unwrap()]);
    let k = Kubectl::new(&solo.api);
    let secret = format!("hunter2-{}", std::process::id());
    let control = format!("visible-{}", std::process::id());
    k.ok(&["create", "secret", "generic", "s1", &format!("--from-literal=password={secret}")]);
    k.ok(&["create", "configmap", "c1", &format!("--from-literal=note={control}")]);
    let read = k.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"]);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(read.trim()).unwrap(), secret.as_bytes());
    assert!(raw_prefix(&solo.client, "/registry/secrets/default/s1").starts_with("k8s:enc:xchacha20:v1:first:"));

    // Neither the value nor its base64 (as the JSON holds it) is on disk; the ConfigMap's is.
    let encoded = base64::engine::general_purpose::STANDARD.encode(&secret);
    let snapshot = work.path().join("backup.snap");
    let out = Command::new(flotilla_bin())
        .args(["snapshot", "save", snapshot.to_str().unwrap(), "--endpoints", &solo.client])
        .output()
        .expect("snapshot save");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let data = work.path().join("data");
    for (what, place) in [("the data dir", data.as_path()), ("a snapshot", work.path())] {
        assert!(found_under(place, control.as_bytes()), "the control value is in {what}: the search works");
        assert!(!found_under(place, encoded.as_bytes()), "the Secret's value is not in {what}");
        assert!(!found_under(place, secret.as_bytes()), "the Secret's value is not in {what}");
    }

    // Rotation: a new first key; the leader re-seals the Secret with it; the old key goes.
    std::fs::write(&keys, key_line("second", 2) + &key_line("first", 1)).unwrap();
    solo.start(&["--encryption-key-file", keys.to_str().unwrap()]);
    wait_for(Duration::from_secs(30), "the Secret re-sealed with the new key", || {
        raw_prefix(&solo.client, "/registry/secrets/default/s1")
            .starts_with("k8s:enc:xchacha20:v1:second:")
            .then_some(())
    });
    std::fs::write(&keys, key_line("second", 2)).unwrap();
    solo.start(&["--encryption-key-file", keys.to_str().unwrap()]);
    let read = k.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.password}"]);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(read.trim()).unwrap(), secret.as_bytes());

    // Without the key file the replica cannot read it, and says why.
    solo.start(&[]);
    let refused = k.fails(&["get", "secret", "s1"]);
    assert!(refused.contains("encrypted") && refused.contains("--encryption-key-file"), "{refused}");
    k.ok(&["get", "configmap", "c1"]);
}
