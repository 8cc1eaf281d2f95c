//! Payouts of a merchant's balance to its bank channel, and settlement runs that pay every
//! merchant with a statement of the period, with the run's payout file for the bank.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use huifu_payments::{Done, Op, SettlementLine};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::{amount_field, execute_keyed, may_see, parse_bank_answer};
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::wire::{self, json_value_ok, parse_body, parse_id, Path, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/payouts", post(create_payout))
        .route("/v1/payouts/{id}/{answer}", post(payout_answer))
        .route("/v1/settlement_runs", post(create_settlement))
        .route("/v1/settlement_runs/{id}", get(get_settlement))
        .route("/v1/settlement_runs/{id}/payouts.csv", get(settlement_csv))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PayoutBody {
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
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
        (status = 200, body = crate::replies::Payout, description = "`{id, object, merchant, amount, status: in_transit}`."),
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
    let (_, done) = execute_keyed(&state, &caller, &headers, "payouts", op).await?;
    let Done::Payout { payout, amount } = done else { return Err(state.unexpected(done)) };
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^po_[1-9a-f][0-9a-f]*$", description = "The payout id (`po_1`)."), ("answer" = String, Path, pattern = "^(confirm|fail)$", description = "`confirm` or `fail`: the bank's answer."), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = crate::replies::Payout, description = "`{id, object, amount, status}`; status is `paid` or `failed`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn payout_answer(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, answer)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let payout = wire::parse_payout_id(&id, "id")?;
    let ok = parse_bank_answer(&answer)?;
    let (_, done) =
        execute_keyed(&state, &caller, &headers, "payouts/answer", Op::PayoutResult { payout, ok })
            .await?;
    let Done::Payout { amount, .. } = done else { return Err(state.unexpected(done)) };
    Ok(json_value_ok(json!({
        "id": id,
        "object": "payout",
        "amount": amount,
        "status": if ok { "paid" } else { "failed" },
    })))
}

pub(crate) fn line_json(l: &SettlementLine) -> Value {
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
        (status = 200, body = crate::replies::SettlementRun, description = "`{id, object: settlement_run, lines}`, one line per merchant with its payments, gross, refunds, commission, discounts, net and payout."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_settlement(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let (id, done) =
        execute_keyed(&state, &caller, &headers, "settlement_runs", Op::SettlementRun { id: 0 })
            .await?;
    let Done::Settlement { lines } = done else { return Err(state.unexpected(done)) };
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^stl_[1-9][0-9]*$", description = "The settlement run id (`stl_1`).")),
    responses(
        (status = 200, body = crate::replies::SettlementRun, description = "`{id, object: settlement_run, lines}`, one line per merchant with its payments, gross, refunds, commission, discounts, net and payout."),
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
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^stl_[1-9][0-9]*$", description = "The settlement run id (`stl_1`).")),
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
    Ok(([("content-type", "text/csv")], payouts_csv(id, &lines)).into_response())
}

/// The payout file of settlement run `run` from its `lines`: a header, then a line for each
/// merchant paid something.
fn payouts_csv(run: u64, lines: &[SettlementLine]) -> String {
    let mut w =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(["settlement_run", "payout", "merchant", "channel", "currency", "amount"])
        .expect("in memory");
    let run = Prefix::Settlement.id(run);
    for l in lines.iter().filter(|l| l.net > 0) {
        w.write_record([
            run.clone(),
            wire::payout_id(l.payout),
            Prefix::Merchant.id(l.merchant),
            Prefix::Channel.id(l.channel),
            wire::currency_code(l.currency),
            l.net.to_string(),
        ])
        .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("fields are text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payout_file_has_a_line_for_each_merchant_paid() {
        let line = |merchant, channel, currency, payout, net| SettlementLine {
            merchant,
            channel,
            currency,
            payout,
            net,
            ..SettlementLine::default()
        };
        let lines = [
            line(7, 1, 156, 0x1c00_0000_0000_0000_0000_0000_0000_0301, 4_500),
            // Nothing paid: no payout, no line.
            line(8, 1, 156, 0, 0),
            line(u64::MAX, u64::MAX, 392, u128::MAX, u64::MAX),
            // A currency without a code is written as its number.
            line(9, 2, 999, 1, 1),
        ];
        assert_eq!(
            payouts_csv(12, &lines),
            "settlement_run,payout,merchant,channel,currency,amount\n\
             stl_12,po_1c000000000000000000000000000301,mer_7,chn_1,CNY,4500\n\
             stl_12,po_ffffffffffffffffffffffffffffffff,mer_18446744073709551615,\
             chn_18446744073709551615,JPY,18446744073709551615\n\
             stl_12,po_1,mer_9,chn_2,999,1\n"
        );
        assert_eq!(payouts_csv(3, &[]), "settlement_run,payout,merchant,channel,currency,amount\n");
    }
}
