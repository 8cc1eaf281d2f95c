//! The Raft log of a node: its journal (`journal/` in the data folder, one record per entry,
//! the record's sequence number the entry's index plus one), with the vote and the position
//! up to which the log was purged in small files beside it.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use huifu_journal::{FileStorage, Journal, JournalOptions, Storage};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogReader, StorageIOError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

const VOTE_FILE: &str = "raft-vote";
const PURGED_FILE: &str = "raft-purged";

/// Encoded bytes of the newest entries a log keeps in memory as well as on disk.
const RECENT_BYTES_MAX: usize = 64 << 20;

/// The log of one node; clones share it.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    journal: Journal<FileStorage>,
    dir: PathBuf,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    /// The last entry known committed, as Raft last said (kept in memory only: it is for
    /// operators, and a restart learns it again from the leader).
    committed: Option<LogId>,
    /// The newest entries appended, in index order, with their encoded size: what Raft reads
    /// back at once (to send to followers, to apply) comes from here, not from the disk.
    recent: Recent,
}

/// The newest entries of the log, at most [`RECENT_BYTES_MAX`] of them by encoded size, always
/// a contiguous run ending at the log's last entry.
#[derive(Default)]
struct Recent {
    entries: VecDeque<(Entry, usize)>,
    bytes: usize,
}

impl Recent {
    fn push(&mut self, entry: Entry, bytes: usize) {
        self.entries.push_back((entry, bytes));
        self.bytes += bytes;
        while self.bytes > RECENT_BYTES_MAX && self.entries.len() > 1 {
            let (_, bytes) = self.entries.pop_front().expect("more than one");
            self.bytes -= bytes;
        }
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|(e, _)| e.log_id.index)
    }

    /// Keeps the entries before index `from` only.
    fn truncate(&mut self, from: u64) {
        while self.entries.back().is_some_and(|(e, _)| e.log_id.index >= from) {
            let (_, bytes) = self.entries.pop_back().expect("checked");
            self.bytes -= bytes;
        }
    }

    /// Drops the entries up to index `to`.
    fn purge(&mut self, to: u64) {
        while self.entries.front().is_some_and(|(e, _)| e.log_id.index <= to) {
            let (_, bytes) = self.entries.pop_front().expect("checked");
            self.bytes -= bytes;
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

/// Writes `value` to `dir/name` so that a crash leaves the old value or the new one: a
/// temporary file, fsynced, renamed over it, the folder fsynced.
fn write_durably<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = bincode::serialize(value).map_err(io::Error::other)?;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = FileStorage.create(&tmp)?;
    huifu_journal::StorageFile::write_all(&mut file, &bytes)?;
    huifu_journal::StorageFile::sync(&mut file)?;
    FileStorage.rename(&tmp, &dir.join(name))?;
    FileStorage.sync_dir(dir)
}

fn read_file<T: DeserializeOwned>(dir: &Path, name: &str) -> io::Result<Option<T>> {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => bincode::deserialize(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}"))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl LogStore {
    /// Opens (creating) the log in `dir`: the journal in `dir/journal`, the vote and the purge
    /// position beside it. `fsync` false is for benchmarks only.
    pub fn open(dir: &Path, fsync: bool) -> io::Result<LogStore> {
        let last_purged: Option<LogId> = read_file(dir, PURGED_FILE)?;
        let vote: Option<Vote> = read_file(dir, VOTE_FILE)?;
        let mut options = JournalOptions::new(dir.join("journal"));
        options.fsync = fsync;
        options.seq_min = last_purged.map_or(1, |id| id.index + 2);
        let (journal, _) = Journal::open(options).map_err(io::Error::other)?;
        let inner = Inner {
            journal,
            dir: dir.to_path_buf(),
            last_purged,
            vote,
            committed: None,
            recent: Recent::default(),
        };
        Ok(LogStore { inner: Arc::new(Mutex::new(inner)) })
    }

    /// Whether `dir` is a cluster node's data folder (a node that has voted at least once).
    pub fn is_node_folder(dir: &Path) -> bool {
        dir.join(VOTE_FILE).is_file()
    }

    /// Up to `max` entries from index `from` on, in order (fewer at the log's end).
    pub fn read_entries(&self, from: u64, max: u64) -> Result<Vec<Entry>, StorageError> {
        self.lock().entries(from..from.saturating_add(max))
    }

    /// Whether this node has never voted: a new node, or one whose folder was wiped.
    pub fn never_voted(&self) -> bool {
        self.lock().vote.is_none()
    }

    /// The last entry of the log (or the last purged, when none is left); `None` when
    /// empty or unreadable.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.lock().last_log_id().ok().flatten()
    }

    /// The last entry this node knows to be committed.
    pub fn committed(&self) -> Option<LogId> {
        self.lock().committed
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// The entries with index in `range` that the log holds.
    fn entries(&mut self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, StorageError> {
        // Purged entries may still be in a segment the journal keeps whole: never handed out.
        let purged_end = self.last_purged.map_or(0, |id| id.index + 1);
        let first_index = (self.journal.first_seq() - 1).max(purged_end);
        let end_index = self.journal.next_seq() - 1;
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => first_index,
        }
        .max(first_index);
        let end = match range.end_bound() {
            Bound::Included(&i) => i + 1,
            Bound::Excluded(&i) => i,
            Bound::Unbounded => end_index,
        }
        .min(end_index);
        let mut entries = Vec::new();
        if start >= end {
            return Ok(entries);
        }
        if let Some(first) = self.recent.first_index().filter(|&first| first <= start) {
            let skip = (start - first) as usize;
            let take = (end - start) as usize;
            entries
                .extend(self.recent.entries.iter().skip(skip).take(take).map(|(e, _)| e.clone()));
            if entries.len() == take {
                return Ok(entries);
            }
            entries.clear();
        }
        let mut decode_error = None;
        self.journal
            .read(start + 1, |seq, body| match bincode::deserialize::<Entry>(body) {
                Ok(entry) => {
                    entries.push(entry);
                    seq < end
                }
                Err(e) => {
                    decode_error = Some(e);
                    false
                }
            })
            .map_err(read_error)?;
        if let Some(e) = decode_error {
            return Err(read_error(e));
        }
        Ok(entries)
    }

    fn last_log_id(&mut self) -> Result<Option<LogId>, StorageError> {
        let next = self.journal.next_seq();
        if next == self.journal.first_seq() {
            return Ok(self.last_purged);
        }
        let last = self.entries(next - 2..next - 1)?;
        Ok(last.last().map(|e| e.log_id).or(self.last_purged))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.lock().entries(range)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let mut inner = self.lock();
        let last_log_id = inner.last_log_id()?;
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        write_durably(&inner.dir, VOTE_FILE, vote)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut inner = self.lock();
        let mut bytes = Vec::new();
        for entry in entries {
            let seq = entry.log_id.index + 1;
            if inner.journal.next_seq() != seq {
                // After a snapshot was installed past the end of the log, the log goes on after
                // the snapshot; anything else is a gap Raft never asks for.
                if inner.journal.first_seq() == inner.journal.next_seq() {
                    inner.journal.start_at(seq).map_err(write_error)?;
                    inner.recent.clear();
                } else {
                    return Err(write_error(io::Error::other(format!(
                        "entry {} appended where the log's next is {}",
                        entry.log_id.index,
                        inner.journal.next_seq() - 1
                    ))));
                }
            }
            bytes.clear();
            bincode::serialize_into(&mut bytes, &entry).map_err(write_error)?;
            inner.journal.append(&bytes).map_err(write_error)?;
            inner.recent.push(entry, bytes.len());
        }
        let synced = inner.journal.sync().map_err(io::Error::other);
        drop(inner);
        match synced {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = write_error(io::Error::other(e.to_string()));
                callback.log_io_completed(Err(e));
                Err(error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.recent.truncate(log_id.index);
        inner.journal.truncate_from(log_id.index + 1).map_err(write_error)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        // The position first: a crash after it leaves older entries nobody asks for.
        write_durably(&inner.dir, PURGED_FILE, &log_id).map_err(write_error)?;
        inner.last_purged = Some(log_id);
        inner.recent.purge(log_id.index);
        if log_id.index + 1 >= inner.journal.next_seq() {
            // Past the end (a snapshot was installed): the log starts again after it.
            let first = inner.journal.first_seq();
            inner.journal.truncate_from(first).map_err(write_error)?;
            inner.journal.start_at(log_id.index + 2).map_err(write_error)?;
        } else {
            inner.journal.remove_segments_before(log_id.index + 2).map_err(write_error)?;
        }
        Ok(())
    }
}
