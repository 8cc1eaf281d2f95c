//! Records of a domain machine that left memory (payments, their outcomes, coupons ...), and
//! append-only lists of them (each merchant's and each user's payments).
//!
//! A record is `key` → `as_of (a varint) ‖ payload` in its table's keyspace (one
//! per table, so that a table whose keys grow with time is only ever appended to: a lookup of a
//! new key is outside every stored table's key range, and compaction moves tables rather than
//! rewriting them), where `as_of` is the position in the machine's journal (records applied)
//! when it was written.
//! Reads take the machine's own position as their horizon and ignore records written later:
//! after a restart from an older checkpoint, what the replay has not reached yet does not exist.
//! The lists are an index in epochs (see `epochs`), whose owner is `list ‖ owner` and whose
//! items are (timestamp, id, as_of). A journal position takes 4 or 5 bytes as a varint, not 8.
//!
//! The machine decides what may be written when (see its tiering rules); the store only keeps
//! the last write of each key.

use std::sync::Arc;

use fjall::config::{FilterPolicy, FilterPolicyEntry};
use fjall::Keyspace;
use huifu_ledger::varint;

use crate::constants::EPOCHS_PER_TIER;
use crate::encoding::Reader;
use crate::epochs::{EpochIndex, Item, Layout};
use crate::{keyspace_options, point_read_options, HistoryStore, StoreError, Writes};

/// Longest record key (without its table byte): an outcome's kind and id.
const KEY_SIZE_MAX: usize = 17;

/// One record to write: its table, key, journal position and payload.
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

/// A list's owner in the lists' index: the list, then its owner.
fn list_owner(list: u8, owner: u64) -> u128 {
    (u128::from(list) << 64) | u128::from(owner)
}

/// The records and lists of a machine, in the history store's database (so `persist` covers
/// them with the transfers).
pub struct RecordStore {
    store_path: std::path::PathBuf,
    /// Each table's keyspace, by table number (`None`: not a table of this machine).
    records: Vec<Option<Keyspace>>,
    lists: EpochIndex,
    /// The store's writes in flight (see `behind`).
    writes: Arc<Writes>,
}

/// A put of records and list entries as the thread writing it and the reads meanwhile see it.
pub(crate) struct StagedRecords {
    /// Each record's table and key then its value (`as_of` ‖ payload), one after another (one
    /// buffer, not two allocations per record).
    bytes: Vec<u8>,
    /// (start, key length with the table byte, end) of each record in `bytes`, by table and
    /// key.
    index: Vec<(usize, usize, usize)>,
    /// List entries and their `as_of`, in no order (read only by range, after the write).
    entries: Vec<(ListEntry, u64)>,
}

impl StagedRecords {
    fn key(&self, &(start, len, _): &(usize, usize, usize)) -> &[u8] {
        &self.bytes[start..start + len]
    }

    fn value(&self, &(start, len, end): &(usize, usize, usize)) -> &[u8] {
        &self.bytes[start + len..end]
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let i = self.index.binary_search_by(|item| self.key(item).cmp(key)).ok()?;
        Some(self.value(&self.index[i]))
    }
}

impl Drop for RecordStore {
    fn drop(&mut self) {
        // The put in flight may start a merge of the lists: it ends first, then the merge,
        // before the database closes under them.
        let _ = self.writes.records.wait();
        self.lists.close();
    }
}

impl std::fmt::Debug for RecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStore").field("path", &self.store_path).finish()
    }
}

impl RecordStore {
    /// Opens the record store of a machine whose records are in `tables` (each a number of
    /// its own).
    pub fn open(store: &HistoryStore, tables: &[u8]) -> Result<RecordStore, StoreError> {
        let mut records = vec![None; tables.iter().map(|&t| usize::from(t) + 1).max().unwrap_or(0)];
        for &table in tables {
            // Every new operation asks whether its id was seen before.
            let keyspace = store
                .tables
                .db
                .keyspace(&format!("records_{table}"), point_read_options)
                .map_err(|e| store.tables.error(e))?;
            records[usize::from(table)] = Some(keyspace);
        }
        // Only ever read by range (a page of a list): bloom filters would be built at every
        // compaction and never asked.
        let lists = store
            .tables
            .db
            .keyspace("lists", || {
                keyspace_options().filter_policy(FilterPolicy::all(FilterPolicyEntry::None))
            })
            .map_err(|e| store.tables.error(e))?;
        let lists =
            EpochIndex::open(lists, store.tables.path.clone(), Layout::Listed, EPOCHS_PER_TIER)?;
        Ok(RecordStore {
            store_path: store.tables.path.clone(),
            records,
            lists,
            writes: Arc::clone(&store.writes),
        })
    }

    fn error(&self, cause: fjall::Error) -> StoreError {
        StoreError::Fjall { path: self.store_path.clone(), cause }
    }

    fn corrupt(&self, what: &'static str) -> StoreError {
        StoreError::Corrupt { path: self.store_path.clone(), what }
    }

    /// The keyspace of `table`.
    fn table(&self, table: u8) -> Result<&Keyspace, StoreError> {
        table_of(&self.records, table).ok_or_else(|| self.unknown(table))
    }

    fn unknown(&self, table: u8) -> StoreError {
        StoreError::Table { path: self.store_path.clone(), table }
    }

    /// Writes `records` and `entries`, each kind as one sorted run straight into the store's
    /// tables (as transfers are: no in-memory table, no store journal). Each key at most once.
    /// The write happens behind the caller (see `behind`); reads see it at once.
    pub fn put(
        &self,
        records: &[Record<'_>],
        entries: &[(ListEntry, u64)],
    ) -> Result<(), StoreError> {
        self.writes.records.healthy()?;
        if records.is_empty() && entries.is_empty() {
            return Ok(());
        }
        if let Some(r) = records.iter().find(|r| table_of(&self.records, r.table).is_none()) {
            return Err(self.unknown(r.table));
        }
        let size = records.iter().map(|r| 11 + r.key.len() + r.payload.len()).sum();
        let mut bytes = Vec::with_capacity(size);
        let mut index = Vec::with_capacity(records.len());
        for r in records {
            let start = bytes.len();
            bytes.push(r.table);
            bytes.extend_from_slice(r.key);
            varint::put(&mut bytes, u128::from(r.as_of));
            bytes.extend_from_slice(r.payload);
            index.push((start, 1 + r.key.len(), bytes.len()));
        }
        let mut staged = StagedRecords { bytes, index: Vec::new(), entries: entries.to_vec() };
        index.sort_unstable_by(|a, b| staged.key(a).cmp(staged.key(b)));
        debug_assert!(
            index.windows(2).all(|w| staged.key(&w[0]) < staged.key(&w[1])),
            "a key twice"
        );
        staged.index = index;
        let (path, records, lists) =
            (self.store_path.clone(), self.records.clone(), self.lists.clone());
        let items = staged.index.len() + staged.entries.len();
        self.writes.records.start("records", items, staged, move |staged| {
            let e = |cause| StoreError::Fjall { path: path.clone(), cause };
            // One sorted run per table: the records are in table order.
            for run in staged.index.chunk_by(|a, b| staged.key(a)[0] == staged.key(b)[0]) {
                let table = table_of(&records, staged.key(&run[0])[0]).expect("checked above");
                let mut ingestion = table.start_ingestion().map_err(e)?;
                for item in run {
                    ingestion.write(&staged.key(item)[1..], staged.value(item)).map_err(e)?;
                }
                ingestion.finish().map_err(e)?;
            }
            // Only what the lists do not hold yet: after a restart from an older checkpoint the
            // same entries leave memory again. A list's timestamps are its operations' (which
            // grow), and one operation's entries leave memory together.
            let indexed_max = lists.indexed_max();
            let mut sorted: Vec<(u128, Item)> = staged
                .entries
                .iter()
                .filter(|(entry, _)| entry.timestamp > indexed_max)
                .map(|&(entry, as_of)| {
                    let item = Item { ts: entry.timestamp, id: entry.id, as_of };
                    (list_owner(entry.list, entry.owner), item)
                })
                .collect();
            sorted.sort_unstable();
            sorted.dedup();
            lists.append(&sorted)
        })
    }

    /// The payload of `table`'s record `key`, if it was written at or before `horizon`.
    pub fn get(&self, table: u8, key: &[u8], horizon: u64) -> Result<Option<Vec<u8>>, StoreError> {
        // Keys are at most 17 bytes: built on the stack, this read allocates only its answer.
        let mut full = [0u8; 1 + KEY_SIZE_MAX];
        let full = full.get_mut(..1 + key.len()).expect("record keys are at most 17 bytes");
        full[0] = table;
        full[1..].copy_from_slice(key);
        let staged = self.writes.records.staged()?;
        let stored;
        let value: &[u8] = match staged.as_ref().and_then(|s| s.get(full)) {
            Some(value) => value,
            None => match self.table(table)?.get(&full[1..]).map_err(|e| self.error(e))? {
                None => return Ok(None),
                Some(value) => {
                    stored = value;
                    &stored
                }
            },
        };
        let (as_of, payload) = self.as_of(value)?;
        if as_of > horizon {
            return Ok(None);
        }
        Ok(Some(payload.to_vec()))
    }

    /// A record's or list entry's journal position, and what follows it.
    fn as_of<'v>(&self, value: &'v [u8]) -> Result<(u64, &'v [u8]), StoreError> {
        let mut reader = Reader::new(value);
        let as_of = reader.narrow().map_err(|_| self.corrupt("record without position"))?;
        Ok((as_of, reader.rest()))
    }

    /// Calls `f` with the key (without the table byte) and payload of every record of `table`
    /// written at or before `horizon`, in key order.
    pub fn scan(
        &self,
        table: u8,
        horizon: u64,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        self.writes.records.wait()?;
        for guard in self.table(table)?.iter() {
            let (key, value) = guard.into_inner().map_err(|e| self.error(e))?;
            let (as_of, payload) = self.as_of(&value)?;
            if as_of <= horizon {
                f(&key, payload);
            }
        }
        Ok(())
    }

    /// Appends to `out`, newest first, the entries of `owner`'s list `list` written at or
    /// before `horizon` that come before `(timestamp, id)` = `before` (all when `None`), until
    /// `out` holds `limit`.
    pub fn list(
        &self,
        list: u8,
        owner: u64,
        before: Option<(u64, u64)>,
        horizon: u64,
        limit: usize,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<(), StoreError> {
        if out.len() >= limit {
            return Ok(());
        }
        self.writes.records.wait()?;
        let high = before.map_or(u64::MAX, |(timestamp, _)| timestamp);
        self.lists.read(list_owner(list, owner), 0, high, true, |item| {
            if item.as_of > horizon || before.is_some_and(|b| (item.ts, item.id) >= b) {
                return Ok(true);
            }
            out.push((item.ts, item.id));
            Ok(out.len() < limit)
        })
    }
}

/// The keyspace of `table` among `records`, if it is one of them.
fn table_of(records: &[Option<Keyspace>], table: u8) -> Option<&Keyspace> {
    records.get(usize::from(table)).and_then(Option::as_ref)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_right_after_a_put_are_read_whole_while_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryStore::open(dir.path()).unwrap();
        let store = RecordStore::open(&history, &[1, 2, 3]).unwrap();
        let keys: Vec<[u8; 8]> = (0..100_000u64).map(|i| (i * 7).to_be_bytes()).collect();
        let records: Vec<Record<'_>> =
            keys.iter().map(|k| Record { table: 3, key: k, as_of: 5, payload: &k[6..] }).collect();
        let entry = |timestamp, id| ListEntry { list: 1, owner: 2, timestamp, id };
        store.put(&records[..10], &[]).unwrap();
        store.put(&records[10..], &[(entry(10, 1), 5), (entry(20, 2), 5)]).unwrap();
        for i in [0u64, 9, 10, 50_000, 99_999] {
            let key = (i * 7).to_be_bytes();
            assert_eq!(store.get(3, &key, 5).unwrap().as_deref(), Some(&key[6..]));
            assert_eq!(store.get(3, &key, 4).unwrap(), None);
            assert_eq!(store.get(2, &key, 5).unwrap(), None);
        }
        assert_eq!(store.get(3, &1u64.to_be_bytes(), 5).unwrap(), None);
        let mut page = Vec::new();
        store.list(1, 2, None, 5, 10, &mut page).unwrap();
        assert_eq!(page, [(20, 2), (10, 1)]);
        let mut count = 0;
        store.scan(3, 5, |_, _| count += 1).unwrap();
        assert_eq!(count, 100_000);
    }

    #[test]
    fn a_position_cut_short_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryStore::open(dir.path()).unwrap();
        let store = RecordStore::open(&history, &[1]).unwrap();
        let corrupt = |r: Result<(), StoreError>, what: &str| {
            assert!(matches!(r, Err(StoreError::Corrupt { what: w, .. }) if w == what), "{what}");
        };
        // A varint whose last byte says more follows.
        let key = 7u64.to_be_bytes();
        store.table(1).unwrap().insert(key, [0x80u8]).unwrap();
        corrupt(store.get(1, &key, 10).map(drop), "record without position");
    }

    #[test]
    fn a_record_of_a_table_not_opened_is_refused_and_nothing_of_its_put_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let history = HistoryStore::open(dir.path()).unwrap();
        let store = RecordStore::open(&history, &[1, 3]).unwrap();
        let key = 7u64.to_be_bytes();
        let records = [
            Record { table: 1, key: &key, as_of: 1, payload: b"kept out" },
            Record { table: 2, key: &key, as_of: 1, payload: b"no table" },
        ];
        let entry = (ListEntry { list: 0, owner: 1, timestamp: 1, id: 7 }, 1);
        match store.put(&records, &[entry]) {
            Err(StoreError::Table { table: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(store.get(1, &key, 10).unwrap(), None);
        assert!(matches!(store.get(2, &key, 10), Err(StoreError::Table { table: 2, .. })));
        let mut page = Vec::new();
        store.list(0, 1, None, 10, 10, &mut page).unwrap();
        assert!(page.is_empty());
        // Tables are apart: the same key in two of them is two records.
        let records = [
            Record { table: 1, key: &key, as_of: 1, payload: b"one" },
            Record { table: 3, key: &key, as_of: 1, payload: b"three" },
        ];
        store.put(&records, &[]).unwrap();
        assert_eq!(store.get(1, &key, 10).unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(store.get(3, &key, 10).unwrap().as_deref(), Some(&b"three"[..]));
        let mut seen = Vec::new();
        store.scan(3, 10, |k, v| seen.push((k.to_vec(), v.to_vec()))).unwrap();
        assert_eq!(seen, [(key.to_vec(), b"three".to_vec())]);
    }

    #[test]
    fn lists_agree_with_a_plain_list_across_merges_a_replayed_put_and_reopening() {
        // 40 puts (merged into a tier above after 16) of ten payments each, listed under their
        // merchant (1 to 3) and their user (1 to 7), each put at its own journal position.
        let entries: Vec<Vec<(ListEntry, u64)>> = (0..40u64)
            .map(|p| {
                (p * 10..p * 10 + 10)
                    .flat_map(|i| {
                        let (timestamp, id) = (1_000 + i * 5, 10_000 - i * 3);
                        [
                            (ListEntry { list: 0, owner: 1 + i % 3, timestamp, id }, p * 10),
                            (ListEntry { list: 1, owner: 1 + i % 7, timestamp, id }, p * 10),
                        ]
                    })
                    .collect()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let check = |store: &RecordStore| {
            for (list, owner, before, horizon, limit) in [
                (0, 1, None, 400, 1_000),
                (0, 2, None, 400, 7),
                (1, 5, Some((2_000, 0)), 400, 1_000),
                (1, 5, Some((1_300, 10_000 - 60)), 400, 3),
                (0, 3, None, 155, 1_000),
                (0, 9, None, 400, 10),
            ] {
                let mut expected: Vec<(u64, u64)> = entries
                    .concat()
                    .iter()
                    .filter(|(e, as_of)| {
                        e.list == list
                            && e.owner == owner
                            && *as_of <= horizon
                            && before.is_none_or(|b| (e.timestamp, e.id) < b)
                    })
                    .map(|(e, _)| (e.timestamp, e.id))
                    .collect();
                expected.reverse();
                expected.truncate(limit);
                let mut out = Vec::new();
                store.list(list, owner, before, horizon, limit, &mut out).unwrap();
                assert_eq!(out, expected, "list {list} owner {owner} before {before:?}");
            }
        };
        {
            let history = HistoryStore::open(dir.path()).unwrap();
            let store = RecordStore::open(&history, &[1]).unwrap();
            for (p, put) in entries.iter().enumerate() {
                store.put(&[], put).unwrap();
                if p == 30 {
                    // Moved out again, as after a restart from an older checkpoint.
                    store.put(&[], &entries[29]).unwrap();
                }
            }
            store.writes.records.wait().unwrap();
            store.lists.settle().unwrap();
            check(&store);
            history.persist().unwrap();
        }
        let history = HistoryStore::open(dir.path()).unwrap();
        let store = RecordStore::open(&history, &[1]).unwrap();
        check(&store);
    }

    #[test]
    fn records_and_lists_are_seen_only_within_the_horizon() {
        let dir = tempfile::tempdir().unwrap();
        {
            let history = HistoryStore::open(dir.path()).unwrap();
            let store = RecordStore::open(&history, &[1, 2, 3]).unwrap();
            let records = [
                Record { table: 1, key: &7u64.to_be_bytes(), as_of: 10, payload: b"seven" },
                Record { table: 1, key: &8u64.to_be_bytes(), as_of: 20, payload: b"eight" },
                Record { table: 2, key: &7u64.to_be_bytes(), as_of: 10, payload: b"other" },
            ];
            let entry = |timestamp, id| ListEntry { list: 0, owner: 5, timestamp, id };
            let entries = [(entry(100, 3), 10), (entry(100, 1), 10), (entry(200, 2), 20)];
            store.put(&records, &entries).unwrap();
            history.persist().unwrap();
        }
        let history = HistoryStore::open(dir.path()).unwrap();
        let store = RecordStore::open(&history, &[1, 2, 3]).unwrap();
        let get = |table, key: u64, horizon| store.get(table, &key.to_be_bytes(), horizon).unwrap();
        assert_eq!(get(1, 7, 10), Some(b"seven".to_vec()));
        assert_eq!(get(1, 8, 19), None);
        assert_eq!(get(1, 8, 20), Some(b"eight".to_vec()));
        assert_eq!(get(2, 7, 10), Some(b"other".to_vec()));
        assert_eq!(get(2, 8, 100), None);
        let mut seen = Vec::new();
        store.scan(1, 15, |k, v| seen.push((k.to_vec(), v.to_vec()))).unwrap();
        assert_eq!(seen, [(7u64.to_be_bytes().to_vec(), b"seven".to_vec())]);

        let page = |before, horizon, limit| {
            let mut out = Vec::new();
            store.list(0, 5, before, horizon, limit, &mut out).unwrap();
            out
        };
        assert_eq!(page(None, 20, 10), [(200, 2), (100, 3), (100, 1)]);
        assert_eq!(page(None, 10, 10), [(100, 3), (100, 1)]);
        assert_eq!(page(Some((100, 3)), 20, 10), [(100, 1)]);
        assert_eq!(page(Some((200, 2)), 20, 1), [(100, 3)]);
        let mut other = Vec::new();
        store.list(1, 5, None, 20, 10, &mut other).unwrap();
        assert!(other.is_empty());
    }
}
