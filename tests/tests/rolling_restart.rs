//! A rolling restart of a three-replica `flotilla up` cluster, as docs/OPERATIONS.md
//! ("Rolling restart") tells an operator to do it, while a client keeps writing and reading
//! through the etcd API with every endpoint. Also `etcdctl move-leader` itself.
//!
//! What "no request failed" means here: the client is what any etcd client is, one that
//! tries an operation on the next endpoint when an attempt fails. Every operation must
//! succeed within [`ATTEMPTS`] attempts (once around the endpoint list: at most one replica
//! is down at a time, and the leader is never the one stopped), every read must see the
//! write acknowledged just before it, and every acknowledged write must be there at the end.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flotilla_tests::{etcdctl, etcdctl_ok, flotilla_bin, require_etcdctl, wait_for, UpCluster};

/// Attempts per operation: one per endpoint.
const ATTEMPTS: usize = 3;

/// Client threads, each writing its own keys.
const CLIENTS: usize = 3;

/// Per-attempt bounds given to etcdctl: a stopped replica refuses the connection at once;
/// a live one answers well within the command timeout (writes wait out a leadership
/// transfer, a fraction of a second, server-side).
const DIAL_TIMEOUT: &str = "--dial-timeout=1s";
const COMMAND_TIMEOUT: &str = "--command-timeout=5s";

/// What the client saw.
#[derive(Default)]
struct Report {
    /// Acknowledged writes.
    acked: BTreeMap<String, String>,
    /// Operations and the attempts each needed.
    ops: usize,
    retried: usize,
    /// Operations that failed on every attempt, with the last error.
    failed: Vec<String>,
    /// Reads that did not see the write acknowledged just before them.
    stale: Vec<String>,
}

/// One etcdctl call against one endpoint: stdout, or the error.
fn attempt(endpoint: &str, args: &[&str]) -> Result<String, String> {
    let mut all = vec![DIAL_TIMEOUT, COMMAND_TIMEOUT];
    all.extend_from_slice(args);
    match etcdctl(endpoint, &all, None) {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// Try `args` on the endpoints in turn, starting at `first`, at most [`ATTEMPTS`] times.
fn with_retries(endpoints: &[String], first: usize, args: &[&str]) -> (Result<String, String>, usize) {
    let mut last = Err(String::new());
    for n in 0..ATTEMPTS {
        last = attempt(&endpoints[(first + n) % endpoints.len()], args);
        if last.is_ok() {
            return (last, n + 1);
        }
    }
    (last, ATTEMPTS)
}

/// Write a fresh key, then read it back (linearizable), until `stop`; `written` counts the
/// acknowledged writes of every client as they happen.
fn client(id: usize, endpoints: Vec<String>, stop: Arc<AtomicBool>, written: Arc<AtomicUsize>) -> Report {
    let mut r = Report::default();
    let mut n = id;
    while !stop.load(Ordering::SeqCst) {
        let (key, value) = (format!("rr/{id}/{n:05}"), format!("v{n}"));
        let (put, tries) = with_retries(&endpoints, n, &["put", &key, &value]);
        r.ops += 1;
        r.retried += usize::from(tries > 1);
        match put {
            Ok(_) => {
                r.acked.insert(key.clone(), value.clone());
                written.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                r.failed.push(format!("put {key}: {e}"));
                n += 1;
                continue;
            }
        }
        let (get, tries) = with_retries(&endpoints, n + 1, &["get", &key]);
        r.ops += 1;
        r.retried += usize::from(tries > 1);
        match get {
            Ok(out) if out == format!("{key}\n{value}\n") => {}
            Ok(out) => r.stale.push(format!("get {key}: {out:?}")),
            Err(e) => r.failed.push(format!("get {key}: {e}")),
        }
        n += 1;
    }
    r
}

/// Each replica's `endpoint status` as JSON (replicas that do not answer are left out).
fn statuses(c: &UpCluster) -> Vec<serde_json::Value> {
    let out = etcdctl(&c.endpoints(), &["endpoint", "status", "-w", "json"], None).expect("etcdctl runs");
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The member ID of replica `i`, in hex as `member move-leader` takes it.
fn member_id(c: &UpCluster, i: usize) -> String {
    let out = etcdctl_ok(&c.replicas[i].client_url, &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status json");
    format!("{:x}", v[0]["Status"]["header"]["member_id"].as_u64().expect("member_id"))
}

/// SIGTERM replica `i` and wait until the process has exited (it stays a zombie until
/// `flotilla up`, its parent, reaps it; its sockets are closed either way).
fn stop(c: &UpCluster, i: usize) {
    let pid = c.replicas[i].pid;
    // SAFETY: kill(2) on a pid of this test's cluster; no memory effects.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    wait_for(Duration::from_secs(30), "the replica exits after SIGTERM", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name.
        let state = stat.rsplit(") ").next().and_then(|rest| rest.chars().next());
        matches!(state, None | Some('Z') | Some('X')).then_some(())
    });
}

/// Wait until replica `i` knows the leader and has applied everything the leader had
/// appended when this was called.
fn wait_caught_up(c: &UpCluster, i: usize) {
    let endpoint = c.replicas[i].client_url.clone();
    let target = wait_for(Duration::from_secs(30), "the leader's log index", || {
        statuses(c).into_iter().find(|s| s["Status"]["leader"] == s["Status"]["header"]["member_id"])
    })["Status"]["raftIndex"]
        .as_u64()
        .expect("raftIndex");
    wait_for(Duration::from_secs(60), "the restarted replica catches up", || {
        let s = statuses(c).into_iter().find(|s| s["Endpoint"] == endpoint.as_str())?;
        let applied = s["Status"]["raftAppliedIndex"].as_u64()?;
        (s["Status"]["leader"].as_u64()? != 0 && applied >= target).then_some(())
    });
}

#[test]
fn rolling_restart_under_client_load_fails_no_request() {
    require_etcdctl();
    let mut c = UpCluster::start(3).expect("cluster");
    let endpoints: Vec<String> = c.replicas.iter().map(|r| r.client_url.clone()).collect();
    let stop_client = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (endpoints, stop, written) = (endpoints.clone(), stop_client.clone(), written.clone());
            std::thread::spawn(move || client(id, endpoints, stop, written))
        })
        .collect();
    // The load must overlap every step: each waits until the clients have written more
    // since the step before (however fast the restarts are on this machine).
    let writes_since = |mark: usize, what: &str| {
        wait_for(Duration::from_secs(60), what, || (written.load(Ordering::SeqCst) >= mark + 2).then_some(()));
        written.load(Ordering::SeqCst)
    };
    let mut mark = writes_since(0, "the clients writing before the restarts");

    // Followers first, then the leader, after handing leadership to a restarted follower:
    // one leadership change in all, and never an election.
    let leader = c.leader();
    let order: Vec<usize> = (0..c.replicas.len()).filter(|i| *i != leader).chain([leader]).collect();
    let mut took = Vec::new();
    for &i in &order {
        let started = std::time::Instant::now();
        if i == leader {
            let to = order[0];
            let out = Command::new(flotilla_bin())
                .args(["member", "--endpoints", &c.endpoints(), "move-leader", &member_id(&c, to)])
                .output()
                .expect("flotilla member move-leader");
            assert!(out.status.success(), "move-leader: {}", String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains("Leadership transferred"));
            assert_eq!(c.leader(), to, "leadership moved where asked");
            took.push(format!("move-leader {:?}", started.elapsed()));
        }
        stop(&c, i);
        let stopped = std::time::Instant::now();
        c.restart(i).expect("restart the replica");
        wait_caught_up(&c, i);
        took.push(format!("{}: down and catching up {:?}", c.replicas[i].name, stopped.elapsed()));
        mark = writes_since(mark, "the clients writing after the restart");
    }
    stop_client.store(true, Ordering::SeqCst);
    let mut report = Report::default();
    for r in load.into_iter().map(|t| t.join().expect("client thread")) {
        report.acked.extend(r.acked);
        (report.ops, report.retried) = (report.ops + r.ops, report.retried + r.retried);
        report.failed.extend(r.failed);
        report.stale.extend(r.stale);
    }

    eprintln!("rolling restart: {} operations, {} needed another endpoint; {took:?}", report.ops, report.retried);
    assert!(report.failed.is_empty(), "operations failed on every endpoint: {:#?}", report.failed);
    assert!(report.stale.is_empty(), "reads missed an acknowledged write: {:#?}", report.stale);
    assert!(report.acked.len() >= 8, "the clients kept working through the steps: {} writes", report.acked.len());
    // Every acknowledged write survived the three restarts.
    let all = etcdctl_ok(&c.endpoints(), &["get", "--prefix", "rr/"]);
    let seen: BTreeMap<String, String> =
        all.lines().collect::<Vec<_>>().chunks(2).map(|kv| (kv[0].to_string(), kv[1].to_string())).collect();
    for (k, v) in &report.acked {
        assert_eq!(seen.get(k), Some(v), "acknowledged write {k} lost");
    }
}

#[test]
fn etcdctl_move_leader() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let leader = c.leader();
    let to = (leader + 2) % 3;
    // etcdctl finds the leader among the endpoints itself and asks it.
    let bare: Vec<&str> = c.replicas.iter().map(|r| r.client_url.trim_start_matches("http://")).collect();
    let out = etcdctl_ok(&bare.join(","), &["move-leader", &member_id(&c, to)]);
    assert_eq!(out, format!("Leadership transferred from {} to {}\n", member_id(&c, leader), member_id(&c, to)));
    assert_eq!(c.leader(), to);
    // An unknown member is refused with etcd's error.
    let leader_ep = bare[to];
    let out = etcdctl(leader_ep, &["move-leader", "abcdef"], None).expect("etcdctl runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etcdserver: bad leader transferee"), "{err}");
    // To the leader itself: nothing to do.
    etcdctl_ok(leader_ep, &["move-leader", &member_id(&c, to)]);
    assert_eq!(c.leader(), to);
}
