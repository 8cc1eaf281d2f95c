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

use huifu_ledger::{AccountFilter, PendingStatus, StateMachine, Transfer};
use huifu_store::History;

use crate::chart::{self, OpTag};
use crate::command::Op;
use crate::machine::PaymentsMachine;

/// Whether an id is in the range of ids the domain derives (`chart::transfer_id` and friends:
/// the top byte is an `OpTag`).
pub(crate) fn in_domain_range(id: u128) -> bool {
    let tag = (id >> 120) as u8;
    (OpTag::TopUp as u8..=OpTag::PayoutSettled as u8).contains(&tag)
}

/// What applying `op` may look up in the ledger beyond memory (see the module comment):
/// ids of transfers not held, and timestamps of imported accounts.
fn cold_needs(ledger: &StateMachine, op: &Op, ids: &mut Vec<u128>, timestamps: &mut Vec<u64>) {
    let mut settles = |id: u128| {
        if ledger.lookup_transfer(id).is_none() {
            ids.push(id);
        }
    };
    match op {
        Op::LedgerTransfers(events) => ledger.cold_ids(events, ids),
        Op::LedgerAccounts(events) => ledger.cold_timestamps(events, timestamps),
        Op::Capture { id } | Op::Release { id } => {
            settles(chart::transfer_id(OpTag::Payment, *id, 0));
            settles(chart::transfer_id(OpTag::Payment, *id, 1));
        }
        Op::BankResult { id, .. } => {
            settles(chart::transfer_id(OpTag::TopUp, *id, 0));
            settles(chart::transfer_id(OpTag::Withdrawal, *id, 0));
        }
        Op::PayoutResult { payout, .. } => settles(*payout),
        Op::Keyed { op, .. } => cold_needs(ledger, op, ids, timestamps),
        Op::Batch(ops) => ops.iter().for_each(|op| cold_needs(ledger, op, ids, timestamps)),
        _ => {}
    }
}

impl PaymentsMachine {
    pub(crate) fn open_history(&mut self, dir: &Path, held_max: Option<usize>) -> io::Result<()> {
        self.history = History::open(dir, held_max, &mut self.ledger).map_err(io::Error::other)?;
        Ok(())
    }

    pub(crate) fn prefetch(&mut self, op: &Op) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        history
            .prefetch(&mut self.ledger, |ledger, ids, timestamps| {
                cold_needs(ledger, op, ids, timestamps)
            })
            .map_err(io::Error::other)
    }

    pub(crate) fn evict(&mut self) -> io::Result<()> {
        let Some(history) = &mut self.history else { return Ok(()) };
        let foreign = &self.foreign;
        history.evict(&mut self.ledger, |t| foreign.contains(&t.id)).map_err(io::Error::other)
    }

    pub(crate) fn persist_history(&self) -> io::Result<()> {
        self.history.as_ref().map_or(Ok(()), |h| h.persist().map_err(io::Error::other))
    }

    /// A transfer, in memory or in the history store.
    pub fn lookup_transfer(&self, id: u128) -> io::Result<Option<Transfer>> {
        let cold = huifu_store::lookup(&self.ledger, self.history.as_ref(), id);
        Ok(cold.map_err(io::Error::other)?.map(|c| c.transfer))
    }

    /// What became of a pending transfer, in memory or in the history store.
    pub fn pending_status(&self, id: u128) -> io::Result<Option<PendingStatus>> {
        let cold = huifu_store::lookup(&self.ledger, self.history.as_ref(), id);
        Ok(cold.map_err(io::Error::other)?.and_then(|c| c.pending))
    }

    /// An account's transfers per `filter` (limit capped at `QUERY_LIMIT_MAX`), from the
    /// history store and memory together.
    pub fn account_transfers(&self, filter: &AccountFilter) -> io::Result<Vec<Transfer>> {
        huifu_store::account_transfers(&self.ledger, self.history.as_ref(), filter)
            .map_err(io::Error::other)
    }

    /// Every transfer with its pending status, oldest first: the store's, then memory's.
    pub fn for_each_transfer(
        &self,
        f: impl FnMut(&Transfer, Option<PendingStatus>),
    ) -> io::Result<()> {
        huifu_store::for_each_transfer(&self.ledger, self.history.as_ref(), f)
            .map_err(io::Error::other)
    }
}
