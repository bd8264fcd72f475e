//! Lease, Cluster and Maintenance services through `etcd_client`.

use etcd_client::{LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions};
use tonic::Code;

use crate::support::{events, grpc, next, within, Solo, DELETE};

#[tokio::test]
async fn lease_lifecycle_and_revoke_deletes_attached_keys() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let lease = c.lease_grant(60, None).await.unwrap();
    assert!(lease.id() > 0);
    assert_eq!(lease.ttl(), 60);
    c.put("l/a", "1", Some(PutOptions::new().with_lease(lease.id()))).await.unwrap();
    c.put("l/b", "2", Some(PutOptions::new().with_lease(lease.id()))).await.unwrap();

    let (mut keeper, mut answers) = c.lease_keep_alive(lease.id()).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let answer = within("keep-alive answer", answers.message()).await.unwrap().unwrap();
    assert_eq!((answer.id(), answer.ttl()), (lease.id(), 60));

    let ttl = c.lease_time_to_live(lease.id(), Some(LeaseTimeToLiveOptions::new().with_keys())).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 60);
    assert_eq!(ttl.keys(), [b"l/a".to_vec(), b"l/b".to_vec()]);
    let listed: Vec<i64> = c.leases().await.unwrap().leases().iter().map(|l| l.id()).collect();
    assert_eq!(listed, [lease.id()]);

    let mut w = c.watch("l/", Some(WatchOptions::new().with_prefix())).await.unwrap();
    next(&mut w).await;
    let revoked = c.lease_revoke(lease.id()).await.unwrap();
    let revoke_rev = revoked.header().unwrap().revision();
    let resp = next(&mut w).await;
    let deleted: Vec<(i32, String)> = events(&resp).into_iter().map(|(t, k, _, _)| (t, k)).collect();
    assert_eq!(deleted, [(DELETE, "l/a".to_string()), (DELETE, "l/b".to_string())]);
    assert!(resp.events().iter().all(|e| e.kv().unwrap().mod_revision() == revoke_rev));
    assert_eq!(c.get("l/", Some(etcd_client::GetOptions::new().with_prefix())).await.unwrap().count(), 0);

    // A revoked lease: keep-alive answers TTL 0, time-to-live answers -1, revoke is an error.
    keeper.keep_alive().await.unwrap();
    let gone = within("keep-alive answer", answers.message()).await.unwrap().unwrap();
    assert_eq!(gone.ttl(), 0);
    let ttl = c.lease_time_to_live(lease.id(), None).await.unwrap();
    assert_eq!(ttl.ttl(), -1);
    let s = grpc(c.lease_revoke(lease.id()).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::NotFound, "etcdserver: requested lease not found"));
    solo.stop().await;
}

#[tokio::test]
async fn lease_grant_with_an_id_in_use_fails() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    let granted = c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(42))).await.unwrap();
    assert_eq!(granted.id(), 42);
    let s = grpc(c.lease_grant(30, Some(LeaseGrantOptions::new().with_id(42))).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::FailedPrecondition, "etcdserver: lease already exists"));
    let s = grpc(c.put("k", "v", Some(PutOptions::new().with_lease(43))).await.unwrap_err());
    assert_eq!(s.message(), "etcdserver: requested lease not found");
    solo.stop().await;
}

#[tokio::test]
async fn member_list_status_alarm_and_snapshot() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    c.put("k", "v", None).await.unwrap();

    let members = c.member_list().await.unwrap();
    let [m] = members.members() else { panic!("expected one member: {:?}", members.members()) };
    assert_eq!((m.id(), m.name(), m.is_learner()), (solo.node.id(), "solo", false));
    assert_eq!(m.client_urls(), [solo.endpoint.as_str()]);
    assert!(m.peer_urls()[0].starts_with("http://127.0.0.1:"));

    let status = c.status().await.unwrap();
    assert_eq!(status.leader(), solo.node.id());
    assert_eq!(status.header().unwrap().member_id(), solo.node.id());
    assert!(status.raft_index() > 0 && status.raft_applied_index() > 0 && status.raft_term() > 0);
    assert!(status.db_size() > 0);
    assert!(status.errors().is_empty());
    assert_eq!(status.version(), "3.4.0");

    assert!(c
        .alarm(etcd_client::AlarmAction::Get, etcd_client::AlarmType::None, None)
        .await
        .unwrap()
        .alarms()
        .is_empty());
    c.defragment().await.unwrap();
    let s = grpc(c.hash_kv(0).await.unwrap_err());
    assert_eq!(s.code(), Code::Unimplemented);

    let mut stream = c.snapshot().await.unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = within("snapshot frame", stream.message()).await.unwrap() {
        frames.push(frame);
    }
    let (digest, data) = frames.split_last().unwrap();
    let len: usize = data.iter().map(|f| f.blob().len()).sum();
    assert_eq!(len % 512, 0);
    assert_eq!(digest.blob().len(), 32);
    assert_eq!(data.last().unwrap().remaining_bytes(), 0);
    assert_eq!(data[0].remaining_bytes() as usize, len - data[0].blob().len());
    solo.stop().await;
}

#[tokio::test]
async fn learner_add_and_remove() {
    let solo = Solo::start().await;
    let mut c = solo.client.clone();
    // A learner does not count towards the quorum, so one that never starts is harmless.
    let added = c
        .member_add(["http://127.0.0.1:9"], Some(etcd_client::MemberAddOptions::new().with_is_learner()))
        .await
        .unwrap();
    let learner = added.member().unwrap().clone();
    assert!(learner.is_learner() && learner.name().is_empty());
    assert_eq!(learner.peer_urls(), ["http://127.0.0.1:9"]);
    assert_eq!(added.member_list().len(), 2);

    let s = grpc(c.member_add(["http://127.0.0.1:9"], None).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::FailedPrecondition, "etcdserver: Peer URLs already exists"));
    let s = grpc(c.member_update(learner.id(), vec!["http://127.0.0.1:10".to_string()]).await.unwrap_err());
    assert_eq!(s.code(), Code::Unimplemented);

    let removed = c.member_remove(learner.id()).await.unwrap();
    assert_eq!(removed.members().len(), 1);
    let s = grpc(c.member_remove(learner.id()).await.unwrap_err());
    assert_eq!((s.code(), s.message()), (Code::NotFound, "etcdserver: member not found"));
    solo.stop().await;
}
