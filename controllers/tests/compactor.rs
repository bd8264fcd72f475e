//! The compactor over a real one-member store: history older than one interval goes,
//! the last interval's stays.

mod support;

use std::time::Duration;

use flotilla_store::pb::{PbPutRequest, PbRangeRequest};
use support::{until, Solo};

fn put(key: &str) -> PbPutRequest {
    PbPutRequest { key: key.as_bytes().to_vec(), value: b"v".to_vec(), ..Default::default() }
}

#[tokio::test]
async fn history_older_than_one_interval_is_compacted_and_the_last_interval_kept() {
    let solo = Solo::start().await;
    let interval = Duration::from_millis(300);
    let first = solo.node.put(put("/compactor/k")).await.unwrap().header.unwrap().revision;
    let (_stop, _task) = solo.lead(flotilla_controllers::compactor::component(solo.node.clone(), interval));
    // Keep writing, so every interval has history of its own.
    let node = solo.node.clone();
    let writer = tokio::spawn(async move {
        loop {
            node.put(put("/compactor/k")).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    until("a compaction past the first write", || solo.node.compact_revision() > first).await;
    writer.abort();
    let (compacted, current) = (solo.node.compact_revision(), solo.node.current_revision());
    assert!(compacted < current, "the last interval's history stays: compacted {compacted}, current {current}");
    let old = PbRangeRequest { key: b"/compactor/k".to_vec(), revision: first, ..Default::default() };
    let err = solo.node.range(old).await.expect_err("a compacted revision cannot be read");
    assert!(err.to_string().contains("compacted"), "{err}");
    let recent = PbRangeRequest { key: b"/compactor/k".to_vec(), revision: current, ..Default::default() };
    assert_eq!(solo.node.range(recent).await.unwrap().kvs.len(), 1);
}
