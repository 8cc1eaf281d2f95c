//! Webhook receivers for a day over HTTP (`huifu simulate --server URL --webhook-receivers N`):
//! local HTTP servers that stand for merchants' webhook endpoints. Each checks the signature of
//! every delivery, answers as a real endpoint might (at once, slowly, failing now and then, or
//! gone for good) and records what arrived. At the end of the day, `Fleet::settle` waits for
//! delivery to catch up and checks that the server delivered every event owed, without a gap in
//! the sequence, signed, and every payment the day saw acknowledged for a merchant as a
//! `payment.succeeded` to that merchant's endpoint (docs/webhooks.md is the contract).
//!
//! Signatures follow Standard Webhooks: `webhook-signature` holds space-separated
//! `v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, the key being the
//! base64-decoded part of the secret after `whsec_`; any one matching is enough (while a secret
//! rotation overlaps, two are sent).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hdrhistogram::Histogram;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::http_client::{Api, ApiError};

/// What a webhook secret starts with; the rest is the signing key in base64.
pub const SECRET_PREFIX: &str = "whsec_";
/// A delivery whose timestamp is further than this from the receiver's clock is refused: the
/// specification's defence against a captured request sent again later.
pub const TIMESTAMP_TOLERANCE_S: u64 = 300;
/// The path every receiver listens on.
const HOOK_PATH: &str = "/hook";
/// How long a `Slow` receiver takes to answer: well within the server's timeout, enough to hold
/// its deliveries in flight.
const SLOW_REPLY_MS: u64 = 200;
/// A `Flaky` receiver fails the first attempt of every sequence number divisible by this.
const FLAKY_EVERY: u64 = 20;
/// Worker threads of the receivers' runtime: they only parse, verify and record.
const RECEIVER_THREADS: usize = 2;
/// The server may deliver as soon as an endpoint exists, before its creation reply (with the
/// secret) has been read here: a delivery that comes first waits this long for the secret.
const SECRET_WAIT_MS: u64 = 5_000;
/// The closing wait for delivery to catch up lasts at most this long.
const SETTLE_WAIT_S: u64 = 120;
/// While waiting, a line of progress this often.
const SETTLE_PROGRESS_S: u64 = 5;
/// While waiting, the endpoints are read again this often.
const SETTLE_POLL_MS: u64 = 500;
/// At most this many items (sequence numbers, payments) are named in one problem.
const PROBLEM_ITEMS_MAX: usize = 10;

type HmacSha256 = Hmac<Sha256>;

/// The signing key of a secret (`whsec_<base64>`); `None` when it is not one.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        mac.update(part);
    }
    mac
}

/// The signature (`v1,<base64>`) of a delivery.
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body).finalize().into_bytes()))
}

/// Whether any `v1` signature of a `webhook-signature` header is the delivery's, each compared
/// in constant time (a timing difference would let a forger find a signature byte by byte).
pub fn signature_matches(key: &[u8], id: &str, timestamp: &str, body: &[u8], header: &str) -> bool {
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|tag| mac(key, id, timestamp, body).verify_slice(&tag).is_ok())
}

/// Whether a delivery is authentic and fresh: its timestamp within `TIMESTAMP_TOLERANCE_S` of
/// `now_s` (Unix seconds) and one of its signatures matching.
pub fn verify(
    key: &[u8],
    id: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now_s: u64,
) -> bool {
    let Ok(sent) = timestamp.parse::<u64>() else { return false };
    now_s.abs_diff(sent) <= TIMESTAMP_TOLERANCE_S
        && signature_matches(key, id, timestamp, body, header)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How a receiver answers a delivery it verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 at once.
    Ok,
    /// 200 after `SLOW_REPLY_MS`.
    Slow,
    /// 500 to the first attempt of every `FLAKY_EVERY`th sequence number, 200 otherwise: the
    /// server must retry, and hold the events behind it.
    Flaky,
    /// 410 to everything: the server must disable the endpoint (`gone`).
    Gone,
}

impl Behaviour {
    /// The behaviours of `n` receivers, for the first `n` merchants (the busiest first): one
    /// `Gone` (the second; none when there is only one receiver), a tenth `Slow` and a tenth
    /// `Flaky` (rounded) among the least busy, where their stalls cost the least waiting, and
    /// the rest `Ok`.
    pub fn plan(n: usize) -> Vec<Behaviour> {
        let mut plan = vec![Behaviour::Ok; n];
        if n < 2 {
            return plan;
        }
        plan[1] = Behaviour::Gone;
        let tenth = (n + 5) / 10;
        for i in 0..tenth {
            plan[n - 1 - i] = Behaviour::Flaky;
            plan[n - 1 - tenth - i] = Behaviour::Slow;
        }
        plan
    }

    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Ok => "ok",
            Behaviour::Slow => "slow",
            Behaviour::Flaky => "flaky",
            Behaviour::Gone => "gone",
        }
    }
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The body's `endpoint` (`we_3`).
    pub endpoint: String,
    /// The `webhook-id` header: the event id the signature covers.
    pub webhook_id: String,
    /// The body's `id`, `type`, `sequence` and `data.object.id`.
    pub event: String,
    pub kind: String,
    pub sequence: u64,
    pub object: String,
    pub arrived: Instant,
    pub signature_ok: bool,
    /// The status the receiver answered.
    pub status: u16,
}

impl Delivery {
    /// Whether the receiver took it (2xx): only then does it count as delivered.
    pub fn taken(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The record of a request, before its answer is known.
    fn of(headers: &HeaderMap, body: &[u8], arrived: Instant, signature_ok: bool) -> Delivery {
        let event: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        Delivery {
            endpoint: text(&event["endpoint"]),
            webhook_id: header(headers, "webhook-id").to_owned(),
            event: text(&event["id"]),
            kind: text(&event["type"]),
            sequence: event["sequence"].as_u64().unwrap_or(0),
            object: text(&event["data"]["object"]["id"]),
            arrived,
            signature_ok,
            status: 0,
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// One receiver's state, shared with its request handler.
struct Receiver {
    behaviour: Behaviour,
    /// The signing key, once the endpoint's creation reply gave its secret.
    key: watch::Sender<Option<Vec<u8>>>,
    /// Sequence numbers a `Flaky` receiver has failed once already.
    failed: Mutex<HashSet<u64>>,
    deliveries: Mutex<Vec<Delivery>>,
}

impl Receiver {
    fn new(behaviour: Behaviour) -> Receiver {
        Receiver {
            behaviour,
            key: watch::Sender::new(None),
            failed: Mutex::new(HashSet::new()),
            deliveries: Mutex::new(Vec::new()),
        }
    }

    /// The signing key, waiting a little for it when it is not known yet.
    async fn key(&self) -> Option<Vec<u8>> {
        let mut known = self.key.subscribe();
        let wait = Duration::from_millis(SECRET_WAIT_MS);
        let key = match tokio::time::timeout(wait, known.wait_for(Option::is_some)).await {
            Ok(Ok(key)) => key.clone(),
            _ => None,
        };
        key
    }

    /// The answer to an authentic delivery of `sequence`.
    async fn answer(&self, sequence: u64) -> StatusCode {
        match self.behaviour {
            Behaviour::Ok => StatusCode::OK,
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_millis(SLOW_REPLY_MS)).await;
                StatusCode::OK
            }
            Behaviour::Flaky => {
                let due = sequence > 0 && sequence.is_multiple_of(FLAKY_EVERY);
                if due && self.failed.lock().expect("lock").insert(sequence) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
            Behaviour::Gone => StatusCode::GONE,
        }
    }
}

/// A delivery: verified, answered by the receiver's behaviour (401 when forged, as a real
/// receiver would), recorded before the answer leaves, so that a position the server wrote
/// after a 2xx is never ahead of the record.
async fn hook(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let arrived = Instant::now();
    let signature_ok = match receiver.key().await {
        Some(key) => verify(
            &key,
            header(&headers, "webhook-id"),
            header(&headers, "webhook-timestamp"),
            &body,
            header(&headers, "webhook-signature"),
            unix_now(),
        ),
        None => false,
    };
    let mut delivery = Delivery::of(&headers, &body, arrived, signature_ok);
    let status = if signature_ok {
        receiver.answer(delivery.sequence).await
    } else {
        StatusCode::UNAUTHORIZED
    };
    delivery.status = status.as_u16();
    receiver.deliveries.lock().expect("lock").push(delivery);
    status
}

/// Running receivers, each an HTTP server on its own loopback port; they stop when dropped.
pub struct Receivers {
    /// Serves every receiver; dropping it stops them.
    _runtime: Runtime,
    receivers: Vec<(u16, Arc<Receiver>)>,
}

impl Receivers {
    /// One receiver per behaviour, each on a free port of 127.0.0.1.
    pub fn start(behaviours: &[Behaviour]) -> std::io::Result<Receivers> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RECEIVER_THREADS)
            .thread_name("webhook-receiver")
            .enable_all()
            .build()?;
        let receivers = behaviours
            .iter()
            .map(|&b| start_receiver(&runtime, b))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Receivers { _runtime: runtime, receivers })
    }

    pub fn len(&self) -> usize {
        self.receivers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    /// The port of receiver `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.receivers[i].0
    }

    /// The URL of receiver `i`.
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}{HOOK_PATH}", self.port(i))
    }

    pub fn behaviour(&self, i: usize) -> Behaviour {
        self.receivers[i].1.behaviour
    }

    /// Gives receiver `i` its endpoint's secret; false when it is not a `whsec_` secret.
    pub fn set_secret(&self, i: usize, secret: &str) -> bool {
        let Some(key) = secret_key(secret) else { return false };
        self.receivers[i].1.key.send_replace(Some(key));
        true
    }

    /// Runs `f` on what receiver `i` recorded so far (without copying it: a day's worth is
    /// large), holding back its next record meanwhile.
    pub fn with_deliveries<R>(&self, i: usize, f: impl FnOnce(&[Delivery]) -> R) -> R {
        f(&self.receivers[i].1.deliveries.lock().expect("lock"))
    }
}

fn start_receiver(
    runtime: &Runtime,
    behaviour: Behaviour,
) -> std::io::Result<(u16, Arc<Receiver>)> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))?;
    let port = listener.local_addr()?.port();
    let receiver = Arc::new(Receiver::new(behaviour));
    let app = Router::new().route(HOOK_PATH, post(hook)).with_state(receiver.clone());
    runtime.spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(port, error = %e, "a webhook receiver stopped");
        }
    });
    Ok((port, receiver))
}

/// The payments a day saw acknowledged as succeeded (a wallet payment made, a channel payment
/// captured) to the merchants that have a receiver, with when each acknowledgement came: each
/// must arrive as a `payment.succeeded`, and the time between is the latency a merchant sees.
#[derive(Debug, Default)]
pub struct PaymentAcks {
    /// Merchant (`mer_7`) → receiver index. Empty until the endpoints exist, so that only the
    /// payments after them are noted: a new endpoint is owed the events after its creation.
    merchants: RwLock<HashMap<String, usize>>,
    /// Per receiver: payment id → when its acknowledgement came.
    acks: Mutex<Vec<HashMap<String, Instant>>>,
}

impl PaymentAcks {
    /// From now on, notes the payments to `merchants[i]` for receiver `i`.
    pub fn watch(&self, merchants: &[String]) {
        *self.acks.lock().expect("lock") = vec![HashMap::new(); merchants.len()];
        let index = merchants.iter().enumerate().map(|(i, m)| (m.clone(), i)).collect();
        *self.merchants.write().expect("lock") = index;
    }

    /// Notes an acknowledged reply if it is a succeeded payment to a watched merchant.
    pub fn note(&self, reply: &Value) {
        if reply["object"] != "payment" || reply["status"] != "succeeded" {
            return;
        }
        let (Some(merchant), Some(id)) = (reply["merchant"].as_str(), reply["id"].as_str()) else {
            return;
        };
        let Some(&i) = self.merchants.read().expect("lock").get(merchant) else { return };
        if let Some(acks) = self.acks.lock().expect("lock").get_mut(i) {
            acks.entry(id.to_owned()).or_insert_with(Instant::now);
        }
    }

    /// What was noted, per receiver; nothing more is noted after.
    pub fn take(&self) -> Vec<HashMap<String, Instant>> {
        self.merchants.write().expect("lock").clear();
        std::mem::take(&mut *self.acks.lock().expect("lock"))
    }
}

/// An endpoint as the server reports it (`GET /v1/webhook_endpoints/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointState {
    pub status: String,
    pub disabled_reason: Option<String>,
    pub delivered_sequence: u64,
}

impl EndpointState {
    pub fn of(reply: &Value) -> EndpointState {
        EndpointState {
            status: reply["status"].as_str().unwrap_or("").to_owned(),
            disabled_reason: reply["disabled_reason"].as_str().map(str::to_owned),
            delivered_sequence: reply["delivered_sequence"].as_u64().unwrap_or(0),
        }
    }
}

/// An endpoint made for a receiver.
#[derive(Clone, Debug)]
pub struct Watched {
    /// `we_3`.
    pub id: String,
    /// `mer_7`.
    pub merchant: String,
    pub behaviour: Behaviour,
}

/// What the deliveries to one endpoint add up to.
#[derive(Debug, Default)]
struct Tally {
    /// The highest sequence number that arrived.
    max_sequence: u64,
    /// Sequence numbers taken (answered 2xx).
    taken: BTreeSet<u64>,
    /// Distinct events taken.
    events: u64,
    /// Requests for an event that had arrived before.
    retried: u64,
    forged: u64,
    /// Sequence numbers answered otherwise than 2xx and not taken since: a retry is owed.
    pending: u64,
}

fn tally(deliveries: &[Delivery]) -> Tally {
    let mut t = Tally::default();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut taken_events: HashSet<&str> = HashSet::new();
    let mut refused: BTreeSet<u64> = BTreeSet::new();
    for d in deliveries {
        t.max_sequence = t.max_sequence.max(d.sequence);
        t.retried += u64::from(!seen.insert(d.event.as_str()));
        t.forged += u64::from(!d.signature_ok);
        if d.taken() {
            t.taken.insert(d.sequence);
            taken_events.insert(d.event.as_str());
        } else {
            refused.insert(d.sequence);
        }
    }
    t.events = taken_events.len() as u64;
    t.pending = refused.iter().filter(|s| !t.taken.contains(s)).count() as u64;
    t
}

/// For each payment owed, when its `payment.succeeded` was taken; `None` when it was not.
fn payment_arrivals(
    deliveries: &[Delivery],
    owed: &HashMap<String, Instant>,
) -> Vec<(String, Instant, Option<Instant>)> {
    let mut arrived: HashMap<&str, Instant> = HashMap::new();
    for d in deliveries.iter().filter(|d| d.taken() && d.kind == "payment.succeeded") {
        arrived.entry(d.object.as_str()).or_insert(d.arrived);
    }
    let mut all: Vec<_> = owed
        .iter()
        .map(|(id, &ack)| (id.clone(), ack, arrived.get(id.as_str()).copied()))
        .collect();
    all.sort_by_key(|(_, ack, _)| *ack);
    all
}

/// Why an endpoint is not done yet, or `None` when nothing more is to come to it: its position
/// at the highest sequence its receiver saw, no retry owed, every payment owed arrived. A
/// `Gone` one is done once disabled (or when nothing came and nothing is owed to it); one
/// disabled otherwise gets nothing more (the check says why).
fn behind(
    w: &Watched,
    state: &EndpointState,
    deliveries: &[Delivery],
    owed: &HashMap<String, Instant>,
) -> Option<String> {
    if w.behaviour == Behaviour::Gone {
        let idle = deliveries.is_empty() && owed.is_empty();
        return (state.status != "disabled" && !idle)
            .then(|| format!("{} (gone) is still {}", w.id, state.status));
    }
    if state.status != "enabled" {
        return None;
    }
    let t = tally(deliveries);
    if state.delivered_sequence != t.max_sequence {
        return Some(format!(
            "{} delivered to {} of {} seen",
            w.id, state.delivered_sequence, t.max_sequence
        ));
    }
    if t.pending > 0 {
        return Some(format!("{} has {} retries pending", w.id, t.pending));
    }
    let missing = payment_arrivals(deliveries, owed).iter().filter(|p| p.2.is_none()).count();
    (missing > 0).then(|| format!("{} awaits {missing} payments", w.id))
}

/// The first few of `items`, and how many there are in all.
fn some_of<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(PROBLEM_ITEMS_MAX).map(T::to_string).collect();
    let more = items.len().saturating_sub(PROBLEM_ITEMS_MAX);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// The checks common to every endpoint: authentic, consistent deliveries.
fn check_deliveries(w: &Watched, deliveries: &[Delivery], t: &Tally, problems: &mut Vec<String>) {
    if t.forged > 0 {
        problems.push(format!("{}: {} deliveries with no valid signature", w.id, t.forged));
    }
    let strays = deliveries.iter().filter(|d| d.endpoint != w.id || d.webhook_id != d.event);
    let strays: Vec<String> =
        strays.map(|d| format!("{} as {} for {}", d.webhook_id, d.event, d.endpoint)).collect();
    if !strays.is_empty() {
        problems.push(format!("{}: mislabelled deliveries: {}", w.id, some_of(&strays)));
    }
    let mut by_sequence: HashMap<u64, &str> = HashMap::new();
    let clashes: Vec<u64> = deliveries
        .iter()
        .filter(|d| *by_sequence.entry(d.sequence).or_insert(d.event.as_str()) != d.event)
        .map(|d| d.sequence)
        .collect();
    if !clashes.is_empty() {
        problems.push(format!("{}: one sequence number, two events: {}", w.id, some_of(&clashes)));
    }
}

/// The checks of an endpoint that takes its deliveries: all in sequence, all payments owed.
fn check_taking(
    w: &Watched,
    state: &EndpointState,
    deliveries: &[Delivery],
    owed: &HashMap<String, Instant>,
    t: &Tally,
    problems: &mut Vec<String>,
) -> Vec<u64> {
    let mut latencies = Vec::new();
    if state.status != "enabled" {
        let reason = state.disabled_reason.as_deref().unwrap_or("no reason");
        problems.push(format!("{} ({}) is {} ({reason})", w.id, w.behaviour.name(), state.status));
    }
    let gaps: Vec<u64> = (1..=t.max_sequence).filter(|s| !t.taken.contains(s)).collect();
    if !gaps.is_empty() {
        problems.push(format!("{}: sequence numbers never taken: {}", w.id, some_of(&gaps)));
    }
    if state.delivered_sequence != t.max_sequence {
        problems.push(format!(
            "{}: the server's position is {}, its receiver saw up to {}",
            w.id, state.delivered_sequence, t.max_sequence
        ));
    }
    let mut missing = Vec::new();
    for (payment, ack, arrived) in payment_arrivals(deliveries, owed) {
        match arrived {
            Some(at) => {
                let micros = at.saturating_duration_since(ack).as_micros();
                latencies.push(u64::try_from(micros).unwrap_or(u64::MAX));
            }
            None => missing.push(payment),
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{} ({}): acknowledged payments with no payment.succeeded: {}",
            w.id,
            w.merchant,
            some_of(&missing)
        ));
    }
    latencies
}

/// The checks of a `Gone` endpoint: disabled as gone once it answered 410.
fn check_gone(
    w: &Watched,
    state: &EndpointState,
    deliveries: &[Delivery],
    owed: &HashMap<String, Instant>,
    problems: &mut Vec<String>,
) {
    if deliveries.is_empty() && owed.is_empty() {
        return;
    }
    if deliveries.is_empty() {
        problems.push(format!("{} (gone): {} payments owed, nothing arrived", w.id, owed.len()));
    }
    if state.status != "disabled" || state.disabled_reason.as_deref() != Some("gone") {
        problems.push(format!(
            "{} answered 410 but is {} ({})",
            w.id,
            state.status,
            state.disabled_reason.as_deref().unwrap_or("no reason")
        ));
    }
}

/// The outcome of the webhook check of a day.
#[derive(Debug)]
pub struct Summary {
    pub endpoints: usize,
    /// Distinct events taken by the endpoints that take them.
    pub delivered: u64,
    /// Requests for an event its endpoint had been sent before.
    pub retried: u64,
    /// Endpoints disabled because their receiver answered 410.
    pub disabled_gone: usize,
    /// From a payment's acknowledgement to its `payment.succeeded` being taken, microseconds:
    /// at the receivers that answer at once and never fail (the delivery itself), ...
    pub latency: Histogram<u64>,
    /// ... and at every receiver that takes deliveries (with the waits of slow receivers and
    /// of events held behind a retry).
    pub latency_all: Histogram<u64>,
    pub problems: Vec<String>,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn latency_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }

    fn latency_all_ms(&self, q: f64) -> f64 {
        self.latency_all.value_at_quantile(q) as f64 / 1_000.0
    }

    /// `webhooks ok (20 endpoints, ...)`, or `webhooks FAILED (...)`.
    pub fn line(&self) -> String {
        format!(
            "webhooks {} ({} endpoints, {} events delivered, {} retried, {} disabled (gone), \
             latency to healthy receivers p50 {:.1} ms p99 {:.1} ms, to all p99 {:.1} ms)",
            if self.ok() { "ok" } else { "FAILED" },
            self.endpoints,
            self.delivered,
            self.retried,
            self.disabled_gone,
            self.latency_ms(0.5),
            self.latency_ms(0.99),
            self.latency_all_ms(0.99)
        )
    }

    /// The summary for the JSON line of `huifu simulate --json`.
    pub fn to_json(&self) -> Value {
        json!({
            "endpoints": self.endpoints,
            "events_delivered": self.delivered,
            "retried": self.retried,
            "disabled_gone": self.disabled_gone,
            "latency_ms_p50": self.latency_ms(0.5),
            "latency_ms_p99": self.latency_ms(0.99),
            "latency_ms_max": self.latency.max() as f64 / 1_000.0,
            "latency_all_ms_p50": self.latency_all_ms(0.5),
            "latency_all_ms_p99": self.latency_all_ms(0.99),
            "check": if self.ok() { json!("ok") } else { json!(self.problems) },
        })
    }
}

/// The check of every endpoint, from what the server reports (`states`), what each receiver
/// recorded (`deliveries`) and the payments owed to each; `behind` is what was still awaited
/// when the wait ended.
pub fn check(
    endpoints: &[Watched],
    states: &[EndpointState],
    deliveries: &[&[Delivery]],
    owed: &[HashMap<String, Instant>],
    behind: &[String],
) -> Summary {
    let mut s = Summary {
        endpoints: endpoints.len(),
        delivered: 0,
        retried: 0,
        disabled_gone: 0,
        latency: crate::histogram(),
        latency_all: crate::histogram(),
        problems: Vec::new(),
    };
    let none = HashMap::new();
    for (i, w) in endpoints.iter().enumerate() {
        let (state, delivered) = (&states[i], deliveries[i]);
        let owed = owed.get(i).unwrap_or(&none);
        let t = tally(delivered);
        s.retried += t.retried;
        check_deliveries(w, delivered, &t, &mut s.problems);
        if w.behaviour == Behaviour::Gone {
            check_gone(w, state, delivered, owed, &mut s.problems);
        } else {
            s.delivered += t.events;
            for micros in check_taking(w, state, delivered, owed, &t, &mut s.problems) {
                s.latency_all.saturating_record(micros);
                if w.behaviour == Behaviour::Ok {
                    s.latency.saturating_record(micros);
                }
            }
        }
        s.disabled_gone += usize::from(state.disabled_reason.as_deref() == Some("gone"));
    }
    if !behind.is_empty() {
        s.problems.push(format!("still behind when the wait ended: {}", some_of(behind)));
    }
    s
}

/// Why the receivers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("cannot start the webhook receivers: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the server refused the webhook endpoint {url}: {status} {body}{hint}")]
    Refused { url: String, status: u16, body: String, hint: &'static str },
    #[error("the reply creating a webhook endpoint has no id or no whsec_ secret: {0}")]
    BadReply(String),
}

/// The receivers of a day and the endpoints made for them.
pub struct Fleet {
    receivers: Receivers,
    endpoints: Vec<Watched>,
}

impl Fleet {
    /// Starts one receiver per merchant of `merchants` (behaviours by `Behaviour::plan`) and
    /// makes its endpoint on the server, for every event. `key_prefix` makes the idempotency
    /// keys (a retry of a creation gets the same endpoint and secret).
    pub fn start(api: &Api, merchants: &[String], key_prefix: &str) -> Result<Fleet, WebhookError> {
        let receivers = Receivers::start(&Behaviour::plan(merchants.len()))?;
        let mut endpoints = Vec::with_capacity(merchants.len());
        for (i, merchant) in merchants.iter().enumerate() {
            let url = receivers.url(i);
            let key = format!("{key_prefix}-webhook-{merchant}-{}", receivers.port(i));
            let (id, secret) = create_endpoint(api, &url, merchant, &key)?;
            if !receivers.set_secret(i, &secret) {
                return Err(WebhookError::BadReply(format!(
                    "secret of {id} is not whsec_<base64>"
                )));
            }
            endpoints.push(Watched {
                id,
                merchant: merchant.clone(),
                behaviour: receivers.behaviour(i),
            });
        }
        Ok(Fleet { receivers, endpoints })
    }

    /// Waits (at most `SETTLE_WAIT_S`, a line of progress every `SETTLE_PROGRESS_S` on stderr)
    /// until no endpoint is behind, or a forged delivery makes waiting pointless; then checks.
    pub fn settle(
        &self,
        api: &Api,
        owed: &[HashMap<String, Instant>],
    ) -> Result<Summary, ApiError> {
        let started = Instant::now();
        let mut said = started;
        loop {
            let states = self.states(api)?;
            let behind = self.behind(&states, owed);
            let forged = (0..self.endpoints.len())
                .any(|i| self.receivers.with_deliveries(i, |d| d.iter().any(|d| !d.signature_ok)));
            let waited = started.elapsed();
            if behind.is_empty() || forged || waited >= Duration::from_secs(SETTLE_WAIT_S) {
                return Ok(self.check(&states, owed, &behind));
            }
            if said.elapsed() >= Duration::from_secs(SETTLE_PROGRESS_S) {
                said = Instant::now();
                eprintln!(
                    "webhooks: {:.0} s, {} of {} endpoints caught up ({})",
                    waited.as_secs_f64(),
                    self.endpoints.len() - behind.len(),
                    self.endpoints.len(),
                    some_of(&behind)
                );
            }
            std::thread::sleep(Duration::from_millis(SETTLE_POLL_MS));
        }
    }

    fn states(&self, api: &Api) -> Result<Vec<EndpointState>, ApiError> {
        self.endpoints
            .iter()
            .map(|w| Ok(EndpointState::of(&api.get(&format!("/v1/webhook_endpoints/{}", w.id))?)))
            .collect()
    }

    fn behind(&self, states: &[EndpointState], owed: &[HashMap<String, Instant>]) -> Vec<String> {
        let none = HashMap::new();
        self.endpoints
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let owed = owed.get(i).unwrap_or(&none);
                self.receivers.with_deliveries(i, |d| behind(w, &states[i], d, owed))
            })
            .collect()
    }

    /// `check` on the receivers' records, each held for the time of the check.
    fn check(
        &self,
        states: &[EndpointState],
        owed: &[HashMap<String, Instant>],
        behind: &[String],
    ) -> Summary {
        let guards: Vec<_> = self
            .receivers
            .receivers
            .iter()
            .map(|(_, r)| r.deliveries.lock().expect("lock"))
            .collect();
        let deliveries: Vec<&[Delivery]> = guards.iter().map(|g| g.as_slice()).collect();
        check(&self.endpoints, states, &deliveries, owed, behind)
    }
}

/// `POST /v1/webhook_endpoints` for `merchant`, every event, to `url`: the endpoint's id and
/// secret.
fn create_endpoint(
    api: &Api,
    url: &str,
    merchant: &str,
    key: &str,
) -> Result<(String, String), WebhookError> {
    let body = json!({ "url": url, "enabled_events": ["*"], "merchant": merchant });
    let (status, reply) = api.call("POST", "/v1/webhook_endpoints", Some(key), Some(&body))?;
    if !(200..300).contains(&status) {
        let hint = if reply["error"]["code"] == "url_not_allowed" {
            " (start the server with --webhooks-allow-private: the receivers are on 127.0.0.1)"
        } else {
            ""
        };
        return Err(WebhookError::Refused {
            url: url.to_owned(),
            status,
            body: reply.to_string(),
            hint,
        });
    }
    match (reply["id"].as_str(), reply["secret"].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
        _ => Err(WebhookError::BadReply(reply.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: &str = "1614265330";
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key() -> Vec<u8> {
        secret_key(SECRET).unwrap()
    }

    #[test]
    fn the_published_vector_signs_and_verifies() {
        let key = key();
        assert_eq!(sign(&key, ID, TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        assert!(signature_matches(&key, ID, TIMESTAMP, BODY.as_bytes(), SIGNATURE));
        let sent: u64 = TIMESTAMP.parse().unwrap();
        assert!(verify(&key, ID, TIMESTAMP, BODY.as_bytes(), SIGNATURE, sent + 300));
        assert!(!verify(&key, ID, TIMESTAMP, BODY.as_bytes(), SIGNATURE, sent + 301));
        assert!(!verify(&key, ID, TIMESTAMP, BODY.as_bytes(), SIGNATURE, sent - 301));
    }

    #[test]
    fn any_one_signature_of_the_header_is_enough_and_a_changed_byte_fails() {
        let key = key();
        let body = BODY.as_bytes();
        let other = sign(b"another key", ID, TIMESTAMP, body);
        assert!(signature_matches(&key, ID, TIMESTAMP, body, &format!("{other} {SIGNATURE}")));
        assert!(signature_matches(&key, ID, TIMESTAMP, body, &format!("v9,xyz {SIGNATURE} v1,!")));
        assert!(!signature_matches(&key, ID, TIMESTAMP, body, &other));
        assert!(!signature_matches(&key, ID, TIMESTAMP, br#"{"test": 2432232315}"#, SIGNATURE));
        assert!(!signature_matches(&key, ID, "1614265331", body, SIGNATURE));
        assert!(!signature_matches(&key, "msg_other", TIMESTAMP, body, SIGNATURE));
        assert!(!signature_matches(&key, ID, TIMESTAMP, body, ""));
        assert!(!signature_matches(&key, ID, TIMESTAMP, body, "v1,"));
        assert!(!verify(&key, ID, "not a time", body, SIGNATURE, 1_614_265_330));
        assert_eq!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), None);
        assert_eq!(secret_key("whsec_not base64!"), None);
    }

    #[test]
    fn a_plan_has_one_gone_and_a_tenth_slow_and_flaky() {
        let count = |plan: &[Behaviour], b| plan.iter().filter(|x| **x == b).count();
        assert_eq!(Behaviour::plan(0), vec![]);
        assert_eq!(Behaviour::plan(1), vec![Behaviour::Ok]);
        assert_eq!(Behaviour::plan(2), vec![Behaviour::Ok, Behaviour::Gone]);
        for n in [3, 5, 10, 14, 15, 20, 100] {
            let plan = Behaviour::plan(n);
            assert_eq!(plan.len(), n);
            assert_eq!(plan[0], Behaviour::Ok, "{n}");
            assert_eq!(count(&plan, Behaviour::Gone), 1, "{n}");
            assert_eq!(count(&plan, Behaviour::Slow), (n + 5) / 10, "{n}");
            assert_eq!(count(&plan, Behaviour::Flaky), (n + 5) / 10, "{n}");
        }
        let plan = Behaviour::plan(20);
        assert_eq!(
            &plan[16..],
            &[Behaviour::Slow, Behaviour::Slow, Behaviour::Flaky, Behaviour::Flaky]
        );
    }

    /// A delivery as the server sends it, signed with `key`; the receiver's answer.
    fn post(url: &str, key: &[u8], endpoint: &str, sequence: u64, forged: bool) -> u16 {
        let id = format!("evt_{}", 1_000 + sequence);
        let body = json!({
            "id": id, "object": "event", "type": "payment.succeeded", "endpoint": endpoint,
            "sequence": sequence, "data": {"object": {"id": format!("pay_{sequence}"), "object": "payment"}},
        })
        .to_string();
        let timestamp = unix_now().to_string();
        let signing_key: &[u8] = if forged { b"not the key" } else { key };
        let signature = sign(signing_key, &id, &timestamp, body.as_bytes());
        let sent = ureq::post(url)
            .set("content-type", "application/json")
            .set("webhook-id", &id)
            .set("webhook-timestamp", &timestamp)
            .set("webhook-signature", &format!("v1,bm90IGl0 {signature}"))
            .send_string(&body);
        match sent {
            Ok(reply) => reply.status(),
            Err(ureq::Error::Status(status, _)) => status,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn receivers_verify_and_answer_by_their_behaviour_over_loopback() {
        let behaviours = [Behaviour::Ok, Behaviour::Slow, Behaviour::Flaky, Behaviour::Gone];
        let receivers = Receivers::start(&behaviours).unwrap();
        for i in 0..receivers.len() {
            assert!(receivers.set_secret(i, SECRET));
        }
        assert!(!receivers.set_secret(0, "no secret"));
        let key = key();
        let url = |i| receivers.url(i);

        assert_eq!(post(&url(0), &key, "we_1", 1, false), 200);
        assert_eq!(post(&url(0), &key, "we_1", 2, true), 401);
        let started = Instant::now();
        assert_eq!(post(&url(1), &key, "we_2", 1, false), 200);
        assert!(started.elapsed() >= Duration::from_millis(SLOW_REPLY_MS));
        assert_eq!(post(&url(2), &key, "we_3", 19, false), 200);
        assert_eq!(post(&url(2), &key, "we_3", 20, false), 500);
        assert_eq!(post(&url(2), &key, "we_3", 20, false), 200);
        assert_eq!(post(&url(2), &key, "we_3", 40, false), 500);
        assert_eq!(post(&url(3), &key, "we_4", 1, false), 410);
        assert_eq!(post(&url(3), &key, "we_4", 1, false), 410);

        receivers.with_deliveries(0, |d| {
            assert_eq!(d.len(), 2);
            assert_eq!(
                (d[0].endpoint.as_str(), d[0].webhook_id.as_str(), d[0].event.as_str()),
                ("we_1", "evt_1001", "evt_1001")
            );
            assert_eq!((d[0].kind.as_str(), d[0].sequence), ("payment.succeeded", 1));
            assert_eq!(
                (d[0].object.as_str(), d[0].signature_ok, d[0].status),
                ("pay_1", true, 200)
            );
            assert!(!d[1].signature_ok);
            assert_eq!(d[1].status, 401);
        });
        receivers.with_deliveries(2, |d| {
            let answers: Vec<(u64, u16)> = d.iter().map(|d| (d.sequence, d.status)).collect();
            assert_eq!(answers, [(19, 200), (20, 500), (20, 200), (40, 500)]);
            assert_eq!(tally(d).pending, 1);
            assert_eq!(tally(d).retried, 1);
        });
    }

    fn delivery(endpoint: &str, sequence: u64, kind: &str, object: &str, at: Instant) -> Delivery {
        let event = format!("evt_{}", 100 + sequence);
        Delivery {
            endpoint: endpoint.to_owned(),
            webhook_id: event.clone(),
            event,
            kind: kind.to_owned(),
            sequence,
            object: object.to_owned(),
            arrived: at,
            signature_ok: true,
            status: 200,
        }
    }

    fn enabled(delivered_sequence: u64) -> EndpointState {
        EndpointState { status: "enabled".into(), disabled_reason: None, delivered_sequence }
    }

    fn watched(id: &str, behaviour: Behaviour) -> Watched {
        Watched { id: id.to_owned(), merchant: "mer_1".to_owned(), behaviour }
    }

    #[test]
    fn a_complete_endpoint_passes_with_its_latencies() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let w = watched("we_1", Behaviour::Flaky);
        let mut d = vec![
            delivery("we_1", 1, "payment.succeeded", "pay_1", ms(10)),
            delivery("we_1", 2, "payout.paid", "po_1", ms(20)),
            delivery("we_1", 3, "payment.succeeded", "pay_2", ms(30)),
        ];
        d[2].status = 500;
        d.push(delivery("we_1", 3, "payment.succeeded", "pay_2", ms(5_030)));
        let owed: HashMap<String, Instant> =
            [("pay_1".into(), ms(5)), ("pay_2".into(), ms(28))].into();
        assert_eq!(behind(&w, &enabled(3), &d, &owed), None);
        assert!(behind(&w, &enabled(2), &d, &owed).unwrap().contains("delivered to 2 of 3"));
        assert!(behind(&w, &enabled(3), &d[..3], &owed).is_some(), "a retry is owed");

        let s = check(&[w], &[enabled(3)], &[&d], std::slice::from_ref(&owed), &[]);
        assert!(s.ok(), "{:?}", s.problems);
        assert_eq!((s.delivered, s.retried, s.disabled_gone), (3, 1, 0));
        // A flaky receiver's latencies count among all, not among the healthy ones.
        assert_eq!((s.latency_all.len(), s.latency.len()), (2, 0));
        // 5 ms for pay_1; pay_2 is taken at its retry, 5,002 ms after its acknowledgement.
        let median = s.latency_all.value_at_quantile(0.5);
        assert!((4_990..=5_010).contains(&median), "{:?}", s.latency_all);
        assert!(s.latency_all.max() >= 5_000_000);
        let healthy = check(&[watched("we_1", Behaviour::Ok)], &[enabled(3)], &[&d], &[owed], &[]);
        assert_eq!(healthy.latency.len(), 2);
        assert!(s.line().starts_with("webhooks ok (1 endpoints, 3 events delivered, 1 retried"));
        assert_eq!(s.to_json()["check"], "ok");
    }

    #[test]
    fn gaps_missing_payments_forgeries_and_a_live_gone_endpoint_fail() {
        let t0 = Instant::now();
        let mut d = vec![
            delivery("we_1", 1, "payment.succeeded", "pay_1", t0),
            delivery("we_1", 3, "payment.succeeded", "pay_3", t0),
            delivery("we_9", 4, "refund.succeeded", "ref_1", t0),
        ];
        d[1].signature_ok = false;
        let owed: HashMap<String, Instant> = [("pay_1".into(), t0), ("pay_2".into(), t0)].into();
        let gone = vec![delivery("we_2", 1, "payment.succeeded", "pay_9", t0)];
        let endpoints = [watched("we_1", Behaviour::Ok), watched("we_2", Behaviour::Gone)];
        let states = [enabled(1), enabled(0)];
        assert!(behind(&endpoints[1], &states[1], &gone, &HashMap::new()).is_some());
        let s = check(&endpoints, &states, &[&d, &gone], &[owed, HashMap::new()], &["x".into()]);
        let all = s.problems.join("\n");
        for expected in [
            "we_1: 1 deliveries with no valid signature",
            "mislabelled deliveries: evt_104 as evt_104 for we_9",
            "sequence numbers never taken: 2",
            "the server's position is 1, its receiver saw up to 4",
            "no payment.succeeded: pay_2",
            "we_2 answered 410 but is enabled",
            "still behind when the wait ended: x",
        ] {
            assert!(all.contains(expected), "{expected} not in\n{all}");
        }
        assert!(s.line().starts_with("webhooks FAILED"));
        assert!(s.to_json()["check"].is_array());
    }

    #[test]
    fn a_disabled_gone_endpoint_passes_and_an_idle_one_is_not_waited_for() {
        let t0 = Instant::now();
        let mut gone = vec![delivery("we_2", 1, "payment.succeeded", "pay_9", t0)];
        gone[0].status = 410;
        let w = watched("we_2", Behaviour::Gone);
        let disabled = EndpointState {
            status: "disabled".into(),
            disabled_reason: Some("gone".into()),
            delivered_sequence: 0,
        };
        assert_eq!(behind(&w, &disabled, &gone, &HashMap::new()), None);
        assert_eq!(behind(&w, &enabled(0), &[], &HashMap::new()), None);
        let s = check(&[w], &[disabled], &[&gone], &[HashMap::new()], &[]);
        assert!(s.ok(), "{:?}", s.problems);
        assert_eq!((s.delivered, s.disabled_gone), (0, 1));
    }

    #[test]
    fn payment_acks_note_succeeded_payments_of_watched_merchants_only() {
        let acks = PaymentAcks::default();
        let payment = |id: &str, merchant: &str, status: &str| json!({"id": id, "object": "payment", "merchant": merchant, "status": status});
        acks.note(&payment("pay_1", "mer_1", "succeeded"));
        acks.watch(&["mer_1".to_owned(), "mer_2".to_owned()]);
        acks.note(&payment("pay_2", "mer_2", "succeeded"));
        acks.note(&payment("pay_3", "mer_1", "authorized"));
        acks.note(&payment("pay_4", "mer_3", "succeeded"));
        acks.note(
            &json!({"id": "ref_5", "object": "refund", "merchant": "mer_1", "status": "succeeded"}),
        );
        let taken = acks.take();
        assert_eq!(taken.len(), 2);
        assert!(taken[0].is_empty());
        assert_eq!(taken[1].keys().collect::<Vec<_>>(), ["pay_2"]);
        acks.note(&payment("pay_6", "mer_1", "succeeded"));
        assert!(acks.take().is_empty());
    }
}
