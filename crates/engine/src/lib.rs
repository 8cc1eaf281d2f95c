//! The huifu engine: the edge that makes a pure state machine durable and concurrent.
//!
//! One writer thread owns the state machine (LMAX style). Clients on any thread submit commands;
//! the writer takes whatever is queued as one group, applies each command in order with a
//! timestamp from the clock, appends each to the journal, and makes the group durable with one
//! write and one fsync (group commit) before any reply of the group is released. Recovery loads
//! the last checkpoint and replays the journal after it, giving exactly the state that was
//! acknowledged.
//!
//! ```
//! use huifu_engine::{Engine, EngineOptions, LedgerCommand, LedgerMachine, LedgerOutcome};
//! use huifu_ledger::{Account, CreateAccountResult};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let (engine, _recovery) = Engine::<LedgerMachine>::open(EngineOptions::new(dir.path())).unwrap();
//! let account = Account { id: 7, ledger: 1, code: 1, ..Account::default() };
//! let outcome = engine.execute(LedgerCommand::CreateAccounts(vec![account])).unwrap();
//! assert_eq!(outcome, LedgerOutcome::Accounts(vec![CreateAccountResult::Created]));
//! ```

mod backup;
pub mod constants;
mod engine;
mod failure;
mod ledger;
mod machine;
mod payments;
mod stats;

pub use backup::{backup, BackupError, BackupReport};
pub use engine::{
    newest_checkpoint, Clock, Engine, EngineError, EngineOptions, Recovery, SystemClock,
};
pub use failure::{free_bytes, is_storage_full, Failure, FailureKind};
pub use ledger::{LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome, LedgerQuery};
pub use machine::{DecodeError, Machine};
pub use payments::FjallHistory;
pub use stats::{EngineStats, Histogram};
