//! The transfers that left a ledger's memory, as the reads that see memory and the history
//! store together need them. The store is a trait the ledger owns ([`ColdTransfers`]): what
//! it must answer, not how; the fjall store implements it.

use std::io;

use crate::constants::QUERY_LIMIT_MAX;
use crate::{AccountFilter, ColdTransfer, PendingStatus, StateMachine, Transfer};

/// Where the transfers that left a ledger's memory are kept. `horizon` is the ledger's
/// (`StateMachine::horizon`): what was moved out after it is ignored, so that a restart from
/// an older checkpoint reads the store as it was then.
pub trait ColdTransfers {
    /// The transfer `id`, with what became of it if it was pending.
    fn transfer(&self, id: u128, horizon: u64) -> io::Result<Option<ColdTransfer>>;

    /// Appends to `out` at most `limit` transfers of the account `filter` names, in the
    /// filter's order.
    fn account_transfers(
        &self,
        filter: &AccountFilter,
        horizon: u64,
        limit: usize,
        out: &mut Vec<Transfer>,
    ) -> io::Result<()>;

    /// Calls `f` with every transfer, oldest first.
    fn scan(&self, horizon: u64, f: &mut dyn FnMut(ColdTransfer)) -> io::Result<()>;
}

/// A transfer with its pending status, in memory or in the store.
pub fn lookup<C: ColdTransfers + ?Sized>(
    ledger: &StateMachine,
    cold: Option<&C>,
    id: u128,
) -> io::Result<Option<ColdTransfer>> {
    if let Some(t) = ledger.lookup_transfer(id) {
        return Ok(Some(ColdTransfer { transfer: *t, pending: ledger.pending_status(id) }));
    }
    match cold {
        None => Ok(None),
        Some(cold) => cold.transfer(id, ledger.horizon()),
    }
}

/// An account's transfers per `filter` (limit capped at `QUERY_LIMIT_MAX`): the store's part,
/// older, and the part in memory.
pub fn account_transfers<C: ColdTransfers + ?Sized>(
    ledger: &StateMachine,
    cold: Option<&C>,
    filter: &AccountFilter,
) -> io::Result<Vec<Transfer>> {
    let mut held = Vec::new();
    ledger.get_account_transfers(filter, &mut held);
    let Some(cold) = cold else { return Ok(held) };
    let limit = filter.limit.min(QUERY_LIMIT_MAX) as usize;
    let horizon = ledger.horizon();
    if filter.reversed {
        // Newest first: memory, then the store.
        cold.account_transfers(filter, horizon, limit, &mut held)?;
        Ok(held)
    } else {
        let mut out = Vec::new();
        cold.account_transfers(filter, horizon, limit, &mut out)?;
        let room = limit - out.len();
        out.extend(held.into_iter().take(room));
        Ok(out)
    }
}

/// Calls `f` with every transfer and its pending status, oldest first: the store's, then
/// memory's.
pub fn for_each_transfer<C: ColdTransfers + ?Sized>(
    ledger: &StateMachine,
    cold: Option<&C>,
    mut f: impl FnMut(&Transfer, Option<PendingStatus>),
) -> io::Result<()> {
    if let Some(cold) = cold {
        cold.scan(ledger.horizon(), &mut |stored| {
            // A transfer kept in memory (pending when it left the log) has its current status
            // there.
            let status = match ledger.lookup_transfer(stored.transfer.id) {
                Some(_) => ledger.pending_status(stored.transfer.id),
                None => stored.pending,
            };
            f(&stored.transfer, status);
        })?;
    }
    for t in ledger.transfers().iter() {
        f(t, ledger.pending_status(t.id));
    }
    Ok(())
}
