//! Imported statements and manual resolutions on disk, under `<data folder>/recon/`.
//!
//! Each statement is kept as the file the bank sent, named by a hash of its id and a hash of
//! its content (`chn_<channel>/statements/<id hash>-<content hash>.<xml|csv>`): importing the same file
//! again finds it there and changes nothing; the same id with other content is refused.
//! Files are written whole to a temporary name, fsynced, renamed, and the folder fsynced, so a
//! crash leaves either no statement or the whole of it. Resolutions are one CSV file per channel
//! (`chn_<channel>/resolutions.csv`: key, who, why) rewritten the same way.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::constants::{RESOLUTION_TEXT_LEN_MAX, STATEMENTS_PER_CHANNEL_MAX};
use crate::error::{parse, Format, ImportError};
use crate::report::Resolution;
use crate::statement::{content_hash, currency_code, hex, Statement};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("channel {channel} already has {max} statements")]
    Full { channel: u64, max: usize },
    #[error("{0}")]
    InvalidResolution(String),
    #[error("reconciliation store: {0}")]
    Io(#[from] std::io::Error),
}

/// A stored statement.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The file name without extension: `<id hash>-<content hash>`.
    pub key: String,
    pub format: Format,
    pub statement: Statement,
}

pub struct Store {
    root: PathBuf,
}

impl Store {
    /// The store of a data folder (made on the first import).
    pub fn new(data_dir: &Path) -> Store {
        Store { root: data_dir.join("recon") }
    }

    fn channel_dir(&self, channel: u64) -> PathBuf {
        self.root.join(format!("chn_{channel}"))
    }

    fn statements_dir(&self, channel: u64) -> PathBuf {
        self.channel_dir(channel).join("statements")
    }

    /// Parses and keeps a statement of `channel` (whose currency is `currency`). Returns it and
    /// whether it is new; nothing is written for a refused file or one already kept.
    pub fn import(
        &self,
        channel: u64,
        currency: u32,
        format: Format,
        bytes: &[u8],
    ) -> Result<(Stored, bool), StoreError> {
        let statement = parse(format, bytes)?;
        if statement.currency != currency {
            let name = |n: u32| currency_code(n).map_or(n.to_string(), |(c, _)| c.to_owned());
            return Err(ImportError::CurrencyMismatch {
                statement: name(statement.currency),
                channel: name(currency),
            }
            .into());
        }
        let id_hash = hex(&content_hash(statement.id.as_bytes())[..16]);
        let key = format!("{id_hash}-{}", hex(&content_hash(bytes)[..16]));
        let existing = self.list(channel)?;
        if existing.iter().any(|(k, f)| *k == key && *f == format) {
            return Ok((Stored { key, format, statement }, false));
        }
        if existing.iter().any(|(k, _)| k.starts_with(&id_hash)) {
            return Err(ImportError::Conflict { id: statement.id }.into());
        }
        if existing.len() >= STATEMENTS_PER_CHANNEL_MAX {
            return Err(StoreError::Full { channel, max: STATEMENTS_PER_CHANNEL_MAX });
        }
        let dir = self.statements_dir(channel);
        create_dir_durable(&dir)?;
        write_atomic(&dir, &format!("{key}.{}", format.extension()), bytes)?;
        Ok((Stored { key, format, statement }, true))
    }

    /// The keys and formats of a channel's statements, in name order.
    fn list(&self, channel: u64) -> std::io::Result<Vec<(String, Format)>> {
        let dir = self.statements_dir(channel);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            let name = e?.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some((key, ext)) = name.rsplit_once('.') else { continue };
            let format = match ext {
                "xml" => Format::Camt053,
                "csv" => Format::Csv,
                _ => continue,
            };
            out.push((key.to_owned(), format));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Every statement of a channel. A file that no longer parses (edited by hand) is an error.
    pub fn statements(&self, channel: u64) -> Result<Vec<Stored>, StoreError> {
        let dir = self.statements_dir(channel);
        self.list(channel)?
            .into_iter()
            .map(|(key, format)| {
                let bytes = fs::read(dir.join(format!("{key}.{}", format.extension())))?;
                Ok(Stored { key, format, statement: parse(format, &bytes)? })
            })
            .collect()
    }

    /// Records that `by` resolved the exception `key` of `channel` because of `reason`.
    pub fn resolve(
        &self,
        channel: u64,
        key: &str,
        by: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        for (what, text) in [("key", key), ("who", by), ("reason", reason)] {
            if text.trim().is_empty() || text.len() > RESOLUTION_TEXT_LEN_MAX {
                return Err(StoreError::InvalidResolution(format!(
                    "the {what} must have 1 to {RESOLUTION_TEXT_LEN_MAX} bytes"
                )));
            }
        }
        let mut all = self.resolutions(channel)?;
        all.insert(key.to_owned(), Resolution { by: by.to_owned(), reason: reason.to_owned() });
        let mut keys: Vec<&String> = all.keys().collect();
        keys.sort();
        let mut w = csv::Writer::from_writer(Vec::new());
        for k in keys {
            let r = &all[k];
            w.write_record([k.as_str(), r.by.as_str(), r.reason.as_str()]).expect("in memory");
        }
        let bytes = w.into_inner().map_err(|e| std::io::Error::other(e.to_string()))?;
        let dir = self.channel_dir(channel);
        create_dir_durable(&dir)?;
        write_atomic(&dir, "resolutions.csv", &bytes)?;
        Ok(())
    }

    /// The resolutions recorded for a channel, by exception key.
    pub fn resolutions(&self, channel: u64) -> Result<HashMap<String, Resolution>, StoreError> {
        let path = self.channel_dir(channel).join("resolutions.csv");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(bytes.as_slice());
        let mut out = HashMap::new();
        for record in r.records() {
            let record =
                record.map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
            if record.len() != 3 {
                return Err(std::io::Error::other(format!(
                    "{}: a record without 3 fields",
                    path.display()
                ))
                .into());
            }
            out.insert(
                record[0].to_owned(),
                Resolution { by: record[1].to_owned(), reason: record[2].to_owned() },
            );
        }
        Ok(out)
    }
}

/// Writes `name` in `dir` whole or not at all: a temporary file, fsync, rename, fsync of the
/// folder.
/// Creates `dir` and its parents, each new folder's entry fsynced in its parent: a statement
/// acknowledged as stored must not vanish with a folder a crash forgot.
fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    use huifu_journal::Storage;
    huifu_journal::FileStorage.create_dir_all(dir)
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}
