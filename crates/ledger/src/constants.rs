//! Every limit of the ledger state machine, in one place.

/// Most events (accounts or transfers) in one batch. Matches the batch size of the reference
/// ledger model, so clients written against it can send the same batches. A batch of transfers
/// is this many × 128 bytes (about 1 MiB) in memory and in one journal record.
pub const BATCH_EVENTS_MAX: usize = 8_190;

/// The largest amount. As an amount of a post, it means "post the whole pending amount"; as the
/// amount of a balancing transfer, "as much as the balance allows".
pub const AMOUNT_MAX: u128 = u128::MAX;

/// Nanoseconds in one second; transfer timeouts are in seconds, timestamps in nanoseconds.
pub const NS_PER_S: u64 = 1_000_000_000;

/// Timestamps are below 2^63: the top bit is reserved (as in the reference model), so a
/// timestamp plus the largest timeout never overflows a u64.
pub const TIMESTAMP_MAX: u64 = (1 << 63) - 1;

/// Most pending transfers expired by one expiry operation; more are expired by the next one.
pub const EXPIRE_EVENTS_MAX: usize = BATCH_EVENTS_MAX;

/// Most transfers one `get_account_transfers` query returns: a larger limit is capped to it. The
/// reference model caps a query at what fits in one reply, a message body less the 128-byte
/// trailer of its batched reply format: (1 MiB − 256 − 128) / 128 = 8_189, one below a batch.
pub const QUERY_LIMIT_MAX: u32 = 8_189;

/// Size of one encoded account or transfer.
pub const EVENT_SIZE: usize = 128;

/// Most accounts, or transfers ever made, a snapshot may announce: positions are `u32`. A
/// larger count is refused as corrupt before anything is read for it.
pub const SNAPSHOT_COUNT_MAX: usize = u32::MAX as usize + 1;

/// Entries a snapshot reader makes room for at once before it has read any: the least step by
/// which its tables grow (each step is at most the entries read so far, so memory follows the
/// bytes the file really holds, whatever count it announces; see
/// `StateMachine::read_snapshot`). A few megabytes of accounts; small snapshots, the common
/// case, then need one allocation per table.
pub const SNAPSHOT_RESERVE_MIN: usize = 1 << 15;

const _: () = assert!(EXPIRE_EVENTS_MAX <= BATCH_EVENTS_MAX);
const _: () = assert!(QUERY_LIMIT_MAX as usize <= BATCH_EVENTS_MAX);
const _: () = assert!((u32::MAX as u64) * NS_PER_S < (1 << 63));
