//! Store configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::StoreError;

/// The largest request the store accepts, as etcd's default `--max-request-bytes` (1.5 MiB).
/// Bounds the size of one Raft entry, and so the memory a single client can pin.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;

/// The most operations one Txn may carry, as etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// The largest lease TTL etcd accepts, in seconds.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// The state-machine database size at which writes stop when `--quota-backend-bytes` is 0
/// (etcd's `DefaultQuotaBytes`, 2 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Config {
    /// This replica's name.
    pub name: String,
    /// Where the Raft log (`raft/`), state machine (`sm/`) and snapshots live.
    pub data_dir: PathBuf,
    /// Leader heartbeat period.
    pub heartbeat_interval: Duration,
    /// A follower starts an election after this long without a heartbeat (randomised between
    /// 0.75x and 1x of it).
    pub election_timeout: Duration,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_logs: u64,
    /// Log entries kept behind a snapshot, so slightly lagging followers need no snapshot.
    pub logs_to_keep: u64,
    /// How long a client request waits for Raft before answering `Timeout`.
    pub request_timeout: Duration,
    /// The cluster token mixed into member and cluster IDs.
    pub cluster_token: String,
    /// **Unsafe, for testing the test harness only**: answer linearizable reads from the
    /// local state machine without a read-index round, so a cut-off replica serves stale
    /// reads. `flotilla-jepsen` must catch this (issue 6's self-check).
    pub unsafe_local_reads: bool,
    /// etcd's `--quota-backend-bytes`: the state-machine database size past which a member
    /// raises the NOSPACE alarm and writes that add data are refused. 0 means
    /// [`DEFAULT_QUOTA_BYTES`]; a negative value turns the guard off.
    pub quota_backend_bytes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: "default".into(),
            data_dir: PathBuf::from("default.flotilla"),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: Duration::from_millis(1000),
            snapshot_logs: 10_000,
            logs_to_keep: 5_000,
            request_timeout: Duration::from_secs(5),
            cluster_token: "flotilla-cluster".into(),
            unsafe_local_reads: false,
            quota_backend_bytes: 0,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: &str| Err(StoreError::InvalidArgument(m.to_string()));
        if self.name.is_empty() {
            return bad("--name must not be empty");
        }
        if self.heartbeat_interval.is_zero() {
            return bad("--heartbeat-interval must be positive");
        }
        if self.election_timeout < self.heartbeat_interval * 5 {
            return bad("--election-timeout must be at least 5 times --heartbeat-interval");
        }
        if self.snapshot_logs == 0 {
            return bad("snapshot threshold must be positive");
        }
        Ok(())
    }

    /// The effective quota in bytes (`None`: no quota), as etcd reads `--quota-backend-bytes`.
    pub fn quota_bytes(&self) -> Option<u64> {
        match self.quota_backend_bytes {
            0 => Some(DEFAULT_QUOTA_BYTES),
            n if n < 0 => None,
            n => Some(n as u64),
        }
    }

    /// The openraft configuration derived from this one.
    pub fn raft_config(&self) -> openraft::Config {
        let election_ms = self.election_timeout.as_millis() as u64;
        openraft::Config {
            cluster_name: self.cluster_token.clone(),
            heartbeat_interval: self.heartbeat_interval.as_millis() as u64,
            // openraft 0.9 has a follower wait `election_timeout_max` (its leader lease) plus
            // a random timeout in [min, max) after the last heartbeat before it campaigns.
            // Halving and quartering `--election-timeout` makes that wait 0.75x to 1x of it:
            // a follower campaigns within one election timeout of losing its leader.
            election_timeout_min: election_ms / 4,
            election_timeout_max: election_ms / 2,
            // Per-chunk timeout for snapshot transfer: chunks are up to 3 MiB, so allow seconds.
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs),
            max_in_snapshot_log_to_keep: self.logs_to_keep,
            // Purge in batches: one RocksDB range delete per 64 entries rather than per entry.
            purge_batch_size: 64,
            max_payload_entries: 256,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_election_must_exceed_heartbeat() {
        Config::default().validate().unwrap();
        let c = Config { election_timeout: Duration::from_millis(200), ..Config::default() };
        assert!(matches!(c.validate(), Err(StoreError::InvalidArgument(_))));
        c.raft_config().validate().ok();
        Config::default().raft_config().validate().unwrap();
    }

    #[test]
    fn quota_zero_is_the_default_and_negative_is_off() {
        assert_eq!(Config::default().quota_bytes(), Some(DEFAULT_QUOTA_BYTES));
        assert_eq!(Config { quota_backend_bytes: 4096, ..Config::default() }.quota_bytes(), Some(4096));
        assert_eq!(Config { quota_backend_bytes: -1, ..Config::default() }.quota_bytes(), None);
    }
}
