//! Three replicas in one process: failover, restart, snapshot catch-up, partitions,
//! membership, and lease expiry across a leader change.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use flotilla_store::mvcc::key_range::{prefix_end, KeyRange};
use flotilla_store::pb::{PbPutRequest, PbRangeRequest};
use flotilla_store::watch::WatchItem;
use flotilla_store::{StoreError, StoreNode};
use support::{wait_for, Cluster};

fn put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

fn prefix(p: &str, serializable: bool) -> PbRangeRequest {
    PbRangeRequest { key: p.into(), range_end: prefix_end(p.as_bytes()), serializable, ..Default::default() }
}

/// Everything under a prefix, as a map.
async fn dump(node: &StoreNode, p: &str, serializable: bool) -> Result<BTreeMap<String, String>, StoreError> {
    let resp = node.range(prefix(p, serializable)).await?;
    Ok(resp
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), String::from_utf8_lossy(&kv.value).into_owned()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_loses_no_acknowledged_write() {
    let mut c = Cluster::start(3, |_| {}).await;
    let mut acked = BTreeMap::new();
    let mut killed = None;
    for n in 0..150 {
        if n == 50 {
            let leader = c.leader().await;
            c.kill(leader).await;
            killed = Some(leader);
        }
        let live = c.live();
        let target = live[n % live.len()];
        let (k, v) = (format!("k{n:03}"), format!("v{n}"));
        if c.node(target).put(put(&k, &v)).await.is_ok() {
            acked.insert(k, v);
        }
    }
    assert!(acked.len() >= 100, "most writes succeed across one failover (got {})", acked.len());
    for i in c.live() {
        let seen = dump(c.node(i), "k", false).await.expect("linearizable read on a survivor");
        for (k, v) in &acked {
            assert_eq!(seen.get(k), Some(v), "acknowledged write {k} lost on replica {i}");
        }
    }
    // The old leader comes back and converges.
    let old = killed.expect("a leader was killed");
    c.restart(old).await;
    let want = dump(c.node(c.leader().await), "k", false).await.expect("read");
    wait_for(Duration::from_secs(15), "restarted replica converges", || async {
        (dump(c.node(old), "k", true).await.ok()? == want).then_some(())
    })
    .await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_log_entries_but_keep_their_own_revisions() {
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let rev0 = c.node(leader).current_revision();
    let log0 = c.node(leader).raft().metrics().borrow().last_log_index.unwrap_or(0);
    const WRITES: usize = 256;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..WRITES {
        let node = c.node(n % 3).clone();
        tasks.spawn(async move {
            node.put(put(&format!("c{n:03}"), "v")).await.map(|r| r.header.expect("header").revision)
        });
    }
    let mut revisions = Vec::new();
    while let Some(r) = tasks.join_next().await {
        revisions.push(r.expect("task").expect("every write succeeds"));
    }
    revisions.sort();
    revisions.dedup();
    assert_eq!(revisions.len(), WRITES, "each write has its own revision");
    assert_eq!(c.node(leader).current_revision(), rev0 + WRITES as i64);
    let log1 = c.node(leader).raft().metrics().borrow().last_log_index.unwrap_or(0);
    assert!(log1 - log0 < WRITES as u64, "concurrent writes were grouped: {} entries for {WRITES} writes", log1 - log0);
    assert_eq!(dump(c.node(leader), "c", false).await.expect("read").len(), WRITES);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn founding_members_publish_their_client_urls() {
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    wait_for(Duration::from_secs(10), "every member listed with its client URL", || async {
        let list = c.node(leader).member_list();
        (list.len() == 3 && list.iter().all(|m| m.client_urls.len() == 1 && !m.name.is_empty())).then_some(())
    })
    .await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_follower_resumes_from_disk() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    for n in 0..30 {
        c.node(leader).put(put(&format!("a{n:02}"), "1")).await.expect("put");
    }
    c.kill(follower).await;
    for n in 30..60 {
        c.node(leader).put(put(&format!("a{n:02}"), "2")).await.expect("put");
    }
    c.restart(follower).await;
    let want = dump(c.node(leader), "a", false).await.expect("read");
    assert_eq!(want.len(), 60);
    wait_for(Duration::from_secs(15), "follower has every key after restart", || async {
        (dump(c.node(follower), "a", true).await.ok()? == want).then_some(())
    })
    .await;
    assert_eq!(c.node(follower).current_revision(), c.node(leader).current_revision());
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lagging_follower_catches_up_by_snapshot() {
    let c = Cluster::start(3, |cfg| {
        cfg.snapshot_logs = 50;
        cfg.logs_to_keep = 5;
    })
    .await;
    let leader = c.leader().await;
    let lagger = (leader + 1) % 3;
    c.isolate(lagger);
    for n in 0..300 {
        c.node(leader).put(put(&format!("s{n:03}"), &"x".repeat(100))).await.expect("majority write");
    }
    let lagger_last = c.node(lagger).raft().metrics().borrow().last_log_index.unwrap_or(0);
    wait_for(Duration::from_secs(15), "leader purged past the lagger's log", || async {
        let purged = c.node(leader).raft().metrics().borrow().purged?;
        (purged.index > lagger_last).then_some(())
    })
    .await;
    c.heal();
    let want = dump(c.node(leader), "s", false).await.expect("read");
    wait_for(Duration::from_secs(20), "lagger caught up", || async {
        (dump(c.node(lagger), "s", true).await.ok()? == want).then_some(())
    })
    .await;
    let snap = c.node(lagger).raft().metrics().borrow().snapshot;
    assert!(snap.is_some_and(|s| s.index > lagger_last), "the lagger installed a snapshot, got {snap:?}");
    // And it keeps working as a normal follower afterwards.
    c.node(leader).put(put("after", "snapshot")).await.expect("put");
    wait_for(Duration::from_secs(10), "lagger applies new writes", || async {
        dump(c.node(lagger), "after", true).await.ok()?.get("after").cloned()
    })
    .await;
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_minority_refuses_linearizable_reads_and_writes() {
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    c.node(leader).put(put("p", "before")).await.expect("put");
    let (lease, _) = c.node(leader).lease_grant(0, 30).await.expect("grant");
    // Isolate the leader itself: it must stop serving linearizable operations.
    c.isolate(leader);
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = c.leader_among(&majority).await;
    c.node(new_leader).put(put("p", "after")).await.expect("the majority keeps writing");

    let old = c.node(leader);
    let write = old.put(put("p", "stale")).await;
    assert!(matches!(write, Err(StoreError::Timeout | StoreError::NoLeader)), "minority write refused, got {write:?}");
    let read = old.range(prefix("p", false)).await;
    assert!(
        matches!(read, Err(StoreError::Timeout | StoreError::NoLeader)),
        "minority linearizable read refused, got {read:?}"
    );
    // Once it has not heard from a quorum for an election timeout, another leader may exist:
    // it must not renew leases the real leader would never see renewed.
    wait_for(Duration::from_secs(10), "the cut-off leader's quorum contact is stale", || async {
        let ms = old.raft().metrics().borrow().millis_since_quorum_ack;
        ms.is_none_or(|ms| ms > 500).then_some(())
    })
    .await;
    let renew = old.lease_keep_alive(lease).await;
    assert!(
        matches!(renew, Err(StoreError::Timeout | StoreError::NoLeader)),
        "minority keep-alive refused, got {renew:?}"
    );
    assert!(c.node(new_leader).lease_keep_alive(lease).await.is_ok(), "the majority leader renews it");
    // A serializable read is local and may be stale, by definition.
    let stale = dump(old, "p", true).await.expect("serializable read");
    assert_eq!(stale.get("p").map(String::as_str), Some("before"));

    c.heal();
    wait_for(Duration::from_secs(15), "old leader rejoins and sees the new value", || async {
        (dump(c.node(leader), "p", false).await.ok()?.get("p")? == "after").then_some(())
    })
    .await;
    let all = dump(c.node(new_leader), "p", false).await.expect("read");
    assert_eq!(all.get("p").map(String::as_str), Some("after"), "the stale write was never applied");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_is_added_promoted_and_removed() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    for n in 0..20 {
        c.node(leader).put(put(&format!("m{n:02}"), "v")).await.expect("put");
    }
    let (new, listener) = c.prepare_member("n3").await;
    let url = support::peer_url(c.members[new].peer_addr);
    let added = c.node((leader + 1) % 3).member_add(&url, true).await.expect("add learner via a follower");
    assert!(added.is_learner);
    assert_eq!(added.id, c.members[new].id);
    c.start_existing(new, listener).await;
    let want = dump(c.node(leader), "m", false).await.expect("read");
    wait_for(Duration::from_secs(15), "learner replicates data and publishes its name", || async {
        let has = dump(c.node(new), "m", true).await.ok()? == want;
        let named = c.node(leader).member_list().iter().any(|m| m.id == added.id && m.name == "n3" && m.is_learner);
        (has && named).then_some(())
    })
    .await;
    let voter = c.node(leader).member_promote(c.members[new].id).await;
    assert!(voter.is_ok(), "promote: {voter:?}");
    assert!(c.node(leader).member_list().iter().any(|m| m.id == added.id && !m.is_learner));
    assert_eq!(
        c.node(leader).member_promote(c.members[new].id).await,
        Err(StoreError::InvalidArgument("can only promote a learner member".into()))
    );
    c.node(leader).member_remove(c.members[new].id).await.expect("remove");
    wait_for(Duration::from_secs(10), "member gone from the list", || async {
        (!c.node(leader).member_list().iter().any(|m| m.id == added.id)).then_some(())
    })
    .await;
    assert_eq!(c.node(leader).member_remove(c.members[new].id).await, Err(StoreError::MemberNotFound));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_added_directly_joins_when_started() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    c.node(leader).put(put("v", "1")).await.expect("put");
    let (new, listener) = c.prepare_member("n3").await;
    let url = support::peer_url(c.members[new].peer_addr);
    // As etcd's MemberAdd without --learner: a voter at once, before it has started.
    let added = c.node(leader).member_add(&url, false).await.expect("add voter");
    assert!(!added.is_learner);
    assert!(c.node(leader).member_list().iter().any(|m| m.id == added.id && !m.is_learner));
    c.start_existing(new, listener).await;
    wait_for(Duration::from_secs(15), "the new voter replicates", || async {
        dump(c.node(new), "v", true).await.ok()?.get("v").cloned()
    })
    .await;
    c.node(leader).put(put("v", "2")).await.expect("the 4-voter cluster commits");
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_expiry_deletes_its_keys_exactly_once_across_a_leader_change() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let survivor = (leader + 1) % 3;
    let (id, ttl) = c.node(survivor).lease_grant(0, 3).await.expect("grant");
    assert!(ttl >= c.node(survivor).min_lease_ttl());
    c.node(survivor)
        .put(PbPutRequest { key: "l/a".into(), value: "1".into(), lease: id, ..Default::default() })
        .await
        .expect("put a");
    let b = c
        .node(survivor)
        .put(PbPutRequest { key: "l/b".into(), value: "1".into(), lease: id, ..Default::default() })
        .await
        .expect("put b");
    // Read-your-writes on the replica that forwarded the write: its state already has it.
    assert_eq!(c.node(survivor).current_revision(), b.header.expect("header").revision);
    let from = c.node(survivor).current_revision() + 1;
    let mut watcher = c.node(survivor).watch(KeyRange::new(b"l/", &prefix_end(b"l/")), from);
    c.kill(leader).await;
    wait_for(Duration::from_secs(30), "leased keys expire under the new leader", || async {
        dump(c.node(survivor), "l/", false).await.ok()?.is_empty().then_some(())
    })
    .await;
    c.node(survivor).put(put("l/zz-marker", "end")).await.expect("marker");
    let mut deletes = Vec::new();
    loop {
        let item =
            tokio::time::timeout(Duration::from_secs(10), watcher.next()).await.expect("watch yields").expect("open");
        let WatchItem::Events { revision, events } = item else { panic!("unexpected {item:?}") };
        if events.iter().any(|e| e.kv.as_ref().is_some_and(|kv| kv.key == b"l/zz-marker")) {
            break;
        }
        deletes.push((
            revision,
            events.iter().map(|e| (e.r#type, e.kv.clone().unwrap_or_default().key)).collect::<Vec<_>>(),
        ));
    }
    assert_eq!(deletes.len(), 1, "one revoke revision, got {deletes:?}");
    assert_eq!(deletes[0].1, vec![(1, b"l/a".to_vec()), (1, b"l/b".to_vec())]);
    assert!(!c.node(survivor).lease_list().contains(&id));
    let ttl = c.node(survivor).lease_time_to_live(id, false).await.expect("ttl of a revoked lease");
    assert_eq!(ttl.ttl, -1);
    c.stop_all().await;
}

/// The harness's self-check mode (`--unsafe-local-reads`) really is unsafe: a cut-off
/// leader answers a "linearizable" read with a value the majority has overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsafe_local_reads_serve_stale_values_when_cut_off() {
    let c = Cluster::start(3, |cfg| cfg.unsafe_local_reads = true).await;
    let leader = c.leader().await;
    c.node(leader).put(put("u", "before")).await.expect("put");
    c.isolate(leader);
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = c.leader_among(&majority).await;
    c.node(new_leader).put(put("u", "after")).await.expect("the majority keeps writing");
    let stale = dump(c.node(leader), "u", false).await.expect("an unsafe read answers at once");
    assert_eq!(stale.get("u").map(String::as_str), Some("before"), "a stale linearizable read");
    c.heal();
    c.stop_all().await;
}
