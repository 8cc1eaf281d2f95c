//! The payment machine's history store: the ledger transfers that left memory.
//!
//! The engine drives it through the `Machine` hooks (see `engine.rs`): before an operation is
//! applied, `prefetch` loads from the store every transfer the operation may find there (the
//! ledger events of an operator's batch; the holds a capture, release, bank answer or payout
//! answer settles); after a group, `evict` moves old transfers out. `apply` never reads the
//! store, so it stays a pure function of the state in memory.
//!
//! Transfers the domain creates get ids derived from the operation (`chart::transfer_id`),
//! which the idempotency tables already prove new, so they need no lookup in the store; the
//! only transfers they could collide with are ones an operator created through the ledger
//! endpoints with an id in the domain's range, and those stay in memory (`foreign`).

use std::io;
use std::path::Path;

use huifu_ledger::constants::QUERY_LIMIT_MAX;
use huifu_ledger::{AccountFilter, ColdTransfer, PendingStatus, StateMachine, Transfer};
use huifu_store::HistoryStore;

use crate::chart::{self, OpTag};
use crate::command::Op;
use crate::machine::PaymentsMachine;

/// Where transfers go once more than `held_max` are in memory.
#[derive(Debug)]
pub(crate) struct History {
    store: HistoryStore,
    held_max: usize,
    /// Scratch space, kept to avoid allocating per operation.
    ids: Vec<u128>,
    timestamps: Vec<u64>,
    cold: Vec<ColdTransfer>,
}

/// Whether an id is in the range of ids the domain derives (`chart::transfer_id` and friends:
/// the top byte is an `OpTag`).
pub(crate) fn in_domain_range(id: u128) -> bool {
    let tag = (id >> 120) as u8;
    (OpTag::TopUp as u8..=OpTag::PayoutSettled as u8).contains(&tag)
}

fn store_error(e: huifu_store::StoreError) -> io::Error {
    io::Error::other(e)
}

impl PaymentsMachine {
    pub(crate) fn open_history(&mut self, dir: &Path, held_max: Option<usize>) -> io::Result<()> {
        // A state that moved transfers out needs its store even when no bound is set now.
        if held_max.is_none() && self.ledger.horizon() == 0 && !dir.exists() {
            return Ok(());
        }
        if let Some(n) = held_max {
            if self.ledger.transfers_count() == 0 {
                self.ledger.set_chunk_shift(StateMachine::chunk_shift_for(n));
            }
        }
        self.history = Some(History {
            store: HistoryStore::open(dir).map_err(store_error)?,
            held_max: held_max.unwrap_or(usize::MAX),
            ids: Vec::new(),
            timestamps: Vec::new(),
            cold: Vec::new(),
        });
        Ok(())
    }

    /// What applying `op` may look up in the ledger (see the module comment): transfer ids,
    /// and timestamps of imported accounts.
    fn cold_needs(&self, op: &Op, ids: &mut Vec<u128>, timestamps: &mut Vec<u64>) {
        match op {
            Op::LedgerTransfers(events) => self.ledger.cold_ids(events, ids),
            Op::LedgerAccounts(events) => self.ledger.cold_timestamps(events, timestamps),
            Op::Capture { id } | Op::Release { id } => {
                ids.push(chart::transfer_id(OpTag::Payment, *id, 0));
                ids.push(chart::transfer_id(OpTag::Payment, *id, 1));
            }
            Op::BankResult { id, .. } => {
                ids.push(chart::transfer_id(OpTag::TopUp, *id, 0));
                ids.push(chart::transfer_id(OpTag::Withdrawal, *id, 0));
            }
            Op::PayoutResult { payout, .. } => ids.push(*payout),
            Op::Keyed { op, .. } => self.cold_needs(op, ids, timestamps),
            Op::Batch(ops) => ops.iter().for_each(|op| self.cold_needs(op, ids, timestamps)),
            _ => {}
        }
    }

    pub(crate) fn prefetch(&mut self, op: &Op) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        self.ledger.fetched_clear();
        if self.ledger.horizon() == 0 {
            return Ok(());
        }
        let horizon = self.ledger.horizon();
        let mut ids = std::mem::take(&mut history.ids);
        let mut timestamps = std::mem::take(&mut history.timestamps);
        ids.clear();
        timestamps.clear();
        self.cold_needs(op, &mut ids, &mut timestamps);
        ids.retain(|&id| self.ledger.lookup_transfer(id).is_none());
        let history = self.history.as_mut().expect("history");
        history.ids = ids;
        history.timestamps = timestamps;
        let history = self.history.as_mut().expect("history");
        for &id in &history.ids {
            if let Some(cold) = history.store.transfer(id, horizon).map_err(store_error)? {
                self.ledger.fetched_insert(cold);
            }
        }
        for &ts in &history.timestamps {
            if history.store.has_timestamp(ts, horizon).map_err(store_error)? {
                self.ledger.fetched_timestamp_insert(ts);
            }
        }
        Ok(())
    }

    pub(crate) fn evict(&mut self) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        self.ledger.fetched_clear();
        history.cold.clear();
        let foreign = &self.foreign;
        let evicted =
            self.ledger.evict(history.held_max, |t| foreign.contains(&t.id), &mut history.cold);
        if evicted.total() > 0 {
            let (settled, moved) = history.cold.split_at(evicted.settled);
            history.store.put(moved, settled).map_err(store_error)?;
        }
        Ok(())
    }

    pub(crate) fn persist_history(&self) -> io::Result<()> {
        match &self.history {
            None => Ok(()),
            Some(h) => h.store.persist().map_err(store_error),
        }
    }

    /// A transfer, in memory or in the history store.
    pub fn lookup_transfer(&self, id: u128) -> io::Result<Option<Transfer>> {
        Ok(self.lookup_cold(id)?.map(|c| c.transfer))
    }

    /// What became of a pending transfer, in memory or in the history store.
    pub fn pending_status(&self, id: u128) -> io::Result<Option<PendingStatus>> {
        Ok(self.lookup_cold(id)?.and_then(|c| c.pending))
    }

    fn lookup_cold(&self, id: u128) -> io::Result<Option<ColdTransfer>> {
        if let Some(t) = self.ledger.lookup_transfer(id) {
            return Ok(Some(ColdTransfer {
                transfer: *t,
                pending: self.ledger.pending_status(id),
            }));
        }
        match &self.history {
            None => Ok(None),
            Some(h) => h.store.transfer(id, self.ledger.horizon()).map_err(store_error),
        }
    }

    /// An account's transfers per `filter` (limit capped at `QUERY_LIMIT_MAX`), from the
    /// history store and memory together.
    pub fn account_transfers(&self, filter: &AccountFilter) -> io::Result<Vec<Transfer>> {
        let mut held = Vec::new();
        self.ledger.get_account_transfers(filter, &mut held);
        let Some(history) = &self.history else { return Ok(held) };
        let limit = filter.limit.min(QUERY_LIMIT_MAX) as usize;
        let horizon = self.ledger.horizon();
        if filter.reversed {
            // Newest first: memory, then the store.
            let mut out = held;
            history
                .store
                .account_transfers(filter, horizon, limit, &mut out)
                .map_err(store_error)?;
            Ok(out)
        } else {
            let mut out = Vec::new();
            history
                .store
                .account_transfers(filter, horizon, limit, &mut out)
                .map_err(store_error)?;
            let room = limit - out.len();
            out.extend(held.into_iter().take(room));
            Ok(out)
        }
    }

    /// Every transfer with its pending status, oldest first: the store's, then memory's.
    pub fn for_each_transfer(
        &self,
        mut f: impl FnMut(&Transfer, Option<PendingStatus>),
    ) -> io::Result<()> {
        if let Some(history) = &self.history {
            history
                .store
                .scan(self.ledger.horizon(), |cold| {
                    // A transfer kept in memory (pending when it left the log) has its current
                    // status there.
                    let status = match self.ledger.lookup_transfer(cold.transfer.id) {
                        Some(_) => self.ledger.pending_status(cold.transfer.id),
                        None => cold.pending,
                    };
                    f(&cold.transfer, status);
                })
                .map_err(store_error)?;
        }
        for t in self.ledger.transfers().iter() {
            f(t, self.ledger.pending_status(t.id));
        }
        Ok(())
    }

    /// Bytes the history store takes on disk (zero without one).
    pub fn history_disk_bytes(&self) -> io::Result<u64> {
        match &self.history {
            None => Ok(0),
            Some(h) => h.store.disk_bytes().map_err(store_error),
        }
    }
}
