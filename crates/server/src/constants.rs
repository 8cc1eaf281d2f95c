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

/// How often the server's one event dispatcher looks for new ledger entries while any stream
/// is open: one read of the engine per look for the whole server, whatever the number of
/// streams, so the delay a merchant may see is this plus a group commit. Each look costs the
/// writer a binary search and a copy of the new transfers, and each stream with news one
/// write: a look every 25 ms keeps a busy account's thousand streams at 40 writes a second
/// each however many payments it gets, and its delay well under 100 ms.
pub const EVENTS_DISPATCH_MS: u64 = 25;

/// How often the dispatcher looks while no stream is open: it only moves its position to the
/// ledger's newest entry, so that the first stream does not start with a backlog to read.
pub const EVENTS_IDLE_LOOK_MS: u64 = 100;

/// Most transfers one look of the dispatcher takes (about 1 MiB of copies); the rest follow
/// at once in the next look.
pub const EVENTS_DISPATCH_TRANSFERS_MAX: usize = 8_192;

/// Batches of events (one per look that had entries of the account) a stream may have waiting
/// to be written. Batches are shared by every stream of an account, so this bounds what a slow
/// reader holds alive; a stream that falls this far behind is ended, and its client resumes
/// with `Last-Event-ID` from the ledger instead of slowing the others or growing memory.
pub const EVENTS_STREAM_QUEUE_MAX: usize = 128;

/// Most entries one read of a stream catching up from the ledger (`Last-Event-ID`,
/// `starting_after`) takes; the rest follow at once.
pub const EVENTS_PAGE_MAX: u32 = 1_000;

/// How often an event stream with nothing to say sends an SSE comment, so that proxies and
/// clients tell a quiet stream from a dead connection.
pub const EVENTS_KEEPALIVE_MS: u64 = 15_000;

/// Event streams one API key may hold open at once (`--events-per-key-max`); the next one is
/// 429 `too_many_streams`. A stream costs a connection, its socket buffers (some 100 KiB in the
/// kernel) and a place in the dispatcher's lists; a merchant's back office needs a few, and a
/// platform that fans events out to many screens can hold several keys.
pub const EVENTS_STREAMS_PER_KEY_MAX: usize = 256;

/// Seconds a caller refused a stream (429 `too_many_streams`) is told to wait: streams end
/// when their clients go, so a slot is free again soon after one closes.
pub const EVENTS_RETRY_AFTER_SECONDS: u64 = 1;

/// Requests the server works on at once (`--requests-in-flight-max`); beyond it a request is
/// refused at once with 503 `overloaded` and `Retry-After` (load shedding) rather than queued:
/// a queue in front of the engine's own would only add latency to every request. A request
/// counts until its response's head is ready, so an event stream counts only while it is set
/// up, not for as long as it stays open (streams have their own cap, per key). The default is
/// well above what the engine's queue and group commits absorb (tens of thousands of payments
/// a second at a few milliseconds each) and below what would exhaust memory: each request in
/// flight holds at most a body of `BODY_BYTES_MAX`.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 4_096;

/// Seconds a request refused with 503 `overloaded` is told to wait.
pub const OVERLOADED_RETRY_AFTER_SECONDS: u64 = 1;

/// Time a client has to send a request's head (request line and headers) from the moment the
/// server waits for one (`--header-read-timeout-ms`); then the connection is closed. A client
/// that sends a header line a minute would otherwise hold a connection, and its memory,
/// forever. The server waits for the next head as soon as a response is written, so this is
/// also how long a kept-alive connection may stay idle: a minute, as long as common HTTP
/// clients keep an idle connection in their pools or longer (a client that keeps one longer
/// reconnects), and shorter than proxies' defaults (nginx's keepalive_timeout is 75 s).
pub const HEADER_READ_TIMEOUT_MS: u64 = 60_000;

/// Time a request has from its head to the start of its response (`--body-read-timeout-ms`);
/// then it is answered 408 `request_timeout` and its connection's slot in
/// `REQUESTS_IN_FLIGHT_MAX` is free. Every handler reads its body whole before it answers, and
/// the engine answers within `REQUEST_TIMEOUT_MS`, so what this cuts is a body sent slowly:
/// 8 MiB (`BODY_BYTES_MAX`) in this time is 2.2 Mbit/s. An event stream's response starts at
/// once, so its stream is not cut.
pub const BODY_READ_TIMEOUT_MS: u64 = 30_000;

const _: () = assert!(REQUEST_TIMEOUT_MS < BODY_READ_TIMEOUT_MS);

/// How long a graceful shutdown waits for connections to finish their requests before it
/// closes them anyway (event streams are ended at once).
pub const SHUTDOWN_DRAIN_MS: u64 = 10_000;

const _: () = assert!(EVENTS_DISPATCH_MS < EVENTS_IDLE_LOOK_MS);
const _: () = assert!(EVENTS_PAGE_MAX <= huifu_ledger::constants::QUERY_LIMIT_MAX);

/// Requests per second an admin key may make on average, unless it was given a rate of its own
/// (`rate_per_second` when it is made) or the server was started with `--key-rate-per-second`;
/// above it the answer is 429 `rate_limited` with `Retry-After`. Admin keys are the operators'
/// and their tools', the load generator and the simulator among them (`huifu bench http` and
/// `huifu simulate --server` take the admin key by default): like the platform's keys they are
/// the platform's own, so they may use what the server answers, about 60,000 single payments
/// a second on 2 cores. Their limit bounds a runaway loop, not the platform's own traffic.
pub const ADMIN_RATE_PER_SECOND: u32 = 100_000;

/// Requests per second a platform key may make on average (see [`ADMIN_RATE_PER_SECOND`]). The
/// platform's services carry every rider's and user's payment through a few keys: they may use
/// what the server answers. An operator who runs several services on one server gives each
/// its share with `rate_per_second` when making its key.
pub const PLATFORM_RATE_PER_SECOND: u32 = 100_000;

/// Requests per second a merchant key may make on average (see [`ADMIN_RATE_PER_SECOND`]): a
/// merchant's back office reads its payments, balance and statement and refunds, hundreds of
/// times fewer calls than the payments themselves; 100 a second is what public payment APIs
/// give an account by default. A thousand merchants at this rate would still be only part of
/// what the server answers.
pub const MERCHANT_RATE_PER_SECOND: u32 = 100;

/// A key's burst, in seconds of its rate: requests it may make at once after a quiet spell
/// (a batch job starting, a page of a back office loading) before the rate holds it.
pub const KEY_BURST_PER_RATE: u32 = 2;

/// Highest rate a key may be given (`rate_per_second`, `--key-rate-per-second`): far above
/// what the server answers on any machine it runs on, so a key given it is in effect unlimited
/// (what the load generator and the load tests need of theirs).
pub const KEY_RATE_PER_SECOND_MAX: u32 = 10_000_000;

/// Largest burst a key may be given. A limiter is one 8-byte cell whatever its burst.
pub const KEY_BURST_MAX: u32 = 20_000_000;

/// Requests per second one client address may make on average with no API key, an unknown
/// one, or one revoked or expired; above it they get 429 instead of 401. Each costs a SHA-256
/// of the key and a look-up, and a key file found in the wild is tried key by key: a client
/// that is configured right fails a handful of times, a guesser or a misconfigured loop
/// thousands. A client's valid keys are never held to it. An IPv6 client is counted by its /64.
/// Requests a cluster node forwards to the leader count against the node's address.
pub const ADDRESS_AUTH_FAILURES_PER_SECOND: u32 = 100;

/// Failed authentications one client address may make at once above its rate: enough for a
/// test suite or a monitoring sweep that checks every endpoint refuses a missing key.
pub const ADDRESS_AUTH_FAILURES_BURST: u32 = 1_000;

/// Client addresses whose failures are tracked at once: about 100 bytes each, so at most some
/// 10 MiB. Above it, addresses back at a full budget are forgotten; if that is not enough, the
/// failures of new addresses get 429 until some are.
pub const ADDRESSES_TRACKED_MAX: usize = 100_000;

/// Seconds an old key keeps working after `POST /v1/api_keys/{id}/rotate` when the request
/// names no `overlap_seconds`: a day, for every service holding it to take the new one.
pub const KEY_ROTATION_OVERLAP_SECONDS_DEFAULT: u64 = 86_400;

/// Longest overlap a rotation may give the old key: 30 days.
pub const KEY_ROTATION_OVERLAP_SECONDS_MAX: u64 = 30 * 86_400;

/// Latest `expires_at` a key may be given, in seconds from now: 10 years.
pub const KEY_LIFETIME_SECONDS_MAX: u64 = 10 * 365 * 86_400;

const _: () =
    assert!(0 < MERCHANT_RATE_PER_SECOND && MERCHANT_RATE_PER_SECOND <= PLATFORM_RATE_PER_SECOND);
const _: () = assert!(ADMIN_RATE_PER_SECOND <= KEY_RATE_PER_SECOND_MAX);
const _: () = assert!(PLATFORM_RATE_PER_SECOND <= KEY_RATE_PER_SECOND_MAX);
const _: () =
    assert!(KEY_RATE_PER_SECOND_MAX as u64 * KEY_BURST_PER_RATE as u64 <= KEY_BURST_MAX as u64);
const _: () = assert!(
    0 < ADDRESS_AUTH_FAILURES_PER_SECOND
        && ADDRESS_AUTH_FAILURES_PER_SECOND <= ADDRESS_AUTH_FAILURES_BURST
);
const _: () = assert!(KEY_ROTATION_OVERLAP_SECONDS_DEFAULT <= KEY_ROTATION_OVERLAP_SECONDS_MAX);

/// How often the webhook deliverer reads the engine for new events (one read for every
/// endpoint): the delay an event may wait before its delivery starts, beside a group commit.
pub const WEBHOOK_DISPATCH_MS: u64 = 25;

/// Ledger transfers one look of the deliverer reads at most (each makes at most a few events).
pub const WEBHOOK_SCAN_TRANSFERS_MAX: usize = 8_192;

/// Events an endpoint has read ahead at most; beyond it the deliverer reads no more for it
/// until it catches up (its backlog stays in the ledger, not in memory).
pub const WEBHOOK_QUEUE_MAX: usize = 4_096;

/// Deliveries to one endpoint at once: a receiver that takes 200 ms an event still takes 80
/// events a second. A failure holds the endpoint's later events until it is retried.
pub const WEBHOOK_IN_FLIGHT_MAX: usize = 16;

/// How often what each endpoint was delivered is written through the engine. After a crash
/// at most this much is delivered again.
pub const WEBHOOK_POSITIONS_MS: u64 = 200;

/// Time an endpoint has to answer a delivery (and to accept its connection).
pub const WEBHOOK_TIMEOUT_MS: u64 = 15_000;

/// Bytes of an endpoint's answer read (and thrown away) at most.
pub const WEBHOOK_RESPONSE_BYTES_MAX: usize = 64 << 10;

/// Seconds waited before each attempt of an event: the Standard Webhooks schedule (at once,
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). When the last attempt fails, the endpoint is
/// disabled (`failing`), about 28 hours after the first.
pub const WEBHOOK_RETRY_SCHEDULE_S: [u64; 8] = [0, 5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// Longest wait a `Retry-After` of an endpoint's 429 or 503 is honoured for.
pub const WEBHOOK_RETRY_AFTER_MAX_S: u64 = 36_000;

/// Attempts per endpoint kept for `GET /v1/webhook_endpoints/{id}/attempts` (in memory).
pub const WEBHOOK_ATTEMPTS_KEPT: usize = 100;

/// Longest endpoint description.
pub const WEBHOOK_DESCRIPTION_BYTES_MAX: usize = 1_024;

/// Seconds an old signing secret keeps signing after a rotation, by default and at most.
pub const WEBHOOK_OVERLAP_SECONDS_DEFAULT: u64 = 86_400;
pub const WEBHOOK_OVERLAP_SECONDS_MAX: u64 = 604_800;

/// Ledger transfers one page of `GET /v1/events` (a list of webhook events) reads at most on
/// the engine's thread; a page that stops there says `has_more`.
pub const WEBHOOK_LIST_SCAN_TRANSFERS_MAX: usize = 262_144;

/// Events one replay request delivers again at most.
pub const WEBHOOK_REPLAY_EVENTS_MAX: usize = 10_000;

const _: () = assert!(WEBHOOK_RETRY_SCHEDULE_S[0] == 0);
