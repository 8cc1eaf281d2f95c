//! The history store: the ledger's transfers that no longer fit in memory, on disk in fjall (an
//! LSM-tree: writes are sequential appends, point reads of absent keys are settled by bloom
//! filters, and range scans serve statements).
//!
//! It is an index derived from the journal, never the source of truth: the engine writes what
//! the ledger moves out of memory (`StateMachine::evict`), reads back what a batch needs before
//! applying it (`StateMachine::cold_ids`), and makes it durable before each checkpoint, so that
//! the journal segments a checkpoint drops are covered. Every read takes the ledger's horizon:
//! after a restart from an older checkpoint, records of the future that is replayed again are
//! ignored.
//!
//! ```
//! use huifu_ledger::{ColdTransfer, Transfer};
//! use huifu_store::HistoryStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = HistoryStore::open(dir.path()).unwrap();
//! let t = Transfer { id: 7, debit_account_id: 1, credit_account_id: 2, amount: 5,
//!     ledger: 1, code: 1, timestamp: 100, ..Transfer::default() };
//! store.put(&[ColdTransfer { transfer: t, pending: None }], &[]).unwrap();
//! assert_eq!(store.transfer(7, 100).unwrap().map(|c| c.transfer), Some(t));
//! // Not yet reached by a state whose horizon is before it.
//! assert_eq!(store.transfer(7, 99).unwrap(), None);
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod behind;
pub mod constants;
pub mod encoding;
mod epochs;
mod history;
mod ids;
mod records;
pub use history::History;
pub use records::{ListEntry, Record, RecordStore};

use fjall::config::{
    BlockSizePolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry, PartitioningPolicy,
    PinningPolicy, RestartIntervalPolicy,
};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use huifu_ledger::{AccountFilter, ColdTransfer, Transfer};

use crate::behind::{Behind, Failed};
use crate::epochs::{EpochIndex, Item, Layout};
use crate::records::StagedRecords;

use crate::constants::{
    CREATING_SUFFIX, EPOCHS_PER_TIER, JOURNALING_BYTES_MAX, MEMTABLE_BYTES_MAX, PINNED_LEVELS,
    POINT_BLOCK_BYTES, SCAN_BLOCK_BYTES, SCAN_BLOCK_RESTART_INTERVAL, TABLE_BYTES, WORKER_THREADS,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history store at {path}: {cause}")]
    Fjall { path: PathBuf, cause: fjall::Error },
    #[error("history store: cannot start a writer thread: {0}")]
    Thread(std::io::Error),
    #[error("history store at {path}: corrupt record: {what}")]
    Corrupt { path: PathBuf, what: &'static str },
    #[error("history store at {path}: transfer at timestamp {timestamp}: {cause}")]
    Record { path: PathBuf, timestamp: u64, cause: encoding::DecodeError },
    #[error(
        "history store at {path} has format {found:?}, this build reads format {FORMAT}: it was \
         written by another version of huifu, which is the one to read this folder with"
    )]
    Format { path: PathBuf, found: Option<u32> },
    #[error(
        "history store at {path} {found}, but the state moved {} into it: going on would answer \
         \"not found\" for what left memory (restore the data folder whole: the store with the \
         checkpoint and journal it belongs to)",
        moved_out(*horizon, *records)
    )]
    Missing { path: PathBuf, found: &'static str, horizon: u64, records: u64 },
    #[error("history store at {path}: cannot {what}: {cause}")]
    Io { path: PathBuf, what: &'static str, cause: std::io::Error },
    #[error("history store at {path}: no table {table} was opened for records")]
    Table { path: PathBuf, table: u8 },
    #[error(
        "history store at {path}: a write of {what} failed, so the store takes no more writes or \
         reads (what the write held has left memory; the journal still has it): {cause}"
    )]
    Failed { path: PathBuf, what: &'static str, cause: Arc<StoreError> },
}

/// What a state moved into its store, for the error that refuses a store without it.
fn moved_out(horizon: u64, records: u64) -> String {
    match (horizon, records) {
        (0, r) => format!("records up to journal record {r}"),
        (h, 0) => format!("transfers up to timestamp {h}"),
        (h, r) => format!("records up to journal record {r} and transfers up to timestamp {h}"),
    }
}

/// Transfers by timestamp, with an index by id (see `ids`) and one by account.
pub struct HistoryStore {
    tables: TransferTables,
    /// The writes in flight (see `behind`), shared with the `RecordStore` of the same store.
    pub(crate) writes: Arc<Writes>,
}

/// The writes in flight of a store: its transfers' and its records'.
pub(crate) struct Writes {
    transfers: Behind<StagedTransfers>,
    pub(crate) records: Behind<StagedRecords>,
    /// Makes the next put of transfers fail (tests of what follows a failed write).
    #[cfg(test)]
    pub(crate) fail_next_put: std::sync::atomic::AtomicBool,
}

/// A put of transfers as the thread writing it and the reads meanwhile see it.
struct StagedTransfers {
    /// Settled transfers (new records at timestamps already written), by timestamp.
    settled: Vec<ColdTransfer>,
    /// Transfers moved out, by timestamp.
    moved: Vec<ColdTransfer>,
    /// (`ids::index_order(id)`, timestamp) of the moved transfers, in that order (a settled
    /// one's is in the store).
    ids: Vec<(u128, u64)>,
}

impl StagedTransfers {
    fn at(&self, timestamp: u64) -> Option<&ColdTransfer> {
        let find = |v: &[ColdTransfer]| -> Option<usize> {
            v.binary_search_by_key(&timestamp, |c| c.transfer.timestamp).ok()
        };
        // A settled record is newer than a moved one at the same timestamp.
        match find(&self.settled) {
            Some(i) => Some(&self.settled[i]),
            None => find(&self.moved).map(|i| &self.moved[i]),
        }
    }

    fn timestamp_of(&self, id: u128) -> Option<u64> {
        let i = self.ids.binary_search_by_key(&ids::index_order(id), |&(key, _)| key).ok()?;
        Some(self.ids[i].1)
    }
}

/// The store's database and keyspaces: what its reads use, and what the thread writing a put
/// of transfers takes a copy of (each is a handle).
#[derive(Clone)]
pub(crate) struct TransferTables {
    pub(crate) path: PathBuf,
    pub(crate) db: Database,
    /// The first timestamp of a group of transfers (8 bytes, big-endian; an operation's legs,
    /// see `encoding`) → the group and each leg's pending status, as a compact record.
    transfers: Keyspace,
    /// A group of ids (14 bytes, `ids::group_key`) → its members' timestamps, as runs (see
    /// `ids`).
    ids: Keyspace,
    /// Each account's transfers in time order, for statements (see `epochs`).
    accounts: EpochIndex,
}

impl Drop for HistoryStore {
    fn drop(&mut self) {
        // The put in flight may start a merge of the account index: it ends first, then the
        // merge, before the database closes under them.
        let _ = self.writes.transfers.wait();
        self.tables.accounts.close();
    }
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryStore").field("path", &self.tables.path).finish()
    }
}

/// What every keyspace of the store shares: leveled compaction with tables of `TABLE_BYTES`,
/// and every level compressed (fjall leaves its first two levels uncompressed by default, and
/// those two levels hold most of a store of a few hundred megabytes; runs are written straight
/// into them).
pub(crate) fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .compaction_strategy(std::sync::Arc::new(
            fjall::compaction::Leveled::default().with_table_target_size(TABLE_BYTES),
        ))
        .max_memtable_size(MEMTABLE_BYTES_MAX)
        .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4))
}

/// The options of a keyspace read by key, mostly for keys it does not hold (a new id): bloom
/// filters, and the filters and indexes of the first `PINNED_LEVELS` levels kept in memory.
/// Deeper levels, which grow with the store, have their filters and indexes in partitions read
/// through the block cache when a lookup needs them; with keys that grow with time a lookup of
/// a new key is settled by the tables' key ranges and needs none. Pinned at every level they
/// grew with the store: ten bits a key, about seven keys (five transfer ids, two or three
/// records) per payment, so about 9 bytes of memory per payment, when each id was a key of
/// its own (now an operation's ids are one, see `ids`).
pub(crate) fn point_read_options() -> KeyspaceCreateOptions {
    // `first` for the first `PINNED_LEVELS` levels, the opposite for every deeper one.
    let levels = |first: bool| {
        let mut levels = vec![first; PINNED_LEVELS];
        levels.push(!first);
        levels
    };
    keyspace_options()
        .data_block_size_policy(BlockSizePolicy::all(POINT_BLOCK_BYTES))
        .filter_block_pinning_policy(PinningPolicy::new(levels(true)))
        .index_block_pinning_policy(PinningPolicy::new(levels(true)))
        .filter_block_partitioning_policy(PartitioningPolicy::new(levels(false)))
        .index_block_partitioning_policy(PartitioningPolicy::new(levels(false)))
}

impl HistoryStore {
    /// Creates a new store at `dir`, which must not exist, as one step that a crash or a full
    /// disk cannot leave half done: the store is made in the sibling folder `temporary(dir)`
    /// (one left by a creation cut short is removed first), made durable there, and only then
    /// renamed to `dir`, and the rename made durable. A `dir` that exists is therefore always
    /// a whole store (fjall writes its version file last, and a folder without a readable one
    /// never opens again: every open fails with `InvalidVersion`).
    pub fn create(dir: &Path) -> Result<HistoryStore, StoreError> {
        let io = |what| move |cause| StoreError::Io { path: dir.to_path_buf(), what, cause };
        let temporary = temporary(dir);
        remove_temporary(dir)?;
        // `open` persists the format it writes into a new store, so all of it is durable
        // once it returns; it closes (its threads end) before its folder moves.
        drop(HistoryStore::open(&temporary)?);
        std::fs::rename(&temporary, dir)
            .map_err(io("rename the store made beside it into place"))?;
        sync_parent(dir)?;
        HistoryStore::open(dir)
    }

    /// Opens the store in `dir`, creating it there if the folder is absent or empty (see
    /// `create` for a creation that cannot be left half done).
    pub fn open(dir: &Path) -> Result<HistoryStore, StoreError> {
        let path = dir.to_path_buf();
        let error = |cause| StoreError::Fjall { path: dir.to_path_buf(), cause };
        // Writes are made durable by `persist` before each checkpoint, not one by one: the
        // journal holds everything until then.
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .max_journaling_size(JOURNALING_BYTES_MAX)
            .worker_threads(WORKER_THREADS)
            .open()
            .map_err(error)?;
        // Keyspaces read by range, or by keys that are always found: large blocks, no bloom
        // filters.
        let scanned = || {
            keyspace_options()
                .data_block_size_policy(BlockSizePolicy::all(SCAN_BLOCK_BYTES))
                .filter_policy(FilterPolicy::all(FilterPolicyEntry::None))
                .data_block_restart_interval_policy(RestartIntervalPolicy::all(
                    SCAN_BLOCK_RESTART_INTERVAL,
                ))
        };
        // Records are read by timestamps that the two indexes give, so they are found; the one
        // read that can miss (`has_timestamp`, for imported accounts) is rare.
        let transfers = db.keyspace("transfers", scanned).map_err(error)?;
        // Most lookups by id are for ids that are new (a retry is the exception).
        let ids = db.keyspace("transfer_ids", point_read_options).map_err(error)?;
        // Only ever scanned by range.
        let accounts = db.keyspace("account_transfers", scanned).map_err(error)?;
        check_format(&path, &db, &transfers, &ids)?;
        let accounts =
            EpochIndex::open(accounts, path.clone(), Layout::Timestamps, EPOCHS_PER_TIER)?;
        let failed = Failed::default();
        let writes = Arc::new(Writes {
            transfers: Behind::new(path.clone(), failed.clone()),
            records: Behind::new(path.clone(), failed),
            #[cfg(test)]
            fail_next_put: std::sync::atomic::AtomicBool::new(false),
        });
        let tables = TransferTables { path, db, transfers, ids, accounts };
        Ok(HistoryStore { tables, writes })
    }

    /// Writes what `StateMachine::evict` moved out: `moved`, transfers leaving the log in
    /// timestamp order, each written once as sorted runs straight into the store's tables (no
    /// in-memory table, no store journal: the cheapest write an LSM-tree has); and `settled`,
    /// pending transfers written before whose record now carries their final status. The
    /// write happens behind the caller (see `behind`); reads see it at once.
    pub fn put(&self, moved: &[ColdTransfer], settled: &[ColdTransfer]) -> Result<(), StoreError> {
        self.put_owned(moved.to_vec(), settled.to_vec())
    }

    /// `put`, taking the transfers over instead of copying them (half a million transfers
    /// leave memory at a time: 80 MB that would be held twice).
    pub fn put_owned(
        &self,
        moved: Vec<ColdTransfer>,
        mut settled: Vec<ColdTransfer>,
    ) -> Result<(), StoreError> {
        self.writes.transfers.healthy()?;
        if moved.is_empty() && settled.is_empty() {
            return Ok(());
        }
        debug_assert!(moved.windows(2).all(|w| w[0].transfer.timestamp < w[1].transfer.timestamp));
        settled.sort_unstable_by_key(|c| c.transfer.timestamp);
        // Sorted as integers, which compare in one or two instructions, then written as the
        // big-endian bytes that sort the same way (sorting the byte arrays calls memcmp for
        // each comparison: a tenth of the writer's time).
        let mut ids: Vec<(u128, u64)> =
            moved.iter().map(|c| (ids::index_order(c.transfer.id), c.transfer.timestamp)).collect();
        ids.sort_unstable();
        let staged = StagedTransfers { settled, moved, ids };
        let tables = self.tables.clone();
        let items = staged.moved.len() + staged.settled.len();
        #[cfg(test)]
        if self.writes.fail_next_put.swap(false, std::sync::atomic::Ordering::SeqCst) {
            let path = tables.path.clone();
            return self.writes.transfers.start("transfers", items, staged, move |_| {
                Err(StoreError::Corrupt { path, what: "a write made to fail" })
            });
        }
        self.writes.transfers.start("transfers", items, staged, move |staged| tables.write(staged))
    }

    /// The transfer at `timestamp`: the write in flight's (`staged`), else the store's.
    fn at(
        &self,
        staged: Option<&StagedTransfers>,
        timestamp: u64,
    ) -> Result<Option<ColdTransfer>, StoreError> {
        if let Some(cold) = staged.and_then(|s| s.at(timestamp)) {
            return Ok(Some(*cold));
        }
        let Some((key, bytes)) = self.tables.record_before(timestamp)? else { return Ok(None) };
        for leg in self.tables.legs(key, &bytes) {
            let leg = leg?;
            if leg.transfer.timestamp >= timestamp {
                return Ok((leg.transfer.timestamp == timestamp).then_some(leg));
            }
        }
        Ok(None)
    }

    /// The transfer with this id, if the store has it at or before `horizon`.
    pub fn transfer(&self, id: u128, horizon: u64) -> Result<Option<ColdTransfer>, StoreError> {
        let mut found = None;
        self.transfers(&[id], horizon, |cold| found = Some(cold))?;
        Ok(found)
    }

    /// Calls `f` with each transfer of `ids` that the store has at or before `horizon`, in
    /// that order. The ids of one group (an operation's legs) that follow one another are
    /// settled by one read of the index.
    pub fn transfers(
        &self,
        ids: &[u128],
        horizon: u64,
        mut f: impl FnMut(ColdTransfer),
    ) -> Result<(), StoreError> {
        let staged = self.writes.transfers.staged()?;
        // The last group read: its key and entry.
        let mut group: Option<([u8; ids::GROUP_KEY_BYTES], Option<fjall::Slice>)> = None;
        for &id in ids {
            let ts = match staged.as_ref().and_then(|s| s.timestamp_of(id)) {
                Some(ts) => Some(ts),
                None => {
                    let ordered = ids::index_order(id);
                    let key = ids::group_key(ordered);
                    if group.as_ref().is_none_or(|(k, _)| *k != key) {
                        let entry = self.tables.ids.get(key).map_err(|e| self.tables.error(e))?;
                        if entry.as_ref().is_some_and(|e| !ids::valid(e)) {
                            return Err(self.tables.corrupt("id index entry"));
                        }
                        group = Some((key, entry));
                    }
                    let entry = group.as_ref().and_then(|(_, e)| e.as_ref());
                    entry.and_then(|e| ids::find(e, ids::member(ordered)))
                }
            };
            if let Some(cold) = self.transfer_at(staged.as_deref(), id, ts, horizon)? {
                f(cold);
            }
        }
        Ok(())
    }

    /// The transfer `id` at `ts` (what the id index says), if at or before `horizon`.
    fn transfer_at(
        &self,
        staged: Option<&StagedTransfers>,
        id: u128,
        ts: Option<u64>,
        horizon: u64,
    ) -> Result<Option<ColdTransfer>, StoreError> {
        let Some(ts) = ts else { return Ok(None) };
        if ts > horizon {
            return Ok(None);
        }
        let cold =
            self.at(staged, ts)?.ok_or_else(|| self.tables.corrupt("id without transfer"))?;
        if cold.transfer.id != id {
            return Err(self.tables.corrupt("id index points at another transfer"));
        }
        Ok(Some(cold))
    }

    /// Whether a transfer has exactly this timestamp, at or before `horizon`.
    pub fn has_timestamp(&self, timestamp: u64, horizon: u64) -> Result<bool, StoreError> {
        if timestamp > horizon {
            return Ok(false);
        }
        Ok(self.at(self.writes.transfers.staged()?.as_deref(), timestamp)?.is_some())
    }

    /// Appends to `out` the transfers of `filter.account_id` at or before `horizon` that pass
    /// the filter, in its order, until `out` holds `limit`.
    pub fn account_transfers(
        &self,
        filter: &AccountFilter,
        horizon: u64,
        limit: usize,
        out: &mut Vec<Transfer>,
    ) -> Result<(), StoreError> {
        if !filter.is_valid() || out.len() >= limit {
            return Ok(());
        }
        // Read by range: the whole of the write in flight is needed.
        self.writes.transfers.wait()?;
        let high =
            if filter.timestamp_max == 0 { horizon } else { filter.timestamp_max.min(horizon) };
        if filter.timestamp_min > high {
            return Ok(());
        }
        self.tables.accounts.read(
            filter.account_id,
            filter.timestamp_min,
            high,
            filter.reversed,
            |item| {
                // The write in flight was waited for above.
                let cold = self
                    .at(None, item.ts)?
                    .ok_or_else(|| self.tables.corrupt("account entry without transfer"))?;
                if filter.matches(&cold.transfer) {
                    out.push(cold.transfer);
                }
                Ok(out.len() < limit)
            },
        )
    }

    /// Calls `f` with every transfer at or before `horizon`, oldest first.
    ///
    /// After a restart from an older checkpoint, transfers that leave memory again may be
    /// grouped into records differently at the edges of a put, so a record may hold legs that
    /// the record with the next key holds too: the one with the later key wins, as in
    /// `record_before`.
    pub fn scan(&self, horizon: u64, mut f: impl FnMut(ColdTransfer)) -> Result<(), StoreError> {
        self.writes.transfers.wait()?;
        // The legs of the record before, given once the next record's key is known.
        let mut before: Vec<ColdTransfer> = Vec::new();
        for guard in self.tables.transfers.range(..=horizon.to_be_bytes()) {
            let (key, value) = guard.into_inner().map_err(|e| self.tables.error(e))?;
            let key = u64::from_be_bytes(
                key.as_ref().try_into().map_err(|_| self.tables.corrupt("key"))?,
            );
            before.drain(..).take_while(|c| c.transfer.timestamp < key).for_each(&mut f);
            for leg in self.tables.legs(key, &value) {
                before.push(leg?);
            }
        }
        before.into_iter().take_while(|c| c.transfer.timestamp <= horizon).for_each(f);
        Ok(())
    }

    /// Makes every write so far durable.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.writes.transfers.wait()?;
        self.writes.records.wait()?;
        self.tables.db.persist(PersistMode::SyncAll).map_err(|e| self.tables.error(e))
    }

    /// Bytes on disk.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        self.tables.db.disk_space().map_err(|e| self.tables.error(e))
    }
}

impl TransferTables {
    pub(crate) fn error(&self, cause: fjall::Error) -> StoreError {
        StoreError::Fjall { path: self.path.clone(), cause }
    }

    fn corrupt(&self, what: &'static str) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what }
    }

    /// The legs of the record at `key`, or the error that makes the store corrupt.
    fn legs<'a>(
        &'a self,
        key: u64,
        bytes: &'a [u8],
    ) -> impl Iterator<Item = Result<ColdTransfer, StoreError>> + 'a {
        encoding::decode(bytes, key).map(move |leg| {
            leg.map_err(|cause| StoreError::Record {
                path: self.path.clone(),
                timestamp: key,
                cause,
            })
        })
    }

    /// The record that holds `timestamp` if any: the last at or before it (records of groups
    /// cover disjoint stretches of time, and of two records that hold the same transfer the
    /// one with the later key wins; see `scan`), as its key and bytes.
    fn record_before(&self, timestamp: u64) -> Result<Option<(u64, fjall::Slice)>, StoreError> {
        let Some(guard) = self.transfers.range(..=timestamp.to_be_bytes()).next_back() else {
            return Ok(None);
        };
        let (key, value) = guard.into_inner().map_err(|e| self.error(e))?;
        let key = key.as_ref().try_into().map_err(|_| self.corrupt("key"))?;
        Ok(Some((u64::from_be_bytes(key), value)))
    }

    /// The write of a put (`HistoryStore::put`), on its own thread.
    fn write(&self, staged: &StagedTransfers) -> Result<(), StoreError> {
        let e = |e| self.error(e);
        let mut record = Vec::new();
        let mut encode = |legs: &[ColdTransfer]| -> fjall::Slice {
            record.clear();
            encoding::encode(legs, &mut record);
            fjall::Slice::from(&record[..])
        };
        let StagedTransfers { settled, moved, ids } = staged;
        if !settled.is_empty() {
            // Each settled transfer's record again, with its new status.
            let mut batch = self.db.batch();
            let mut rest = &settled[..];
            while let Some(first) = rest.first() {
                let ts = first.transfer.timestamp;
                let (key, bytes) =
                    self.record_before(ts)?.ok_or_else(|| self.corrupt("settled transfer"))?;
                let mut legs = self.legs(key, &bytes).collect::<Result<Vec<_>, _>>()?;
                let end = legs.last().map_or(key, |c| c.transfer.timestamp);
                let here = rest.partition_point(|c| c.transfer.timestamp <= end);
                for cold in &rest[..here] {
                    let ts = cold.transfer.timestamp;
                    let i = legs
                        .binary_search_by_key(&ts, |c| c.transfer.timestamp)
                        .map_err(|_| self.corrupt("settled transfer"))?;
                    legs[i] = *cold;
                }
                batch.insert(&self.transfers, key.to_be_bytes(), encode(&legs));
                rest = &rest[here..];
            }
            batch.commit().map_err(e)?;
        }
        if moved.is_empty() {
            return Ok(());
        }
        let mut ingestion = self.transfers.start_ingestion().map_err(e)?;
        for legs in moved.chunk_by(|a, b| encoding::same_group(&a.transfer, &b.transfer)) {
            let key = legs[0].transfer.timestamp.to_be_bytes();
            ingestion.write(key, encode(legs)).map_err(e)?;
        }
        ingestion.finish().map_err(e)?;

        // One entry per group, with what the index holds of the group already (see `ids`),
        // read before the run is written: the entries one after another in one buffer, with
        // each group's key and the end of its entry.
        let mut entries = Vec::new();
        let mut groups = Vec::new();
        let mut members = Vec::new();
        for group in ids.chunk_by(|a, b| ids::same_group(a.0, b.0)) {
            let key = ids::group_key(group[0].0);
            members.clear();
            members.extend(group.iter().map(|&(ordered, ts)| (ids::member(ordered), ts)));
            if let Some(stored) = self.ids.get(key).map_err(e)? {
                if !ids::valid(&stored) {
                    return Err(self.corrupt("id index entry"));
                }
                ids::merge(&stored, &mut members);
            }
            ids::encode(&members, &mut entries);
            groups.push((key, entries.len()));
        }
        let mut ingestion = self.ids.start_ingestion().map_err(e)?;
        let mut start = 0;
        for (key, end) in groups {
            ingestion.write(key, &entries[start..end]).map_err(e)?;
            start = end;
        }
        ingestion.finish().map_err(e)?;

        // Only what the index does not hold yet: after a restart from an older checkpoint the
        // same transfers leave memory again, and their entries are already there.
        let indexed_max = self.accounts.indexed_max();
        let mut keys: Vec<(u128, Item)> = moved
            .iter()
            .filter(|c| c.transfer.timestamp > indexed_max)
            .flat_map(|c| {
                let t = &c.transfer;
                let item = Item { ts: t.timestamp, ..Item::default() };
                [(t.debit_account_id, item), (t.credit_account_id, item)]
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        self.accounts.append(&keys)
    }
}

/// The folder in which `HistoryStore::create` makes the store `dir` before renaming it into
/// place: a sibling, so that the rename stays within one file system.
pub fn temporary(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    name.push(CREATING_SUFFIX);
    dir.with_file_name(name)
}

/// Removes what a creation of the store `dir` cut short left (`temporary(dir)`), if anything.
/// It never held anything a state relies on: a store is renamed into place only once whole, and
/// written to only after.
pub fn remove_temporary(dir: &Path) -> Result<(), StoreError> {
    let temporary = temporary(dir);
    match std::fs::remove_dir_all(&temporary) {
        Ok(()) => {
            tracing::warn!(path = %temporary.display(), "removed a history store whose creation was cut short");
            sync_parent(dir)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(cause) => Err(StoreError::Io {
            path: temporary,
            what: "remove what a creation cut short left",
            cause,
        }),
    }
}

/// Makes the creation, removal or renaming of `dir` durable: fsyncs the folder that holds it.
pub(crate) fn sync_parent(dir: &Path) -> Result<(), StoreError> {
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(parent).and_then(|f| f.sync_all()).map_err(|cause| StoreError::Io {
        path: dir.to_path_buf(),
        what: "make its entry in the folder above it durable (fsync)",
        cause,
    })
}

/// The version of the store's layout: keyspaces, keys and the record encoding, and the
/// encodings of the records machines keep in it (`RecordStore`: the payment domain's are in
/// its snapshot module). A store of another version is refused at open instead of being
/// misread.
pub const FORMAT: u32 = 13;

/// Where the format is written: in the id index, whose keys are all 14 bytes long and only
/// ever read one by one, so a key of another length is never taken for an id.
const FORMAT_KEY: &[u8] = b"huifu-history-format";

/// Writes the format into a new store, or checks that of an existing one.
fn check_format(
    path: &Path,
    db: &Database,
    transfers: &Keyspace,
    ids: &Keyspace,
) -> Result<(), StoreError> {
    let error = |cause| StoreError::Fjall { path: path.to_path_buf(), cause };
    let found = match ids.get(FORMAT_KEY).map_err(error)? {
        Some(v) => Some(v.as_ref().try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX)),
        None if transfers.first_key_value().is_none() => {
            // Durable now: the transfers written next are durable as soon as they are written
            // (sorted runs go straight to fsynced tables), and must never be found without it.
            ids.insert(FORMAT_KEY, FORMAT.to_le_bytes()).map_err(error)?;
            db.persist(PersistMode::SyncAll).map_err(error)?;
            return Ok(());
        }
        None => None,
    };
    if found == Some(FORMAT) {
        Ok(())
    } else {
        Err(StoreError::Format { path: path.to_path_buf(), found })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_ledger::PendingStatus;

    fn t(id: u128, debit: u128, credit: u128, timestamp: u64) -> Transfer {
        Transfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: 1,
            ledger: 1,
            code: 1,
            timestamp,
            ..Transfer::default()
        }
    }

    /// `store` made durable, closed and opened again from `dir`.
    fn reopen(store: HistoryStore, dir: &Path) -> HistoryStore {
        store.persist().unwrap();
        drop(store);
        HistoryStore::open(dir).unwrap()
    }

    #[test]
    fn ids_that_differ_in_their_top_byte_are_found_while_written_and_after() {
        // Ids made like the payment domain's: a kind in the top byte, a count below it, so
        // that the index order (top byte below the count) differs from the ids' own order.
        let kinds = [3u128 << 120, 1 << 120, 6 << 120, 0];
        let ids: Vec<u128> = (0..400u128).map(|i| kinds[(i % 4) as usize] | (i * 7) << 8).collect();
        let moved: Vec<ColdTransfer> = ids
            .iter()
            .zip(1u64..)
            .map(|(&id, ts)| ColdTransfer { transfer: t(id, 1, 2, ts), pending: None })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        store.put(&moved, &[]).unwrap();
        let check = |store: &HistoryStore| {
            for (&id, ts) in ids.iter().zip(1u64..) {
                let found = store.transfer(id, u64::MAX).unwrap().map(|c| c.transfer);
                assert_eq!(found, Some(t(id, 1, 2, ts)), "{id:#x}");
            }
            // The same counts with a kind no transfer has, and a count none has.
            assert_eq!(store.transfer((2 << 120) | (7 << 8), u64::MAX).unwrap(), None);
            assert_eq!(store.transfer((3 << 120) | (8 << 8), u64::MAX).unwrap(), None);
        };
        // Right after the put, from the write in flight (or the store if it is done) ...
        check(&store);
        // ... and from the store alone.
        check(&reopen(store, dir.path()));
    }

    #[test]
    fn a_group_written_in_two_puts_keeps_every_member() {
        // An operation's five legs: the first three leave memory in one put, the last two in
        // the next (as at the end of a put, or with a leg pending longer than the rest), then
        // the second put again (as after a restart from an older checkpoint).
        let leg = |m: u128| (4u128 << 120) | (77 << 8) | m;
        let cold =
            |m: u128| ColdTransfer { transfer: t(leg(m), 1, 2, 500 + m as u64), pending: None };
        let first: Vec<ColdTransfer> = (0..3).map(cold).collect();
        let second: Vec<ColdTransfer> = (3..5).map(cold).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let check = |store: &HistoryStore| {
            for m in 0..5 {
                let found = store.transfer(leg(m), u64::MAX).unwrap().map(|c| c.transfer);
                assert_eq!(found, Some(cold(m).transfer), "leg {m}");
            }
            assert_eq!(store.transfer(leg(5), u64::MAX).unwrap(), None);
            // Not yet reached by a horizon between the legs.
            assert!(store.transfer(leg(4), 503).unwrap().is_none());
            assert!(store.transfer(leg(3), 503).unwrap().is_some());
        };
        store.put(&first, &[]).unwrap();
        store.put(&second, &[]).unwrap();
        check(&store);
        store.put(&second, &[]).unwrap();
        check(&store);
        check(&reopen(store, dir.path()));
    }

    #[test]
    fn an_id_index_entry_that_is_not_whole_runs_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let id = (4u128 << 120) | (9 << 8) | 1;
        let key = ids::group_key(ids::index_order(id));
        // A first run whose timestamp is cut short.
        store.tables.ids.insert(key, [0u8; 9]).unwrap();
        let corrupt = |r: Result<_, StoreError>| match r {
            Err(StoreError::Failed { cause, .. }) => {
                matches!(*cause, StoreError::Corrupt { what: "id index entry", .. })
            }
            r => matches!(r, Err(StoreError::Corrupt { what: "id index entry", .. })),
        };
        assert!(corrupt(store.transfer(id, u64::MAX).map(drop)));
        // A put of another member of the group will not merge with it either, and that write
        // failing fails the store.
        let other = ColdTransfer { transfer: t(id + 1, 1, 2, 5), pending: None };
        store.put(&[other], &[]).unwrap();
        assert!(corrupt(store.persist()));
        assert!(corrupt(store.transfer(id + 1, u64::MAX).map(drop)));
    }

    #[test]
    fn statements_come_back_in_order_within_the_horizon_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = HistoryStore::open(dir.path()).unwrap();
            let cold: Vec<ColdTransfer> = (1..=10u64)
                .map(|i| ColdTransfer {
                    transfer: t(u128::from(i), 1 + u128::from(i % 2), 9, i * 10),
                    pending: None,
                })
                .collect();
            store.put(&cold, &[]).unwrap();
            store.persist().unwrap();
        }
        let store = HistoryStore::open(dir.path()).unwrap();
        let ids = |filter: &AccountFilter, horizon: u64, limit: usize| {
            let mut out = Vec::new();
            store.account_transfers(filter, horizon, limit, &mut out).unwrap();
            out.iter().map(|t| t.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&AccountFilter::all(9, 100), 100, 100), (1..=10).collect::<Vec<_>>());
        assert_eq!(ids(&AccountFilter::all(9, 100), 55, 3), [1, 2, 3]);
        assert_eq!(ids(&AccountFilter::all(9, 100), 55, 100), [1, 2, 3, 4, 5]);
        let reversed = AccountFilter { reversed: true, ..AccountFilter::all(2, 100) };
        assert_eq!(ids(&reversed, 100, 100), [9, 7, 5, 3, 1]);
        let credits = AccountFilter { credits: false, ..AccountFilter::all(9, 100) };
        assert!(ids(&credits, 100, 100).is_empty());
        assert!(store.has_timestamp(30, 100).unwrap());
        assert!(!store.has_timestamp(30, 29).unwrap());
        assert!(!store.has_timestamp(31, 100).unwrap());
        assert_eq!(store.transfer(11, 100).unwrap(), None);
        let mut seen = Vec::new();
        store.scan(45, |c| seen.push(c.transfer.id)).unwrap();
        assert_eq!(seen, [1, 2, 3, 4]);
    }

    #[test]
    fn reads_right_after_a_put_see_it_whole_while_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let cold = |i: u64, pending| ColdTransfer {
            transfer: t(u128::from(i), 1 + u128::from(i % 3), 9, i * 2),
            pending,
        };
        let first: Vec<ColdTransfer> = (1..=1_000).map(|i| cold(i, None)).collect();
        store.put(&first, &[]).unwrap();
        // Large enough to be still in flight when the reads below start (they are right
        // either way).
        let second: Vec<ColdTransfer> = (1_001..=200_000)
            .map(|i| cold(i, (i == 1_500).then_some(PendingStatus::Pending)))
            .collect();
        store.put(&second, &[cold(7, Some(PendingStatus::Posted))]).unwrap();
        for id in [1, 7, 999, 1_001, 1_500, 150_000, 200_000] {
            let found = store.transfer(id, u64::MAX).unwrap().expect("found");
            assert_eq!(found.transfer.id, id);
            let expected = match id {
                7 => Some(PendingStatus::Posted),
                1_500 => Some(PendingStatus::Pending),
                _ => None,
            };
            assert_eq!(found.pending, expected, "id {id}");
        }
        assert_eq!(store.transfer(200_001, u64::MAX).unwrap(), None);
        assert_eq!(store.transfer(150_000, 299_999).unwrap(), None);
        assert!(store.has_timestamp(300_000, u64::MAX).unwrap());
        assert!(!store.has_timestamp(300_001, u64::MAX).unwrap());
        let mut out = Vec::new();
        let newest = AccountFilter { reversed: true, ..AccountFilter::all(9, 3) };
        store.account_transfers(&newest, u64::MAX, 3, &mut out).unwrap();
        assert_eq!(out.iter().map(|t| t.id).collect::<Vec<_>>(), [200_000, 199_999, 199_998]);
        let mut count = 0;
        store.scan(u64::MAX, |_| count += 1).unwrap();
        assert_eq!(count, 200_000);
    }

    #[test]
    fn statements_agree_with_a_plain_list_across_batches_long_runs_and_a_replayed_batch() {
        let dir = tempfile::tempdir().unwrap();
        // Account 1 takes every transfer (more than one run's worth per batch), accounts
        // 2 to 6 the other side in turn.
        let all: Vec<ColdTransfer> = (1..=3_000u64)
            .map(|i| ColdTransfer {
                transfer: t(u128::from(i), 1, 2 + u128::from(i % 5), i * 3),
                pending: None,
            })
            .collect();
        let mut store = HistoryStore::open(dir.path()).unwrap();
        store.put(&all[..1_500], &[]).unwrap();
        // A restart from an older checkpoint moves an overlapping stretch out again.
        drop(store);
        store = HistoryStore::open(dir.path()).unwrap();
        store.put(&all[1_000..2_200], &[]).unwrap();
        store.put(&all[2_200..], &[]).unwrap();
        for (account, horizon, min, max, reversed, limit) in [
            (1, 9_000, 0, 0, false, 8_000),
            (1, 9_000, 0, 0, true, 8_000),
            (1, 6_000, 2_999, 3_300, false, 50),
            (1, 6_000, 2_999, 3_300, true, 50),
            (1, 4_500, 3_000, 0, true, 10),
            (4, 9_000, 100, 8_000, false, 8_000),
            (4, 9_000, 100, 8_000, true, 7),
            (6, 2_000, 0, 0, true, 8_000),
            (7, 9_000, 0, 0, false, 10),
        ] {
            let filter = AccountFilter {
                timestamp_min: min,
                timestamp_max: max,
                reversed,
                ..AccountFilter::all(account, limit)
            };
            let mut expected: Vec<Transfer> = all
                .iter()
                .map(|c| c.transfer)
                .filter(|t| t.timestamp <= horizon && filter.matches(t))
                .collect();
            if reversed {
                expected.reverse();
            }
            expected.truncate(limit as usize);
            let mut out = Vec::new();
            store.account_transfers(&filter, horizon, limit as usize, &mut out).unwrap();
            assert_eq!(out, expected, "account {account} {min}..={max} reversed {reversed}");
        }
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = HistoryStore::open(dir.path()).unwrap();
            store.put(&[ColdTransfer { transfer: t(1, 1, 2, 10), pending: None }], &[]).unwrap();
            store.tables.ids.insert(FORMAT_KEY, (FORMAT + 1).to_le_bytes()).unwrap();
            store.persist().unwrap();
        }
        match HistoryStore::open(dir.path()) {
            Err(StoreError::Format { found, .. }) => assert_eq!(found, Some(FORMAT + 1)),
            other => panic!("opened a store of another format: {other:?}"),
        }
        let again = tempfile::tempdir().unwrap();
        {
            let store = HistoryStore::open(again.path()).unwrap();
            store.put(&[ColdTransfer { transfer: t(1, 1, 2, 10), pending: None }], &[]).unwrap();
            store.tables.ids.remove(FORMAT_KEY).unwrap();
            store.persist().unwrap();
        }
        // Transfers without a format: written before the format was recorded.
        assert!(matches!(
            HistoryStore::open(again.path()),
            Err(StoreError::Format { found: None, .. })
        ));
        // A new store gets the format and opens again.
        let fresh = tempfile::tempdir().unwrap();
        drop(HistoryStore::open(fresh.path()).unwrap());
        assert!(HistoryStore::open(fresh.path()).is_ok());
    }

    /// Every transfer `scan` gives at or before `horizon`.
    fn scanned(store: &HistoryStore, horizon: u64) -> Vec<ColdTransfer> {
        let mut out = Vec::new();
        store.scan(horizon, |c| out.push(c)).unwrap();
        out
    }

    #[test]
    fn legs_moved_again_in_other_groups_read_the_same() {
        // An operation's three legs, the last one pending; after a restart from an older
        // checkpoint they leave memory again, cut differently by the ends of puts.
        let leg = |m: u128, pending| ColdTransfer {
            transfer: t((4u128 << 120) | (77 << 8) | m, 1, 2 + m, 500 + m as u64),
            pending,
        };
        let posted = Some(PendingStatus::Posted);
        let whole = [leg(0, None), leg(1, None), leg(2, Some(PendingStatus::Pending))];
        for (first, second) in [(&whole[..], &whole[..2]), (&whole[..2], &whole[..])] {
            let dir = tempfile::tempdir().unwrap();
            let mut store = HistoryStore::open(dir.path()).unwrap();
            store.put(first, &[]).unwrap();
            if first.len() < 3 {
                store.put(&whole[2..], &[]).unwrap();
            }
            store.put(&[], &[leg(2, posted)]).unwrap();
            store.put(second, &[]).unwrap();
            if second.len() < 3 {
                store.put(&whole[2..], &[]).unwrap();
            }
            store.put(&[], &[leg(2, posted)]).unwrap();
            let expected = [whole[0], whole[1], leg(2, posted)];
            for _ in 0..2 {
                assert_eq!(scanned(&store, u64::MAX), expected);
                assert_eq!(scanned(&store, 501), expected[..2]);
                for c in &expected {
                    assert_eq!(store.transfer(c.transfer.id, u64::MAX).unwrap(), Some(*c));
                    assert!(store.has_timestamp(c.transfer.timestamp, u64::MAX).unwrap());
                }
                assert!(!store.has_timestamp(503, u64::MAX).unwrap());
                let mut out = Vec::new();
                store.account_transfers(&AccountFilter::all(1, 10), 600, 10, &mut out).unwrap();
                assert_eq!(out, expected.map(|c| c.transfer));
                store = reopen(store, dir.path());
            }
        }
    }

    #[test]
    fn a_settled_transfer_the_store_does_not_hold_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let settled =
            ColdTransfer { transfer: t(5, 1, 2, 50), pending: Some(PendingStatus::Voided) };
        store.put(&[], &[settled]).unwrap();
        // The write happens behind the put: its outcome comes with the next wait.
        let err = store.persist().unwrap_err();
        assert!(
            matches!(&err, StoreError::Failed { what: "transfers", cause, .. }
                if matches!(**cause, StoreError::Corrupt { what: "settled transfer", .. })),
            "{err}"
        );
    }

    #[test]
    fn a_settled_leg_is_rewritten_inside_its_group() {
        let leg = |m: u128, pending| ColdTransfer {
            transfer: t((4u128 << 120) | (9 << 8) | m, 1, 2, 70 + m as u64),
            pending,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let held = [leg(0, None), leg(1, Some(PendingStatus::Pending)), leg(2, None)];
        store.put(&held, &[]).unwrap();
        store.put(&[], &[leg(1, Some(PendingStatus::Voided))]).unwrap();
        let expected = [held[0], leg(1, Some(PendingStatus::Voided)), held[2]];
        assert_eq!(scanned(&store, u64::MAX), expected);
        assert_eq!(scanned(&reopen(store, dir.path()), u64::MAX), expected);
    }

    #[test]
    fn a_settled_pending_transfer_replaces_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = HistoryStore::open(dir.path()).unwrap();
        let hold = t(5, 1, 2, 50);
        let pending = ColdTransfer { transfer: hold, pending: Some(PendingStatus::Pending) };
        store.put(&[pending], &[]).unwrap();
        let voided = ColdTransfer { transfer: hold, pending: Some(PendingStatus::Voided) };
        store.put(&[], &[voided]).unwrap();
        assert_eq!(store.transfer(5, 50).unwrap().unwrap().pending, Some(PendingStatus::Voided));
        let mut out = Vec::new();
        store.account_transfers(&AccountFilter::all(1, 10), 50, 10, &mut out).unwrap();
        assert_eq!(out, [hold]);
    }
}
