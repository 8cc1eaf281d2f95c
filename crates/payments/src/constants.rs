//! Every limit of the payment domain, in one place.

use huifu_ledger::constants::BATCH_EVENTS_MAX;

/// Largest id of a user, merchant, rider, channel, campaign or coupon: 2^56 − 1, so that a
/// settlement payout's ledger id can hold the run id and the merchant id side by side.
pub const ENTITY_ID_MAX: u64 = (1 << 56) - 1;

/// Ids the machine gives to keyed operations start here; ids chosen by clients stay below it.
pub const ALLOCATED_ID_MIN: u64 = 1 << 52;

/// Largest amount of one payment, refund, top-up, withdrawal, payout or budget, in minor units
/// (10^15: ten trillion yuan in fen). Sums of many such amounts stay far below u64::MAX.
pub const AMOUNT_MAX: u64 = 1_000_000_000_000_000;

/// Most operations in one batch. A batch is one journal record and each payment takes at most
/// `OP_EVENTS_MAX` ledger events, so this bounds a record to about 1 MiB of ledger events.
pub const BATCH_OPS_MAX: usize = BATCH_EVENTS_MAX / OP_EVENTS_MAX;

/// Most ledger transfers one operation other than a settlement run makes (a capture: two posts
/// and three legs).
pub const OP_EVENTS_MAX: usize = 6;

/// Longest hold of a top-up, withdrawal or bank-channel payment before it expires: one week.
pub const TIMEOUT_S_MAX: u32 = 7 * 24 * 3600;

/// Default hold of a bank-channel payment or transfer when the caller gives no timeout.
pub const TIMEOUT_S_DEFAULT: u32 = 15 * 60;

/// Parts of each payment-domain table that grows with every payment (see `sharded.rs`): a table
/// grows one part at a time, so the longest pause of a growth is about 1/64 of a single table's.
/// Costs 64 empty tables per map.
pub const MAP_SHARDS: usize = 64;

const _: () = assert!(BATCH_OPS_MAX >= 1_000);
const _: () = assert!(ALLOCATED_ID_MIN < ENTITY_ID_MAX);
const _: () = assert!((AMOUNT_MAX as u128) * (BATCH_EVENTS_MAX as u128) < u64::MAX as u128);

/// With a bound on the ledger transfers in memory (`--memory-transfers-max N`), each payment
/// table (payments, coupons, refunds, outcomes, idempotency keys, list entries) keeps at most
/// N / TRANSFERS_PER_RECORD entries in memory (beyond those it must keep: authorized payments
/// and their coupons): a payment makes about this many transfers.
pub const TRANSFERS_PER_RECORD: usize = 4;

/// A record read back from the history store and changed (a redeemed coupon, a refunded payment)
/// stays in memory until the next checkpoint; the machine asks for one once more than the
/// tables' bound divided by this wait.
pub const CHECKPOINT_WAITING_DIVISOR: usize = 2;
