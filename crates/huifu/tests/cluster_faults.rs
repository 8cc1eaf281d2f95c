//! Faults under load on a three-node cluster of the real `huifu serve`. Client threads send
//! ledger transfers and payments to any running node, retrying each with the same transfer
//! ids or `Idempotency-Key` until it is acknowledged, while the leader is killed, a follower
//! is killed, the leader is cut off, the cluster is split, a link is cut both ways and another
//! one way, links are slowed, a follower's folder is wiped, and the leader is killed again and
//! once more as the load stops. What was left without an answer is then sent again until it is
//! acknowledged. Every node must reach the same applied index with the same digest; every
//! acknowledged operation must be there exactly once, and nothing else; each failover (a
//! leader gone, to the first write acknowledged after it) must take under 5 s; and each
//! stopped node's folder must pass `huifu audit` with the cluster's digest.
//!
//! The summary at the end (run with `--nocapture`) gives the counts, the faults with their
//! wall-clock times (to find them in the nodes' logs) and the failover times.

#[path = "support/cluster.rs"]
mod cluster;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cluster::{agent, request, Cluster};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Client threads sending writes.
const CLIENTS: usize = 3;
/// Writes one client sends at most (the fault script ends the load first).
const WRITES_PER_CLIENT_MAX: u64 = 50_000;
/// How long a client waits for one answer before it tries again elsewhere.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the fault script may take; faults not started by then are skipped.
const FAULTS_BUDGET: Duration = Duration::from_secs(45);
/// How long the cluster may take to be whole again after a fault.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// A failover must take less than this (the target is 2 s, measured on release builds).
const FAILOVER_MAX: Duration = Duration::from_secs(5);

/// The two ledger accounts the transfers go between, on a ledger of their own.
const DEBIT_ACCOUNT: u128 = 900_001;
const CREDIT_ACCOUNT: u128 = 900_002;
const LEDGER: u32 = 9;
const TRANSFERS_PER_CALL: u64 = 4;
/// What each client's wallet is topped up with before the load.
const TOP_UP: u64 = 1_000_000_000;

/// The parties of the payments, made before the load.
struct Parties {
    merchant: String,
    rider: String,
    /// One user a client.
    users: Vec<String>,
}

/// A write a client sends until it is acknowledged.
#[derive(Clone, Debug)]
enum Write {
    /// Ledger transfers (id, amount) from the debit account to the credit account.
    Transfers(Vec<(u128, u64)>),
    /// A wallet payment of client `client`'s user.
    Payment { client: usize, key: String, amount: u64 },
}

impl Write {
    /// The path, the body and the idempotency key of the request.
    fn request(&self, parties: &Parties) -> (&'static str, String, Option<String>) {
        match self {
            Write::Transfers(batch) => {
                let events: Vec<Value> = batch
                    .iter()
                    .map(|(id, amount)| {
                        json!({
                            "id": id.to_string(),
                            "debit_account_id": DEBIT_ACCOUNT.to_string(),
                            "credit_account_id": CREDIT_ACCOUNT.to_string(),
                            "amount": amount.to_string(),
                            "ledger": LEDGER,
                            "code": 1,
                        })
                    })
                    .collect();
                ("/v1/ledger/transfers", Value::Array(events).to_string(), None)
            }
            Write::Payment { client, key, amount } => {
                let body = json!({
                    "user": parties.users[*client],
                    "merchant": parties.merchant,
                    "rider": parties.rider,
                    "food_amount": amount,
                    "currency": "CNY",
                });
                ("/v1/payments", body.to_string(), Some(key.clone()))
            }
        }
    }
}

/// A payment acknowledged.
#[derive(Clone, Debug)]
struct Paid {
    client: usize,
    key: String,
    id: String,
    amount: u64,
}

/// What the clients saw.
#[derive(Default)]
struct Record {
    transfers: Vec<(u128, u64)>,
    /// Transfers answered `exists`: a retry of one applied before its answer was lost.
    transfers_existing: u64,
    payments: Vec<Paid>,
    /// Every acknowledged write: when the attempt that was answered was sent, and answered.
    acks: Vec<(Instant, Instant)>,
    /// Writes acknowledged only after more than one attempt.
    retried: u64,
    /// Writes not acknowledged when the load stopped; sent again once the faults are over.
    unfinished: Vec<Write>,
    /// Attempts that got no acknowledgement, by why, with the first message of each kind.
    failed_attempts: BTreeMap<String, (u64, String)>,
    /// Answers that are wrong whatever the faults.
    errors: Vec<String>,
}

/// What the clients and the fault script share.
struct Shared {
    urls: Vec<String>,
    running: Arc<Vec<AtomicBool>>,
    parties: Parties,
    stop: AtomicBool,
    record: Mutex<Record>,
}

impl Shared {
    fn record(&self) -> MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A node to send to: one that runs, else any.
    fn pick(&self, rng: &mut SmallRng) -> &str {
        let running: Vec<usize> =
            (0..self.urls.len()).filter(|&i| self.running[i].load(Ordering::Relaxed)).collect();
        let i = if running.is_empty() {
            rng.gen_range(0..self.urls.len())
        } else {
            running[rng.gen_range(0..running.len())]
        };
        &self.urls[i]
    }
}

/// The outcome of sending one write until it is acknowledged.
enum Delivery {
    Acked {
        reply: Value,
        sent: Instant,
        answered: Instant,
        attempts: u32,
    },
    /// The load stopped, or the deadline passed, first.
    Stopped,
    /// An answer no retry can change (a 4xx other than 429).
    Refused(String),
}

/// Sends `POST path` with `body` (and `key` as the `Idempotency-Key`) to running nodes, again
/// and again after a short pause on a transport error, 429 or 5xx, until it is acknowledged,
/// `stop` is set or `deadline` passes. `Retry-After` is not waited for: the pause is short,
/// so the first write after a failover is seen when it can be made.
#[allow(clippy::too_many_arguments)]
fn deliver(
    shared: &Shared,
    agent: &ureq::Agent,
    rng: &mut SmallRng,
    path: &str,
    body: &str,
    key: Option<&str>,
    stop: Option<&AtomicBool>,
    deadline: Instant,
) -> Delivery {
    let headers: Vec<(&str, &str)> = key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
    let mut pause = Duration::from_millis(10);
    let mut attempts = 0;
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) || Instant::now() > deadline {
            return Delivery::Stopped;
        }
        attempts += 1;
        let url = format!("{}{path}", shared.pick(rng));
        let sent = Instant::now();
        let (why, message) = match request(agent, "POST", &url, Some(body), &headers) {
            Ok((200, reply)) => {
                return Delivery::Acked { reply, sent, answered: Instant::now(), attempts }
            }
            Ok((status, reply)) if status == 429 || status >= 500 => {
                let code = reply["error"]["code"].as_str().unwrap_or("-");
                (format!("{status} {code}"), reply.to_string())
            }
            Ok((status, reply)) => return Delivery::Refused(format!("{status} {reply}")),
            Err(e) => (transport_error(&e), e),
        };
        let mut record = shared.record();
        let counted = record.failed_attempts.entry(why).or_insert((0, message));
        counted.0 += 1;
        drop(record);
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A transport error in a word or two, to count attempts by.
fn transport_error(e: &str) -> String {
    let e = e.to_lowercase();
    let kind = if e.contains("timed out") || e.contains("timeout") {
        "timed out"
    } else if e.contains("refused") {
        "connection refused"
    } else if e.contains("reset") || e.contains("broken pipe") || e.contains("closed") {
        "connection closed"
    } else {
        "other transport error"
    };
    format!("transport: {kind}")
}

/// Sends `write` until it is acknowledged (see `deliver`) and records the outcome: the write
/// acknowledged, unfinished, or an error.
fn submit(
    shared: &Shared,
    agent: &ureq::Agent,
    rng: &mut SmallRng,
    write: Write,
    stop: Option<&AtomicBool>,
    deadline: Instant,
) {
    let (path, body, key) = write.request(&shared.parties);
    let delivery = deliver(shared, agent, rng, path, &body, key.as_deref(), stop, deadline);
    let mut record = shared.record();
    let (reply, sent, answered, attempts) = match delivery {
        Delivery::Acked { reply, sent, answered, attempts } => (reply, sent, answered, attempts),
        Delivery::Stopped => return record.unfinished.push(write),
        Delivery::Refused(answer) => {
            return record.errors.push(format!("{write:?} refused: {answer}"));
        }
    };
    match &write {
        Write::Transfers(batch) => {
            let results: Vec<&str> = reply
                .as_array()
                .map(|r| r.iter().filter_map(|r| r["result"].as_str()).collect())
                .unwrap_or_default();
            if results.len() != batch.len()
                || results.iter().any(|r| !matches!(*r, "created" | "exists"))
            {
                return record.errors.push(format!("{write:?} answered {reply}"));
            }
            record.transfers_existing += results.iter().filter(|r| **r == "exists").count() as u64;
            record.transfers.extend(batch.iter().copied());
        }
        Write::Payment { client, key, amount } => {
            let id = reply["id"].as_str();
            if reply["status"] != "succeeded" || reply["amount"] != *amount || id.is_none() {
                return record.errors.push(format!("{write:?} answered {reply}"));
            }
            let id = id.unwrap().to_owned();
            record.payments.push(Paid { client: *client, key: key.clone(), id, amount: *amount });
        }
    }
    record.acks.push((sent, answered));
    if attempts > 1 {
        record.retried += 1;
    }
}

/// One client: ledger transfers and payments, one after the other, until the load stops.
fn client(shared: Arc<Shared>, c: usize, seed: u64) {
    let agent = agent(CLIENT_TIMEOUT);
    let mut rng = SmallRng::seed_from_u64(seed);
    // The whole test is bounded; this only bounds a client whose stop never comes.
    let deadline = Instant::now() + FAULTS_BUDGET + Duration::from_secs(60);
    for n in 0..WRITES_PER_CLIENT_MAX {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let write = if n % 2 == 0 {
            let first = ((c as u128 + 1) << 40) | u128::from(n * TRANSFERS_PER_CALL);
            Write::Transfers(
                (0..TRANSFERS_PER_CALL)
                    .map(|k| (first + u128::from(k), rng.gen_range(1..=1_000)))
                    .collect(),
            )
        } else {
            Write::Payment {
                client: c,
                key: format!("c{c}-pay-{n}"),
                amount: rng.gen_range(1..=500),
            }
        };
        submit(&shared, &agent, &mut rng, write, Some(&shared.stop), deadline);
    }
}

/// Sends a set-up call (with `key` as its `Idempotency-Key`; the ledger's ids are their own)
/// until it is acknowledged (at most 30 s) and returns the reply.
fn setup(shared: &Shared, rng: &mut SmallRng, path: &str, body: Value, key: Option<&str>) -> Value {
    let agent = agent(CLIENT_TIMEOUT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = body.to_string();
    match deliver(shared, &agent, rng, path, &body, key, None, deadline) {
        Delivery::Acked { reply, .. } => reply,
        Delivery::Stopped => panic!("POST {path} {body}: not acknowledged within 30 s"),
        Delivery::Refused(answer) => panic!("POST {path} {body}: {answer}"),
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned()
}

/// The parties and the two ledger accounts, made through any node with retries.
fn make_parties(shared: &mut Shared, rng: &mut SmallRng) {
    let v = setup(
        shared,
        rng,
        "/v1/ledger/accounts",
        json!([
            {"id": DEBIT_ACCOUNT.to_string(), "ledger": LEDGER, "code": 1},
            {"id": CREDIT_ACCOUNT.to_string(), "ledger": LEDGER, "code": 1},
        ]),
        None,
    );
    for r in v.as_array().expect("one result an account") {
        assert!(matches!(r["result"].as_str(), Some("created" | "exists")), "{v}");
    }
    let cny = json!({"currency": "CNY"});
    let channel = id_of(&setup(shared, rng, "/v1/channels", cny.clone(), Some("setup-channel")));
    let merchant = id_of(&setup(
        shared,
        rng,
        "/v1/merchants",
        json!({"currency": "CNY", "commission_bps": 1000, "channel": channel}),
        Some("setup-merchant"),
    ));
    let rider = id_of(&setup(shared, rng, "/v1/riders", cny.clone(), Some("setup-rider")));
    let mut users = Vec::new();
    for c in 0..CLIENTS {
        let user =
            id_of(&setup(shared, rng, "/v1/users", cny.clone(), Some(&format!("setup-user-{c}"))));
        let top_up = setup(
            shared,
            rng,
            "/v1/topups",
            json!({"user": user, "channel": channel, "amount": TOP_UP}),
            Some(&format!("setup-topup-{c}")),
        );
        let done = setup(
            shared,
            rng,
            &format!("/v1/topups/{}/confirm", id_of(&top_up)),
            json!({}),
            Some(&format!("setup-confirm-{c}")),
        );
        assert_eq!(done["status"], "succeeded", "{done}");
        users.push(user);
    }
    shared.parties = Parties { merchant, rider, users };
}

/// The fault script, in order; each fault starts once the cluster is whole again.
const SCRIPT: [Step; 9] = [
    Step::KillLeader,
    Step::KillFollower,
    Step::IsolateLeader,
    Step::SplitOffFollower,
    Step::CutLinkBothWays,
    Step::CutLinkOneWay,
    Step::SlowLeaderLinks,
    Step::WipeFollower,
    Step::KillLeader,
];

#[derive(Clone, Copy, Debug)]
enum Step {
    KillLeader,
    KillFollower,
    IsolateLeader,
    SplitOffFollower,
    CutLinkBothWays,
    CutLinkOneWay,
    SlowLeaderLinks,
    WipeFollower,
}

/// A fault the script injected: what, when (wall clock, to find it in the nodes' logs, and
/// from and to), and whether the load ran meanwhile.
struct Fault {
    what: String,
    wall: String,
    started: Instant,
    ended: Instant,
    load: bool,
}

impl Fault {
    fn line(&self, test_started: Instant) -> String {
        format!(
            "{:>5.1} s to {:>5.1} s ({} UTC)  {}",
            (self.started - test_started).as_secs_f64(),
            (self.ended - test_started).as_secs_f64(),
            self.wall,
            self.what
        )
    }
}

/// The time of day in UTC, as the nodes' logs write it (HH:MM:SS.mmm).
fn utc_clock() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let (secs, ms) = (now.as_secs() % 86_400, now.subsec_millis());
    format!("{:02}:{:02}:{:02}.{ms:03}", secs / 3_600, secs / 60 % 60, secs % 60)
}

/// The longest time between `from` and `to` with no write acknowledged (`answered` sorted).
fn longest_stall(answered: &[Instant], from: Instant, to: Instant) -> Duration {
    let inside = answered.iter().copied().filter(|at| *at >= from && *at <= to);
    let mut edges: Vec<Instant> = std::iter::once(from).chain(inside).collect();
    edges.push(to);
    edges.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

/// A transfer sent straight to a leader cut off from the others; sent again, like every write
/// left without an answer, once the faults are over.
const PROBE_TRANSFER: u128 = 1 << 60;

/// What a leader cut off from the others says once the others have elected another: its
/// `/healthz`, whom it takes for the leader, and what a write sent to it gets (it cannot
/// commit one, so an acknowledgement is an error).
fn probe_cut_off_leader(cluster: &Cluster, shared: &Shared, id: u64) -> String {
    let url = cluster.node(id).url();
    let quick = agent(Duration::from_millis(1_500));
    let health = match request(&quick, "GET", &format!("{url}/healthz"), None, &[]) {
        Ok((status, _)) => status.to_string(),
        Err(e) => transport_error(&e),
    };
    let believes = cluster
        .view(id)
        .map_or("no answer".into(), |v| format!("leader {} at term {}", v["leader"], v["term"]));
    let write = Write::Transfers(vec![(PROBE_TRANSFER, 1)]);
    let (path, body, _) = write.request(&shared.parties);
    let sent = Instant::now();
    let answer = match request(&quick, "POST", &format!("{url}{path}"), Some(&body), &[]) {
        Ok((200, reply)) => {
            let error = format!("node {id}, cut off, acknowledged {write:?}: {reply}");
            shared.record().errors.push(error);
            format!("200 {reply}")
        }
        Ok((status, reply)) => format!("{status} {}", reply["error"]["code"]),
        Err(e) => format!("{} after {:.1} s", transport_error(&e), sent.elapsed().as_secs_f64()),
    };
    shared.record().unfinished.push(write);
    format!(
        "leader {id} cut off, after the others elected another: /healthz {health}; it takes \
         for the leader: {believes}; a transfer sent to it: {answer}"
    )
}

/// How long from `since` to the first write acknowledged on an attempt sent at or after it
/// (so made by a leader in office after `since`), if one comes within `within`.
fn first_ack_after(shared: &Shared, since: Instant, within: Duration) -> Option<Duration> {
    let deadline = since + within;
    loop {
        let first = shared
            .record()
            .acks
            .iter()
            .filter(|(sent, _)| *sent >= since)
            .map(|(_, answered)| *answered)
            .min();
        if let Some(at) = first {
            return Some(at - since);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A read with the admin key, on `url`, retried on a transport error, 429 or 5xx (at most
/// 10 s); the status and body of the first other answer.
fn read(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match request(agent, method, url, body, headers) {
            Ok((status, v)) if status != 429 && status < 500 => return (status, v),
            answer if Instant::now() > deadline => panic!("{method} {url}: {answer:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Every page of a list: `page(after)` is the URL of the page after the item `after`; items
/// are read from `data` (or the array itself) and named by `id`. At most `pages_max` pages.
fn all_pages(
    agent: &ureq::Agent,
    pages_max: usize,
    page: impl Fn(Option<&str>) -> String,
) -> Vec<Value> {
    let mut items: Vec<Value> = Vec::new();
    for _ in 0..pages_max {
        let after = items.last().map(id_of);
        let (status, v) = read(agent, "GET", &page(after.as_deref()), None, &[]);
        assert_eq!(status, 200, "{v}");
        let data = if v.is_array() { v.clone() } else { v["data"].clone() };
        let data = data.as_array().cloned().unwrap_or_default();
        let more = if v.is_array() { !data.is_empty() } else { v["has_more"] == true };
        items.extend(data);
        if !more {
            return items;
        }
    }
    panic!("more than {pages_max} pages");
}

#[test]
fn a_cluster_under_faults_keeps_every_acknowledged_write_once() {
    let started = Instant::now();
    let seed: u64 = std::env::var("HUIFU_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (HUIFU_FAULT_SEED to pick the clients' amounts and nodes again)");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut cluster = Cluster::start(3);
    let first_leader = cluster.leader(Duration::from_secs(20));
    let up_after = started.elapsed();

    let mut shared = Shared {
        urls: cluster.urls(),
        running: cluster.running.clone(),
        parties: Parties { merchant: String::new(), rider: String::new(), users: Vec::new() },
        stop: AtomicBool::new(false),
        record: Mutex::new(Record::default()),
    };
    make_parties(&mut shared, &mut rng);
    let shared = Arc::new(shared);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let shared = shared.clone();
            let seed = seed.wrapping_add(c as u64 + 1);
            std::thread::spawn(move || client(shared, c, seed))
        })
        .collect();

    // The fault script: each fault once the cluster is whole again, while the budget lasts.
    let load_started = Instant::now();
    let mut faults: Vec<Fault> = Vec::new();
    let mut failovers: Vec<(String, Option<Duration>)> = Vec::new();
    let mut skipped: Vec<Step> = Vec::new();
    let mut observations: Vec<String> = Vec::new();
    let others = |leader: u64| -> (u64, u64) {
        let o: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
        (o[0], o[1])
    };
    std::thread::sleep(Duration::from_millis(1_500));
    for step in SCRIPT {
        if load_started.elapsed() > FAULTS_BUDGET {
            skipped.push(step);
            continue;
        }
        let leader = cluster.wait_ready(READY_WITHIN);
        let (f1, f2) = others(leader);
        let (since, wall) = (Instant::now(), utc_clock());
        let what = match step {
            Step::KillLeader => {
                cluster.kill(leader);
                let failover = first_ack_after(&shared, since, Duration::from_secs(10));
                failovers.push((format!("SIGKILL of leader {leader}"), failover));
                let next = cluster.leader(READY_WITHIN);
                std::thread::sleep(Duration::from_millis(500));
                cluster.start_node(leader);
                format!(
                    "SIGKILL of leader {leader} (node {next} took over), restarted on its folder"
                )
            }
            Step::KillFollower => {
                cluster.kill(f1);
                std::thread::sleep(Duration::from_millis(1_500));
                cluster.start_node(f1);
                format!("SIGKILL of follower {f1} for 1.5 s, restarted on its folder")
            }
            Step::IsolateLeader => {
                cluster.proxy.isolate(leader);
                let failover = first_ack_after(&shared, since, Duration::from_secs(10));
                failovers.push((format!("leader {leader} cut off"), failover));
                let next = cluster.leader(READY_WITHIN);
                observations.push(probe_cut_off_leader(&cluster, &shared, leader));
                let left = Duration::from_millis(3_000).saturating_sub(since.elapsed());
                std::thread::sleep(left);
                cluster.proxy.heal_all();
                format!("leader {leader} cut off from both others for 3 s (node {next} took over)")
            }
            Step::SplitOffFollower => {
                cluster.proxy.split(&[leader, f1], &[f2]);
                std::thread::sleep(Duration::from_millis(2_000));
                cluster.proxy.heal_all();
                format!("split {{{leader}, {f1}}} | {{{f2}}} for 2 s")
            }
            Step::CutLinkBothWays => {
                cluster.proxy.cut(leader, f1);
                cluster.proxy.cut(f1, leader);
                std::thread::sleep(Duration::from_millis(2_500));
                cluster.proxy.heal_all();
                format!("links {leader} <-> {f1} cut for 2.5 s ({f2} reaches both)")
            }
            Step::CutLinkOneWay => {
                cluster.proxy.cut(leader, f2);
                std::thread::sleep(Duration::from_millis(2_500));
                cluster.proxy.heal_all();
                format!("link {leader} -> {f2} cut for 2.5 s ({f2} still reaches {leader})")
            }
            Step::SlowLeaderLinks => {
                for f in [f1, f2] {
                    cluster.proxy.delay(leader, f, Duration::from_millis(30));
                    cluster.proxy.delay(f, leader, Duration::from_millis(30));
                }
                std::thread::sleep(Duration::from_millis(2_000));
                cluster.proxy.heal_all();
                format!("leader {leader}'s links slowed by 30 ms a chunk for 2 s")
            }
            Step::WipeFollower => {
                cluster.wipe(f2);
                std::thread::sleep(Duration::from_millis(1_000));
                format!("follower {f2} killed, its folder wiped, restarted empty")
            }
        };
        let fault = Fault { what, wall, started: since, ended: Instant::now(), load: true };
        eprintln!("{}", fault.line(started));
        faults.push(fault);
    }
    // The load stops as the leader is killed: the writes in flight then are left without an
    // answer, some of them applied, and are sent again below.
    let leader = cluster.wait_ready(READY_WITHIN);
    std::thread::sleep(Duration::from_millis(1_000));
    let (since, wall) = (Instant::now(), utc_clock());
    cluster.kill(leader);
    shared.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client panicked");
    }
    let load_ended = Instant::now();
    let load_time = load_ended - load_started;
    cluster.start_node(leader);
    let what = format!("SIGKILL of leader {leader} as the load stopped, restarted on its folder");
    let fault = Fault { what, wall, started: since, ended: Instant::now(), load: false };
    eprintln!("{}", fault.line(started));
    faults.push(fault);
    cluster.wait_ready(READY_WITHIN);

    // What was not acknowledged when the load stopped is sent again, with the same ids and
    // keys, until it is: then every write sent was acknowledged, and the server must hold
    // exactly the acknowledged ones.
    let unfinished = std::mem::take(&mut shared.record().unfinished);
    let settle_agent = agent(CLIENT_TIMEOUT);
    let settle_deadline = Instant::now() + Duration::from_secs(30);
    let existing_before = shared.record().transfers_existing;
    for write in unfinished.iter().cloned() {
        submit(&shared, &settle_agent, &mut rng, write, None, settle_deadline);
    }
    let record = std::mem::take(&mut *shared.record());
    let existing_on_settling = record.transfers_existing - existing_before;
    assert!(record.errors.is_empty(), "wrong answers: {:#?}", record.errors);
    assert!(record.unfinished.is_empty(), "never acknowledged: {:?}", record.unfinished);

    // A retry of an acknowledged write, long after, still gets its first outcome.
    let leader = cluster.wait_ready(READY_WITHIN);
    let base = cluster.node(leader).url();
    let reader = agent(Duration::from_secs(10));
    for paid in record.payments.iter().step_by((record.payments.len() / 10).max(1)) {
        let write =
            Write::Payment { client: paid.client, key: paid.key.clone(), amount: paid.amount };
        let (path, body, key) = write.request(&shared.parties);
        let (status, v) = read(
            &reader,
            "POST",
            &format!("{base}{path}"),
            Some(&body),
            &[("Idempotency-Key", key.as_deref().unwrap())],
        );
        assert_eq!((status, id_of(&v)), (200, paid.id.clone()), "a retry of {paid:?}: {v}");
    }

    // Every node at the same applied index with the same digest.
    let view = cluster.wait_converged(Duration::from_secs(30));
    let leader = view["leader"].as_u64().unwrap();
    let base = cluster.node(leader).url();
    let applied = view["nodes"][0]["applied"].as_u64().unwrap();
    let digest = view["nodes"][0]["digest"].as_str().unwrap().to_owned();

    // Ledger: each acknowledged transfer once, as sent; the accounts' totals are theirs; the
    // debit account's transfers are exactly the acknowledged ones.
    let checks_started = Instant::now();
    let sent: HashMap<u128, u64> = record.transfers.iter().copied().collect();
    assert_eq!(sent.len(), record.transfers.len(), "a transfer id acknowledged twice");
    let total: u128 = record.transfers.iter().map(|(_, a)| u128::from(*a)).sum();
    for ids in record.transfers.chunks(1_000) {
        let body = json!({"ids": ids.iter().map(|(id, _)| id.to_string()).collect::<Vec<_>>()});
        let url = format!("{base}/v1/ledger/transfers/lookup");
        let (status, found) = read(&reader, "POST", &url, Some(&body.to_string()), &[]);
        assert_eq!(status, 200, "{found}");
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), ids.len(), "transfers missing");
        for (t, (id, amount)) in found.iter().zip(ids) {
            assert_eq!(t["id"], id.to_string(), "{t}");
            assert_eq!(t["amount"], amount.to_string(), "{t}");
            assert_eq!(t["debit_account_id"], DEBIT_ACCOUNT.to_string(), "{t}");
            assert_eq!(t["credit_account_id"], CREDIT_ACCOUNT.to_string(), "{t}");
        }
    }
    let listed = all_pages(&reader, record.transfers.len() / 1_000 + 5, |after| {
        let after = after.map(|a| format!("&starting_after={a}")).unwrap_or_default();
        format!("{base}/v1/ledger/accounts/{DEBIT_ACCOUNT}/transfers?limit=1000{after}")
    });
    let listed_ids: Vec<u128> = listed.iter().map(|t| id_of(t).parse().unwrap()).collect();
    let listed_set: BTreeSet<u128> = listed_ids.iter().copied().collect();
    assert_eq!(listed_set.len(), listed_ids.len(), "a transfer listed twice");
    let acked_set: BTreeSet<u128> = sent.keys().copied().collect();
    assert_eq!(listed_set, acked_set, "the account's transfers are not the acknowledged ones");
    let body = json!({"ids": [DEBIT_ACCOUNT.to_string(), CREDIT_ACCOUNT.to_string()]}).to_string();
    let (_, accounts) =
        read(&reader, "POST", &format!("{base}/v1/ledger/accounts/lookup"), Some(&body), &[]);
    assert_eq!(accounts[0]["debits_posted"], total.to_string(), "{accounts}");
    assert_eq!(accounts[0]["credits_posted"], "0", "{accounts}");
    assert_eq!(accounts[1]["credits_posted"], total.to_string(), "{accounts}");
    assert_eq!(accounts[1]["debits_posted"], "0", "{accounts}");

    // Payments: each acknowledged one readable as acknowledged; each wallet's payments exactly
    // the acknowledged ones, its balance the top-up less their sum; every node agrees.
    for paid in &record.payments {
        let (status, v) =
            read(&reader, "GET", &format!("{base}/v1/payments/{}", paid.id), None, &[]);
        assert_eq!(status, 200, "{paid:?}: {v}");
        assert_eq!(
            (v["amount"].as_u64(), v["status"].as_str()),
            (Some(paid.amount), Some("succeeded")),
            "{paid:?}: {v}"
        );
    }
    for (c, user) in shared.parties.users.iter().enumerate() {
        let mine: Vec<&Paid> = record.payments.iter().filter(|p| p.client == c).collect();
        let listed = all_pages(&reader, mine.len() / 1_000 + 5, |after| {
            let after = after.map(|a| format!("&starting_after={a}")).unwrap_or_default();
            format!("{base}/v1/payments?user={user}&limit=1000{after}")
        });
        let listed: BTreeSet<String> = listed.iter().map(id_of).collect();
        let acked: BTreeSet<String> = mine.iter().map(|p| p.id.clone()).collect();
        assert_eq!(acked.len(), mine.len(), "two keys acknowledged with one payment");
        assert_eq!(listed, acked, "{user}'s payments are not the acknowledged ones");
        let spent: u64 = mine.iter().map(|p| p.amount).sum();
        let available = (TOP_UP - spent).to_string();
        for id in cluster.ids() {
            let url = format!("{}/v1/balances/{user}", cluster.node(id).url());
            let (status, balance) =
                read(&reader, "GET", &url, None, &[("Huifu-Read-Consistency", "follower")]);
            assert_eq!(status, 200, "{balance}");
            assert_eq!(balance["available"], available.as_str(), "node {id}, {user}: {balance}");
        }
    }
    let checks_time = checks_started.elapsed();

    // Stopped with SIGTERM, followers first (so no new leader appends anything), then each
    // folder audited: the audit replays the log to the same index and digest.
    let order: Vec<u64> =
        cluster.ids().into_iter().filter(|&id| id != leader).chain([leader]).collect();
    for &id in &order {
        let status = cluster.terminate(id, Duration::from_secs(20)).unwrap();
        assert!(status.success(), "node {id} stopped with {status}: {}", cluster.log_tail(id, 20));
    }
    let mut audits = Vec::new();
    for id in cluster.ids() {
        let (passed, text) = cluster::audit(&cluster.node(id).data_dir());
        assert!(passed, "huifu audit of node {id}'s folder failed:\n{text}");
        // Nothing was written after the nodes converged, so the log ends where they were.
        let reached = text
            .lines()
            .find_map(|l| l.strip_prefix("digest at index "))
            .and_then(|l| l.split_once(": "))
            .map(|(index, audited)| (index.parse::<u64>().ok(), audited.trim().to_owned()));
        assert_eq!(reached, Some((Some(applied), digest.clone())), "node {id}'s audit:\n{text}");
        audits.push(format!("node {id} ok"));
    }

    let (closed, refused) = cluster.proxy.counts();
    eprintln!("--- summary ---");
    eprintln!("cluster up in {:.1} s, first leader {first_leader}", up_after.as_secs_f64());
    eprintln!(
        "load {:.1} s, {CLIENTS} clients; acknowledged: {} ledger transfers ({} answered \
         `exists` on a retry), {} payments; {} writes needed more than one attempt; {} sent \
         again after the load ({} of their transfers were there already)",
        load_time.as_secs_f64(),
        record.transfers.len(),
        record.transfers_existing,
        record.payments.len(),
        record.retried,
        unfinished.len(),
        existing_on_settling,
    );
    eprintln!("attempts not acknowledged:");
    for (why, (count, first)) in &record.failed_attempts {
        eprintln!("  {count:>5} {why} (first: {first})");
    }
    eprintln!(
        "faults ({}), each with the longest time without an acknowledged write from its start \
         to the next one's (so with what followed the repair):",
        faults.len()
    );
    let mut answered: Vec<Instant> = record.acks.iter().map(|(_, at)| *at).collect();
    answered.sort();
    for (i, f) in faults.iter().enumerate() {
        let until = faults.get(i + 1).map_or(load_ended, |next| next.started.min(load_ended));
        let stall = if f.load {
            format!("{:.2} s", longest_stall(&answered, f.started, until).as_secs_f64())
        } else {
            "-".into()
        };
        eprintln!("  {}  (stall {stall})", f.line(started));
    }
    if !skipped.is_empty() {
        eprintln!("skipped (over the {FAULTS_BUDGET:?} budget): {skipped:?}");
    }
    eprintln!("proxy: {closed} connections closed by cuts, {refused} refused on cut links");
    for o in &observations {
        eprintln!("{o}");
    }
    for (what, took) in &failovers {
        eprintln!(
            "failover, {what}: {}",
            took.map_or("none within 10 s".into(), |d| format!("{:.2} s", d.as_secs_f64()))
        );
    }
    eprintln!("converged at index {applied}, digest {digest}");
    eprintln!(
        "checks {:.1} s; audits (each at index {applied} with that digest): {}",
        checks_time.as_secs_f64(),
        audits.join(", ")
    );
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    for (what, took) in &failovers {
        assert!(took.is_some_and(|d| d < FAILOVER_MAX), "failover, {what}: {took:?}");
    }
}
