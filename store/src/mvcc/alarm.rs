//! Alarms (etcd's alarm store): which members raised which alarm, as replicated data.
//!
//! The set is part of the state machine: a [`Command::Alarm`] changes it at apply, and it is
//! written to the `meta` column family in the same batch, so it survives restarts and travels
//! in snapshots like any key. A member raises its own NOSPACE alarm when its database grows
//! past `--quota-backend-bytes` (see `node::quota`); an operator clears it (`etcdctl alarm
//! disarm`) once space was reclaimed.
//!
//! Invariant: while any member's NOSPACE alarm is raised, apply refuses every command that
//! [adds data](adds_data) with `Rejection::NoSpace` (etcd's capped applier); reads, deletes,
//! compaction, lease revokes and alarm changes still apply. The refusal depends only on the
//! log, so every replica refuses exactly the same commands.

use std::collections::BTreeSet;

use rocksdb::{WriteBatch, DB};

use crate::error::StoreError;
use crate::pb::{PbTxnOpRequest, PbTxnRequest};
use crate::types::{Command, NodeId};

/// etcd's `AlarmType` values.
pub const ALARM_NONE: i32 = 0;
pub const ALARM_NOSPACE: i32 = 1;
pub const ALARM_CORRUPT: i32 = 2;

/// Key of the raised alarms in the `meta` column family: bincode `Vec<(member, alarm)>`.
const META_ALARMS: &[u8] = b"alarms";

/// The raised alarms, as `(member, alarm type)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alarms {
    raised: BTreeSet<(NodeId, i32)>,
}

impl Alarms {
    /// The alarms persisted in `db` (none if never written).
    pub fn load(db: &DB, meta_cf: &str) -> Result<Self, StoreError> {
        let cf = db.cf_handle(meta_cf).ok_or_else(|| StoreError::storage(format!("missing cf {meta_cf}")))?;
        let raised = match db.get_cf(cf, META_ALARMS).map_err(StoreError::storage)? {
            None => BTreeSet::new(),
            Some(v) => {
                bincode::deserialize::<Vec<(NodeId, i32)>>(&v).map_err(StoreError::storage)?.into_iter().collect()
            }
        };
        Ok(Self { raised })
    }

    /// The raised alarms of type `alarm`, or all of them for [`ALARM_NONE`] (etcd's `Get`).
    pub fn list(&self, alarm: i32) -> Vec<(NodeId, i32)> {
        self.raised.iter().filter(|(_, a)| alarm == ALARM_NONE || *a == alarm).copied().collect()
    }

    pub fn is_raised(&self, member: NodeId, alarm: i32) -> bool {
        self.raised.contains(&(member, alarm))
    }

    /// Whether writes that add data are refused.
    pub fn no_space(&self) -> bool {
        self.raised.iter().any(|(_, a)| *a == ALARM_NOSPACE)
    }

    /// Raise or clear `(member, alarm)`, staging the new set in `batch`; returns what changed
    /// (nothing for an alarm already in the asked state, or for [`ALARM_NONE`]).
    pub(super) fn apply(
        &mut self,
        activate: bool,
        member: NodeId,
        alarm: i32,
        batch: &mut WriteBatch,
        meta: &rocksdb::ColumnFamily,
    ) -> Result<Vec<(NodeId, i32)>, StoreError> {
        let changed = match activate {
            _ if alarm == ALARM_NONE => false,
            true => self.raised.insert((member, alarm)),
            false => self.raised.remove(&(member, alarm)),
        };
        if !changed {
            return Ok(Vec::new());
        }
        let all: Vec<(NodeId, i32)> = self.raised.iter().copied().collect();
        batch.put_cf(meta, META_ALARMS, bincode::serialize(&all).map_err(StoreError::storage)?);
        Ok(vec![(member, alarm)])
    }
}

/// Whether `cmd` may add data to the store: what a raised NOSPACE alarm refuses. As etcd's
/// quota cost: a Put, a lease grant, or a Txn with a put in either branch (whichever branch
/// the compares pick), nested Txns included.
pub fn adds_data(cmd: &Command) -> bool {
    match cmd {
        Command::Put(_) | Command::LeaseGrant { .. } => true,
        Command::Txn(t) => txn_puts(t),
        Command::Batch(cmds) => cmds.iter().any(adds_data),
        Command::DeleteRange(_) | Command::Compact { .. } | Command::LeaseRevoke { .. } | Command::Alarm { .. } => {
            false
        }
    }
}

fn txn_puts(t: &PbTxnRequest) -> bool {
    t.success.iter().chain(&t.failure).any(|op| match &op.request {
        Some(PbTxnOpRequest::RequestPut(_)) => true,
        Some(PbTxnOpRequest::RequestTxn(nested)) => txn_puts(nested),
        _ => false,
    })
}

/// etcd's name of an alarm type, as `etcdctl alarm list` prints it.
pub fn alarm_name(alarm: i32) -> &'static str {
    match alarm {
        ALARM_NOSPACE => "NOSPACE",
        ALARM_CORRUPT => "CORRUPT",
        _ => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{PbDeleteRequest, PbPutRequest, PbRangeRequest, PbTxnRequestOp};

    fn op(request: PbTxnOpRequest) -> PbTxnRequestOp {
        PbTxnRequestOp { request: Some(request) }
    }

    #[test]
    fn only_commands_that_can_add_data_count() {
        let put = PbPutRequest { key: b"k".to_vec(), ..Default::default() };
        assert!(adds_data(&Command::Put(put.clone())));
        assert!(adds_data(&Command::LeaseGrant { id: 1, ttl: 5 }));
        assert!(!adds_data(&Command::DeleteRange(PbDeleteRequest::default())));
        assert!(!adds_data(&Command::Compact { revision: 3 }));
        assert!(!adds_data(&Command::LeaseRevoke { id: 1 }));
        assert!(!adds_data(&Command::Alarm { activate: false, member: 1, alarm: ALARM_NOSPACE }));
        let reads = PbTxnRequest {
            success: vec![op(PbTxnOpRequest::RequestRange(PbRangeRequest::default()))],
            failure: vec![op(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest::default()))],
            ..Default::default()
        };
        assert!(!adds_data(&Command::Txn(reads.clone())));
        // A put in the failure branch counts, whatever the compares will pick.
        let put_on_failure = PbTxnRequest { failure: vec![op(PbTxnOpRequest::RequestPut(put.clone()))], ..reads };
        assert!(adds_data(&Command::Txn(put_on_failure.clone())));
        let nested =
            PbTxnRequest { success: vec![op(PbTxnOpRequest::RequestTxn(put_on_failure))], ..Default::default() };
        assert!(adds_data(&Command::Txn(nested)));
    }
}
