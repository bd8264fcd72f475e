//! Payloads of the peer protocol as a peer sends them (append-entries, vote, snapshot chunk,
//! forwarded client request): decoded with the store's own bounded codec to a message or an
//! error, never a panic or an unbounded allocation.
#![no_main]

use flotilla_store::raft::forward::ForwardRequest;
use flotilla_store::raft::service::decode;
use flotilla_store::types::{NodeId, TypeConfig};
use libfuzzer_sys::fuzz_target;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<AppendEntriesRequest<TypeConfig>>(data);
    let _ = decode::<VoteRequest<NodeId>>(data);
    let _ = decode::<InstallSnapshotRequest<TypeConfig>>(data);
    let _ = decode::<ForwardRequest>(data);
});
