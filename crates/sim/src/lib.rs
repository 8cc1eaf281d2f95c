//! The huifu simulator: a seeded, compressed day of food-delivery payments, driven through the
//! engine by many concurrent clients, ending with an audit of every invariant.
//!
//! The traffic model: users pay orders from their wallet (three quarters) or through a bank
//! channel (authorised, then captured or released by the simulated bank); merchants are picked
//! with a heavy tail (Zipf), so a few are very busy; coupons of platform- and merchant-funded
//! campaigns with budgets that run out; partial and full refunds; top-ups and withdrawals
//! through the bank; instant payouts; a settlement run at every tenth of the day. The bank
//! answers after a random latency, fails some requests and never answers a few (their holds
//! then time out in the ledger). Arrivals follow lunch and dinner peaks when a rate is set.
//!
//! Each client owns a disjoint set of users, so one user's operations stay in order. With one
//! client and the same seed a run is the same run again; with several, the interleaving of
//! clients (and so which order wins the last coupon budget) depends on timing.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use huifu_engine::{Engine, EngineError};
use huifu_payments::bank::{
    BankAnswer, BankGateway, BankRequest, BankRequestKind, SimulatedBank, SimulatedBankConfig,
};
use huifu_payments::chart::Kind;
use huifu_payments::{
    audit, AuditReport, CouponRule, Done, Funder, Op, Outcome, PaymentStatus, PaymentsMachine,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The currency of the simulated platform (ISO 4217 numeric: CNY), amounts in fen.
pub const CURRENCY: u32 = 156;
/// Bank channels of the simulated platform.
pub const CHANNELS: u64 = 3;
/// Operations per batch a client sends (one engine command, one journal record).
pub const BATCH_OPS_DEFAULT: usize = 256;
/// Holds of channel payments and top-ups time out after this long in the simulation, so that
/// timeouts happen within a run.
pub const HOLD_TIMEOUT_S: u32 = 2;
/// Every this many payments a client keeps one acknowledged payment id, checked at the end.
pub const ACK_SAMPLE_EVERY: u64 = 16;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub users: u64,
    pub merchants: u64,
    pub riders: u64,
    pub payments: u64,
    pub seed: u64,
    /// Payments per second at the day's average (peaks go above it); `None` for flat out.
    pub rate: Option<u64>,
    pub clients: usize,
    pub batch_ops: usize,
    pub bank: SimulatedBankConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            users: 100_000,
            merchants: 5_000,
            riders: 10_000,
            payments: 1_000_000,
            seed: 1,
            rate: None,
            clients: 4,
            batch_ops: BATCH_OPS_DEFAULT,
            bank: SimulatedBankConfig {
                latency_ns_min: 2_000_000,
                latency_ns_max: 40_000_000,
                failures_per_million: 20_000,
                timeouts_per_million: 2_000,
                seed: 1,
            },
        }
    }
}

/// Counters the clients update as they go, for live progress.
#[derive(Debug)]
pub struct Progress {
    pub payments: AtomicU64,
    pub ops: AtomicU64,
    /// Batch latencies in microseconds since the last `take_latency`.
    latency: Mutex<Histogram<u64>>,
    pub stop: AtomicBool,
    /// When the day began (set-up done, clients starting): the origin of a timeline.
    pub started: OnceLock<Instant>,
    /// When the last client's last reply came (before the closing audit).
    pub ended: OnceLock<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            payments: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            stop: AtomicBool::new(false),
            started: OnceLock::new(),
            ended: OnceLock::new(),
        }
    }
}

impl Progress {
    /// The latencies recorded since the last call, and a fresh histogram in their place.
    pub fn take_latency(&self) -> Histogram<u64> {
        std::mem::replace(&mut *self.latency.lock().expect("lock"), histogram())
    }
}

/// A latency histogram in microseconds, from 1 µs to 1 hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

#[derive(Debug, Default)]
pub struct Counts {
    pub payments: u64,
    pub payments_wallet: u64,
    pub payments_channel: u64,
    pub captures: u64,
    pub releases: u64,
    pub refunds: u64,
    pub refunds_full: u64,
    pub topups: u64,
    pub withdrawals: u64,
    pub payouts: u64,
    pub settlement_runs: u64,
    pub coupons_redeemed: u64,
    pub ops: u64,
    /// Rejections by error code.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.payments += other.payments;
        self.payments_wallet += other.payments_wallet;
        self.payments_channel += other.payments_channel;
        self.captures += other.captures;
        self.releases += other.releases;
        self.refunds += other.refunds;
        self.refunds_full += other.refunds_full;
        self.topups += other.topups;
        self.withdrawals += other.withdrawals;
        self.payouts += other.payouts;
        self.settlement_runs += other.settlement_runs;
        self.coupons_redeemed += other.coupons_redeemed;
        self.ops += other.ops;
        for (k, v) in &other.rejected {
            *self.rejected.entry(k).or_default() += v;
        }
    }
}

#[derive(Debug)]
pub struct SimResult {
    pub counts: Counts,
    /// From the first payment batch to the last reply.
    pub seconds: f64,
    /// Latency of each batch, submit to durable reply, in microseconds.
    pub latency: Histogram<u64>,
    pub audit: AuditReport,
    /// Acknowledged payments (sampled) that the engine no longer knows.
    pub acknowledged_missing: u64,
    pub acknowledged_checked: u64,
}

impl SimResult {
    pub fn payments_per_second(&self) -> f64 {
        self.counts.payments as f64 / self.seconds.max(1e-9)
    }
}

/// Relative order volume for each hour of the day: quiet nights, lunch and dinner peaks.
const DAY_PROFILE: [u32; 24] =
    [2, 1, 1, 1, 1, 2, 4, 6, 7, 6, 8, 18, 20, 12, 6, 5, 7, 16, 20, 17, 10, 7, 5, 3];

/// The campaigns: ids 1..=PLATFORM_CAMPAIGNS are platform-funded; the next ones are funded by
/// the busiest merchants.
const PLATFORM_CAMPAIGNS: u64 = 8;
const MERCHANT_CAMPAIGNS: u64 = 4;

fn campaign_rule() -> CouponRule {
    CouponRule {
        amount_off: 500,
        min_order: 2_000,
        valid_from: 0,
        valid_until: 0,
        per_user_limit: 2,
    }
}

/// Runs the whole simulation on `engine`: set-up, the day, the audit.
pub fn run(
    engine: &Arc<Engine<PaymentsMachine>>,
    config: &SimConfig,
    progress: &Progress,
) -> Result<SimResult, EngineError> {
    assert!(config.users >= config.clients as u64 && config.merchants >= MERCHANT_CAMPAIGNS);
    assert!(config.riders >= 1 && config.clients >= 1 && config.batch_ops >= 1);
    setup(engine, config)?;

    let zipf = Arc::new(Zipf::new(config.merchants, 1.1));
    let started = Instant::now();
    progress.started.set(started).ok();
    let results: Vec<Result<ClientResult, EngineError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.clients)
            .map(|k| {
                let engine = engine.clone();
                let zipf = zipf.clone();
                scope.spawn(move || Client::new(k, config, zipf, started).run(&engine, progress))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let ended = Instant::now();
    progress.ended.set(ended).ok();
    let seconds = ended.duration_since(started).as_secs_f64();
    let mut counts = Counts::default();
    let mut latency = histogram();
    let mut acknowledged = Vec::new();
    for r in results {
        let (c, h, ack) = r?;
        counts.add(&c);
        latency.add(&h).expect("same bounds");
        acknowledged.extend(ack);
    }
    let checked = acknowledged.len() as u64;
    let (report, missing) = engine.read(move |m| {
        let missing = acknowledged.iter().filter(|id| m.payment(**id).is_none()).count() as u64;
        (audit(m), missing)
    })?;
    Ok(SimResult {
        counts,
        seconds,
        latency,
        audit: report,
        acknowledged_missing: missing,
        acknowledged_checked: checked,
    })
}

fn expect_ok(what: &str, outcome: &Outcome) {
    match outcome {
        Ok(Done::Batch(outcomes)) => outcomes.iter().for_each(|o| expect_ok(what, o)),
        Ok(_) => {}
        Err(e) => panic!("set-up step {what} failed: {e}"),
    }
}

/// Parties, channels, opening balances, warm-up orders, campaigns.
fn setup(engine: &Engine<PaymentsMachine>, config: &SimConfig) -> Result<(), EngineError> {
    let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x5E7);
    let mut ops: Vec<Op> =
        (1..=CHANNELS).map(|id| Op::CreateChannel { id, currency: CURRENCY }).collect();
    ops.extend((1..=config.merchants).map(|id| Op::CreateMerchant {
        id,
        currency: CURRENCY,
        commission_bps: rng.gen_range(500..=2_000),
        channel: 1 + id % CHANNELS,
    }));
    ops.extend((1..=config.riders).map(|id| Op::CreateRider { id, currency: CURRENCY }));
    for user in 1..=config.users {
        ops.push(Op::CreateUser { id: user, currency: CURRENCY });
        // Opening balances, confirmed by the bank at once.
        let amount = rng.gen_range(20_000..200_000);
        ops.push(Op::TopUp {
            id: topup_id(user, 0),
            user,
            channel: 1 + user % CHANNELS,
            amount,
            timeout_s: 60,
        });
        ops.push(Op::BankResult { id: topup_id(user, 0), ok: true });
    }
    for id in 1..=PLATFORM_CAMPAIGNS {
        let budget = config.payments.max(1_000) * 40; // runs out before the day ends
        ops.push(Op::CreateCampaign {
            id,
            currency: CURRENCY,
            funder: Funder::Platform,
            budget,
            rule: campaign_rule(),
        });
    }
    submit_all(engine, ops)?;

    // The busiest merchants fund their own campaigns from their takings: warm-up orders first.
    let mut warmup = Vec::new();
    for i in 0..(MERCHANT_CAMPAIGNS * 50) {
        let merchant = 1 + i % MERCHANT_CAMPAIGNS;
        warmup.push(Op::Pay {
            id: setup_payment_id(i),
            user: 1 + i % config.users,
            merchant,
            rider: 1 + i % config.riders,
            food: 5_000,
            delivery: 500,
            coupon: 0,
            channel: 0,
            timeout_s: 0,
        });
    }
    submit_all(engine, warmup)?;
    let campaigns: Vec<Op> = (1..=MERCHANT_CAMPAIGNS)
        .map(|i| Op::CreateCampaign {
            id: PLATFORM_CAMPAIGNS + i,
            currency: CURRENCY,
            funder: Funder::Merchant(i),
            budget: 50 * 4_000,
            rule: campaign_rule(),
        })
        .collect();
    submit_all(engine, campaigns)
}

fn submit_all(engine: &Engine<PaymentsMachine>, ops: Vec<Op>) -> Result<(), EngineError> {
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let batch: Vec<Op> = ops.by_ref().take(huifu_payments::constants::BATCH_OPS_MAX).collect();
        expect_ok("batch", &engine.execute(Op::Batch(batch))?);
    }
    Ok(())
}

// Operation ids: every kind of operation has its own id space; these keep clients apart.
fn topup_id(user: u64, n: u64) -> u64 {
    (user << 16) | (n & 0xFFFF) | (1 << 55)
}
fn setup_payment_id(i: u64) -> u64 {
    (1 << 54) | i
}

/// Samples merchants with a heavy tail: merchant `k` is picked with weight 1 / k^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(usize::try_from(n).expect("fits"));
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / (k as f64).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut SmallRng) -> u64 {
        let u: f64 = rng.gen();
        let i = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        i as u64 + 1
    }
}

/// What a client brings back: its counts, its latencies, the payment ids it sampled.
type ClientResult = (Counts, Histogram<u64>, Vec<u64>);

/// A recent payment a client may refund.
#[derive(Clone, Copy)]
struct Recent {
    id: u64,
    total: u64,
    refunded: u64,
}

/// What a client expects back for each operation of the batch it sent.
#[derive(Clone, Copy)]
enum Sent {
    Pay {
        user: u64,
        channel: bool,
        total: u64,
        coupon: bool,
        id: u64,
    },
    Refund {
        user: u64,
        amount: u64,
        full: bool,
    },
    TopUp {
        id: u64,
        user: u64,
        amount: u64,
    },
    Withdraw {
        id: u64,
        user: u64,
        amount: u64,
    },
    /// The bank's answer to a top-up (`topup`) or withdrawal of `amount` for `user`.
    BankResult {
        user: u64,
        amount: u64,
        topup: bool,
        ok: bool,
    },
    Capture,
    Release,
    Payout,
    PayoutResult,
    Settlement,
    Grant {
        user: u64,
        coupon: u64,
    },
}

struct Client<'a> {
    k: u64,
    config: &'a SimConfig,
    rng: SmallRng,
    zipf: Arc<Zipf>,
    bank: SimulatedBank,
    started: Instant,
    /// This client's users: `k + 1 + i * clients`.
    users: Vec<u64>,
    /// Estimated wallet balance per user (index into `users`).
    balance: Vec<u64>,
    /// An unused coupon per user, or 0.
    coupon: Vec<u64>,
    recent: Vec<Recent>,
    next_op: u64,
    counts: Counts,
    latency: Histogram<u64>,
    acknowledged: Vec<u64>,
    answers: Vec<(BankRequest, BankAnswer)>,
    /// Top-ups and withdrawals waiting for the bank: id → (user index, amount).
    holds: std::collections::HashMap<u64, (u64, u64)>,
}

impl<'a> Client<'a> {
    fn new(k: usize, config: &'a SimConfig, zipf: Arc<Zipf>, started: Instant) -> Client<'a> {
        let k = k as u64;
        let clients = config.clients as u64;
        let users: Vec<u64> =
            (0..).map(|i| k + 1 + i * clients).take_while(|u| *u <= config.users).collect();
        let n = users.len();
        let bank = SimulatedBank::new(SimulatedBankConfig {
            seed: config.bank.seed.wrapping_add(k).wrapping_mul(31).wrapping_add(config.seed),
            ..config.bank
        });
        Client {
            k,
            config,
            rng: SmallRng::seed_from_u64(config.seed.wrapping_mul(1_000_003).wrapping_add(k)),
            zipf,
            bank,
            started,
            users,
            balance: vec![0; n],
            coupon: vec![0; n],
            recent: Vec::new(),
            next_op: 1,
            counts: Counts::default(),
            latency: histogram(),
            acknowledged: Vec::new(),
            answers: Vec::new(),
            holds: std::collections::HashMap::new(),
        }
    }

    /// A fresh id in this client's space: client in the top bits, a counter below.
    fn op_id(&mut self) -> u64 {
        self.next_op += 1;
        ((self.k + 1) << 40) | self.next_op
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// This client's share of the payments.
    fn quota(&self) -> u64 {
        let clients = self.config.clients as u64;
        self.config.payments / clients + u64::from(self.k < self.config.payments % clients)
    }

    fn run(
        mut self,
        engine: &Engine<PaymentsMachine>,
        progress: &Progress,
    ) -> Result<ClientResult, EngineError> {
        // Opening balances as set up, and a coupon of a platform campaign for some users.
        let mut grants = Vec::new();
        let mut sent = Vec::new();
        for i in 0..self.users.len() {
            self.balance[i] = 0; // learned below from the wallet itself
            if self.rng.gen_ratio(1, 3) {
                let campaign = if self.users[i].is_multiple_of(5) {
                    PLATFORM_CAMPAIGNS + 1 + self.users[i] % MERCHANT_CAMPAIGNS
                } else {
                    1 + self.users[i] % PLATFORM_CAMPAIGNS
                };
                let coupon = self.op_id();
                grants.push(Op::GrantCoupon { id: coupon, campaign, user: self.users[i] });
                sent.push(Sent::Grant { user: i as u64, coupon });
            }
        }
        for (ops, sent) in grants
            .chunks(huifu_payments::constants::BATCH_OPS_MAX)
            .zip(sent.chunks(huifu_payments::constants::BATCH_OPS_MAX))
        {
            let outcome = engine.execute(Op::Batch(ops.to_vec()))?;
            self.learn(sent, outcome);
        }
        let users = self.users.clone();
        let balances = engine.read(move |m| {
            users
                .iter()
                .map(|u| {
                    m.account(Kind::Wallet, CURRENCY, *u)
                        .map(|a| {
                            u64::try_from(a.credits_posted - a.debits_posted - a.debits_pending)
                                .unwrap_or(0)
                        })
                        .unwrap_or(0)
                })
                .collect::<Vec<u64>>()
        })?;
        self.balance = balances;

        let quota = self.quota();
        let mut paid = 0;
        let mut next_settlement = 1;
        while paid < quota && !progress.stop.load(Ordering::Relaxed) {
            let mut ops = Vec::with_capacity(self.config.batch_ops);
            let mut sent = Vec::with_capacity(self.config.batch_ops);
            self.bank_answers(&mut ops, &mut sent);
            // A settlement run at every tenth of the day, by the first client.
            if self.k == 0 && paid * 10 >= quota * next_settlement {
                ops.push(Op::SettlementRun { id: next_settlement });
                sent.push(Sent::Settlement);
                next_settlement += 1;
            }
            let mut payments = 0;
            while ops.len() < self.config.batch_ops && paid + payments < quota {
                if self.next_op(&mut ops, &mut sent) {
                    payments += 1;
                }
            }
            self.pace(paid);
            let submitted = Instant::now();
            let outcome = engine.execute(Op::Batch(ops))?;
            let us = u64::try_from(submitted.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            self.latency.record(us).ok();
            progress.latency.lock().expect("lock").record(us).ok();
            let before = self.counts.payments;
            self.counts.ops += sent.len() as u64;
            progress.ops.fetch_add(sent.len() as u64, Ordering::Relaxed);
            self.learn(&sent, outcome);
            progress.payments.fetch_add(self.counts.payments - before, Ordering::Relaxed);
            paid += payments;
        }
        // Let the bank's last answers arrive, so the day ends with few holds open; the first
        // client closes the day with its last settlement run.
        let drain_until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < drain_until {
            let mut ops = Vec::new();
            let mut sent = Vec::new();
            if self.k == 0 && next_settlement <= 10 {
                ops.push(Op::SettlementRun { id: next_settlement });
                sent.push(Sent::Settlement);
                next_settlement = 11;
            }
            self.bank_answers(&mut ops, &mut sent);
            if !ops.is_empty() {
                let outcome = engine.execute(Op::Batch(ops))?;
                self.learn(&sent, outcome);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((self.counts, self.latency, self.acknowledged))
    }

    /// With a target rate, wait until the day's clock says this payment is due.
    fn pace(&self, paid: u64) {
        let Some(rate) = self.config.rate else { return };
        let rate_per_client = (rate as f64 / self.config.clients as f64).max(1.0);
        // Time of day reached so far, weighted by the profile: busy hours take as long as
        // quiet ones but carry more payments.
        let quota = self.quota().max(1) as f64;
        let total: u32 = DAY_PROFILE.iter().sum();
        let mut due = 0.0;
        let mut left = paid as f64 / quota;
        for &weight in &DAY_PROFILE {
            let share = f64::from(weight) / f64::from(total);
            let hour_seconds = quota / rate_per_client / 24.0;
            if left <= share {
                due += hour_seconds * left / share;
                break;
            }
            due += hour_seconds;
            left -= share;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64(due - elapsed));
        }
    }

    /// Turns the bank's answers into operations.
    fn bank_answers(&mut self, ops: &mut Vec<Op>, sent: &mut Vec<Sent>) {
        let now = self.now();
        self.bank.poll(now, &mut self.answers);
        // At most half a batch of answers; the rest wait for the next batch.
        let take = self.answers.len().min(self.config.batch_ops.div_ceil(2));
        let answers: Vec<_> = self.answers.drain(..take).collect();
        for (request, answer) in answers {
            let ok = answer == BankAnswer::Confirmed;
            let id = u64::try_from(request.reference).unwrap_or(0);
            match request.kind {
                BankRequestKind::TopUp | BankRequestKind::Withdrawal => {
                    let Some((user, amount)) = self.holds.remove(&id) else {
                        continue;
                    };
                    ops.push(Op::BankResult { id, ok });
                    let topup = request.kind == BankRequestKind::TopUp;
                    sent.push(Sent::BankResult { user, amount, topup, ok });
                }
                BankRequestKind::Payment if ok => {
                    ops.push(Op::Capture { id });
                    sent.push(Sent::Capture);
                }
                BankRequestKind::Payment => {
                    ops.push(Op::Release { id });
                    sent.push(Sent::Release);
                }
                BankRequestKind::Payout => {
                    ops.push(Op::PayoutResult { payout: request.reference, ok });
                    sent.push(Sent::PayoutResult);
                }
            }
        }
    }

    /// Adds one operation of the day's mix; true if it is a payment.
    fn next_op(&mut self, ops: &mut Vec<Op>, sent: &mut Vec<Sent>) -> bool {
        let roll = self.rng.gen_range(0..1_000);
        let i = self.rng.gen_range(0..self.users.len());
        let user = self.users[i];
        if roll < 30 && !self.recent.is_empty() {
            // A refund of a recent payment: half of them full.
            let r = self.rng.gen_range(0..self.recent.len());
            let recent = self.recent[r];
            let left = recent.total - recent.refunded;
            if left > 0 {
                let full = self.rng.gen_bool(0.5);
                let amount = if full { left } else { self.rng.gen_range(1..=left) };
                self.recent[r].refunded += amount;
                let id = self.op_id();
                ops.push(Op::Refund { id, payment: recent.id, amount });
                sent.push(Sent::Refund { user: i as u64, amount, full: amount == left });
                return false;
            }
        }
        if roll < 40 {
            let id = self.op_id();
            let amount = self.rng.gen_range(10_000..100_000);
            ops.push(Op::TopUp {
                id,
                user,
                channel: 1 + user % CHANNELS,
                amount,
                timeout_s: HOLD_TIMEOUT_S,
            });
            sent.push(Sent::TopUp { id, user: i as u64, amount });
            self.bank.send(
                BankRequest { kind: BankRequestKind::TopUp, reference: id.into(), amount },
                self.now(),
            );
            return false;
        }
        if roll < 43 && self.balance[i] > 20_000 {
            let id = self.op_id();
            let amount = self.rng.gen_range(1_000..self.balance[i] / 2);
            self.balance[i] -= amount;
            ops.push(Op::Withdraw {
                id,
                user,
                channel: 1 + user % CHANNELS,
                amount,
                timeout_s: HOLD_TIMEOUT_S,
            });
            sent.push(Sent::Withdraw { id, user: i as u64, amount });
            self.bank.send(
                BankRequest { kind: BankRequestKind::Withdrawal, reference: id.into(), amount },
                self.now(),
            );
            return false;
        }
        if roll < 45 {
            let id = self.op_id();
            let merchant = self.zipf.sample(&mut self.rng);
            ops.push(Op::Payout { id, merchant, amount: 0 });
            sent.push(Sent::Payout);
            return false;
        }
        // An order: food, delivery fee, maybe a coupon; wallet or bank channel.
        let food = self.rng.gen_range(1_500..8_000);
        let delivery = self.rng.gen_range(300..800);
        let coupon = if self.coupon[i] != 0 && self.rng.gen_bool(0.5) {
            std::mem::take(&mut self.coupon[i])
        } else {
            0
        };
        let total_max = food + delivery;
        let from_channel = self.rng.gen_ratio(1, 4) || self.balance[i] < total_max;
        let id = self.op_id();
        let channel = if from_channel { 1 + user % CHANNELS } else { 0 };
        ops.push(Op::Pay {
            id,
            user,
            merchant: self.zipf.sample(&mut self.rng),
            rider: self.rng.gen_range(1..=self.config.riders),
            food,
            delivery,
            coupon,
            channel,
            timeout_s: HOLD_TIMEOUT_S,
        });
        if !from_channel {
            self.balance[i] -= total_max;
        }
        sent.push(Sent::Pay {
            user: i as u64,
            channel: from_channel,
            total: total_max,
            coupon: coupon != 0,
            id,
        });
        true
    }

    /// Updates what the client knows from the outcomes of the batch it sent.
    fn learn(&mut self, sent: &[Sent], outcome: Outcome) {
        let outcomes = match outcome {
            Ok(Done::Batch(outcomes)) => outcomes,
            other => panic!("a batch got {other:?}"),
        };
        debug_assert_eq!(outcomes.len(), sent.len());
        for (s, o) in sent.iter().zip(outcomes) {
            if let Err(e) = &o {
                *self.counts.rejected.entry(e.code()).or_default() += 1;
            }
            match (*s, o) {
                (
                    Sent::Pay { user, channel, total, coupon, id },
                    Ok(Done::Payment { status, total: paid, .. }),
                ) => {
                    self.counts.payments += 1;
                    if !channel {
                        // The estimate took food + delivery; the coupon's discount comes back.
                        self.balance[user as usize] += total - paid;
                        self.counts.payments_wallet += 1;
                        self.remember(id, paid);
                    } else {
                        self.counts.payments_channel += 1;
                        debug_assert_eq!(status, PaymentStatus::Authorized);
                        self.bank.send(
                            BankRequest {
                                kind: BankRequestKind::Payment,
                                reference: id.into(),
                                amount: paid,
                            },
                            self.now(),
                        );
                    }
                    if coupon {
                        self.counts.coupons_redeemed += 1;
                    }
                    if self.counts.payments.is_multiple_of(ACK_SAMPLE_EVERY) {
                        self.acknowledged.push(id);
                    }
                }
                (Sent::Pay { user, channel: false, total, .. }, Err(_)) => {
                    self.balance[user as usize] += total;
                }
                (Sent::Refund { user, amount, full }, Ok(_)) => {
                    self.counts.refunds += 1;
                    self.counts.refunds_full += u64::from(full);
                    self.balance[user as usize] += amount;
                }
                (Sent::TopUp { id, user, amount }, Ok(_)) => {
                    self.counts.topups += 1;
                    self.holds.insert(id, (user, amount));
                }
                (Sent::Withdraw { id, user, amount }, Ok(_)) => {
                    self.counts.withdrawals += 1;
                    self.holds.insert(id, (user, amount));
                }
                (Sent::Withdraw { user, amount, .. }, Err(_)) => {
                    self.balance[user as usize] += amount
                }
                // A confirmed top-up adds to the wallet; a failed withdrawal gives back.
                (Sent::BankResult { user, amount, topup, ok }, Ok(_)) if topup == ok => {
                    self.balance[user as usize] += amount;
                }
                (Sent::Capture, Ok(_)) => self.counts.captures += 1,
                (Sent::Release, Ok(_)) => self.counts.releases += 1,
                (Sent::Payout, Ok(Done::Payout { payout, amount })) => {
                    self.counts.payouts += 1;
                    self.bank.send(
                        BankRequest { kind: BankRequestKind::Payout, reference: payout, amount },
                        self.now(),
                    );
                }
                (Sent::Settlement, Ok(Done::Settlement { lines })) => {
                    self.counts.settlement_runs += 1;
                    for line in lines.iter().filter(|l| l.net > 0) {
                        self.counts.payouts += 1;
                        self.bank.send(
                            BankRequest {
                                kind: BankRequestKind::Payout,
                                reference: line.payout,
                                amount: line.net,
                            },
                            self.now(),
                        );
                    }
                }
                (Sent::Grant { user, coupon }, Ok(_)) => self.coupon[user as usize] = coupon,
                _ => {}
            }
        }
    }

    fn remember(&mut self, id: u64, total: u64) {
        const RECENT_MAX: usize = 1_024;
        let recent = Recent { id, total, refunded: 0 };
        if self.recent.len() < RECENT_MAX {
            self.recent.push(recent);
        } else {
            let slot = self.rng.gen_range(0..RECENT_MAX);
            self.recent[slot] = recent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_engine::EngineOptions;

    #[test]
    fn a_small_day_ends_with_a_clean_audit() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir.path())).unwrap();
        let engine = Arc::new(engine);
        let config = SimConfig {
            users: 400,
            merchants: 40,
            riders: 50,
            payments: 5_000,
            clients: 3,
            batch_ops: 64,
            ..SimConfig::default()
        };
        let result = run(&engine, &config, &Progress::default()).unwrap();
        assert!(result.audit.ok(), "{:?}", result.audit.violations);
        // Most orders go through; the rest are rejected for a reason the model provokes.
        assert!(result.counts.payments > 4_000, "{:?}", result.counts);
        assert!(
            result.counts.refunds > 0
                && result.counts.topups > 0
                && result.counts.settlement_runs > 0
        );
        assert_eq!(result.acknowledged_missing, 0);
    }
}
