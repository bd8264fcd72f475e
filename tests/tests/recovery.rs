//! Backup and recovery with the real binary: `flotilla snapshot save` from a running
//! cluster, `snapshot restore` into a brand-new cluster with the same objects and revisions
//! (and scheduled snapshots there); a dead replica replaced by a fresh one started with
//! `--join` (learner, promoted by itself); and `--force-new-cluster` on the last survivor of
//! a lost majority.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{etcdctl, etcdctl_ok, eventually, flotilla_bin, free_port, require_etcdctl, wait_for, UpCluster};

fn flotilla(args: &[&str]) -> Output {
    Command::new(flotilla_bin()).args(args).output().expect("flotilla runs")
}

fn flotilla_ok(args: &[&str]) -> String {
    let out = flotilla(args);
    assert!(out.status.success(), "flotilla {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `flotilla server` this test started; killed on drop.
struct Server {
    child: Child,
    client: String,
    api: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a member listens: fresh loopback ports.
struct Ports {
    name: String,
    peer: String,
    client: String,
    api: String,
}

impl Ports {
    fn fresh(name: &str) -> Self {
        let url = |p: u16| format!("http://127.0.0.1:{p}");
        Self { name: name.into(), peer: url(free_port()), client: url(free_port()), api: url(free_port()) }
    }

    fn start(&self, data: &Path, log: &Path, extra: &[&str]) -> Server {
        let child = Command::new(flotilla_bin())
            .args(["server", "--name", &self.name, "--data-dir"])
            .arg(data)
            .args(["--listen-client-urls", &self.client, "--listen-peer-urls", &self.peer])
            .args(["--listen-api-url", &self.api, "--insecure-plaintext"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("start flotilla server");
        Server { child, client: self.client.clone(), api: self.api.clone() }
    }
}

/// Members as `etcdctl member list` prints them: id → (name, is_learner).
fn members(endpoints: &str) -> BTreeMap<String, (String, bool)> {
    etcdctl_ok(endpoints, &["member", "list"])
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            (f[0].to_string(), (f[2].to_string(), f[5] == "true"))
        })
        .collect()
}

/// name → (resourceVersion, data) of the ConfigMaps in `ns`.
fn config_maps(k: &Kubectl, ns: &str) -> BTreeMap<String, (String, String)> {
    let out = k.ok(&["-n", ns, "get", "configmaps", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&out).expect("json");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|cm| cm["metadata"]["name"] != "kube-root-ca.crt")
        .map(|cm| {
            let meta = &cm["metadata"];
            (meta["name"].as_str().unwrap().to_string(), (meta["resourceVersion"].to_string(), cm["data"].to_string()))
        })
        .collect()
}

/// [`wait_for`], but a timeout shows the tail of the server log `log`.
fn wait_logged(limit: Duration, what: &str, log: &Path, probe: impl FnMut() -> bool) {
    if !eventually(limit, probe) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("timed out waiting for {what}; {} says:\n{}", log.display(), tail.join("\n"));
    }
}

fn snapshot_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "snap"));
    files.sort();
    files
}

#[test]
fn a_snapshot_restored_into_a_new_cluster_has_the_same_objects_and_revisions() {
    require_etcdctl();
    let old = UpCluster::start(3).expect("cluster");
    let k = Kubectl::new(&old.replicas[0].api_url);
    k.ok(&["create", "namespace", "backup"]);
    for i in 0..5 {
        k.ok(&["-n", "backup", "create", "configmap", &format!("cm{i}"), &format!("--from-literal=n={i}")]);
    }
    k.ok(&["-n", "backup", "create", "configmap", "cm0-edited", "--from-literal=v=1"]);
    k.ok(&["-n", "backup", "patch", "configmap", "cm0-edited", "-p", r#"{"data":{"v":"2"}}"#]);
    let before = config_maps(&k, "backup");
    assert_eq!(before.len(), 6);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("backup.snap");
    let saved = flotilla_ok(&["snapshot", "save", file.to_str().unwrap(), "--endpoints", &old.endpoints()]);
    assert!(saved.contains("Snapshot saved at"), "{saved}");
    // etcdctl's own `snapshot save` accepts the stream too, and its file is a valid snapshot.
    let etcdctl_file = work.path().join("etcdctl.snap");
    etcdctl_ok(&old.replicas[1].client_url, &["snapshot", "save", etcdctl_file.to_str().unwrap()]);
    let status = flotilla_ok(&["snapshot", "status", etcdctl_file.to_str().unwrap()]);
    assert!(status.contains("revision: ") && status.contains("members when saved: "), "{status}");
    let revision_saved = etcdctl_ok(&old.endpoints(), &["get", "x", "-w", "json"]);
    drop(old);

    // A damaged file is refused.
    let mut damaged = std::fs::read(&file).unwrap();
    damaged[600] ^= 0xff;
    std::fs::write(work.path().join("damaged.snap"), damaged).unwrap();
    let bad = flotilla(&["snapshot", "status", work.path().join("damaged.snap").to_str().unwrap()]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("digest"));

    let ports: Vec<Ports> = ["a", "b", "c"].iter().map(|n| Ports::fresh(n)).collect();
    let cluster: Vec<String> = ports.iter().map(|p| format!("{}={}", p.name, p.peer)).collect();
    let cluster = cluster.join(",");
    let mut servers = Vec::new();
    for p in &ports {
        let data = work.path().join(&p.name);
        let restored = flotilla_ok(&[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--name",
            &p.name,
            "--initial-cluster",
            &cluster,
        ]);
        assert!(restored.contains("Restored revision"), "{restored}");
        let extra: &[&str] = if p.name == "a" { &["--snapshot-interval", "1s", "--snapshot-retain", "2"] } else { &[] };
        let mut args = vec!["--initial-cluster", cluster.as_str()];
        args.extend_from_slice(extra);
        servers.push(p.start(&data, &work.path().join(format!("{}.log", p.name)), &args));
    }
    let endpoints: Vec<&str> = servers.iter().map(|s| s.client.as_str()).collect();
    let endpoints = endpoints.join(",");
    let k = Kubectl::new(&servers[1].api);
    let after = wait_for(Duration::from_secs(60), "the restored cluster to serve the objects", || {
        let out = k.run(&["-n", "backup", "get", "configmaps", "-o", "name"], None);
        out.status.success().then(|| config_maps(&k, "backup"))
    });
    assert_eq!(after, before, "the same ConfigMaps, data and resourceVersions");
    let mut names: Vec<String> = members(&endpoints).into_values().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"], "the new cluster's members only");
    // New writes continue the backup's revisions.
    let header = |out: String| serde_json::from_str::<serde_json::Value>(&out).unwrap()["header"]["revision"].as_i64();
    let saved_rev = header(revision_saved).expect("revision");
    k.ok(&["-n", "backup", "create", "configmap", "after-restore"]);
    let now = header(etcdctl_ok(&endpoints, &["get", "x", "-w", "json"])).expect("revision");
    assert!(now > saved_rev, "revision {now} continues after the backup's {saved_rev}");

    // Member `a` saves a snapshot every second and keeps two.
    let dir = work.path().join("a").join("snapshots");
    wait_for(Duration::from_secs(30), "two scheduled snapshots", || (snapshot_files(&dir).len() == 2).then_some(()));
    let first = snapshot_files(&dir);
    wait_for(Duration::from_secs(30), "a newer scheduled snapshot", || {
        let now = snapshot_files(&dir);
        (now.len() == 2 && now.last() != first.last()).then_some(())
    });
    let newest = snapshot_files(&dir).pop().unwrap();
    let status = flotilla_ok(&["snapshot", "status", newest.to_str().unwrap()]);
    assert!(status.contains("members when saved: a,b,c"), "{status}");
    let keys: usize = status.lines().find_map(|l| l.strip_prefix("keys: ")).unwrap().parse().unwrap();
    assert!(keys > 6, "{status}");
}

#[test]
fn a_dead_replica_is_replaced_by_a_fresh_one_that_joins_and_is_promoted() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    etcdctl_ok(&ep, &["put", "before", "replacement"]);
    let dead = (c.leader() + 1) % 3;
    c.kill9(dead);
    let dead_id = members(&ep).into_iter().find(|(_, (n, _))| *n == c.replicas[dead].name).expect("listed").0;
    let live: Vec<&str> = (0..3).filter(|i| *i != dead).map(|i| c.replicas[i].client_url.as_str()).collect::<Vec<_>>();
    let live = live.join(",");
    flotilla_ok(&["member", "--endpoints", &live, "remove", &dead_id]);

    let token =
        c.replicas[0].argv.iter().skip_while(|a| *a != "--initial-cluster-token").nth(1).expect("token").clone();
    let fresh = Ports::fresh("replacement");
    let log = c.dir.path().join("replacement.log");
    let _server =
        fresh.start(&c.dir.path().join("replacement"), &log, &["--join", &live, "--initial-cluster-token", &token]);
    let all = format!("{live},{}", fresh.client);
    wait_logged(Duration::from_secs(60), "the replacement to be promoted to a voter", &log, || {
        let m = members(&live);
        m.values().any(|(n, learner)| n == "replacement" && !learner)
    });
    assert_eq!(members(&all).len(), 3);
    let got = etcdctl_ok(&fresh.client, &["get", "--consistency=s", "before"]);
    assert_eq!(got, "before\nreplacement\n");
    etcdctl_ok(&all, &["put", "after", "replacement"]);
    // A replica whose peer URL an existing started member already has is refused clearly.
    let again = Command::new(flotilla_bin())
        .args(["server", "--name", "dup", "--data-dir"])
        .arg(c.dir.path().join("dup"))
        .args(["--listen-peer-urls", &fresh.peer, "--listen-client-urls", &format!("http://127.0.0.1:{}", free_port())])
        .args(["--listen-api-url", "", "--join", &live, "--initial-cluster-token", &token, "--insecure-plaintext"])
        .output()
        .expect("run");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already has peer URL"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn force_new_cluster_brings_back_a_survivor_of_a_lost_majority() {
    require_etcdctl();
    let mut c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    for i in 0..10 {
        etcdctl_ok(&ep, &["put", &format!("k{i}"), "v"]);
    }
    let survivor = c.leader();
    let lost: Vec<usize> = (0..3).filter(|i| *i != survivor).collect();
    for i in &lost {
        c.kill9(*i);
    }
    let alone = c.replicas[survivor].client_url.clone();
    let refused = etcdctl(&alone, &["--command-timeout=3s", "put", "k", "v"], None).expect("etcdctl");
    assert!(!refused.status.success(), "no quorum, no write");
    c.kill9(survivor);
    // Restart once the killed process has let go of its ports.
    let r = &c.replicas[survivor];
    let addrs: Vec<String> =
        [&r.client_url, &r.peer_url, &r.api_url].iter().map(|u| u.trim_start_matches("http://").to_string()).collect();
    wait_for(Duration::from_secs(10), "the survivor's ports to be free", || {
        addrs.iter().all(|a| std::net::TcpListener::bind(a.as_str()).is_ok()).then_some(())
    });
    let mut argv = c.replicas[survivor].argv.clone();
    argv.push("--force-new-cluster".into());
    c.replicas[survivor].argv = argv;
    c.restart(survivor).expect("restart with --force-new-cluster");
    wait_for(Duration::from_secs(30), "the survivor to take writes alone", || {
        etcdctl(&alone, &["put", "after", "force"], None).ok().filter(|o| o.status.success())
    });
    let m = members(&alone);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(etcdctl_ok(&alone, &["get", "k9", "--print-value-only"]), "v\n");

    // The cluster grows again: a fresh replica joins and is promoted.
    let token =
        c.replicas[0].argv.iter().skip_while(|a| *a != "--initial-cluster-token").nth(1).expect("token").clone();
    let fresh = Ports::fresh("regrown");
    let _server = fresh.start(
        &c.dir.path().join("regrown"),
        &c.dir.path().join("regrown.log"),
        &["--join", &alone, "--initial-cluster-token", &token],
    );
    wait_for(Duration::from_secs(60), "the new member to be a voter", || {
        members(&alone).values().any(|(n, learner)| n == "regrown" && !learner).then_some(())
    });
    etcdctl_ok(&format!("{alone},{}", fresh.client), &["put", "two", "voters"]);
}
