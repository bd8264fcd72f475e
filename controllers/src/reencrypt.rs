//! Re-encryption of Secrets after a key rotation (see `flotilla_apiserver::encryption`): on
//! every term, the leader rewrites each Secret whose stored value is plaintext or sealed with
//! a key that is no longer the first of the key file, so the old key can then be dropped.
//!
//! Invariants:
//! - A rewrite is an ordinary guarded update at the mod revision just read: a Secret changed
//!   meanwhile is left alone (its writer sealed it with the current key already).
//! - The objects do not change, only their stored form (and so their resourceVersion, as
//!   upstream's `kubectl replace`-based rotation does).
//! - Writes are fenced like every leader component's: a deposed leader stops at once.

use std::sync::Arc;

use flotilla_apiserver::encryption::{Encryption, SEALED_PREFIX};
use flotilla_apiserver::storage::Storage;
use flotilla_store::mvcc::key_range::prefix_end;
use flotilla_store::pb::PbRangeRequest;
use flotilla_store::StoreNode;
use futures::FutureExt;

use crate::leadership::{Component, LeaderContext};

/// Secrets read per page.
const PAGE: i64 = 500;

/// The re-encrypter for `node` with `enc`.
pub fn component(node: Arc<StoreNode>, enc: Arc<Encryption>) -> Component {
    Arc::new(move |ctx: LeaderContext| {
        let (node, enc) = (node.clone(), enc.clone());
        async move {
            tokio::select! {
                _ = ctx.cancel.cancelled() => {}
                result = reencrypt(node, enc) => match result {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(secrets = n, "Secrets re-sealed with the current encryption key"),
                    Err(e) => tracing::warn!(error = %e, "re-encrypting Secrets failed; the next term retries"),
                },
            }
        }
        .boxed()
    })
}

/// Rewrite every stale Secret; returns how many were rewritten.
pub async fn reencrypt(node: Arc<StoreNode>, enc: Arc<Encryption>) -> Result<usize, String> {
    let storage = Storage::fenced(node.clone()).with_encryption(Some(enc.clone()));
    let end = prefix_end(SEALED_PREFIX);
    let mut from = SEALED_PREFIX.to_vec();
    let mut rewritten = 0;
    loop {
        let req = PbRangeRequest { key: from.clone(), range_end: end.clone(), limit: PAGE, ..Default::default() };
        let page = node.range(req).await.map_err(|e| e.to_string())?;
        for kv in page.kvs.iter().filter(|kv| enc.is_stale(&kv.key, &kv.value)) {
            let stored = storage.decode(kv.clone()).map_err(|e| e.to_string())?;
            if storage
                .update(&kv.key, &stored.object, kv.mod_revision, &[], &[])
                .await
                .map_err(|e| e.to_string())?
                .is_ok()
            {
                rewritten += 1;
            }
        }
        match page.kvs.last() {
            Some(last) if page.more => from = [last.key.as_slice(), b"\0"].concat(),
            _ => return Ok(rewritten),
        }
    }
}
