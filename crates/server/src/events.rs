//! `GET /v1/events`: an account's money movements as Server-Sent Events, so a merchant sees each
//! payment arrive. Events come from the ledger itself: each is a transfer on the account, its
//! SSE id is the transfer's timestamp (unique and increasing), so `Last-Event-ID` resumes exactly
//! where a client left off, across reconnects and server restarts.
//!
//! A stream starts at the ledger's newest entry unless the client names a position
//! (`Last-Event-ID`, or `starting_after`). Streams do not read the engine each: one dispatcher
//! per server ([`Hub`]) looks for new transfers every few milliseconds while any stream is open
//! (one read of the engine for the whole server, on a cluster node of its own applied state),
//! groups them by account, renders each subscribed account's events once and hands the same
//! bytes to every stream of that account. A stream that resumes from a position first reads the
//! ledger in pages (the history store too) up to the dispatcher's position, then takes the live
//! batches after it: no gap and no duplicate, since both are cut at one timestamp. A stream
//! whose client reads too slowly is ended when its queue is full; its client resumes with
//! `Last-Event-ID`. Shutting down ends every stream (`Hub::close`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use huifu_ledger::{AccountFilter, Transfer};
use huifu_payments::PaymentsMachine;
use serde::Deserialize;
use tokio::sync::{mpsc, watch, Notify};
use utoipa::IntoParams;

use crate::api::balances::{account_of, check_owner, entry_json, parse_party};
use crate::auth::Role;
use crate::constants::{
    EVENTS_DISPATCH_MS, EVENTS_DISPATCH_TRANSFERS_MAX, EVENTS_IDLE_LOOK_MS, EVENTS_KEEPALIVE_MS,
    EVENTS_PAGE_MAX, EVENTS_RETRY_AFTER_SECONDS, EVENTS_STREAM_QUEUE_MAX,
};
use crate::error::ApiError;
use crate::wire::{parse_decimal, Prefix, Query};
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
    /// Start after this event id (a transfer's timestamp; `0` for the whole history), like
    /// `Last-Event-ID`, which wins when both are sent (a browser's `EventSource` sends it on
    /// each reconnect to the same URL). In a list of webhook events: after this `evt_` id.
    starting_after: Option<String>,
    /// Lists webhook events (JSON) instead of streaming: at most this many, 1 to 1,000 (100 by
    /// default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Lists webhook events of this type only (`payment.succeeded`, ...).
    r#type: Option<String>,
    /// Lists webhook events created at or after this (Unix seconds).
    created_gte: Option<u64>,
    /// Lists webhook events created before this (Unix seconds).
    created_lt: Option<u64>,
}

impl EventsQuery {
    /// Whether the request asks for a list of webhook events rather than a stream: a list
    /// parameter, an `evt_` cursor, or JSON asked for and no event stream.
    fn wants_list(&self, headers: &HeaderMap) -> bool {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let json_only =
            accept.contains("application/json") && !accept.contains("text/event-stream");
        self.limit.is_some()
            || self.r#type.is_some()
            || self.created_gte.is_some()
            || self.created_lt.is_some()
            || self.starting_after.as_deref().is_some_and(|s| s.starts_with("evt_"))
            || json_only
    }
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    summary = "An account's entries as Server-Sent Events, or a list of webhook events",
    description = "Each event is a transfer on the account: `event` is `balance.credited` or \
        `balance.debited`, `id` is the transfer's timestamp, `data` is `{account, entry}`. \
        The stream starts with the next entry; send `Last-Event-ID` (or `starting_after`) to \
        start after an event id instead (`0`: the whole history), without gap or duplicate. \
        An API key may hold 256 streams open at once (429 `too_many_streams` beyond). A stream \
        ends when its client falls too far behind or the server shuts down: reconnect with \
        `Last-Event-ID`. With `limit`, `type`, `created_gte`, `created_lt`, an `evt_` \
        `starting_after`, or `Accept: application/json`, the reply is instead a JSON list of \
        webhook events, oldest first, those still in the server's memory (a merchant's own).",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Start after this event id (decimal; else 400 `invalid_last_event_id`)."),
    ),
    responses(
        (status = 200, content((String = "text/event-stream"), (crate::replies::EventList = "application/json")), description = "An endless stream of events, with keep-alive comments; or a list of webhook events."),
        ApiError,
    ),
    security(("bearer" = [])),
)]
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let caller = state.keys.authenticate(&headers)?;
    if q.wants_list(&headers) {
        if q.account.is_some() {
            return Err(ApiError::invalid(
                "invalid_parameter",
                "`account` is for the event stream, not a list of webhook events",
                Some("account"),
            ));
        }
        let list = crate::webhooks::ListQuery {
            starting_after: q.starting_after,
            limit: q.limit,
            kind: q.r#type,
            created_gte: q.created_gte,
            created_lt: q.created_lt,
        };
        return crate::webhooks::list_events(&state, &caller, list).await;
    }
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
    let last_event_id = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            Some(value.to_str().ok().and_then(parse_decimal::<u64>).ok_or_else(|| {
                ApiError::invalid(
                    "invalid_last_event_id",
                    "`Last-Event-ID` is an event id: a decimal number, as the stream sent it",
                    Some("Last-Event-ID"),
                )
            })?)
        }
    };
    let starting_after = match q.starting_after {
        None => None,
        Some(text) => Some(parse_decimal::<u64>(&text).ok_or_else(|| {
            ApiError::invalid(
                "invalid_parameter",
                "`starting_after` is an event id: a decimal number, as the stream sent it",
                Some("starting_after"),
            )
        })?),
    };
    let local = crate::cluster::follower_read();
    let (account, head) = state
        .read_as(local, move |m| {
            account_of(m, kind, entity).map(|(account, _)| (account, ledger_head(m)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    let hub = state.events.clone();
    let slot = hub.open_slot(caller.key_hash, state.limits.events_per_key_max)?;
    hub.start(&state, head);
    let object: Arc<str> = object.into();
    let mut follow = Follow {
        state,
        local,
        account,
        object,
        sent: 0,
        live: None,
        catch_up_to: None,
        closed: hub.closed.subscribe(),
        keepalive: keepalive(),
        _slot: slot,
    };
    match last_event_id.or(starting_after) {
        Some(after) => follow.sent = after,
        // From now: live from the dispatcher's position, after what the ledger held just now.
        None => {
            follow.sent = head;
            follow.subscribe();
        }
    }
    let stream = futures_util::stream::unfold(follow, |mut follow| async move {
        let bytes = follow.next().await?;
        Some((Ok::<_, Infallible>(bytes), follow))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn keepalive() -> tokio::time::Interval {
    let period = Duration::from_millis(EVENTS_KEEPALIVE_MS);
    tokio::time::interval_at(tokio::time::Instant::now() + period, period)
}

/// The timestamp of the ledger's newest transfer (in memory or moved to the history store).
fn ledger_head(m: &PaymentsMachine) -> u64 {
    let ledger = m.ledger();
    ledger.transfers().last().map_or(0, |t| t.timestamp).max(ledger.horizon())
}

/// One stream: what it sent last, and where its next events come from.
struct Follow {
    state: AppState,
    /// A follower read on a cluster node: the ledger is read from this node's own state.
    local: bool,
    account: u128,
    object: Arc<str>,
    /// The id (timestamp) of the last event sent, or where the stream starts.
    sent: u64,
    /// Once subscribed to the dispatcher: its batches.
    live: Option<(Subscription, mpsc::Receiver<Arc<Batch>>)>,
    /// The dispatcher's position when the stream subscribed: entries up to it come from the
    /// ledger, those after it from the dispatcher.
    catch_up_to: Option<u64>,
    closed: watch::Receiver<bool>,
    keepalive: tokio::time::Interval,
    _slot: Slot,
}

impl Follow {
    fn subscribe(&mut self) {
        let (subscription, rx, position) =
            self.state.events.subscribe(self.account, self.object.clone());
        self.live = Some((subscription, rx));
        self.catch_up_to = (self.sent < position).then_some(position);
    }

    /// The next bytes to write, or `None` to end the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if *self.closed.borrow() {
                return None;
            }
            if self.live.is_none() {
                // Catching up from a position: pages of the ledger until one is short, then
                // subscribe and read what came meanwhile up to the dispatcher's position.
                let page = self.page(0).await?;
                if page.len() < EVENTS_PAGE_MAX as usize {
                    self.subscribe();
                }
                if let Some(bytes) = self.send(&page) {
                    return Some(bytes);
                }
                continue;
            }
            if let Some(to) = self.catch_up_to {
                let page = if self.sent < to { self.page(to).await? } else { Vec::new() };
                if page.len() < EVENTS_PAGE_MAX as usize {
                    self.catch_up_to = None;
                }
                if let Some(bytes) = self.send(&page) {
                    return Some(bytes);
                }
                continue;
            }
            let (_, rx) = self.live.as_mut()?;
            tokio::select! {
                batch = rx.recv() => {
                    // None: the dispatcher dropped this stream (it fell behind) or shut down.
                    let batch = batch?;
                    if let Some(bytes) = batch.after(self.sent) {
                        self.sent = batch.last();
                        return Some(bytes);
                    }
                }
                _ = self.keepalive.tick() => return Some(Bytes::from_static(b":\n\n")),
                _ = self.closed.changed() => return None,
            }
        }
    }

    /// The page as one write, if it has events.
    fn send(&mut self, page: &[Transfer]) -> Option<Bytes> {
        let last = page.last()?;
        self.sent = last.timestamp;
        Some(Batch::render(&self.object, self.account, page.iter()).bytes)
    }

    /// The account's transfers after `sent`, up to `to` (0: no bound), oldest first. A full
    /// engine queue passes: it is asked again after a pause rather than the stream ended.
    async fn page(&self, to: u64) -> Option<Vec<Transfer>> {
        loop {
            let (account, since) = (self.account, self.sent);
            let page = self
                .state
                .read_as(self.local, move |m| {
                    let mut filter = AccountFilter::all(account, EVENTS_PAGE_MAX);
                    filter.timestamp_min = since.saturating_add(1);
                    filter.timestamp_max = to;
                    m.account_transfers(&filter).expect("history store read")
                })
                .await;
            match page {
                Ok(page) => return Some(page),
                Err(e) if e.is_busy() => {
                    tokio::time::sleep(Duration::from_millis(EVENTS_DISPATCH_MS)).await
                }
                Err(_) => return None,
            }
        }
    }
}

/// Events of one account from one look (or one page), rendered once as SSE and shared by its
/// streams.
struct Batch {
    timestamps: Vec<u64>,
    /// Where each event's text ends in `bytes`.
    ends: Vec<usize>,
    bytes: Bytes,
}

impl Batch {
    fn render<'a>(
        object: &str,
        account: u128,
        transfers: impl Iterator<Item = &'a Transfer>,
    ) -> Batch {
        let (mut timestamps, mut ends, mut text) = (Vec::new(), Vec::new(), Vec::new());
        for t in transfers {
            let event =
                if t.credit_account_id == account { "balance.credited" } else { "balance.debited" };
            let data = serde_json::json!({"account": object, "entry": entry_json(t, account)});
            // Writing to a Vec cannot fail.
            let _ = write!(text, "id: {}\nevent: {event}\ndata: {data}\n\n", t.timestamp);
            timestamps.push(t.timestamp);
            ends.push(text.len());
        }
        Batch { timestamps, ends, bytes: Bytes::from(text) }
    }

    /// The events after `after`, as one slice of the shared bytes.
    fn after(&self, after: u64) -> Option<Bytes> {
        let first = self.timestamps.partition_point(|&t| t <= after);
        if first == self.timestamps.len() {
            return None;
        }
        let start = first.checked_sub(1).map_or(0, |i| self.ends[i]);
        Some(self.bytes.slice(start..))
    }

    fn last(&self) -> u64 {
        self.timestamps.last().copied().unwrap_or(0)
    }
}

/// The server's event streams: who follows which account, the dispatcher that feeds them, and
/// the streams open per API key.
pub(crate) struct Hub {
    topics: Mutex<Topics>,
    /// Per API key (its hash), the streams it holds open.
    per_key: Mutex<HashMap<[u8; 32], usize>>,
    /// True once the server shuts down: every stream and the dispatcher end.
    closed: watch::Sender<bool>,
    /// A stream subscribed: an idle dispatcher looks at once.
    arrived: Notify,
    started: AtomicBool,
    dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

struct Topics {
    /// Every transfer up to this timestamp was handed to the streams subscribed then.
    position: u64,
    next_id: u64,
    by_account: HashMap<u128, Vec<Subscriber>>,
}

struct Subscriber {
    id: u64,
    object: Arc<str>,
    tx: mpsc::Sender<Arc<Batch>>,
}

/// What one look of the dispatcher found.
struct Look {
    transfers: Vec<Transfer>,
    /// The ledger's newest transfer.
    head: u64,
    /// Transfers after the dispatcher's position left memory before it saw them.
    gap: bool,
    /// More transfers than one look takes: look again at once.
    more: bool,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            topics: Mutex::new(Topics { position: 0, next_id: 0, by_account: HashMap::new() }),
            per_key: Mutex::new(HashMap::new()),
            closed: watch::channel(false).0,
            arrived: Notify::new(),
            started: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
        }
    }
}

impl Hub {
    fn topics(&self) -> MutexGuard<'_, Topics> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every stream and the dispatcher, for a server that shuts down; resolves once the
    /// dispatcher is gone (it holds the engine).
    pub(crate) async fn close(&self) {
        self.closed.send_replace(true);
        self.topics().by_account.clear();
        let dispatcher = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(dispatcher) = dispatcher {
            let _ = dispatcher.await;
        }
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Starts the dispatcher at `head` (the ledger's newest transfer), if it is not running.
    fn start(self: &Arc<Self>, state: &AppState, head: u64) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.topics().position = head;
        let task = tokio::spawn(dispatch(state.clone(), self.clone()));
        *self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// A place for one more stream of the key, or 429 when it holds `max` already.
    fn open_slot(self: &Arc<Self>, key: [u8; 32], max: usize) -> Result<Slot, ApiError> {
        if self.is_closed() {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let mut per_key = self.per_key.lock().unwrap_or_else(|e| e.into_inner());
        let open = per_key.entry(key).or_insert(0);
        if *open >= max {
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                code: "too_many_streams",
                message: format!(
                    "this API key holds {max} event streams open, the most it may; close one"
                ),
                param: None,
                retry_after: Some(EVENTS_RETRY_AFTER_SECONDS),
            });
        }
        *open += 1;
        Ok(Slot { hub: self.clone(), key })
    }

    /// Adds a stream of `account`; it gets the batches of every look after the position
    /// returned.
    fn subscribe(
        self: &Arc<Self>,
        account: u128,
        object: Arc<str>,
    ) -> (Subscription, mpsc::Receiver<Arc<Batch>>, u64) {
        let (tx, rx) = mpsc::channel(EVENTS_STREAM_QUEUE_MAX);
        let mut topics = self.topics();
        let id = topics.next_id;
        topics.next_id += 1;
        if !self.is_closed() {
            topics.by_account.entry(account).or_default().push(Subscriber { id, object, tx });
        }
        let position = topics.position;
        drop(topics);
        self.arrived.notify_one();
        (Subscription { hub: self.clone(), account, id }, rx, position)
    }

    /// Hands what a look found to the streams of each account it touches.
    fn publish(&self, look: Look, wanted: bool) {
        let mut topics = self.topics();
        if !wanted {
            // A look for the position alone: valid only if no stream came meanwhile (else the
            // next look reads from the old position).
            if topics.by_account.is_empty() {
                topics.position = topics.position.max(look.head);
            }
            return;
        }
        if look.gap {
            tracing::warn!(
                position = topics.position,
                "event streams fell behind the ledger's memory: they are ended to resume"
            );
            topics.by_account.clear();
            topics.position = look.head;
            return;
        }
        let Some(last) = look.transfers.last() else { return };
        let last = last.timestamp;
        let mut touched: HashMap<u128, Vec<&Transfer>> = HashMap::new();
        for t in &look.transfers {
            if topics.by_account.contains_key(&t.debit_account_id) {
                touched.entry(t.debit_account_id).or_default().push(t);
            }
            if t.credit_account_id != t.debit_account_id
                && topics.by_account.contains_key(&t.credit_account_id)
            {
                touched.entry(t.credit_account_id).or_default().push(t);
            }
        }
        let mut fell_behind = 0usize;
        for (account, transfers) in touched {
            let Some(subscribers) = topics.by_account.get_mut(&account) else { continue };
            // Rendered once per object the account is followed as (almost always one).
            let mut rendered: Vec<Arc<Batch>> = Vec::new();
            let mut objects: Vec<Arc<str>> = Vec::new();
            subscribers.retain(|s| {
                let batch = match objects.iter().position(|o| *o == s.object) {
                    Some(i) => rendered[i].clone(),
                    None => {
                        let batch =
                            Arc::new(Batch::render(&s.object, account, transfers.iter().copied()));
                        objects.push(s.object.clone());
                        rendered.push(batch.clone());
                        batch
                    }
                };
                match s.tx.try_send(batch) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        fell_behind += 1;
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            if subscribers.is_empty() {
                topics.by_account.remove(&account);
            }
        }
        topics.position = last;
        drop(topics);
        if fell_behind > 0 {
            tracing::info!(fell_behind, "event streams ended: their clients read too slowly");
        }
    }
}

/// The dispatcher: one look at the ledger every `EVENTS_DISPATCH_MS` while streams are open
/// (every `EVENTS_IDLE_LOOK_MS`, for the position alone, while none is), until the hub closes.
async fn dispatch(state: AppState, hub: Arc<Hub>) {
    let mut closed = hub.closed.subscribe();
    let mut more = false;
    loop {
        let idle = hub.topics().by_account.is_empty();
        if !more {
            let pause = if idle { EVENTS_IDLE_LOOK_MS } else { EVENTS_DISPATCH_MS };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
                _ = hub.arrived.notified(), if idle => {}
                _ = closed.changed() => {}
            }
        }
        if hub.is_closed() {
            return;
        }
        let wanted = !hub.topics().by_account.is_empty();
        let position = hub.topics().position;
        let take = if wanted { EVENTS_DISPATCH_TRANSFERS_MAX } else { 0 };
        match state.read_own(move |m| look_after(m, position, take)).await {
            Ok(look) => {
                more = look.more && wanted;
                hub.publish(look, wanted);
            }
            Err(_) => more = false,
        }
    }
}

/// The transfers after `position`, at most `take`, in timestamp order.
fn look_after(m: &PaymentsMachine, position: u64, take: usize) -> Look {
    let ledger = m.ledger();
    let log = ledger.transfers();
    let start = log.partition_point(|t| t.timestamp <= position);
    let end = start.saturating_add(take).min(log.len());
    Look {
        transfers: (start..end).filter_map(|p| log.get(p).copied()).collect(),
        head: ledger_head(m),
        gap: take > 0 && ledger.horizon() > position,
        more: end < log.len(),
    }
}

/// A stream's place among its key's; given back when the stream ends.
struct Slot {
    hub: Arc<Hub>,
    key: [u8; 32],
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_key = self.hub.per_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = per_key.get_mut(&self.key) {
            *open -= 1;
            if *open == 0 {
                per_key.remove(&self.key);
            }
        }
    }
}

/// A stream's place among its account's subscribers; given back when the stream ends.
struct Subscription {
    hub: Arc<Hub>,
    account: u128,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut topics = self.hub.topics();
        if let Some(subscribers) = topics.by_account.get_mut(&self.account) {
            subscribers.retain(|s| s.id != self.id);
            if subscribers.is_empty() {
                topics.by_account.remove(&self.account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(timestamp: u64, credit: bool) -> Transfer {
        let (debit, credit) = if credit { (2, 1) } else { (1, 2) };
        Transfer {
            id: u128::from(timestamp),
            debit_account_id: debit,
            credit_account_id: credit,
            amount: 5,
            timestamp,
            ..Default::default()
        }
    }

    /// A live batch that overlaps what a stream already sent gives only the rest, whole events.
    #[test]
    fn a_batch_after_a_position_is_the_events_after_it() {
        let transfers = [transfer(10, true), transfer(20, false), transfer(30, true)];
        let batch = Batch::render("mer_1", 1, transfers.iter());
        let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
        let all = text(batch.after(0)).unwrap();
        assert!(all.starts_with("id: 10\nevent: balance.credited\ndata: {"), "{all}");
        assert_eq!(all.matches("\n\n").count(), 3);
        let rest = text(batch.after(10)).unwrap();
        assert!(rest.starts_with("id: 20\nevent: balance.debited\n"), "{rest}");
        assert_eq!(text(batch.after(25)).unwrap(), all[all.find("id: 30").unwrap()..]);
        assert_eq!(text(batch.after(30)), None);
        assert_eq!(batch.last(), 30);
    }
}
