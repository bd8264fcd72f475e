//! The compactor: on the leader, every interval, compact the store's history to the
//! revision it had one interval earlier — kube-apiserver's `--etcd-compaction-interval`
//! (5 minutes by default), which etcd's periodic auto-compaction resembles. Without it the
//! history of every key grows forever.
//!
//! Invariants:
//! - at least one interval of history is always kept: a watch or a paged list may resume
//!   from any revision written in the last interval (older ones get 410 Gone, as upstream);
//! - only the leader compacts (a leader-only component); a new leader starts counting its
//!   own interval, so a leader change delays a compaction, never hastens one;
//! - compacting is idempotent in effect: a revision at or below the current compaction is
//!   skipped, not an error.

use std::sync::Arc;
use std::time::Duration;

use flotilla_store::StoreNode;
use futures::FutureExt;

use crate::leadership::{Component, LeaderContext};

/// Upstream's `--etcd-compaction-interval` default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The compactor for `node`, compacting every `interval`.
pub fn component(node: Arc<StoreNode>, interval: Duration) -> Component {
    Arc::new(move |ctx: LeaderContext| run(ctx, node.clone(), interval).boxed())
}

async fn run(ctx: LeaderContext, node: Arc<StoreNode>, interval: Duration) {
    // The revision seen one tick ago: the next compaction target.
    let mut previous: Option<i64> = None;
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let now = node.current_revision();
        if let Some(target) = previous.filter(|t| *t > node.compact_revision()) {
            match node.compact(target).await {
                Ok(_) => tracing::info!(revision = target, "history compacted"),
                Err(e) => tracing::warn!(revision = target, error = %e, "compaction failed; next interval retries"),
            }
        }
        previous = Some(now);
    }
}
