//! Payments: from a wallet, or through a bank channel (authorised, then captured or
//! released); one payment, a merchant's or a user's list. The batch endpoint
//! (`super::batch`) makes payments with the same parsing and replies.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use huifu_payments::{Done, Op, Payment, PaymentStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::{amount_field, execute_keyed, may_see};
use crate::auth::Role;
use crate::constants::LIST_LIMIT_MAX;
use crate::error::ApiError;
use crate::wire::{
    self, json_value_ok, page_limit, parse_body, parse_currency, parse_id, Id, Ids, Path, Prefix,
    Query,
};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", post(create_payment).get(list_payments))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/{action}", post(resolve_payment))
}

// The ids are borrowed from the request body (they need no unescaping in practice): a batch
// holds a thousand payments. (A plain comment: a doc comment would become the schema's
// description in the OpenAPI document.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PaymentBody<'a> {
    #[serde(borrow)]
    #[schema(value_type = String, pattern = "^usr_[1-9][0-9]*$")]
    user: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String, pattern = "^mer_[1-9][0-9]*$")]
    merchant: Cow<'a, str>,
    #[serde(borrow)]
    #[schema(value_type = String, pattern = "^rdr_[1-9][0-9]*$")]
    rider: Cow<'a, str>,
    food_amount: u64,
    #[serde(default)]
    delivery_fee: u64,
    /// Optional: the payment's currency is its user's; when given, it must match.
    #[serde(default)]
    #[schema(value_type = Option<crate::wire::CurrencyCode>)]
    currency: Option<String>,
    #[serde(default)]
    #[schema(pattern = "^cpn_[1-9][0-9]*$")]
    coupon: Option<String>,
    /// Pay through this bank channel instead of the wallet.
    #[serde(default)]
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
    channel: Option<String>,
    #[serde(default)]
    timeout_seconds: u32,
    /// Only inside `POST /v1/batch`.
    #[serde(default)]
    pub(super) idempotency_key: Option<String>,
}

pub(crate) struct PaymentView {
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

// A payment as the API writes it, serialized straight into the reply. The fields are in
// alphabetical order, the order in which `serde_json::Value` objects (the other replies) are
// written, so a payment reads the same wherever it appears. (A plain comment: a doc comment
// would become the schema's description.)
/// A payment: its amounts in minor units of its currency, how it was split, and its refunds.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Payment)]
pub(crate) struct PaymentJson<'a> {
    /// What the user paid: food and delivery, less the discount.
    amount: u64,
    amount_refunded: u64,
    /// The bank channel it was paid through; null for a wallet payment.
    #[schema(value_type = Option<String>, pattern = "^chn_[1-9][0-9]*$")]
    channel: Option<Id>,
    commission: u64,
    #[schema(value_type = Option<String>, pattern = "^cpn_[1-9][0-9]*$")]
    coupon: Option<Id>,
    #[schema(value_type = crate::wire::CurrencyCode)]
    currency: wire::Currency,
    delivery_fee: u64,
    discount: u64,
    food_amount: u64,
    #[schema(value_type = String, pattern = "^pay_[1-9][0-9]*$")]
    id: Id,
    #[schema(value_type = String, pattern = "^mer_[1-9][0-9]*$")]
    merchant: Id,
    merchant_amount: u64,
    #[schema(value_type = String, pattern = "^payment$")]
    object: &'static str,
    #[schema(value_type = Vec<String>)]
    refunds: Ids<'a>,
    #[schema(value_type = String, pattern = "^rdr_[1-9][0-9]*$")]
    rider: Id,
    #[schema(value_type = String, pattern = "^(authorized|succeeded|released|expired)$")]
    status: &'static str,
    #[schema(value_type = String, pattern = "^usr_[1-9][0-9]*$")]
    user: Id,
}

/// About the size of one payment in JSON, to size reply buffers.
pub(super) const PAYMENT_JSON_BYTES: usize = 512;

impl PaymentView {
    pub(crate) fn json(&self) -> PaymentJson<'_> {
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

pub(crate) fn view(id: u64, p: &Payment, status: PaymentStatus) -> PaymentView {
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
pub(super) fn payment_op(b: &PaymentBody<'_>) -> Result<(Op, u32), ApiError> {
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

pub(super) fn payment_result(id: u64, op: &Op, done: Done) -> Result<PaymentView, ApiError> {
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
        (status = 200, body = PaymentJson, description = "The payment: `{id, object, status, amount, currency, food_amount, delivery_fee, discount, commission, merchant_amount, user, merchant, rider, coupon, channel, amount_refunded, refunds}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_payment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
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
    let (id, done) = execute_keyed(&state, &caller, &headers, "payments", op.clone()).await?;
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
    params(("id" = String, Path, pattern = "^pay_[1-9][0-9]*$", description = "The payment id (`pay_1`).")),
    responses(
        (status = 200, body = PaymentJson, description = "The payment: `{id, object, status, amount, currency, food_amount, delivery_fee, discount, commission, merchant_amount, user, merchant, rider, coupon, channel, amount_refunded, refunds}`."),
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
    #[param(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    /// List this user's payments (`usr_1`); operators only.
    #[param(pattern = "^usr_[1-9][0-9]*$")]
    user: Option<String>,
    /// Payments per page: 1 to 1,000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The id of the last payment of the previous page.
    #[param(pattern = "^pay_[1-9][0-9]*$")]
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
        (status = 200, body = crate::replies::PaymentList, description = "`{object: list, data: [payment], has_more}`."),
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
    let limit = page_limit(q.limit, LIST_LIMIT_MAX)? as usize;
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
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^pay_[1-9][0-9]*$", description = "The payment id (`pay_1`)."), ("action" = String, Path, pattern = "^(capture|release)$", description = "`capture` or `release`."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = PaymentJson, description = "The payment after the action."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn resolve_payment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let id = parse_id(Prefix::Payment, &id, "id")?;
    let op = match action.as_str() {
        "capture" => Op::Capture { id },
        "release" => Op::Release { id },
        _ => return Err(ApiError::not_found("action (use capture or release)")),
    };
    execute_keyed(&state, &caller, &headers, "payments/resolve", op).await?;
    let found = state.read(move |m| m.payment(id).map(|(p, status)| view(id, &p, status))).await?;
    let p = found.ok_or_else(|| ApiError::not_found("payment"))?;
    Ok(wire::json_ok(&p.json(), PAYMENT_JSON_BYTES))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use huifu_payments::money::Legs;

    /// The payment as the API wrote it when it built a `serde_json::Value` for every reply.
    pub(in crate::api) fn value_form(p: &PaymentView) -> Value {
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

    pub(in crate::api) fn payment(
        coupon: u64,
        channel: u64,
        currency: u32,
        refunds: Vec<u64>,
    ) -> PaymentView {
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
