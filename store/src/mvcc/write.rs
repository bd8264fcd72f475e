//! Writes: Put, DeleteRange, and the per-key change primitive they share.

use rocksdb::WriteBatch;

use super::key_index::Version;
use super::key_range::KeyRange;
use super::revision::{Record, Revision};
use super::{Mvcc, CF_KV, EVENT_DELETE, EVENT_PUT};
use crate::error::StoreError;
use crate::pb::{PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse};
use crate::types::Rejection;

/// The changes of one request: they share `main` and number themselves with `sub`.
pub(super) struct Changes {
    pub main: i64,
    next_sub: i64,
    pub events: Vec<PbEvent>,
}

impl Changes {
    pub fn new(main: i64) -> Self {
        Self { main, next_sub: 0, events: Vec::new() }
    }

    fn next(&mut self) -> Revision {
        let rev = Revision::new(self.main, self.next_sub);
        self.next_sub += 1;
        rev
    }
}

impl Mvcc {
    /// What would make this Put refuse, checked before anything changes.
    pub(super) fn check_put(&self, req: &PbPutRequest) -> Result<(), Rejection> {
        if req.lease != 0 && !req.ignore_lease && !self.leases.contains_key(&req.lease) {
            return Err(Rejection::LeaseNotFound);
        }
        if (req.ignore_value || req.ignore_lease) && self.latest(&req.key).is_none() {
            return Err(Rejection::KeyNotFound);
        }
        Ok(())
    }

    /// Put; the caller ran [`Mvcc::check_put`] first.
    pub(super) fn put(
        &mut self,
        w: &mut Changes,
        req: &PbPutRequest,
        batch: &mut WriteBatch,
    ) -> Result<PbPutResponse, StoreError> {
        let prev = self.latest(&req.key).copied();
        let prev_kv = match &prev {
            Some(v) => Some(self.key_value(&req.key, v, true)?),
            None => None,
        };
        let value = match (&prev_kv, req.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => req.lease,
        };
        let rev = w.next();
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev.main, 1),
        };
        let rec = Record { key: req.key.clone(), value, create_revision, version, lease, tombstone: false };
        self.attach(&req.key, prev.map_or(0, |p| p.lease), lease);
        let kv = self.record(rev, rec, batch)?;
        w.events.push(PbEvent { r#type: EVENT_PUT, kv: Some(kv), prev_kv: prev_kv.clone() });
        Ok(PbPutResponse { header: None, prev_kv: prev_kv.filter(|_| req.prev_kv) })
    }

    pub(super) fn delete_range(
        &mut self,
        w: &mut Changes,
        req: &PbDeleteRequest,
        batch: &mut WriteBatch,
    ) -> Result<PbDeleteResponse, StoreError> {
        let keys = self.live_keys(&KeyRange::new(&req.key, &req.range_end));
        let mut prev_kvs = Vec::new();
        for key in &keys {
            if let Some(prev) = self.delete_key(w, key, req.prev_kv, batch)? {
                prev_kvs.push(prev);
            }
        }
        Ok(PbDeleteResponse { header: None, deleted: keys.len() as i64, prev_kvs })
    }

    /// Write a tombstone for a live key; returns its previous value when `want_prev`.
    pub(super) fn delete_key(
        &mut self,
        w: &mut Changes,
        key: &[u8],
        want_prev: bool,
        batch: &mut WriteBatch,
    ) -> Result<Option<PbKeyValue>, StoreError> {
        let prev = *self.latest(key).expect("delete_key is called for live keys only");
        let prev_kv = self.key_value(key, &prev, true)?;
        let rev = w.next();
        let rec =
            Record { key: key.to_vec(), value: Vec::new(), create_revision: 0, version: 0, lease: 0, tombstone: true };
        self.attach(key, prev.lease, 0);
        self.record(rev, rec, batch)?;
        w.events.push(PbEvent {
            r#type: EVENT_DELETE,
            kv: Some(PbKeyValue { key: key.to_vec(), mod_revision: rev.main, ..Default::default() }),
            prev_kv: Some(prev_kv.clone()),
        });
        Ok(want_prev.then_some(prev_kv))
    }

    /// Move a key from one lease's key set to another's (0 = no lease).
    fn attach(&mut self, key: &[u8], from: i64, to: i64) {
        if from == to {
            return;
        }
        if let Some(l) = self.leases.get_mut(&from) {
            l.keys.remove(key);
        }
        if let Some(l) = self.leases.get_mut(&to) {
            l.keys.insert(key.to_vec());
        }
    }

    /// Stage a record: index entry, pending value, batch write. Returns the new key-value.
    fn record(&mut self, rev: Revision, rec: Record, batch: &mut WriteBatch) -> Result<PbKeyValue, StoreError> {
        let bytes = bincode::serialize(&rec).map_err(StoreError::storage)?;
        batch.put_cf(self.cf(CF_KV), rev.to_key(), bytes);
        let v = Version {
            rev,
            create_revision: rec.create_revision,
            version: rec.version,
            lease: rec.lease,
            tombstone: rec.tombstone,
        };
        self.index.entry(rec.key.clone()).or_default().push(v);
        let kv = PbKeyValue {
            key: rec.key,
            create_revision: rec.create_revision,
            mod_revision: rev.main,
            version: rec.version,
            value: rec.value.clone(),
            lease: rec.lease,
        };
        self.pending.insert(rev, rec.value);
        Ok(kv)
    }
}
