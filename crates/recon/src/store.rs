//! Imported statements and manual resolutions on disk, under `<data folder>/recon/`.
//!
//! Each statement is kept as the file the bank sent, named by a hash of its id and a hash of
//! its content (`chn_<channel>/statements/<id hash>-<content hash>.<xml|csv|sta|lcsv>`, the last with its layout in `.layout`): importing
//! the same file again finds it there and changes nothing; the same id with other content is
//! refused. Files are written whole to a temporary name, fsynced, renamed, and the folder
//! fsynced, so a crash leaves either no statement or the whole of it. A file on disk
//! (`import_path`) is parsed, hashed and copied as a stream, never held whole. Resolutions are
//! one CSV file per channel (`chn_<channel>/resolutions.csv`: key, who, why) rewritten the same
//! way.

use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::constants::{
    IMPORT_BUFFER_BYTES, RESOLUTION_TEXT_LEN_MAX, STATEMENTS_PER_CHANNEL_MAX, STATEMENT_BYTES_MAX,
    TEXT_LEN_MAX,
};
use crate::error::{read_all, Format, ImportError};
use crate::report::Resolution;
use crate::statement::{content_hash, currency_code, hex, Statement};

/// The file a channel's bank account is kept in, under `chn_<n>/`.
const ACCOUNT_FILE: &str = "account";

/// The extension of the layout kept beside a CSV statement in a layout of its own.
const LAYOUT_EXTENSION: &str = "layout";

/// What `Store::import_file` did: each statement kept, with its channel and whether it is
/// new, and those no channel took.
#[derive(Clone, Debug)]
pub struct Imported {
    pub stored: Vec<(u64, Stored, bool)>,
    pub unrouted: Vec<Unrouted>,
}

/// A statement of a file whose account is no channel's bank account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrouted {
    pub id: String,
    pub account: String,
}

/// An account as compared: without spaces, upper case (an IBAN is written in groups of four).
pub fn normalize_account(account: &str) -> String {
    account.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_uppercase).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("channel {channel} already has {max} statements")]
    Full { channel: u64, max: usize },
    #[error("{0}")]
    InvalidResolution(String),
    #[error("{0}")]
    InvalidAccount(String),
    #[error("{account} is already chn_{channel}'s bank account")]
    AccountTaken { account: String, channel: u64 },
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
    /// whether it is new; nothing is written for a refused file or one already kept. A file of
    /// several statements keeps those of `channel` (by its bank account, or all of them when
    /// the channel has none recorded and the file holds one statement); see `import_file`.
    pub fn import(
        &self,
        channel: u64,
        currency: u32,
        format: Format,
        bytes: &[u8],
    ) -> Result<(Stored, bool), StoreError> {
        let imported =
            self.import_file(format, bytes, Some(channel), |c| (c == channel).then_some(currency))?;
        let found = imported.stored.into_iter().find(|(c, _, _)| *c == channel);
        match found {
            Some((_, stored, new)) => Ok((stored, new)),
            None => Err(ImportError::Unrouted {
                unrouted: format!("none is of chn_{channel}'s bank account"),
            }
            .into()),
        }
    }

    /// Parses a statement file and keeps each statement under the channel whose bank account
    /// it is (`set_account`); a file of one statement whose account is no channel's goes to
    /// `channel`, if given. `currency_of` gives a channel's currency (`None`: no such
    /// channel). The statements no channel takes are returned, not dropped; if none is taken,
    /// the file is refused. Nothing is written unless every statement taken is accepted.
    pub fn import_file(
        &self,
        format: Format,
        bytes: &[u8],
        channel: Option<u64>,
        currency_of: impl Fn(u64) -> Option<u32>,
    ) -> Result<Imported, StoreError> {
        let statements = crate::error::parse_all(format, bytes)?;
        let content = content_hash(bytes);
        self.keep(format, Source::Bytes(bytes), content, None, statements, channel, currency_of)
    }

    /// `import_file` for the file at `path`, read as a stream: parsed and hashed in one pass
    /// through a buffer of `IMPORT_BUFFER_BYTES`, then copied into the store through another, so
    /// memory holds the parsed statements and the buffers, not the file (a CSV file in huifu's
    /// layout is still read whole to parse it, see `read_all`). The copy is hashed too: a file
    /// that changed between the two passes is refused with an I/O error and leaves nothing.
    pub fn import_path(
        &self,
        format: Format,
        path: &Path,
        channel: Option<u64>,
        currency_of: impl Fn(u64) -> Option<u32>,
    ) -> Result<Imported, StoreError> {
        let file = fs::File::open(path)?;
        let too_large = |size: u64| ImportError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            max: STATEMENT_BYTES_MAX,
        };
        let size = file.metadata()?.len();
        if size > bytes_max() {
            return Err(too_large(size).into());
        }
        let mut input = BufReader::with_capacity(IMPORT_BUFFER_BYTES, Hashing::new(file));
        let statements = read_all(format, &mut input)?;
        // What the parser did not read (white space after the document) is part of the file
        // and of its hash; a file that grew meanwhile is read only up to the limit.
        std::io::copy(&mut (&mut input).take(bytes_max() + 1), &mut std::io::sink())?;
        let hashing = input.into_inner();
        if hashing.bytes > bytes_max() {
            return Err(too_large(hashing.bytes).into());
        }
        let content = hashing.finish();
        let source = Source::File { path, sha256: content };
        self.keep(format, source, content, None, statements, channel, currency_of)
    }

    /// `import_file` for a CSV file in a layout of its own (`csv_map`, `layout` the layout
    /// file's text): the layout is kept beside the statement (`<key>.layout`) to read it again,
    /// and is part of the content hash.
    pub fn import_csv_layout(
        &self,
        layout: &str,
        bytes: &[u8],
        channel: Option<u64>,
        currency_of: impl Fn(u64) -> Option<u32>,
    ) -> Result<Imported, StoreError> {
        use crate::constants::STATEMENT_BYTES_MAX;
        if bytes.len() > STATEMENT_BYTES_MAX {
            return Err(
                ImportError::TooLarge { size: bytes.len(), max: STATEMENT_BYTES_MAX }.into()
            );
        }
        let parsed = crate::csv_map::Layout::parse(layout)?;
        let statement = crate::csv_map::parse(&parsed, bytes)?;
        let content =
            Sha256::new().chain_update(bytes).chain_update(layout.as_bytes()).finalize().into();
        let source = Source::Bytes(bytes);
        self.keep(
            Format::CsvLayout,
            source,
            content,
            Some(layout),
            vec![statement],
            channel,
            currency_of,
        )
    }

    /// Routes parsed statements to channels and keeps the file (and its layout) for each.
    /// `content` is the hash the file's key is made of: of its bytes (and its layout).
    #[allow(clippy::too_many_arguments)]
    fn keep(
        &self,
        format: Format,
        source: Source<'_>,
        content: [u8; 32],
        layout: Option<&str>,
        statements: Vec<Statement>,
        channel: Option<u64>,
        currency_of: impl Fn(u64) -> Option<u32>,
    ) -> Result<Imported, StoreError> {
        let accounts = self.accounts()?;
        let single = statements.len() == 1;
        let content = hex(&content[..16]);
        let mut taken: Vec<(u64, Stored)> = Vec::new();
        let mut unrouted = Vec::new();
        for statement in statements {
            let routed = accounts.get(&normalize_account(&statement.account)).copied();
            let target = routed.or(if single { channel } else { None });
            let Some(target) = target else {
                unrouted.push(Unrouted { id: statement.id, account: statement.account });
                continue;
            };
            let Some(currency) = currency_of(target) else {
                unrouted.push(Unrouted { id: statement.id, account: statement.account });
                continue;
            };
            if statement.currency != currency {
                let name = |n: u32| currency_code(n).map_or(n.to_string(), |(c, _)| c.to_owned());
                return Err(ImportError::CurrencyMismatch {
                    statement: name(statement.currency),
                    channel: name(currency),
                }
                .into());
            }
            let key = format!("{}-{content}", hex(&content_hash(statement.id.as_bytes())[..16]));
            taken.push((target, Stored { key, format, statement }));
        }
        if taken.is_empty() {
            let list: Vec<String> =
                unrouted.iter().map(|u| format!("{} (account {})", u.id, u.account)).collect();
            return Err(ImportError::Unrouted { unrouted: list.join(", ") }.into());
        }
        // Check every statement before writing any.
        let mut plan = Vec::new();
        for (channel, stored) in taken {
            let existing = self.list(channel)?;
            let key = &stored.key;
            let id_hash = &key[..32];
            let new = !existing.iter().any(|(k, f)| k == key && *f == format);
            if new && existing.iter().any(|(k, _)| k.starts_with(id_hash)) {
                return Err(ImportError::Conflict { id: stored.statement.id }.into());
            }
            if new && existing.len() >= STATEMENTS_PER_CHANNEL_MAX {
                return Err(StoreError::Full { channel, max: STATEMENTS_PER_CHANNEL_MAX });
            }
            plan.push((channel, stored, new));
        }
        // A file on disk is copied from the first copy kept once there is one: the store's
        // copies do not change, the file the user named may.
        let mut first_copy: Option<PathBuf> = None;
        for (channel, stored, new) in &plan {
            if *new {
                let dir = self.statements_dir(*channel);
                create_dir_durable(&dir)?;
                // The layout first: a statement file is listed only once it can be read.
                if let Some(layout) = layout {
                    write_atomic(
                        &dir,
                        &format!("{}.{LAYOUT_EXTENSION}", stored.key),
                        layout.as_bytes(),
                    )?;
                }
                let name = format!("{}.{}", stored.key, format.extension());
                match source {
                    Source::Bytes(bytes) => write_atomic(&dir, &name, bytes)?,
                    Source::File { path, sha256 } => {
                        copy_atomic(&dir, &name, first_copy.as_deref().unwrap_or(path), &sha256)?;
                        first_copy.get_or_insert_with(|| dir.join(&name));
                    }
                }
            }
        }
        Ok(Imported { stored: plan, unrouted })
    }

    /// Records `account` (an IBAN or another id, as the bank writes it in `Acct/Id`) as
    /// `channel`'s bank account: statements of that account go to the channel. An account
    /// is one channel's only.
    pub fn set_account(&self, channel: u64, account: &str) -> Result<(), StoreError> {
        let normalized = normalize_account(account);
        if normalized.is_empty() || normalized.len() > TEXT_LEN_MAX {
            return Err(StoreError::InvalidAccount(format!(
                "a bank account has 1 to {TEXT_LEN_MAX} characters"
            )));
        }
        if let Some(&other) = self.accounts()?.get(&normalized) {
            if other != channel {
                return Err(StoreError::AccountTaken {
                    account: account.to_owned(),
                    channel: other,
                });
            }
        }
        let dir = self.channel_dir(channel);
        create_dir_durable(&dir)?;
        write_atomic(&dir, ACCOUNT_FILE, format!("{}\n", account.trim()).as_bytes())?;
        Ok(())
    }

    /// The bank account recorded for `channel`, if any.
    pub fn account(&self, channel: u64) -> Result<Option<String>, StoreError> {
        match fs::read_to_string(self.channel_dir(channel).join(ACCOUNT_FILE)) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every recorded bank account (normalized) and its channel.
    pub fn accounts(&self) -> Result<HashMap<String, u64>, StoreError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = HashMap::new();
        for e in entries {
            let name = e?.file_name();
            let Some(channel) = name.to_str().and_then(|n| n.strip_prefix("chn_")) else {
                continue;
            };
            let Ok(channel) = channel.parse::<u64>() else { continue };
            if let Some(account) = self.account(channel)? {
                out.insert(normalize_account(&account), channel);
            }
        }
        Ok(out)
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
            let Some(format) = Format::from_extension(ext) else { continue };
            out.push((key.to_owned(), format));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Every statement of a channel. A file that no longer parses (edited by hand) is an error.
    /// Files are read as a stream; of a file of several statements, the one the key names.
    pub fn statements(&self, channel: u64) -> Result<Vec<Stored>, StoreError> {
        self.statements_reusing(channel, Vec::new())
    }

    /// Every statement of a channel, taking those of `known` (just imported) as they are
    /// instead of reading their files again.
    pub fn statements_reusing(
        &self,
        channel: u64,
        mut known: Vec<Stored>,
    ) -> Result<Vec<Stored>, StoreError> {
        let dir = self.statements_dir(channel);
        let mut out = Vec::new();
        for (key, format) in self.list(channel)? {
            if let Some(at) = known.iter().position(|k| k.key == key && k.format == format) {
                out.push(known.swap_remove(at));
                continue;
            }
            let path = dir.join(format!("{key}.{}", format.extension()));
            let all = if format == Format::CsvLayout {
                let layout = fs::read_to_string(dir.join(format!("{key}.{LAYOUT_EXTENSION}")))?;
                let layout = crate::csv_map::Layout::parse(&layout)?;
                vec![crate::csv_map::parse(&layout, &fs::read(&path)?)?]
            } else {
                let file = fs::File::open(&path)?;
                read_all(format, BufReader::with_capacity(IMPORT_BUFFER_BYTES, file))?
            };
            let statement = all
                .into_iter()
                .find(|s| key.starts_with(&hex(&content_hash(s.id.as_bytes())[..16])))
                .ok_or_else(|| {
                    std::io::Error::other(format!("{key}: the statement is not in its file"))
                })?;
            out.push(Stored { key, format, statement });
        }
        Ok(out)
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

/// Where the bytes of a file being imported are: in memory (an HTTP body, a test), or in a file
/// read again to copy it, whose bytes must still have the SHA-256 they had when parsed.
#[derive(Clone, Copy)]
enum Source<'a> {
    Bytes(&'a [u8]),
    File { path: &'a Path, sha256: [u8; 32] },
}

/// A reader that hashes (SHA-256) and counts the bytes read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Hashing<R> {
        Hashing { inner, hasher: Sha256::new(), bytes: 0 }
    }

    fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hasher.update(&out[..n]);
        self.bytes = self.bytes.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        Ok(n)
    }
}

/// `STATEMENT_BYTES_MAX` as a file size.
fn bytes_max() -> u64 {
    u64::try_from(STATEMENT_BYTES_MAX).unwrap_or(u64::MAX)
}

/// Copies the file `from` to `name` in `dir` whole or not at all, as `write_atomic` writes, through
/// a buffer of `IMPORT_BUFFER_BYTES`; the copy is refused (and removed) unless its bytes have the
/// SHA-256 `sha256`.
fn copy_atomic(dir: &Path, name: &str, from: &Path, sha256: &[u8; 32]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let copied = (|| {
        let mut input = Hashing::new(fs::File::open(from)?);
        let mut out = BufWriter::with_capacity(IMPORT_BUFFER_BYTES, fs::File::create(&tmp)?);
        std::io::copy(&mut (&mut input).take(bytes_max() + 1), &mut out)?;
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        if input.finish() != *sha256 {
            return Err(std::io::Error::other(format!(
                "{} changed while it was imported: import it again",
                from.display()
            )));
        }
        file.sync_all()
    })();
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents, each new folder's entry fsynced in its parent: a statement
/// acknowledged as stored must not vanish with a folder a crash forgot.
fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    use huifu_journal::Storage;
    huifu_journal::FileStorage.create_dir_all(dir)
}

/// Writes `name` in `dir` whole or not at all: a temporary file, fsync, rename, fsync of the
/// folder.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}
