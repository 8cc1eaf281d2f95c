//! What the payment domain needs of the storage behind its memory bound, as a trait it owns:
//! what it must read and write, not how. The engine's fjall history store implements it; a
//! machine without one keeps everything in memory.
//!
//! `apply` never uses it. The engine's hooks do (fetch before an operation, move out after a
//! group, make durable before a checkpoint), and so do the queries that see memory and store
//! together.

use std::io;

use huifu_ledger::{ColdTransfers, StateMachine, Transfer};

pub use crate::history::RECORD_TABLES;

/// Lists, for the ledger as it is, the transfer ids and imported-account timestamps that the
/// next operation may need from the store (ids not held in memory, as
/// `StateMachine::cold_ids` lists them).
pub type Needs<'a> = dyn FnMut(&StateMachine, &mut Vec<u128>, &mut Vec<u64>) + 'a;

/// The storage of the ledger transfers and payment records that left memory. Every record and
/// list entry carries the journal position it was written at (`as_of`), and reads ignore
/// positions beyond the machine's own (`horizon`), so that a restart from an older checkpoint
/// reads the store as it was then.
pub trait HistoryStore: ColdTransfers + Send + std::fmt::Debug {
    /// Hands `ledger` what the store holds of what `needs` lists for the next operation
    /// (`StateMachine::fetched_insert` and friends).
    fn prefetch(&mut self, ledger: &mut StateMachine, needs: &mut Needs<'_>) -> io::Result<()>;

    /// Moves transfers beyond the store's bound out of `ledger` into the store, except those
    /// `keep` holds back (see `StateMachine::evict`).
    fn evict(
        &mut self,
        ledger: &mut StateMachine,
        keep: &dyn Fn(&Transfer) -> bool,
    ) -> io::Result<()>;

    /// Makes every write so far durable.
    fn persist(&self) -> io::Result<()>;

    /// The payload of `table`'s record `key`, if it was written at or before `horizon`.
    fn get(&self, table: u8, key: &[u8], horizon: u64) -> io::Result<Option<Vec<u8>>>;

    /// Writes `records` (each key at most once) and appends `entries` to their lists, each
    /// entry with the journal position it was written at. Reads see them at once.
    fn put(&self, records: &[Record<'_>], entries: &[(ListEntry, u64)]) -> io::Result<()>;

    /// Calls `f` with the key and payload of every record of `table` written at or before
    /// `horizon`, in key order.
    fn scan_records(
        &self,
        table: u8,
        horizon: u64,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> io::Result<()>;

    /// Appends to `out`, newest first, the (timestamp, id) entries of `owner`'s list `list`
    /// written at or before `horizon` that come before `before` (all when `None`), until `out`
    /// holds `limit`.
    fn list(
        &self,
        list: u8,
        owner: u64,
        before: Option<(u64, u64)>,
        horizon: u64,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> io::Result<()>;
}

/// One record to write: its table, key, journal position and payload.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub table: u8,
    pub key: &'a [u8],
    pub as_of: u64,
    pub payload: &'a [u8],
}

/// One entry of an append-only list, ordered by (timestamp, id) within its owner's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListEntry {
    pub list: u8,
    pub owner: u64,
    pub timestamp: u64,
    pub id: u64,
}
