//! openraft's own storage conformance suite against the WAL-backed log store and
//! state machine. The suite drives the log alone, so the log's purges do not wait for
//! the state machine here (raft/tests/snapshot_recovery.rs tests that they do).

use metacenter_raft::log_store::LogStore;
use metacenter_raft::state_machine::StateMachine;
use metacenter_raft::types::{StorageError, TypeConfig};
use metacenter_storage::Store;
use openraft::testing::{StoreBuilder, Suite};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("open store");
        // The suite purges entries it never applies: a purge must not wait for them.
        let log = LogStore::open(store.clone(), &dir.path().join("raft-log"))?.without_purge_wait();
        let sm = StateMachine::new(store, dir.path().join("snapshots"))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}
