//! Kill -9 the leader of a `flotilla up` cluster under writes; keep writing; restart it with
//! its recorded argv; it catches up. Driven by the real etcdctl.

use std::time::Duration;

use flotilla_tests::{etcdctl, etcdctl_ok, require_etcdctl, wait_for, UpCluster};

#[test]
fn kill9_leader_keep_writing_restart_catches_up() {
    require_etcdctl();
    let mut c = UpCluster::start(3).expect("cluster");
    let ep = c.endpoints();
    let mut acked = Vec::new();
    let mut victim = None;
    for n in 0..40 {
        if n == 15 {
            let l = c.leader();
            c.kill9(l);
            victim = Some(l);
        }
        let key = format!("f{n:02}");
        let ok = etcdctl(&ep, &["put", &key, &format!("v{n}")], None).expect("etcdctl").status.success();
        if ok {
            acked.push(key);
        }
    }
    assert!(acked.len() >= 30, "writes continue after the leader dies (acked {})", acked.len());
    let got = etcdctl_ok(&ep, &["get", "--prefix", "--keys-only", "f"]);
    for k in &acked {
        assert!(got.lines().any(|l| l == k), "acknowledged {k} missing after failover");
    }
    let victim = victim.expect("killed a leader");
    c.restart(victim).expect("restart with argv");
    let url = c.replicas[victim].client_url.clone();
    wait_for(Duration::from_secs(30), "restarted replica serves every acknowledged key", || {
        let out = etcdctl(&url, &["get", "--consistency=s", "--prefix", "--keys-only", "f"], None).ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        acked.iter().all(|k| text.lines().any(|l| l == k)).then_some(())
    });
    // It takes part in the cluster again: a linearizable read through it works.
    assert!(etcdctl_ok(&url, &["get", "f00"]).starts_with("f00\n"));
}
