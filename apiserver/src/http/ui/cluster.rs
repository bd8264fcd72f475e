//! `/ui/api/cluster`: this replica's view of its Raft group, for the dashboard.
//!
//! Everything here is local to the replica — its Raft metrics, its copy of the membership
//! config and a serializable read of the master leases — so it answers at once even while
//! there is no leader, which is when the dashboard matters most. The price is that a view
//! may be stale: a follower names a dead leader until the election ends. The page asks
//! every replica it can reach and believes the one that leads in the highest term.
//!
//! What only some replicas know:
//! - lag: only the leader tracks how far each member's log matches its own (openraft's
//!   replication metrics); a follower's answer has `matched_index` and `lag` null for every
//!   member, and the page takes them from the leader's answer;
//! - API URLs: no member record carries one. The master leases
//!   ([`crate::kubernetes_service`]) name the API servers alive within their TTL, by the
//!   address each advertises; the page maps a URL to its member by asking it.
//!
//! Member ids are hex strings, as etcdctl prints them: a u64 does not fit a JavaScript number.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use flotilla_store::mvcc::key_range::prefix_end;
use flotilla_store::node::{Member, Status};
use flotilla_store::pb::PbRangeRequest;
use flotilla_store::{NodeId, StoreNode};
use serde::Serialize;

use crate::kubernetes_service::MASTER_LEASES;

/// The answer of `/ui/api/cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// The replica that answered.
    pub replica: ReplicaView,
    /// The leader this replica knows of, if any.
    pub leader: Option<String>,
    /// The membership config as this replica holds it, ordered by (numeric) id.
    pub members: Vec<MemberView>,
    /// `http://<address>` of every API server holding a master lease, sorted.
    pub api_urls: Vec<String>,
}

/// The answering replica's own Raft state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    pub id: String,
    pub name: String,
    pub term: u64,
    /// Index of the last entry in its log.
    pub raft_index: u64,
    pub applied_index: u64,
    pub leader: bool,
    pub learner: bool,
    pub db_size_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub id: String,
    /// Empty until the member has started and published its name.
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
    pub leader: bool,
    /// Last log index known to match the leader's (answered by the leader only).
    pub matched_index: Option<u64>,
    /// Entries behind the leader's last log index (answered by the leader only).
    pub lag: Option<u64>,
}

/// What the Raft metrics say; `matched` is `Some` only on the leader, with the last index
/// each member is known to match (`None`: not heard from since this leader's election).
pub struct Observed {
    pub me: NodeId,
    pub name: String,
    pub status: Status,
    pub members: Vec<Member>,
    pub matched: Option<BTreeMap<NodeId, Option<u64>>>,
    pub api_addrs: Vec<SocketAddr>,
}

/// Hex, as etcdctl prints member ids.
pub fn hex_id(id: NodeId) -> String {
    format!("{id:x}")
}

/// Turn what this replica observed into the answer.
pub fn view(o: Observed) -> ClusterView {
    let s = &o.status;
    let i_lead = s.leader == Some(o.me);
    let matched_of = |id: NodeId| -> Option<u64> {
        if id == o.me && i_lead {
            return Some(s.raft_index);
        }
        o.matched.as_ref()?.get(&id).copied().flatten()
    };
    let mut sorted = o.members;
    sorted.sort_by_key(|m| m.id);
    let members: Vec<MemberView> = sorted
        .into_iter()
        .map(|m| {
            let matched_index = matched_of(m.id);
            MemberView {
                id: hex_id(m.id),
                name: m.name,
                peer_urls: m.peer_urls,
                client_urls: m.client_urls,
                learner: m.is_learner,
                leader: s.leader == Some(m.id),
                matched_index,
                lag: matched_index.map(|i| s.raft_index.saturating_sub(i)),
            }
        })
        .collect();
    let mut api_urls: Vec<String> = o.api_addrs.iter().map(|a| format!("http://{a}")).collect();
    api_urls.sort();
    api_urls.dedup();
    ClusterView {
        replica: ReplicaView {
            id: hex_id(o.me),
            name: o.name,
            term: s.raft_term,
            raft_index: s.raft_index,
            applied_index: s.applied_index,
            leader: i_lead,
            learner: s.is_learner,
            db_size_bytes: s.db_size,
        },
        leader: s.leader.map(hex_id),
        members,
        api_urls,
    }
}

/// Read everything [`view`] needs from this replica, without asking any other.
pub async fn observe(node: &StoreNode) -> Observed {
    let status = node.status();
    let matched = {
        let metrics = node.raft().metrics();
        let m = metrics.borrow();
        m.replication.as_ref().map(|r| r.iter().map(|(id, log)| (*id, log.map(|l| l.index))).collect())
    };
    Observed {
        me: node.id(),
        name: node.config().name.clone(),
        status,
        members: node.member_list(),
        matched,
        api_addrs: api_addresses(node).await,
    }
}

/// The addresses of the master leases, read serializably (local, never waits for a leader).
/// A failed read gives none: the page then knows only the replica it came from.
async fn api_addresses(node: &StoreNode) -> Vec<SocketAddr> {
    let prefix = MASTER_LEASES.as_bytes();
    let req = PbRangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        keys_only: true,
        serializable: true,
        ..Default::default()
    };
    match node.range(req).await {
        Ok(resp) => resp
            .kvs
            .iter()
            .filter_map(|kv| std::str::from_utf8(&kv.key).ok()?.strip_prefix(MASTER_LEASES)?.parse().ok())
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "master leases not read for the dashboard");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: NodeId, name: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_urls: vec![format!("http://127.0.0.1:{}", 7000 + id)],
            client_urls: vec![format!("http://127.0.0.1:{}", 6000 + id)],
            is_learner: false,
        }
    }

    fn observed(me: NodeId, leader: Option<NodeId>, matched: Option<BTreeMap<NodeId, Option<u64>>>) -> Observed {
        Observed {
            me,
            name: format!("r{me}"),
            status: Status {
                leader,
                raft_index: 100,
                raft_term: 7,
                applied_index: 99,
                is_learner: false,
                db_size: 4096,
            },
            members: vec![member(3, "r3"), member(1, "r1"), member(0xfeed_beef_dead_cafe, "big")],
            matched,
            api_addrs: vec!["127.0.0.1:8002".parse().unwrap(), "127.0.0.1:8001".parse().unwrap()],
        }
    }

    #[test]
    fn the_leader_reports_lag_per_member() {
        let matched = BTreeMap::from([(3, Some(90)), (0xfeed_beef_dead_cafe, None)]);
        let v = view(observed(1, Some(1), Some(matched)));
        assert!(v.replica.leader);
        assert_eq!(v.leader.as_deref(), Some("1"));
        let lag: Vec<(&str, Option<u64>)> = v.members.iter().map(|m| (m.name.as_str(), m.lag)).collect();
        // The leader matches itself; a member not heard from since the election has no lag yet.
        assert_eq!(lag, vec![("r1", Some(0)), ("r3", Some(10)), ("big", None)]);
        assert_eq!(v.members.iter().filter(|m| m.leader).count(), 1);
    }

    #[test]
    fn a_follower_names_the_leader_but_knows_no_lag() {
        let v = view(observed(3, Some(1), None));
        assert!(!v.replica.leader);
        assert_eq!((v.replica.term, v.replica.applied_index), (7, 99));
        assert!(v.members.iter().all(|m| m.lag.is_none() && m.matched_index.is_none()));
        assert!(v.members.iter().find(|m| m.name == "r1").is_some_and(|m| m.leader));
    }

    #[test]
    fn without_a_leader_nobody_leads() {
        let v = view(observed(3, None, None));
        assert_eq!(v.leader, None);
        assert!(v.members.iter().all(|m| !m.leader));
    }

    #[test]
    fn ids_are_hex_strings_and_api_urls_sorted() {
        let v = view(observed(3, Some(1), None));
        assert!(v.members.iter().any(|m| m.id == "feedbeefdeadcafe"), "{v:?}");
        assert_eq!(v.api_urls, vec!["http://127.0.0.1:8001", "http://127.0.0.1:8002"]);
        let json = serde_json::to_value(&v).unwrap();
        assert!(json["members"][0]["id"].is_string(), "{json}");
    }
}
