//! The etcd v3 gRPC API (KV, Watch, Lease, Cluster, Maintenance) on top of [`StoreNode`].
//!
//! Each service is a thin adapter: it validates the request the way etcd's `v3rpc` layer
//! does, calls one `StoreNode` method, and stamps the response with `node.header()`. The
//! semantics (revisions, compaction, leases, linearizability) live in the node; this module
//! owns only what is specific to the wire: etcd's exact error statuses ([`status`], the one
//! place they are chosen), the watch stream protocol, the lease keep-alive stream, and the
//! snapshot stream format.
//!
//! Request size: a request whose protobuf encoding exceeds [`MAX_REQUEST_BYTES`] is refused
//! with etcd's "request is too large" before anything is changed; gRPC refuses to even
//! decode one beyond [`MAX_DECODING_BYTES`] (as etcd, which lets its gRPC layer accept
//! `--max-request-bytes` plus 512 KiB of overhead).
//!
//! Auth is not served: etcd clients with auth disabled never call it.
//!
//! Known client quirk: etcdctl 3.4 runs `endpoint status`, `defrag`, `alarm disarm`,
//! `endpoint hashkv` and `move-leader` over a fresh connection per endpoint and sends the
//! endpoint string verbatim as the HTTP/2 `:authority`. hyper refuses `http://host:port`
//! there as malformed (grpc-go does not check), so client connections pass through
//! [`authority::AuthorityFix`], which strips the scheme before hyper sees the header.

pub mod authority;
mod cluster;
mod hpack;
mod kv;
mod lease;
mod maintenance;
pub mod snapshot;
mod watch;

use std::sync::Arc;

use tonic::service::Routes;
use tonic::{Code, Status};

use crate::config::MAX_REQUEST_BYTES;
use crate::error::StoreError;
use crate::node::StoreNode;
use crate::pb::{PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbWatchServer};
use crate::types::Rejection;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::MaintenanceService;
pub use watch::{WatchService, PROGRESS_NOTIFY_INTERVAL};

/// The largest message gRPC decodes: the request limit plus etcd's allowance for the gRPC
/// envelope (`grpcOverheadBytes`). Requests between the two limits are decoded and then
/// refused with "request is too large"; larger ones never get decoded (tonic answers
/// `OutOfRange`), which bounds the memory a client can make the server allocate.
pub const MAX_DECODING_BYTES: usize = MAX_REQUEST_BYTES + 512 * 1024;

/// The five etcd services over `node`, ready for `tonic::transport::Server::add_routes`.
pub fn routes(node: Arc<StoreNode>) -> Routes {
    routes_with_watch(node.clone(), WatchService::new(node))
}

/// As [`routes`], with a configured watch service (tests shorten the progress interval).
pub fn routes_with_watch(node: Arc<StoreNode>, watch: WatchService) -> Routes {
    Routes::new(PbKvServer::new(KvService::new(node.clone())).max_decoding_message_size(MAX_DECODING_BYTES))
        .add_service(PbWatchServer::new(watch).max_decoding_message_size(MAX_DECODING_BYTES))
        .add_service(PbLeaseServer::new(LeaseService::new(node.clone())).max_decoding_message_size(MAX_DECODING_BYTES))
        .add_service(
            PbClusterServer::new(ClusterService::new(node.clone())).max_decoding_message_size(MAX_DECODING_BYTES),
        )
        .add_service(
            PbMaintenanceServer::new(MaintenanceService::new(node)).max_decoding_message_size(MAX_DECODING_BYTES),
        )
}

/// Refuse a request larger than etcd's `--max-request-bytes`, before it changes anything.
fn check_size(req: &impl prost::Message) -> Result<(), Status> {
    if req.encoded_len() > MAX_REQUEST_BYTES {
        return Err(status(StoreError::TooLarge));
    }
    Ok(())
}

/// The gRPC status for a store error, with etcd's code and exact message: etcd clients
/// recognise errors by their message (`rpctypes.errStringToError`), so these must not drift.
pub fn status(e: StoreError) -> Status {
    let etcd = |code: Code, msg: &str| Status::new(code, format!("etcdserver: {msg}"));
    match e {
        StoreError::Rejected(r) => match r {
            Rejection::Compacted { .. } => etcd(Code::OutOfRange, "mvcc: required revision has been compacted"),
            Rejection::FutureRevision => etcd(Code::OutOfRange, "mvcc: required revision is a future revision"),
            Rejection::LeaseNotFound => etcd(Code::NotFound, "requested lease not found"),
            Rejection::LeaseExists => etcd(Code::FailedPrecondition, "lease already exists"),
            Rejection::KeyNotFound => etcd(Code::InvalidArgument, "key not found"),
            Rejection::DuplicateKey => etcd(Code::InvalidArgument, "duplicate key given in txn request"),
            Rejection::Invalid(m) => etcd(Code::InvalidArgument, &m),
            Rejection::NoSpace => etcd(Code::ResourceExhausted, "mvcc: database space exceeded"),
        },
        StoreError::NoLeader => etcd(Code::Unavailable, "no leader"),
        StoreError::Timeout => etcd(Code::Unavailable, "request timed out"),
        StoreError::LeaderUnreachable { .. } => etcd(Code::Unavailable, "leader changed"),
        StoreError::TooLarge => etcd(Code::InvalidArgument, "request is too large"),
        StoreError::MemberNotFound => etcd(Code::NotFound, "member not found"),
        StoreError::Membership(m) => etcd(Code::FailedPrecondition, &m),
        StoreError::Stopped => etcd(Code::Unavailable, "server stopped"),
        StoreError::NotLeader => etcd(Code::Unavailable, "not leader"),
        StoreError::BadLeaderTransferee => etcd(Code::FailedPrecondition, "bad leader transferee"),
        StoreError::LeaderTransferTimeout => {
            etcd(Code::Unavailable, "request timed out, leader transfer took too long")
        }
        StoreError::Storage(m) => {
            tracing::warn!(error = %m, "storage error answered to a client");
            etcd(Code::Internal, &format!("storage: {m}"))
        }
        StoreError::InvalidArgument(m) => {
            // A few refusals that etcd files under other codes; clients match on both.
            let code = match m.as_str() {
                "too large lease TTL" => Code::OutOfRange,
                "Peer URLs already exists" | "can only promote a learner member" => Code::FailedPrecondition,
                _ => Code::InvalidArgument,
            };
            etcd(code, &m)
        }
    }
}

/// Whether the client asked to be served only while the cluster has a leader: etcdctl and
/// clientv3's `WithRequireLeader` (used for watches and lease keep-alives) send the
/// `hasleader: true` metadata.
fn requires_leader<T>(req: &tonic::Request<T>) -> bool {
    req.metadata().get("hasleader").is_some_and(|v| v == "true")
}

/// Whether this replica knows a leader.
fn has_leader(node: &StoreNode) -> bool {
    node.raft().metrics().borrow().current_leader.is_some()
}

/// Refuse a stream that requires a leader when there is none, as etcd's interceptor.
fn check_leader<T>(req: &tonic::Request<T>, node: &StoreNode) -> Result<(), Status> {
    if requires_leader(req) && !has_leader(node) {
        return Err(status(StoreError::NoLeader));
    }
    Ok(())
}

/// What etcd answers for a request with an empty key.
fn empty_key() -> Status {
    status(StoreError::InvalidArgument("key is not provided".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcds_codes_and_messages() {
        let s = status(Rejection::Compacted { compact_revision: 5 }.into());
        assert_eq!(
            (s.code(), s.message()),
            (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
        );
        let s = status(Rejection::DuplicateKey.into());
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: duplicate key given in txn request"));
        let s = status(Rejection::LeaseNotFound.into());
        assert_eq!((s.code(), s.message()), (Code::NotFound, "etcdserver: requested lease not found"));
        let s = status(Rejection::NoSpace.into());
        assert_eq!((s.code(), s.message()), (Code::ResourceExhausted, "etcdserver: mvcc: database space exceeded"));
        let s = status(StoreError::BadLeaderTransferee);
        assert_eq!((s.code(), s.message()), (Code::FailedPrecondition, "etcdserver: bad leader transferee"));
        let s = status(StoreError::TooLarge);
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: request is too large"));
        let s = status(StoreError::NoLeader);
        assert_eq!((s.code(), s.message()), (Code::Unavailable, "etcdserver: no leader"));
        let s = status(StoreError::InvalidArgument("too large lease TTL".into()));
        assert_eq!((s.code(), s.message()), (Code::OutOfRange, "etcdserver: too large lease TTL"));
        let s = status(StoreError::InvalidArgument("key is not provided".into()));
        assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "etcdserver: key is not provided"));
        assert_eq!(status(StoreError::Storage("disk".into())).code(), Code::Internal);
    }

    #[test]
    fn size_check_refuses_only_past_the_limit() {
        let small = crate::pb::PbPutRequest { key: b"k".to_vec(), value: vec![0; 1024], ..Default::default() };
        assert!(check_size(&small).is_ok());
        let big =
            crate::pb::PbPutRequest { key: b"k".to_vec(), value: vec![0; MAX_REQUEST_BYTES], ..Default::default() };
        assert_eq!(check_size(&big).unwrap_err().message(), "etcdserver: request is too large");
    }
}
