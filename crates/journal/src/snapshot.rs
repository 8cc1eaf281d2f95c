//! Atomic, checksummed snapshot files, streamed in both directions.
//!
//! Layout: the body as written, then a footer of `SNAPSHOT_MAGIC: u32`,
//! body length `u64` and CRC32C of the body `u32`, all little-endian. The file
//! is written under a `.tmp` name, fsynced, renamed over the final name and the
//! directory fsynced, so a reader sees either the old snapshot or the complete
//! new one. [`SnapshotReader::open_verified`] checks the whole body's checksum
//! before handing out a byte of it, so a decoder never parses damaged data.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::constants::{
    SNAPSHOT_BUFFER_SIZE, SNAPSHOT_FOOTER_SIZE, SNAPSHOT_MAGIC, SNAPSHOT_TMP_SUFFIX,
};
use crate::error::JournalError;
use crate::record::{read_full, to_u64};
use crate::storage::{FileStorage, Storage, StorageFile};

/// Path of the temporary file a snapshot for `final_path` is written to.
pub fn tmp_path(final_path: &Path) -> PathBuf {
    let mut name = final_path.as_os_str().to_owned();
    name.push(SNAPSHOT_TMP_SUFFIX);
    PathBuf::from(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Streams a new snapshot to disk; nothing replaces the previous snapshot
/// until [`SnapshotWriter::finish`] succeeds. Dropping it unfinished removes
/// the temporary file.
pub struct SnapshotWriter<S: Storage = FileStorage> {
    storage: S,
    /// `None` once finished, so `Drop` knows to leave the file alone.
    file: Option<S::File>,
    buffer: Vec<u8>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    crc: u32,
    len: u64,
}

impl<S: Storage> std::fmt::Debug for SnapshotWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotWriter")
            .field("path", &self.final_path)
            .field("len", &self.len)
            .finish()
    }
}

impl SnapshotWriter {
    /// Starts writing the snapshot for `final_path` into `final_path.tmp`,
    /// replacing any leftover temporary file from an interrupted attempt.
    pub fn create(final_path: &Path) -> Result<Self, JournalError> {
        SnapshotWriter::create_with(FileStorage, final_path)
    }
}

impl<S: Storage> SnapshotWriter<S> {
    /// [`SnapshotWriter::create`] over any [`Storage`].
    pub fn create_with(storage: S, final_path: &Path) -> Result<Self, JournalError> {
        let tmp_path = tmp_path(final_path);
        let file = storage.create(&tmp_path).map_err(JournalError::io("create", &tmp_path))?;
        Ok(SnapshotWriter {
            storage,
            file: Some(file),
            buffer: Vec::with_capacity(SNAPSHOT_BUFFER_SIZE),
            tmp_path,
            final_path: final_path.to_path_buf(),
            crc: 0,
            len: 0,
        })
    }

    /// Appends the footer, fsyncs the file, renames it over the final path and
    /// fsyncs the directory. Returns the total file size.
    pub fn finish(mut self) -> Result<u64, JournalError> {
        let mut footer = [0u8; SNAPSHOT_FOOTER_SIZE];
        footer[0..4].copy_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        footer[4..12].copy_from_slice(&self.len.to_le_bytes());
        footer[12..16].copy_from_slice(&self.crc.to_le_bytes());
        self.buffer.extend_from_slice(&footer);
        let tmp = self.tmp_path.clone();
        self.flush_buffer().map_err(JournalError::io("write", &tmp))?;
        let file = self.file.as_mut().expect("snapshot writer used after finish");
        file.sync().map_err(JournalError::io("fsync", &tmp))?;
        self.storage.rename(&tmp, &self.final_path).map_err(JournalError::io("rename", &tmp))?;
        // Renamed: from here on the file is the snapshot, not a leftover to remove.
        self.file = None;
        let dir = parent_dir(&self.final_path);
        self.storage.sync_dir(dir).map_err(JournalError::io("fsync directory", dir))?;
        Ok(self.len + to_u64(SNAPSHOT_FOOTER_SIZE))
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        let file = self.file.as_mut().expect("snapshot writer used after finish");
        file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }
}

impl<S: Storage> Write for SnapshotWriter<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc = crc32c::crc32c_append(self.crc, buf);
        self.len += to_u64(buf.len());
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= SNAPSHOT_BUFFER_SIZE {
            self.flush_buffer()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

impl<S: Storage> Drop for SnapshotWriter<S> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover is harmless, `create` overwrites it.
            let _ = self.storage.remove(&self.tmp_path);
        }
    }
}

/// Streams the body of a snapshot; [`SnapshotReader::finish`] tells whether
/// what was read is intact.
pub struct SnapshotReader<S: Storage = FileStorage> {
    inner: io::Take<S::Reader>,
    path: PathBuf,
    body_len: u64,
    stored_crc: u32,
    crc: u32,
    read: u64,
}

impl<S: Storage> std::fmt::Debug for SnapshotReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("read", &self.read)
            .finish()
    }
}

impl SnapshotReader {
    /// Opens the snapshot at `path`; `Ok(None)` if there is none.
    pub fn open(path: &Path) -> Result<Option<Self>, JournalError> {
        SnapshotReader::open_with(&FileStorage, path)
    }
}

impl<S: Storage> SnapshotReader<S> {
    /// [`SnapshotReader::open`] over any [`Storage`].
    pub fn open_with(storage: &S, path: &Path) -> Result<Option<Self>, JournalError> {
        let file_len = match storage.file_len(path) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JournalError::io("open", path)(e)),
        };
        let footer_size = to_u64(SNAPSHOT_FOOTER_SIZE);
        let Some(body_len) = file_len.checked_sub(footer_size) else {
            return Err(JournalError::corrupt(
                path,
                0,
                format!("snapshot is {file_len} bytes, shorter than its {footer_size}-byte footer"),
            ));
        };
        let mut footer = [0u8; SNAPSHOT_FOOTER_SIZE];
        let got = storage
            .open_read(path, body_len)
            .and_then(|mut r| read_full(&mut r, &mut footer))
            .map_err(JournalError::io("read footer of", path))?;
        if got < SNAPSHOT_FOOTER_SIZE {
            return Err(JournalError::corrupt(path, body_len, "snapshot footer is torn"));
        }
        let magic = u32::from_le_bytes(footer[0..4].try_into().expect("4 bytes"));
        if magic != SNAPSHOT_MAGIC {
            return Err(JournalError::corrupt(
                path,
                body_len,
                format!("bad snapshot footer magic {magic:#010x}"),
            ));
        }
        let stored_len = u64::from_le_bytes(footer[4..12].try_into().expect("8 bytes"));
        if stored_len != body_len {
            return Err(JournalError::corrupt(
                path,
                body_len,
                format!("footer says the body is {stored_len} bytes, file holds {body_len}"),
            ));
        }
        let reader = storage.open_read(path, 0).map_err(JournalError::io("open", path))?;
        Ok(Some(SnapshotReader {
            inner: reader.take(body_len),
            path: path.to_path_buf(),
            body_len,
            stored_crc: u32::from_le_bytes(footer[12..16].try_into().expect("4 bytes")),
            crc: 0,
            read: 0,
        }))
    }

    /// Opens the snapshot at `path` once its whole body has been read and its
    /// checksum found right, so what the caller parses is what was written
    /// (one more pass over the file, at start-up only). `Ok(None)` if there is
    /// none.
    pub fn open_verified(storage: &S, path: &Path) -> Result<Option<Self>, JournalError> {
        match SnapshotReader::open_with(storage, path)? {
            None => Ok(None),
            Some(reader) => {
                reader.finish()?;
                SnapshotReader::open_with(storage, path)
            }
        }
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// Bytes of the body not read yet: what any count read from it can at most describe.
    pub fn remaining(&self) -> u64 {
        self.body_len - self.read
    }

    /// Verifies length and checksum of the body. Any part not yet read is read
    /// (and discarded) first, so the check always covers the whole body.
    pub fn finish(mut self) -> Result<(), JournalError> {
        io::copy(&mut self, &mut io::sink()).map_err(JournalError::io("read", &self.path))?;
        if self.read != self.body_len {
            return Err(JournalError::corrupt(
                &self.path,
                self.read,
                format!("snapshot body ended after {} of {} bytes", self.read, self.body_len),
            ));
        }
        if self.crc != self.stored_crc {
            return Err(JournalError::corrupt(
                &self.path,
                self.body_len,
                format!(
                    "snapshot checksum mismatch: footer says {:#010x}, body hashes to {:#010x}",
                    self.stored_crc, self.crc
                ),
            ));
        }
        Ok(())
    }
}

impl<S: Storage> Read for SnapshotReader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.read += to_u64(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn write_snapshot(path: &Path, body: &[u8]) -> u64 {
        let mut writer = SnapshotWriter::create(path).unwrap();
        // Several writes, to exercise the running checksum.
        for chunk in body.chunks(1000) {
            writer.write_all(chunk).unwrap();
        }
        writer.finish().unwrap()
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[test]
    fn snapshot_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        let body = body(3 * SNAPSHOT_BUFFER_SIZE + 17);
        let size = write_snapshot(&path, &body);
        assert_eq!(size, to_u64(body.len() + SNAPSHOT_FOOTER_SIZE));
        assert_eq!(fs::metadata(&path).unwrap().len(), size);
        assert!(!tmp_path(&path).exists());

        let mut reader = SnapshotReader::open(&path).unwrap().unwrap();
        assert_eq!(reader.body_len(), to_u64(body.len()));
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!(read, body);
        reader.finish().unwrap();
    }

    #[test]
    fn snapshot_replaces_previous_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        write_snapshot(&path, b"old");

        // An unfinished writer leaves the old snapshot and no temporary file.
        let mut writer = SnapshotWriter::create(&path).unwrap();
        writer.write_all(b"half-written new state").unwrap();
        drop(writer);
        assert!(!tmp_path(&path).exists());

        let mut reader = SnapshotReader::open(&path).unwrap().unwrap();
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!(read, b"old");
        reader.finish().unwrap();

        write_snapshot(&path, b"new");
        let mut reader = SnapshotReader::open(&path).unwrap().unwrap();
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        assert_eq!(read, b"new");
        reader.finish().unwrap();
    }

    #[test]
    fn snapshot_flipped_byte_detected_at_finish() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        let body = body(10_000);
        write_snapshot(&path, &body);
        let mut bytes = fs::read(&path).unwrap();
        bytes[4321] ^= 0x10;
        fs::write(&path, &bytes).unwrap();

        let mut reader = SnapshotReader::open(&path).unwrap().unwrap();
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        match reader.finish() {
            Err(JournalError::Corrupt { segment, reason, .. }) => {
                assert_eq!(segment, path);
                assert!(reason.contains("checksum"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn snapshot_finish_checks_unread_remainder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        write_snapshot(&path, &body(5000));
        let mut bytes = fs::read(&path).unwrap();
        bytes[4999] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let mut reader = SnapshotReader::open(&path).unwrap().unwrap();
        let mut first = [0u8; 100];
        reader.read_exact(&mut first).unwrap();
        assert!(matches!(reader.finish(), Err(JournalError::Corrupt { .. })));
    }

    #[test]
    fn missing_snapshot_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SnapshotReader::open(&dir.path().join("absent.snap")).unwrap().is_none());
    }

    #[test]
    fn short_or_foreign_snapshot_rejected_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        fs::write(&path, b"tiny").unwrap();
        assert!(matches!(
            SnapshotReader::open(&path),
            Err(JournalError::Corrupt { offset: 0, .. })
        ));

        fs::write(&path, [0u8; 64]).unwrap();
        match SnapshotReader::open(&path) {
            Err(JournalError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, 64 - to_u64(SNAPSHOT_FOOTER_SIZE));
                assert!(reason.contains("magic"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn open_verified_refuses_a_damaged_body_before_any_byte_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.snap");
        write_snapshot(&path, &body(5000));
        assert!(SnapshotReader::open_verified(&FileStorage, &path).unwrap().is_some());
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            SnapshotReader::open_verified(&FileStorage, &path),
            Err(JournalError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_snapshot_is_atomic_under_power_loss() {
        use crate::faulty::FaultyStorage;
        let storage = FaultyStorage::new(5);
        let dir = Path::new("/s");
        storage.create_dir_all(dir).unwrap();
        let path = dir.join("state.snap");
        let mut writer = SnapshotWriter::create_with(storage.clone(), &path).unwrap();
        writer.write_all(b"old").unwrap();
        writer.finish().unwrap();
        for _ in 0..50 {
            let mut writer = SnapshotWriter::create_with(storage.clone(), &path).unwrap();
            writer.write_all(&body(10_000)).unwrap();
            writer.flush().unwrap();
            // Power lost before finish: the old snapshot, whole.
            storage.crash();
            drop(writer);
            let mut reader = SnapshotReader::open_verified(&storage, &path).unwrap().unwrap();
            let mut read = Vec::new();
            reader.read_to_end(&mut read).unwrap();
            assert_eq!(read, b"old");
        }
    }

    #[test]
    fn empty_snapshot_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.snap");
        assert_eq!(write_snapshot(&path, b""), to_u64(SNAPSHOT_FOOTER_SIZE));
        let reader = SnapshotReader::open(&path).unwrap().unwrap();
        assert_eq!(reader.body_len(), 0);
        reader.finish().unwrap();
    }
}
