//! Coupon campaigns, each with a budget funded by the platform or a merchant, and the coupons
//! granted to users.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use huifu_payments::{CouponRule, Funder, Op};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::{amount_field, execute_keyed};
use crate::auth::Role;
use crate::error::ApiError;
use crate::wire::{self, json_value_ok, parse_body, parse_currency, parse_id, Path, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/campaigns", post(create_campaign))
        .route("/v1/campaigns/{id}", get(get_campaign))
        .route("/v1/coupons", post(create_coupon))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CampaignBody {
    #[schema(value_type = crate::wire::CurrencyCode)]
    currency: String,
    /// `platform`, or the merchant id that funds it.
    #[schema(pattern = "^(platform|mer_[1-9][0-9]*)$")]
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
        (status = 200, body = crate::replies::Campaign, description = "The campaign with its rule, budget and `spent`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_campaign(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
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
    let (id, _) = execute_keyed(&state, &caller, &headers, "campaigns", op).await?;
    Ok(json_value_ok(json!({
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
    params(("id" = String, Path, pattern = "^cmp_[1-9][0-9]*$", description = "The campaign id (`cmp_1`).")),
    responses(
        (status = 200, body = crate::replies::Campaign, description = "The campaign with its rule, `budget`, `left` and `spent`."),
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
    Ok(json_value_ok(json!({
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
    #[schema(pattern = "^cmp_[1-9][0-9]*$")]
    campaign: String,
    #[schema(pattern = "^usr_[1-9][0-9]*$")]
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
        (status = 200, body = crate::replies::Coupon, description = "`{id, object, campaign, user}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_coupon(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate_operator(&headers)?;
    let b: CouponBody = parse_body(&body)?;
    let campaign = parse_id(Prefix::Campaign, &b.campaign, "campaign")?;
    let user = parse_id(Prefix::User, &b.user, "user")?;
    let (id, _) = execute_keyed(
        &state,
        &caller,
        &headers,
        "coupons",
        Op::GrantCoupon { id: 0, campaign, user },
    )
    .await?;
    Ok(json_value_ok(json!({
        "id": Prefix::Coupon.id(id),
        "object": "coupon",
        "campaign": b.campaign,
        "user": b.user,
    })))
}
