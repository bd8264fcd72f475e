//! The official Python `kubernetes` client (37.0.2) against a 3-replica `flotilla up` cluster.
//!
//! `tests/python/client_check.py` does the work: version, creates (namespace, configmap,
//! deployment and pods from plain dicts, sent without a Content-Type), label and field
//! selectors, strategic merge and scale patches, 409 Conflict on a stale replace and 409
//! AlreadyExists on a duplicate create, watches (initial ADDED then live MODIFIED/DELETED;
//! from a list's resourceVersion only later changes; an idle watch ending at
//! `timeoutSeconds`), and deletes followed by 404. It prints `ok: <step>` per passed step.
//!
//! It runs once against a follower and once against the leader, because a follower serves
//! writes by forwarding them and reads and watches from its own replica: both paths must
//! look the same to a client. In each run the watch steps make their changes through the
//! other replica, so a watch must see writes that entered the cluster elsewhere. The leader
//! is found with etcdctl's `endpoint status`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_tests::{require_etcdctl, UpCluster};

/// The lines `client_check.py` prints when every step passed, in order.
const EXPECTED: &[&str] = &[
    "ok: version minor 32",
    "ok: create namespace",
    "ok: create configmap",
    "ok: create deployment",
    "ok: list pods with label and field selectors",
    "ok: list deployments and configmaps with selectors",
    "ok: strategic merge patch deployment",
    "ok: patch deployment scale",
    "ok: replace with stale resourceVersion is 409 Conflict",
    "ok: duplicate create is 409 AlreadyExists",
    "ok: watch sees ADDED then live MODIFIED and DELETED",
    "ok: watch from a list resourceVersion sees only later changes",
    "ok: idle watch ends at timeoutSeconds",
    "ok: delete configmap and deployment, then get is 404",
    "all checks passed",
];

/// Upper bound on one run of the script; its watches stop early, so a run takes seconds.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Fail unless `python3` can import the pinned client; scripts/install-deps.sh installs it,
/// so a missing one is a broken set-up, not a reason to skip.
fn require_python_client() {
    let out = Command::new("python3")
        .args(["-c", "import kubernetes; print(kubernetes.__version__)"])
        .output()
        .expect("python3 is installed");
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python kubernetes client missing (run scripts/install-deps.sh): {out:?}");
    assert_eq!(version.trim(), "37.0.2", "scripts/install-deps.sh pins kubernetes==37.0.2");
}

/// Run the script against `api_url` in namespace `ns`, its watched changes made through
/// `other_url`; returns its stdout, or panics with its output if it failed or overran
/// [`SCRIPT_TIMEOUT`].
fn run_check(c: &UpCluster, api_url: &str, ns: &str, other_url: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/client_check.py");
    let stdout_path = c.dir.path().join(format!("{ns}.stdout"));
    let stderr_path = c.dir.path().join(format!("{ns}.stderr"));
    let mut child = Command::new("python3")
        .arg(&script)
        .args([api_url, ns, other_url])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("running python3");
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for python3") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_path).expect("stdout");
    let stderr = std::fs::read_to_string(&stderr_path).expect("stderr");
    match status {
        Some(s) if s.success() => stdout,
        Some(s) => panic!("client_check.py against {api_url} failed ({s}):\n{stdout}\n{stderr}"),
        None => panic!("client_check.py against {api_url} ran over {SCRIPT_TIMEOUT:?}:\n{stdout}\n{stderr}"),
    }
}

#[test]
fn python_client_against_follower_and_leader() {
    require_etcdctl();
    require_python_client();
    let c = UpCluster::start(3).expect("cluster");
    assert!(
        c.replicas.iter().all(|r| r.api_url.starts_with("http://")),
        "cluster.json lacks api_url: {:?}",
        c.replicas
    );
    let leader = c.leader();
    let follower = (leader + 1) % c.replicas.len();
    for (role, i, other) in [("follower", follower, leader), ("leader", leader, follower)] {
        let out = run_check(&c, &c.replicas[i].api_url, &format!("py-{role}"), &c.replicas[other].api_url);
        assert_eq!(out.lines().collect::<Vec<_>>(), EXPECTED, "against the {role} {}", c.replicas[i].name);
    }
}
