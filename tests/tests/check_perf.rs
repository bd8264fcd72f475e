//! `etcdctl check perf` (its 60-second small load) passes against a `flotilla up` cluster.

use flotilla_tests::{etcdctl, require_etcdctl, UpCluster};

#[test]
fn etcdctl_check_perf_passes() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let out = etcdctl(&c.endpoints(), &["check", "perf", "--load=s"], None).expect("check perf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("PASS"),
        "check perf: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
