//! Offline recovery of a replica's data directory, run before its `flotilla server` starts:
//! rebuilding a cluster from a snapshot file, and forcing a lone survivor into a new
//! one-member cluster.
//!
//! **Restore** ([`restore`]) unpacks the state archive of a snapshot file into a new data
//! directory and makes it look like a log that was compacted up to the snapshot: the state
//! machine claims `LogId(term 0, node 0, index N)` applied with the *new* cluster's
//! membership, the log store says the log was purged up to that ID, and the same state is
//! persisted as the replica's Raft snapshot (so a member added later is sent it). Vote empty.
//! Every founding member restores the same file with the same `--initial-cluster`, so all
//! of them start from identical state and the first election is an ordinary one; term 0 is
//! what `Raft::initialize` itself uses for the founding membership. Keys, values and their
//! revisions are the backup's; the cluster (IDs, membership) is new, as `etcdutl snapshot
//! restore` does.
//!
//! **Force new cluster** ([`force_new_cluster`]) keeps every entry of the survivor's log —
//! committed or not, as etcd's `--force-new-cluster` — and appends one membership entry
//! naming this member alone, in a term above any the log or vote has seen, with the vote
//! (not committed) for itself in that term. At start the effective membership is the last
//! one in the log, so the replica is the only voter, elects itself, and commits everything.
//! Unsafe by nature: the lost majority may have committed entries this survivor never
//! received; those are gone. A second run finds this member already alone and does nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, Membership, Vote};

use crate::error::StoreError;
use crate::raft::log_store::LogStore;
use crate::raft::snapshot::{set_current_sm_dir, unpack_to};
use crate::raft::state_machine;
use crate::types::{Entry, LogId, Node, NodeId, StoredMembership};

/// What a restore produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The store revision of the restored data.
    pub revision: i64,
    /// The log index the restored state stands at.
    pub index: u64,
}

/// Build a data directory for one founding member of a new cluster of `members` from the
/// snapshot file `file` (see the module doc). `data_dir` must not exist or be empty.
pub async fn restore(file: &[u8], data_dir: &Path, members: BTreeMap<NodeId, Node>) -> Result<Restored, StoreError> {
    if members.is_empty() {
        return Err(StoreError::InvalidArgument("the new cluster has no members".into()));
    }
    let archive = crate::etcd::snapshot::archive_of(file)?;
    if std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(StoreError::InvalidArgument(format!(
            "data dir {} exists and is not empty; restore needs a fresh one",
            data_dir.display()
        )));
    }
    let sm_dir = data_dir.join("sm-1");
    unpack_to(archive, &sm_dir)?;
    set_current_sm_dir(data_dir, &sm_dir)?;
    let applied = state_machine::read_applied_at(&sm_dir)?;
    let index = applied.last.map_or(0, |l| l.index);
    let last = LogId::new(CommittedLeaderId::new(0, 0), index);
    let voters: BTreeSet<NodeId> = members.keys().copied().collect();
    let membership = StoredMembership::new(Some(last), Membership::new(vec![voters], members));
    let revision = state_machine::rebase(data_dir, last, membership)?;
    let mut log = LogStore::open(&data_dir.join("raft"))?;
    log.purge(last).await.map_err(StoreError::storage)?;
    log.save_committed(Some(last)).await.map_err(StoreError::storage)?;
    Ok(Restored { revision, index })
}

/// Whether `data_dir` holds Raft state (a vote or log): a replica that has run before.
pub async fn has_raft_state(data_dir: &Path) -> Result<bool, StoreError> {
    if !data_dir.join("raft").exists() {
        return Ok(false);
    }
    let mut log = LogStore::open(&data_dir.join("raft"))?;
    let vote = log.read_vote().await.map_err(StoreError::storage)?;
    let state = log.get_log_state().await.map_err(StoreError::storage)?;
    Ok(vote.is_some() || state.last_log_id.is_some())
}

/// What a snapshot file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    pub revision: i64,
    pub index: u64,
    /// Live keys at `revision`.
    pub keys: usize,
    /// The names (or peer URLs, for members never started) of the members when it was taken.
    pub members: Vec<String>,
}

/// Check a snapshot file and describe its content (unpacked into a scratch directory).
pub fn inspect(file: &[u8]) -> Result<Inspection, StoreError> {
    let archive = crate::etcd::snapshot::archive_of(file)?;
    let scratch =
        std::env::temp_dir().join(format!("flotilla-inspect-{}-{}", std::process::id(), rand::random::<u32>()));
    let result = (|| {
        unpack_to(archive, &scratch)?;
        let (applied, revision, keys) = state_machine::describe(&scratch)?;
        let mut members: Vec<String> = applied
            .membership
            .membership()
            .nodes()
            .map(|(_, n)| if n.name.is_empty() { n.peer_url.clone() } else { n.name.clone() })
            .collect();
        members.sort();
        Ok(Inspection { revision, index: applied.last.map_or(0, |l| l.index), keys, members })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Turn the survivor whose data is in `data_dir` into the only member of a new cluster (see
/// the module doc). Returns whether it changed anything.
pub async fn force_new_cluster(data_dir: &Path, id: NodeId, me: Node) -> Result<bool, StoreError> {
    let mut log = LogStore::open(&data_dir.join("raft"))?;
    let vote = log.read_vote().await.map_err(StoreError::storage)?;
    let state = log.get_log_state().await.map_err(StoreError::storage)?;
    let Some(last) = state.last_log_id else {
        return Err(StoreError::InvalidArgument(format!(
            "{} holds no Raft log: nothing to recover (--force-new-cluster is for a member's existing data)",
            data_dir.display()
        )));
    };
    if alone_already(&mut log, last, id).await? {
        return Ok(false);
    }
    let term = vote.map_or(0, |v| v.leader_id().term).max(last.leader_id.term) + 1;
    log.save_vote(&Vote::new(term, id)).await.map_err(StoreError::storage)?;
    let alone = Membership::new(vec![BTreeSet::from([id])], BTreeMap::from([(id, me)]));
    let entry = Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, id), last.index + 1),
        payload: EntryPayload::Membership(alone),
    };
    log.blocking_append([entry]).await.map_err(StoreError::storage)?;
    Ok(true)
}

/// Whether the log's last entry already makes `id` the only voter.
async fn alone_already(log: &mut LogStore, last: LogId, id: NodeId) -> Result<bool, StoreError> {
    let entries = log.try_get_log_entries(last.index..=last.index).await.map_err(StoreError::storage)?;
    Ok(entries.first().is_some_and(|e| match &e.payload {
        EntryPayload::Membership(m) => m.voter_ids().eq([id]) && m.learner_ids().next().is_none(),
        _ => false,
    }))
}
