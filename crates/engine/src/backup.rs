//! A consistent copy of a data folder, from a stopped node or a running one.
//!
//! A stopped node's folder is copied whole under its lock, so nothing starts on it meanwhile.
//! A running node holds the lock; its folder is still consistent to copy in this order, with
//! no help from the process: the newest checkpoint (a file that never changes once renamed into
//! place), then the journal segments from the one holding the checkpoint's sequence number on
//! (append-only: a copy can end inside the group being written, which the copy's recovery cuts
//! like any torn last group, since it was not durable when the copy began), then each segment
//! but the last once more for the bytes appended while it was copied (they never change after
//! the next segment starts). A segment or checkpoint removed by a checkpoint taken meanwhile
//! starts the copy over. The history store comes last: it was made durable by the checkpoint
//! copied, so its files hold at least what that checkpoint no longer does (more is harmless: the
//! store is read as of the state's horizon). fjall offers no copy of an open database, so its
//! folder is copied in passes, each copying what changed since the pass before, until a listing
//! of names and sizes taken after a pass equals the one taken before it (no table written,
//! merged or dropped meanwhile): the copy is then the files of one moment, which fjall opens as
//! it would after a crash.
//!
//! The copy is made in `<out>.partial`, every file and folder fsynced, then renamed to `<out>`:
//! an interrupted backup never looks like a finished one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use huifu_journal::{FileStorage, Journal, JournalOptions, SnapshotReader, Storage};

use crate::constants::{BACKUP_ATTEMPTS_MAX, BACKUP_STORE_PASSES_MAX, BACKUP_STORE_PASS_PAUSE_MS};
use crate::engine::{CHECKPOINT_PREFIX, CHECKPOINT_SUFFIX, LOCK_FILE};

/// What a backup copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupReport {
    /// The node held its folder (it was running): the copy took the checkpoint and journal path.
    pub online: bool,
    pub files: u64,
    pub bytes: u64,
    /// The journal position of the newest checkpoint copied (1 when there was none).
    pub checkpoint_seq: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} holds no huifu data (no journal folder)")]
    NotADataFolder(PathBuf),
    #[error("{0} exists already; a backup is written to a new folder")]
    OutExists(PathBuf),
    #[error(
        "the history store in {0} kept changing while it was copied ({1} passes); try again \
         when the node is less busy, or stop it"
    )]
    HistoryBusy(PathBuf, u32),
    #[error("{what} {path}: {cause}")]
    Io { what: &'static str, path: PathBuf, cause: io::Error },
    #[error("the copy of the running node's folder kept racing its checkpoints ({0} attempts)")]
    Raced(u32),
    #[error("the copy in {path} does not verify: {cause}")]
    Verify { path: PathBuf, cause: String },
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |cause| BackupError::Io { what, path, cause }
}

/// Copies the data folder `data_dir` to the new folder `out`; `progress` is called with the
/// bytes copied so far after each file.
pub fn backup(
    data_dir: &Path,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<BackupReport, BackupError> {
    if !data_dir.join("journal").is_dir() {
        return Err(BackupError::NotADataFolder(data_dir.to_path_buf()));
    }
    if out.exists() {
        return Err(BackupError::OutExists(out.to_path_buf()));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(io_error("cannot remove", &partial))?;
    }
    FileStorage.create_dir_all(&partial).map_err(io_error("cannot create", &partial))?;

    let lock_path = data_dir.join(LOCK_FILE);
    let lock = FileStorage.lock(&lock_path).map_err(io_error("cannot open", &lock_path))?;
    let mut copy = Copy { bytes: 0, files: 0, progress };
    let report = match lock {
        Some(_held) => {
            copy.tree(data_dir, &partial)?;
            BackupReport {
                online: false,
                files: copy.files,
                bytes: copy.bytes,
                checkpoint_seq: newest_checkpoint(&partial)?.map_or(1, |(seq, _)| seq),
            }
        }
        None => {
            let checkpoint_seq = copy.online(data_dir, &partial)?;
            let history = data_dir.join("history");
            if history.is_dir() {
                copy.quiet_tree(&history, &partial.join("history"))?;
            }
            BackupReport { online: true, files: copy.files, bytes: copy.bytes, checkpoint_seq }
        }
    };
    verify(&partial, report.checkpoint_seq)?;
    sync_tree(&partial)?;
    fs::rename(&partial, out).map_err(io_error("cannot rename", &partial))?;
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    FileStorage.sync_dir(parent).map_err(io_error("cannot fsync", parent))?;
    Ok(report)
}

struct Copy<'a> {
    bytes: u64,
    files: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl Copy<'_> {
    /// Copies `from` to `to` from byte `offset` on (appending to what `to` holds).
    fn file_from(&mut self, from: &Path, to: &Path, offset: u64) -> Result<(), BackupError> {
        let mut source = File::open(from).map_err(io_error("cannot open", from))?;
        source.seek(SeekFrom::Start(offset)).map_err(io_error("cannot seek in", from))?;
        let mut target = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(to)
            .map_err(io_error("cannot create", to))?;
        let copied = io::copy(&mut source, &mut target).map_err(io_error("cannot copy", from))?;
        target.sync_data().map_err(io_error("cannot fsync", to))?;
        self.bytes += copied;
        if offset == 0 {
            self.files += 1;
        }
        (self.progress)(self.bytes);
        Ok(())
    }

    /// Copies the folder `from` into the existing folder `to`, all but the lock file.
    fn tree(&mut self, from: &Path, to: &Path) -> Result<(), BackupError> {
        let mut entries: Vec<_> = fs::read_dir(from)
            .map_err(io_error("cannot list", from))?
            .collect::<Result<_, _>>()
            .map_err(io_error("cannot list", from))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if name == LOCK_FILE {
                continue;
            }
            let (source, target) = (entry.path(), to.join(&name));
            let kind = entry.file_type().map_err(io_error("cannot stat", &source))?;
            if kind.is_dir() {
                fs::create_dir(&target).map_err(io_error("cannot create", &target))?;
                self.tree(&source, &target)?;
            } else if kind.is_file() {
                self.file_from(&source, &target, 0)?;
            }
        }
        Ok(())
    }

    /// Copies the folder `from` (of an open store) to `to` until the copy is of one moment:
    /// each pass copies the files that are new or changed in size since the pass before and
    /// drops those gone (tables are written once and never change, so a pass after the first
    /// copies only what the store wrote meanwhile), until a listing taken after a pass equals
    /// the one taken before it.
    fn quiet_tree(&mut self, from: &Path, to: &Path) -> Result<(), BackupError> {
        // What was copied, as the source's listing showed it when it was.
        let mut copied: BTreeMap<PathBuf, Meta> = BTreeMap::new();
        for _ in 0..BACKUP_STORE_PASSES_MAX {
            let before = listing(from)?;
            fs::create_dir_all(to).map_err(io_error("cannot create", to))?;
            // Gone from the store, or replaced, since the pass before: gone from the copy
            // (deepest first).
            let stale: Vec<PathBuf> = copied
                .iter()
                .filter(|(name, meta)| before.get(*name) != Some(meta))
                .map(|(name, _)| name.clone())
                .collect();
            for name in stale.iter().rev() {
                let target = to.join(name);
                let removed = match copied.remove(name) {
                    Some(Meta::Folder) => fs::remove_dir_all(&target),
                    _ => fs::remove_file(&target),
                };
                match removed {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(io_error("cannot remove", &target)(e))
                    }
                    _ => {}
                }
            }
            for (name, meta) in &before {
                if copied.get(name) == Some(meta) {
                    continue;
                }
                let target = to.join(name);
                if *meta == Meta::Folder {
                    // A folder, empty or not: the store may need it to open.
                    fs::create_dir_all(&target).map_err(io_error("cannot create", &target))?;
                    copied.insert(name.clone(), *meta);
                    continue;
                }
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(io_error("cannot create", parent))?;
                }
                if target.is_file() {
                    fs::remove_file(&target).map_err(io_error("cannot remove", &target))?;
                }
                match self.file_from(&from.join(name), &target, 0) {
                    Ok(()) => {
                        copied.insert(name.clone(), *meta);
                    }
                    // Merged away since the listing: the next pass sees it gone.
                    Err(BackupError::Io { cause, .. })
                        if cause.kind() == io::ErrorKind::NotFound => {}
                    Err(other) => return Err(other),
                }
            }
            if listing(from)? == before && copied == before {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(BACKUP_STORE_PASS_PAUSE_MS));
        }
        Err(BackupError::HistoryBusy(from.to_path_buf(), BACKUP_STORE_PASSES_MAX))
    }

    /// The running node's copy; returns the copied checkpoint's journal position.
    fn online(&mut self, data_dir: &Path, out: &Path) -> Result<u64, BackupError> {
        // Append-only (the keys) or replaced whole (statements): a copy at any moment is a
        // state the node had.
        let keys = data_dir.join("api_keys");
        if keys.is_file() {
            self.file_from(&keys, &out.join("api_keys"), 0)?;
        }
        let recon = data_dir.join("recon");
        if recon.is_dir() {
            fs::create_dir(out.join("recon")).map_err(io_error("cannot create", out))?;
            self.tree(&recon, &out.join("recon"))?;
        }
        for _ in 0..BACKUP_ATTEMPTS_MAX {
            match self.checkpoint_and_journal(data_dir, out) {
                Ok(seq) => return Ok(seq),
                Err(BackupError::Io { cause, .. }) if cause.kind() == io::ErrorKind::NotFound => {
                    // A checkpoint dropped what was being copied: start the journal over.
                    for entry in fs::read_dir(out).map_err(io_error("cannot list", out))? {
                        let path = entry.map_err(io_error("cannot list", out))?.path();
                        if path.file_name().is_some_and(|n| n != "api_keys" && n != "recon") {
                            let removed = match path.is_dir() {
                                true => fs::remove_dir_all(&path),
                                false => fs::remove_file(&path),
                            };
                            removed.map_err(io_error("cannot remove", &path))?;
                        }
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(BackupError::Raced(BACKUP_ATTEMPTS_MAX))
    }

    fn checkpoint_and_journal(&mut self, data_dir: &Path, out: &Path) -> Result<u64, BackupError> {
        let seq = match newest_checkpoint(data_dir)? {
            Some((seq, path)) => {
                let name = path.file_name().expect("a file name");
                self.file_from(&path, &out.join(name), 0)?;
                seq
            }
            None => 1,
        };
        let (from, to) = (data_dir.join("journal"), out.join("journal"));
        fs::create_dir(&to).map_err(io_error("cannot create", &to))?;
        let mut segments = segments(&from)?;
        // The segment holding `seq` is the last one starting at or before it.
        let first = segments.iter().rposition(|(first, _)| *first <= seq).unwrap_or(0);
        segments.drain(..first);
        for (_, name) in &segments {
            self.file_from(&from.join(name), &to.join(name), 0)?;
        }
        // Bytes appended to a segment while it was copied, before the next one started.
        if let Some((_, body)) = segments.split_last() {
            for (_, name) in body {
                let copied = fs::metadata(to.join(name)).map_err(io_error("cannot stat", &to))?;
                let source =
                    fs::metadata(from.join(name)).map_err(io_error("cannot stat", &from))?;
                if source.len() > copied.len() {
                    self.file_from(&from.join(name), &to.join(name), copied.len())?;
                }
            }
        }
        Ok(seq)
    }
}

/// What a listing tells of an entry: a folder, or a file by what changes when it is written
/// to or replaced (its size, its last change, its inode: a file renamed over another of the
/// same size is still told apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Meta {
    Folder,
    File { len: u64, changed_ns: i128, inode: u64 },
}

/// Every file and folder under `dir` (but a lock file), by its path relative to `dir`. An entry
/// removed while it is listed is left out (the next listing differs anyway).
fn listing(dir: &Path) -> Result<BTreeMap<PathBuf, Meta>, BackupError> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    while let Some(relative) = pending.pop() {
        let path = dir.join(&relative);
        let entries = match fs::read_dir(&path) {
            Err(e) if gone(&e) && !relative.as_os_str().is_empty() => continue,
            entries => entries.map_err(io_error("cannot list", &path))?,
        };
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &path))?;
            let name = relative.join(entry.file_name());
            let meta = match entry.metadata() {
                Err(e) if gone(&e) => continue,
                meta => meta.map_err(io_error("cannot stat", &dir.join(&name)))?,
            };
            if meta.is_dir() {
                out.insert(name.clone(), Meta::Folder);
                pending.push(name);
            } else if meta.is_file() && entry.file_name() != LOCK_FILE {
                let changed_ns =
                    i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
                out.insert(name, Meta::File { len: meta.len(), changed_ns, inode: meta.ino() });
            }
        }
    }
    Ok(out)
}

/// The newest checkpoint in `dir` whose checksum holds, and its journal position.
fn newest_checkpoint(dir: &Path) -> Result<Option<(u64, PathBuf)>, BackupError> {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("cannot list", dir))? {
        let entry = entry.map_err(io_error("cannot list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix(CHECKPOINT_PREFIX)
            .and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    while let Some((seq, path)) = found.pop() {
        match SnapshotReader::open_verified(&FileStorage, &path) {
            Ok(Some(_)) => return Ok(Some((seq, path))),
            Ok(None) => continue,
            Err(error) => tracing::warn!(%error, "skipping a checkpoint that does not verify"),
        }
    }
    Ok(None)
}

/// The journal segments of `dir` as (first seq, file name), oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, String)>, BackupError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("cannot list", dir))? {
        let entry = entry.map_err(io_error("cannot list", dir))?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if let Some(seq) = name
            .strip_prefix(huifu_journal::constants::SEGMENT_FILE_PREFIX)
            .and_then(|n| n.strip_suffix(huifu_journal::constants::SEGMENT_FILE_SUFFIX))
            .and_then(|digits| digits.parse::<u64>().ok())
        {
            found.push((seq, name));
        }
    }
    found.sort();
    Ok(found)
}

/// The copy's journal opens and reaches back to its checkpoint (opening cuts a torn tail the
/// copy caught, as recovery would).
fn verify(out: &Path, checkpoint_seq: u64) -> Result<(), BackupError> {
    let mut options = JournalOptions::new(out.join("journal"));
    options.seq_min = checkpoint_seq;
    let fail = |cause: String| BackupError::Verify { path: out.to_path_buf(), cause };
    let (mut journal, _) = Journal::open(options).map_err(|e| fail(e.to_string()))?;
    journal
        .replay(checkpoint_seq, |_, _| Ok::<(), std::convert::Infallible>(()))
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// fsyncs every folder of the tree (files were fsynced as they were written).
fn sync_tree(dir: &Path) -> Result<(), BackupError> {
    for entry in fs::read_dir(dir).map_err(io_error("cannot list", dir))? {
        let path = entry.map_err(io_error("cannot list", dir))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        }
    }
    FileStorage.sync_dir(dir).map_err(io_error("cannot fsync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, EngineOptions, LedgerCommand, LedgerMachine};
    use huifu_ledger::{Account, Transfer};

    fn write(engine: &Engine<LedgerMachine>, from: u64, count: u64) {
        let transfers = (from..from + count)
            .map(|i| Transfer {
                id: u128::from(i),
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 1,
                ledger: 1,
                code: 1,
                ..Transfer::default()
            })
            .collect();
        engine.execute(LedgerCommand::CreateTransfers(transfers)).unwrap();
    }

    fn totals(dir: &Path) -> huifu_ledger::Totals {
        let (engine, _) = Engine::<LedgerMachine>::open(EngineOptions::new(dir)).unwrap();
        engine.read(|m| m.ledger.totals()).unwrap()
    }

    #[test]
    fn a_running_and_a_stopped_node_are_copied_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut options = EngineOptions::new(&data);
        options.segment_size_max = 8 << 10;
        let (engine, _) = Engine::<LedgerMachine>::open(options).unwrap();
        let accounts =
            (1..=2).map(|id| Account { id, ledger: 1, code: 1, ..Account::default() }).collect();
        engine.execute(LedgerCommand::CreateAccounts(accounts)).unwrap();
        write(&engine, 1, 100);
        engine.checkpoint().unwrap();
        write(&engine, 101, 200);

        // Running: the lock is held.
        let online = dir.path().join("online");
        let mut calls = 0;
        let report = backup(&data, &online, &mut |_| calls += 1).unwrap();
        assert!(report.online);
        assert!(report.checkpoint_seq > 1 && calls > 0);
        assert!(!dir.path().join("online.partial").exists());
        let expected = engine.read(|m| m.ledger.totals()).unwrap();
        drop(engine);
        assert_eq!(totals(&online), expected);

        // Stopped: copied whole under the lock; an existing target is refused.
        let offline = dir.path().join("offline");
        let report = backup(&data, &offline, &mut |_| {}).unwrap();
        assert!(!report.online);
        assert_eq!(totals(&offline), expected);
        assert!(matches!(backup(&data, &offline, &mut |_| {}), Err(BackupError::OutExists(_))));
        assert!(matches!(
            backup(dir.path(), &dir.path().join("x"), &mut |_| {}),
            Err(BackupError::NotADataFolder(_))
        ));
        assert_eq!(newest_checkpoint(&offline).unwrap().unwrap().0, report.checkpoint_seq);
    }
}
