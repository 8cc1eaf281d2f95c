//! The deliverer: one task that finds the events each endpoint is owed, and a task per endpoint
//! that delivers them.
//!
//! Every `WEBHOOK_DISPATCH_MS` the deliverer reads the engine once (on a cluster, the leader's
//! own state; other nodes deliver nothing): the endpoints, when they changed, and the events of
//! the transfers after the lowest position of the endpoints with room in their queue, with the
//! records their deliveries carry. Objects are rendered here, off the writer thread. Each event
//! an endpoint is owed gets the endpoint's next sequence number and joins its queue; the
//! endpoint's task sends the head of its queue, up to `WEBHOOK_IN_FLIGHT_MAX` at once, and a
//! failure holds the queue until its retry. What each endpoint was delivered in order is written
//! through the engine every `WEBHOOK_POSITIONS_MS`, so it is durable and replicated; a new
//! deliverer (after a restart, on a new leader) starts from there.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use huifu_payments::webhooks::{
    self as domain, DisabledReason, Endpoint, Event, EventType, WebhookOp,
};
use huifu_payments::{Op, PaymentsMachine};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::sync::{watch, Notify};

use super::render::{self, Record};
use super::sign;
use super::target::CheckedResolver;
use crate::constants::{
    WEBHOOK_ATTEMPTS_KEPT, WEBHOOK_DISPATCH_MS, WEBHOOK_IN_FLIGHT_MAX, WEBHOOK_POSITIONS_MS,
    WEBHOOK_QUEUE_MAX, WEBHOOK_RESPONSE_BYTES_MAX, WEBHOOK_RETRY_AFTER_MAX_S,
    WEBHOOK_RETRY_SCHEDULE_S, WEBHOOK_SCAN_TRANSFERS_MAX, WEBHOOK_TIMEOUT_MS,
};
use crate::AppState;

type HttpClient = Client<HttpConnector<CheckedResolver>, Full<Bytes>>;

/// The deliverer's state, shared with the API (attempts, replays) and `/metrics`.
pub(crate) struct Deliverer {
    runs: Mutex<HashMap<u64, Arc<Run>>>,
    client: HttpClient,
    allow_private: bool,
    started: AtomicBool,
    closed: watch::Sender<bool>,
    pub(crate) stats: Stats,
}

#[derive(Default)]
pub(crate) struct Stats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub disabled: AtomicU64,
    /// From an event's ledger timestamp to its delivery, in microseconds.
    pub latency_us: Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

/// An event as its deliveries carry it: the object rendered once for every endpoint.
pub(crate) struct Rendered {
    pub event: Event,
    /// `data.object` in JSON.
    pub object: Bytes,
}

/// One event owed to one endpoint.
#[derive(Clone)]
struct Owed {
    event: Arc<Rendered>,
    /// The endpoint's sequence number for it; `None` for a replay.
    sequence: Option<u64>,
    done: bool,
}

/// One delivery attempt, as `GET /v1/webhook_endpoints/{id}/attempts` shows it.
#[derive(Clone, Debug)]
pub(crate) struct Attempt {
    pub event: u64,
    pub sequence: Option<u64>,
    /// Unix seconds.
    pub at: u64,
    pub succeeded: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// Unix seconds of the next attempt of this event, when it failed and will be tried again.
    pub next_attempt: Option<u64>,
}

/// An endpoint being delivered to.
struct Run {
    id: u64,
    /// The endpoint as last read from the engine (shared, so a delivery takes it cheaply).
    config: Mutex<Arc<Endpoint>>,
    queue: Mutex<Queue>,
    attempts: Mutex<VecDeque<Attempt>>,
    wake: Notify,
    stop: AtomicBool,
    /// Told when `stop` is set, to end a wait between retries.
    halt: Notify,
}

impl Run {
    fn halt(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        self.halt.notify_one();
    }
}

struct Queue {
    /// Event number up to which events were given sequence numbers (or found not owed).
    scanned: u64,
    next_sequence: u64,
    owed: VecDeque<Owed>,
    replays: VecDeque<Owed>,
    /// The last event delivered in order and its sequence number; whether the engine has it.
    acked: (u64, u64),
    acked_written: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Deliverer {
    pub(crate) fn new(allow_private: bool) -> Deliverer {
        let mut connector = HttpConnector::new_with_resolver(CheckedResolver { allow_private });
        connector.set_connect_timeout(Some(Duration::from_millis(WEBHOOK_TIMEOUT_MS)));
        connector.set_nodelay(true);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Deliverer {
            runs: Mutex::default(),
            client,
            allow_private,
            started: AtomicBool::new(false),
            closed: watch::channel(false).0,
            stats: Stats::default(),
        }
    }

    pub(crate) fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// Starts the deliverer once, on a thread and runtime of its own: sending webhooks never
    /// takes the thread that serves the API's requests.
    pub(crate) fn start(self: &Arc<Self>, state: &AppState) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (state, deliverer) = (state.clone(), self.clone());
        let run = move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(dispatch(state, deliverer)),
            Err(error) => tracing::error!(%error, "cannot start the webhook deliverer"),
        };
        if let Err(error) = std::thread::Builder::new().name("webhooks".into()).spawn(run) {
            tracing::error!(%error, "cannot start the webhook deliverer's thread");
        }
    }

    /// Stops delivering (on shutdown), after writing the positions reached.
    pub(crate) async fn close(&self, state: &AppState) {
        let _ = self.closed.send(true);
        self.stop_all();
        self.write_positions(state).await;
    }

    fn stop_all(&self) {
        for run in lock(&self.runs).drain().map(|(_, run)| run) {
            run.halt();
        }
    }

    /// The latest attempts at an endpoint, newest first (none when this node does not deliver).
    pub(crate) fn attempts(&self, endpoint: u64) -> Vec<Attempt> {
        let run = lock(&self.runs).get(&endpoint).cloned();
        run.map(|run| lock(&run.attempts).iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// Queues `events` to be delivered again to `endpoint`; false when it is not being
    /// delivered to (disabled, deleted, or another node delivers).
    pub(crate) fn replay(&self, endpoint: u64, events: Vec<Arc<Rendered>>) -> bool {
        let Some(run) = lock(&self.runs).get(&endpoint).cloned() else { return false };
        let mut q = lock(&run.queue);
        for event in events {
            q.replays.push_back(Owed { event, sequence: None, done: false });
        }
        drop(q);
        run.wake.notify_one();
        true
    }

    /// The deliverer's part of `/metrics`.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        let _ = writeln!(
            out,
            "# HELP huifu_webhook_deliveries_total Webhook delivery attempts by result."
        );
        let _ = writeln!(out, "# TYPE huifu_webhook_deliveries_total counter");
        for (result, n) in [("succeeded", &s.delivered), ("failed", &s.failed)] {
            let n = n.load(Ordering::Relaxed);
            let _ = writeln!(out, "huifu_webhook_deliveries_total{{result=\"{result}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP huifu_webhook_backlog_events Events read for endpoints and not yet delivered."
        );
        let _ = writeln!(out, "# TYPE huifu_webhook_backlog_events gauge");
        let _ = writeln!(out, "huifu_webhook_backlog_events {}", self.backlog());
        let _ =
            writeln!(out, "# HELP huifu_webhook_endpoints_disabled Webhook endpoints disabled.");
        let _ = writeln!(out, "# TYPE huifu_webhook_endpoints_disabled gauge");
        let _ = writeln!(
            out,
            "huifu_webhook_endpoints_disabled {}",
            s.disabled.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP huifu_webhook_delivery_seconds From an event's commit to its delivery (quantiles)."
        );
        let _ = writeln!(out, "# TYPE huifu_webhook_delivery_seconds summary");
        let h = lock(&s.latency_us);
        if let Some(h) = h.as_ref() {
            for q in [0.5, 0.9, 0.99, 0.999] {
                let v = h.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(out, "huifu_webhook_delivery_seconds{{quantile=\"{q}\"}} {v}");
            }
            let _ = writeln!(out, "huifu_webhook_delivery_seconds_count {}", h.len());
        } else {
            let _ = writeln!(out, "huifu_webhook_delivery_seconds_count 0");
        }
    }

    /// Events read ahead and not yet delivered, over every endpoint.
    pub(crate) fn backlog(&self) -> usize {
        let runs: Vec<_> = lock(&self.runs).values().cloned().collect();
        runs.iter().map(|run| lock(&run.queue).owed.len()).sum()
    }

    /// The lowest position of the endpoints with room for more events.
    fn low(&self) -> Option<u64> {
        let runs: Vec<_> = lock(&self.runs).values().cloned().collect();
        runs.iter()
            .filter_map(|run| {
                let q = lock(&run.queue);
                (q.owed.len() < WEBHOOK_QUEUE_MAX).then_some(q.scanned)
            })
            .min()
    }

    /// Makes the runs match the endpoints: a run for each enabled endpoint, none for others.
    fn sync(self: &Arc<Self>, state: &AppState, endpoints: Vec<Endpoint>) {
        let mut runs = lock(&self.runs);
        let enabled: HashMap<u64, Endpoint> =
            endpoints.iter().filter(|e| e.disabled.is_none()).map(|e| (e.id, e.clone())).collect();
        self.stats.disabled.store(
            endpoints.iter().filter(|e| e.disabled.is_some()).count() as u64,
            Ordering::Relaxed,
        );
        runs.retain(|id, run| {
            let keep = enabled.contains_key(id) && !run.stop.load(Ordering::SeqCst);
            if !keep {
                run.halt();
            }
            keep
        });
        for (id, endpoint) in enabled {
            if let Some(run) = runs.get(&id) {
                *lock(&run.config) = Arc::new(endpoint);
                continue;
            }
            let queue = Queue {
                scanned: endpoint.delivered,
                next_sequence: endpoint.sequence + 1,
                owed: VecDeque::new(),
                replays: VecDeque::new(),
                acked: (endpoint.delivered, endpoint.sequence),
                acked_written: true,
            };
            let run = Arc::new(Run {
                id,
                config: Mutex::new(Arc::new(endpoint)),
                queue: Mutex::new(queue),
                attempts: Mutex::default(),
                wake: Notify::new(),
                stop: AtomicBool::new(false),
                halt: Notify::new(),
            });
            runs.insert(id, run.clone());
            tokio::spawn(deliver(state.clone(), self.clone(), run));
        }
    }

    /// Gives each endpoint that was at or after `low` the events it is owed, up to `reached`.
    /// A merchant's endpoint looks only at its merchant's events.
    fn distribute(&self, events: &[Arc<Rendered>], low: u64, reached: u64) {
        let mut by_merchant: HashMap<u64, Vec<&Arc<Rendered>>> = HashMap::new();
        for e in events {
            by_merchant.entry(e.event.merchant).or_default().push(e);
        }
        let all: Vec<&Arc<Rendered>> = events.iter().collect();
        let runs: Vec<_> = lock(&self.runs).values().cloned().collect();
        for run in runs {
            let (merchant, mask) = {
                let config = lock(&run.config);
                (config.merchant, config.events)
            };
            let mut q = lock(&run.queue);
            if q.scanned < low || q.scanned >= reached {
                continue;
            }
            let before = q.owed.len();
            let none = Vec::new();
            let candidates = match merchant {
                0 => &all,
                m => by_merchant.get(&m).unwrap_or(&none),
            };
            let scanned = q.scanned;
            for e in candidates.iter().filter(|e| e.event.number > scanned) {
                if mask & e.event.kind.bit() != 0 {
                    let sequence = q.next_sequence;
                    q.next_sequence += 1;
                    q.owed.push_back(Owed {
                        event: (*e).clone(),
                        sequence: Some(sequence),
                        done: false,
                    });
                }
            }
            q.scanned = reached;
            let added = q.owed.len() > before;
            drop(q);
            if added {
                run.wake.notify_one();
            }
        }
    }

    /// Writes what each endpoint was delivered in order since the last write.
    async fn write_positions(&self, state: &AppState) {
        let runs: Vec<_> = lock(&self.runs).values().cloned().collect();
        let mut positions = Vec::new();
        for run in &runs {
            let mut q = lock(&run.queue);
            if !q.acked_written {
                q.acked_written = true;
                positions.push((run.id, q.acked.0, q.acked.1));
            }
        }
        if positions.is_empty() {
            return;
        }
        let ids: Vec<u64> = positions.iter().map(|p| p.0).collect();
        if let Err(error) = state.execute(Op::Webhook(WebhookOp::Delivered(positions))).await {
            tracing::warn!(error = %error.message, "cannot write webhook delivery positions; will try again");
            for run in runs.iter().filter(|r| ids.contains(&r.id)) {
                lock(&run.queue).acked_written = false;
            }
        }
    }

    /// Sends one event to one endpoint.
    async fn attempt(&self, endpoint: &Endpoint, owed: &Owed) -> (Attempt, Option<u64>) {
        let id = format!("evt_{}", owed.event.event.number);
        let body = render::delivery_body(&owed.event, endpoint.id, owed.sequence);
        let now_ns = unix_now_ns();
        let timestamp = now_ns / 1_000_000_000;
        let keys = endpoint.signing(now_ns).map(|s| s.key.as_slice());
        let signature = sign::header(keys, &id, timestamp, &body);
        let request = axum::http::Request::post(endpoint.url.as_str())
            .header("content-type", "application/json")
            .header("user-agent", concat!("huifu-webhooks/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)));
        let started = Instant::now();
        let mut attempt = Attempt {
            event: owed.event.event.number,
            sequence: owed.sequence,
            at: timestamp,
            succeeded: false,
            status: None,
            latency_ms: 0,
            error: None,
            next_attempt: None,
        };
        let mut retry_after = None;
        let request = match request {
            Ok(request) => request,
            Err(error) => {
                attempt.error = Some(format!("the URL cannot be requested: {error}"));
                return (attempt, None);
            }
        };
        let timeout = Duration::from_millis(WEBHOOK_TIMEOUT_MS);
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => attempt.error = Some(format!("no answer within {WEBHOOK_TIMEOUT_MS} ms")),
            Ok(Err(error)) => attempt.error = Some(connection_error(&error)),
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                attempt.status = Some(status);
                attempt.succeeded = response.status().is_success();
                if matches!(status, 429 | 503) {
                    retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                }
                // Read (a bounded part of) the answer, so the connection can be used again.
                let limited =
                    http_body_util::Limited::new(response.into_body(), WEBHOOK_RESPONSE_BYTES_MAX);
                let _ = tokio::time::timeout(timeout, limited.collect()).await;
            }
        }
        attempt.latency_ms = started.elapsed().as_millis() as u64;
        if attempt.succeeded {
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            let latency_us = unix_now_ns().saturating_sub(owed.event.event.timestamp()) / 1_000;
            let mut h = lock(&self.stats.latency_us);
            let h = h.get_or_insert_with(|| {
                hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("bounds")
            });
            let _ = h.record(latency_us.clamp(1, 3_600_000_000));
        } else {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        (attempt, retry_after)
    }

    async fn disable(&self, state: &AppState, run: &Run, reason: DisabledReason) {
        run.halt();
        self.write_positions(state).await;
        let op = Op::Webhook(WebhookOp::Disable { id: run.id, reason });
        match state.execute(op).await {
            Ok(_) => tracing::warn!(
                endpoint = run.id,
                reason = reason.name(),
                "webhook endpoint disabled"
            ),
            Err(error) => {
                tracing::error!(error = %error.message, endpoint = run.id, "cannot disable a webhook endpoint")
            }
        }
    }
}

/// Says why a request failed without the client library's nesting.
fn connection_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Events with their records, and the event number they reach.
type Found = (Vec<(Event, Record)>, u64);

/// What one look at the engine found.
struct Look {
    version: u64,
    endpoints: Option<Vec<Endpoint>>,
    /// The events after the position asked for, with their records, and how far they go; `None`
    /// when no position was asked, `Some(None)` when the events asked for left memory.
    events: Option<Option<Found>>,
}

fn look(m: &PaymentsMachine, known: u64, low: Option<u64>) -> Look {
    let webhooks = m.webhooks();
    let version = webhooks.version();
    let endpoints = (version != known).then(|| webhooks.endpoints().cloned().collect());
    let events = low.map(|low| {
        domain::events_after(m, low, WEBHOOK_SCAN_TRANSFERS_MAX).map(|(events, reached)| {
            let records = events.into_iter().map(|e| (e, render::record(m, &e))).collect();
            (records, reached)
        })
    });
    Look { version, endpoints, events }
}

/// The deliverer's task: looks, hands out events, writes positions, until the server closes.
async fn dispatch(state: AppState, d: Arc<Deliverer>) {
    let mut closed = d.closed.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(WEBHOOK_DISPATCH_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut version = u64::MAX;
    let mut written = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closed.changed() => return,
        }
        if !state.delivers_webhooks() {
            // Another node delivers; start afresh from the log's positions if this one leads.
            if version != u64::MAX {
                d.stop_all();
                version = u64::MAX;
            }
            continue;
        }
        let low = d.low();
        let known = version;
        let Ok(found) = state.read_own(move |m| look(m, known, low)).await else { continue };
        if let Some(endpoints) = found.endpoints {
            d.sync(&state, endpoints);
        }
        version = found.version;
        match (low, found.events) {
            (Some(low), Some(Some((events, reached)))) => {
                let rendered: Vec<Arc<Rendered>> = events
                    .into_iter()
                    .map(|(event, record)| Arc::new(render::rendered(event, &record)))
                    .collect();
                d.distribute(&rendered, low, reached);
            }
            (Some(low), Some(None)) => {
                tracing::error!(
                    position = low,
                    "webhook events left memory before they were delivered; they are skipped"
                );
                let reached = state.read_own(domain::head).await.unwrap_or(low);
                d.distribute(&[], low, reached);
            }
            _ => {}
        }
        if written.elapsed() >= Duration::from_millis(WEBHOOK_POSITIONS_MS) {
            written = Instant::now();
            d.write_positions(&state).await;
        }
    }
}

/// An endpoint's task: sends the head of its queue, waits out failures, until stopped.
async fn deliver(state: AppState, d: Arc<Deliverer>, run: Arc<Run>) {
    let mut failures = 0usize;
    loop {
        if run.stop.load(Ordering::SeqCst) {
            return;
        }
        let (batch, replays) = {
            let mut q = lock(&run.queue);
            let batch: Vec<Owed> =
                q.owed.iter().filter(|o| !o.done).take(WEBHOOK_IN_FLIGHT_MAX).cloned().collect();
            let room = WEBHOOK_IN_FLIGHT_MAX.saturating_sub(batch.len()).max(1);
            let replays: Vec<Owed> = (0..room).map_while(|_| q.replays.pop_front()).collect();
            (batch, replays)
        };
        if batch.is_empty() && replays.is_empty() {
            let woken = run.wake.notified();
            if run.stop.load(Ordering::SeqCst) {
                return;
            }
            let idle =
                lock(&run.queue).owed.iter().all(|o| o.done) && lock(&run.queue).replays.is_empty();
            if idle {
                woken.await;
            }
            continue;
        }
        let endpoint = lock(&run.config).clone();
        let sends = batch.iter().chain(&replays).map(|owed| d.attempt(&endpoint, owed));
        let results = futures_util::future::join_all(sends).await;
        let (sent, replayed) = results.split_at(batch.len());
        let mut failed = None;
        let mut progress = false;
        {
            let mut q = lock(&run.queue);
            for (owed, (attempt, retry_after)) in batch.iter().zip(sent) {
                if attempt.succeeded {
                    if let Some(o) = q.owed.iter_mut().find(|o| o.sequence == owed.sequence) {
                        o.done = true;
                    }
                } else if failed.is_none() {
                    failed = Some((attempt.status, *retry_after));
                }
            }
            while q.owed.front().is_some_and(|o| o.done) {
                let o = q.owed.pop_front().expect("front");
                q.acked = (o.event.event.number, o.sequence.unwrap_or(q.acked.1));
                q.acked_written = false;
                progress = true;
            }
        }
        if progress {
            failures = 0;
        }
        let next = match failed {
            None => None,
            Some((Some(410), _)) => {
                record(&run, sent.iter().chain(replayed).map(|r| r.0.clone()), None);
                d.disable(&state, &run, DisabledReason::Gone).await;
                return;
            }
            Some((_, retry_after)) => {
                failures += 1;
                if failures >= WEBHOOK_RETRY_SCHEDULE_S.len() {
                    record(&run, sent.iter().chain(replayed).map(|r| r.0.clone()), None);
                    d.disable(&state, &run, DisabledReason::Failing).await;
                    return;
                }
                let scheduled = WEBHOOK_RETRY_SCHEDULE_S[failures];
                let wait = retry_after.map_or(scheduled, |s| s.min(WEBHOOK_RETRY_AFTER_MAX_S));
                Some(wait)
            }
        };
        let next_at = next.map(|wait| unix_now_ns() / 1_000_000_000 + wait);
        record(&run, sent.iter().chain(replayed).map(|r| r.0.clone()), next_at);
        if let Some(wait) = next {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
                _ = run.halt.notified() => return,
            }
        }
    }
}

/// Keeps the latest attempts; a failed one says when its event is tried next.
fn record(run: &Run, attempts: impl Iterator<Item = Attempt>, next_at: Option<u64>) {
    let mut kept = lock(&run.attempts);
    for mut attempt in attempts {
        if !attempt.succeeded && attempt.sequence.is_some() {
            attempt.next_attempt = next_at;
        }
        kept.push_back(attempt);
        while kept.len() > WEBHOOK_ATTEMPTS_KEPT {
            kept.pop_front();
        }
    }
}

/// The event types an `enabled_events` list names, as a mask; `Err` names the first unknown.
pub(crate) fn events_mask(names: &[String]) -> Result<u32, String> {
    let mut mask = 0;
    for name in names {
        if name == "*" {
            mask = domain::EVENTS_ALL;
            continue;
        }
        mask |= EventType::from_name(name).ok_or_else(|| name.clone())?.bit();
    }
    Ok(mask)
}
