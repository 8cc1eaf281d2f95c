//! Durable edge of the huifu engine: a segmented, checksummed write-ahead
//! journal of opaque records with group commit, plus atomic snapshot files.
//!
//! The journal knows nothing about ledgers. The engine appends record bodies
//! (byte slices), calls [`Journal::sync`] once per batch, and treats a record
//! as committed only after that sync returned `Ok`. On restart it loads the
//! latest snapshot ([`snapshot::SnapshotReader`]) and replays the journal from
//! the snapshot's sequence number.
//!
//! For a replicated log it also reads from any sequence number
//! ([`Journal::read`], near-direct through an index of every 64th record's
//! offset) and removes its tail durably ([`Journal::truncate_from`], later
//! segments newest first, then the one holding the cut, so that a crash at any
//! point leaves a log without gaps and a removed record never comes back).
//!
//! ```
//! use huifu_journal::{Journal, JournalOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut journal, recovered) = Journal::open(JournalOptions::new(dir.path()))?;
//! assert_eq!(recovered.next_seq, 1);
//! assert_eq!(journal.append(b"first")?, 1);
//! assert_eq!(journal.append(b"second")?, 2);
//! journal.sync()?; // both records are durable from here on
//! drop(journal);
//!
//! let (mut journal, recovered) = Journal::open(JournalOptions::new(dir.path()))?;
//! assert_eq!(recovered.records, 2);
//! let mut seen = Vec::new();
//! journal.replay(2, |seq, body| {
//!     seen.push((seq, body.to_vec()));
//!     Ok::<(), std::convert::Infallible>(())
//! })?;
//! assert_eq!(seen, vec![(2, b"second".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # On-disk format
//!
//! The journal directory holds segment files named
//! `journal-<first seq, 20 digits zero-padded>.log`, e.g.
//! `journal-00000000000000000001.log`, so names sort in log order. A segment
//! starts with a 32-byte header, written and fsynced before any record:
//!
//! | offset | size | field                                                      |
//! |-------:|-----:|------------------------------------------------------------|
//! | 0      | 4    | magic, [`constants::SEGMENT_MAGIC`] (`"HFJS"`)             |
//! | 4      | 4    | journal format, [`constants::JOURNAL_FORMAT`] (2)          |
//! | 8      | 8    | sequence number of its first record                        |
//! | 16     | 8    | salt of its records' checksums, random per journal opened  |
//! | 24     | 4    | reserved, zero                                             |
//! | 28     | 4    | CRC32C over bytes 0..28                                    |
//!
//! then its records, each a 24-byte little-endian header followed by the body:
//!
//! | offset | size | field                                                    |
//! |-------:|-----:|----------------------------------------------------------|
//! | 0      | 4    | magic, [`constants::RECORD_MAGIC`] (`"HFJ2"`)            |
//! | 4      | 4    | body length, at most [`constants::RECORD_BODY_SIZE_MAX`] |
//! | 8      | 8    | sequence number                                          |
//! | 16     | 4    | CRC32C over the salt, bytes 0..16 and 20..24, the body   |
//! | 20     | 4    | index of the record in its group commit (0 for the first)|
//! | 24     | len  | body                                                     |
//!
//! Sequence numbers start at 1 (or at [`JournalOptions::seq_min`] for an empty
//! journal) and increase by exactly one from record to record and across
//! segments; a segment's name equals the sequence number of its first record.
//! The body length is checked against the limit before anything is allocated.
//! The records appended between two [`Journal::sync`] calls are one group
//! commit; each names its place in the group, so recovery knows where a
//! group starts without a record of its own.
//!
//! Snapshot files are described in [`snapshot`].
//!
//! # What is assumed of the disk
//!
//! - A successful fsync (`fdatasync`) of a file makes every byte written to it
//!   before durable; a successful fsync of a directory makes the creation and
//!   removal of its entries durable. New segment files are therefore followed
//!   by a directory fsync before the sync that created them returns.
//! - A crash can damage only writes that were not yet synced, and a damaged
//!   write leaves a prefix of itself, possibly with garbage at its end (a torn
//!   write). Synced bytes never change.
//! - A write that was not synced may survive in any part: a prefix, or any
//!   subset of its pages with the others zeros (a volatile disk cache, or
//!   `data=writeback`, writes pages out of order).
//! - Consequently damage can only sit in the last group commit written, at the
//!   end of the last segment, and that is the only damage [`Journal::open`]
//!   repairs (by truncating from the first record that does not verify). Each
//!   group is fsynced before the next is written, so a record of a later group
//!   that verifies after damaged bytes means an acknowledged group is damaged:
//!   that, and any damage before the last segment's tail, fails opening with
//!   [`JournalError::Corrupt`]. Discovering that needs an operator, never a
//!   silent skip. The salt keeps a client's bytes inside a record (which can
//!   imitate a whole frame) from passing for a record of this segment.
//! - A segment whose header does not verify and holds nothing after it was
//!   being created when the power went: it is removed.
//! - After a failed fsync the state of the file is unknown, so the journal
//!   refuses further writes until it is reopened and re-verified.
//!
//! [`faulty::FaultyStorage`] implements exactly this model in memory so tests
//! can crash the "disk" at any point.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod constants;
mod error;
pub mod faulty;
mod journal;
mod record;
pub mod snapshot;
mod storage;

pub use error::{JournalError, ReplayError};
pub use journal::{segment_file_name, Journal, JournalOptions, Recovered};
pub use snapshot::{SnapshotReader, SnapshotWriter};
pub use storage::{FileStorage, FsFile, Storage, StorageFile};
