//! Every limit of the history store, with what it costs.

/// Size at which a keyspace's in-memory table is written out. Smaller tables are cheaper to
/// insert into (a shallower skip list) and bound memory, at the cost of more compaction.
pub const MEMTABLE_BYTES_MAX: u64 = 16 << 20;

/// Size of the store's own write-ahead journal before its tables are flushed: what a restart of
/// the store replays (the engine's journal is what recovery relies on).
pub const JOURNALING_BYTES_MAX: u64 = 256 << 20;

/// Data block size (before compression) of the keyspaces read by range: the records by
/// timestamp and the account index. Larger blocks compress better and need fewer index
/// entries; a point read decompresses a whole block (about 5 µs for 16 KiB with LZ4).
pub const SCAN_BLOCK_BYTES: u32 = 16 << 10;

/// Data block size of the keyspaces read by key (the id index, the records): a lookup of a
/// key they do not hold is settled by key ranges or bloom filters without reading a block, and
/// one that finds its key decompresses a block (about 5 µs for 16 KiB with LZ4). Blocks of
/// 16 KiB instead of 4: a 30 M simulated day took 255 disk bytes per payment instead of 260,
/// at the same rate.
pub const POINT_BLOCK_BYTES: u32 = 16 << 10;

/// Keys between two whole keys in a data block of the scanned keyspaces (the others are stored
/// as what they add to the previous key): fewer whole keys make smaller blocks, at the cost of
/// a longer walk inside a block to find one key.
pub const SCAN_BLOCK_RESTART_INTERVAL: u8 = 32;

/// Levels (from the first) whose bloom filters and block indexes stay in memory, in the
/// keyspaces read by key. Bounded: the first level holds four tables of `TABLE_BYTES`, the
/// level before it a few runs. Deeper levels grow with the store; their filters and indexes
/// are read in partitions through the block cache.
pub const PINNED_LEVELS: usize = 2;

/// Background threads of the store (flushes and compactions). One: fjall's pool of several
/// makes its first worker hand every compaction request back to the queue while another
/// worker compacts, and on a 2-core machine that loop took a third of the process's CPU time
/// (measured with perf on `huifu bench payments --memory-transfers-max`).
pub const WORKER_THREADS: usize = 1;

/// Target size of a table file, in every keyspace. Keys of the records (and, before they were
/// kept in epochs, of the account index and the lists) spread over the whole key space in
/// every batch moved out, so each new run overlaps all of the first level and compaction
/// rewrites that level: the first level holds four tables,
/// so with fjall's default 64 MiB tables each run of a few megabytes rewrote up to 256 MiB, with
/// 8 MiB tables 32 MiB. That bounds that rewrite and the space a compaction in progress holds
/// twice (about 30 disk bytes per payment less during `huifu bench payments`, same CPU time).
pub const TABLE_BYTES: u64 = 8 << 20;

/// Epochs of the account index and of the lists merged into one of the next tier (see
/// `epochs`). Each entry is written once per tier, about log(puts) / log(this) times, and a
/// statement or a page of a list reads up to this many epochs per tier (more of the lowest
/// tiers while a long merge runs: one merge runs at a time). A larger number writes less and
/// makes a read of a long-quiet owner look at more epochs; what one epoch costs a read was not
/// measured.
pub const EPOCHS_PER_TIER: usize = 16;

/// Items in one entry of the account index or the lists (an owner's transfers or payments in
/// one epoch). A statement reads whole entries, so this bounds the work of a page of a busy
/// account (the platform's revenue account takes a leg of every payment) at a few
/// microseconds.
pub const RUN_ENTRIES_MAX: usize = 1_024;

/// Once the transfers in memory pass their bound, they are moved out down to the bound less
/// this fraction of it (an eighth), in one put. Each put writes one sorted run per keyspace,
/// and the id index spreads every run over much of its key space, so each run overlaps much of
/// its first level: runs of a few hundred kilobytes (a chunk of the log at a
/// time) made compaction rewrite that level for every megabyte or two written.
pub const EVICT_SLACK_DIVISOR: usize = 8;

/// Appended to the name of the store's folder to name the sibling folder a new store is made
/// in before it is renamed into place (`HistoryStore::create`): `history.new` beside `history`.
pub const CREATING_SUFFIX: &str = ".new";

/// The file fjall writes last when it creates a database (its format version, fsynced): a
/// store's folder without it, or with one cut short, is a creation that never finished.
pub const FJALL_VERSION_FILE: &str = "version";
