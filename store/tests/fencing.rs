//! Fencing of leader-only writes (`StoreNode::txn_local`): what the scheduler and
//! controllers use. A follower never forwards them, and a leader that has been cut off and
//! replaced cannot get them committed: its stale decision fails and never applies.

mod support;

use std::time::Duration;

use flotilla_store::pb::{PbPutRequest, PbRangeRequest, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp};
use flotilla_store::{StoreError, StoreNode};
use support::{wait_for, Cluster};

fn put_txn(key: &str, value: &str) -> PbTxnRequest {
    let put = PbPutRequest { key: key.into(), value: value.into(), ..Default::default() };
    PbTxnRequest {
        success: vec![PbTxnRequestOp { request: Some(PbTxnOpRequest::RequestPut(put)) }],
        ..Default::default()
    }
}

async fn value(node: &StoreNode, key: &str) -> Option<String> {
    let resp = node.range(PbRangeRequest { key: key.into(), ..Default::default() }).await.expect("linearizable read");
    resp.kvs.first().map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_refuses_leader_only_writes_instead_of_forwarding() {
    let c = Cluster::start(3, |_| {}).await;
    let leader = c.leader().await;
    let follower = (leader + 1) % 3;
    let r = c.node(follower).txn_local(put_txn("f", "from-follower")).await;
    assert!(matches!(r, Err(StoreError::NotLeader)), "got {r:?}");
    c.node(leader).txn_local(put_txn("f", "from-leader")).await.expect("the leader writes");
    assert_eq!(value(c.node(follower), "f").await.as_deref(), Some("from-leader"));
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposed_leaders_write_fails_and_never_applies() {
    let c = Cluster::start(3, |_| {}).await;
    let old = c.leader().await;
    c.node(old).txn_local(put_txn("k", "v1")).await.expect("written while leading");
    c.isolate(old);
    let majority: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = c.leader_among(&majority).await;
    c.node(new).txn_local(put_txn("k", "v2")).await.expect("the new leader writes");

    // The cut-off leader may still believe it leads: its proposal cannot commit.
    let stale = c.node(old).txn_local(put_txn("k", "stale")).await;
    assert!(
        matches!(stale, Err(StoreError::Timeout | StoreError::NoLeader | StoreError::NotLeader)),
        "a deposed leader's write must fail, got {stale:?}"
    );
    c.heal();
    wait_for(Duration::from_secs(15), "the old leader rejoins as a follower", || async {
        let m = c.node(old).raft().metrics().borrow().clone();
        (m.current_leader.is_some() && m.current_leader != Some(c.node(old).id())).then_some(())
    })
    .await;
    for i in 0..3 {
        assert_eq!(value(c.node(i), "k").await.as_deref(), Some("v2"), "replica {i} never applied the stale write");
    }
    let again = c.node(old).txn_local(put_txn("k", "late")).await;
    assert!(matches!(again, Err(StoreError::NotLeader)), "got {again:?}");
    c.stop_all().await;
}
