//! Leadership transfer (`StoreNode::move_leader`, etcd's MoveLeader) in a three-replica
//! in-process cluster: the hand-over under write load, the refusals etcd makes, and a
//! transfer that cannot complete leaving the old leader in office.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flotilla_store::pb::{PbPutRequest, PbRangeRequest};
use flotilla_store::{StoreError, StoreNode};
use support::{wait_for, Cluster};
use tokio::time::Instant;

fn put(key: &str, value: &str) -> PbPutRequest {
    PbPutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

async fn value(node: &StoreNode, key: &str) -> Option<String> {
    let resp = node.range(PbRangeRequest { key: key.into(), ..Default::default() }).await.expect("linearizable read");
    resp.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn term(node: &StoreNode) -> u64 {
    node.raft().metrics().borrow().current_term
}

/// Writes through every replica in turn until `stop`; returns what was acknowledged and
/// every failure.
async fn write_load(nodes: Vec<Arc<StoreNode>>, stop: Arc<AtomicBool>) -> (BTreeMap<String, String>, Vec<StoreError>) {
    let (mut acked, mut failed) = (BTreeMap::new(), Vec::new());
    let mut n = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let (k, v) = (format!("load/{n:05}"), format!("v{n}"));
        match nodes[n % nodes.len()].put(put(&k, &v)).await {
            Ok(_) => {
                acked.insert(k, v);
            }
            Err(e) => failed.push(e),
        }
        n += 1;
    }
    (acked, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_under_write_load_without_failing_a_write() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init(); // DEBUG
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let target = (leader + 1) % 3;
    let asker = (leader + 2) % 3;
    let before = term(c.node(leader));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(write_load((0..3).map(|i| c.node(i).clone()).collect(), stop.clone()));
    // Let the load get going, then ask a replica that is neither leader nor target.
    wait_for(Duration::from_secs(10), "writes under way", || async {
        (value(c.node(leader), "load/00020").await.is_some()).then_some(())
    })
    .await;
    let started = Instant::now();
    c.node(asker).move_leader(c.members[target].id).await.expect("move-leader");
    let took = started.elapsed();
    // Every replica agrees on the new leader; the transfer cost one term.
    assert_eq!(c.leader().await, target);
    assert!(term(c.node(target)) > before);
    // Keep writing a little under the new leader, then stop.
    let resumed = c.node(target).current_revision() + 20;
    wait_for(Duration::from_secs(10), "writes continue under the new leader", || async {
        (c.node(target).current_revision() >= resumed).then_some(())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let (acked, failed) = load.await.expect("load task");
    assert!(failed.is_empty(), "writes failed during the transfer: {failed:?}");
    for (k, v) in &acked {
        assert_eq!(value(c.node(leader), k).await.as_ref(), Some(v), "acknowledged write {k} lost");
    }
    eprintln!("move-leader under load: {took:?}, {} writes acknowledged", acked.len());

    // Moving it to where it already is changes nothing.
    let now = term(c.node(target));
    c.node(leader).move_leader(c.members[target].id).await.expect("no-op move");
    assert_eq!((c.leader().await, term(c.node(target))), (target, now));
    c.stop_all().await;
}

/// With five voters the transferee also needs a follower's vote, which it gets only once
/// that follower's lease has lapsed: the leader keeps asking it to campaign until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_in_a_five_voter_cluster() {
    let c = Cluster::start(5, |_| {}).await;
    let leader = c.leader().await;
    let target = (leader + 3) % 5;
    c.node(leader).put(put("before", "1")).await.expect("put");
    c.node(leader).move_leader(c.members[target].id).await.expect("move-leader");
    assert_eq!(c.leader().await, target);
    c.node(target).put(put("after", "1")).await.expect("the new leader writes");
    assert_eq!(value(c.node(leader), "before").await.as_deref(), Some("1"));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_started_voter_can_take_leadership() {
    let mut c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    assert_eq!(c.node(leader).move_leader(0xdead_beef).await, Err(StoreError::BadLeaderTransferee));
    let (new, listener) = c.prepare_member("n3").await;
    let url = support::peer_url(c.members[new].peer_addr);
    let learner = c.node(leader).member_add(&url, true).await.expect("add learner").id;
    // Not started yet, then started but still a learner: refused either way, by any replica.
    assert_eq!(c.node((leader + 1) % 3).move_leader(learner).await, Err(StoreError::BadLeaderTransferee));
    c.start_existing(new, listener).await;
    wait_for(Duration::from_secs(15), "the learner publishes its name", || async {
        c.node(leader).member_list().iter().any(|m| m.id == learner && m.name == "n3").then_some(())
    })
    .await;
    assert_eq!(c.node(leader).move_leader(learner).await, Err(StoreError::BadLeaderTransferee));
    assert_eq!(c.leader().await, leader);
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transfer_to_an_unreachable_member_fails_and_the_leader_stays() {
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let target = (leader + 1) % 3;
    let before = term(c.node(leader));
    c.isolate(target);
    let r = c.node(leader).move_leader(c.members[target].id).await;
    assert_eq!(r, Err(StoreError::LeaderTransferTimeout));
    let failed_at = Instant::now();
    // Heartbeats are back: with no client traffic at all, the leader keeps hearing from the
    // other follower for longer than an election timeout, in the same term.
    let election = c.members[leader].cfg.election_timeout;
    wait_for(Duration::from_secs(10), "quorum contact an election timeout after the failure", || async {
        let m = c.node(leader).raft().metrics().borrow().clone();
        let acked_at = Instant::now() - Duration::from_millis(m.millis_since_quorum_ack?);
        (acked_at > failed_at + election).then_some(())
    })
    .await;
    assert_eq!(term(c.node(leader)), before, "no election happened");
    c.node(leader).put(put("after", "failed transfer")).await.expect("the old leader still writes");
    c.heal();
    c.stop_all().await;
}
