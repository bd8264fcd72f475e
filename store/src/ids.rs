//! Member and cluster IDs.
//!
//! A member's ID is a hash of its peer URL and the cluster token, so every replica listed in
//! `--initial-cluster` computes the same IDs for all members without talking, and a member
//! added later can compute its own ID from the URL it was added with (as etcd derives IDs
//! from peer URLs). IDs are never zero: etcd clients treat 0 as "no member".

/// 64-bit FNV-1a; stable across builds and platforms, unlike `std`'s hasher.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0u8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The member ID of the replica reachable at `peer_url` in the cluster named by `token`.
pub fn member_id(peer_url: &str, token: &str) -> u64 {
    match fnv1a(&[peer_url.as_bytes(), token.as_bytes()]) {
        0 => 1,
        id => id,
    }
}

/// The cluster ID: a hash of the cluster token, so members added later agree on it.
pub fn cluster_id(token: &str) -> u64 {
    match fnv1a(&[b"cluster", token.as_bytes()]) {
        0 => 1,
        id => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_ids_differ_by_url_and_token() {
        let a = member_id("http://127.0.0.1:2380", "flotilla");
        assert_eq!(a, member_id("http://127.0.0.1:2380", "flotilla"));
        assert_ne!(a, member_id("http://127.0.0.1:2381", "flotilla"));
        assert_ne!(a, member_id("http://127.0.0.1:2380", "other"));
    }

    #[test]
    fn cluster_id_depends_on_token_only() {
        assert_eq!(cluster_id("t"), cluster_id("t"));
        assert_ne!(cluster_id("t"), cluster_id("u"));
        assert_ne!(cluster_id("t"), member_id("t", ""));
    }
}
