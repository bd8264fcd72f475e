//! Revisions and the on-disk record of one key change.
//!
//! Every change gets a revision `(main, sub)`: `main` is the store revision of the request
//! that made it, `sub` its position inside that request (0, 1, 2... inside a Txn). The `kv`
//! column family is keyed by the 16-byte big-endian encoding of the revision, so iterating it
//! in byte order walks the history in revision order, which is what watch catch-up reads.

use serde::{Deserialize, Serialize};

/// A change's position in history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    pub main: i64,
    pub sub: i64,
}

impl Revision {
    pub fn new(main: i64, sub: i64) -> Self {
        Self { main, sub }
    }

    /// Big-endian bytes: byte order equals revision order (revisions are never negative).
    pub fn to_key(self) -> [u8; 16] {
        debug_assert!(self.main >= 0 && self.sub >= 0, "revisions are non-negative");
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.main.to_be_bytes());
        k[8..].copy_from_slice(&self.sub.to_be_bytes());
        k
    }

    /// Decode [`Revision::to_key`]; `None` for a key of the wrong length.
    pub fn from_key(k: &[u8]) -> Option<Self> {
        let main = i64::from_be_bytes(k.get(..8)?.try_into().ok()?);
        let sub = i64::from_be_bytes(k.get(8..16)?.try_into().ok()?);
        (k.len() == 16).then_some(Self { main, sub })
    }
}

/// One change as stored in the `kv` column family (the revision is the record's key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    pub create_revision: i64,
    /// 0 for a tombstone.
    pub version: i64,
    pub lease: i64,
    pub tombstone: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_revision_order() {
        let revs = [Revision::new(1, 0), Revision::new(1, 7), Revision::new(2, 0), Revision::new(256, 1)];
        for w in revs.windows(2) {
            assert!(w[0].to_key() < w[1].to_key());
            assert_eq!(Revision::from_key(&w[0].to_key()), Some(w[0]));
        }
        assert_eq!(Revision::from_key(&[1, 2, 3]), None);
    }
}
