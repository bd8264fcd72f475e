//! openraft's storage conformance suite against the RocksDB log store and state machine.

use flotilla_store::raft::log_store::LogStore;
use flotilla_store::raft::state_machine::StateMachine;
use flotilla_store::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let err = |e: String| -> StorageError { StorageIOError::read_state_machine(AnyError::error(e)).into() };
        let dir = tempfile::tempdir().map_err(|e| err(e.to_string()))?;
        let log = LogStore::open(&dir.path().join("raft")).map_err(|e| err(e.to_string()))?;
        let sm = StateMachine::open(dir.path()).map_err(|e| err(e.to_string()))?;
        Ok((dir, log, sm))
    }
}

/// `Suite::test_all` builds its own runtime, so this is a plain test, not a tokio one.
#[test]
#[allow(clippy::result_large_err)] // the suite's own error type
fn rocksdb_storage_passes_openraft_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}
