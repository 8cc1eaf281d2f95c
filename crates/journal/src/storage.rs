//! The narrow I/O interface the journal runs on, and its real-file
//! implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::constants::READ_BUFFER_SIZE;

/// All I/O of the journal goes through this, so tests can inject faults and
/// simulate power loss (see [`crate::faulty::FaultyStorage`]).
pub trait Storage: Send + 'static {
    /// Append handle of one file.
    type File: StorageFile;
    /// Sequential reader of one file.
    type Reader: Read;

    /// Creates `dir` and its parents if missing, durably (each new directory's
    /// parent is fsynced).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes the exclusive lock of the file at `path` (created if missing) for
    /// as long as the returned guard lives; `Ok(None)` when another process
    /// holds it.
    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send>>>;
    /// Names (not full paths) of the regular files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Opens `path` for appending, creating it empty if missing.
    fn open_append(&self, path: &Path) -> io::Result<Self::File>;
    /// Creates `path` empty for writing, replacing any file of that name.
    fn create(&self, path: &Path) -> io::Result<Self::File>;
    /// Opens `path` for sequential reading starting at byte `offset`.
    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Self::Reader>;
    /// Durably shortens `path` to `len` bytes.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Deletes `path`; durable only after the next [`Storage::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to` (replacing it) in the same directory; durable only after the
    /// next [`Storage::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Length of the file at `path`.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// A number nobody outside this process can predict (the salt of a new journal segment).
    fn entropy(&self) -> u64;
    /// Makes creations and deletions of entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// An open append handle.
pub trait StorageFile: Send {
    /// Appends all of `buf`. On error an unknown prefix may have been written.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
    /// Current length of the file.
    fn size(&self) -> io::Result<u64>;
}

/// [`Storage`] on the real file system via `std::fs`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileStorage;

/// Append handle of a real file.
#[derive(Debug)]
pub struct FsFile(File);

impl StorageFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        // Only the data and the length matter for recovery, not timestamps.
        self.0.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl Storage for FileStorage {
    type File = FsFile;
    type Reader = BufReader<File>;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let missing: Vec<&Path> =
            dir.ancestors().take_while(|d| !d.as_os_str().is_empty() && !d.exists()).collect();
        fs::create_dir_all(dir)?;
        // A directory's entry is durable only once its parent is synced; oldest first.
        for created in missing.iter().rev() {
            // A relative path's first folder has the working directory for its parent.
            let parent = created.parent().filter(|p| !p.as_os_str().is_empty());
            File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send>>> {
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Box::new(file))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push(PathBuf::from(entry.file_name()));
            }
        }
        Ok(names)
    }

    fn open_append(&self, path: &Path) -> io::Result<FsFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FsFile(file))
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<BufReader<File>> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(BufReader::with_capacity(READ_BUFFER_SIZE, file))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn create(&self, path: &Path) -> io::Result<FsFile> {
        Ok(FsFile(File::create(path)?))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn entropy(&self) -> u64 {
        // The standard library seeds each `RandomState` from the operating system's random
        // source; hashing the time and the process id as well costs nothing.
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.write_u32(std::process::id());
        hasher.finish()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}
