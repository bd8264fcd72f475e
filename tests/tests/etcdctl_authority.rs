//! etcdctl 3.4 commands that send the endpoint URL verbatim as `:authority`
//! (`http://127.0.0.1:PORT`) over a fresh connection: the client port accepts them.

use flotilla_tests::{etcdctl_ok, require_etcdctl, UpCluster};

#[test]
fn url_endpoints_work_for_per_endpoint_commands() {
    require_etcdctl();
    let c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    assert!(ep.split(',').all(|e| e.starts_with("http://")), "{ep}");

    let status: serde_json::Value =
        serde_json::from_str(&etcdctl_ok(&ep, &["endpoint", "status", "-w", "json"])).expect("json");
    let all = status.as_array().expect("array");
    assert_eq!(all.len(), 3, "{status}");
    assert!(all.iter().all(|s| s["Status"]["leader"].as_u64().is_some_and(|l| l != 0)), "{status}");

    // `--cluster` asks every member that advertises client URLs, over those URLs.
    let first = &c.replicas[0].client_url;
    let members: serde_json::Value =
        serde_json::from_str(&etcdctl_ok(first, &["member", "list", "-w", "json"])).expect("json");
    let advertised =
        members["members"].as_array().expect("members").iter().filter(|m| m["clientURLs"].is_array()).count();
    assert!(advertised >= 1, "{members}");
    let cluster: serde_json::Value =
        serde_json::from_str(&etcdctl_ok(first, &["endpoint", "status", "--cluster", "-w", "json"])).expect("json");
    assert_eq!(cluster.as_array().expect("array").len(), advertised, "{cluster}");

    let defrag = etcdctl_ok(&ep, &["defrag"]);
    assert_eq!(defrag.matches("Finished defragmenting etcd member").count(), 3, "{defrag}");

    // Schemes are case-insensitive, and a trailing slash goes too.
    let odd = first.replacen("http://", "HTTP://", 1) + "/";
    etcdctl_ok(&odd, &["endpoint", "status"]);
    etcdctl_ok(&odd, &["alarm", "disarm"]);

    // Plain requests still work through the same wrapper.
    assert_eq!(etcdctl_ok(&ep, &["put", "authority", "ok"]), "OK\n");
    assert_eq!(etcdctl_ok(&ep, &["get", "authority"]), "authority\nok\n");
}
