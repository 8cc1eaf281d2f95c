//! `/v1/api_keys`: an admin makes, lists, rotates and revokes the keys of the platform's
//! services and merchants. A key is shown once, when it is made; afterwards it is known by its
//! public id (`key_...`). Changes go through the replicated log on a cluster node, so they hold
//! on every node; alone, through the server's key file. Each is logged (the key's id, the
//! admin's key id, never a key).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{self, Caller, KeyRecord, KeyStatus, KeyView, Rate, Role};
use crate::constants::{
    KEY_LIFETIME_SECONDS_MAX, KEY_ROTATION_OVERLAP_SECONDS_DEFAULT,
    KEY_ROTATION_OVERLAP_SECONDS_MAX, LIST_LIMIT_MAX,
};
use crate::error::ApiError;
use crate::wire::{json_value_ok, page_limit, parse_body, parse_id, Path, Prefix, Query};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/api_keys", post(create_api_key).get(list_api_keys))
        .route("/v1/api_keys/{id}", get(get_api_key).delete(revoke_api_key))
        .route("/v1/api_keys/{id}/rotate", post(rotate_api_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ApiKeyBody {
    /// `admin`, `platform` or `merchant`.
    role: String,
    /// For a `merchant` key, the merchant it acts for (`mer_1`), which must exist.
    #[serde(default)]
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
    /// When the key stops working, in seconds since the Unix epoch: later than now and at most
    /// 10 years ahead. Never, when absent.
    #[serde(default)]
    expires_at: Option<u64>,
    /// The key's own rate limit, requests per second on average (1 to 10,000,000). When
    /// absent: its role's default (admin 1,000, platform 20,000, merchant 100), or the
    /// server's `--key-rate-per-second`.
    #[serde(default)]
    rate_per_second: Option<u32>,
    /// Requests the key may make at once above its rate (1 to 20,000,000); twice its rate
    /// when absent.
    #[serde(default)]
    burst: Option<u32>,
}

/// How to rotate a key; an empty body takes the defaults.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Seconds the old key keeps working: 0 (it stops at once) to 2,592,000 (30 days);
    /// 86,400 (a day) when absent. An old key that expires sooner keeps its expiry.
    #[serde(default)]
    overlap_seconds: Option<u64>,
    /// When the new key stops working, as at creation. Never, when absent.
    #[serde(default)]
    expires_at: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Keys per page: 1 to 1,000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The id of the last key of the previous page.
    #[param(pattern = "^key_[0-9a-f]{20}$")]
    starting_after: Option<String>,
}

/// The caller, who must hold an admin key.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = state.keys.authenticate(headers)?;
    if caller.role != Role::Admin {
        return Err(ApiError::forbidden());
    }
    Ok(caller)
}

/// A key as the API shows it: never the key itself.
fn key_json(view: &KeyView, now: u64) -> Value {
    let record = &view.record;
    let merchant = match record.role {
        Role::Merchant(id) => Some(Prefix::Merchant.id(id)),
        Role::Admin | Role::Platform => None,
    };
    json!({
        "object": "api_key",
        "id": view.id,
        "role": record.role.name(),
        "merchant": merchant,
        "status": record.status(now).name(),
        "created_at": record.created_at,
        "last_used_at": view.last_used_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "rate_per_second": view.rate.per_second,
        "burst": view.rate.burst,
    })
}

/// The key named by a path's `id`: 400 `invalid_id` unless written as the API writes key ids,
/// 404 when there is none.
fn find(state: &AppState, id: &str) -> Result<KeyView, ApiError> {
    if !auth::is_key_id(id) {
        return Err(ApiError::invalid(
            "invalid_id",
            format!("`{id}` is not an API key id (like key_0123456789abcdef0123)"),
            Some("id"),
        ));
    }
    state.keys.find(id).ok_or_else(|| ApiError::not_found("API key"))
}

/// An `expires_at` of a request: later than `now`, at most [`KEY_LIFETIME_SECONDS_MAX`] ahead.
fn check_expiry(expires_at: Option<u64>, now: u64) -> Result<Option<u64>, ApiError> {
    match expires_at {
        Some(at) if at <= now || at - now > KEY_LIFETIME_SECONDS_MAX => Err(ApiError::invalid(
            "invalid_expiry",
            format!(
                "expires_at is seconds since the Unix epoch, after now ({now}) and at most \
                 {KEY_LIFETIME_SECONDS_MAX} seconds ahead"
            ),
            Some("expires_at"),
        )),
        at => Ok(at),
    }
}

/// Stores key records: through the log on a cluster node (in one entry, so every node holds
/// all of them or none), else in the key file. Once this returns they hold on this server.
async fn store(state: &AppState, records: Vec<([u8; 32], KeyRecord)>) -> Result<(), ApiError> {
    if let Some(cluster) = state.cluster() {
        let grants = records
            .iter()
            .map(|(hash, record)| huifu_cluster::KeyGrant { hash: *hash, record: record.encode() })
            .collect();
        return cluster.node.grant_keys(grants).await.map_err(crate::cluster::cluster_error);
    }
    for (hash, record) in &records {
        state.keys.put(*hash, record).map_err(|e| {
            tracing::error!(error = %e, "cannot store an API key record");
            if huifu_engine::is_storage_full(&e) {
                ApiError::storage_full("data")
            } else {
                ApiError::internal()
            }
        })?;
    }
    Ok(())
}

/// The key whose SHA-256 is `hash` as it is now stored.
fn stored(state: &AppState, hash: &[u8; 32]) -> Result<KeyView, ApiError> {
    state.keys.view(hash).ok_or_else(|| {
        tracing::error!(key_id = %auth::key_id(hash), "an API key stored is not in the store");
        ApiError::internal()
    })
}

#[utoipa::path(
    post,
    path = "/v1/api_keys",
    tag = "keys",
    summary = "Create an API key (admin)",
    description = "A new random key with a role, for an existing merchant (404 otherwise), \
        optionally with an expiry and a rate limit of its own. The key is in the reply only.",
    request_body = ApiKeyBody,
    responses(
        (status = 200, body = crate::replies::ApiKeyCreated, description = "The key object (`{object: api_key, id, role, merchant, status, created_at, last_used_at, expires_at, revoked_at, rate_per_second, burst}`) and `key`, shown only here."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = admin(&state, &headers)?;
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
    let now = auth::now_seconds();
    let expires_at = check_expiry(b.expires_at, now)?;
    let rate = match (b.rate_per_second, b.burst) {
        (None, None) => None,
        (Some(per_second), None) => Some(Rate::per_second(per_second)),
        (per_second, Some(burst)) => {
            Some(Rate { per_second: per_second.unwrap_or(Rate::of_role(role).per_second), burst })
        }
    };
    let rate = rate
        .map(Rate::validate)
        .transpose()
        .map_err(|(param, says)| ApiError::invalid("invalid_rate", says, Some(param)))?;
    if let Role::Merchant(id) = role {
        if !state.read(move |m| m.merchant(id).is_some()).await? {
            return Err(ApiError {
                param: Some("merchant".into()),
                ..ApiError::not_found("merchant")
            });
        }
    }
    let key = auth::new_key();
    let hash = auth::hash(&key);
    let record = KeyRecord { expires_at, rate, ..KeyRecord::new(role, now) };
    store(&state, vec![(hash, record)]).await?;
    let view = stored(&state, &hash)?;
    tracing::info!(
        key_id = %view.id,
        role = %role.encode(),
        expires_at,
        by = %caller.key_id(),
        "API key created"
    );
    let mut reply = key_json(&view, now);
    reply["key"] = Value::from(key);
    Ok(json_value_ok(reply))
}

#[utoipa::path(
    get,
    path = "/v1/api_keys",
    tag = "keys",
    summary = "List the API keys (admin)",
    description = "Every key the server knows, revoked and expired ones included, by id. \
        `last_used_at` is when the server answering last took the key since it started \
        (on a cluster, the leader).",
    params(ListQuery),
    responses(
        (status = 200, body = crate::replies::ApiKeyList, description = "`{object: list, data: [api_key], has_more}`; never a key itself."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn list_api_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    let limit = page_limit(q.limit, LIST_LIMIT_MAX)? as usize;
    let after = match q.starting_after.as_deref() {
        Some(after) if !auth::is_key_id(after) => {
            return Err(ApiError::invalid(
                "invalid_id",
                format!("`{after}` is not an API key id"),
                Some("starting_after"),
            ))
        }
        Some(after) if state.keys.find(after).is_none() => {
            return Err(ApiError::not_found("API key to start after"))
        }
        after => after,
    };
    let page = state.keys.list(after, limit + 1);
    let now = auth::now_seconds();
    Ok(json_value_ok(json!({
        "object": "list",
        "data": page.iter().take(limit).map(|view| key_json(view, now)).collect::<Vec<_>>(),
        "has_more": page.len() > limit,
    })))
}

#[utoipa::path(
    get,
    path = "/v1/api_keys/{id}",
    tag = "keys",
    summary = "An API key (admin)",
    params(("id" = String, Path, pattern = "^key_[0-9a-f]{20}$", description = "The key's id (`key_...`).")),
    responses((status = 200, body = crate::replies::ApiKey, description = "The key object; never the key itself."), ApiError),
    security(("bearer" = [])),
)]
async fn get_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin(&state, &headers)?;
    let view = find(&state, &id)?;
    Ok(json_value_ok(key_json(&view, auth::now_seconds())))
}

#[utoipa::path(
    delete,
    path = "/v1/api_keys/{id}",
    tag = "keys",
    summary = "Revoke an API key (admin)",
    description = "The key is refused from the next request on (401 `api_key_revoked`), on \
        every node of a cluster, and stays revoked across restarts, also when it is the admin \
        key given at start (`HUIFU_ADMIN_KEY`, `--admin-key-file`). Revoking a revoked key \
        changes nothing. The last admin key that works cannot be revoked (409 \
        `last_admin_key`): make another first.",
    params(("id" = String, Path, pattern = "^key_[0-9a-f]{20}$", description = "The key's id (`key_...`).")),
    responses((status = 200, body = crate::replies::ApiKey, description = "The key object, `status: revoked`."), ApiError),
    security(("bearer" = [])),
)]
async fn revoke_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = admin(&state, &headers)?;
    let view = find(&state, &id)?;
    let now = auth::now_seconds();
    if view.record.revoked_at.is_some() {
        return Ok(json_value_ok(key_json(&view, now)));
    }
    let working = view.record.status(now) == KeyStatus::Active;
    if view.record.role == Role::Admin
        && working
        && state.keys.other_active_admins(&view.hash, now) == 0
    {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "last_admin_key",
            message: "this is the last admin key that works; create another before revoking it"
                .into(),
            param: None,
            retry_after: None,
        });
    }
    let record = KeyRecord { revoked_at: Some(now), ..view.record.clone() };
    store(&state, vec![(view.hash, record)]).await?;
    let view = stored(&state, &view.hash)?;
    tracing::info!(
        key_id = %view.id,
        role = %view.record.role.encode(),
        by = %caller.key_id(),
        "API key revoked"
    );
    Ok(json_value_ok(key_json(&view, now)))
}

#[utoipa::path(
    post,
    path = "/v1/api_keys/{id}/rotate",
    tag = "keys",
    summary = "Rotate an API key (admin)",
    description = "A new key with the old one's role and rate limit; the old key keeps working \
        for `overlap_seconds` (a day by default, 0 to stop it at once), then is refused (401 \
        `api_key_expired`). Both changes are stored together. A revoked or expired key cannot \
        be rotated (409 `api_key_inactive`).",
    params(("id" = String, Path, pattern = "^key_[0-9a-f]{20}$", description = "The key's id (`key_...`).")),
    request_body = RotateBody,
    responses(
        (status = 200, body = crate::replies::ApiKeyCreated, description = "The new key object with `key` (shown only here), and the old one as `rotated`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn rotate_api_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = admin(&state, &headers)?;
    let old = find(&state, &id)?;
    let b: RotateBody = if body.is_empty() { RotateBody::default() } else { parse_body(&body)? };
    let now = auth::now_seconds();
    let overlap = b.overlap_seconds.unwrap_or(KEY_ROTATION_OVERLAP_SECONDS_DEFAULT);
    if overlap > KEY_ROTATION_OVERLAP_SECONDS_MAX {
        return Err(ApiError::invalid(
            "invalid_overlap",
            format!("overlap_seconds is 0 to {KEY_ROTATION_OVERLAP_SECONDS_MAX}"),
            Some("overlap_seconds"),
        ));
    }
    let expires_at = check_expiry(b.expires_at, now)?;
    let status = old.record.status(now);
    if status != KeyStatus::Active {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "api_key_inactive",
            message: format!("the key is {}: make a new one instead", status.name()),
            param: None,
            retry_after: None,
        });
    }
    let key = auth::new_key();
    let hash = auth::hash(&key);
    let new =
        KeyRecord { expires_at, rate: old.record.rate, ..KeyRecord::new(old.record.role, now) };
    let old_until = KeyRecord { expires_at: Some(now + overlap), ..old.record.clone() };
    // The old record merges to the earlier of its expiry and the overlap's end.
    store(&state, vec![(hash, new), (old.hash, old_until)]).await?;
    let (view, old) = (stored(&state, &hash)?, stored(&state, &old.hash)?);
    tracing::info!(
        key_id = %view.id,
        rotated = %old.id,
        rotated_expires_at = old.record.expires_at,
        role = %view.record.role.encode(),
        by = %caller.key_id(),
        "API key rotated"
    );
    let mut reply = key_json(&view, now);
    reply["key"] = Value::from(key);
    reply["rotated"] = key_json(&old, now);
    Ok(json_value_ok(reply))
}
