//! Every limit of the HTTP API, in one place.

/// Largest request body. A full ledger batch (8,190 transfers) in JSON is about 4 MiB.
pub const BODY_BYTES_MAX: usize = 8 << 20;

/// A request whose operation the engine has not made durable by then gets 503.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Most operations in one `POST /v1/batch`.
pub const BATCH_OPERATIONS_MAX: usize = 1_000;

/// Payments, refunds and statement entries one list page returns at most.
pub const LIST_LIMIT_MAX: u32 = 1_000;

const _: () = assert!(BATCH_OPERATIONS_MAX <= huifu_payments::constants::BATCH_OPS_MAX);
