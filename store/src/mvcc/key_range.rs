//! etcd's key-range convention: `[key, range_end)`, where an empty `range_end` means the
//! single key and `range_end == "\0"` means every key from `key` on.

use std::ops::Bound;

/// Bounds of a key range, as `BTreeMap::range` takes them.
pub type KeyBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRange {
    Single(Vec<u8>),
    /// Every key `>= start`.
    From(Vec<u8>),
    /// `start <= k < end`; never empty-by-construction-check: `end <= start` matches nothing.
    Between(Vec<u8>, Vec<u8>),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => KeyRange::Single(key.to_vec()),
            [0] => KeyRange::From(key.to_vec()),
            end => KeyRange::Between(key.to_vec(), end.to_vec()),
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(key) => k == key.as_slice(),
            KeyRange::From(start) => k >= start.as_slice(),
            KeyRange::Between(start, end) => k >= start.as_slice() && k < end.as_slice(),
        }
    }

    /// Bounds for `BTreeMap::range`, or `None` when the range is empty (the map would panic
    /// on an inverted range).
    pub fn bounds(&self) -> Option<KeyBounds<'_>> {
        match self {
            KeyRange::Single(key) => Some((Bound::Included(key), Bound::Included(key))),
            KeyRange::From(start) => Some((Bound::Included(start), Bound::Unbounded)),
            KeyRange::Between(start, end) if end > start => Some((Bound::Included(start), Bound::Excluded(end))),
            KeyRange::Between(..) => None,
        }
    }
}

/// The smallest key greater than every key with this prefix (etcd's `GetPrefixRangeEnd`):
/// increment the last byte that is not 0xff and drop what follows; all-0xff means "\0".
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conventions() {
        assert!(KeyRange::new(b"a", b"").contains(b"a"));
        assert!(!KeyRange::new(b"a", b"").contains(b"ab"));
        assert!(KeyRange::new(b"a", b"\0").contains(b"zzz"));
        assert!(!KeyRange::new(b"b", b"\0").contains(b"a"));
        let r = KeyRange::new(b"a", b"c");
        assert!(r.contains(b"b") && !r.contains(b"c"));
        assert_eq!(KeyRange::new(b"c", b"a").bounds(), None);
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b"/registry/"), b"/registry0");
    }
}
