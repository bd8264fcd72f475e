//! The store size guard end to end: a `flotilla up` cluster with a small
//! `--quota-backend-bytes`, filled through the real etcdctl until etcd's error; then what an
//! operator sees (`etcdctl alarm list`, `endpoint status`, kubectl's error) and the way out
//! docs/OPERATIONS.md gives: `etcdctl compaction`, `etcdctl defrag`, `etcdctl alarm disarm`.

use flotilla_tests::kube::Kubectl;
use flotilla_tests::{etcdctl, etcdctl_ok, require_etcdctl, UpCluster};

/// Room for the cluster's own objects, and a few of the values below.
const QUOTA: u64 = 1024 * 1024;
const VALUE_BYTES: usize = 200 * 1024;
/// Fill writes before the test gives up: far more than QUOTA / VALUE_BYTES.
const MAX_FILL_WRITES: usize = 100;
const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";

/// Printable bytes that do not compress, so each value costs its size on disk.
fn incompressible(n: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn statuses(endpoints: &str) -> Vec<serde_json::Value> {
    serde_json::from_str(&etcdctl_ok(endpoints, &["endpoint", "status", "-w", "json"])).expect("status json")
}

#[test]
fn a_full_store_is_refused_then_recovered_with_compaction_defrag_and_disarm() {
    require_etcdctl();
    // `flotilla up` has no flag for it, but every server flag reads its environment
    // variable and the replicas inherit `up`'s environment. This test binary holds this one
    // test, so the variable reaches no other cluster.
    std::env::set_var("FLOTILLA_QUOTA_BACKEND_BYTES", QUOTA.to_string());
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    for s in statuses(&ep) {
        eprintln!("{}: {} bytes before filling", s["Endpoint"], s["Status"]["dbSize"]);
    }

    // Overwrite one key until a replica's database passes the quota.
    let mut refusal = None;
    for n in 0..MAX_FILL_WRITES {
        let out = etcdctl(&ep, &["put", "fill"], Some(&incompressible(VALUE_BYTES, n as u64))).expect("etcdctl");
        if !out.status.success() {
            refusal = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refusal = refusal.expect("the quota stops the writes");
    assert!(refusal.contains(NO_SPACE), "{refusal}");

    // The alarm is listed, shown in every member's status, and refuses small writes too.
    let alarms = etcdctl_ok(&ep, &["alarm", "list"]);
    assert!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    for s in statuses(&ep) {
        let errors = s["Status"]["errors"].to_string();
        assert!(errors.contains("alarm:NOSPACE"), "{s}");
    }
    let small = etcdctl(&ep, &["put", "small", "1"], None).expect("etcdctl");
    assert!(!small.status.success() && String::from_utf8_lossy(&small.stderr).contains(NO_SPACE));
    // The Kubernetes API passes etcd's error through, as kube-apiserver does (a 500).
    let kubectl = Kubectl::new(&c.replicas[0].api_url);
    let err = kubectl.fails(&["create", "configmap", "full", "--from-literal=a=b"]);
    assert!(err.contains(NO_SPACE), "{err}");
    // Reads still work.
    assert!(etcdctl_ok(&ep, &["get", "fill", "--keys-only"]).starts_with("fill\n"));

    // The way out: compact away the old values, defragment every member, disarm.
    let rev = statuses(&ep)[0]["Status"]["header"]["revision"].as_i64().expect("revision");
    etcdctl_ok(&ep, &["compaction", &rev.to_string()]);
    let defrag = etcdctl_ok(&ep, &["defrag"]);
    assert_eq!(defrag.matches("Finished defragmenting etcd member").count(), 3, "{defrag}");
    for s in statuses(&ep) {
        let size = s["Status"]["dbSize"].as_u64().expect("dbSize");
        eprintln!("{}: {size} bytes after defragmenting", s["Endpoint"]);
        assert!(size < QUOTA, "{s}");
    }
    let disarmed = etcdctl_ok(&ep, &["alarm", "disarm"]);
    assert!(disarmed.contains("alarm:NOSPACE"), "{disarmed}");
    assert_eq!(etcdctl_ok(&ep, &["alarm", "list"]), "");
    assert_eq!(etcdctl_ok(&ep, &["put", "small", "1"]), "OK\n");
    kubectl.ok(&["create", "configmap", "after", "--from-literal=a=b"]);
}
