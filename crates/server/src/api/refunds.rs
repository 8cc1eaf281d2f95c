//! Refunds of part or all of a payment, to the wallet; a merchant refunds only its own
//! payments.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use huifu_payments::{Done, Op};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::payments::PAYMENT_JSON_BYTES;
use super::{amount_field, execute_keyed, may_see};
use crate::auth::Role;
use crate::error::ApiError;
use crate::wire::{self, json_value_ok, parse_body, parse_id, Id, Path, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/refunds", post(create_refund))
        .route("/v1/refunds/{id}", get(get_refund))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundBody {
    #[schema(pattern = "^pay_[1-9][0-9]*$")]
    pub(super) payment: String,
    pub(super) amount: u64,
    #[serde(default)]
    pub(super) idempotency_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/refunds",
    tag = "payments",
    summary = "Refund part or all of a payment",
    request_body = RefundBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = RefundJson, description = "The refund: `{id, object, payment, amount, merchant_amount, delivery_fee, commission, discount, completes_refund, status}`."),
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
    let (id, done) = execute_keyed(&state, &caller, &headers, "refunds", op).await?;
    let Done::Refund { amount, legs, full } = done else { return Err(state.unexpected(done)) };
    Ok(wire::json_ok(&refund_json(id, payment, amount, &legs, full), PAYMENT_JSON_BYTES))
}

// A refund as the API writes it; fields in alphabetical order, as in `PaymentJson`.
/// A refund. `GET /v1/refunds/{id}` writes `{amount, id, object, payment, status}`; the reply
/// of its creation also has how it was split.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Refund)]
pub(crate) struct RefundJson {
    amount: u64,
    #[schema(required = false)]
    commission: u64,
    /// Whether this refund gives back the rest of the payment.
    #[schema(required = false)]
    completes_refund: bool,
    #[schema(required = false)]
    delivery_fee: u64,
    #[schema(required = false)]
    discount: u64,
    #[schema(value_type = String, pattern = "^ref_[1-9][0-9]*$")]
    id: Id,
    #[schema(required = false)]
    merchant_amount: u64,
    #[schema(value_type = String, pattern = "^refund$")]
    object: &'static str,
    #[schema(value_type = String, pattern = "^pay_[1-9][0-9]*$")]
    payment: Id,
    #[schema(value_type = String, pattern = "^succeeded$")]
    status: &'static str,
}

pub(super) fn refund_json(
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
    params(("id" = String, Path, pattern = "^ref_[1-9][0-9]*$", description = "The refund id (`ref_1`).")),
    responses(
        (status = 200, body = RefundJson, description = "`{id, object, payment, amount, status}`."),
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
    Ok(json_value_ok(json!({
        "id": Prefix::Refund.id(id),
        "object": "refund",
        "payment": Prefix::Payment.id(payment),
        "amount": amount,
        "status": "succeeded",
    })))
}
