//! The real `etcdctl` (Debian's etcd-client, v3.4) against the served API. Skipped, with a
//! note, where etcdctl is not installed.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::support::{within, Solo};

const ETCDCTL: &str = "/usr/bin/etcdctl";

/// Run etcdctl with `args` (and `stdin`), returning stdout; fails the test on a non-zero exit.
async fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> String {
    run(endpoint, args, stdin).await.0
}

/// Run etcdctl, returning (stdout, stderr); fails the test on a non-zero exit.
async fn run(endpoint: &str, args: &[&str], stdin: Option<&str>) -> (String, String) {
    let mut cmd = Command::new(ETCDCTL);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--command-timeout=15s")
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn etcdctl");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes()).await.expect("write etcdctl stdin");
    }
    let out = within("etcdctl", child.wait_with_output()).await.expect("etcdctl output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "etcdctl {args:?} failed: {stdout}{stderr}");
    (stdout, stderr)
}

#[tokio::test]
async fn etcdctl_put_get_txn_lease_status_snapshot() {
    if !Path::new(ETCDCTL).exists() {
        eprintln!("note: {ETCDCTL} not installed; skipping the etcdctl test");
        return;
    }
    let solo = Solo::start().await;
    let ep = solo.endpoint.as_str();

    assert_eq!(etcdctl(ep, &["put", "/app/a", "1"], None).await, "OK\n");
    assert_eq!(etcdctl(ep, &["put", "/app/b", "2"], None).await, "OK\n");
    assert_eq!(etcdctl(ep, &["get", "--prefix", "/app/"], None).await, "/app/a\n1\n/app/b\n2\n");

    let txn = "value(\"/app/a\") = \"1\"\n\nput /app/a 10\n\nget /app/a\n\n";
    let out = etcdctl(ep, &["txn", "-i"], Some(txn)).await;
    assert!(out.ends_with("SUCCESS\n\nOK\n"), "txn output: {out:?}");
    let out = etcdctl(ep, &["txn", "-i"], Some(txn)).await;
    assert!(out.ends_with("FAILURE\n\n/app/a\n10\n"), "txn output: {out:?}");

    let out = etcdctl(ep, &["lease", "grant", "60"], None).await;
    let id = out
        .strip_prefix("lease ")
        .and_then(|rest| rest.strip_suffix(" granted with TTL(60s)\n"))
        .unwrap_or_else(|| panic!("lease grant output: {out:?}"));
    assert_eq!(etcdctl(ep, &["put", "--lease", id, "/app/leased", "x"], None).await, "OK\n");
    let out = etcdctl(ep, &["lease", "keep-alive", "--once", id], None).await;
    assert_eq!(out, format!("lease {id} keepalived with TTL(60)\n"));
    let out = etcdctl(ep, &["lease", "timetolive", "--keys", id], None).await;
    assert!(out.contains("granted with TTL(60s)") && out.contains("attached keys([/app/leased])"), "{out:?}");
    assert_eq!(etcdctl(ep, &["lease", "revoke", id], None).await, format!("lease {id} revoked\n"));
    assert_eq!(etcdctl(ep, &["get", "/app/leased"], None).await, "");

    assert_eq!(etcdctl(ep, &["del", "--prefix", "/app/"], None).await, "2\n");
    let rev = solo.node.current_revision().to_string();
    assert_eq!(etcdctl(ep, &["compaction", &rev], None).await, format!("compacted revision {rev}\n"));

    // etcdctl 3.4 dials a fresh connection per endpoint for `endpoint status` and sends the
    // endpoint verbatim as the HTTP/2 :authority; hyper refuses "http://host:port" there as
    // malformed, so this command needs a scheme-less endpoint (see the etcd module docs).
    let bare = ep.strip_prefix("http://").expect("http endpoint");
    let out = etcdctl(bare, &["endpoint", "status", "-w", "json"], None).await;
    let member_id = solo.node.id().to_string();
    assert!(out.contains(&format!("\"member_id\":{member_id}")), "status: {out}");
    assert!(out.contains(&format!("\"leader\":{member_id}")), "status: {out}");
    assert!(out.contains("\"version\":\"3.4.0\""), "status: {out}");
    // etcdctl 3.4 prints health to stderr.
    let (_, err) = run(ep, &["endpoint", "health"], None).await;
    assert!(err.contains("is healthy"), "health: {err}");
    let out = etcdctl(ep, &["member", "list"], None).await;
    assert!(out.contains(", started, solo, http://127.0.0.1:"), "member list: {out}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("backup.db");
    let out = etcdctl(ep, &["snapshot", "save", file.to_str().expect("utf-8 path")], None).await;
    assert!(out.contains("Snapshot saved at"), "snapshot save: {out}");
    let saved = std::fs::metadata(&file).expect("snapshot file").len();
    assert_eq!(saved % 512, 32);
    solo.stop().await;
}

#[tokio::test]
async fn etcdctl_watch_sees_history_then_live_events() {
    if !Path::new(ETCDCTL).exists() {
        eprintln!("note: {ETCDCTL} not installed; skipping the etcdctl test");
        return;
    }
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let start = c.put("/w/a", "1", None).await.unwrap().header().unwrap().revision();
    c.delete("/w/a", None).await.unwrap();

    let mut child = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", solo.endpoint))
        .args(["watch", "--prefix", "--prev-kv", &format!("--rev={start}"), "/w/"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn etcdctl watch");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let mut seen = Vec::new();
    // etcdctl prints each event's type, then prev_kv (if any), then kv.
    let want = ["PUT", "/w/a", "1", "DELETE", "/w/a", "1", "/w/a", "", "PUT", "/w/b", "2"];
    let mut live_written = false;
    while seen.len() < want.len() {
        let line = within("etcdctl watch output", lines.next_line()).await.expect("read").expect("watch ended");
        seen.push(line);
        if seen.len() == 8 && !live_written {
            // History is through; this one arrives live.
            c.put("/w/b", "2", None).await.unwrap();
            live_written = true;
        }
    }
    assert_eq!(seen, want);
    child.kill().await.expect("stop etcdctl watch");
    solo.stop().await;
}
