//! Range: read keys at a revision, with etcd's filters, sorting, limit, and count.
//!
//! Order of operations follows etcd's `applierV3backend.Range`: collect the keys live at the
//! revision, count them (count ignores limit and filters), drop those outside the min/max
//! mod/create revision filters, sort, cut at `limit` (setting `more`), and read values last
//! so that only returned keys cost a disk read.

use std::cmp::Ordering;

use super::key_index::Version;
use super::key_range::KeyRange;
use super::Mvcc;
use crate::error::StoreError;
use crate::pb::{PbKeyValue, PbRangeRequest, PbRangeResponse};

/// `RangeRequest.SortOrder`.
const SORT_DESCEND: i32 = 2;
/// `RangeRequest.SortTarget`.
const TARGET_KEY: i32 = 0;
const TARGET_VERSION: i32 = 1;
const TARGET_CREATE: i32 = 2;
const TARGET_MOD: i32 = 3;
const TARGET_VALUE: i32 = 4;

impl Mvcc {
    /// Serve a Range request from local state.
    pub fn range(&self, req: &PbRangeRequest) -> Result<PbRangeResponse, StoreError> {
        self.range_with_latest(req, self.current_rev)
    }

    /// Range where "latest" means `latest`: inside a Txn that has written, its own in-progress
    /// revision, so that later reads of the Txn see its earlier writes.
    pub(super) fn range_with_latest(&self, req: &PbRangeRequest, latest: i64) -> Result<PbRangeResponse, StoreError> {
        let rev = if req.revision <= 0 { latest } else { self.check_read_revision(req.revision)? };
        let range = KeyRange::new(&req.key, &req.range_end);
        let mut found: Vec<(&[u8], Version)> = match range.bounds() {
            None => Vec::new(),
            Some(bounds) => {
                self.index.range::<[u8], _>(bounds).filter_map(|(k, h)| h.at(rev).map(|v| (k.as_slice(), *v))).collect()
            }
        };
        let count = found.len() as i64;
        let mut resp = PbRangeResponse { header: self.header(), count, ..Default::default() };
        if req.count_only {
            return Ok(resp);
        }
        found.retain(|(_, v)| passes_filters(req, v));
        // As etcd, "no order" with a target other than KEY sorts ascending.
        let mut kvs = if req.sort_target == TARGET_VALUE {
            // Value sorting needs every value before the cut.
            let mut kvs = self.fetch(&found, true)?;
            kvs.sort_by(|a, b| a.value.cmp(&b.value));
            if req.sort_order == SORT_DESCEND {
                kvs.reverse();
            }
            kvs
        } else {
            sort_versions(req, &mut found);
            Vec::new()
        };
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let more = limit > 0 && found.len().max(kvs.len()) > limit;
        if kvs.is_empty() {
            if more {
                found.truncate(limit);
            }
            kvs = self.fetch(&found, !req.keys_only)?;
        } else {
            if more {
                kvs.truncate(limit);
            }
            if req.keys_only {
                kvs.iter_mut().for_each(|kv| kv.value.clear());
            }
        }
        resp.more = more;
        resp.kvs = kvs;
        Ok(resp)
    }

    fn fetch(&self, found: &[(&[u8], Version)], with_value: bool) -> Result<Vec<PbKeyValue>, StoreError> {
        found.iter().map(|(k, v)| self.key_value(k, v, with_value)).collect()
    }
}

fn passes_filters(req: &PbRangeRequest, v: &Version) -> bool {
    let above = |min: i64, x: i64| min == 0 || x >= min;
    let below = |max: i64, x: i64| max == 0 || x <= max;
    above(req.min_mod_revision, v.rev.main)
        && below(req.max_mod_revision, v.rev.main)
        && above(req.min_create_revision, v.create_revision)
        && below(req.max_create_revision, v.create_revision)
}

/// Sort by any target but VALUE. Keys come out of the index ascending, so ascending by key
/// (and "no order" with the key target) needs no work; as in etcd, "no order" with another
/// target sorts ascending.
fn sort_versions(req: &PbRangeRequest, found: &mut [(&[u8], Version)]) {
    let key_of = |v: &Version| -> i64 {
        match req.sort_target {
            TARGET_VERSION => v.version,
            TARGET_CREATE => v.create_revision,
            TARGET_MOD => v.rev.main,
            _ => 0,
        }
    };
    if req.sort_target != TARGET_KEY {
        // Stable: equal targets stay in key order.
        found.sort_by(|a, b| key_of(&a.1).cmp(&key_of(&b.1)).then(Ordering::Equal));
    }
    if req.sort_order == SORT_DESCEND {
        found.reverse();
    }
}
