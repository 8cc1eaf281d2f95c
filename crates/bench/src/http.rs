//! The load generator of `huifu bench http`: wallet payments per second through the HTTP API,
//! sent over many keep-alive connections, against a running server or a `huifu serve` started
//! for the run (`Spawned`).
//!
//! Each connection is hyper's HTTP/1.1 client connection (`hyper::client::conn::http1`), one
//! request at a time. It replaced a client written here on `TcpStream`, which cost the load
//! generator less CPU: 4.8–6.3 s against 7.5–9.5 s for 800,000 single payments (about 3 µs more a
//! request, next to the server's 19–27 s), four runs each alternated on a busy 2-core machine,
//! while the payments per second did not differ beyond the noise of those minutes
//! (10,176–48,575/s against 9,020–27,612/s). Both CPU times are printed after a run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use huifu_server::constants::BATCH_OPERATIONS_MAX;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::measure::{self, cpu_delta, cpu_seconds, duration_us};
use crate::Progress;

/// What to run.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Payments to make.
    pub payments: u64,
    /// Keep-alive connections, each sending its requests back to back.
    pub connections: usize,
    /// Payments per request: 1 sends `POST /v1/payments`, more send `POST /v1/batch` (at most
    /// `BATCH_OPERATIONS_MAX`).
    pub batch: usize,
    /// Users, each with a wallet funded over HTTP for its share of the payments.
    pub users: u64,
    pub merchants: u64,
    pub riders: u64,
    /// Name the currency in every payment (optional in the API; the server then checks it
    /// against the user's wallet).
    pub name_currency: bool,
    /// Worker threads of the load generator.
    pub threads: usize,
    /// Seed of the random merchants, riders and amounts.
    pub seed: u64,
    /// With several servers: how long a request is sent again, to the next server, after no
    /// answer or a 503.
    pub retry_seconds: u64,
}

/// Currency of the payments; amounts are in fen.
const CURRENCY: &str = "CNY";
/// Smallest food amount of an order, in fen (inclusive).
const FOOD_MIN: u64 = 1_500;
/// Largest food amount of an order, in fen (exclusive).
const FOOD_MAX: u64 = 8_000;
/// Smallest delivery fee, in fen (inclusive).
const DELIVERY_MIN: u64 = 300;
/// Largest delivery fee, in fen (exclusive).
const DELIVERY_MAX: u64 = 800;
/// Lowest merchant commission rate in basis points.
const COMMISSION_BPS_MIN: u32 = 500;
/// Highest merchant commission rate in basis points (inclusive).
const COMMISSION_BPS_MAX: u32 = 2_000;
/// Hold of the set-up top-ups; each is confirmed at once, so it only has to be valid.
const TOPUP_TIMEOUT_S: u32 = 3_600;
/// A request with no reply by then fails the run. The server answers 503 after its own
/// timeout (10 s), well before.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a run measured.
pub struct HttpRun {
    pub tally: Tally,
    pub setup_seconds: f64,
    /// Set-up requests sent again after a failure (several servers only).
    pub setup_retries: u64,
    /// From the first payment request to the last reply.
    pub seconds: f64,
    /// CPU time of the load generator over the same span.
    pub client_cpu_seconds: Option<f64>,
    /// CPU time of the server over the same span, when its process is known.
    pub server_cpu_seconds: Option<f64>,
    pub client_rss_bytes_max: u64,
    pub server_rss_bytes_max: Option<u64>,
}

/// A load generator connected to a server: `connect`, `set_up`, then `run`.
pub struct HttpBench {
    options: HttpOptions,
    funding: u64,
    runtime: tokio::runtime::Runtime,
    conns: Vec<Conn>,
    world: Option<World>,
    setup_seconds: f64,
    /// With several servers, every request carries an idempotency key that starts with this
    /// (new for each run), so that one sent again is applied once.
    keys: Option<String>,
}

impl HttpBench {
    /// Checks the options and opens the connections to the servers at `urls`, whose requests
    /// carry `key`. With one server, a failed request fails the run; with several (a
    /// cluster's nodes, taken in turn by the connections), it is sent again to the next, with
    /// the same idempotency keys.
    pub fn connect(options: HttpOptions, urls: &[String], key: &str) -> anyhow::Result<HttpBench> {
        let funding = funding(&options)?;
        let endpoints: Vec<Arc<Endpoint>> = urls
            .iter()
            .map(|url| Endpoint::parse(url, key).map(Arc::new))
            .collect::<anyhow::Result<_>>()?;
        if endpoints.is_empty() {
            bail!("no server URL");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (conns, keys) = if endpoints.len() == 1 {
            let conns = runtime.block_on(async {
                let mut conns = Vec::with_capacity(options.connections);
                for _ in 0..options.connections {
                    conns.push(Conn::open(endpoints[0].clone()).await?);
                }
                anyhow::Ok(conns)
            })?;
            (conns, None)
        } else {
            let endpoints = Arc::new(endpoints);
            let retry_for = Duration::from_secs(options.retry_seconds);
            let conns = (0..options.connections)
                .map(|n| Conn::any(endpoints.clone(), n, retry_for))
                .collect();
            (conns, Some(format!("bench-{}", random_key())))
        };
        Ok(HttpBench { options, funding, runtime, conns, world: None, setup_seconds: 0.0, keys })
    }

    /// One channel; the users, merchants and riders; a confirmed top-up for every user.
    pub fn set_up(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let conns = std::mem::take(&mut self.conns);
        let keys = self.keys.as_deref();
        let (conns, world) =
            self.runtime.block_on(set_up(conns, &self.options, self.funding, keys))?;
        self.setup_seconds = started.elapsed().as_secs_f64();
        self.conns = conns;
        self.world = Some(world);
        Ok(())
    }

    /// The merchants' ids (`mer_N`) once set up, whom the payments go to at random.
    pub fn merchants(&self) -> &[String] {
        self.world.as_ref().map_or(&[], |w| &w.merchants)
    }

    /// Sends the payments from all connections. `server_pid`: the server's process, whose CPU
    /// time and memory are then measured too.
    pub fn run(
        self,
        server_pid: Option<u32>,
        progress: Arc<dyn Progress>,
    ) -> anyhow::Result<HttpRun> {
        let HttpBench { options, runtime, mut conns, world, setup_seconds, keys, .. } = self;
        let setup_retries = conns.iter().map(|c| c.retries).sum();
        for conn in &mut conns {
            conn.retries = 0;
        }
        let world = Arc::new(world.context("the benchmark was not set up")?);
        runtime.block_on(async {
            let next = Arc::new(AtomicU64::new(0));
            let client_cpu = cpu_seconds("self");
            let server_cpu = server_pid.and_then(|pid| cpu_seconds(&pid.to_string()));
            progress.start();
            let started = Instant::now();
            let tasks: Vec<_> = conns
                .into_iter()
                .enumerate()
                .map(|(n, conn)| {
                    let sender = Sender {
                        conn,
                        world: world.clone(),
                        next: next.clone(),
                        progress: progress.clone(),
                        rng: SmallRng::seed_from_u64(
                            options.seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        ),
                        total: options.payments,
                        batch: options.batch,
                        name_currency: options.name_currency,
                        keys: keys.clone(),
                    };
                    tokio::spawn(sender.run())
                })
                .collect();
            let mut tally = Tally::default();
            let mut failure = None;
            for task in tasks {
                match task.await.context("a connection's task panicked")? {
                    Ok(t) => tally.add(&t),
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
            let seconds = tally.last_reply.map_or(0.0, |t| (t - started).as_secs_f64()).max(1e-9);
            let client_cpu_seconds = cpu_delta(client_cpu, cpu_seconds("self"));
            let server_cpu_seconds =
                cpu_delta(server_cpu, server_pid.and_then(|pid| cpu_seconds(&pid.to_string())));
            progress.finish();
            Ok(HttpRun {
                tally,
                setup_seconds,
                setup_retries,
                seconds,
                client_cpu_seconds,
                server_cpu_seconds,
                client_rss_bytes_max: measure::rss_bytes_max(),
                server_rss_bytes_max: server_pid
                    .map(|pid| measure::proc_status_kb(&pid.to_string(), "VmHWM:") * 1024),
            })
        })
    }
}

/// Checks the options; what each user's wallet is funded with: enough for all its payments
/// at the largest amounts.
pub fn funding(args: &HttpOptions) -> anyhow::Result<u64> {
    if args.batch == 0 || args.batch > BATCH_OPERATIONS_MAX {
        bail!("--batch must be between 1 and {BATCH_OPERATIONS_MAX}, not {}", args.batch);
    }
    if args.connections == 0 || args.payments == 0 || args.threads == 0 {
        bail!("--connections, --payments and --threads must be at least 1");
    }
    if args.users == 0 || args.merchants == 0 || args.riders == 0 {
        bail!("--users, --merchants and --riders must be at least 1");
    }
    let per_user = args.payments.div_ceil(args.users);
    let funding = per_user.saturating_mul(FOOD_MAX + DELIVERY_MAX);
    if funding > huifu_payments::constants::AMOUNT_MAX {
        bail!("{per_user} payments per user need more than one top-up: raise --users");
    }
    Ok(funding)
}

/// The ids the server gave the parties of the benchmark.
struct World {
    users: Vec<String>,
    merchants: Vec<String>,
    riders: Vec<String>,
}

/// One channel; the users, merchants and riders; a confirmed top-up for every user.
async fn set_up(
    conns: Vec<Conn>,
    args: &HttpOptions,
    funding: u64,
    keys: Option<&str>,
) -> anyhow::Result<(Vec<Conn>, World)> {
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let channel_body = json!({"currency": CURRENCY});
    let key = |step: &str| keys.map(|k| format!("{k}-{step}"));
    let channel = vec![("/v1/channels".into(), channel_body)];
    let (conns, replies) = post_all(conns, channel, key("channel")).await?;
    let channel = reply_id(&replies[0])?;

    let mut parties = Vec::new();
    let party = json!({"currency": CURRENCY});
    parties.extend((0..args.users).map(|_| ("/v1/users".to_owned(), party.clone())));
    parties.extend((0..args.merchants).map(|_| {
        let bps = rng.gen_range(COMMISSION_BPS_MIN..=COMMISSION_BPS_MAX);
        let body = json!({"currency": CURRENCY, "commission_bps": bps, "channel": channel});
        ("/v1/merchants".to_owned(), body)
    }));
    parties.extend((0..args.riders).map(|_| ("/v1/riders".to_owned(), party.clone())));
    let (conns, replies) = post_all(conns, parties, key("party")).await?;
    let mut ids = replies.iter().map(reply_id).collect::<anyhow::Result<Vec<_>>>()?;
    let riders = ids.split_off((args.users + args.merchants) as usize);
    let merchants = ids.split_off(args.users as usize);
    let users = ids;

    let topups = users
        .iter()
        .map(|user| {
            let body = json!({
                "user": user, "channel": channel, "amount": funding,
                "timeout_seconds": TOPUP_TIMEOUT_S,
            });
            ("/v1/topups".to_owned(), body)
        })
        .collect();
    let (conns, replies) = post_all(conns, topups, key("topup")).await?;
    let confirms = replies
        .iter()
        .map(|topup| Ok((format!("/v1/topups/{}/confirm", reply_id(topup)?), json!({}))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (conns, replies) = post_all(conns, confirms, key("confirm")).await?;
    if let Some(reply) = replies.iter().find(|r| r["status"] != "succeeded") {
        bail!("a top-up was not confirmed: {reply}");
    }
    Ok((conns, World { users, merchants, riders }))
}

/// The `id` of a reply; ids go into request bodies unescaped, so they must be plain.
fn reply_id(reply: &Value) -> anyhow::Result<String> {
    reply["id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .map(str::to_owned)
        .with_context(|| format!("a reply without a plain id: {reply}"))
}

/// Sends every request (path, JSON body) over all `conns` at once and checks that each got 200;
/// the replies, in the order of the requests. With `keys`, request `i` carries the
/// idempotency key `<keys>-<i>`.
async fn post_all(
    conns: Vec<Conn>,
    requests: Vec<(String, Value)>,
    keys: Option<String>,
) -> anyhow::Result<(Vec<Conn>, Vec<Value>)> {
    let requests = Arc::new(requests);
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (requests, next, keys) = (requests.clone(), next.clone(), keys.clone());
            tokio::spawn(async move {
                let mut replies = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, body)) = requests.get(index) else { break };
                    let sent = serde_json::to_vec(body).expect("a JSON value");
                    let key = keys.as_ref().as_ref().map(|k| format!("{k}-{index}"));
                    let (status, reply) = conn.post_keyed(path, &sent, key.as_deref()).await?;
                    if status != 200 {
                        bail!("POST {path} {body}: {status} {}", String::from_utf8_lossy(reply));
                    }
                    let value: Value = serde_json::from_slice(reply)
                        .with_context(|| format!("POST {path}: a reply that is not JSON"))?;
                    replies.push((index, value));
                }
                Ok((conn, replies))
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(tasks.len());
    let mut replies = vec![Value::Null; requests.len()];
    let mut failure = None;
    for task in tasks {
        match task.await.context("a set-up task panicked")? {
            Ok((conn, done)) => {
                conns.push(conn);
                for (index, value) in done {
                    replies[index] = value;
                }
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    match failure {
        Some(e) => Err(e.context("set-up failed")),
        None => Ok((conns, replies)),
    }
}

/// One connection's share of the run: it takes the next payments, sends them, checks the reply,
/// and goes on until all are sent.
struct Sender {
    conn: Conn,
    world: Arc<World>,
    next: Arc<AtomicU64>,
    progress: Arc<dyn Progress>,
    rng: SmallRng,
    total: u64,
    batch: usize,
    name_currency: bool,
    /// Idempotency keys' prefix: payment `i` has the key `<keys>-p<i>`.
    keys: Option<String>,
}

impl Sender {
    async fn run(mut self) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut body = Vec::with_capacity(256 * self.batch + 64);
        let path = if self.batch > 1 { "/v1/batch" } else { "/v1/payments" };
        loop {
            let start = self.next.fetch_add(self.batch as u64, Ordering::Relaxed);
            if start >= self.total {
                break;
            }
            let count = (self.batch as u64).min(self.total - start);
            body.clear();
            if self.batch > 1 {
                body.extend_from_slice(b"{\"payments\":[");
                for i in start..start + count {
                    if i > start {
                        body.push(b',');
                    }
                    self.payment(&mut body, i);
                }
                body.extend_from_slice(b"]}");
            } else {
                self.payment(&mut body, start);
            }
            // A single payment's key goes in the header, a batch's in each payment.
            let key = match &self.keys {
                Some(keys) if self.batch == 1 => Some(format!("{keys}-p{start}")),
                _ => None,
            };
            let sent = Instant::now();
            let (status, reply) = self.conn.post_keyed(path, &body, key.as_deref()).await?;
            let now = Instant::now();
            tally.latencies.record(duration_us(now - sent)).ok();
            tally.last_reply = Some(now);
            tally.requests += 1;
            let before = tally.payments;
            if self.batch > 1 {
                tally.check_batch(status, reply, count);
            } else {
                tally.check_payment(status, reply);
            }
            self.progress.advance(tally.payments - before);
        }
        tally.retries = self.conn.retries;
        Ok(tally)
    }

    /// The JSON body of payment `i`: a wallet payment by user `i % users`.
    fn payment(&mut self, out: &mut Vec<u8>, i: u64) {
        let world = &self.world;
        let user = &world.users[(i % world.users.len() as u64) as usize];
        let merchant = &world.merchants[self.rng.gen_range(0..world.merchants.len())];
        let rider = &world.riders[self.rng.gen_range(0..world.riders.len())];
        let food = self.rng.gen_range(FOOD_MIN..FOOD_MAX);
        let delivery = self.rng.gen_range(DELIVERY_MIN..DELIVERY_MAX);
        write!(
            out,
            "{{\"user\":\"{user}\",\"merchant\":\"{merchant}\",\"rider\":\"{rider}\",\
             \"food_amount\":{food},\"delivery_fee\":{delivery}"
        )
        .expect("writing to a Vec");
        if self.name_currency {
            out.extend_from_slice(b",\"currency\":\"");
            out.extend_from_slice(CURRENCY.as_bytes());
            out.push(b'"');
        }
        if let Some(keys) = self.keys.as_ref().filter(|_| self.batch > 1) {
            write!(out, ",\"idempotency_key\":\"{keys}-p{i}\"").expect("writing to a Vec");
        }
        out.push(b'}');
    }
}

/// What the connections saw: successful payments, requests, failures by kind, latencies.
pub struct Tally {
    pub payments: u64,
    pub requests: u64,
    /// Requests sent again after a failure (several servers only).
    pub retries: u64,
    /// Payments that did not succeed, by what went wrong (`HTTP 429 rate_limited`, ...).
    pub error_kinds: BTreeMap<String, u64>,
    /// Per request, send to complete reply, in microseconds.
    pub latencies: Histogram<u64>,
    last_reply: Option<Instant>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            payments: 0,
            requests: 0,
            retries: 0,
            error_kinds: BTreeMap::new(),
            latencies: measure::histogram(),
            last_reply: None,
        }
    }
}

#[derive(Deserialize)]
struct PaymentReply<'a> {
    #[serde(borrow)]
    status: &'a str,
}

#[derive(Deserialize)]
struct ErrorReply<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow, default)]
    code: Option<&'a str>,
}

#[derive(Deserialize)]
struct BatchReply<'a> {
    #[serde(borrow)]
    results: Vec<BatchItem<'a>>,
}

#[derive(Deserialize)]
struct BatchItem<'a> {
    #[serde(borrow, default)]
    result: Option<PaymentReply<'a>>,
    #[serde(borrow, default)]
    error: Option<ErrorBody<'a>>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.payments += other.payments;
        self.requests += other.requests;
        self.retries += other.retries;
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_default() += n;
        }
        self.latencies.add(&other.latencies).expect("same bounds");
        self.last_reply = self.last_reply.max(other.last_reply);
    }

    /// Payments that did not succeed.
    pub fn errors(&self) -> u64 {
        self.error_kinds.values().sum()
    }

    fn error(&mut self, kind: String, n: u64) {
        *self.error_kinds.entry(kind).or_default() += n;
    }

    fn check_payment(&mut self, status: u16, reply: &[u8]) {
        if status != 200 {
            return self.error(http_error(status, reply), 1);
        }
        match serde_json::from_slice::<PaymentReply>(reply) {
            Ok(p) if p.status == "succeeded" => self.payments += 1,
            Ok(p) => self.error(format!("payment {}", p.status), 1),
            Err(_) => self.error("HTTP 200 with an unreadable reply".into(), 1),
        }
    }

    fn check_batch(&mut self, status: u16, reply: &[u8], count: u64) {
        if status != 200 {
            return self.error(http_error(status, reply), count);
        }
        let Ok(batch) = serde_json::from_slice::<BatchReply>(reply) else {
            return self.error("HTTP 200 with an unreadable reply".into(), count);
        };
        if batch.results.len() as u64 != count {
            let kind = format!("{} results for a batch of {count}", batch.results.len());
            return self.error(kind, count);
        }
        for item in batch.results {
            match (item.result, item.error) {
                (Some(p), _) if p.status == "succeeded" => self.payments += 1,
                (Some(p), _) => self.error(format!("payment {}", p.status), 1),
                (None, Some(e)) => self.error(format!("batch item {}", e.code.unwrap_or("?")), 1),
                (None, None) => self.error("batch item without a result".into(), 1),
            }
        }
    }
}

/// `HTTP 422 coupon_used`: the status and, if the body says, the error's code.
fn http_error(status: u16, reply: &[u8]) -> String {
    match serde_json::from_slice::<ErrorReply>(reply) {
        Ok(ErrorReply { error: ErrorBody { code: Some(code) } }) => format!("HTTP {status} {code}"),
        _ => format!("HTTP {status}"),
    }
}

/// Where the requests go: `host:port`, a path prefix, and the key they carry.
pub(crate) struct Endpoint {
    authority: String,
    prefix: String,
    /// The `Host` and `Authorization` (the key) headers of every request.
    host: HeaderValue,
    authorization: HeaderValue,
}

impl Endpoint {
    /// From `http://host[:port][/prefix]`.
    pub(crate) fn parse(url: &str, key: &str) -> anyhow::Result<Endpoint> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("`{url}`: only http:// URLs are supported"))?;
        let (authority, prefix) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        if authority.is_empty() {
            bail!("`{url}` has no host");
        }
        let has_port = !authority.ends_with(']')
            && authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let prefix = prefix.trim_end_matches('/').to_owned();
        let host = HeaderValue::from_str(&authority).with_context(|| format!("`{url}`"))?;
        let authorization = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
            .context("an API key that cannot be a header")?;
        Ok(Endpoint { authority, prefix, host, authorization })
    }

    /// A new HTTP/1.1 connection; hyper reads and writes it in a task of its own.
    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot connect to {}", self.authority))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot start HTTP/1.1 with {}", self.authority))?;
        // Its errors reach the request that was in flight.
        tokio::spawn(connection);
        Ok(sender)
    }
}

/// A keep-alive HTTP/1.1 connection: one request at a time, each reply read whole before the
/// next request; a new connection once the server has closed it.
///
/// Opened on several servers (the nodes of a cluster) with a retry time, a request that gets
/// no answer or a 503 (no leader yet, the engine busy) goes again, unchanged (so with the same
/// idempotency keys), to the next server, after [`RETRY_PAUSE`], until the retry time is up.
pub(crate) struct Conn {
    endpoints: Arc<Vec<Arc<Endpoint>>>,
    /// The endpoint in use.
    at: usize,
    /// `None` until connected, and after a failure.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// How long a request may be tried again elsewhere; `None`: not at all.
    retry_for: Option<Duration>,
    /// Requests sent again after a failure.
    pub(crate) retries: u64,
    /// The body of the reply last returned.
    reply: Bytes,
}

/// Pause before a request goes again to the next server.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// With several servers, one that has not answered by then is given up for the next. A node's
/// own request timeout is 10 s, after which it answers 503.
const FAILOVER_REPLY_TIMEOUT: Duration = Duration::from_secs(12);

impl Conn {
    pub(crate) async fn open(endpoint: Arc<Endpoint>) -> anyhow::Result<Conn> {
        let sender = Some(endpoint.connect().await?);
        let endpoints = Arc::new(vec![endpoint]);
        Ok(Conn { endpoints, at: 0, sender, retry_for: None, retries: 0, reply: Bytes::new() })
    }

    /// A connection to any of `endpoints`, starting with the one at `at`, whose requests are
    /// tried again elsewhere for `retry_for`. It connects with its first request.
    pub(crate) fn any(endpoints: Arc<Vec<Arc<Endpoint>>>, at: usize, retry_for: Duration) -> Conn {
        let at = at % endpoints.len();
        Conn {
            endpoints,
            at,
            sender: None,
            retry_for: Some(retry_for),
            retries: 0,
            reply: Bytes::new(),
        }
    }

    /// `POST path` with a JSON body: the reply's status and body.
    pub(crate) async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<(u16, &[u8])> {
        self.call(Method::POST, path, body, None).await
    }

    /// `POST path` with a JSON body and an `Idempotency-Key`.
    pub(crate) async fn post_keyed(
        &mut self,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> anyhow::Result<(u16, &[u8])> {
        self.call(Method::POST, path, body, key).await
    }

    /// `GET path`: the reply's status and body.
    pub(crate) async fn get(&mut self, path: &str) -> anyhow::Result<(u16, &[u8])> {
        self.call(Method::GET, path, b"", None).await
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> anyhow::Result<(u16, &[u8])> {
        let started = Instant::now();
        let timeout = if self.retry_for.is_some() { FAILOVER_REPLY_TIMEOUT } else { REPLY_TIMEOUT };
        loop {
            let endpoint = self.endpoints[self.at].clone();
            let answer = match tokio::time::timeout(
                timeout,
                self.exchange(&method, path, body, key),
            )
            .await
            {
                Ok(answer) => answer.with_context(|| {
                    format!("{method} {}{path} on {}", endpoint.prefix, endpoint.authority)
                }),
                Err(_) => {
                    Err(anyhow::anyhow!("{method} {path}: no reply in {} s", timeout.as_secs()))
                }
            };
            let again = match (&answer, self.retry_for) {
                (Ok(503), Some(retry_for)) | (Err(_), Some(retry_for)) => {
                    started.elapsed() < retry_for
                }
                _ => false,
            };
            if !again {
                return answer.map(|status| (status, &self.reply[..]));
            }
            self.sender = None;
            self.at = (self.at + 1) % self.endpoints.len();
            self.retries += 1;
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One request on the current endpoint; its status (the body is in `reply`).
    async fn exchange(
        &mut self,
        method: &Method,
        path: &str,
        body: &[u8],
        key: Option<&str>,
    ) -> anyhow::Result<u16> {
        let endpoint = self.endpoints[self.at].clone();
        // Not ready: the server closed the connection after the last reply (`connection:
        // close`), or it went away.
        let ready = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            self.sender = None;
            let mut sender = endpoint.connect().await?;
            sender.ready().await?;
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected above");
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", endpoint.prefix))
            .header(HOST, endpoint.host.clone())
            .header(AUTHORIZATION, endpoint.authorization.clone())
            .header(CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let request = request.body(Full::new(Bytes::copy_from_slice(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        self.reply = response.into_body().collect().await?.to_bytes();
        Ok(status)
    }
}

/// A `huifu serve` child process on a temporary data folder, killed on drop.
pub struct Spawned {
    child: Child,
    /// Where it listens: `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its admin key, made for the run.
    pub key: String,
    _dir: tempfile::TempDir,
}

impl Spawned {
    /// Starts `exe serve` (`exe`: the huifu executable) on a free port and waits for its
    /// address.
    pub fn start(exe: &Path) -> anyhow::Result<Spawned> {
        let dir = tempfile::Builder::new()
            .prefix("huifu-bench-http-")
            .tempdir()
            .context("cannot create a data folder")?;
        let key = format!("hk_bench_{}", random_key());
        let child = Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            // The run's one key carries all of its load: no rate limit of a role's default.
            .arg("--key-rate-per-second")
            .arg(huifu_server::constants::KEY_RATE_PER_SECOND_MAX.to_string())
            .env("HUIFU_ADMIN_KEY", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let mut server = Spawned { child, url: String::new(), key, _dir: dir };
        server.url =
            listening_url(&mut server.child)?.context("huifu serve stopped before listening")?;
        Ok(server)
    }
}

/// 32 random alphanumerics, for an admin key made for a run.
pub(crate) fn random_key() -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The URL a `huifu serve` child prints once it listens (its stdout piped); `None` if it
/// stopped first. Its output is drained afterwards, so that it never blocks on a full pipe.
pub(crate) fn listening_url(child: &mut Child) -> anyhow::Result<Option<String>> {
    let stdout = child.stdout.take().context("no stdout of huifu serve")?;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.context("cannot read the output of huifu serve")?;
        if let Some(url) = line.strip_prefix("huifu listening on ") {
            let url = url.trim().to_owned();
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(Some(url));
        }
    }
    Ok(None)
}

impl Spawned {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn args(payments: u64, batch: usize) -> HttpOptions {
        HttpOptions {
            payments,
            connections: 5,
            batch,
            users: 7,
            merchants: 3,
            riders: 2,
            threads: 2,
            name_currency: false,
            seed: 1,
            retry_seconds: 5,
        }
    }

    /// Connects, sets up, runs.
    fn run_http(options: &HttpOptions, url: &str, key: &str) -> anyhow::Result<HttpRun> {
        let mut bench = HttpBench::connect(options.clone(), &[url.to_owned()], key)?;
        bench.set_up()?;
        bench.run(None, Arc::new(()))
    }

    #[test]
    fn urls_give_the_address_and_the_path_prefix() {
        let e = Endpoint::parse("http://127.0.0.1:7070", " k ").unwrap();
        assert_eq!(
            (e.authority.as_str(), e.prefix.as_str(), e.authorization.to_str().unwrap()),
            ("127.0.0.1:7070", "", "Bearer k")
        );
        let e = Endpoint::parse("http://example.com/api/", "k").unwrap();
        assert_eq!((e.authority.as_str(), e.prefix.as_str()), ("example.com:80", "/api"));
        let e = Endpoint::parse("http://[::1]", "k").unwrap();
        assert_eq!(e.authority, "[::1]:80");
        assert!(Endpoint::parse("https://example.com", "k").is_err());
        assert!(Endpoint::parse("http:///x", "k").is_err());
    }

    /// Replies cut into small pieces are put together; a reply that closes the connection makes
    /// the next request open a new one.
    #[test]
    fn with_several_servers_a_request_goes_again_to_the_next_with_its_key() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            // A server that answers 503 no_leader, one that is gone, and one that answers 200.
            let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
            let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let urls = [busy.local_addr().unwrap(), gone, good.local_addr().unwrap()];
            let answer = |listener: tokio::net::TcpListener, status: &'static str| {
                tokio::spawn(async move {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut seen = Vec::new();
                    let mut byte = [0; 1];
                    while !seen.ends_with(b"\r\n\r\n{}") {
                        socket.read_exact(&mut byte).await.unwrap();
                        seen.push(byte[0]);
                    }
                    let head = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\n{{}}");
                    socket.write_all(head.as_bytes()).await.unwrap();
                    String::from_utf8(seen).unwrap().to_ascii_lowercase()
                })
            };
            let busy = answer(busy, "503 Service Unavailable");
            let good = answer(good, "200 OK");
            let endpoints: Vec<Arc<Endpoint>> = urls
                .iter()
                .map(|addr| Arc::new(Endpoint::parse(&format!("http://{addr}"), "k").unwrap()))
                .collect();
            let mut conn = Conn::any(Arc::new(endpoints), 0, Duration::from_secs(5));
            let (status, _) = conn.post_keyed("/v1/payments", b"{}", Some("key-1")).await.unwrap();
            assert_eq!(status, 200);
            assert_eq!(conn.retries, 2);
            for seen in [busy.await.unwrap(), good.await.unwrap()] {
                assert!(seen.contains("idempotency-key: key-1\r\n"), "{seen}");
            }

            // With nothing to answer, it gives up once its retry time is up.
            let endpoints =
                vec![Arc::new(Endpoint::parse(&format!("http://{gone}"), "k").unwrap())];
            let mut conn = Conn::any(Arc::new(endpoints), 0, Duration::from_millis(200));
            assert!(conn.post("/v1/payments", b"{}").await.is_err());
            assert!(conn.retries >= 2, "{}", conn.retries);
        });
    }

    #[test]
    fn the_client_reads_split_replies_and_reconnects_after_close() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let mut accepted = 0;
                // First connection: two replies, the second closing; second connection: one.
                for replies in [vec![false, true], vec![false]] {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    accepted += 1;
                    let mut seen = Vec::new();
                    for close in replies {
                        let mut byte = [0; 1];
                        while !seen.ends_with(b"\r\n\r\n{}") {
                            socket.read_exact(&mut byte).await.unwrap();
                            seen.push(byte[0]);
                        }
                        seen.clear();
                        let body = br#"{"status":"succeeded","padding":"xxxxxxxxxxxxxxxx"}"#;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{}\r\n",
                            body.len(),
                            if close { "connection: close\r\n" } else { "" }
                        );
                        let reply = [head.as_bytes(), body].concat();
                        for piece in reply.chunks(7) {
                            socket.write_all(piece).await.unwrap();
                            socket.flush().await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    }
                }
                accepted
            });
            let endpoint = Arc::new(Endpoint::parse(&format!("http://{addr}"), "k").unwrap());
            let mut conn = Conn::open(endpoint).await.unwrap();
            for _ in 0..3 {
                let (status, body) = conn.post("/v1/payments", b"{}").await.unwrap();
                assert_eq!(status, 200);
                assert!(body.starts_with(br#"{"status":"succeeded""#) && body.ends_with(b"}"));
            }
            assert_eq!(server.await.unwrap(), 2);
        });
    }

    #[test]
    fn replies_are_counted_as_payments_or_errors_by_kind() {
        let mut t = Tally::default();
        t.check_payment(200, br#"{"id":"pay_1","status":"succeeded"}"#);
        t.check_payment(200, br#"{"id":"pay_2","status":"authorized"}"#);
        t.check_payment(429, br#"{"error":{"type":"rate_limit_error","code":"rate_limited"}}"#);
        t.check_payment(502, b"bad gateway");
        t.check_batch(
            200,
            br#"{"object":"batch","results":[{"result":{"status":"succeeded"}},{"error":{"code":"invalid_id","param":"user"}}]}"#,
            2,
        );
        t.check_batch(200, br#"{"results":[]}"#, 3);
        t.check_batch(503, br#"{"error":{"code":"unavailable"}}"#, 4);
        assert_eq!(t.payments, 2);
        let kinds: Vec<(&str, u64)> = t.error_kinds.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(
            kinds,
            [
                ("0 results for a batch of 3", 3),
                ("HTTP 429 rate_limited", 1),
                ("HTTP 502", 1),
                ("HTTP 503 unavailable", 4),
                ("batch item invalid_id", 1),
                ("payment authorized", 1),
            ]
        );
        assert_eq!(t.errors(), 11);
    }

    /// The whole benchmark against a real server, in this process: set-up over HTTP, then
    /// single payments, then batches (with a short last one).
    #[test]
    fn the_benchmark_pays_every_payment_through_a_server() {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}").parse().unwrap();
        let key = "hk_test_admin_key_0123456789";
        let mut config = huifu_server::Config::new(dir.path(), listen);
        config.admin_key = Some(key.to_owned());
        config.fsync = false;
        let server = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        server.spawn(huifu_server::serve(config));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        let url = format!("http://127.0.0.1:{port}");

        let run = run_http(&args(301, 1), &url, key).unwrap();
        assert!(run.tally.error_kinds.is_empty(), "{:?}", run.tally.error_kinds);
        assert_eq!((run.tally.payments, run.tally.requests), (301, 301));
        assert_eq!(run.tally.latencies.len(), 301);
        assert!(run.seconds > 0.0 && run.setup_seconds > 0.0);

        let mut batched = args(1_050, 100);
        batched.name_currency = true;
        let run = run_http(&batched, &url, key).unwrap();
        assert!(run.tally.error_kinds.is_empty(), "{:?}", run.tally.error_kinds);
        assert_eq!((run.tally.payments, run.tally.requests), (1_050, 11));

        // A wrong key: the set-up fails with the server's answer.
        let error = run_http(&args(10, 1), &url, "hk_wrong").err().unwrap();
        assert!(format!("{error:#}").contains("401"), "{error:#}");
        drop(server);
    }
}
