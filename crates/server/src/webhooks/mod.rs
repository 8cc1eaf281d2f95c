//! Webhooks: `/v1/webhook_endpoints` (an endpoint's URL, the events it wants, its signing
//! secret), `GET /v1/events/{id}`, and their delivery (deliver.rs), signed by the Standard
//! Webhooks specification (sign.rs), only to URLs outside the operator's network unless allowed
//! (target.rs). docs/webhooks.md is the contract.
//!
//! Endpoints and delivery positions are kept by the engine (`Op::Webhook`), so changes are
//! durable before they are answered and, on a cluster, replicated.

pub(crate) mod deliver;
mod render;
pub(crate) mod sign;
mod target;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use huifu_payments::webhooks::{self as domain, Endpoint, EventType, WebhookOp, EVENTS_ALL};
use huifu_payments::{Done, Op};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

pub(crate) use deliver::Deliverer;

use crate::api::scoped_idempotency_key;
use crate::auth::{Caller, Role};
use crate::constants::{
    WEBHOOK_DESCRIPTION_BYTES_MAX, WEBHOOK_LIST_SCAN_TRANSFERS_MAX,
    WEBHOOK_OVERLAP_SECONDS_DEFAULT, WEBHOOK_OVERLAP_SECONDS_MAX, WEBHOOK_REPLAY_EVENTS_MAX,
};
use crate::error::ApiError;
use crate::wire::{json_value_ok, parse_body, parse_id, Path, Prefix};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook_endpoints", post(create_endpoint).get(list_endpoints))
        .route(
            "/v1/webhook_endpoints/{id}",
            get(get_endpoint).post(update_endpoint).delete(delete_endpoint),
        )
        .route("/v1/webhook_endpoints/{id}/rotate_secret", post(rotate_secret))
        .route("/v1/webhook_endpoints/{id}/attempts", get(list_attempts))
        .route("/v1/webhook_endpoints/{id}/replay", post(replay))
        .route("/v1/events/{id}", get(get_event))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    /// Where deliveries go: an `http` or `https` URL outside the server's own networks.
    url: String,
    /// Event types (`payment.succeeded`, ...), or `["*"]` for every event.
    enabled_events: Vec<String>,
    /// Up to 1,024 bytes.
    #[serde(default)]
    description: Option<String>,
    /// For an admin or platform key: the merchant the endpoint is for (`mer_7`); none for a
    /// platform endpoint, owed every event. A merchant key makes endpoints for itself.
    #[serde(default)]
    #[schema(pattern = "^mer_[1-9][0-9]*$")]
    merchant: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    enabled_events: Option<Vec<String>>,
    #[serde(default)]
    description: Option<String>,
    /// `true` disables the endpoint, `false` enables it again (delivery resumes where it
    /// stopped).
    #[serde(default)]
    disabled: Option<bool>,
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// Seconds the old secret keeps signing beside the new one: 0 to 604,800 (7 days); 86,400
    /// when absent.
    #[serde(default)]
    overlap_seconds: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// One event to deliver again (`evt_...`).
    #[serde(default)]
    event: Option<String>,
    /// Or every event owed to the endpoint created at or after this (Unix seconds) ...
    #[serde(default)]
    created_gte: Option<u64>,
    /// ... and before this.
    #[serde(default)]
    created_lt: Option<u64>,
}

/// An endpoint as the API shows it (its secret only where the caller says so).
fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": Prefix::WebhookEndpoint.id(e.id),
        "object": "webhook_endpoint",
        "url": e.url,
        "enabled_events": events_names(e.events),
        "description": e.description,
        "merchant": (e.merchant != 0).then(|| Prefix::Merchant.id(e.merchant)),
        "status": if e.disabled.is_some() { "disabled" } else { "enabled" },
        "disabled_reason": e.disabled.map(|(_, reason)| reason.name()),
        "created": e.created / 1_000_000_000,
        "delivered_sequence": e.sequence,
    })
}

fn events_names(mask: u32) -> Vec<&'static str> {
    if mask == EVENTS_ALL {
        return vec!["*"];
    }
    EventType::ALL.into_iter().filter(|t| mask & t.bit() != 0).map(EventType::name).collect()
}

/// The reply that shows a secret: the endpoint and the newest secret.
fn with_secret(e: &Endpoint, generation: u32) -> Value {
    let mut v = endpoint_json(e);
    let secret = e.secrets.iter().find(|s| s.generation == generation).or(e.secrets.last());
    v["secret"] = secret.map(|s| sign::secret_text(&s.key)).into();
    v
}

fn events_field(names: &[String]) -> Result<u32, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid(
            "invalid_events",
            "enabled_events names at least one event type, or \"*\"",
            Some("enabled_events"),
        ));
    }
    deliver::events_mask(names).map_err(|name| {
        let known: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        ApiError::invalid(
            "invalid_events",
            format!("unknown event type `{name}`; the types are \"*\", {}", known.join(", ")),
            Some("enabled_events"),
        )
    })
}

fn description_field(text: Option<&String>) -> Result<(), ApiError> {
    match text {
        Some(d) if d.len() > WEBHOOK_DESCRIPTION_BYTES_MAX => Err(ApiError::invalid(
            "invalid_description",
            format!("description is at most {WEBHOOK_DESCRIPTION_BYTES_MAX} bytes"),
            Some("description"),
        )),
        _ => Ok(()),
    }
}

async fn url_field(state: &AppState, url: &str) -> Result<String, ApiError> {
    let allow = state.webhooks.allow_private();
    match target::check(url, allow).await {
        Ok(url) => Ok(url.to_string()),
        Err(refused @ target::Refused::Private(_)) => Err(ApiError::invalid(
            "url_not_allowed",
            format!(
                "{refused} (the server's operator can allow them with --webhooks-allow-private)"
            ),
            Some("url"),
        )),
        Err(refused) => Err(ApiError::invalid("invalid_url", refused.to_string(), Some("url"))),
    }
}

/// Applies a webhook operation; the endpoint it left and the secret generation it made.
async fn apply(state: &AppState, op: WebhookOp) -> Result<(Endpoint, u32), ApiError> {
    match state.execute(Op::Webhook(op)).await? {
        Done::Webhook(done) => match done.endpoint {
            Some(e) => Ok((*e, done.generation)),
            None => Err(ApiError::internal()),
        },
        other => Err(state.unexpected(other)),
    }
}

/// The endpoint named by a path's `id`, if the caller may see it (a merchant: its own).
async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Endpoint, ApiError> {
    let id = parse_id(Prefix::WebhookEndpoint, id, "id")?;
    let found = state.read(move |m| m.webhooks().endpoint(id).cloned()).await?;
    let e = found.ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    match caller.role {
        Role::Merchant(own) if own != e.merchant => Err(ApiError::not_found("webhook endpoint")),
        _ => Ok(e),
    }
}

fn idempotency(caller: &Caller, headers: &HeaderMap, route: &str) -> Result<u128, ApiError> {
    Ok(scoped_idempotency_key(caller, headers, route)?.unwrap_or(0))
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints",
    tag = "webhooks",
    summary = "Create a webhook endpoint",
    description = "An admin or platform key makes endpoints for the platform (every event) or for \
        a `merchant`; a merchant key for itself. The reply has the signing `secret`, shown only \
        here. A URL on a loopback or private network is refused (400 `url_not_allowed`) unless \
        the server runs with `--webhooks-allow-private`.",
    request_body = EndpointBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first endpoint and secret; 1 to 255 characters.")),
    responses(
        (status = 200, body = crate::replies::WebhookEndpointCreated, description = "The endpoint and its `secret`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn create_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: EndpointBody = parse_body(&body)?;
    let merchant = match (caller.role, &b.merchant) {
        (Role::Merchant(own), None) => own,
        (Role::Merchant(own), Some(m)) => {
            if parse_id(Prefix::Merchant, m, "merchant")? != own {
                return Err(ApiError::forbidden());
            }
            own
        }
        (_, Some(m)) => parse_id(Prefix::Merchant, m, "merchant")?,
        (_, None) => 0,
    };
    let events = events_field(&b.enabled_events)?;
    description_field(b.description.as_ref())?;
    let url = url_field(&state, &b.url).await?;
    let key = idempotency(&caller, &headers, "webhook_endpoints")?;
    let op = WebhookOp::Create {
        key,
        merchant,
        url,
        description: b.description.unwrap_or_default(),
        events,
        secret: sign::new_key(),
    };
    let (e, generation) = apply(&state, op).await?;
    tracing::info!(endpoint = e.id, merchant, by = %caller.key_id(), "webhook endpoint created");
    Ok(json_value_ok(with_secret(&e, generation)))
}

#[utoipa::path(
    get,
    path = "/v1/webhook_endpoints",
    tag = "webhooks",
    summary = "The webhook endpoints the key may see (a merchant: its own)",
    responses(
        (status = 200, body = crate::replies::WebhookEndpointList, description = "`{object: list, data}`, oldest first."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn list_endpoints(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let own = match caller.role {
        Role::Merchant(own) => Some(own),
        _ => None,
    };
    let endpoints: Vec<Endpoint> = state
        .read(move |m| {
            m.webhooks()
                .endpoints()
                .filter(|e| own.is_none_or(|own| e.merchant == own))
                .cloned()
                .collect()
        })
        .await?;
    Ok(json_value_ok(json!({
        "object": "list",
        "data": endpoints.iter().map(endpoint_json).collect::<Vec<_>>(),
    })))
}

#[utoipa::path(
    get,
    path = "/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    summary = "A webhook endpoint (never its secret)",
    params(("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`).")),
    responses(
        (status = 200, body = crate::replies::WebhookEndpoint, description = "The endpoint."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let e = find(&state, &caller, &id).await?;
    Ok(json_value_ok(endpoint_json(&e)))
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    summary = "Update a webhook endpoint: its URL, events, description, or disable or enable it",
    params(("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`).")),
    request_body = UpdateBody,
    responses(
        (status = 200, body = crate::replies::WebhookEndpoint, description = "The endpoint."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn update_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: UpdateBody = parse_body(&body)?;
    let e = find(&state, &caller, &id).await?;
    let events = b.enabled_events.as_deref().map(events_field).transpose()?;
    description_field(b.description.as_ref())?;
    let url = match &b.url {
        Some(url) => Some(url_field(&state, url).await?),
        None => None,
    };
    let op = WebhookOp::Update {
        id: e.id,
        url,
        description: b.description,
        events,
        disabled: b.disabled,
    };
    let (e, _) = apply(&state, op).await?;
    tracing::info!(endpoint = e.id, by = %caller.key_id(), "webhook endpoint updated");
    Ok(json_value_ok(endpoint_json(&e)))
}

#[utoipa::path(
    delete,
    path = "/v1/webhook_endpoints/{id}",
    tag = "webhooks",
    summary = "Delete a webhook endpoint: nothing more is delivered to it",
    params(("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`).")),
    responses(
        (status = 200, body = crate::replies::Deleted, description = "`{id, object, deleted: true}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn delete_endpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let e = find(&state, &caller, &id).await?;
    let (e, _) = apply(&state, WebhookOp::Delete { id: e.id }).await?;
    tracing::info!(endpoint = e.id, by = %caller.key_id(), "webhook endpoint deleted");
    Ok(json_value_ok(json!({
        "id": Prefix::WebhookEndpoint.id(e.id),
        "object": "webhook_endpoint",
        "deleted": true,
    })))
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints/{id}/rotate_secret",
    tag = "webhooks",
    summary = "A new signing secret; the old one signs beside it for `overlap_seconds`",
    params(
        ("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`)."),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the same secret; 1 to 255 characters."),
    ),
    request_body = RotateBody,
    responses(
        (status = 200, body = crate::replies::WebhookEndpointCreated, description = "The endpoint and its new `secret`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn rotate_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: RotateBody = if body.is_empty() { RotateBody::default() } else { parse_body(&body)? };
    let overlap_s = b.overlap_seconds.unwrap_or(WEBHOOK_OVERLAP_SECONDS_DEFAULT);
    if overlap_s > WEBHOOK_OVERLAP_SECONDS_MAX {
        return Err(ApiError::invalid(
            "invalid_overlap",
            format!("overlap_seconds is 0 to {WEBHOOK_OVERLAP_SECONDS_MAX}"),
            Some("overlap_seconds"),
        ));
    }
    let e = find(&state, &caller, &id).await?;
    let key = idempotency(&caller, &headers, "webhook_endpoints/rotate_secret")?;
    let op = WebhookOp::RotateSecret { key, id: e.id, secret: sign::new_key(), overlap_s };
    let (e, generation) = apply(&state, op).await?;
    tracing::info!(endpoint = e.id, by = %caller.key_id(), "webhook secret rotated");
    Ok(json_value_ok(with_secret(&e, generation)))
}

#[utoipa::path(
    get,
    path = "/v1/webhook_endpoints/{id}/attempts",
    tag = "webhooks",
    summary = "The latest delivery attempts at an endpoint, newest first",
    description = "Kept in the delivering node's memory: the last 100.",
    params(("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`).")),
    responses(
        (status = 200, body = crate::replies::WebhookAttemptList, description = "`{object: list, data}`."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn list_attempts(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let e = find(&state, &caller, &id).await?;
    let data: Vec<Value> = state
        .webhooks
        .attempts(e.id)
        .iter()
        .map(|a| {
            json!({
                "object": "webhook_attempt",
                "event": Prefix::Event.id(a.event),
                "sequence": a.sequence,
                "attempted_at": a.at,
                "status": if a.succeeded { "succeeded" } else { "failed" },
                "response_status": a.status,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "next_attempt_at": a.next_attempt,
            })
        })
        .collect();
    Ok(json_value_ok(json!({"object": "list", "data": data})))
}

#[utoipa::path(
    post,
    path = "/v1/webhook_endpoints/{id}/replay",
    tag = "webhooks",
    summary = "Deliver again one event, or every event owed to the endpoint in a time range",
    description = "Replayed deliveries have `sequence: null` and do not move the endpoint's \
        position. At most 10,000 events at once.",
    params(("id" = String, Path, pattern = "^we_[1-9][0-9]*$", description = "The endpoint id (`we_1`).")),
    request_body = ReplayBody,
    responses(
        (status = 200, body = crate::replies::WebhookReplay, description = "`{object: webhook_replay, events}`: how many were queued."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let b: ReplayBody = parse_body(&body)?;
    let e = find(&state, &caller, &id).await?;
    let range = match (&b.event, b.created_gte, b.created_lt) {
        (Some(event), None, None) => {
            let n = parse_id(Prefix::Event, event, "event")?;
            (n.saturating_sub(1), n)
        }
        (None, Some(from), Some(to)) if from < to => {
            let ns = |s: u64| s.saturating_mul(1_000_000_000);
            let per = domain::EVENTS_PER_TRANSFER;
            (ns(from).saturating_mul(per).saturating_sub(1), ns(to).saturating_mul(per) - 1)
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_replay",
                "name an `event`, or `created_gte` and a later `created_lt`",
                None,
            ))
        }
    };
    let endpoint = e.clone();
    let found = state
        .read(move |m| {
            let mut out = Vec::new();
            let mut after = range.0;
            while after < range.1 && out.len() <= WEBHOOK_REPLAY_EVENTS_MAX {
                let (events, reached) = domain::events_after(m, after, 8_192)?;
                for event in events.into_iter().filter(|e| e.number <= range.1) {
                    if endpoint.wants(&event) {
                        out.push((event, render::record(m, &event)));
                    }
                }
                if reached == after {
                    break;
                }
                after = reached;
            }
            Some(out)
        })
        .await?;
    let Some(found) = found else {
        return Err(ApiError::invalid(
            "events_not_in_memory",
            "these events have left the server's memory and cannot be replayed",
            None,
        ));
    };
    if found.len() > WEBHOOK_REPLAY_EVENTS_MAX {
        return Err(ApiError::invalid(
            "too_many_events",
            format!("at most {WEBHOOK_REPLAY_EVENTS_MAX} events are replayed at once: ask for a shorter range"),
            None,
        ));
    }
    if b.event.is_some() && found.is_empty() {
        return Err(ApiError::not_found("event for this endpoint"));
    }
    let count = found.len();
    let rendered = found
        .into_iter()
        .map(|(event, record)| std::sync::Arc::new(render::rendered(event, &record)))
        .collect();
    if e.disabled.is_some() || !state.webhooks.replay(e.id, rendered) {
        return Err(ApiError {
            status: axum::http::StatusCode::CONFLICT,
            ..ApiError::invalid(
                "endpoint_not_delivering",
                "the endpoint is disabled, or its deliveries have not started yet",
                None,
            )
        });
    }
    tracing::info!(endpoint = e.id, events = count, by = %caller.key_id(), "webhook events replayed");
    Ok(json_value_ok(json!({"object": "webhook_replay", "events": count})))
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "webhooks",
    summary = "One event: `{id, object: event, type, created, data: {object}}`",
    params(("id" = String, Path, pattern = "^evt_[1-9][0-9]*$", description = "The event id (`evt_...`).")),
    responses(
        (status = 200, body = crate::replies::Event, description = "The event, its object as it stands now."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn get_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let number = parse_id(Prefix::Event, &id, "id")?;
    let found =
        state.read(move |m| domain::event(m, number).map(|e| (e, render::record(m, &e)))).await?;
    let (event, record) = found.ok_or_else(|| ApiError::not_found("event"))?;
    if let Role::Merchant(own) = caller.role {
        if event.merchant != own {
            return Err(ApiError::not_found("event"));
        }
    }
    Ok(json_value_ok(render::event_json(&event, &record)))
}

/// A list of webhook events asked of `GET /v1/events`.
pub(crate) struct ListQuery {
    pub starting_after: Option<String>,
    pub limit: Option<u32>,
    pub kind: Option<String>,
    pub created_gte: Option<u64>,
    pub created_lt: Option<u64>,
}

/// `GET /v1/events` as a list: the events still in memory, oldest first, after
/// `starting_after` (an event id), of one type, in a time range, a merchant's own.
pub(crate) async fn list_events(
    state: &AppState,
    caller: &Caller,
    q: ListQuery,
) -> Result<Response, ApiError> {
    let limit = crate::wire::page_limit(q.limit, crate::constants::LIST_LIMIT_MAX)? as usize;
    let kind = match &q.kind {
        None => None,
        Some(name) => Some(EventType::from_name(name).ok_or_else(|| {
            ApiError::invalid(
                "invalid_parameter",
                format!("unknown event type `{name}`"),
                Some("type"),
            )
        })?),
    };
    let per = domain::EVENTS_PER_TRANSFER;
    let number_at = |s: u64| s.saturating_mul(1_000_000_000).saturating_mul(per);
    let mut after = match &q.starting_after {
        Some(id) => parse_id(Prefix::Event, id, "starting_after")?,
        None => 0,
    };
    if let Some(from) = q.created_gte {
        after = after.max(number_at(from).saturating_sub(1));
    }
    let until = q.created_lt.map_or(u64::MAX, |to| number_at(to).saturating_sub(1));
    let merchant = match caller.role {
        Role::Merchant(own) => Some(own),
        _ => None,
    };
    let (found, more) = state
        .read(move |m| {
            let mut found = Vec::new();
            let mut scanned = 0;
            loop {
                let Some((events, reached)) = domain::events_after(m, after, 4_096) else {
                    // Older events left memory: start at the oldest in it.
                    let next = m.ledger().horizon().saturating_mul(per) + per - 1;
                    if next <= after {
                        return (found, false);
                    }
                    after = next;
                    continue;
                };
                for e in events {
                    if e.number > until {
                        return (found, false);
                    }
                    let wanted = kind.is_none_or(|k| k == e.kind)
                        && merchant.is_none_or(|own| own == e.merchant);
                    if wanted {
                        if found.len() == limit {
                            return (found, true);
                        }
                        found.push((e, render::record(m, &e)));
                    }
                }
                scanned += 4_096;
                if reached == after || scanned >= WEBHOOK_LIST_SCAN_TRANSFERS_MAX {
                    return (found, reached != after);
                }
                after = reached;
            }
        })
        .await?;
    let data: Vec<Value> = found.iter().map(|(e, r)| render::event_json(e, r)).collect();
    Ok(json_value_ok(json!({"object": "list", "data": data, "has_more": more})))
}
