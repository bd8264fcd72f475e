//! Membership through the real etcdctl and `flotilla member`: add a learner, start it as a
//! real process, promote it, remove it.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use flotilla_tests::{etcdctl, etcdctl_ok, flotilla_bin, require_etcdctl, wait_for, UpCluster};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port()
}

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
        .args(["--initial-cluster-token", &token])
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
