//! etcd v3 gRPC request messages as a client sends them: protobuf-decoded, then checked as
//! the store checks a Txn before it enters the log. An error or a verdict, never a panic.
#![no_main]

use flotilla_store::mvcc::txn::check_txn_request;
use flotilla_store::pb::{PbPutRequest, PbRangeRequest, PbTxnRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(txn) = PbTxnRequest::decode(data) {
        let _ = check_txn_request(&txn);
    }
    let _ = PbPutRequest::decode(data);
    let _ = PbRangeRequest::decode(data);
});
