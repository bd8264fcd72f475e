//! The store size guard in a three-replica in-process cluster with a tiny
//! `--quota-backend-bytes`: filling the store raises a replicated NOSPACE alarm that every
//! replica enforces (and keeps across a restart); deleting, compacting, defragmenting and
//! disarming is the way out.

mod support;

use std::time::Duration;

use flotilla_store::mvcc::alarm::{ALARM_NONE, ALARM_NOSPACE};
use flotilla_store::mvcc::key_range::prefix_end;
use flotilla_store::pb::{PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnOpRequest, PbTxnRequest, PbTxnRequestOp};
use flotilla_store::types::Rejection;
use flotilla_store::StoreError;
use support::{wait_for, Cluster};

/// Small enough to fill in a few dozen writes, several times an empty database's size.
const QUOTA: u64 = 256 * 1024;
const VALUE_BYTES: usize = 16 * 1024;
/// Fill attempts before the test gives up: far more than QUOTA / VALUE_BYTES.
const MAX_FILL_WRITES: usize = 1000;

fn put(key: &str, value: Vec<u8>) -> PbPutRequest {
    PbPutRequest { key: key.into(), value, ..Default::default() }
}

fn no_space<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Rejected(Rejection::NoSpace))), "expected NoSpace, got {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_store_refuses_writes_everywhere_until_space_is_reclaimed_and_the_alarm_disarmed() {
    let mut c = Cluster::start(3, |cfg| cfg.quota_backend_bytes = QUOTA as i64).await;
    let writer = c.leader().await;
    let empty = c.node(writer).db_size();
    eprintln!("empty database: {empty} bytes");
    assert!(empty < QUOTA / 2, "the quota leaves room to fill");

    // Overwrite a few keys until the writer's database passes the quota.
    let mut refused = None;
    for n in 0..MAX_FILL_WRITES {
        if let Err(e) = c.node(writer).put(put(&format!("big/{}", n % 4), vec![b'x'; VALUE_BYTES])).await {
            refused = Some((n, e));
            break;
        }
    }
    let (writes, error) = refused.expect("the quota stops the writes");
    assert_eq!(error, StoreError::Rejected(Rejection::NoSpace), "after {writes} writes");
    let full = c.node(writer).db_size();
    assert!(full + VALUE_BYTES as u64 > QUOTA, "refused at {full} bytes");

    // The writer raised its alarm through Raft: every replica knows and refuses what adds data.
    let raised = (c.members[writer].id, ALARM_NOSPACE);
    for i in 0..3 {
        wait_for(Duration::from_secs(10), "the alarm reaches every replica", || async {
            c.node(i).local_alarms(ALARM_NONE).contains(&raised).then_some(())
        })
        .await;
    }
    assert!(c.node(writer).alarm_list(ALARM_NOSPACE).await.expect("alarm list").contains(&raised));
    let put_on_failure = PbTxnRequest {
        failure: vec![PbTxnRequestOp { request: Some(PbTxnOpRequest::RequestPut(put("t", b"1".to_vec()))) }],
        ..Default::default()
    };
    for i in 0..3 {
        no_space(c.node(i).put(put("small", b"1".to_vec())).await);
        no_space(c.node(i).txn(put_on_failure.clone()).await);
        no_space(c.node(i).lease_grant(0, 60).await);
    }
    // Reads still work.
    let resp = c.node(writer).range(PbRangeRequest { key: "big/0".into(), ..Default::default() }).await;
    assert_eq!(resp.expect("read").kvs.len(), 1);

    // The alarm is on disk: a restarted replica still enforces it.
    let other = (writer + 1) % 3;
    c.kill(other).await;
    c.restart(other).await;
    assert!(c.node(other).local_alarms(ALARM_NONE).contains(&raised), "alarm survives a restart");
    no_space(c.node(other).put(put("small", b"1".to_vec())).await);

    // The way out: delete, compact, defragment every member, disarm.
    let delete = PbDeleteRequest { key: "big/".into(), range_end: prefix_end(b"big/"), ..Default::default() };
    assert_eq!(c.node(writer).delete_range(delete).await.expect("deletes still work").deleted, 4);
    let rev = c.node(writer).current_revision();
    c.node(writer).compact(rev).await.expect("compaction still works");
    for i in 0..3 {
        wait_for(Duration::from_secs(10), "compaction applied", || async {
            (c.node(i).compact_revision() == rev).then_some(())
        })
        .await;
        let before = c.node(i).db_size();
        let after = c.node(i).defragment().await.expect("defragment");
        eprintln!("replica {i}: {before} -> {after} bytes");
        assert!(after < before && after < QUOTA, "replica {i}: {before} -> {after} bytes");
    }
    for (member, alarm) in c.node(writer).alarm_list(ALARM_NONE).await.expect("alarm list") {
        let changed = c.node(other).alarm_change(false, member, alarm).await.expect("disarm");
        assert_eq!(changed, vec![(member, alarm)]);
    }
    assert!(c.node(writer).alarm_list(ALARM_NONE).await.expect("alarm list").is_empty());
    for i in 0..3 {
        c.node(i).put(put(&format!("after/{i}"), b"1".to_vec())).await.expect("writes work again");
    }
    c.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_negative_quota_turns_the_guard_off() {
    let c = Cluster::start(3, |cfg| cfg.quota_backend_bytes = -1).await;
    let leader = c.leader().await;
    for n in 0..40 {
        c.node(leader).put(put(&format!("k{}", n % 4), vec![b'x'; VALUE_BYTES])).await.expect("no quota");
    }
    assert!(c.node(leader).db_size() > QUOTA, "the database grew past where the other test stops");
    assert!(c.node(leader).local_alarms(ALARM_NONE).is_empty());
    c.stop_all().await;
}
