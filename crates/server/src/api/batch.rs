//! `POST /v1/batch`: many payments and refunds in one request and one journal record.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use huifu_payments::{Done, Op, Outcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::payments::{payment_op, payment_result, PaymentBody, PaymentView, PAYMENT_JSON_BYTES};
use super::refunds::{refund_json, RefundBody, RefundJson};
use super::{amount_field, scoped_key};
use crate::constants::BATCH_OPERATIONS_MAX;
use crate::error::ApiError;
use crate::wire::{self, parse_body, parse_id, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/batch", post(batch))
}

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
        (status = 200, body = crate::replies::Batch, description = "`{object: batch, results}`: per item, in order (payments, then refunds), `{result: ...}` or `{error: {type, code, message, param, status}}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
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

#[cfg(test)]
mod tests {
    use huifu_payments::money::Legs;
    use serde_json::json;

    use super::*;
    use crate::api::payments::tests::{payment, value_form};
    use crate::api::refunds::refund_json;

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
}
