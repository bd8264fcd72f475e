//! KV service through `etcd_client`.

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use flotilla_store::config::MAX_REQUEST_BYTES;
use tonic::Code;

use crate::support::{grpc, Solo};

#[tokio::test]
async fn put_get_prefix_limit_revision_keys_and_count_only() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let first = c.put("pods/a", "1", None).await.unwrap();
    let first_rev = first.header().unwrap().revision();
    c.put("pods/b", "2", None).await.unwrap();
    c.put("pods/c", "3", None).await.unwrap();
    c.put("pods/a", "4", None).await.unwrap();
    c.put("podsz", "other", None).await.unwrap();

    let got = c.get("pods/", Some(GetOptions::new().with_prefix())).await.unwrap();
    let h = got.header().unwrap();
    assert_eq!((h.cluster_id(), h.member_id()), (solo.node.cluster_id(), solo.node.id()));
    assert_eq!(h.revision(), first_rev + 4);
    let kvs: Vec<(&str, &str)> = got.kvs().iter().map(|kv| (kv.key_str().unwrap(), kv.value_str().unwrap())).collect();
    assert_eq!(kvs, [("pods/a", "4"), ("pods/b", "2"), ("pods/c", "3")]);
    assert_eq!(got.kvs()[0].version(), 2);
    assert_eq!(got.kvs()[0].create_revision(), first_rev);

    let limited = c.get("pods/", Some(GetOptions::new().with_prefix().with_limit(2))).await.unwrap();
    assert_eq!(limited.kvs().len(), 2);
    assert!(limited.more());
    assert_eq!(limited.count(), 3);

    let old = c.get("pods/a", Some(GetOptions::new().with_revision(first_rev))).await.unwrap();
    assert_eq!(old.kvs()[0].value_str().unwrap(), "1");
    // Header revision is the current one, not the one read at.
    assert_eq!(old.header().unwrap().revision(), first_rev + 4);

    let keys = c.get("pods/", Some(GetOptions::new().with_prefix().with_keys_only())).await.unwrap();
    assert!(keys.kvs().iter().all(|kv| kv.value().is_empty()));
    assert_eq!(keys.kvs().len(), 3);

    let count = c.get("pods/", Some(GetOptions::new().with_prefix().with_count_only())).await.unwrap();
    assert_eq!((count.count(), count.kvs().len()), (3, 0));

    let future = c.get("pods/a", Some(GetOptions::new().with_revision(first_rev + 100))).await.unwrap_err();
    let s = grpc(future);
    assert_eq!((s.code(), s.message()), (Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision"));
    solo.stop().await;
}

#[tokio::test]
async fn delete_prefix_returns_prev_kvs_and_bad_input_changes_nothing() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    c.put("d/1", "a", None).await.unwrap();
    c.put("d/2", "b", Some(PutOptions::new().with_prev_key())).await.unwrap();
    let put = c.put("d/2", "c", Some(PutOptions::new().with_prev_key())).await.unwrap();
    assert_eq!(put.prev_key().unwrap().value_str().unwrap(), "b");

    let del = c.delete("d/", Some(DeleteOptions::new().with_prefix().with_prev_key())).await.unwrap();
    assert_eq!(del.deleted(), 2);
    let prev: Vec<&str> = del.prev_kvs().iter().map(|kv| kv.value_str().unwrap()).collect();
    assert_eq!(prev, ["a", "c"]);
    let rev = del.header().unwrap().revision();
    assert_eq!(c.get("d/", Some(GetOptions::new().with_prefix())).await.unwrap().count(), 0);

    let s = grpc(c.put("", "v", None).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: key is not provided"));
    let s = grpc(c.get("", None).await.unwrap_err());
    assert_eq!(s.message(), "etcdserver: key is not provided");
    let big = vec![b'x'; MAX_REQUEST_BYTES + 1024];
    let s = grpc(c.put("big", big, None).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: request is too large"));
    let huge = vec![b'x'; 3 * MAX_REQUEST_BYTES];
    assert!(c.put("huge", huge, None).await.is_err());
    // Nothing above changed the store.
    assert_eq!(solo.node.current_revision(), rev);
    solo.stop().await;
}

#[tokio::test]
async fn txn_branches_and_duplicate_keys() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let rev = c.put("t", "v1", None).await.unwrap().header().unwrap().revision();

    let cas = |expect: i64, value: &str| {
        Txn::new()
            .when([Compare::mod_revision("t", CompareOp::Equal, expect)])
            .and_then([TxnOp::put("t", value, None)])
            .or_else([TxnOp::get("t", None)])
    };
    let won = c.txn(cas(rev, "v2")).await.unwrap();
    assert!(won.succeeded());
    assert_eq!(won.header().unwrap().revision(), rev + 1);

    let lost = c.txn(cas(rev, "v3")).await.unwrap();
    assert!(!lost.succeeded());
    assert_eq!(lost.header().unwrap().revision(), rev + 1);
    match &lost.op_responses()[..] {
        [TxnOpResponse::Get(g)] => assert_eq!(g.kvs()[0].value_str().unwrap(), "v2"),
        other => panic!("unexpected responses {other:?}"),
    }

    let dup = Txn::new().and_then([TxnOp::put("x", "1", None), TxnOp::put("x", "2", None)]);
    let s = grpc(c.txn(dup).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: duplicate key given in txn request"));
    assert_eq!(solo.node.current_revision(), rev + 1);
    solo.stop().await;
}

#[tokio::test]
async fn compaction_makes_old_revisions_unreadable() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let first = c.put("k", "1", None).await.unwrap().header().unwrap().revision();
    c.put("k", "2", None).await.unwrap();
    let third = c.put("k", "3", None).await.unwrap().header().unwrap().revision();

    c.compact(third, Some(etcd_client::CompactionOptions::new().with_physical())).await.unwrap();
    let s = grpc(c.get("k", Some(GetOptions::new().with_revision(first))).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted"));
    let at = c.get("k", Some(GetOptions::new().with_revision(third))).await.unwrap();
    assert_eq!(at.kvs()[0].value_str().unwrap(), "3");

    let again = grpc(c.compact(first, None).await.unwrap_err());
    assert_eq!(again.message(), "etcdserver: mvcc: required revision has been compacted");
    solo.stop().await;
}
