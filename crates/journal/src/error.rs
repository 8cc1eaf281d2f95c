use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the journal or in snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The operating system refused an operation on `path`.
    #[error("I/O error while trying to {op} {}: {cause}", .path.display())]
    Io {
        /// What the journal was doing, e.g. "write" or "fsync".
        op: &'static str,
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error (in the message, not a separate cause, so it is printed once).
        cause: io::Error,
    },

    /// Stored data failed verification. Committed data may be lost, so this is
    /// never repaired automatically.
    #[error("corrupt data in {} at offset {offset}: {reason}", .segment.display())]
    Corrupt {
        /// Segment (or snapshot) file holding the bad data.
        segment: PathBuf,
        /// Byte offset of the bad record (or footer) within that file.
        offset: u64,
        /// What exactly failed.
        reason: String,
    },

    /// `append` was given a body over the record size limit.
    #[error("record body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Offered body length.
        len: usize,
        /// `constants::RECORD_BODY_SIZE_MAX`.
        max: u32,
    },

    /// An earlier `sync` failed, so what is on disk is unknown; only a fresh
    /// `open` (which re-verifies the files) can continue.
    #[error("journal in {} refuses writes after an earlier sync failure; reopen it to recover", .dir.display())]
    Poisoned {
        /// Journal directory.
        dir: PathBuf,
    },

    /// The journal ends before the snapshot it is opened with begins, so the
    /// records in between are lost.
    #[error("journal in {} ends before seq {next_seq} but the snapshot requires seq_min {seq_min}", .dir.display())]
    BehindSnapshot {
        /// Journal directory.
        dir: PathBuf,
        /// Sequence number the journal would assign next.
        next_seq: u64,
        /// `JournalOptions::seq_min` it was opened with.
        seq_min: u64,
    },

    /// `replay` was asked for records the journal does not hold.
    #[error("journal in {} holds seq {first_seq}..{next_seq}, cannot replay from seq {from_seq}", .dir.display())]
    SeqUnavailable {
        /// Journal directory.
        dir: PathBuf,
        /// Requested start.
        from_seq: u64,
        /// Oldest record still held (equals `next_seq` when empty).
        first_seq: u64,
        /// Sequence number the next append gets.
        next_seq: u64,
    },
}

/// Error of [`crate::Journal::replay`]: either the journal failed, or the
/// caller's callback did.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError<E> {
    /// Reading or verifying the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The callback returned an error for record `seq`; replay stopped there.
    #[error("replay callback failed at seq {seq}: {error}")]
    Callback {
        /// Record the callback rejected.
        seq: u64,
        /// The callback's error.
        error: E,
    },
}

impl JournalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |cause| JournalError::Io { op, path, cause }
    }

    pub(crate) fn corrupt(
        segment: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        JournalError::Corrupt { segment: segment.into(), offset, reason: reason.into() }
    }
}
