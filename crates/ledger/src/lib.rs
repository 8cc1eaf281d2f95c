//! The double-entry ledger of huifu: a pure, deterministic state machine over accounts and
//! transfers.
//!
//! It follows the account/transfer model of TigerBeetle's public reference: four balances per
//! account (debits and credits, pending and posted), transfers that move one amount from a debit
//! account to a credit account of the same ledger, linked chains that succeed or fail together,
//! two-phase transfers (pending, then post or void, or expiry after a timeout), balance limits,
//! and idempotent ids with precise result codes. It does no I/O and reads no clock: the caller
//! passes each batch's timestamp, so replaying the same batches gives the same state.
//!
//! ```
//! use huifu_ledger::{Account, AccountFlags, CreateTransferResult, StateMachine, Transfer};
//!
//! let mut ledger = StateMachine::new();
//! let mut results = Vec::new();
//! let wallet = Account { id: 1, ledger: 156, code: 1,
//!     flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS, ..Account::default() };
//! let bank = Account { id: 2, ledger: 156, code: 2, ..Account::default() };
//! ledger.create_accounts(ledger.timestamp_min(2), &[wallet, bank], &mut results);
//!
//! // A top-up of 10.00 CNY (in fen), then a spend of 25.00 that the wallet cannot cover.
//! let top_up = Transfer { id: 10, debit_account_id: 2, credit_account_id: 1, amount: 1_000,
//!     ledger: 156, code: 1, ..Transfer::default() };
//! let spend = Transfer { id: 11, debit_account_id: 1, credit_account_id: 2, amount: 2_500,
//!     ledger: 156, code: 2, ..Transfer::default() };
//! let mut results = Vec::new();
//! ledger.create_transfers(ledger.timestamp_min(2), &[top_up, spend], &mut results);
//! assert_eq!(results, [CreateTransferResult::Created, CreateTransferResult::ExceedsCredits]);
//! assert_eq!(ledger.lookup_account(1).unwrap().credits_posted, 1_000);
//! ```

pub mod codec;
pub mod cold;
pub mod constants;
mod log;
mod results;
mod state_machine;
mod types;
pub mod varint;

pub use cold::ColdTransfers;
pub use log::TransferLog;
pub use results::{CreateAccountResult, CreateTransferResult};
pub use state_machine::{Evicted, StateMachine, Totals};
pub use types::{
    Account, AccountFilter, AccountFlags, ColdTransfer, PendingStatus, Transfer, TransferFlags,
};
