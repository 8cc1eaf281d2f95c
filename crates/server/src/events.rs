//! `GET /v1/events`: an account's money movements as Server-Sent Events, so a merchant sees each
//! payment arrive. Events come from the ledger itself: each is a transfer on the account, its
//! SSE id is the transfer's timestamp (unique and increasing), so `Last-Event-ID` resumes exactly
//! where a client left off, across reconnects and server restarts.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use huifu_ledger::AccountFilter;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::balances::{account_of, check_owner, entry_json, parse_party};
use crate::auth::Role;
use crate::constants::{EVENTS_PAGE_MAX, EVENTS_POLL_MS};
use crate::error::ApiError;
use crate::wire::{Prefix, Query};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/events", get(events))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// The object whose account to follow (`mer_1`, `usr_2`, ...); a merchant key follows its
    /// own account by default.
    account: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    summary = "An account's entries as Server-Sent Events",
    description = "Each event is a transfer on the account: `event` is `balance.credited` or \
        `balance.debited`, `id` is the transfer's timestamp, `data` is `{account, entry}`. \
        Send `Last-Event-ID` to resume after the last event received.",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id."),
    ),
    responses(
        (status = 200, body = String, content_type = "text/event-stream", description = "An endless stream of events, with keep-alive comments."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    let object = match (q.account, caller.role) {
        (Some(a), _) => a,
        (None, Role::Merchant(own)) => Prefix::Merchant.id(own),
        (None, _) => {
            return Err(ApiError::invalid(
                "missing_account",
                "name the `account` to follow",
                Some("account"),
            ))
        }
    };
    let (kind, entity) = parse_party(&object, "account")?;
    check_owner(&caller, kind, entity)?;
    let account = state
        .read(move |m| account_of(m, kind, entity).map(|(account, _)| account))
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let after: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    // Each step: the transfers after the last one sent, then a pause when there were none.
    let stream = stream::unfold(
        (state, after, Vec::<Event>::new()),
        move |(state, mut after, mut queue)| {
            let object = object.clone();
            async move {
                loop {
                    if let Some(event) = queue.pop() {
                        return Some((Ok(event), (state, after, queue)));
                    }
                    let since = after;
                    let page = state
                        .read(move |m| {
                            let mut filter = AccountFilter::all(account, EVENTS_PAGE_MAX);
                            filter.timestamp_min = since + 1;
                            m.account_transfers(&filter).expect("history store read")
                        })
                        .await;
                    let page = match page {
                        Ok(page) => page,
                        // A full queue passes: look again after the pause rather than end
                        // the stream.
                        Err(e) if e.is_busy() => Vec::new(),
                        Err(_) => return None,
                    };
                    if page.is_empty() {
                        tokio::time::sleep(Duration::from_millis(EVENTS_POLL_MS)).await;
                        continue;
                    }
                    after = page.last().map(|t| t.timestamp).unwrap_or(after);
                    // Newest last in the page; the queue pops from its end, so reverse it.
                    queue = page
                    .iter()
                    .rev()
                    .map(|t| {
                        let credit = t.credit_account_id == account;
                        Event::default()
                            .id(t.timestamp.to_string())
                            .event(if credit { "balance.credited" } else { "balance.debited" })
                            .data(serde_json::json!({"account": object, "entry": entry_json(t, account)}).to_string())
                    })
                    .collect();
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
