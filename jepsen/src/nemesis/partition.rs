//! Network partitions: which node cannot talk to which (a "grudge", after Jepsen), and
//! applying one with nftables inside the node namespaces.
//!
//! Each cut node gets a table `inet flotilla_jepsen` with an input chain dropping packets
//! from, and an output chain dropping packets to, the peers it holds a grudge against.
//! Healing deletes the table in every node namespace; the root namespace (the clients) is
//! never filtered, so clients keep reaching every node and see its own behaviour when cut off.
//!
//! Invariants: a grudge is symmetric (if a cannot reach b, b cannot reach a) and never cuts a
//! node from itself; only the table named [`TABLE`] is ever created or deleted.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;

/// The only nftables table the harness touches.
pub const TABLE: &str = "flotilla_jepsen";

/// The shape of a partition. Node sets are fixed when the schedule is generated, except the
/// leader's, which is resolved when the fault is injected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Partition {
    /// One node alone; the others together.
    IsolateOne(usize),
    /// The current leader alone.
    IsolateLeader,
    /// These nodes (a minority) on one side, the rest on the other.
    Halves(Vec<usize>),
    /// Nodes on a ring in this order; each sees the nodes within reach on either side, so
    /// each sees a majority and no two see the same one. With 3 nodes a symmetric ring
    /// degenerates: reach 1 already sees everyone, so instead the link between the first two
    /// is cut and the third sees both — the same shape as [`Partition::Bridge`].
    MajoritiesRing(Vec<usize>),
    /// The first node sees everyone; the rest, in this order, split into two halves that do
    /// not see each other.
    Bridge(Vec<usize>),
}

/// For each node, the set of nodes it cannot talk to. `leader` resolves
/// [`Partition::IsolateLeader`].
pub fn grudge(p: &Partition, n: usize, leader: usize) -> Vec<BTreeSet<usize>> {
    let mut cut = vec![BTreeSet::new(); n];
    let mut sever = |a: usize, b: usize| {
        if a != b {
            cut[a].insert(b);
            cut[b].insert(a);
        }
    };
    match p {
        Partition::IsolateOne(i) => (0..n).for_each(|j| sever(*i, j)),
        Partition::IsolateLeader => (0..n).for_each(|j| sever(leader, j)),
        Partition::Halves(minority) => {
            for &a in minority {
                (0..n).filter(|b| !minority.contains(b)).for_each(|b| sever(a, b));
            }
        }
        Partition::MajoritiesRing(ring) if n == 3 => sever(ring[0], ring[1]),
        Partition::MajoritiesRing(ring) => {
            let reach = (n / 2).div_ceil(2);
            for (pa, &a) in ring.iter().enumerate() {
                for (pb, &b) in ring.iter().enumerate() {
                    let d = pa.abs_diff(pb);
                    if d.min(n - d) > reach {
                        sever(a, b);
                    }
                }
            }
        }
        Partition::Bridge(order) => {
            let rest = &order[1..];
            let (left, right) = rest.split_at(rest.len() / 2);
            for &a in left {
                right.iter().for_each(|&b| sever(a, b));
            }
        }
    }
    cut
}

impl Partition {
    /// Short description for the timeline and the printed schedule.
    pub fn describe(&self) -> String {
        let names = |v: &[usize]| v.iter().map(|&i| crate::cluster::name(i)).collect::<Vec<_>>().join(",");
        match self {
            Partition::IsolateOne(i) => format!("isolate {}", crate::cluster::name(*i)),
            Partition::IsolateLeader => "isolate the leader".into(),
            Partition::Halves(m) => format!("halves: minority {}", names(m)),
            Partition::MajoritiesRing(r) => format!("majorities ring {}", names(r)),
            Partition::Bridge(o) => format!("bridge via {} ({})", names(&o[..1]), names(&o[1..])),
        }
    }
}

/// Install `cut` (from [`grudge`]) in the node namespaces. Nodes without a grudge get no table.
pub fn apply(cluster: &Cluster, cut: &[BTreeSet<usize>]) -> anyhow::Result<()> {
    for (i, peers) in cut.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
        let ips: Vec<String> = peers.iter().map(|&j| cluster.node(j).ip.to_string()).collect();
        let set = ips.join(", ");
        let script = format!(
            "add table inet {TABLE}; \
             add chain inet {TABLE} input {{ type filter hook input priority -100; policy accept; }}; \
             add chain inet {TABLE} output {{ type filter hook output priority -100; policy accept; }}; \
             add rule inet {TABLE} input ip saddr {{ {set} }} drop; \
             add rule inet {TABLE} output ip daddr {{ {set} }} drop"
        );
        crate::cluster::in_ns(&cluster.node(i).netns, &["nft", &script])?;
    }
    Ok(())
}

/// Delete the table in every node namespace that has one. Tries all nodes; returns the
/// first error.
pub fn heal(cluster: &Cluster) -> anyhow::Result<()> {
    let mut first = None;
    for i in 0..cluster.len() {
        let ns = cluster.node(i).netns;
        let has = crate::cluster::in_ns(&ns, &["nft", "list", "tables"]).map(|t| t.contains(TABLE));
        let r = match has {
            Ok(true) => crate::cluster::in_ns(&ns, &["nft", "delete", "table", "inet", TABLE]).map(drop),
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sees(cut: &[BTreeSet<usize>], a: usize) -> BTreeSet<usize> {
        (0..cut.len()).filter(|b| !cut[a].contains(b)).collect()
    }

    fn symmetric(cut: &[BTreeSet<usize>]) {
        for (a, peers) in cut.iter().enumerate() {
            assert!(!peers.contains(&a), "{a} cut from itself");
            peers.iter().for_each(|&b| assert!(cut[b].contains(&a), "{a} cuts {b} but not back"));
        }
    }

    #[test]
    fn isolating_the_leader_cuts_it_from_everyone_and_nobody_else() {
        let cut = grudge(&Partition::IsolateLeader, 5, 3);
        symmetric(&cut);
        assert_eq!(sees(&cut, 3), BTreeSet::from([3]));
        assert_eq!(sees(&cut, 0), BTreeSet::from([0, 1, 2, 4]));
    }

    #[test]
    fn halves_split_minority_from_majority() {
        let cut = grudge(&Partition::Halves(vec![4, 1]), 5, 0);
        symmetric(&cut);
        assert_eq!(sees(&cut, 1), BTreeSet::from([1, 4]));
        assert_eq!(sees(&cut, 0), BTreeSet::from([0, 2, 3]));
    }

    #[test]
    fn majorities_ring_of_five_gives_each_node_a_different_majority() {
        let cut = grudge(&Partition::MajoritiesRing(vec![2, 0, 4, 1, 3]), 5, 0);
        symmetric(&cut);
        let views: BTreeSet<BTreeSet<usize>> = (0..5).map(|a| sees(&cut, a)).collect();
        assert_eq!(views.len(), 5, "two nodes share a view: {views:?}");
        assert!(views.iter().all(|v| v.len() == 3), "{views:?}");
        assert_eq!(sees(&cut, 0), BTreeSet::from([0, 2, 4]), "ring neighbours of 0");
    }

    #[test]
    fn majorities_ring_of_three_cuts_one_link() {
        let cut = grudge(&Partition::MajoritiesRing(vec![1, 2, 0]), 3, 0);
        symmetric(&cut);
        assert_eq!(cut, vec![BTreeSet::new(), BTreeSet::from([2]), BTreeSet::from([1])]);
    }

    #[test]
    fn bridge_node_sees_both_halves_which_do_not_see_each_other() {
        let cut = grudge(&Partition::Bridge(vec![2, 0, 1, 3, 4]), 5, 0);
        symmetric(&cut);
        assert_eq!(sees(&cut, 2).len(), 5);
        assert_eq!(sees(&cut, 0), BTreeSet::from([0, 1, 2]));
        assert_eq!(sees(&cut, 3), BTreeSet::from([2, 3, 4]));
    }
}
