//! Every limit of the engine, in one place.

use huifu_ledger::constants::BATCH_EVENTS_MAX;

/// Requests waiting for the writer thread; further submitters block (back-pressure), or are
/// refused at once with `EngineError::Busy` through `try_submit`. Each holds at most one batch,
/// so the queue holds at most this many × 1 MiB.
pub const QUEUE_REQUESTS_MAX: usize = 1_024;

/// Most requests applied and committed as one group (one journal write and one fsync). Larger
/// groups amortise the fsync better but hold the first request's reply longer.
pub const GROUP_REQUESTS_MAX: usize = 256;

/// A group stops taking requests once it holds this many events: about 4 MiB of journal.
pub const GROUP_EVENTS_MAX: usize = 4 * BATCH_EVENTS_MAX;

/// How often an idle writer wakes to run time-driven work (expiring pending transfers).
pub const TICK_INTERVAL_MS: u64 = 100;

/// A checkpoint is written once the journal grew this much since the last one. It bounds the
/// restart time (replay of at most this much journal) at the cost of a pause to write it.
pub const CHECKPOINT_INTERVAL_BYTES_DEFAULT: u64 = 2 << 30;

const _: () = assert!(GROUP_EVENTS_MAX >= BATCH_EVENTS_MAX);

/// Times the copy of a running node's folder starts over because a checkpoint removed a file
/// it was copying; each checkpoint takes seconds to minutes, so more means something is wrong.
pub const BACKUP_ATTEMPTS_MAX: u32 = 5;

/// Passes over a running node's history store before its backup gives up: each copies what the
/// store wrote during the one before, so a store written to without pause never settles.
pub const BACKUP_STORE_PASSES_MAX: u32 = 100;

/// Pause between two passes over the history store, so that a pass can fall between two of
/// the store's writes.
pub const BACKUP_STORE_PASS_PAUSE_MS: u64 = 20;
