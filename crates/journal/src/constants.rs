//! Every limit and format constant of the journal, in one place.

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// First four bytes of every record header (`"HFJ2"` little-endian). A record
/// boundary that does not start with it is either torn or corrupt.
pub const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"HFJ2");

/// Size of the fixed record header: magic (4), body length (4), sequence
/// number (8), CRC32C (4), index in its group commit (4). A multiple of 8 so
/// bodies stay 8-byte aligned relative to the start of a segment.
pub const RECORD_HEADER_SIZE: usize = 24;

/// First four bytes of every segment file (`"HFJS"` little-endian).
pub const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"HFJS");

/// The journal format this version writes and reads. Format 1 (records
/// framed `"HFJ1"`, segments without a header) is refused with its name.
pub const JOURNAL_FORMAT: u32 = 2;

/// Every this many records of a segment, the journal keeps the record's offset in memory, so
/// that a read from any seq (`Journal::read`) scans at most this many records before it.
/// Eight bytes per this many records: 1 MiB for 8 M records.
pub const READ_INDEX_STRIDE: u64 = 64;

/// Size of the segment header: magic (4), format (4), first sequence number
/// (8), salt (8), reserved zero (4), CRC32C of the bytes before it (4). It is
/// written and fsynced before any record of the segment, so a record on disk
/// always has a durable header before it. A multiple of 8, like the records.
pub const SEGMENT_HEADER_SIZE: usize = 32;

/// Largest record body accepted by `append` and by recovery. Engine batches
/// are around 1 MiB; the headroom is for unusual batches, while the cap keeps a
/// corrupt length field from making recovery allocate gigabytes.
pub const RECORD_BODY_SIZE_MAX: u32 = 16 * 1024 * 1024;

/// Default size at which the journal rotates to a new segment: large enough
/// that rotation (and its directory fsync) is rare, small enough that
/// checkpoint-driven deletion frees space in useful steps.
pub const SEGMENT_SIZE_DEFAULT: u64 = 256 * 1024 * 1024;

/// File name prefix of a segment.
pub const SEGMENT_FILE_PREFIX: &str = "journal-";

/// File name suffix of a segment.
pub const SEGMENT_FILE_SUFFIX: &str = ".log";

/// Digits of the zero-padded first sequence number in a segment file name;
/// 20 digits hold every `u64`, so lexical order equals numeric order.
pub const SEGMENT_FILE_SEQ_DIGITS: usize = 20;

/// Buffer size for streaming segments during recovery and replay: big enough
/// to amortise syscalls over ~1 MiB records, small enough to be irrelevant
/// next to the engine's own memory.
pub const READ_BUFFER_SIZE: usize = MIB;

/// Capacity of the write buffer kept across syncs. A rare oversized group
/// commit must not pin its memory forever; anything above this is released.
pub const WRITE_BUFFER_RETAIN_MAX: usize = 64 * MIB;

/// First four bytes of a snapshot footer (`"HFS1"` little-endian).
pub const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"HFS1");

/// Size of the snapshot footer: magic (4), body length (8), CRC32C (4).
pub const SNAPSHOT_FOOTER_SIZE: usize = 16;

/// Buffer size for streaming snapshots in and out.
pub const SNAPSHOT_BUFFER_SIZE: usize = MIB;

/// Suffix of the temporary file a snapshot is written to before the atomic
/// rename. A file with this suffix is never a valid snapshot.
pub const SNAPSHOT_TMP_SUFFIX: &str = ".tmp";

// A maximal record must fit in a default segment, otherwise every large batch
// would sit alone in an oversized segment.
const _: () =
    assert!(RECORD_HEADER_SIZE as u64 + RECORD_BODY_SIZE_MAX as u64 <= SEGMENT_SIZE_DEFAULT);
// Body alignment relies on the header being a multiple of 8.
const _: () = assert!(RECORD_HEADER_SIZE.is_multiple_of(8));
// A single maximal record must be retainable, or every sync would reallocate.
const _: () =
    assert!(RECORD_HEADER_SIZE + (RECORD_BODY_SIZE_MAX as usize) <= WRITE_BUFFER_RETAIN_MAX);
// "journal-" + 20 digits + ".log" must stay within common file name limits.
const _: () =
    assert!(SEGMENT_FILE_PREFIX.len() + SEGMENT_FILE_SEQ_DIGITS + SEGMENT_FILE_SUFFIX.len() <= 255);
const _: () = assert!(SNAPSHOT_FOOTER_SIZE == 4 + 8 + 4);
const _: () = assert!(RECORD_MAGIC != SNAPSHOT_MAGIC);
const _: () = assert!(SEGMENT_MAGIC != RECORD_MAGIC && SEGMENT_MAGIC != SNAPSHOT_MAGIC);
const _: () = assert!(SEGMENT_HEADER_SIZE.is_multiple_of(8));
// A segment header and one maximal record fit in a default segment.
const _: () = assert!(
    (SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE) as u64 + RECORD_BODY_SIZE_MAX as u64
        <= SEGMENT_SIZE_DEFAULT
);
