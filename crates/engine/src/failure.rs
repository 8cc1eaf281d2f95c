//! Why the writer thread stopped on its own, and which errors are the disk being full.
//!
//! The writer stops at the first error it cannot step over (a journal write or fsync, the
//! history store, a panic): the state in memory may then be ahead of what is durable, so no
//! further reply may go out. What made it stop is kept for health checks, for the replies of
//! every later request and for the process: a full disk is waited out by reopening the engine
//! from what is durable, any other failure ends the process, to be restarted.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use huifu_journal::JournalError;

use crate::engine::EngineError;

/// The raw OS error number of "no space left on device" (ENOSPC) on Linux and the BSDs.
const ENOSPC: i32 = 28;

/// What kind of failure stopped the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The disk holding a folder of the engine is full (ENOSPC).
    StorageFull,
    /// Any other I/O failure of the journal or the history store.
    Storage,
    /// The writer thread panicked (such as an invariant that no longer held).
    Panic,
}

/// Why the writer thread stopped.
#[derive(Clone, Debug)]
pub struct Failure {
    pub kind: FailureKind,
    /// The folder whose storage failed (`journal/`, `history/`, the data folder); none for a
    /// panic.
    pub folder: Option<PathBuf>,
    /// The error as it was reported, with its causes.
    pub detail: String,
}

impl Failure {
    /// The failure `error` stopped the writer with.
    pub(crate) fn of(error: &EngineError) -> Failure {
        let kind =
            if is_storage_full(error) { FailureKind::StorageFull } else { FailureKind::Storage };
        Failure { kind, folder: error.folder(), detail: error.to_string() }
    }

    /// A panic of the writer thread, with the panic's message when it has one.
    pub(crate) fn panic(payload: &(dyn std::any::Any + Send)) -> Failure {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Failure { kind: FailureKind::Panic, folder: None, detail: message }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let folder = self.folder.as_deref().unwrap_or(Path::new("the data folder")).display();
        match self.kind {
            FailureKind::StorageFull => {
                write!(f, "the disk holding {folder} is full: {}", self.detail)
            }
            FailureKind::Storage => write!(f, "storage failed in {folder}: {}", self.detail),
            FailureKind::Panic => write!(f, "the writer thread panicked: {}", self.detail),
        }
    }
}

impl EngineError {
    /// The folder this error concerns, when it is a storage error: the folder of the file
    /// that failed, or the folder itself.
    pub fn folder(&self) -> Option<PathBuf> {
        match self {
            EngineError::Journal(e) => journal_folder(e),
            EngineError::Io { path, .. } => Some(folder_of(path)),
            EngineError::History { path, .. } => Some(path.clone()),
            EngineError::Locked(path) => Some(path.clone()),
            EngineError::Failed(failure) => failure.folder.clone(),
            EngineError::Decode(_) | EngineError::Busy | EngineError::Stopped => None,
        }
    }
}

fn journal_folder(error: &JournalError) -> Option<PathBuf> {
    match error {
        JournalError::Io { path, .. } => Some(folder_of(path)),
        JournalError::Corrupt { segment, .. } => Some(folder_of(segment)),
        JournalError::Poisoned { dir } => Some(dir.clone()),
        _ => None,
    }
}

/// The folder that holds `path` if it names a file, else `path`. A file that failed may not
/// exist (yet), so a name with an extension (`journal-….log`, `checkpoint.snap`) is a file too.
fn folder_of(path: &Path) -> PathBuf {
    let file = path.is_file() || path.extension().is_some();
    match path.parent() {
        Some(parent) if file && !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

/// Whether `error`, or any error it carries, is the disk being full: an [`io::Error`] of kind
/// [`io::ErrorKind::StorageFull`] or with the raw OS error ENOSPC, or a message that still
/// names ENOSPC after an error was turned into text on its way up (`(os error 28)`).
///
/// The engine's and the journal's errors keep their I/O cause in their message rather than as
/// a `source` (so it is printed once), so those are looked into by name.
pub fn is_storage_full(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(e) = error.downcast_ref::<io::Error>() {
            if io_is_storage_full(e) {
                return true;
            }
        }
        if let Some(e) = error.downcast_ref::<EngineError>() {
            let cause = match e {
                EngineError::Io { cause, .. } | EngineError::History { cause, .. } => Some(cause),
                EngineError::Journal(JournalError::Io { cause, .. }) => Some(cause),
                EngineError::Failed(failure) => {
                    return failure.kind == FailureKind::StorageFull;
                }
                _ => None,
            };
            if cause.is_some_and(io_is_storage_full) {
                return true;
            }
        }
        if let Some(JournalError::Io { cause, .. }) = error.downcast_ref::<JournalError>() {
            if io_is_storage_full(cause) {
                return true;
            }
        }
        if error.to_string().contains(&format!("(os error {ENOSPC})")) {
            return true;
        }
        next = error.source();
    }
    false
}

/// Bytes an unprivileged process can still write on the file system holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn io_is_storage_full(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::StorageFull
        || error.raw_os_error() == Some(ENOSPC)
        || error.get_ref().is_some_and(|inner| is_storage_full(inner))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(ENOSPC)
    }

    #[test]
    fn the_disk_is_full_wherever_the_error_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        std::fs::create_dir(&journal).unwrap();
        let segment = journal.join("journal-1.log");
        let full = [
            EngineError::Journal(JournalError::Io {
                op: "write",
                path: segment.clone(),
                cause: enospc(),
            }),
            EngineError::Io {
                what: "history store failed",
                path: dir.path().join("history"),
                cause: io::Error::new(io::ErrorKind::StorageFull, "no room"),
            },
            // An error wrapped in another, as the history store's are.
            EngineError::Io {
                what: "history store failed",
                path: dir.path().join("history"),
                cause: io::Error::other(io::Error::new(io::ErrorKind::StorageFull, "no room")),
            },
            // An error that was made into text on its way.
            EngineError::Io {
                what: "checkpoint failed",
                path: dir.path().join("checkpoint.snap"),
                cause: io::Error::other(format!("cannot write: {}", enospc())),
            },
        ];
        for error in &full {
            assert!(is_storage_full(error), "{error}");
            assert_eq!(Failure::of(error).kind, FailureKind::StorageFull);
        }
        assert_eq!(full[0].folder(), Some(journal.clone()), "a segment names its folder");
        let failure = Failure::of(&full[0]);
        assert!(failure
            .to_string()
            .starts_with(&format!("the disk holding {} is full: ", journal.display())));

        let other = EngineError::Journal(JournalError::Io {
            op: "fsync",
            path: segment,
            cause: io::Error::from_raw_os_error(5),
        });
        assert!(!is_storage_full(&other));
        let failure = Failure::of(&other);
        assert_eq!((failure.kind, failure.folder), (FailureKind::Storage, Some(journal)));
        assert!(!is_storage_full(&EngineError::Stopped));
    }

    #[test]
    fn a_panic_keeps_its_message() {
        let payload =
            std::panic::catch_unwind(|| panic!("debits {} != credits {}", 1, 2)).unwrap_err();
        let failure = Failure::panic(payload.as_ref());
        assert_eq!(failure.kind, FailureKind::Panic);
        assert_eq!(failure.to_string(), "the writer thread panicked: debits 1 != credits 2");
    }
}
