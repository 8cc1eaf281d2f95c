//! The history store as a ledger's second tier, driven the same way by every machine that holds
//! a ledger: open it, fetch what a command needs before applying it, move old transfers out
//! after a group, make it durable before a checkpoint; and the reads that see memory and store
//! together (with no store, memory alone).

use std::path::Path;

use huifu_ledger::constants::QUERY_LIMIT_MAX;
use huifu_ledger::{AccountFilter, ColdTransfer, PendingStatus, StateMachine, Transfer};

use crate::constants::EVICT_SLACK_DIVISOR;
use crate::{HistoryStore, StoreError};

/// A ledger's history store, and the bound on the transfers the ledger keeps in memory.
#[derive(Debug)]
pub struct History {
    store: HistoryStore,
    held_max: usize,
    /// Scratch space, kept to avoid allocating per command.
    ids: Vec<u128>,
    timestamps: Vec<u64>,
}

impl History {
    /// The store itself, for the records a machine keeps beside its transfers.
    pub fn store(&self) -> &HistoryStore {
        &self.store
    }

    /// Opens the store in `dir` for `ledger` when asked to (`held_max`) or when the ledger or
    /// the folder already depend on one (a state that moved transfers out needs its store even
    /// when no bound is set now); `None` otherwise. A fresh ledger gets chunks sized to the bound.
    pub fn open(
        dir: &Path,
        held_max: Option<usize>,
        ledger: &mut StateMachine,
    ) -> Result<Option<History>, StoreError> {
        if !dir.exists() {
            // Opening would create an empty store and lose, silently, what was moved out.
            if ledger.horizon() > 0 {
                return Err(StoreError::Missing {
                    path: dir.to_path_buf(),
                    horizon: ledger.horizon(),
                });
            }
            if held_max.is_none() {
                return Ok(None);
            }
        }
        if let Some(n) = held_max {
            if ledger.transfers().is_empty() {
                ledger.set_chunk_shift(StateMachine::chunk_shift_for(n));
            }
        }
        Ok(Some(History {
            store: HistoryStore::open(dir)?,
            held_max: held_max.unwrap_or(usize::MAX),
            ids: Vec::new(),
            timestamps: Vec::new(),
        }))
    }

    /// Hands `ledger` what the store holds of the transfer ids and imported-account timestamps
    /// that `needs` lists for the next command: ids not held in memory, as
    /// `StateMachine::cold_ids` lists them. Nothing is looked up while no transfer has left
    /// memory.
    pub fn prefetch(
        &mut self,
        ledger: &mut StateMachine,
        needs: impl FnOnce(&StateMachine, &mut Vec<u128>, &mut Vec<u64>),
    ) -> Result<(), StoreError> {
        ledger.fetched_clear();
        let horizon = ledger.horizon();
        if horizon == 0 {
            return Ok(());
        }
        self.ids.clear();
        self.timestamps.clear();
        needs(ledger, &mut self.ids, &mut self.timestamps);
        self.store.transfers(&self.ids, horizon, |cold| ledger.fetched_insert(cold))?;
        for &ts in &self.timestamps {
            if self.store.has_timestamp(ts, horizon)? {
                ledger.fetched_timestamp_insert(ts);
            }
        }
        Ok(())
    }

    /// Moves transfers beyond the bound out of `ledger` into the store (see
    /// `StateMachine::evict` for `keep`).
    pub fn evict(
        &mut self,
        ledger: &mut StateMachine,
        keep: impl Fn(&Transfer) -> bool,
    ) -> Result<(), StoreError> {
        ledger.fetched_clear();
        // Once over the bound, down to seven eighths of it: one large sorted run per table
        // rather than a chunk at a time (see `EVICT_SLACK_DIVISOR`).
        let target = if ledger.transfers().held() > self.held_max {
            self.held_max - self.held_max / EVICT_SLACK_DIVISOR
        } else {
            self.held_max
        };
        // Handed over to the store's writing thread, so made for each eviction, at the size of
        // what leaves the log (settled transfers, few, may add to it).
        let mut moved = Vec::with_capacity(ledger.transfers().held().saturating_sub(target));
        let evicted = ledger.evict(target, keep, &mut moved);
        if evicted.total() > 0 {
            let settled: Vec<ColdTransfer> = moved.drain(..evicted.settled).collect();
            self.store.put_owned(moved, settled)?;
        }
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.store.persist()
    }
}

/// A transfer with its pending status, in memory or in the store.
pub fn lookup(
    ledger: &StateMachine,
    history: Option<&History>,
    id: u128,
) -> Result<Option<ColdTransfer>, StoreError> {
    if let Some(t) = ledger.lookup_transfer(id) {
        return Ok(Some(ColdTransfer { transfer: *t, pending: ledger.pending_status(id) }));
    }
    match history {
        None => Ok(None),
        Some(h) => h.store.transfer(id, ledger.horizon()),
    }
}

/// An account's transfers per `filter` (limit capped at `QUERY_LIMIT_MAX`): the store's part,
/// older, and the part in memory.
pub fn account_transfers(
    ledger: &StateMachine,
    history: Option<&History>,
    filter: &AccountFilter,
) -> Result<Vec<Transfer>, StoreError> {
    let mut held = Vec::new();
    ledger.get_account_transfers(filter, &mut held);
    let Some(history) = history else { return Ok(held) };
    let limit = filter.limit.min(QUERY_LIMIT_MAX) as usize;
    let horizon = ledger.horizon();
    if filter.reversed {
        // Newest first: memory, then the store.
        history.store.account_transfers(filter, horizon, limit, &mut held)?;
        Ok(held)
    } else {
        let mut out = Vec::new();
        history.store.account_transfers(filter, horizon, limit, &mut out)?;
        let room = limit - out.len();
        out.extend(held.into_iter().take(room));
        Ok(out)
    }
}

/// Calls `f` with every transfer and its pending status, oldest first: the store's, then
/// memory's.
pub fn for_each_transfer(
    ledger: &StateMachine,
    history: Option<&History>,
    mut f: impl FnMut(&Transfer, Option<PendingStatus>),
) -> Result<(), StoreError> {
    if let Some(history) = history {
        history.store.scan(ledger.horizon(), |cold| {
            // A transfer kept in memory (pending when it left the log) has its current status
            // there.
            let status = match ledger.lookup_transfer(cold.transfer.id) {
                Some(_) => ledger.pending_status(cold.transfer.id),
                None => cold.pending,
            };
            f(&cold.transfer, status);
        })?;
    }
    for t in ledger.transfers().iter() {
        f(t, ledger.pending_status(t.id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_ledger::{Account, CreateAccountResult, CreateTransferResult};

    /// A ledger with two accounts and `n` transfers between them.
    fn ledger(sm: &mut StateMachine, n: u128) {
        let account = |id| Account { id, ledger: 1, code: 1, ..Account::default() };
        let mut results = Vec::new();
        sm.create_accounts(sm.timestamp_min(2), &[account(1), account(2)], &mut results);
        assert!(results.iter().all(|&r| r == CreateAccountResult::Created));
        let transfers: Vec<Transfer> = (1..=n)
            .map(|id| Transfer {
                id,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Transfer::default()
            })
            .collect();
        let mut results = Vec::new();
        sm.create_transfers(sm.timestamp_min(transfers.len()), &transfers, &mut results);
        assert!(results.iter().all(|&r| r == CreateTransferResult::Created));
    }

    /// Whether `error` says that the store failed for good, at the write made to fail.
    fn failed(error: &StoreError) -> bool {
        matches!(error, StoreError::Failed { what: "transfers", cause, .. }
            if matches!(**cause, StoreError::Corrupt { what: "a write made to fail", .. }))
    }

    #[test]
    fn after_a_failed_write_every_use_of_the_store_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::new();
        let mut history = History::open(&dir.path().join("history"), Some(4), &mut sm)
            .unwrap()
            .expect("asked for");
        ledger(&mut sm, 32);
        history.store.writes.fail_next_put.store(true, std::sync::atomic::Ordering::SeqCst);
        // The put hands its transfers to a thread and returns; the transfers left memory.
        history.evict(&mut sm, |_| false).unwrap();
        assert!(sm.horizon() > 0 && sm.lookup_transfer(1).is_none());
        // Until the write ends, reads find its transfers in its staged copy; once it has
        // failed, not "not found" but an error, at every read, every later put and the persist.
        assert!(failed(&history.store.writes.transfers.wait().unwrap_err()));
        assert!(failed(&lookup(&sm, Some(&history), 1).unwrap_err()));
        assert!(failed(&lookup(&sm, Some(&history), 1).unwrap_err()));
        let error = history.prefetch(&mut sm, |_, ids, _| ids.push(1)).unwrap_err();
        assert!(failed(&error));
        let filter = AccountFilter::all(1, 10);
        assert!(failed(&account_transfers(&sm, Some(&history), &filter).unwrap_err()));
        assert!(failed(&for_each_transfer(&sm, Some(&history), |_, _| {}).unwrap_err()));
        assert!(failed(&history.persist().unwrap_err()));
        ledger_more(&mut sm);
        assert!(failed(&history.evict(&mut sm, |_| false).unwrap_err()));
        let message = history.persist().unwrap_err().to_string();
        assert!(message.contains(&dir.path().join("history").display().to_string()), "{message}");
        assert!(message.contains("a write of transfers failed"), "{message}");
    }

    /// More transfers, for another put.
    fn ledger_more(sm: &mut StateMachine) {
        let transfers: Vec<Transfer> = (100..=131)
            .map(|id| Transfer {
                id,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Transfer::default()
            })
            .collect();
        let mut results = Vec::new();
        sm.create_transfers(sm.timestamp_min(transfers.len()), &transfers, &mut results);
    }
}
