//! The history store as a ledger's second tier, driven the same way by every machine that holds
//! a ledger: open it, fetch what a command needs before applying it, move old transfers out
//! after a group, make it durable before a checkpoint; and the store's part of the reads that
//! see memory and store together (`huifu_ledger::cold`).

use std::io;
use std::path::Path;

use huifu_ledger::{AccountFilter, ColdTransfer, ColdTransfers, StateMachine, Transfer};

use crate::constants::{EVICT_SLACK_DIVISOR, FJALL_VERSION_FILE};
use crate::{remove_temporary, sync_parent, HistoryStore, StoreError};

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

    /// Opens the store in `dir` for `ledger` when asked to (`held_max`) or when the state
    /// depends on one: its ledger moved transfers out (the horizon), or its machine moved
    /// records of its own out (`records_moved`: the journal position they were moved at, zero
    /// if never). `None` when neither. A fresh ledger gets chunks sized to the bound.
    ///
    /// What is at `dir` decides, with whether the state depends on a store. A leftover of a
    /// creation cut short (`crate::temporary`) is removed first. A store is opened. Nothing,
    /// an empty folder, or a folder whose creation never finished (fjall's version file missing
    /// or unreadable, as a full disk could leave one before creation was atomic) holds nothing
    /// the state moved out: if the state depends on a store, that is refused (`Missing`, naming
    /// the folder), since going on would answer "not found" for what left memory; if it does
    /// not, nothing in it can be needed (whatever a store holds past the checkpoint, the replay
    /// moves out again): without a bound it counts as absent, and with one the folder is
    /// removed and a store created in its place (`HistoryStore::create`).
    pub fn open(
        dir: &Path,
        held_max: Option<usize>,
        ledger: &mut StateMachine,
        records_moved: u64,
    ) -> Result<Option<History>, StoreError> {
        remove_temporary(dir)?;
        let store = match found(dir)? {
            Found::Store(store) => store,
            Found::None { how, folder } => {
                if ledger.horizon() > 0 || records_moved > 0 {
                    return Err(StoreError::Missing {
                        path: dir.to_path_buf(),
                        found: how,
                        horizon: ledger.horizon(),
                        records: records_moved,
                    });
                }
                if held_max.is_none() {
                    // Left as it is: a reader (audit, export) changes nothing, and the next
                    // start that asks for a store replaces it.
                    return Ok(None);
                }
                if folder {
                    tracing::warn!(path = %dir.display(), how, "removed a history store folder without a store, which the state does not depend on");
                    std::fs::remove_dir_all(dir).map_err(|cause| StoreError::Io {
                        path: dir.to_path_buf(),
                        what: "remove a folder that holds no store",
                        cause,
                    })?;
                    sync_parent(dir)?;
                }
                HistoryStore::create(dir)?
            }
        };
        if let Some(n) = held_max {
            if ledger.transfers().is_empty() {
                ledger.set_chunk_shift(StateMachine::chunk_shift_for(n));
            }
        }
        Ok(Some(History {
            store,
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

/// What is at a store's folder.
enum Found {
    /// A store, opened.
    Store(HistoryStore),
    /// No store: `how` it is missing, and whether a folder is there.
    None { how: &'static str, folder: bool },
}

/// Said of a folder whose store was never completely created.
const UNFINISHED: &str =
    "was never completely created (fjall's version file is missing or unreadable)";

/// Opens the store at `dir` if there is one (see `History::open`).
fn found(dir: &Path) -> Result<Found, StoreError> {
    let io = |what| move |cause| StoreError::Io { path: dir.to_path_buf(), what, cause };
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Found::None { how: "is missing", folder: false })
        }
        Err(e) => return Err(io("read its folder")(e)),
    };
    if entries.next().transpose().map_err(io("read its folder"))?.is_none() {
        return Ok(Found::None { how: "is an empty folder", folder: true });
    }
    let version = dir.join(FJALL_VERSION_FILE);
    if !version.try_exists().map_err(io("look for fjall's version file in"))? {
        return Ok(Found::None { how: UNFINISHED, folder: true });
    }
    match HistoryStore::open(dir) {
        Ok(store) => Ok(Found::Store(store)),
        Err(StoreError::Fjall { cause: fjall::Error::InvalidVersion(None), .. }) => {
            Ok(Found::None { how: UNFINISHED, folder: true })
        }
        Err(e) => Err(e),
    }
}

/// The store's part of the reads that see memory and store together (`huifu_ledger::cold`).
impl ColdTransfers for History {
    fn transfer(&self, id: u128, horizon: u64) -> io::Result<Option<ColdTransfer>> {
        self.store.transfer(id, horizon).map_err(io::Error::other)
    }

    fn account_transfers(
        &self,
        filter: &AccountFilter,
        horizon: u64,
        limit: usize,
        out: &mut Vec<Transfer>,
    ) -> io::Result<()> {
        self.store.account_transfers(filter, horizon, limit, out).map_err(io::Error::other)
    }

    fn scan(&self, horizon: u64, f: &mut dyn FnMut(ColdTransfer)) -> io::Result<()> {
        self.store.scan(horizon, f).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_ledger::{cold, Account, CreateAccountResult, CreateTransferResult};

    /// A ledger with two accounts and `n` transfers between them.
    fn ledger(sm: &mut StateMachine, n: u128) {
        let account = |id| Account { id, ledger: 1, code: 1, ..Account::default() };
        let mut results = Vec::new();
        sm.create_accounts(sm.timestamp_min(2), &[account(1), account(2)], &mut results);
        assert!(results.iter().all(|&r| r == CreateAccountResult::Created));
        transfer_range(sm, 1..=n);
    }

    /// Transfers of 1 from account 1 to account 2, one per id of `ids`.
    fn transfer_range(sm: &mut StateMachine, ids: std::ops::RangeInclusive<u128>) {
        let transfers: Vec<Transfer> = ids
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

    /// The same, through the reads of `huifu_ledger::cold`.
    fn failed_read(error: &io::Error) -> bool {
        error.get_ref().and_then(|e| e.downcast_ref::<StoreError>()).is_some_and(failed)
    }

    #[test]
    fn after_a_failed_write_every_use_of_the_store_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::new();
        let mut history = History::open(&dir.path().join("history"), Some(4), &mut sm, 0)
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
        assert!(failed_read(&cold::lookup(&sm, Some(&history), 1).unwrap_err()));
        assert!(failed_read(&cold::lookup(&sm, Some(&history), 1).unwrap_err()));
        let error = history.prefetch(&mut sm, |_, ids, _| ids.push(1)).unwrap_err();
        assert!(failed(&error));
        let filter = AccountFilter::all(1, 10);
        assert!(failed_read(&cold::account_transfers(&sm, Some(&history), &filter).unwrap_err()));
        assert!(failed_read(&cold::for_each_transfer(&sm, Some(&history), |_, _| {}).unwrap_err()));
        assert!(failed(&history.persist().unwrap_err()));
        ledger_more(&mut sm);
        assert!(failed(&history.evict(&mut sm, |_| false).unwrap_err()));
        let message = history.persist().unwrap_err().to_string();
        assert!(message.contains(&dir.path().join("history").display().to_string()), "{message}");
        assert!(message.contains("a write of transfers failed"), "{message}");
    }

    /// More transfers, for another put.
    fn ledger_more(sm: &mut StateMachine) {
        transfer_range(sm, 100..=131);
    }

    /// A store at `dir` that holds transfers, made durable and closed.
    fn store_with_transfers(dir: &Path) {
        let mut sm = StateMachine::new();
        let mut history = History::open(dir, Some(4), &mut sm, 0).unwrap().expect("asked for");
        ledger(&mut sm, 32);
        history.evict(&mut sm, |_| false).unwrap();
        history.persist().unwrap();
    }

    #[test]
    fn a_store_is_made_beside_its_folder_and_renamed_into_place() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("history");
        // What a creation cut short leaves: a half-made store beside the folder.
        let temporary = crate::temporary(&dir);
        assert_eq!(temporary, data.path().join("history.new"));
        std::fs::create_dir(&temporary).unwrap();
        std::fs::write(temporary.join(FJALL_VERSION_FILE), b"").unwrap();
        // A state that never moved anything out and asks for no store gets none, and the
        // leftover is gone.
        assert!(History::open(&dir, None, &mut StateMachine::new(), 0).unwrap().is_none());
        assert!(!temporary.exists() && !dir.exists());
        std::fs::create_dir(&temporary).unwrap();
        // Asked for one, it gets a whole store, which works after the rename.
        let mut sm = StateMachine::new();
        let mut history = History::open(&dir, Some(4), &mut sm, 0).unwrap().expect("asked for");
        assert!(!temporary.exists() && dir.join(FJALL_VERSION_FILE).exists());
        ledger(&mut sm, 32);
        history.evict(&mut sm, |_| false).unwrap();
        history.persist().unwrap();
        drop(history);
        let history = History::open(&dir, None, &mut sm, 0).unwrap().expect("depends on it");
        let found = cold::lookup(&sm, Some(&history), 1).unwrap().expect("moved out, then found");
        assert_eq!(found.transfer.id, 1);
    }

    #[test]
    fn a_folder_without_a_whole_store_is_replaced_only_when_the_state_needs_nothing_from_it() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("history");
        let unfinished = "was never completely created";
        // A folder holding a store whose version file is missing, cut short, or empty (fjall
        // writes it last); or an empty folder.
        type Break = fn(&Path);
        let breaks: [(&str, Break); 4] = [
            (unfinished, |dir| std::fs::remove_file(dir.join(FJALL_VERSION_FILE)).unwrap()),
            (unfinished, |dir| {
                let version = std::fs::read(dir.join(FJALL_VERSION_FILE)).unwrap();
                std::fs::write(dir.join(FJALL_VERSION_FILE), &version[..version.len() / 2])
                    .unwrap();
            }),
            (unfinished, |dir| std::fs::write(dir.join(FJALL_VERSION_FILE), b"").unwrap()),
            ("is an empty folder", |dir| {
                std::fs::remove_dir_all(dir).unwrap();
                std::fs::create_dir(dir).unwrap();
            }),
        ];
        for (how, break_it) in breaks {
            store_with_transfers(&dir);
            break_it(&dir);
            // A state that moved transfers or records out is refused, naming the folder.
            let mut moved = StateMachine::with_chunk_shift(1);
            ledger(&mut moved, 32);
            moved.evict(4, |_| false, &mut Vec::new());
            assert!(moved.horizon() > 0);
            for (sm, records) in [(&mut moved, 0), (&mut StateMachine::new(), 7)] {
                let error = History::open(&dir, None, sm, records).unwrap_err();
                let message = error.to_string();
                assert!(matches!(error, StoreError::Missing { .. }), "{message}");
                assert!(message.contains(&dir.display().to_string()), "{message}");
                assert!(message.contains(how), "{how}: {message}");
            }
            assert!(dir.exists(), "a folder the state needs is left as it is");
            // A state that never moved anything out: the folder held nothing it needs, and a
            // whole store takes its place.
            let mut sm = StateMachine::new();
            let history = History::open(&dir, Some(4), &mut sm, 0).unwrap().expect("asked for");
            assert!(cold::lookup(&sm, Some(&history), 1).unwrap().is_none());
            drop(history);
            assert!(History::open(&dir, None, &mut sm, 0).unwrap().is_some());
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
