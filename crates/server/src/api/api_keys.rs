//! `POST /v1/api_keys`: an admin creates the keys of the platform's services and merchants.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::ApiError;
use crate::wire::{json_value_ok, parse_body, parse_id, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/api_keys", post(create_api_key))
}

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
    let key = match state.cluster() {
        // Through the log: the key works on every node.
        Some(cluster) => {
            let key = crate::auth::new_key();
            let granted = cluster.node.grant_key(crate::auth::hash(&key), role.encode()).await;
            granted.map_err(crate::cluster::cluster_error)?;
            key
        }
        None => state.keys.create(role).map_err(|e| {
            tracing::error!(error = %e, "cannot store an API key");
            if huifu_engine::is_storage_full(&e) {
                ApiError::storage_full("data")
            } else {
                ApiError::internal()
            }
        })?,
    };
    Ok(json_value_ok(
        json!({"object": "api_key", "key": key, "role": b.role, "merchant": b.merchant}),
    ))
}
