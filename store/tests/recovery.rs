//! Offline recovery (`flotilla_store::recovery`): a snapshot restored into a brand-new
//! cluster keeps every key and revision, and a lone survivor forced into a new cluster keeps
//! its data, leads alone, and takes members again.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_store::etcd::snapshot;
use flotilla_store::mvcc::key_range::prefix_end;
use flotilla_store::pb::{PbPutRequest, PbRangeRequest};
use flotilla_store::{recovery, Node, NodeId, StoreError, StoreNode};
use support::{peer_url, wait_for, Cluster};
use tokio::net::TcpListener;

fn put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

type Keys = BTreeMap<String, (String, i64, i64, i64)>;

/// Every key with its value, create and mod revisions and version; and the store revision.
async fn everything(node: &StoreNode) -> (Keys, i64) {
    read_all(node, false).await.expect("range")
}

async fn read_all(node: &StoreNode, serializable: bool) -> Option<(Keys, i64)> {
    let req = PbRangeRequest { key: vec![0], range_end: prefix_end(b""), serializable, ..Default::default() };
    let resp = node.range(req).await.ok()?;
    let kvs = resp
        .kvs
        .into_iter()
        .map(|kv| {
            let k = String::from_utf8_lossy(&kv.key).into_owned();
            (k, (String::from_utf8_lossy(&kv.value).into_owned(), kv.create_revision, kv.mod_revision, kv.version))
        })
        .collect();
    Some((kvs, resp.header?.revision))
}

/// Members on fresh ports (not started) in a new temp dir: the shape of a new cluster.
async fn unstarted(names: &[&str]) -> Cluster {
    let mut cluster = Cluster { dir: tempfile::tempdir().expect("tempdir"), members: Vec::new() };
    for name in names {
        cluster.prepare_member(name).await;
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restored_snapshot_founds_a_new_cluster_with_the_same_keys_and_revisions() {
    let old = Cluster::start(3, |_| {}).await;
    let leader = old.leader().await;
    for n in 0..30 {
        old.node(leader).put(put(&format!("k{:02}", n % 12), &format!("v{n}"))).await.expect("put");
    }
    old.node(leader)
        .delete_range(flotilla_store::pb::PbDeleteRequest { key: b"k00".to_vec(), ..Default::default() })
        .await
        .expect("delete");
    let before = everything(old.node(leader)).await;
    // From a follower: any replica's copy is a consistent state once it has caught up.
    let follower = (leader + 1) % 3;
    wait_for(Duration::from_secs(10), "the follower to catch up", || async {
        (old.node(follower).current_revision() == before.1).then_some(())
    })
    .await;
    let file = snapshot::to_file(old.node(follower).snapshot_archive().await.expect("archive"));
    old.stop_all().await;

    let mut new = unstarted(&["a", "b", "c"]).await;
    let map = new.founding_map();
    for m in &new.members {
        let restored = recovery::restore(&file, &m.data_dir, map.clone()).await.expect("restore");
        assert_eq!(restored.revision, before.1);
    }
    let again = recovery::restore(&file, &new.members[0].data_dir, map.clone()).await;
    assert!(
        matches!(again, Err(StoreError::InvalidArgument(m)) if m.contains("not empty")),
        "a used data dir is refused"
    );
    let mut damaged = file.clone();
    damaged[100] ^= 0xff;
    let refused = recovery::restore(&damaged, &new.dir.path().join("x"), map.clone()).await;
    assert!(matches!(refused, Err(StoreError::InvalidArgument(m)) if m.contains("digest")));

    for i in 0..3 {
        new.restart(i).await;
    }
    let leader = new.leader().await;
    assert_eq!(everything(new.node(leader)).await, before, "same keys, revisions and versions");
    let members: Vec<NodeId> = new.node(leader).member_list().iter().map(|m| m.id).collect();
    assert_eq!(members, map.keys().copied().collect::<Vec<_>>(), "the new cluster's members only");
    let resp = new.node(leader).put(put("after", "restore")).await.expect("write after restore");
    assert_eq!(resp.header.expect("header").revision, before.1 + 1, "revisions continue from the backup's");

    // A member added later gets the restored state (the log before it was never there).
    let (joiner, listener) = new.prepare_member("d").await;
    new.node(leader).member_add(&peer_url(new.members[joiner].peer_addr), true).await.expect("add learner");
    new.start_existing(joiner, listener).await;
    let want = everything(new.node(leader)).await;
    wait_for(Duration::from_secs(15), "the joiner to hold the restored data", || async {
        let (kvs, _) = read_all(new.node(joiner), true).await?;
        (kvs == want.0).then_some(())
    })
    .await;
    new.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forced_survivor_keeps_its_data_leads_alone_and_takes_members_again() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    for n in 0..20 {
        c.node(leader).put(put(&format!("s{n:02}"), "v")).await.expect("put");
    }
    let survivor = (leader + 1) % 3;
    wait_for(Duration::from_secs(10), "the survivor to apply every write", || async {
        (c.node(survivor).current_revision() == c.node(leader).current_revision()).then_some(())
    })
    .await;
    let before = everything(c.node(leader)).await;
    for i in 0..3 {
        c.kill(i).await;
    }
    let m = &c.members[survivor];
    let me = Node { name: m.name.clone(), peer_url: peer_url(m.peer_addr), client_urls: vec![] };
    assert!(recovery::force_new_cluster(&m.data_dir, m.id, me.clone()).await.expect("force"));
    assert!(!recovery::force_new_cluster(&m.data_dir, m.id, me).await.expect("again"), "a second run changes nothing");
    let fresh = tempfile::tempdir().expect("tempdir");
    assert!(recovery::force_new_cluster(fresh.path(), m.id, Node::default()).await.is_err(), "no log, no recovery");

    c.restart(survivor).await;
    let alone = c.leader_among(&[survivor]).await;
    assert_eq!(alone, survivor);
    assert_eq!(everything(c.node(survivor)).await, before, "the survivor's data is all there");
    assert_eq!(c.node(survivor).member_list().len(), 1);
    c.node(survivor).put(put("after", "force")).await.expect("the lone member commits");

    // Re-add a lost member with a wiped data dir, as a learner, then promote it.
    let lost = (survivor + 1) % 3;
    std::fs::remove_dir_all(&c.members[lost].data_dir).expect("wipe");
    let url = peer_url(c.members[lost].peer_addr);
    c.node(survivor).member_add(&url, true).await.expect("re-add as learner");
    let listener = TcpListener::bind(c.members[lost].peer_addr).await.expect("rebind");
    c.start_existing(lost, listener).await;
    wait_for(Duration::from_secs(15), "the re-added member to be promotable", || async {
        c.node(survivor).member_promote(c.members[lost].id).await.ok()
    })
    .await;
    assert_eq!(c.node(survivor).member_list().iter().filter(|m| !m.is_learner).count(), 2);
    c.node(survivor).put(put("two", "voters")).await.expect("the two-voter cluster commits");
    c.stop_all().await;
}
