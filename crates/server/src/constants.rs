//! Every limit of the HTTP API, in one place.

/// Largest request body. A full ledger batch (8,190 transfers) in JSON is about 4 MiB.
pub const BODY_BYTES_MAX: usize = 8 << 20;

/// A request whose operation the engine has not made durable by then gets 503.
pub const REQUEST_TIMEOUT_MS: u64 = 10_000;

/// Seconds a request refused with 503 `engine_busy` (the engine's queue was full) is told to
/// wait before it tries again (`Retry-After`). A full queue drains in a few group commits,
/// milliseconds; a second spreads the retries of many clients instead of sending them back at
/// once, and HTTP has no smaller unit.
pub const BUSY_RETRY_AFTER_SECONDS: u64 = 1;

/// Seconds a request refused with 503 `no_leader` (a cluster electing a leader, or a leader
/// that could not be reached) is told to wait: an election takes under a second.
pub const NO_LEADER_RETRY_AFTER_SECONDS: u64 = 1;

/// How often `serve` looks whether the engine's writer stopped on a failure (then a full disk
/// turns the server read-only; any other failure stops it and the process exits with an
/// error), and, while the disk is full, whether there is room again. The writer fails every
/// request itself at once, so this only bounds how long a failure goes unanswered.
pub const FAILURE_POLL_MS: u64 = 100;

/// Free bytes the data folder's file system must have again before a server whose disk filled
/// up takes writes again: room for many group commits, a journal segment and the history
/// store's next flush, so that the first writes do not fill it again at once.
pub const DISK_FREE_TO_RESUME_BYTES: u64 = 16 << 20;

/// How long `serve` waits before it tries again to reopen an engine stopped by a full disk
/// (the stopped writer may still hold the folder, or the disk may refuse the reopen).
pub const REOPEN_RETRY_MS: u64 = 1_000;

/// Failed reopens after which `serve` gives up and stops, unless the disk being full is why.
pub const REOPEN_TRIES_MAX: u32 = 30;

/// Most operations in one `POST /v1/batch`.
pub const BATCH_OPERATIONS_MAX: usize = 1_000;

/// Items one page returns when the request names no `limit`.
pub const PAGE_LIMIT_DEFAULT: u32 = 100;

/// Payments, statement entries and reconciliation exceptions one list page returns at most
/// (its `limit`): a page is built whole in memory and written as one reply, a thousand
/// payments about half a megabyte of JSON.
pub const LIST_LIMIT_MAX: u32 = 1_000;

/// Transfers one page of an account's ledger transfers returns at most (its `limit`): the
/// ledger's own query limit, a TigerBeetle reply's worth (8,189 transfers, a few MiB of JSON).
pub const LEDGER_PAGE_LIMIT_MAX: u32 = huifu_ledger::constants::QUERY_LIMIT_MAX;

const _: () = assert!(0 < PAGE_LIMIT_DEFAULT && PAGE_LIMIT_DEFAULT <= LIST_LIMIT_MAX);
const _: () = assert!(LIST_LIMIT_MAX <= LEDGER_PAGE_LIMIT_MAX);
const _: () = assert!(LEDGER_PAGE_LIMIT_MAX <= huifu_ledger::constants::QUERY_LIMIT_MAX);

const _: () = assert!(BATCH_OPERATIONS_MAX <= huifu_payments::constants::BATCH_OPS_MAX);

/// How often an idle event stream looks for new entries: the delay a merchant may see.
pub const EVENTS_POLL_MS: u64 = 100;

/// Most entries one look of an event stream takes; the rest follow at once.
pub const EVENTS_PAGE_MAX: u32 = 1_000;

/// Requests per second one API key may make on average; above it the answer is 429.
pub const RATE_PER_KEY_PER_SECOND: u64 = 100_000;

/// Requests one API key may make at once above its rate (the bucket's size).
pub const RATE_BURST_PER_KEY: u64 = 200_000;
