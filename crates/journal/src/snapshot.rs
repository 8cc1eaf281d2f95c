//! Atomic, checksummed snapshot files, streamed in both directions.
//!
//! Layout: the body as written, then a footer of `SNAPSHOT_MAGIC: u32`,
//! body length `u64` and CRC32C of the body `u32`, all little-endian. The file
//! is written under a `.tmp` name, fsynced, renamed over the final name and the
//! directory fsynced, so a reader sees either the old snapshot or the complete
//! new one.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Take, Write};
use std::path::{Path, PathBuf};

use crate::constants::{
    SNAPSHOT_BUFFER_SIZE, SNAPSHOT_FOOTER_SIZE, SNAPSHOT_MAGIC, SNAPSHOT_TMP_SUFFIX,
};
use crate::error::JournalError;
use crate::record::to_u64;

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
#[derive(Debug)]
pub struct SnapshotWriter {
    /// `None` once finished, so `Drop` knows to leave the file alone.
    file: Option<BufWriter<File>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    crc: u32,
    len: u64,
}

impl SnapshotWriter {
    /// Starts writing the snapshot for `final_path` into `final_path.tmp`,
    /// replacing any leftover temporary file from an interrupted attempt.
    pub fn create(final_path: &Path) -> Result<Self, JournalError> {
        let tmp_path = tmp_path(final_path);
        let file = File::create(&tmp_path).map_err(JournalError::io("create", &tmp_path))?;
        Ok(SnapshotWriter {
            file: Some(BufWriter::with_capacity(SNAPSHOT_BUFFER_SIZE, file)),
            tmp_path,
            final_path: final_path.to_path_buf(),
            crc: 0,
            len: 0,
        })
    }

    /// Appends the footer, fsyncs the file, renames it over the final path and
    /// fsyncs the directory. Returns the total file size.
    pub fn finish(mut self) -> Result<u64, JournalError> {
        let mut writer = self.file.take().expect("snapshot writer used after finish");
        let result = self.finish_inner(&mut writer);
        if result.is_err() {
            // Put it back so Drop removes the temporary file.
            self.file = Some(writer);
        }
        result
    }

    fn finish_inner(&self, writer: &mut BufWriter<File>) -> Result<u64, JournalError> {
        let tmp = &self.tmp_path;
        let mut footer = [0u8; SNAPSHOT_FOOTER_SIZE];
        footer[0..4].copy_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
        footer[4..12].copy_from_slice(&self.len.to_le_bytes());
        footer[12..16].copy_from_slice(&self.crc.to_le_bytes());
        writer.write_all(&footer).map_err(JournalError::io("write", tmp))?;
        writer.flush().map_err(JournalError::io("write", tmp))?;
        writer.get_ref().sync_all().map_err(JournalError::io("fsync", tmp))?;
        fs::rename(tmp, &self.final_path).map_err(JournalError::io("rename", tmp))?;
        let dir = parent_dir(&self.final_path);
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(JournalError::io("fsync directory", dir))?;
        Ok(self.len + to_u64(SNAPSHOT_FOOTER_SIZE))
    }
}

impl Write for SnapshotWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let writer = self.file.as_mut().expect("snapshot writer used after finish");
        let n = writer.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += to_u64(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("snapshot writer used after finish").flush()
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            // Best effort: a leftover is harmless, `create` overwrites it.
            let _ = fs::remove_file(&self.tmp_path);
        }
    }
}

/// Streams the body of a snapshot; [`SnapshotReader::finish`] tells whether
/// what was read is intact.
#[derive(Debug)]
pub struct SnapshotReader {
    inner: Take<BufReader<File>>,
    path: PathBuf,
    body_len: u64,
    stored_crc: u32,
    crc: u32,
    read: u64,
}

impl SnapshotReader {
    /// Opens the snapshot at `path`; `Ok(None)` if there is none.
    pub fn open(path: &Path) -> Result<Option<Self>, JournalError> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JournalError::io("open", path)(e)),
        };
        let file_len = file.metadata().map_err(JournalError::io("stat", path))?.len();
        let footer_size = to_u64(SNAPSHOT_FOOTER_SIZE);
        let Some(body_len) = file_len.checked_sub(footer_size) else {
            return Err(JournalError::corrupt(
                path,
                0,
                format!("snapshot is {file_len} bytes, shorter than its {footer_size}-byte footer"),
            ));
        };
        let mut footer = [0u8; SNAPSHOT_FOOTER_SIZE];
        file.seek(SeekFrom::Start(body_len))
            .and_then(|_| file.read_exact(&mut footer))
            .map_err(JournalError::io("read footer of", path))?;
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
        file.seek(SeekFrom::Start(0)).map_err(JournalError::io("seek in", path))?;
        Ok(Some(SnapshotReader {
            inner: BufReader::with_capacity(SNAPSHOT_BUFFER_SIZE, file).take(body_len),
            path: path.to_path_buf(),
            body_len,
            stored_crc: u32::from_le_bytes(footer[12..16].try_into().expect("4 bytes")),
            crc: 0,
            read: 0,
        }))
    }

    /// Length of the body in bytes.
    pub fn body_len(&self) -> u64 {
        self.body_len
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

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.read += to_u64(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
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
    fn empty_snapshot_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.snap");
        assert_eq!(write_snapshot(&path, b""), to_u64(SNAPSHOT_FOOTER_SIZE));
        let reader = SnapshotReader::open(&path).unwrap().unwrap();
        assert_eq!(reader.body_len(), 0);
        reader.finish().unwrap();
    }
}
