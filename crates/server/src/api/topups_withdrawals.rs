//! Money in and out of a wallet through a bank channel: a top-up or a withdrawal is a pending
//! hold until the bank's answer confirms or fails it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use huifu_payments::{Done, Op};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{amount_field, execute_keyed, parse_bank_answer};
use crate::error::ApiError;
use crate::wire::{json_value_ok, parse_body, parse_id, Path, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/topups", post(create_topup))
        .route("/v1/withdrawals", post(create_withdrawal))
        .route("/v1/topups/{id}/{answer}", post(bank_answer_topup))
        .route("/v1/withdrawals/{id}/{answer}", post(bank_answer_withdrawal))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    #[schema(pattern = "^usr_[1-9][0-9]*$")]
    user: String,
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
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
    let caller = state.keys.authenticate_operator(&headers)?;
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
    let (id, _) = execute_keyed(&state, &caller, &headers, route, op).await?;
    Ok(json_value_ok(json!({
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
        (status = 200, body = crate::replies::Hold, description = "The pending top-up: `{id, object, status, user, channel, amount}`."),
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
        (status = 200, body = crate::replies::Hold, description = "The pending withdrawal: `{id, object, status, user, channel, amount}`."),
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

async fn bank_answer(
    state: AppState,
    headers: HeaderMap,
    prefix: Prefix,
    id: String,
    answer: String,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let id = parse_id(prefix, &id, "id")?;
    let ok = parse_bank_answer(&answer)?;
    let route = format!("{}/answer", prefix.text());
    let (_, done) =
        execute_keyed(&state, &caller, &headers, &route, Op::BankResult { id, ok }).await?;
    let amount = match done {
        Done::Hold { amount } => amount,
        other => return Err(state.unexpected(other)),
    };
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^top_[1-9][0-9]*$", description = "The top-up id (`top_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = crate::replies::HoldAnswered, description = "`{id, status, amount}`; status is `succeeded` or `failed`."),
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
    params(("id" = String, Path, pattern = "^wdr_[1-9][0-9]*$", description = "The withdrawal id (`wdr_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = crate::replies::HoldAnswered, description = "`{id, status, amount}`; status is `succeeded` or `failed`."),
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
