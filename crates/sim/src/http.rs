//! A day over HTTP (`huifu simulate --server URL`): the traffic model driven against a running
//! `huifu serve`, then a check of every acknowledged operation on the server.
//!
//! Each simulated client has its own transport and sends its operations one request at a time:
//! the payments and refunds of a batch go as one `POST /v1/batch`, every other operation as its
//! own request. Every operation carries an `Idempotency-Key` made of the seed, the client and
//! the operation's number in that client's sequence, so a retry after a timeout or a server
//! restart (same key, same body) gets the first outcome instead of applying it again.
//!
//! With webhook receivers (`HttpDay::with_webhook_receivers`), the first merchants get webhook
//! endpoints before the day starts, and the closing check includes what was delivered to them
//! (webhooks.rs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use huifu_payments::AuditReport;
use huifu_payments::{Funder, Op};
use huifu_server::constants::BATCH_OPERATIONS_MAX;
use serde_json::{json, Map, Value};

use crate::ack_log::{self, AckLine, AckLog};
use crate::http_client::{id_number, payout_number, Api, ApiError};
use crate::webhooks::{Fleet, PaymentAcks, Summary, WebhookError};
use crate::{Ack, Day, Progress, Reply, SimConfig, SimResult, Transport};

/// Every this many operations of a client, one acknowledged request is kept and sent again at
/// the end with its key and body: it must name the same object, and change nothing.
const REPLAY_SAMPLE_EVERY: u64 = 64;
/// Threads the set-up and the closing check spread their requests over, at most.
const SETUP_THREADS_MAX: usize = 32;
/// Currency code of the simulated platform (`huifu_sim::CURRENCY`, ISO 4217 156).
const CURRENCY_CODE: &str = "CNY";

/// The parties of the model (by kind and model id) and the ids the server gave them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Party {
    Channel,
    Merchant,
    Rider,
    User,
    Campaign,
}

/// A request kept for the replay check.
struct Replay {
    path: String,
    key: String,
    body: Option<Value>,
    id: String,
}

/// What every client of a run shares.
struct Shared {
    api: Api,
    seed: u64,
    parties: RwLock<HashMap<(Party, u64), u64>>,
    /// Holds in flight: id → true for a top-up, false for a withdrawal.
    holds: Mutex<HashMap<u64, bool>>,
    acks: AckLog,
    replays: Mutex<Vec<Replay>>,
    threads: usize,
    /// Succeeded payments to the merchants with a webhook receiver, with when they were
    /// acknowledged.
    payment_acks: PaymentAcks,
}

/// One client's transport: a label for its keys and its next operation number.
struct HttpTransport {
    shared: Arc<Shared>,
    label: String,
    next: u64,
}

/// An operation as a request: its path and body, or an item of a batch.
enum Call {
    Single { path: String, body: Option<Value>, kind: &'static str },
    Payment(Value),
    Refund(Value),
}

/// Why a day over HTTP stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpSimError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("cannot write the ack log: {0}")]
    AckLog(#[from] std::io::Error),
    #[error("the model named {0} before the server created it")]
    UnknownParty(String),
    #[error(transparent)]
    Webhooks(#[from] WebhookError),
}

impl Shared {
    fn party(&self, party: Party, id: u64) -> Result<u64, HttpSimError> {
        let name = || format!("{} {id}", prefix(party));
        self.parties
            .read()
            .expect("lock")
            .get(&(party, id))
            .copied()
            .ok_or_else(|| HttpSimError::UnknownParty(name()))
    }

    fn party_id(&self, party: Party, id: u64) -> Result<String, HttpSimError> {
        Ok(format!("{}_{}", prefix(party), self.party(party, id)?))
    }

    /// The request for `op`.
    fn call(&self, op: &Op) -> Result<Call, HttpSimError> {
        let currency = || json!({ "currency": CURRENCY_CODE });
        Ok(match *op {
            Op::CreateChannel { .. } => single("/v1/channels", Some(currency()), "channel"),
            Op::CreateUser { .. } => single("/v1/users", Some(currency()), "user"),
            Op::CreateRider { .. } => single("/v1/riders", Some(currency()), "rider"),
            Op::CreateMerchant { commission_bps, channel, .. } => single(
                "/v1/merchants",
                Some(json!({
                    "currency": CURRENCY_CODE,
                    "commission_bps": commission_bps,
                    "channel": self.party_id(Party::Channel, channel)?,
                })),
                "merchant",
            ),
            Op::CreateCampaign { funder, budget, ref rule, .. } => single(
                "/v1/campaigns",
                Some(json!({
                    "currency": CURRENCY_CODE,
                    "funder": match funder {
                        Funder::Platform => "platform".to_owned(),
                        Funder::Merchant(m) => self.party_id(Party::Merchant, m)?,
                    },
                    "budget": budget,
                    "amount_off": rule.amount_off,
                    "min_order": rule.min_order,
                    "valid_from": rule.valid_from,
                    "valid_until": rule.valid_until,
                    "per_user_limit": rule.per_user_limit,
                })),
                "campaign",
            ),
            Op::GrantCoupon { campaign, user, .. } => single(
                "/v1/coupons",
                Some(json!({
                    "campaign": self.party_id(Party::Campaign, campaign)?,
                    "user": self.party_id(Party::User, user)?,
                })),
                "coupon",
            ),
            Op::TopUp { user, channel, amount, timeout_s, .. }
            | Op::Withdraw { user, channel, amount, timeout_s, .. } => {
                let topup = matches!(op, Op::TopUp { .. });
                single(
                    if topup { "/v1/topups" } else { "/v1/withdrawals" },
                    Some(json!({
                        "user": self.party_id(Party::User, user)?,
                        "channel": self.party_id(Party::Channel, channel)?,
                        "amount": amount,
                        "timeout_seconds": timeout_s,
                    })),
                    if topup { "topup" } else { "withdrawal" },
                )
            }
            Op::BankResult { id, ok } => {
                let topup = self.holds.lock().expect("lock").get(&id).copied().unwrap_or(true);
                let (path, kind) = if topup {
                    (format!("/v1/topups/top_{id}/{}", answer(ok)), "topup_answer")
                } else {
                    (format!("/v1/withdrawals/wdr_{id}/{}", answer(ok)), "withdrawal_answer")
                };
                Call::Single { path, body: None, kind }
            }
            Op::Capture { id } => {
                single(&format!("/v1/payments/pay_{id}/capture"), None, "capture")
            }
            Op::Release { id } => {
                single(&format!("/v1/payments/pay_{id}/release"), None, "release")
            }
            Op::Payout { merchant, .. } => single(
                "/v1/payouts",
                Some(json!({ "merchant": self.party_id(Party::Merchant, merchant)? })),
                "payout",
            ),
            Op::PayoutResult { payout, ok } => Call::Single {
                path: format!("/v1/payouts/po_{payout:x}/{}", if ok { "confirm" } else { "fail" }),
                body: None,
                kind: "payout_answer",
            },
            Op::SettlementRun { .. } => single("/v1/settlement_runs", None, "settlement_run"),
            Op::Pay {
                user, merchant, rider, food, delivery, coupon, channel, timeout_s, ..
            } => {
                let mut body = Map::new();
                body.insert("user".into(), self.party_id(Party::User, user)?.into());
                body.insert("merchant".into(), self.party_id(Party::Merchant, merchant)?.into());
                body.insert("rider".into(), self.party_id(Party::Rider, rider)?.into());
                body.insert("food_amount".into(), food.into());
                body.insert("delivery_fee".into(), delivery.into());
                body.insert("timeout_seconds".into(), timeout_s.into());
                if coupon != 0 {
                    body.insert("coupon".into(), format!("cpn_{coupon}").into());
                }
                if channel != 0 {
                    body.insert("channel".into(), self.party_id(Party::Channel, channel)?.into());
                }
                Call::Payment(Value::Object(body))
            }
            Op::Refund { payment, amount, .. } => {
                Call::Refund(json!({ "payment": format!("pay_{payment}"), "amount": amount }))
            }
            _ => unreachable!("the model sends no {op:?}"),
        })
    }

    /// Learns from an acknowledged reply: the party ids, the holds in flight.
    fn learned(&self, op: &Op, ack: &Ack) {
        let party = match *op {
            Op::CreateChannel { id, .. } => Some((Party::Channel, id)),
            Op::CreateMerchant { id, .. } => Some((Party::Merchant, id)),
            Op::CreateRider { id, .. } => Some((Party::Rider, id)),
            Op::CreateUser { id, .. } => Some((Party::User, id)),
            Op::CreateCampaign { id, .. } => Some((Party::Campaign, id)),
            Op::TopUp { .. } | Op::Withdraw { .. } => {
                let topup = matches!(op, Op::TopUp { .. });
                self.holds.lock().expect("lock").insert(ack.id, topup);
                None
            }
            Op::BankResult { id, .. } => {
                self.holds.lock().expect("lock").remove(&id);
                None
            }
            _ => None,
        };
        if let Some(key) = party {
            self.parties.write().expect("lock").insert(key, ack.id);
        }
    }
}

fn single(path: &str, body: Option<Value>, kind: &'static str) -> Call {
    Call::Single { path: path.to_owned(), body, kind }
}

fn answer(ok: bool) -> &'static str {
    if ok {
        "confirm"
    } else {
        "fail"
    }
}

fn prefix(party: Party) -> &'static str {
    match party {
        Party::Channel => "chn",
        Party::Merchant => "mer",
        Party::Rider => "rdr",
        Party::User => "usr",
        Party::Campaign => "cmp",
    }
}

/// The error code of a rejection reply.
fn rejection(status: u16, body: &Value) -> String {
    body["error"]["code"].as_str().map_or_else(|| format!("http_{status}"), str::to_owned)
}

/// The model's view of a 2xx reply, and its ack log line.
fn acknowledged(kind: &'static str, key: &str, body: &Value) -> (Ack, AckLine) {
    let text = |name: &str| body[name].as_str().unwrap_or("-").to_owned();
    let amount = |name: &str| body[name].as_u64().unwrap_or(0);
    let id = text("id");
    let mut ack =
        Ack { id: id_number(&id).unwrap_or(0), amount: amount("amount"), payouts: Vec::new() };
    let mut parent = "-".to_owned();
    match kind {
        "campaign" => ack.amount = amount("budget"),
        "topup" | "withdrawal" => parent = text("user"),
        "refund" => parent = text("payment"),
        "payout" => {
            ack.id = 0;
            ack.payouts.push((payout_number(&id).unwrap_or(0), ack.amount));
        }
        "settlement_run" => {
            for line in body["lines"].as_array().into_iter().flatten() {
                let net = line["net"].as_u64().unwrap_or(0);
                if let (Some(p), true) = (line["payout"].as_str().and_then(payout_number), net > 0)
                {
                    ack.payouts.push((p, net));
                }
            }
            ack.amount = ack.payouts.iter().map(|(_, a)| a).sum();
        }
        _ => {}
    }
    let line = AckLine {
        key: key.to_owned(),
        kind,
        id,
        amount: ack.amount,
        status: text("status"),
        parent,
    };
    (ack, line)
}

impl HttpTransport {
    fn key(&self, n: u64) -> String {
        format!("sim{}-{}-{n}", self.shared.seed, self.label)
    }

    fn keep_for_replay(&self, n: u64, replay: impl FnOnce() -> Replay) {
        if n.is_multiple_of(REPLAY_SAMPLE_EVERY) {
            self.shared.replays.lock().expect("lock").push(replay());
        }
    }

    /// Sends `ops`, numbered from `first`: the single requests in order, then the payments and
    /// refunds as batches. One reply per operation, in the operations' order.
    fn send(&self, ops: &[Op], first: u64) -> Result<Vec<Reply>, HttpSimError> {
        let api = &self.shared.api;
        let mut replies: Vec<Option<Reply>> = vec![None; ops.len()];
        let mut payments: Vec<(usize, Value)> = Vec::new();
        let mut refunds: Vec<(usize, Value)> = Vec::new();
        let mut acks = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let n = first + i as u64;
            let key = self.key(n);
            match self.shared.call(op)? {
                Call::Single { path, body, kind } => {
                    let (status, reply) = api.call("POST", &path, Some(&key), body.as_ref())?;
                    replies[i] = Some(if (200..300).contains(&status) {
                        let (ack, line) = acknowledged(kind, &key, &reply);
                        self.shared.learned(op, &ack);
                        self.shared.payment_acks.note(&reply);
                        let id = line.id.clone();
                        self.keep_for_replay(n, || Replay { path, key: key.clone(), body, id });
                        acks.push(line);
                        Ok(ack)
                    } else {
                        Err(rejection(status, &reply))
                    });
                }
                Call::Payment(mut body) => {
                    body["idempotency_key"] = key.into();
                    payments.push((i, body));
                }
                Call::Refund(mut body) => {
                    body["idempotency_key"] = key.into();
                    refunds.push((i, body));
                }
            }
        }
        // Payments first, then refunds: the order of the batch endpoint's results.
        let mut payments = payments.into_iter().peekable();
        let mut refunds = refunds.into_iter().peekable();
        while payments.peek().is_some() || refunds.peek().is_some() {
            let p: Vec<(usize, Value)> = payments.by_ref().take(BATCH_OPERATIONS_MAX).collect();
            let r: Vec<(usize, Value)> =
                refunds.by_ref().take(BATCH_OPERATIONS_MAX - p.len()).collect();
            let body = json!({
                "payments": p.iter().map(|(_, b)| b).collect::<Vec<_>>(),
                "refunds": r.iter().map(|(_, b)| b).collect::<Vec<_>>(),
            });
            let (status, reply) = api.call("POST", "/v1/batch", None, Some(&body))?;
            let results =
                reply["results"].as_array().filter(|_| status == 200).ok_or_else(|| {
                    ApiError::Unexpected {
                        method: "POST".to_owned(),
                        path: "/v1/batch".to_owned(),
                        status,
                        body: reply.to_string(),
                    }
                })?;
            let items = p.iter().map(|x| (x, "payment")).chain(r.iter().map(|x| (x, "refund")));
            for (((i, body), kind), result) in items.zip(results) {
                let key = body["idempotency_key"].as_str().unwrap_or("");
                replies[*i] = Some(if result["result"].is_object() {
                    let (ack, line) = acknowledged(kind, key, &result["result"]);
                    self.shared.payment_acks.note(&result["result"]);
                    self.keep_for_replay(first + *i as u64, || {
                        let mut body = body.clone();
                        body.as_object_mut().map(|b| b.remove("idempotency_key"));
                        let path = if kind == "payment" { "/v1/payments" } else { "/v1/refunds" };
                        Replay {
                            path: path.to_owned(),
                            key: key.to_owned(),
                            body: Some(body),
                            id: line.id.clone(),
                        }
                    });
                    acks.push(line);
                    Ok(ack)
                } else {
                    Err(rejection(0, result))
                });
            }
        }
        self.shared.acks.record(acks)?;
        Ok(replies.into_iter().map(|r| r.unwrap_or_else(|| Err("no_reply".to_owned()))).collect())
    }
}

impl Transport for HttpTransport {
    type Error = HttpSimError;

    fn submit(&mut self, ops: Vec<Op>) -> Result<Vec<Reply>, HttpSimError> {
        let first = self.next;
        self.next += ops.len() as u64;
        self.send(&ops, first)
    }

    fn submit_independent(&mut self, ops: Vec<Op>) -> Result<Vec<Reply>, HttpSimError> {
        let first = self.next;
        self.next += ops.len() as u64;
        let threads = self.shared.threads.clamp(1, SETUP_THREADS_MAX);
        let chunk = ops.len().div_ceil(threads).max(1);
        let this = &*self;
        std::thread::scope(|scope| {
            let handles: Vec<_> = ops
                .chunks(chunk)
                .enumerate()
                .map(|(c, part)| scope.spawn(move || this.send(part, first + (c * chunk) as u64)))
                .collect();
            let mut replies = Vec::with_capacity(ops.len());
            for h in handles {
                replies.extend(h.join().expect("set-up thread")?);
            }
            Ok(replies)
        })
    }
}

/// Sends the kept requests again: each must name the object it named the first time.
fn replay(api: &Api, replays: &[Replay], threads: usize) -> Result<Vec<String>, ApiError> {
    let answers = ack_log::parallel(replays, threads, |r| {
        api.call("POST", &r.path, Some(&r.key), r.body.as_ref())
    })?;
    Ok(replays
        .iter()
        .zip(answers)
        .filter(|(r, (status, body))| !(200..300).contains(status) || body["id"] != r.id.as_str())
        .map(|(r, (status, body))| {
            format!(
                "replay of {} (key {}) named {} first, now {status} {body}",
                r.path, r.key, r.id
            )
        })
        .collect())
}

/// A day over HTTP: the server, the clients' shared state, the acknowledgements.
pub struct HttpDay {
    api: Api,
    shared: Arc<Shared>,
    /// Webhook receivers to start, for the first this many merchants.
    webhook_receivers: usize,
    /// The receivers and their endpoints, once the merchants exist.
    fleet: OnceLock<Fleet>,
}

impl HttpDay {
    /// A day against the server at `url` with `key`, each request retried for up to `retry`;
    /// `ack_log` is appended to when given. `seed` makes the idempotency keys; `clients` bounds
    /// the threads of the set-up and the closing check.
    pub fn open(
        url: &str,
        key: &str,
        retry: Duration,
        ack_log: Option<&Path>,
        seed: u64,
        clients: usize,
    ) -> anyhow::Result<HttpDay> {
        let api = Api::new(url, key, retry);
        let shared = Arc::new(Shared {
            api: api.clone(),
            seed,
            parties: RwLock::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            acks: AckLog::open(ack_log)?,
            replays: Mutex::new(Vec::new()),
            threads: clients.clamp(1, SETUP_THREADS_MAX),
            payment_acks: PaymentAcks::default(),
        });
        Ok(HttpDay { api, shared, webhook_receivers: 0, fleet: OnceLock::new() })
    }

    /// With `n` webhook receivers, for the first `n` merchants of the model, made between the
    /// set-up and the day; `check_webhooks` checks them at the end. The server must accept
    /// loopback URLs (`--webhooks-allow-private`).
    pub fn with_webhook_receivers(mut self, n: usize) -> HttpDay {
        self.webhook_receivers = n;
        self
    }

    /// The server's base URL.
    pub fn base(&self) -> String {
        self.api.base()
    }

    /// Set-up and the day, one transport per client.
    pub fn run(&self, config: &SimConfig, progress: &Progress) -> Result<Day, HttpSimError> {
        let transport =
            |label: String| HttpTransport { shared: self.shared.clone(), label, next: 1 };
        crate::run_day_with(
            &mut transport("setup".to_owned()),
            |k| transport(format!("c{k}")),
            config,
            progress,
            || self.start_webhooks(),
        )
    }

    /// Starts the webhook receivers and makes their endpoints, if any are asked for; from then
    /// on, the succeeded payments to their merchants are noted.
    fn start_webhooks(&self) -> Result<(), HttpSimError> {
        if self.webhook_receivers == 0 || self.fleet.get().is_some() {
            return Ok(());
        }
        let merchants = (1..=self.webhook_receivers as u64)
            .map(|m| self.shared.party_id(Party::Merchant, m))
            .collect::<Result<Vec<String>, HttpSimError>>()?;
        let fleet = Fleet::start(&self.api, &merchants, &format!("sim{}", self.shared.seed))?;
        self.shared.payment_acks.watch(&merchants);
        let _ = self.fleet.set(fleet);
        Ok(())
    }

    /// Waits for the webhook deliveries to catch up (bounded), then checks them; `None` when
    /// the day had no receivers (or stopped before making them).
    pub fn check_webhooks(&self) -> Result<Option<Summary>, ApiError> {
        let Some(fleet) = self.fleet.get() else { return Ok(None) };
        let owed = self.shared.payment_acks.take();
        fleet.settle(&self.api, &owed).map(Some)
    }

    /// Writes out what the ack log holds in its buffer.
    pub fn flush_acks(&self) -> std::io::Result<()> {
        self.shared.acks.flush()
    }

    /// Checks the day on the server: the kept requests sent again, every acknowledged operation
    /// looked up. The result, and how many requests were replayed.
    pub fn check(&self, day: Day) -> Result<(SimResult, usize), ApiError> {
        let threads = self.shared.threads;
        let replays = std::mem::take(&mut *self.shared.replays.lock().expect("lock"));
        let mut violations = replay(&self.api, &replays, threads)?;
        let acks = self.shared.acks.take_lines();
        let verdict = ack_log::verify(&self.api, &acks, threads)?;
        violations.extend(verdict.all_violations());
        let result = SimResult {
            counts: day.counts,
            seconds: day.seconds,
            latency: day.latency,
            audit: AuditReport {
                payments: verdict.payments_on_server,
                violations,
                ..AuditReport::default()
            },
            acknowledged_missing: verdict.missing,
            acknowledged_checked: verdict.checked,
        };
        Ok((result, replays.len()))
    }
}
