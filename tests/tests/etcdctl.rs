//! `flotilla up` driven by the real etcdctl 3.4: every command the store promises to serve.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_tests::{etcdctl, etcdctl_ok, require_etcdctl, UpCluster};

#[test]
fn kv_commands() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    assert_eq!(etcdctl_ok(&ep, &["put", "fruit/apple", "red"]), "OK\n");
    etcdctl_ok(&ep, &["put", "fruit/banana", "yellow"]);
    etcdctl_ok(&ep, &["put", "fruit/cherry", "dark"]);
    let first_rev = status_revision(&ep);
    etcdctl_ok(&ep, &["put", "fruit/cherry", "red"]);
    assert_eq!(etcdctl_ok(&ep, &["get", "fruit/apple"]), "fruit/apple\nred\n");
    assert_eq!(
        etcdctl_ok(&ep, &["get", "--prefix", "fruit/"]),
        "fruit/apple\nred\nfruit/banana\nyellow\nfruit/cherry\nred\n"
    );
    assert_eq!(etcdctl_ok(&ep, &["get", "--rev", &first_rev.to_string(), "fruit/cherry"]), "fruit/cherry\ndark\n");
    assert_eq!(
        etcdctl_ok(&ep, &["get", "--prefix", "--limit", "2", "--keys-only", "fruit/"]),
        "fruit/apple\n\nfruit/banana\n\n"
    );
    // etcdctl 3.4.23 has no --count-only flag; the server's count_only is covered by the
    // store's etcd_api tests. The count of a JSON get is the total in range.
    let count = etcdctl_ok(&ep, &["get", "--prefix", "--limit", "1", "-w", "json", "fruit/"]);
    assert!(count.contains("\"count\":3") && count.contains("\"more\":true"), "count: {count}");
    assert_eq!(etcdctl_ok(&ep, &["get", "--consistency=s", "fruit/banana"]), "fruit/banana\nyellow\n");
    assert_eq!(etcdctl_ok(&ep, &["del", "--prev-kv", "fruit/banana"]), "1\nfruit/banana\nyellow\n");
    assert_eq!(etcdctl_ok(&ep, &["del", "--prefix", "fruit/"]), "2\n");
    assert_eq!(etcdctl_ok(&ep, &["get", "--prefix", "fruit/"]), "");

    // txn -i: compares, then success and failure branches, separated by blank lines.
    etcdctl_ok(&ep, &["put", "k", "v1"]);
    let out = etcdctl(&ep, &["txn", "-i"], Some("value(\"k\") = \"v1\"\n\nput k v2\n\nput k never\n\n")).expect("txn");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Interactive mode echoes its prompts to stdout before the result.
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("SUCCESS\n\nOK\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = etcdctl(&ep, &["txn", "-i"], Some("value(\"k\") = \"v1\"\n\nput k v3\n\nget k\n\n")).expect("txn");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("FAILURE\n\nk\nv2\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Compaction, then a read below it fails with etcd's message.
    let rev = status_revision(&ep);
    etcdctl_ok(&ep, &["compaction", &rev.to_string()]);
    let out = etcdctl(&ep, &["get", "--rev", "2", "k"], None).expect("get");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("required revision has been compacted"));
}

#[test]
fn watch_sees_history_and_live_events() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    etcdctl_ok(&ep, &["put", "w/a", "1"]);
    let start = status_revision(&ep);
    etcdctl_ok(&ep, &["put", "w/a", "2"]);
    etcdctl_ok(&ep, &["del", "w/a"]);
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([&format!("--endpoints={ep}"), "watch", "--prefix", "w/", "--prev-kv", "--rev", &start.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl watch");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    etcdctl_ok(&ep, &["put", "w/b", "live"]);
    // etcdctl prints the type, then prev_kv (when present), then the kv.
    let want =
        ["PUT", "w/a", "1", "PUT", "w/a", "1", "w/a", "2", "DELETE", "w/a", "2", "w/a", "", "PUT", "w/b", "live"];
    let mut got = Vec::new();
    while got.len() < want.len() {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got, want);
}

#[test]
fn leases() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    let granted = etcdctl_ok(&ep, &["lease", "grant", "30"]);
    let id = granted.split_whitespace().nth(1).expect("lease <id> granted with TTL(30s)").to_string();
    assert!(granted.ends_with("granted with TTL(30s)\n"), "{granted}");
    etcdctl_ok(&ep, &["put", "--lease", &id, "leased", "v"]);
    let ttl = etcdctl_ok(&ep, &["lease", "timetolive", "--keys", &id]);
    assert!(ttl.contains("granted with TTL(30s)") && ttl.contains("attached keys([leased])"), "{ttl}");
    let alive = etcdctl_ok(&ep, &["lease", "keep-alive", "--once", &id]);
    assert!(alive.contains(&format!("lease {id} keepalived with TTL(30)")), "{alive}");
    assert!(etcdctl_ok(&ep, &["lease", "list"]).contains(&id));
    assert_eq!(etcdctl_ok(&ep, &["lease", "revoke", &id]), format!("lease {id} revoked\n"));
    assert_eq!(etcdctl_ok(&ep, &["get", "leased"]), "");
    let gone = etcdctl_ok(&ep, &["lease", "timetolive", &id]);
    assert!(gone.contains("already expired"), "{gone}");
    let out = etcdctl(&ep, &["put", "--lease", &id, "x", "y"], None).expect("put");
    assert!(String::from_utf8_lossy(&out.stderr).contains("requested lease not found"));
}

#[test]
fn endpoints_and_snapshot() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    etcdctl_ok(&ep, &["put", "snap", "shot"]);
    // etcdctl 3.4 prints health to stderr.
    let health = etcdctl(&ep, &["endpoint", "health"], None).expect("health");
    assert!(health.status.success());
    let health = String::from_utf8_lossy(&health.stderr);
    assert_eq!(health.matches("is healthy").count(), 3, "{health}");
    let status: serde_json::Value = serde_json::from_str(&etcdctl_ok(
        &c.replicas[0].client_url,
        &["endpoint", "status", "--cluster", "-w", "json"],
    ))
    .expect("json");
    let all = status.as_array().expect("array");
    assert_eq!(all.len(), 3);
    let leaders: Vec<u64> = all.iter().map(|s| s["Status"]["leader"].as_u64().expect("leader")).collect();
    assert!(leaders.iter().all(|l| *l == leaders[0] && *l != 0), "{leaders:?}");
    assert_eq!(all.iter().filter(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"]).count(), 1);
    let file = c.dir.path().join("backup.db");
    let out = etcdctl_ok(&c.replicas[0].client_url, &["snapshot", "save", file.to_str().expect("utf8")]);
    assert!(out.contains("Snapshot saved at"), "{out}");
    assert!(std::fs::metadata(&file).expect("snapshot file").len() > 0);
    let members = etcdctl_ok(&ep, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(members.contains("started, r1,") && members.contains("false"), "{members}");
}

fn status_revision(ep: &str) -> i64 {
    let first = ep.split(',').next().expect("endpoint");
    let v: serde_json::Value =
        serde_json::from_str(&etcdctl_ok(first, &["endpoint", "status", "-w", "json"])).expect("json");
    v[0]["Status"]["header"]["revision"].as_i64().expect("revision")
}
