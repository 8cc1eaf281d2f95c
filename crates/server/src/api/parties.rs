//! Parties: bank channels, users (with their wallets), merchants and riders. Operators create
//! them; each is in one currency.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use huifu_payments::Op;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::execute_keyed;
use crate::error::ApiError;
use crate::wire::{json_value_ok, parse_body, parse_currency, parse_id, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/channels", post(create_channel))
        .route("/v1/users", post(create_user))
        .route("/v1/merchants", post(create_merchant))
        .route("/v1/riders", post(create_rider))
}

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
    let caller = state.keys.authenticate_operator(&headers)?;
    let b: CurrencyBody = parse_body(&body)?;
    let currency = parse_currency(&b.currency)?;
    let (id, _) = execute_keyed(&state, &caller, &headers, route, make(currency)).await?;
    let object = match prefix {
        Prefix::Channel => "channel",
        Prefix::User => "user",
        _ => "rider",
    };
    Ok(json_value_ok(json!({"id": prefix.id(id), "object": object, "currency": b.currency})))
}

#[utoipa::path(
    post,
    path = "/v1/channels",
    tag = "parties",
    summary = "Create a bank channel (operators)",
    request_body = CurrencyBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first outcome; 1 to 255 characters.")),
    responses(
        (status = 200, body = crate::replies::Party, description = "The channel: `{id, object, currency}`."),
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
        (status = 200, body = crate::replies::Party, description = "The user: `{id, object, currency}`."),
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
        (status = 200, body = crate::replies::Party, description = "The rider: `{id, object, currency}`."),
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
    #[schema(pattern = "^chn_[1-9][0-9]*$")]
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
        (status = 200, body = crate::replies::Merchant, description = "The merchant: `{id, object, currency, commission_bps, channel}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_merchant(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
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
    let (id, _) = execute_keyed(&state, &caller, &headers, "merchants", op).await?;
    Ok(json_value_ok(json!({
        "id": Prefix::Merchant.id(id),
        "object": "merchant",
        "currency": b.currency,
        "commission_bps": b.commission_bps,
        "channel": b.channel,
    })))
}
