//! The payment resources under `/v1`: parties, top-ups and withdrawals, payments, refunds,
//! campaigns and coupons, payouts and settlement runs, balances and statements, API keys.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use huifu_ledger::{AccountFilter, Transfer};
use huifu_payments::chart::{self, Kind};
use huifu_payments::{
    CouponRule, Done, Funder, Op, Outcome, Payment, PaymentStatus, PaymentsMachine, SettlementLine,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, Role};
use crate::constants::{BATCH_OPERATIONS_MAX, LIST_LIMIT_MAX};
use crate::error::ApiError;
use crate::ledger::PageQuery;
use crate::wire::{self, parse_body, parse_currency, parse_id, Id, Ids, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/channels", post(create_channel))
        .route("/v1/users", post(create_user))
        .route("/v1/merchants", post(create_merchant))
        .route("/v1/riders", post(create_rider))
        .route("/v1/topups", post(create_topup))
        .route("/v1/withdrawals", post(create_withdrawal))
        .route("/v1/topups/{id}/{answer}", post(bank_answer_topup))
        .route("/v1/withdrawals/{id}/{answer}", post(bank_answer_withdrawal))
        .route("/v1/payments", post(create_payment).get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/{action}", post(resolve_payment))
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(get_refund))
        .route("/v1/campaigns", post(create_campaign))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/coupons", post(create_coupon))
        .route("/v1/payouts", post(create_payout))
        .route("/v1/payouts/{id}/{answer}", post(payout_answer))
        .route("/v1/settlement_runs", post(create_settlement))
        .route("/v1/settlement_runs/{id}", get(get_settlement))
        .route("/v1/settlement_runs/{id}/payouts.csv", get(settlement_csv))
        .route("/v1/balances/{object}", get(get_balance))
        .route("/v1/statements/{object}", get(get_statement))
        .route("/v1/batch", post(batch))
        .route("/v1/api_keys", post(create_api_key))
}

// Access.

fn operator(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = state.keys.authenticate(headers)?;
    if caller.role.is_operator() {
        Ok(caller)
    } else {
        Err(ApiError::forbidden())
    }
}

/// May `caller` see or act on merchant `merchant`'s objects? A merchant sees only its own;
/// another merchant's objects are answered as missing, not forbidden.
fn may_see(caller: &Caller, merchant: u64, what: &str) -> Result<(), ApiError> {
    match caller.role {
        Role::Merchant(own) if own != merchant => Err(ApiError::not_found(what)),
        _ => Ok(()),
    }
}

/// The key of an `Op::Keyed`: the client's `Idempotency-Key`, scoped to its API key and the
/// route, or a random one when the request has none (then a retry is a new operation).
fn idempotency_key(caller: &Caller, headers: &HeaderMap, route: &str) -> Result<u128, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(rand::random()) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= 255).ok_or_else(|| {
        ApiError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible characters",
            Some("Idempotency-Key"),
        )
    })?;
    Ok(scoped_key(caller, route, key))
}

fn scoped_key(caller: &Caller, route: &str, key: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(caller.key_hash);
    h.update(route.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"))
}

/// Applies `op` under the request's idempotency key; the id it was given and its outcome.
async fn keyed(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    route: &str,
    op: Op,
) -> Result<(u64, Done), ApiError> {
    let key = idempotency_key(caller, headers, route)?;
    match state.execute(Op::Keyed { key, op: Box::new(op) }).await? {
        Done::Allocated { id, outcome } => Ok((id, (*outcome)?)),
        other => Err(state.unexpected(other)),
    }
}

fn created(body: Value) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

fn amount_field(value: u64, param: &str) -> Result<u64, ApiError> {
    if value == 0 || value > huifu_payments::constants::AMOUNT_MAX {
        return Err(ApiError::invalid(
            "invalid_amount",
            format!("{param} must be between 1 and {}", huifu_payments::constants::AMOUNT_MAX),
            Some(param),
        ));
    }
    Ok(value)
}

// Parties.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CurrencyBody {
    #[schema(value_type = crate::wire::CurrencyCode)]
    currency: String,
}

async fn create_party(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    route: &str,
    prefix: Prefix,
    make: fn(u32) -> Op,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: CurrencyBody = parse_body(&body)?;
    let currency = parse_currency(&b.currency)?;
    let (id, _) = keyed(&state, &caller, &headers, route, make(currency)).await?;
    let object = match prefix {
        Prefix::Channel => "channel",
        Prefix::User => "user",
        _ => "rider",
    };
    Ok(created(json!({"id": prefix.id(id), "object": object, "currency": b.currency})))
}

#[utoipa::path(
    post,
    path = "/v1/channels",
    tag = "parties",
    summary = "Create a bank channel (operators)",
    request_body = CurrencyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The channel: `{id, object, currency}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_channel(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_party(state, headers, body, "channels", Prefix::Channel, |currency| Op::CreateChannel {
        id: 0,
        currency,
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "parties",
    summary = "Create a user and its wallet (operators)",
    request_body = CurrencyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The user: `{id, object, currency}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_party(state, headers, body, "users", Prefix::User, |currency| Op::CreateUser {
        id: 0,
        currency,
    })
    .await
}

#[utoipa::path(
    post,
    path = "/v1/riders",
    tag = "parties",
    summary = "Create a rider (operators)",
    request_body = CurrencyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The rider: `{id, object, currency}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_rider(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_party(state, headers, body, "riders", Prefix::Rider, |currency| Op::CreateRider {
        id: 0,
        currency,
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MerchantBody {
    #[schema(value_type = crate::wire::CurrencyCode)]
    currency: String,
    commission_bps: u32,
    channel: String,
}

#[utoipa::path(
    post,
    path = "/v1/merchants",
    tag = "parties",
    summary = "Create a merchant (operators)",
    request_body = MerchantBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The merchant: `{id, object, currency, commission_bps, channel}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_merchant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: MerchantBody = parse_body(&body)?;
    let currency = parse_currency(&b.currency)?;
    let channel = parse_id(Prefix::Channel, &b.channel, "channel")?;
    if b.commission_bps > 10_000 {
        return Err(ApiError::invalid(
            "invalid_commission",
            "commission_bps must be at most 10000",
            Some("commission_bps"),
        ));
    }
    let op = Op::CreateMerchant { id: 0, currency, commission_bps: b.commission_bps, channel };
    let (id, _) = keyed(&state, &caller, &headers, "merchants", op).await?;
    Ok(created(json!({
        "id": Prefix::Merchant.id(id),
        "object": "merchant",
        "currency": b.currency,
        "commission_bps": b.commission_bps,
        "channel": b.channel,
    })))
}

// Top-ups and withdrawals.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    user: String,
    channel: String,
    amount: u64,
    #[serde(default)]
    timeout_seconds: u32,
}

async fn create_hold(
    state: AppState,
    headers: HeaderMap,
    body: Bytes,
    topup: bool,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: HoldBody = parse_body(&body)?;
    let user = parse_id(Prefix::User, &b.user, "user")?;
    let channel = parse_id(Prefix::Channel, &b.channel, "channel")?;
    let amount = amount_field(b.amount, "amount")?;
    let (op, route, prefix) = if topup {
        (
            Op::TopUp { id: 0, user, channel, amount, timeout_s: b.timeout_seconds },
            "topups",
            Prefix::TopUp,
        )
    } else {
        (
            Op::Withdraw { id: 0, user, channel, amount, timeout_s: b.timeout_seconds },
            "withdrawals",
            Prefix::Withdrawal,
        )
    };
    let (id, _) = keyed(&state, &caller, &headers, route, op).await?;
    Ok(created(json!({
        "id": prefix.id(id),
        "object": if topup { "topup" } else { "withdrawal" },
        "status": "pending",
        "user": b.user,
        "channel": b.channel,
        "amount": amount,
    })))
}

#[utoipa::path(
    post,
    path = "/v1/topups",
    tag = "bank",
    summary = "Start a wallet top-up through a bank channel (operators)",
    request_body = HoldBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The pending top-up: `{id, object, status, user, channel, amount}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_topup(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_hold(state, headers, body, true).await
}

#[utoipa::path(
    post,
    path = "/v1/withdrawals",
    tag = "bank",
    summary = "Start a wallet withdrawal to a bank channel (operators)",
    request_body = HoldBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The pending withdrawal: `{id, object, status, user, channel, amount}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_withdrawal(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_hold(state, headers, body, false).await
}

fn answer_ok(answer: &str) -> Result<bool, ApiError> {
    match answer {
        "confirm" => Ok(true),
        "fail" => Ok(false),
        _ => Err(ApiError::not_found("action (use confirm or fail)")),
    }
}

async fn bank_answer(
    state: AppState,
    headers: HeaderMap,
    prefix: Prefix,
    id: String,
    answer: String,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let id = parse_id(prefix, &id, "id")?;
    let ok = answer_ok(&answer)?;
    let route = format!("{}/answer", prefix.text());
    let (_, done) = keyed(&state, &caller, &headers, &route, Op::BankResult { id, ok }).await?;
    let amount = match done {
        Done::Hold { amount } => amount,
        other => return Err(state.unexpected(other)),
    };
    Ok(created(json!({
        "id": prefix.id(id),
        "status": if ok { "succeeded" } else { "failed" },
        "amount": amount,
    })))
}

#[utoipa::path(
    post,
    path = "/v1/topups/{id}/{answer}",
    tag = "bank",
    summary = "Confirm or fail a pending top-up (operators)",
    params(("id" = String, Path, description = "The top-up id (`top_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, status, amount}`; status is `succeeded` or `failed`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn bank_answer_topup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, answer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    bank_answer(state, headers, Prefix::TopUp, id, answer).await
}

#[utoipa::path(
    post,
    path = "/v1/withdrawals/{id}/{answer}",
    tag = "bank",
    summary = "Confirm or fail a pending withdrawal (operators)",
    params(("id" = String, Path, description = "The withdrawal id (`wdr_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, status, amount}`; status is `succeeded` or `failed`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn bank_answer_withdrawal(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, answer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    bank_answer(state, headers, Prefix::Withdrawal, id, answer).await
}

// Payments and refunds.

// The ids are borrowed from the request body (they need no unescaping in practice): a batch
// holds a thousand payments. (A plain comment: a doc comment would become the schema's
// description in the OpenAPI document.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PaymentBody<'a> {
    #[serde(borrow)]
    #[schema(value_type = String)]
    user: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String)]
    merchant: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String)]
    rider: Cow<'a, str>,
    food_amount: u64,
    #[serde(default)]
    delivery_fee: u64,
    /// Optional: the payment's currency is its user's; when given, it must match.
    #[serde(default)]
    #[schema(value_type = Option<crate::wire::CurrencyCode>)]
    currency: Option<String>,
    #[serde(default)]
    coupon: Option<String>,
    /// Pay through this bank channel instead of the wallet.
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    timeout_seconds: u32,
    /// Only inside `POST /v1/batch`.
    #[serde(default)]
    idempotency_key: Option<String>,
}

struct PaymentView {
    id: u64,
    status: PaymentStatus,
    user: u64,
    merchant: u64,
    rider: u64,
    currency: u32,
    food: u64,
    delivery: u64,
    coupon: u64,
    channel: u64,
    legs: huifu_payments::money::Legs,
    refunded: u64,
    refunds: Vec<u64>,
}

/// A payment as the API writes it, serialized straight into the reply. The fields are in
/// alphabetical order, the order in which `serde_json::Value` objects (the other replies) are
/// written, so a payment reads the same wherever it appears.
#[derive(Serialize)]
struct PaymentJson<'a> {
    amount: u64,
    amount_refunded: u64,
    channel: Option<Id>,
    commission: u64,
    coupon: Option<Id>,
    currency: wire::Currency,
    delivery_fee: u64,
    discount: u64,
    food_amount: u64,
    id: Id,
    merchant: Id,
    merchant_amount: u64,
    object: &'static str,
    refunds: Ids<'a>,
    rider: Id,
    status: &'static str,
    user: Id,
}

/// About the size of one payment in JSON, to size reply buffers.
const PAYMENT_JSON_BYTES: usize = 512;

impl PaymentView {
    fn json(&self) -> PaymentJson<'_> {
        PaymentJson {
            amount: self.legs.total(),
            amount_refunded: self.refunded,
            channel: (self.channel != 0).then_some(Id(Prefix::Channel, self.channel)),
            commission: self.legs.platform,
            coupon: (self.coupon != 0).then_some(Id(Prefix::Coupon, self.coupon)),
            currency: wire::Currency(self.currency),
            delivery_fee: self.delivery,
            discount: self.legs.coupon,
            food_amount: self.food,
            id: Id(Prefix::Payment, self.id),
            merchant: Id(Prefix::Merchant, self.merchant),
            merchant_amount: self.legs.merchant,
            object: "payment",
            refunds: Ids(Prefix::Refund, &self.refunds),
            rider: Id(Prefix::Rider, self.rider),
            status: self.status.name(),
            user: Id(Prefix::User, self.user),
        }
    }
}

fn payment_json(p: &PaymentView) -> Value {
    serde_json::to_value(p.json()).unwrap_or(Value::Null)
}

fn view(id: u64, p: &Payment, status: PaymentStatus) -> PaymentView {
    PaymentView {
        id,
        status,
        user: p.user,
        merchant: p.merchant,
        rider: p.rider,
        currency: p.currency,
        food: p.food,
        delivery: p.delivery,
        coupon: p.coupon,
        channel: p.channel,
        legs: p.legs,
        refunded: p.refunded.total(),
        refunds: p.refunds.clone(),
    }
}

/// The operation of a payment body, and the currency it names (0 when none).
fn payment_op(b: &PaymentBody<'_>) -> Result<(Op, u32), ApiError> {
    let user = parse_id(Prefix::User, &b.user, "user")?;
    let merchant = parse_id(Prefix::Merchant, &b.merchant, "merchant")?;
    let rider = parse_id(Prefix::Rider, &b.rider, "rider")?;
    let currency = b.currency.as_deref().map(parse_currency).transpose()?.unwrap_or(0);
    let food = amount_field(b.food_amount, "food_amount")?;
    let coupon = b.coupon.as_deref().map(|c| parse_id(Prefix::Coupon, c, "coupon")).transpose()?;
    let channel =
        b.channel.as_deref().map(|c| parse_id(Prefix::Channel, c, "channel")).transpose()?;
    let op = Op::Pay {
        id: 0,
        user,
        merchant,
        rider,
        food,
        delivery: b.delivery_fee,
        coupon: coupon.unwrap_or(0),
        channel: channel.unwrap_or(0),
        timeout_s: b.timeout_seconds,
    };
    Ok((op, currency))
}

fn payment_result(id: u64, op: &Op, done: Done) -> Result<PaymentView, ApiError> {
    let (
        Op::Pay { user, merchant, rider, food, delivery, coupon, channel, .. },
        Done::Payment { status, legs, currency, .. },
    ) = (op, done)
    else {
        return Err(ApiError::internal());
    };
    Ok(PaymentView {
        id,
        status,
        user: *user,
        merchant: *merchant,
        rider: *rider,
        currency,
        food: *food,
        delivery: *delivery,
        coupon: *coupon,
        channel: *channel,
        legs,
        refunded: 0,
        refunds: Vec::new(),
    })
}

#[utoipa::path(
    post,
    path = "/v1/payments",
    tag = "payments",
    summary = "Pay a merchant and a rider from a wallet or a bank channel (operators)",
    request_body = PaymentBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The payment: `{id, object, status, amount, currency, food_amount, delivery_fee, discount, commission, merchant_amount, user, merchant, rider, coupon, channel, amount_refunded, refunds}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_payment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: PaymentBody = parse_body(&body)?;
    if b.idempotency_key.is_some() {
        return Err(ApiError::invalid(
            "invalid_field",
            "idempotency_key belongs in the Idempotency-Key header here",
            Some("idempotency_key"),
        ));
    }
    let (op, currency) = payment_op(&b)?;
    check_currencies(&state, &[(&op, currency)]).await?;
    let (id, done) = keyed(&state, &caller, &headers, "payments", op.clone()).await?;
    Ok(wire::json_ok(&payment_result(id, &op, done)?.json(), PAYMENT_JSON_BYTES))
}

/// Payments that name a currency must name their user's (one read for all of them).
async fn check_currencies(state: &AppState, items: &[(&Op, u32)]) -> Result<(), ApiError> {
    let named: Vec<(u64, u32)> = items
        .iter()
        .filter(|(_, c)| *c != 0)
        .filter_map(|(op, c)| match op {
            Op::Pay { user, .. } => Some((*user, *c)),
            _ => None,
        })
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    let wrong = state
        .read(move |m| {
            named.iter().any(|(user, c)| m.user_currency(*user).is_some_and(|uc| uc != *c))
        })
        .await?;
    if wrong {
        return Err(ApiError::invalid(
            "currency_mismatch",
            "the payment's currency is its user's wallet currency",
            Some("currency"),
        ));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    tag = "payments",
    summary = "A payment",
    params(("id" = String, Path, description = "The payment id (`pay_1`).")),
    responses(
        (status = 200, body = Object, description = "The payment: `{id, object, status, amount, currency, food_amount, delivery_fee, discount, commission, merchant_amount, user, merchant, rider, coupon, channel, amount_refunded, refunds}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_payment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let id = parse_id(Prefix::Payment, &id, "id")?;
    let found = state.read(move |m| m.payment(id).map(|(p, status)| view(id, &p, status))).await?;
    let p = found.ok_or_else(|| ApiError::not_found("payment"))?;
    may_see(&caller, p.merchant, "payment")?;
    Ok(wire::json_ok(&p.json(), PAYMENT_JSON_BYTES))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// List this merchant's payments (`mer_1`); a merchant key lists its own by default.
    merchant: Option<String>,
    /// List this user's payments (`usr_1`); operators only.
    user: Option<String>,
    /// Payments per page: 1 to 1,000 (100 by default).
    limit: Option<u32>,
    /// The id of the last payment of the previous page.
    starting_after: Option<String>,
}

/// A merchant's or a user's payments, newest first (those of one batch by id, highest first),
/// with cursor paging.
#[utoipa::path(
    get,
    path = "/v1/payments",
    tag = "payments",
    summary = "A merchant's or a user's payments, newest first",
    params(ListQuery),
    responses(
        (status = 200, body = Object, description = "`{object: list, data: [payment], has_more}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn list_payments(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let limit = crate::ledger::page_limit(q.limit)?.min(LIST_LIMIT_MAX) as usize;
    let (by_merchant, party) = match (&q.merchant, &q.user, caller.role) {
        (Some(m), None, _) => (true, parse_id(Prefix::Merchant, m, "merchant")?),
        (None, None, Role::Merchant(own)) => (true, own),
        (None, Some(u), role) if role.is_operator() => (false, parse_id(Prefix::User, u, "user")?),
        (None, Some(_), _) => return Err(ApiError::forbidden()),
        _ => {
            return Err(ApiError::invalid(
                "invalid_filter",
                "list by exactly one of `merchant` or `user`",
                Some("merchant"),
            ))
        }
    };
    if by_merchant {
        may_see(&caller, party, "merchant")?;
    }
    let after = q
        .starting_after
        .as_deref()
        .map(|p| parse_id(Prefix::Payment, p, "starting_after"))
        .transpose()?;
    let page = state
        .read(move |m| {
            let ids = m.payments_page(by_merchant, party, after, limit + 1)?;
            Some(
                ids.iter()
                    .filter_map(|&id| m.payment(id).map(|(p, status)| view(id, &p, status)))
                    .collect::<Vec<_>>(),
            )
        })
        .await?
        .ok_or_else(|| ApiError::not_found("payment to start after"))?;
    let has_more = page.len() > limit;
    Ok(created(json!({
        "object": "list",
        "data": page.iter().take(limit).map(payment_json).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/{action}",
    tag = "payments",
    summary = "Capture or release a bank-channel payment (operators)",
    params(("id" = String, Path, description = "The payment id (`pay_1`)."), ("action" = String, Path, pattern = "^(capture|release)$", description = "`capture` or `release`."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The payment after the action."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn resolve_payment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let id = parse_id(Prefix::Payment, &id, "id")?;
    let op = match action.as_str() {
        "capture" => Op::Capture { id },
        "release" => Op::Release { id },
        _ => return Err(ApiError::not_found("action (use capture or release)")),
    };
    keyed(&state, &caller, &headers, "payments/resolve", op).await?;
    let found = state.read(move |m| m.payment(id).map(|(p, status)| view(id, &p, status))).await?;
    let p = found.ok_or_else(|| ApiError::not_found("payment"))?;
    Ok(wire::json_ok(&p.json(), PAYMENT_JSON_BYTES))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefundBody {
    payment: String,
    amount: u64,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/refunds",
    tag = "payments",
    summary = "Refund part or all of a payment",
    request_body = RefundBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The refund: `{id, object, payment, amount, merchant_amount, delivery_fee, commission, discount, completes_refund, status}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: RefundBody = parse_body(&body)?;
    let payment = parse_id(Prefix::Payment, &b.payment, "payment")?;
    let amount = amount_field(b.amount, "amount")?;
    if let Role::Merchant(_) = caller.role {
        let merchant = state.read(move |m| m.payment(payment).map(|(p, _)| p.merchant)).await?;
        may_see(&caller, merchant.ok_or_else(|| ApiError::not_found("payment"))?, "payment")?;
    }
    let op = Op::Refund { id: 0, payment, amount };
    let (id, done) = keyed(&state, &caller, &headers, "refunds", op).await?;
    let Done::Refund { amount, legs, full } = done else { return Err(state.unexpected(done)) };
    Ok(wire::json_ok(&refund_json(id, payment, amount, &legs, full), PAYMENT_JSON_BYTES))
}

/// A refund as the API writes it; fields in alphabetical order, as in [`PaymentJson`].
#[derive(Serialize)]
struct RefundJson {
    amount: u64,
    commission: u64,
    completes_refund: bool,
    delivery_fee: u64,
    discount: u64,
    id: Id,
    merchant_amount: u64,
    object: &'static str,
    payment: Id,
    status: &'static str,
}

fn refund_json(
    id: u64,
    payment: u64,
    amount: u64,
    legs: &huifu_payments::money::Legs,
    full: bool,
) -> RefundJson {
    RefundJson {
        amount,
        commission: legs.platform,
        completes_refund: full,
        delivery_fee: legs.rider,
        discount: legs.coupon,
        id: Id(Prefix::Refund, id),
        merchant_amount: legs.merchant,
        object: "refund",
        payment: Id(Prefix::Payment, payment),
        status: "succeeded",
    }
}

#[utoipa::path(
    get,
    path = "/v1/refunds/{id}",
    tag = "payments",
    summary = "A refund",
    params(("id" = String, Path, description = "The refund id (`ref_1`).")),
    responses(
        (status = 200, body = Object, description = "`{id, object, payment, amount, status}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let id = parse_id(Prefix::Refund, &id, "id")?;
    let found = state
        .read(move |m| {
            let (payment, amount) = m.refund_of(id)?;
            let (p, _) = m.payment(payment)?;
            Some((payment, amount, p.merchant))
        })
        .await?;
    let (payment, amount, merchant) = found.ok_or_else(|| ApiError::not_found("refund"))?;
    may_see(&caller, merchant, "refund")?;
    Ok(created(json!({
        "id": Prefix::Refund.id(id),
        "object": "refund",
        "payment": Prefix::Payment.id(payment),
        "amount": amount,
        "status": "succeeded",
    })))
}

// Campaigns and coupons.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CampaignBody {
    #[schema(value_type = crate::wire::CurrencyCode)]
    currency: String,
    /// `platform`, or the merchant id that funds it.
    funder: String,
    budget: u64,
    amount_off: u64,
    #[serde(default)]
    min_order: u64,
    /// Nanoseconds since the Unix epoch; 0 for now.
    #[serde(default)]
    valid_from: u64,
    /// Nanoseconds since the Unix epoch; 0 for no end.
    #[serde(default)]
    valid_until: u64,
    #[serde(default)]
    per_user_limit: u32,
}

#[utoipa::path(
    post,
    path = "/v1/campaigns",
    tag = "coupons",
    summary = "Create a coupon campaign with its budget (operators)",
    request_body = CampaignBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "The campaign with its rule, budget and `spent`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_campaign(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: CampaignBody = parse_body(&body)?;
    let currency = parse_currency(&b.currency)?;
    let funder = if b.funder == "platform" {
        Funder::Platform
    } else {
        Funder::Merchant(parse_id(Prefix::Merchant, &b.funder, "funder")?)
    };
    let budget = amount_field(b.budget, "budget")?;
    let amount_off = amount_field(b.amount_off, "amount_off")?;
    let rule = CouponRule {
        amount_off,
        min_order: b.min_order,
        valid_from: b.valid_from,
        valid_until: b.valid_until,
        per_user_limit: b.per_user_limit,
    };
    let op = Op::CreateCampaign { id: 0, currency, funder, budget, rule };
    let (id, _) = keyed(&state, &caller, &headers, "campaigns", op).await?;
    Ok(created(json!({
        "id": Prefix::Campaign.id(id),
        "object": "campaign",
        "currency": b.currency,
        "funder": b.funder,
        "budget": budget,
        "spent": 0,
        "amount_off": amount_off,
        "min_order": b.min_order,
        "valid_from": b.valid_from,
        "valid_until": b.valid_until,
        "per_user_limit": b.per_user_limit,
    })))
}

#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}",
    tag = "coupons",
    summary = "A campaign and what is left of its budget",
    params(("id" = String, Path, description = "The campaign id (`cmp_1`).")),
    responses(
        (status = 200, body = Object, description = "The campaign with its rule, `budget`, `left` and `spent`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_campaign(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let id = parse_id(Prefix::Campaign, &id, "id")?;
    let found = state.read(move |m| m.campaign(id).map(|(c, left)| (c.clone(), left))).await?;
    let (c, left) = found.ok_or_else(|| ApiError::not_found("campaign"))?;
    if let Role::Merchant(own) = caller.role {
        if c.funder != Funder::Merchant(own) {
            return Err(ApiError::not_found("campaign"));
        }
    }
    Ok(created(json!({
        "id": Prefix::Campaign.id(id),
        "object": "campaign",
        "currency": wire::currency_code(c.currency),
        "funder": match c.funder {
            Funder::Platform => "platform".to_owned(),
            Funder::Merchant(m) => Prefix::Merchant.id(m),
        },
        "budget": c.budget,
        "left": left,
        "spent": c.budget.saturating_sub(left),
        "amount_off": c.rule.amount_off,
        "min_order": c.rule.min_order,
        "valid_from": c.rule.valid_from,
        "valid_until": c.rule.valid_until,
        "per_user_limit": c.rule.per_user_limit,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CouponBody {
    campaign: String,
    user: String,
}

#[utoipa::path(
    post,
    path = "/v1/coupons",
    tag = "coupons",
    summary = "Grant a user a coupon of a campaign (operators)",
    request_body = CouponBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, object, campaign, user}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_coupon(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: CouponBody = parse_body(&body)?;
    let campaign = parse_id(Prefix::Campaign, &b.campaign, "campaign")?;
    let user = parse_id(Prefix::User, &b.user, "user")?;
    let (id, _) =
        keyed(&state, &caller, &headers, "coupons", Op::GrantCoupon { id: 0, campaign, user })
            .await?;
    Ok(created(json!({
        "id": Prefix::Coupon.id(id),
        "object": "coupon",
        "campaign": b.campaign,
        "user": b.user,
    })))
}

// Payouts and settlement.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    merchant: String,
    /// All that is available when absent.
    #[serde(default)]
    amount: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/v1/payouts",
    tag = "settlement",
    summary = "Pay out a merchant's available balance to its bank channel",
    request_body = PayoutBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, object, merchant, amount, status: in_transit}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_payout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: PayoutBody = parse_body(&body)?;
    let merchant = parse_id(Prefix::Merchant, &b.merchant, "merchant")?;
    may_see(&caller, merchant, "merchant")?;
    let amount = b.amount.map(|a| amount_field(a, "amount")).transpose()?.unwrap_or(0);
    let op = Op::Payout { id: 0, merchant, amount };
    let (_, done) = keyed(&state, &caller, &headers, "payouts", op).await?;
    let Done::Payout { payout, amount } = done else { return Err(state.unexpected(done)) };
    Ok(created(json!({
        "id": wire::payout_id(payout),
        "object": "payout",
        "merchant": b.merchant,
        "amount": amount,
        "status": "in_transit",
    })))
}

#[utoipa::path(
    post,
    path = "/v1/payouts/{id}/{answer}",
    tag = "settlement",
    summary = "Confirm or fail a payout in transit (operators)",
    params(("id" = String, Path, description = "The payout id (`po_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, object, amount, status}`; status is `paid` or `failed`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn payout_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, answer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let payout = wire::parse_payout_id(&id, "id")?;
    let ok = answer_ok(&answer)?;
    let (_, done) =
        keyed(&state, &caller, &headers, "payouts/answer", Op::PayoutResult { payout, ok }).await?;
    let Done::Payout { amount, .. } = done else { return Err(state.unexpected(done)) };
    Ok(created(json!({
        "id": id,
        "object": "payout",
        "amount": amount,
        "status": if ok { "paid" } else { "failed" },
    })))
}

fn line_json(l: &SettlementLine) -> Value {
    json!({
        "merchant": Prefix::Merchant.id(l.merchant),
        "channel": Prefix::Channel.id(l.channel),
        "currency": wire::currency_code(l.currency),
        "payout": (l.payout != 0).then(|| wire::payout_id(l.payout)),
        "payments": l.statement.payments,
        "gross": l.statement.gross,
        "refunds": l.statement.refunds,
        "commission": l.statement.commission,
        "commission_returned": l.statement.commission_returned,
        "discounts": l.statement.discounts,
        "net": l.net,
    })
}

#[utoipa::path(
    post,
    path = "/v1/settlement_runs",
    tag = "settlement",
    summary = "Settle every merchant: statements and payouts (operators)",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = Object, description = "`{id, object: settlement_run, lines}`, one line per merchant with its payments, gross, refunds, commission, discounts, net and payout."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_settlement(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let (id, done) =
        keyed(&state, &caller, &headers, "settlement_runs", Op::SettlementRun { id: 0 }).await?;
    let Done::Settlement { lines } = done else { return Err(state.unexpected(done)) };
    Ok(created(json!({
        "id": Prefix::Settlement.id(id),
        "object": "settlement_run",
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
    })))
}

async fn settlement_lines(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(u64, Vec<SettlementLine>), ApiError> {
    let id = parse_id(Prefix::Settlement, id, "id")?;
    let lines = state.read(move |m| m.settlement(id).map(<[_]>::to_vec)).await?;
    let mut lines = lines.ok_or_else(|| ApiError::not_found("settlement run"))?;
    if let Role::Merchant(own) = caller.role {
        lines.retain(|l| l.merchant == own);
    }
    Ok((id, lines))
}

#[utoipa::path(
    get,
    path = "/v1/settlement_runs/{id}",
    tag = "settlement",
    summary = "A settlement run (a merchant sees only its own line)",
    params(("id" = String, Path, description = "The settlement run id (`stl_1`).")),
    responses(
        (status = 200, body = Object, description = "`{id, object: settlement_run, lines}`, one line per merchant with its payments, gross, refunds, commission, discounts, net and payout."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_settlement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let (id, lines) = settlement_lines(&state, &caller, &id).await?;
    Ok(created(json!({
        "id": Prefix::Settlement.id(id),
        "object": "settlement_run",
        "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
    })))
}

/// The payout file for the bank: one line per payout of the run.
#[utoipa::path(
    get,
    path = "/v1/settlement_runs/{id}/payouts.csv",
    tag = "settlement",
    summary = "The payout file of a settlement run for the bank",
    params(("id" = String, Path, description = "The settlement run id (`stl_1`).")),
    responses(
        (status = 200, body = String, content_type = "text/csv", description = "`settlement_run,payout,merchant,channel,currency,amount`, one line per payout."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn settlement_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let (id, lines) = settlement_lines(&state, &caller, &id).await?;
    let mut csv = String::from("settlement_run,payout,merchant,channel,currency,amount\n");
    for l in lines.iter().filter(|l| l.net > 0) {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            Prefix::Settlement.id(id),
            wire::payout_id(l.payout),
            Prefix::Merchant.id(l.merchant),
            Prefix::Channel.id(l.channel),
            wire::currency_code(l.currency),
            l.net
        ));
    }
    Ok(([("content-type", "text/csv")], csv).into_response())
}

// Balances and statements.

/// The ledger account behind an object id (`usr_1` → its wallet), if the party exists.
pub(crate) fn account_of(m: &PaymentsMachine, object: &str) -> Option<(u128, Kind, u64, u32)> {
    let (prefix, id) = object.split_once('_')?;
    let id: u64 = id.parse().ok()?;
    let kind = match prefix {
        "usr" => Kind::Wallet,
        "mer" => Kind::Merchant,
        "rdr" => Kind::Rider,
        "chn" => Kind::Channel,
        "cmp" => Kind::CampaignBudget,
        _ => return None,
    };
    let currency = match kind {
        Kind::Merchant => m.merchant(id)?.currency,
        Kind::CampaignBudget => m.campaign(id)?.0.currency,
        Kind::Wallet => m.user_currency(id)?,
        Kind::Rider => m.rider_currency(id)?,
        Kind::Channel => m.channel_currency(id)?,
        _ => return None,
    };
    Some((chart::account_id(kind, currency, id), kind, id, currency))
}

pub(crate) fn check_owner(caller: &Caller, kind: Kind, entity: u64) -> Result<(), ApiError> {
    match caller.role {
        Role::Merchant(own) if !(kind == Kind::Merchant && entity == own) => {
            Err(ApiError::not_found("account"))
        }
        _ => Ok(()),
    }
}

#[utoipa::path(
    get,
    path = "/v1/balances/{object}",
    tag = "balances",
    summary = "A party's balance",
    params(("object" = String, Path, description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id.")),
    responses(
        (status = 200, body = Object, description = "`{object: balance, account, kind, currency, available, pending_in, pending_out, debits_posted, credits_posted}`; amounts as decimal strings."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(object): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let o = object.clone();
    let found = state
        .read(move |m| {
            let (account, kind, entity, currency) = account_of(m, &o)?;
            Some((*m.ledger().lookup_account(account)?, kind, entity, currency))
        })
        .await?;
    let (a, kind, entity, currency) = found.ok_or_else(|| ApiError::not_found("account"))?;
    check_owner(&caller, kind, entity)?;
    // Credit-normal accounts (wallets, merchants, riders, budgets): available = what is owed to
    // the party less what is held for money going out.
    let available = a.credits_posted.saturating_sub(a.debits_posted + a.debits_pending);
    Ok(created(json!({
        "object": "balance",
        "account": object,
        "kind": kind.name(),
        "currency": wire::currency_code(currency),
        "available": available.to_string(),
        "pending_in": a.credits_pending.to_string(),
        "pending_out": a.debits_pending.to_string(),
        "debits_posted": a.debits_posted.to_string(),
        "credits_posted": a.credits_posted.to_string(),
    })))
}

pub(crate) fn entry_json(t: &Transfer, account: u128) -> Value {
    let credit = t.credit_account_id == account;
    json!({
        "id": t.id.to_string(),
        "direction": if credit { "credit" } else { "debit" },
        "amount": t.amount.to_string(),
        "code": t.code,
        "operation": t.user_data_64.to_string(),
        "flags": t.flags.names().collect::<Vec<_>>(),
        "timestamp": t.timestamp.to_string(),
    })
}

/// An account's entries, newest first; `starting_after` is the last entry id of the previous
/// page.
#[utoipa::path(
    get,
    path = "/v1/statements/{object}",
    tag = "balances",
    summary = "A party's account entries, newest first",
    params(("object" = String, Path, description = "The party whose account: `usr_`, `mer_`, `rdr_`, `chn_` or `cmp_` id."), PageQuery),
    responses(
        (status = 200, body = Object, description = "`{object: list, data: [entry], has_more}`; each entry is `{id, direction, amount, code, operation, flags, timestamp}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_statement(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(object): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let limit = crate::ledger::page_limit(page.limit)?.min(LIST_LIMIT_MAX);
    let after: Option<u128> = match &page.starting_after {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| {
            ApiError::invalid(
                "invalid_id",
                format!("`{text}` is not an entry id"),
                Some("starting_after"),
            )
        })?),
    };
    let o = object.clone();
    let found = state
        .read(move |m| {
            let (account, kind, entity, _) = account_of(m, &o)?;
            let mut filter = AccountFilter::all(account, limit + 1);
            filter.reversed = true;
            if let Some(after) = after {
                let after = m.lookup_transfer(after).expect("history store read")?;
                filter.timestamp_max = after.timestamp.checked_sub(1)?;
                if filter.timestamp_max == 0 {
                    return Some((account, kind, entity, Vec::new()));
                }
            }
            Some((account, kind, entity, m.statement(&filter)))
        })
        .await?;
    let (account, kind, entity, mut entries) =
        found.ok_or_else(|| ApiError::not_found("account"))?;
    check_owner(&caller, kind, entity)?;
    let has_more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok(created(json!({
        "object": "list",
        "data": entries.iter().map(|t| entry_json(t, account)).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

// The batch endpoint.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody<'a> {
    #[serde(default, borrow)]
    payments: Vec<PaymentBody<'a>>,
    #[serde(default)]
    refunds: Vec<RefundBody>,
}

/// Many payments and refunds in one request and one journal record; each has its own result
/// (`{"result": ...}` or `{"error": ...}`) and may carry its own `idempotency_key`.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "payments",
    summary = "Up to 1,000 payments and refunds in one request (operators)",
    request_body = BatchBody,
    responses(
        (status = 200, body = Object, description = "`{object: batch, results}`: per item, in order (payments, then refunds), `{result: ...}` or `{error: {type, code, message, param, status}}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = operator(&state, &headers)?;
    let b: BatchBody = parse_body(&body)?;
    let count = b.payments.len() + b.refunds.len();
    if count == 0 || count > BATCH_OPERATIONS_MAX {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("a batch holds 1 to {BATCH_OPERATIONS_MAX} operations"),
            None,
        ));
    }
    let key_of = |given: &Option<String>, route: &str| match given {
        Some(k) => scoped_key(&caller, route, k),
        None => rand::random(),
    };
    // Invalid items get their error without reaching the engine; the rest go as one batch.
    let mut items: Vec<Result<(Op, u32), ApiError>> = Vec::with_capacity(count);
    let mut ops = Vec::with_capacity(count);
    let parsed: Vec<Result<(Op, u32), ApiError>> = b.payments.iter().map(payment_op).collect();
    // Payments naming a currency must name their user's: one read for the whole batch.
    let named: Vec<(u64, u32)> = parsed
        .iter()
        .filter_map(|item| match item {
            Ok((Op::Pay { user, .. }, c)) if *c != 0 => Some((*user, *c)),
            _ => None,
        })
        .collect();
    let currencies: std::collections::HashMap<u64, u32> = if named.is_empty() {
        Default::default()
    } else {
        state
            .read(move |m| {
                named.iter().filter_map(|(u, _)| Some((*u, m.user_currency(*u)?))).collect()
            })
            .await?
    };
    for (p, item) in b.payments.iter().zip(parsed) {
        let item = item.and_then(|(op, c)| match &op {
            Op::Pay { user, .. } if c != 0 && currencies.get(user).is_some_and(|uc| *uc != c) => {
                Err(ApiError::invalid(
                    "currency_mismatch",
                    "the payment's currency is its user's wallet currency",
                    Some("currency"),
                ))
            }
            _ => Ok((op, c)),
        });
        if let Ok((op, _)) = &item {
            ops.push(Op::Keyed {
                key: key_of(&p.idempotency_key, "payments"),
                op: Box::new(op.clone()),
            });
        }
        items.push(item);
    }
    for r in &b.refunds {
        let item = parse_id(Prefix::Payment, &r.payment, "payment").and_then(|payment| {
            Ok((Op::Refund { id: 0, payment, amount: amount_field(r.amount, "amount")? }, 0))
        });
        if let Ok((op, _)) = &item {
            ops.push(Op::Keyed {
                key: key_of(&r.idempotency_key, "refunds"),
                op: Box::new(op.clone()),
            });
        }
        items.push(item);
    }
    let outcomes = if ops.is_empty() {
        Vec::new()
    } else {
        state.metrics.batch(ops.len());
        match state.execute(Op::Batch(ops)).await? {
            Done::Batch(outcomes) => outcomes,
            other => return Err(state.unexpected(other)),
        }
    };
    let mut outcomes = outcomes.into_iter();
    let results: Vec<BatchItem> = items
        .into_iter()
        .map(|item| {
            item.and_then(|(op, _)| {
                let outcome: Outcome = outcomes.next().ok_or_else(ApiError::internal)?;
                let Done::Allocated { id, outcome } = outcome? else {
                    return Err(ApiError::internal());
                };
                let done = (*outcome)?;
                match (&op, done) {
                    (Op::Pay { .. }, done) => payment_result(id, &op, done).map(BatchItem::Payment),
                    (Op::Refund { payment, .. }, Done::Refund { amount, legs, full }) => {
                        Ok(BatchItem::Refund(refund_json(id, *payment, amount, &legs, full)))
                    }
                    _ => Err(ApiError::internal()),
                }
            })
            .unwrap_or_else(BatchItem::Error)
        })
        .collect();
    let reply = BatchReply { object: "batch", results };
    Ok(wire::json_ok(&reply, count.saturating_mul(PAYMENT_JSON_BYTES)))
}

/// The reply of `POST /v1/batch`; fields in alphabetical order, as in [`PaymentJson`].
#[derive(Serialize)]
struct BatchReply {
    object: &'static str,
    results: Vec<BatchItem>,
}

/// One item of a batch reply: `{"result": ...}` or `{"error": ...}`.
enum BatchItem {
    Payment(PaymentView),
    Refund(RefundJson),
    Error(ApiError),
}

/// The error of a batch item: the API's error object with the status it would have had alone.
#[derive(Serialize)]
struct BatchErrorJson<'a> {
    code: &'static str,
    message: &'a str,
    param: Option<&'a str>,
    status: u16,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Serialize for BatchItem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            BatchItem::Payment(p) => map.serialize_entry("result", &p.json())?,
            BatchItem::Refund(r) => map.serialize_entry("result", r)?,
            BatchItem::Error(e) => map.serialize_entry(
                "error",
                &BatchErrorJson {
                    code: e.code,
                    message: &e.message,
                    param: e.param.as_deref(),
                    status: e.status.as_u16(),
                    kind: e.kind,
                },
            )?,
        }
        map.end()
    }
}

// API keys.

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ApiKeyBody {
    /// `admin`, `platform` or `merchant`.
    role: String,
    #[serde(default)]
    merchant: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/api_keys",
    tag = "keys",
    summary = "Create an API key (admin)",
    request_body = ApiKeyBody,
    responses(
        (status = 200, body = Object, description = "`{object: api_key, key, role, merchant}`; the key is shown only here."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden());
    }
    let b: ApiKeyBody = parse_body(&body)?;
    let role = match (b.role.as_str(), &b.merchant) {
        ("admin", None) => Role::Admin,
        ("platform", None) => Role::Platform,
        ("merchant", Some(m)) => Role::Merchant(parse_id(Prefix::Merchant, m, "merchant")?),
        _ => {
            return Err(ApiError::invalid(
                "invalid_role",
                "role is admin, platform, or merchant with a merchant id",
                Some("role"),
            ))
        }
    };
    let key = state.keys.create(role).map_err(|e| {
        tracing::error!(error = %e, "cannot store an API key");
        ApiError::internal()
    })?;
    Ok(created(json!({"object": "api_key", "key": key, "role": b.role, "merchant": b.merchant})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_payments::money::Legs;

    /// The payment as the API wrote it when it built a `serde_json::Value` for every reply.
    fn value_form(p: &PaymentView) -> Value {
        json!({
            "id": Prefix::Payment.id(p.id),
            "object": "payment",
            "status": p.status.name(),
            "amount": p.legs.total(),
            "currency": wire::currency_code(p.currency),
            "food_amount": p.food,
            "delivery_fee": p.delivery,
            "discount": p.legs.coupon,
            "commission": p.legs.platform,
            "merchant_amount": p.legs.merchant,
            "user": Prefix::User.id(p.user),
            "merchant": Prefix::Merchant.id(p.merchant),
            "rider": Prefix::Rider.id(p.rider),
            "coupon": (p.coupon != 0).then(|| Prefix::Coupon.id(p.coupon)),
            "channel": (p.channel != 0).then(|| Prefix::Channel.id(p.channel)),
            "amount_refunded": p.refunded,
            "refunds": p.refunds.iter().map(|r| Prefix::Refund.id(*r)).collect::<Vec<_>>(),
        })
    }

    fn payment(coupon: u64, channel: u64, currency: u32, refunds: Vec<u64>) -> PaymentView {
        PaymentView {
            id: 1 << 52,
            status: PaymentStatus::Succeeded,
            user: 7,
            merchant: u64::MAX,
            rider: 10,
            currency,
            food: 2_500,
            delivery: 400,
            coupon,
            channel,
            legs: Legs { merchant: 2_250, rider: 400, platform: 250, coupon: 100 },
            refunded: 300,
            refunds,
        }
    }

    #[test]
    fn a_payment_is_written_byte_for_byte_as_its_value_form() {
        for p in [
            payment(0, 0, 156, Vec::new()),
            payment(3, 9, 978, vec![1, 99, u64::MAX]),
            payment(0, 2, 4242, vec![5]),
        ] {
            let direct = serde_json::to_string(&p.json()).unwrap();
            assert_eq!(direct, serde_json::to_string(&value_form(&p)).unwrap());
            assert_eq!(payment_json(&p), value_form(&p));
        }
    }

    #[test]
    fn a_batch_reply_is_written_byte_for_byte_as_its_value_form() {
        let legs = Legs { merchant: 90, rider: 0, platform: 10, coupon: 0 };
        let error = ApiError::invalid("invalid_id", "`x` is not a usr id", Some("user"));
        let expected = json!({"object": "batch", "results": [
            {"result": value_form(&payment(0, 0, 156, Vec::new()))},
            {"error": {
                "type": error.kind, "code": error.code, "message": error.message,
                "param": error.param, "status": error.status.as_u16(),
            }},
            {"error": {
                "type": "api_error", "code": "internal", "message": "internal error",
                "param": null, "status": 500,
            }},
            {"result": {
                "id": "ref_4", "object": "refund", "payment": "pay_3", "amount": 100,
                "merchant_amount": 90, "delivery_fee": 0, "commission": 10, "discount": 0,
                "completes_refund": true, "status": "succeeded",
            }},
        ]});
        let reply = BatchReply {
            object: "batch",
            results: vec![
                BatchItem::Payment(payment(0, 0, 156, Vec::new())),
                BatchItem::Error(error),
                BatchItem::Error(ApiError::internal()),
                BatchItem::Refund(refund_json(4, 3, 100, &legs, true)),
            ],
        };
        let direct = serde_json::to_string(&reply).unwrap();
        assert_eq!(direct, serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn a_body_that_does_not_parse_still_names_the_field_at_fault() {
        let body = Bytes::from_static(br#"{"user":"usr_1","merchant":"mer_1","rider":7}"#);
        let error = parse_body::<PaymentBody>(&body).err().unwrap();
        assert_eq!((error.code, error.param.as_deref()), ("invalid_field", Some("rider")));
        let body = Bytes::from_static(br#"{"user":"usr_1","merchant":"mer_1","rider":"r","x":1}"#);
        let error = parse_body::<PaymentBody>(&body).err().unwrap();
        assert_eq!((error.code, error.param.as_deref()), ("invalid_field", Some("x")));
        let body = Bytes::from_static(
            br#"{"user":"usr_\u0031","merchant":"m","rider":"r","food_amount":1}"#,
        );
        let parsed = parse_body::<PaymentBody>(&body).unwrap();
        assert_eq!(parsed.user, "usr_1");
    }
}
