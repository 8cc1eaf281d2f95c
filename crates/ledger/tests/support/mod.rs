//! What the ledger's integration tests share: short constructors for accounts and transfers, and
//! a ledger that picks batch timestamps the way the engine does (a clock that tests move by hand,
//! never behind the smallest valid timestamp).

// Each test file uses a different part of this module.
#![allow(dead_code)]

use huifu_ledger::constants::{EXPIRE_EVENTS_MAX, NS_PER_S};
use huifu_ledger::{
    Account, AccountFilter, CreateAccountResult, CreateTransferResult, PendingStatus, StateMachine,
    Totals, Transfer, TransferFlags,
};

/// The ledger (currency) of every account and transfer unless a test says otherwise.
pub const LEDGER: u32 = 156;

/// An account in `LEDGER` with code 1 and no flags.
pub fn account(id: u128) -> Account {
    Account { id, ledger: LEDGER, code: 1, ..Account::default() }
}

/// A single-phase transfer in `LEDGER` with code 1.
pub fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        ledger: LEDGER,
        code: 1,
        ..Transfer::default()
    }
}

/// A pending (two-phase) transfer that expires after `timeout` seconds (zero for never).
pub fn pending(id: u128, debit: u128, credit: u128, amount: u128, timeout: u32) -> Transfer {
    Transfer { flags: TransferFlags::PENDING, timeout, ..transfer(id, debit, credit, amount) }
}

/// A post of `pending_id` that leaves every optional field zero, so it is taken from the pending
/// transfer.
pub fn post(id: u128, pending_id: u128, amount: u128) -> Transfer {
    Transfer {
        id,
        pending_id,
        amount,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..Transfer::default()
    }
}

/// A void of `pending_id`; amount zero means "the whole pending amount".
pub fn void(id: u128, pending_id: u128) -> Transfer {
    Transfer { id, pending_id, flags: TransferFlags::VOID_PENDING_TRANSFER, ..Transfer::default() }
}

/// The four balances of an account, in the order debits pending, debits posted, credits pending,
/// credits posted.
pub type Balances = [u128; 4];

/// Everything observable about the ledger's data: equal fingerprints mean an operation changed
/// nothing (ids burned by transient failures aside, which only a retry can observe).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub accounts: Vec<Account>,
    pub transfers: Vec<Transfer>,
    pub totals: Totals,
    pub pending: Vec<(u128, PendingStatus)>,
    pub expiry_waiting: usize,
    pub expiry_next: Option<u64>,
}

pub fn fingerprint(sm: &StateMachine) -> Fingerprint {
    Fingerprint {
        accounts: sm.accounts().to_vec(),
        transfers: sm.transfers().to_vec(),
        totals: sm.totals(),
        pending: sm
            .transfers()
            .iter()
            .filter_map(|t| sm.pending_status(t.id).map(|s| (t.id, s)))
            .collect(),
        expiry_waiting: sm.expiry_waiting(),
        expiry_next: sm.expiry_next(),
    }
}

/// A state machine driven like the engine drives it.
#[derive(Default)]
pub struct Ledger {
    pub sm: StateMachine,
    /// The wall clock of the test: batches are stamped with it unless that would go backwards.
    clock: u64,
    /// The timestamp of the last batch or expiry run.
    pub last_timestamp: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// A ledger with plain accounts `1..=n` already created.
    pub fn with_accounts(n: u128) -> Ledger {
        let mut ledger = Ledger::new();
        let accounts: Vec<Account> = (1..=n).map(account).collect();
        ledger.create_accounts_ok(&accounts);
        ledger
    }

    /// A ledger on `sm` (a state restored from a snapshot, say) whose clock stands where this
    /// one's does.
    pub fn with_state(&self, sm: StateMachine) -> Ledger {
        Ledger { sm, clock: self.clock, last_timestamp: self.last_timestamp }
    }

    /// The timestamp the next batch of `events` events gets.
    pub fn next_timestamp(&self, events: usize) -> u64 {
        self.clock.max(self.sm.timestamp_min(events))
    }

    /// Moves the clock forward by `ns` nanoseconds from the later of the clock and the last
    /// timestamp handed out.
    pub fn advance_ns(&mut self, ns: u64) {
        self.clock = self.clock.max(self.last_timestamp) + ns;
    }

    pub fn advance_s(&mut self, seconds: u64) {
        self.advance_ns(seconds * NS_PER_S);
    }

    /// Sets the clock; it may not go back.
    pub fn set_clock(&mut self, timestamp: u64) {
        assert!(timestamp >= self.clock);
        self.clock = timestamp;
    }

    pub fn create_accounts(&mut self, batch: &[Account]) -> Vec<CreateAccountResult> {
        let timestamp = self.next_timestamp(batch.len());
        self.create_accounts_at(timestamp, batch)
    }

    pub fn create_accounts_at(
        &mut self,
        timestamp: u64,
        batch: &[Account],
    ) -> Vec<CreateAccountResult> {
        let mut results = Vec::new();
        self.sm.create_accounts(timestamp, batch, &mut results);
        self.last_timestamp = timestamp;
        assert_eq!(results.len(), batch.len());
        results
    }

    pub fn create_transfers(&mut self, batch: &[Transfer]) -> Vec<CreateTransferResult> {
        let timestamp = self.next_timestamp(batch.len());
        self.create_transfers_at(timestamp, batch)
    }

    pub fn create_transfers_at(
        &mut self,
        timestamp: u64,
        batch: &[Transfer],
    ) -> Vec<CreateTransferResult> {
        let mut results = Vec::new();
        self.sm.create_transfers(timestamp, batch, &mut results);
        self.last_timestamp = timestamp;
        assert_eq!(results.len(), batch.len());
        results
    }

    /// Creates accounts that must all be created.
    pub fn create_accounts_ok(&mut self, batch: &[Account]) {
        let results = self.create_accounts(batch);
        assert!(
            results.iter().all(|r| *r == CreateAccountResult::Created),
            "setup accounts failed: {results:?}"
        );
    }

    /// Creates transfers that must all be created.
    pub fn create_transfers_ok(&mut self, batch: &[Transfer]) {
        let results = self.create_transfers(batch);
        assert!(
            results.iter().all(|r| *r == CreateTransferResult::Created),
            "setup transfers failed: {results:?}"
        );
    }

    /// Runs expiry so that every pending transfer whose deadline is at or before the clock
    /// expires. Returns how many expired.
    pub fn expire(&mut self) -> usize {
        let window = EXPIRE_EVENTS_MAX as u64;
        // Deadlines up to `timestamp - window + 1` qualify.
        let timestamp = (self.clock + window - 1).max(self.sm.timestamp_min(EXPIRE_EVENTS_MAX));
        let expired = self.sm.expire_pending_transfers(timestamp);
        self.last_timestamp = timestamp;
        expired
    }

    pub fn balances(&self, id: u128) -> Balances {
        let a = self.sm.lookup_account(id).expect("account exists");
        [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
    }

    pub fn account(&self, id: u128) -> Account {
        *self.sm.lookup_account(id).expect("account exists")
    }

    pub fn transfer(&self, id: u128) -> Transfer {
        *self.sm.lookup_transfer(id).expect("transfer exists")
    }

    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.sm)
    }

    /// The ids of the transfers a query returns, in order.
    pub fn query(&self, filter: &AccountFilter) -> Vec<u128> {
        let mut out = Vec::new();
        self.sm.get_account_transfers(filter, &mut out);
        out.iter().map(|t| t.id).collect()
    }
}
