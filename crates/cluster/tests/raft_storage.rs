//! openraft's own storage conformance suite run on a node's log (the journal) and state
//! machine (the engine applying `Replicated`): reading, appending, truncating and purging the
//! log, the vote, the initial state, applying entries, and building and installing snapshots.
//! Each of the suite's tests runs on its own, on a fresh data folder. All but one:
//! `get_initial_state_membership_from_log_and_sm` appends entry 3 to a log that ends at entry
//! 1, a gap Raft never makes and the journal refuses by design (its records have no gaps).

#![allow(clippy::result_large_err)]

use std::future::Future;
use std::sync::Arc;

use huifu_cluster::types::{StorageError, TypeConfig};
use huifu_cluster::{LogStore, Replicated, StateStore};
use huifu_engine::{Engine, EngineOptions};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageIOError};

struct Builder;

type S = Suite<TypeConfig, LogStore, StateStore, Builder, tempfile::TempDir>;

fn failed(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

impl StoreBuilder<TypeConfig, LogStore, StateStore, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateStore), StorageError> {
        let dir = tempfile::tempdir().map_err(failed)?;
        let mut options = EngineOptions::new(dir.path());
        options.journal = false;
        options.fsync = false;
        let (engine, _) = Engine::<Replicated>::open(options).map_err(failed)?;
        let log = LogStore::open(dir.path(), false).map_err(failed)?;
        let state = StateStore::new(Arc::new(engine), dir.path().to_path_buf(), None);
        Ok((dir, log, state))
    }
}

fn run<F, Fut>(test: F)
where
    F: FnOnce(LogStore, StateStore) -> Fut,
    Fut: Future<Output = Result<(), StorageError>>,
{
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_dir, log, state) = Builder.build().await.unwrap();
        test(log, state).await.unwrap();
    });
}

macro_rules! suite {
    ($($name:ident)*) => {
        $(
            #[test]
            fn $name() {
                run(S::$name);
            }
        )*
    };
}

suite! {
    last_membership_in_log_initial
    last_membership_in_log
    last_membership_in_log_multi_step
    get_membership_initial
    get_membership_from_log_and_empty_sm
    get_membership_from_empty_log_and_sm
    get_membership_from_log_le_sm_last_applied
    get_membership_from_log_gt_sm_last_applied_1
    get_membership_from_log_gt_sm_last_applied_2
    get_initial_state_without_init
    get_initial_state_with_state
    get_initial_state_last_log_gt_sm
    get_initial_state_last_log_lt_sm
    get_initial_state_log_ids
    get_initial_state_re_apply_committed
    save_vote
    get_log_entries
    limited_get_log_entries
    try_get_log_entry
    initial_logs
    get_log_state
    get_log_id
    last_id_in_log
    last_applied_state
    purge_logs_upto_0
    purge_logs_upto_5
    purge_logs_upto_20
    delete_logs_since_11
    delete_logs_since_0
    append_to_log
    snapshot_meta
    apply_single
    apply_multiple
}

/// A snapshot built on one node and installed on another.
#[test]
fn transfer_snapshot() {
    tokio::runtime::Runtime::new().unwrap().block_on(S::transfer_snapshot(&Builder)).unwrap();
}
