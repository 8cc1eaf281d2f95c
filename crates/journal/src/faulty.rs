//! In-memory [`Storage`] with injectable failures and simulated power loss,
//! for tests of this crate and of crates built on it.
//!
//! Model of the disk, matching the contract documented at the crate root:
//! - Bytes written to a file are visible at once but become durable only at
//!   the file's next successful `sync`.
//! - A newly created file's directory entry becomes durable only at the next
//!   successful `sync_dir` of its directory; until then a crash loses the file.
//! - [`FaultyStorage::crash`] drops every file's unsynced bytes, except that a
//!   random prefix of them may survive (a torn write), its last few bytes
//!   possibly garbled.
//! - Truncation and removal take effect immediately and durably.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::{Storage, StorageFile};

/// Garbling a torn write touches at most this many of its last bytes, so it
/// never reaches back into records that were synced before it.
const GARBLE_BYTES_MAX: u64 = 8;

/// Cloneable handle to one shared in-memory file system: keep a clone in the
/// test to crash it or inject faults while a journal uses another.
#[derive(Debug, Clone)]
pub struct FaultyStorage {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, MemFile>,
    /// Write/sync operations left before every one of them starts failing.
    fail_after: Option<u64>,
    rng: u64,
}

#[derive(Debug, Default)]
struct MemFile {
    data: Vec<u8>,
    synced_len: usize,
    entry_durable: bool,
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

    fn file(&mut self, path: &Path) -> io::Result<&mut MemFile> {
        self.files.get_mut(path).ok_or_else(|| not_found(path))
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
                fail_after: None,
                rng: seed,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the
        // original failure behind a poison error.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After `n` more successful writes/syncs (`sync_dir` included), every
    /// write and sync fails until this is called with `None`. A failing write
    /// may still leave a random prefix of its bytes in the file.
    pub fn set_fail_after(&self, n: Option<u64>) {
        self.lock().fail_after = n;
    }

    /// Simulates power loss; see the module documentation.
    pub fn crash(&self) {
        let mut state = self.lock();
        let paths: Vec<PathBuf> = state.files.keys().cloned().collect();
        for path in paths {
            let file = state.files.get(&path).expect("listed file");
            if !file.entry_durable {
                state.files.remove(&path);
                continue;
            }
            let unsynced = file.data.len() - file.synced_len;
            let keep = state.random_upto(unsynced);
            let garble = state.random().is_multiple_of(2);
            let garble_len =
                usize::try_from(state.random() % GARBLE_BYTES_MAX + 1).expect("small").min(keep);
            let noise = state.random();
            let file = state.files.get_mut(&path).expect("listed file");
            let end = file.synced_len + keep;
            file.data.truncate(end);
            if garble {
                for (i, byte) in file.data[end - garble_len..].iter_mut().enumerate() {
                    // Never XOR with zero, so a garbled byte always changes.
                    *byte ^= noise.to_le_bytes()[i % 8] | 1;
                }
            }
            file.synced_len = file.data.len();
        }
    }

    /// Flips every bit of the byte at `offset` in `path`, durably.
    pub fn corrupt_byte(&self, path: &Path, offset: u64) -> io::Result<()> {
        let mut state = self.lock();
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
        self.lock().files.keys().cloned().collect()
    }

    /// Current contents of `path`, including unsynced bytes.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        self.lock().files.get(path).map(|f| f.data.clone())
    }
}

/// Append handle into a [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile {
    storage: FaultyStorage,
    path: PathBuf,
}

impl StorageFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut state = self.storage.lock();
        if let Err(e) = state.inject("write", &self.path) {
            let partial = state.random_upto(buf.len());
            state.file(&self.path)?.data.extend_from_slice(&buf[..partial]);
            return Err(e);
        }
        state.file(&self.path)?.data.extend_from_slice(buf);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut state = self.storage.lock();
        state.inject("fsync", &self.path)?;
        let file = state.file(&self.path)?;
        file.synced_len = file.data.len();
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut state = self.storage.lock();
        let len = state.file(&self.path)?.data.len();
        Ok(u64::try_from(len).expect("usize fits in u64"))
    }
}

impl Storage for FaultyStorage {
    type File = FaultyFile;
    type Reader = Cursor<Vec<u8>>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect())
    }

    fn open_append(&self, path: &Path) -> io::Result<FaultyFile> {
        let mut state = self.lock();
        let parent = path.parent().unwrap_or(Path::new(""));
        if !state.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        state.files.entry(path.to_path_buf()).or_default();
        Ok(FaultyFile { storage: self.clone(), path: path.to_path_buf() })
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Cursor<Vec<u8>>> {
        let mut state = self.lock();
        let data = &state.file(path)?.data;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        Ok(Cursor::new(data[start..].to_vec()))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        let file = state.file(path)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        file.data.truncate(len);
        file.synced_len = file.synced_len.min(len);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.lock().files.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.inject("fsync directory", dir)?;
        for (path, file) in state.files.iter_mut() {
            if path.parent() == Some(dir) {
                file.entry_durable = true;
            }
        }
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
