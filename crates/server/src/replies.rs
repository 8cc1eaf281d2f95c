//! The shapes of the success replies, for the OpenAPI document.
//!
//! Most replies are built as `serde_json::Value`s by their handlers; these types only describe
//! them. Every object here refuses properties it does not list (`additionalProperties: false`),
//! so a reply that gains, loses or retypes a field no longer matches its schema, and the
//! schema-driven fuzz run of CI (which validates every reply against its schema) fails. The
//! replies already written through typed structs (a payment, a refund) carry their own schema.

// Nothing constructs these types: the derive reads them.
#![allow(dead_code)]

use utoipa::ToSchema;

use crate::wire::CurrencyCode;

/// A user, rider or bank channel.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// `usr_1`, `rdr_1` or `chn_1`.
    #[schema(pattern = "^(usr|rdr|chn)_[1-9][0-9]*$")]
    id: String,
    /// `user`, `rider` or `channel`.
    #[schema(pattern = "^(user|rider|channel)$")]
    object: String,
    currency: CurrencyCode,
}

/// A merchant.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Merchant {
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^merchant$")]
    object: String,
    currency: CurrencyCode,
    /// The platform's commission on food amounts, in basis points.
    commission_bps: u32,
    /// The bank channel the merchant is paid out through.
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
    channel: String,
}

/// A top-up or a withdrawal just started: pending until the bank answers.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    #[schema(pattern = "^(top|wdr)_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^(topup|withdrawal)$")]
    object: String,
    #[schema(pattern = "^pending$")]
    status: String,
    #[schema(pattern = "^usr_[1-9][0-9]*$")]
    user: String,
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
    channel: String,
    amount: u64,
}

/// A top-up or a withdrawal after the bank's answer.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldAnswered {
    #[schema(pattern = "^(top|wdr)_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^(succeeded|failed)$")]
    status: String,
    amount: u64,
}

/// A page of payments, newest first.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentList {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<crate::api::payments::PaymentJson<'static>>,
    /// Whether a next page has payments.
    has_more: bool,
}

/// A coupon campaign.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    #[schema(pattern = "^cmp_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^campaign$")]
    object: String,
    currency: CurrencyCode,
    /// `platform`, or the merchant that funds it.
    #[schema(pattern = "^(platform|mer_[1-9][0-9]*)$")]
    funder: String,
    budget: u64,
    /// What is left of the budget (on reads).
    #[schema(required = false)]
    left: u64,
    spent: u64,
    amount_off: u64,
    min_order: u64,
    valid_from: u64,
    valid_until: u64,
    per_user_limit: u32,
}

/// A coupon given to a user.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    #[schema(pattern = "^cpn_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^coupon$")]
    object: String,
    #[schema(pattern = "^cmp_[1-9][0-9]*$")]
    campaign: String,
    #[schema(pattern = "^usr_[1-9][0-9]*$")]
    user: String,
}

/// A payout to a merchant's bank.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Payout {
    #[schema(pattern = "^po_[1-9a-f][0-9a-f]*$")]
    id: String,
    #[schema(pattern = "^payout$")]
    object: String,
    /// On creation.
    #[schema(required = false, pattern = "^mer_[1-9][0-9]*$")]
    merchant: String,
    amount: u64,
    /// `in_transit` on creation, then `paid` or `failed`.
    #[schema(pattern = "^(in_transit|paid|failed)$")]
    status: String,
}

/// A settlement run: one line per merchant.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementRun {
    #[schema(pattern = "^stl_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^settlement_run$")]
    object: String,
    lines: Vec<SettlementLine>,
}

/// A merchant's figures in a settlement run and what it was paid out.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementLine {
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: String,
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
    channel: String,
    currency: CurrencyCode,
    /// Null when nothing was paid out.
    #[schema(pattern = "^po_[1-9a-f][0-9a-f]*$")]
    payout: Option<String>,
    payments: u64,
    gross: u64,
    refunds: u64,
    commission: u64,
    commission_returned: u64,
    discounts: u64,
    net: u64,
}

/// An account's balance. Amounts are decimal strings (a ledger amount is a u128).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Balance {
    #[schema(pattern = "^balance$")]
    object: String,
    /// The party whose account it is.
    #[schema(pattern = "^(usr|mer|rdr|chn|cmp)_[1-9][0-9]*$")]
    account: String,
    /// `wallet`, `merchant`, `rider`, `channel` or `campaign_budget`.
    #[schema(pattern = "^(wallet|merchant|rider|channel|campaign_budget)$")]
    kind: String,
    currency: CurrencyCode,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$")]
    available: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    pending_in: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    pending_out: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credits_posted: String,
}

/// A page of an account's entries, newest first.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<Entry>,
    has_more: bool,
}

/// One entry of an account: a ledger transfer seen from the account's side.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The transfer's id, a decimal string.
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    id: String,
    #[schema(pattern = "^(credit|debit)$")]
    direction: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    amount: String,
    /// What the transfer was (see docs/payments.md).
    code: u16,
    /// The operation (payment, refund, ...) that made it.
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    operation: String,
    flags: Vec<String>,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    timestamp: String,
}

/// The platform's own accounts, one row per currency.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformBalances {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<PlatformBalance>,
}

/// The platform's own accounts in one currency.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformBalance {
    #[schema(pattern = "^platform_balance$")]
    object: String,
    currency: CurrencyCode,
    /// Commission earned.
    platform_revenue: AccountTotals,
    /// Payouts sent to banks and not yet confirmed.
    payouts_in_transit: AccountTotals,
    /// What the platform's own coupon campaigns spent.
    platform_marketing: AccountTotals,
}

/// An account's totals, as decimal strings; `net` is credits less debits posted.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountTotals {
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debits_pending: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credits_pending: String,
    #[schema(pattern = "^(0|-?[1-9][0-9]*)$")]
    net: String,
}

/// A ledger account, as `POST /v1/ledger/accounts/lookup` finds it. 128-bit and 64-bit
/// numbers are decimal strings.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerAccount {
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    id: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debits_pending: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credits_pending: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credits_posted: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    user_data_128: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    user_data_64: String,
    user_data_32: u32,
    reserved: u32,
    ledger: u32,
    code: u16,
    flags: Vec<String>,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    timestamp: String,
}

/// A ledger transfer. 128-bit and 64-bit numbers are decimal strings.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LedgerTransfer {
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    id: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    debit_account_id: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    credit_account_id: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    amount: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    pending_id: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    user_data_128: String,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    user_data_64: String,
    user_data_32: u32,
    timeout: u32,
    ledger: u32,
    code: u16,
    flags: Vec<String>,
    #[schema(pattern = "^(0|[1-9][0-9]*)$")]
    timestamp: String,
}

/// The reply of `POST /v1/batch`: one item per operation, in order.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    #[schema(pattern = "^batch$")]
    object: String,
    results: Vec<BatchItem>,
}

/// One operation's outcome in a batch: its result or its error.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum BatchItem {
    Result(BatchResult),
    Error(BatchError),
}

/// An operation that succeeded.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    result: BatchObject,
}

/// A payment or a refund.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum BatchObject {
    Payment(crate::api::payments::PaymentJson<'static>),
    Refund(crate::api::refunds::RefundJson),
}

/// An operation that failed, with the status it would have had alone.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchError {
    error: BatchErrorObject,
}

/// The API's error object, with the HTTP status of the operation.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchErrorObject {
    code: String,
    message: String,
    param: Option<String>,
    status: u16,
    #[serde(rename = "type")]
    kind: String,
}

/// An API key as the API shows it: never the key itself.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    #[schema(pattern = "^api_key$")]
    object: String,
    #[schema(pattern = "^key_[0-9a-f]{20}$")]
    id: String,
    #[schema(pattern = "^(admin|platform|merchant)$")]
    role: String,
    /// The merchant of a merchant key; null otherwise.
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    #[schema(pattern = "^(active|expired|revoked)$")]
    status: String,
    /// Seconds since the Unix epoch, as are the other times.
    created_at: u64,
    /// Kept by the node that answers, since it started.
    last_used_at: Option<u64>,
    expires_at: Option<u64>,
    revoked_at: Option<u64>,
    rate_per_second: u32,
    burst: u32,
}

/// A key just made: the key object and the key itself, shown only in this reply.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreated {
    #[schema(pattern = "^api_key$")]
    object: String,
    #[schema(pattern = "^key_[0-9a-f]{20}$")]
    id: String,
    #[schema(pattern = "^(admin|platform|merchant)$")]
    role: String,
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    #[schema(pattern = "^(active|expired|revoked)$")]
    status: String,
    created_at: u64,
    last_used_at: Option<u64>,
    expires_at: Option<u64>,
    revoked_at: Option<u64>,
    rate_per_second: u32,
    burst: u32,
    /// The key: `Authorization: Bearer <key>`.
    key: String,
    /// On a rotation: the key it replaces, which stops at its `expires_at`.
    #[schema(required = false)]
    rotated: ApiKey,
}

/// A page of API keys by id.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyList {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<ApiKey>,
    has_more: bool,
}

/// A channel's account at its bank, which its statements name.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankAccount {
    #[schema(pattern = "^bank_account$")]
    object: String,
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
    channel: String,
    /// Without spaces, in capitals; null when none was set.
    account: Option<String>,
}

/// A webhook endpoint.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    #[schema(pattern = "^we_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^webhook_endpoint$")]
    object: String,
    url: String,
    /// Event types, or `["*"]`.
    enabled_events: Vec<String>,
    description: String,
    /// The merchant it is for; `null` for a platform endpoint.
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    #[schema(pattern = "^(enabled|disabled)$")]
    status: String,
    #[schema(pattern = "^(requested|gone|failing)$")]
    disabled_reason: Option<String>,
    /// Unix seconds.
    created: u64,
    /// The sequence number of the last event delivered in order (0: none yet).
    delivered_sequence: u64,
}

/// A webhook endpoint with its signing secret (creation and rotation only).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointCreated {
    #[schema(pattern = "^we_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^webhook_endpoint$")]
    object: String,
    url: String,
    enabled_events: Vec<String>,
    description: String,
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    #[schema(pattern = "^(enabled|disabled)$")]
    status: String,
    #[schema(pattern = "^(requested|gone|failing)$")]
    disabled_reason: Option<String>,
    created: u64,
    delivered_sequence: u64,
    /// `whsec_` and the base64 of the key: shown only here.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/=]+$")]
    secret: String,
}

/// The webhook endpoints a key may see.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointList {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<WebhookEndpoint>,
}

/// A deleted object.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Deleted {
    id: String,
    object: String,
    deleted: bool,
}

/// One delivery attempt.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAttempt {
    #[schema(pattern = "^webhook_attempt$")]
    object: String,
    #[schema(pattern = "^evt_[1-9][0-9]*$")]
    event: String,
    /// `null` for a replay.
    sequence: Option<u64>,
    /// Unix seconds.
    attempted_at: u64,
    #[schema(pattern = "^(succeeded|failed)$")]
    status: String,
    /// The endpoint's HTTP status, if it answered.
    response_status: Option<u16>,
    latency_ms: u64,
    /// Why it failed without an answer (a connection error, a timeout).
    error: Option<String>,
    /// Unix seconds of this event's next attempt, when it failed.
    next_attempt_at: Option<u64>,
}

/// The latest attempts at an endpoint.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAttemptList {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<WebhookAttempt>,
}

/// A replay queued.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookReplay {
    #[schema(pattern = "^webhook_replay$")]
    object: String,
    /// Events queued to be delivered again.
    events: u64,
}

/// The object an event is about.
#[derive(ToSchema)]
pub struct EventData {
    /// A payment, refund, top-up, withdrawal, payout or settlement run, as the API writes it.
    object: serde_json::Value,
}

/// An event.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    #[schema(pattern = "^evt_[1-9][0-9]*$")]
    id: String,
    #[schema(pattern = "^event$")]
    object: String,
    #[schema(pattern = "^[a-z_]+\\.[a-z_]+$")]
    r#type: String,
    /// Unix seconds.
    created: u64,
    data: EventData,
}

/// A page of webhook events, oldest first.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventList {
    #[schema(pattern = "^list$")]
    object: String,
    data: Vec<Event>,
    /// Whether more events follow: ask again with `starting_after` the last one's id.
    has_more: bool,
}
