//! The in-memory history of one key (etcd's `keyIndex`).
//!
//! Invariants:
//! - `versions` is sorted by revision, strictly increasing.
//! - A tombstone is never the first entry after compaction (a compacted-away generation
//!   leaves nothing behind).
//! - `version` counts puts within the current generation; a tombstone has version 0 and ends
//!   the generation, so the next put starts at version 1 with a new create revision.

use super::revision::Revision;

/// Metadata of one change of a key; the value itself lives on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub rev: Revision,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub tombstone: bool,
}

#[derive(Clone, Debug, Default)]
pub struct KeyHistory {
    versions: Vec<Version>,
}

impl KeyHistory {
    pub fn push(&mut self, v: Version) {
        if let Some(last) = self.versions.last() {
            assert!(last.rev < v.rev, "key history must grow in revision order");
        }
        self.versions.push(v);
    }

    /// The live version visible at store revision `rev`, if any.
    pub fn at(&self, rev: i64) -> Option<&Version> {
        let idx = self.versions.partition_point(|v| v.rev.main <= rev);
        let v = self.versions.get(idx.checked_sub(1)?)?;
        (!v.tombstone).then_some(v)
    }

    /// The live latest version, if the key currently exists.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last().filter(|v| !v.tombstone)
    }

    /// The live version immediately before revision `rev` (what a change at `rev` replaced).
    pub fn before(&self, rev: Revision) -> Option<&Version> {
        let idx = self.versions.partition_point(|v| v.rev < rev);
        let v = self.versions.get(idx.checked_sub(1)?)?;
        (!v.tombstone).then_some(v)
    }

    /// Drop every version made obsolete by compacting at `rev`: all versions older than the
    /// newest one at or below `rev`, and that one too if it is a tombstone. Returns the
    /// revisions removed; the history may become empty.
    pub fn compact(&mut self, rev: i64) -> Vec<Revision> {
        let idx = self.versions.partition_point(|v| v.rev.main <= rev);
        if idx == 0 {
            return Vec::new();
        }
        let keep_from = if self.versions[idx - 1].tombstone { idx } else { idx - 1 };
        self.versions.drain(..keep_from).map(|v| v.rev).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(main: i64, create: i64, version: i64) -> Version {
        Version { rev: Revision::new(main, 0), create_revision: create, version, lease: 0, tombstone: false }
    }
    fn del(main: i64) -> Version {
        Version { rev: Revision::new(main, 0), create_revision: 0, version: 0, lease: 0, tombstone: true }
    }

    #[test]
    fn visibility_across_generations() {
        let mut h = KeyHistory::default();
        h.push(put(2, 2, 1));
        h.push(put(4, 2, 2));
        h.push(del(5));
        h.push(put(7, 7, 1));
        assert_eq!(h.at(1), None);
        assert_eq!(h.at(3).map(|v| v.version), Some(1));
        assert_eq!(h.at(4).map(|v| v.version), Some(2));
        assert_eq!(h.at(6), None);
        assert_eq!(h.at(9).map(|v| v.create_revision), Some(7));
        assert_eq!(h.before(Revision::new(4, 0)).map(|v| v.rev.main), Some(2));
        assert_eq!(h.before(Revision::new(7, 0)), None);
    }

    #[test]
    fn compaction_keeps_the_visible_version_and_drops_dead_generations() {
        let mut h = KeyHistory::default();
        h.push(put(2, 2, 1));
        h.push(put(4, 2, 2));
        h.push(del(5));
        h.push(put(7, 7, 1));
        assert_eq!(h.compact(4), vec![Revision::new(2, 0)]);
        assert_eq!(h.at(4).map(|v| v.version), Some(2));
        assert_eq!(h.compact(6), vec![Revision::new(4, 0), Revision::new(5, 0)]);
        assert_eq!(h.at(8).map(|v| v.version), Some(1));
        let mut d = KeyHistory::default();
        d.push(put(1, 1, 1));
        d.push(del(2));
        d.compact(3);
        assert!(d.is_empty());
    }
}
