//! Membership through the real etcdctl and `flotilla member`: add a learner, start it as a
//! real process, promote it, remove it. Also the operator's views of a cluster: `flotilla
//! status` and JSON logs.

use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_tests::{
    etcdctl, etcdctl_ok, flotilla_bin, flotilla_status, free_port, require_etcdctl, wait_for, UpCluster,
};

#[test]
fn learner_add_start_promote_remove() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    etcdctl_ok(&ep, &["put", "before", "join"]);
    let peer = format!("http://127.0.0.1:{}", free_port());
    let client = format!("http://127.0.0.1:{}", free_port());
    let added = etcdctl_ok(&ep, &["member", "add", "r4", "--learner", &format!("--peer-urls={peer}")]);
    let id = added.split_whitespace().nth(1).expect("Member <id> added").to_string();
    assert!(added.contains("added to cluster"), "{added}");
    let list = etcdctl_ok(&ep, &["member", "list"]);
    assert!(list.contains(&format!("{id}, unstarted, , {peer}, , true")), "{list}");

    // Promoting a learner that has not started is refused.
    let early = etcdctl(&ep, &["member", "promote", &id], None).expect("promote");
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("in sync with leader"),
        "{}",
        String::from_utf8_lossy(&early.stderr)
    );

    let token =
        c.replicas[0].argv.iter().skip_while(|a| *a != "--initial-cluster-token").nth(1).expect("token").clone();
    let mut cluster: Vec<String> = c.replicas.iter().map(|r| format!("{}={}", r.name, r.peer_url)).collect();
    cluster.push(format!("r4={peer}"));
    let data = c.dir.path().join("r4");
    let log = std::fs::File::create(c.dir.path().join("r4.log")).expect("log");
    let mut r4 = Command::new(flotilla_bin())
        .args(["server", "--name", "r4", "--data-dir"])
        .arg(&data)
        .args(["--listen-client-urls", &client, "--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "existing"])
        .args(["--initial-cluster-token", &token, "--insecure-plaintext"])
        .args(["--listen-api-url", &format!("http://127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start r4");
    wait_for(Duration::from_secs(30), "r4 replicates and publishes its name", || {
        let got = etcdctl(&client, &["get", "--consistency=s", "before"], None).ok()?;
        let list = etcdctl(&ep, &["member", "list"], None).ok()?;
        let named =
            String::from_utf8_lossy(&list.stdout).contains(&format!("{id}, started, r4, {peer}, {client}, true"));
        (String::from_utf8_lossy(&got.stdout) == "before\njoin\n" && named).then_some(())
    });
    let promoted = wait_for(Duration::from_secs(20), "promote succeeds", || {
        etcdctl(&ep, &["member", "promote", &id], None).ok().filter(|o| o.status.success())
    });
    assert!(
        String::from_utf8_lossy(&promoted.stdout).contains("promoted"),
        "{}",
        String::from_utf8_lossy(&promoted.stdout)
    );
    assert!(etcdctl_ok(&ep, &["member", "list"]).contains(&format!("{id}, started, r4, {peer}, {client}, false")));

    // `flotilla member` sees the same and removes it.
    let out = Command::new(flotilla_bin())
        .args(["member", "--endpoints", &ep, "list"])
        .output()
        .expect("flotilla member list");
    assert!(String::from_utf8_lossy(&out.stdout).contains("r4"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = Command::new(flotilla_bin())
        .args(["member", "--endpoints", &ep, "remove", &id])
        .output()
        .expect("flotilla member remove");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(etcdctl_ok(&ep, &["member", "list"]).lines().count(), 3);
    let missing = etcdctl(&ep, &["member", "remove", &id], None).expect("remove again");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("member not found"));
    let _ = r4.kill();
    let _ = r4.wait();
}

/// `flotilla status -o json` against the replicas; it must print a report.
fn status(endpoints: &str) -> (i32, serde_json::Value) {
    flotilla_status(endpoints).expect("flotilla status prints a JSON report")
}

#[test]
fn status_names_the_leader_and_a_member_that_is_down() {
    let mut c = UpCluster::start(3).expect("cluster");
    let (code, report) = status(&c.endpoints());
    assert_eq!(code, 0, "{report}");
    let members = report["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{report}");
    let leaders: Vec<&serde_json::Value> = members.iter().filter(|m| m["leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {report}");
    assert_eq!(report["leader"], leaders[0]["name"]);
    assert!(members.iter().all(|m| m["reachable"] == true && m["term"] == report["term"]), "{report}");
    assert!(members.iter().all(|m| m["db_size_bytes"].as_i64() > Some(0) && m["lag"].as_u64().is_some()), "{report}");
    let term = report["term"].as_u64().expect("a term");

    // The leader dies: the others elect a new one in a later term and report it down.
    let old = c.leader();
    let old_name = c.replicas[old].name.clone();
    c.kill9(old);
    let report = wait_for(Duration::from_secs(30), "a new leader in the report", || {
        let (code, report) = status(&c.endpoints());
        (code == 0 && report["leader"] != old_name).then_some(report)
    });
    let down: Vec<&serde_json::Value> =
        report["members"].as_array().unwrap().iter().filter(|m| m["reachable"] == false).collect();
    assert_eq!(down.len(), 1, "{report}");
    assert_eq!(down[0]["name"], old_name.as_str());
    assert!(down[0]["error"].as_str().is_some_and(|e| !e.is_empty()), "{report}");
    assert!(report["term"].as_u64() > Some(term), "{report}");
    c.restart(old).expect("restart");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (client, peer, api) = (free_port(), free_port(), free_port());
    let mut server = Command::new(flotilla_bin())
        .args(["--log-format", "json", "server", "--name", "solo", "--data-dir"])
        .arg(dir.path().join("solo"))
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args(["--listen-api-url", &format!("http://127.0.0.1:{api}"), "--insecure-plaintext"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a server");
    let stderr = server.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let parsed: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(parsed["timestamp"].is_string() && parsed["level"].is_string(), "{parsed}");
        seen.push(parsed["fields"]["message"].as_str().unwrap_or_default().to_string());
        if seen.iter().any(|m| m == "kubernetes API listening") {
            break;
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(seen.iter().any(|m| m == "kubernetes API listening"), "{seen:?}");
}
