//! In-memory [`Storage`] with injectable failures and simulated power loss,
//! for tests of this crate and of crates built on it.
//!
//! Model of the disk, matching the contract documented at the crate root:
//! - Bytes written to a file are visible at once but become durable only at
//!   the file's next successful `sync`.
//! - Creating, renaming and removing a directory entry are visible at once but
//!   become durable only at the next successful `sync_dir` of its directory;
//!   until then a crash brings back the entry as it was (a created file is
//!   gone, a renamed one has its old name, a removed one is back).
//! - [`FaultyStorage::crash`] cuts the power. Every file keeps its synced
//!   bytes; of the bytes written since, one of three things survives, chosen
//!   per file from the seed: nothing; a random prefix, its last few bytes
//!   possibly garbled (a torn write); or any subset of the written 4 KiB pages,
//!   the others zeros, up to a random length (a volatile disk cache or
//!   `data=writeback` that wrote pages out of order).
//! - Truncation takes effect immediately and durably.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{Storage, StorageFile};

/// Garbling a torn write touches at most this many of its last bytes, so it
/// never reaches back into records that were synced before it.
const GARBLE_BYTES_MAX: u64 = 8;

/// The unit a disk writes out on its own: a crash keeps or loses whole pages.
const PAGE_BYTES: usize = 4096;

/// Cloneable handle to one shared in-memory file system: keep a clone in the
/// test to crash it or inject faults while a journal uses another.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    dirs: BTreeSet<PathBuf>,
    /// The files by number; a file lives while a name, visible or durable, or
    /// an open handle refers to it (handles are not counted: a crash closes them).
    files: BTreeMap<u64, MemFile>,
    /// Names as they are seen now.
    names: BTreeMap<PathBuf, u64>,
    /// Names as a crash would leave them.
    durable_names: BTreeMap<PathBuf, u64>,
    file_next: u64,
    /// Write/sync operations left before every one of them starts failing.
    fail_after: Option<u64>,
    /// Whether the disk is full: every write fails with "no space left on device" after
    /// writing some prefix of its bytes, as a real one does.
    full: bool,
    rng: u64,
    /// Crashes so far, and how many unsynced writes each way was chosen.
    stats: CrashStats,
}

/// What [`FaultyStorage::crash`] did to the unsynced bytes of the files it
/// found, counted over every crash of one storage.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CrashStats {
    /// Crashes so far.
    pub crashes: u64,
    /// Files whose unsynced bytes were all lost.
    pub dropped: u64,
    /// Files that kept a prefix of their unsynced bytes.
    pub torn: u64,
    /// Files that kept a subset of their unsynced pages.
    pub pages: u64,
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    synced_len: usize,
}

impl State {
    /// SplitMix64: tiny, seedable, and good enough to pick tear points.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-ish value in `0..=max`.
    fn random_upto(&mut self, max: usize) -> usize {
        let bound = u64::try_from(max).expect("usize fits in u64") + 1;
        usize::try_from(self.random() % bound).expect("below a usize bound")
    }

    /// Counts one write or sync against the failure countdown.
    fn inject(&mut self, op: &str, path: &Path) -> io::Result<()> {
        if self.full && op == "write" {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("no space left on device for {}", path.display()),
            ));
        }
        match self.fail_after {
            Some(0) => {
                Err(io::Error::other(format!("injected {op} failure on {}", path.display())))
            }
            Some(n) => {
                self.fail_after = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn id(&self, path: &Path) -> io::Result<u64> {
        self.names.get(path).copied().ok_or_else(|| not_found(path))
    }

    fn file(&mut self, path: &Path) -> io::Result<&mut MemFile> {
        let id = self.id(path)?;
        Ok(self.files.get_mut(&id).expect("a named file exists"))
    }

    fn new_file(&mut self, path: &Path) -> io::Result<u64> {
        let parent = path.parent().unwrap_or(Path::new(""));
        if !self.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let id = self.file_next;
        self.file_next += 1;
        self.files.insert(id, MemFile::default());
        self.names.insert(path.to_path_buf(), id);
        Ok(id)
    }

    /// Forgets files that no name refers to any more.
    fn collect(&mut self) {
        let live: BTreeSet<u64> =
            self.names.values().chain(self.durable_names.values()).copied().collect();
        self.files.retain(|id, _| live.contains(id));
    }

    /// What survives of one file's unsynced bytes after a power cut.
    fn cut(&mut self, id: u64) {
        let file = &self.files[&id];
        let (synced, len) = (file.synced_len, file.data.len());
        if len == synced {
            return;
        }
        let mut data = std::mem::take(&mut self.files.get_mut(&id).expect("listed").data);
        match self.random() % 3 {
            0 => {
                self.stats.dropped += 1;
                data.truncate(synced);
            }
            1 => {
                self.stats.torn += 1;
                let end = synced + self.random_upto(len - synced);
                data.truncate(end);
                if self.random().is_multiple_of(2) {
                    let garble_len = usize::try_from(self.random() % GARBLE_BYTES_MAX + 1)
                        .expect("small")
                        .min(end - synced);
                    let noise = self.random();
                    for (i, byte) in data[end - garble_len..].iter_mut().enumerate() {
                        // Never XOR with zero, so a garbled byte always changes.
                        *byte ^= noise.to_le_bytes()[i % 8] | 1;
                    }
                }
            }
            _ => {
                self.stats.pages += 1;
                let end = synced + self.random_upto(len - synced);
                data.truncate(end);
                let mut page = synced - synced % PAGE_BYTES;
                while page < end {
                    let from = page.max(synced);
                    let to = (page + PAGE_BYTES).min(end);
                    if self.random().is_multiple_of(2) {
                        data[from..to].fill(0);
                    }
                    page += PAGE_BYTES;
                }
            }
        }
        let file = self.files.get_mut(&id).expect("listed");
        file.synced_len = data.len();
        file.data = data;
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl FaultyStorage {
    /// Empty file system whose tears and garbling are derived from `seed`.
    pub fn new(seed: u64) -> Self {
        FaultyStorage {
            state: Arc::new(Mutex::new(State {
                dirs: BTreeSet::new(),
                files: BTreeMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                file_next: 0,
                fail_after: None,
                full: false,
                rng: seed,
                stats: CrashStats::default(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the
        // original failure behind a poison error.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After `n` more successful writes/syncs (`sync_dir` included), every
    /// write and sync fails until this is called with `None`. A failing write
    /// may still leave a random prefix of its bytes in the file.
    pub fn set_fail_after(&self, n: Option<u64>) {
        self.state().fail_after = n;
    }

    /// While `full`, every write fails as on a full disk (`ErrorKind::StorageFull`), leaving
    /// a random prefix of its bytes; syncs, truncations and removals still work.
    pub fn set_full(&self, full: bool) {
        self.state().full = full;
    }

    /// Simulates power loss; see the module documentation.
    pub fn crash(&self) {
        let mut state = self.state();
        state.stats.crashes += 1;
        state.names = state.durable_names.clone();
        state.collect();
        let ids: Vec<u64> = state.files.keys().copied().collect();
        for id in ids {
            state.cut(id);
        }
    }

    /// What the crashes so far did.
    pub fn crash_stats(&self) -> CrashStats {
        self.state().stats
    }

    /// Flips every bit of the byte at `offset` in `path`, durably.
    pub fn corrupt_byte(&self, path: &Path, offset: u64) -> io::Result<()> {
        let mut state = self.state();
        let file = state.file(path)?;
        let at =
            usize::try_from(offset).ok().filter(|&at| at < file.data.len()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "offset past end of file")
            })?;
        file.data[at] ^= 0xff;
        Ok(())
    }

    /// Paths of all files, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state().names.keys().cloned().collect()
    }

    /// Current contents of `path`, including unsynced bytes.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state();
        state.names.get(path).map(|id| state.files[id].data.clone())
    }
}

/// Append handle into a [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile {
    storage: FaultyStorage,
    path: PathBuf,
    id: u64,
}

impl FaultyFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut state = self.storage.state();
        if !state.files.contains_key(&self.id) {
            // The power was cut since this handle was opened.
            return Err(io::Error::other(format!("{} was lost in a crash", self.path.display())));
        }
        f(&mut state, self.id)
    }
}

impl StorageFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let path = self.path.clone();
        self.with(|state, id| {
            if let Err(e) = state.inject("write", &path) {
                let partial = state.random_upto(buf.len());
                state.files.get_mut(&id).expect("checked").data.extend_from_slice(&buf[..partial]);
                return Err(e);
            }
            state.files.get_mut(&id).expect("checked").data.extend_from_slice(buf);
            Ok(())
        })
    }

    fn sync(&mut self) -> io::Result<()> {
        let path = self.path.clone();
        self.with(|state, id| {
            state.inject("fsync", &path)?;
            let file = state.files.get_mut(&id).expect("checked");
            file.synced_len = file.data.len();
            Ok(())
        })
    }

    fn size(&self) -> io::Result<u64> {
        self.with(|state, id| Ok(u64::try_from(state.files[&id].data.len()).expect("fits")))
    }
}

impl Storage for FaultyStorage {
    type File = FaultyFile;
    type Reader = Cursor<Vec<u8>>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn lock(&self, _path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send>>> {
        // One process: nothing to exclude.
        Ok(Some(Box::new(())))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect())
    }

    fn open_append(&self, path: &Path) -> io::Result<FaultyFile> {
        let mut state = self.state();
        let id = match state.names.get(path) {
            Some(&id) => id,
            None => state.new_file(path)?,
        };
        Ok(FaultyFile { storage: self.clone(), path: path.to_path_buf(), id })
    }

    fn create(&self, path: &Path) -> io::Result<FaultyFile> {
        let mut state = self.state();
        let id = state.new_file(path)?;
        state.collect();
        Ok(FaultyFile { storage: self.clone(), path: path.to_path_buf(), id })
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Cursor<Vec<u8>>> {
        let mut state = self.state();
        let data = &state.file(path)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        Ok(Cursor::new(data[start..].to_vec()))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.state();
        let file = state.file(path)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.data.truncate(len);
        file.synced_len = file.synced_len.min(len);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        state.collect();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let id = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), id);
        state.collect();
        Ok(())
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut state = self.state();
        Ok(u64::try_from(state.file(path)?.data.len()).expect("fits"))
    }

    fn entropy(&self) -> u64 {
        self.state().random()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.inject("fsync directory", dir)?;
        let State { names, durable_names, .. } = &mut *state;
        durable_names.retain(|path, _| path.parent() != Some(dir));
        for (path, id) in names.iter() {
            if path.parent() == Some(dir) {
                durable_names.insert(path.clone(), *id);
            }
        }
        state.collect();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (FaultyStorage, PathBuf) {
        let storage = FaultyStorage::new(7);
        let dir = PathBuf::from("/j");
        storage.create_dir_all(&dir).unwrap();
        (storage, dir.join("f"))
    }

    #[test]
    fn crash_keeps_synced_bytes_and_drops_unsynced_entries() {
        let (storage, path) = setup();
        let mut file = storage.open_append(&path).unwrap();
        file.write_all(b"durable").unwrap();
        file.sync().unwrap();
        storage.crash();
        assert!(storage.files().is_empty(), "entry was never synced");

        let mut file = storage.open_append(&path).unwrap();
        file.write_all(b"durable").unwrap();
        file.sync().unwrap();
        storage.sync_dir(Path::new("/j")).unwrap();
        file.write_all(&[0xaa; 64]).unwrap();
        storage.crash();
        let data = storage.contents(&path).unwrap();
        assert!(data.starts_with(b"durable"));
        assert!(data.len() <= 7 + 64);
    }

    #[test]
    fn every_way_of_losing_unsynced_bytes_happens_and_keeps_synced_ones() {
        let (storage, path) = setup();
        let mut file = storage.open_append(&path).unwrap();
        file.write_all(&[0x11; 5000]).unwrap();
        file.sync().unwrap();
        storage.sync_dir(Path::new("/j")).unwrap();
        let mut zeroed_page_then_kept = false;
        for _ in 0..200 {
            let mut file = storage.open_append(&path).unwrap();
            let before = storage.contents(&path).unwrap().len();
            file.write_all(&[0xee; 3 * PAGE_BYTES]).unwrap();
            storage.crash();
            let data = storage.contents(&path).unwrap();
            assert!(data.len() >= 5000 && data.len() <= before + 3 * PAGE_BYTES);
            assert!(data[..5000].iter().all(|&b| b == 0x11), "synced bytes changed");
            let after = &data[before..];
            if let (Some(zero), Some(kept)) =
                (after.iter().position(|&b| b == 0), after.iter().rposition(|&b| b == 0xee))
            {
                zeroed_page_then_kept |= zero < kept;
            }
        }
        let stats = storage.crash_stats();
        assert_eq!(stats.crashes, 200);
        assert!(stats.dropped > 0 && stats.torn > 0 && stats.pages > 0, "{stats:?}");
        assert!(zeroed_page_then_kept, "no crash kept a page after one it lost");
    }

    #[test]
    fn renames_and_removals_are_undone_by_a_crash_until_the_directory_is_synced() {
        let (storage, path) = setup();
        let dir = Path::new("/j");
        let tmp = dir.join("f.tmp");
        let mut old = storage.create(&path).unwrap();
        old.write_all(b"old").unwrap();
        old.sync().unwrap();
        storage.sync_dir(dir).unwrap();

        let mut new = storage.create(&tmp).unwrap();
        new.write_all(b"new").unwrap();
        new.sync().unwrap();
        storage.rename(&tmp, &path).unwrap();
        assert_eq!(storage.contents(&path).unwrap(), b"new");
        storage.crash();
        assert_eq!(storage.contents(&path).unwrap(), b"old");
        assert_eq!(storage.files(), vec![path.clone()]);

        let mut new = storage.create(&tmp).unwrap();
        new.write_all(b"new").unwrap();
        new.sync().unwrap();
        storage.rename(&tmp, &path).unwrap();
        storage.sync_dir(dir).unwrap();
        storage.crash();
        assert_eq!(storage.contents(&path).unwrap(), b"new");

        storage.remove(&path).unwrap();
        assert!(storage.files().is_empty());
        storage.crash();
        assert_eq!(storage.contents(&path).unwrap(), b"new");
        storage.remove(&path).unwrap();
        storage.sync_dir(dir).unwrap();
        storage.crash();
        assert!(storage.files().is_empty());
    }

    #[test]
    fn fail_countdown_is_sticky_until_cleared() {
        let (storage, path) = setup();
        let mut file = storage.open_append(&path).unwrap();
        storage.set_fail_after(Some(1));
        file.write_all(b"ok").unwrap();
        assert!(file.sync().is_err());
        assert!(file.write_all(b"no").is_err());
        storage.set_fail_after(None);
        file.sync().unwrap();
    }

    #[test]
    fn corrupt_byte_flips_bits() {
        let (storage, path) = setup();
        let mut file = storage.open_append(&path).unwrap();
        file.write_all(&[0x0f, 0x00]).unwrap();
        storage.corrupt_byte(&path, 1).unwrap();
        assert_eq!(storage.contents(&path).unwrap(), vec![0x0f, 0xff]);
        assert!(storage.corrupt_byte(&path, 2).is_err());
    }
}
