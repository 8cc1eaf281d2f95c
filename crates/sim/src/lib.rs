//! The huifu simulator: a seeded, compressed day of food-delivery payments, driven through the
//! engine by many concurrent clients, ending with an audit of every invariant.
//!
//! The traffic model: users pay orders from their wallet (three quarters) or through a bank
//! channel (authorised, then captured or released by the simulated bank); merchants are picked
//! with a heavy tail (Zipf), so a few are very busy; coupons of platform- and merchant-funded
//! campaigns with budgets that run out; partial and full refunds; wallets topped up through the
//! bank by their users when they fall below two orders' worth, and withdrawals; instant payouts;
//! a settlement run at every tenth of the day. The bank answers after a random latency, fails
//! some requests and never answers a few (their holds then time out in the ledger). Arrivals
//! follow lunch and dinner peaks when a rate is set. A day asked for N payments makes N less
//! the refusals its `RefusalPlan` plans; an order refused otherwise is ordered again.
//!
//! Each client owns a disjoint set of users, so one user's operations stay in order. With one
//! client and the same seed a run is the same run again; with several, the interleaving of
//! clients (and so which order wins the last coupon budget) depends on timing.
//!
//! The clients reach the engine through a `Transport` (transport.rs): `run` drives an embedded
//! engine; `run_day` drives any transport, and `http::HttpDay` a running server over HTTP
//! (http.rs, through the retrying client of http_client.rs), recording what the server
//! acknowledged in an ack log (ack_log.rs) that is checked against it at the end; local webhook
//! receivers (webhooks.rs) can check what the server delivers to merchants' endpoints. The model
//! itself is in client.rs; report.rs draws a day as one HTML page.
//!
//! ```no_run
//! # let engine: std::sync::Arc<huifu_engine::Engine<huifu_payments::PaymentsMachine>> = todo!();
//! let config = huifu_sim::SimConfig { payments: 10_000, ..huifu_sim::SimConfig::default() };
//! let result = huifu_sim::run(&engine, &config, &huifu_sim::Progress::default())?;
//! assert!(result.audit.ok());
//! # Ok::<(), huifu_engine::EngineError>(())
//! ```

pub mod ack_log;
mod client;
pub mod http;
pub mod http_client;
pub mod report;
mod transport;
pub mod webhooks;

pub use transport::{object_id, reply, Ack, EngineTransport, Reply, Transport};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use huifu_engine::{Engine, EngineError};
use huifu_payments::bank::SimulatedBankConfig;
use huifu_payments::{audit, AuditReport, CouponRule, Funder, Op, PaymentsMachine};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use client::Client;

/// The currency of the simulated platform (ISO 4217 numeric: CNY), amounts in fen.
pub const CURRENCY: u32 = 156;

/// Most users of a simulated day: the clients' operation ids start above the set-up's, which
/// are users' ids.
pub const USERS_MAX: u64 = (1 << 48) - 1;

/// Bank channels of the simulated platform.
pub const CHANNELS: u64 = 3;
/// Operations per batch a client sends (one engine command, one journal record).
pub const BATCH_OPS_DEFAULT: usize = 256;
/// Holds of channel payments and top-ups time out after this long in the simulation, so that
/// timeouts happen within a run.
pub const HOLD_TIMEOUT_S: u32 = 2;
/// Every this many payments a client keeps one acknowledged payment id, checked at the end.
pub const ACK_SAMPLE_EVERY: u64 = 16;

/// An order's food amount is 15 to 80 yuan and its delivery fee 3 to 8 (in fen): about 53
/// yuan an order on average.
const FOOD_MIN: u64 = 1_500;
const FOOD_MAX: u64 = 8_000;
const DELIVERY_FEE_MIN: u64 = 300;
const DELIVERY_FEE_MAX: u64 = 800;
/// A wallet is topped up when it falls below two average orders (what its user typically
/// spends in a sitting), by 500 to 2,000 yuan, through the user's bank channel, which fails
/// some top-ups; until a top-up is confirmed the user pays through the channel.
const TOP_UP_BELOW: u64 = FOOD_MIN + FOOD_MAX + DELIVERY_FEE_MIN + DELIVERY_FEE_MAX;
const TOP_UP_MIN: u64 = 50_000;
const TOP_UP_MAX: u64 = 200_000;
/// The smallest food amount a coupon applies to (every campaign's `min_order`).
const COUPON_MIN_ORDER: u64 = 2_000;

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
    pub refusals: RefusalPlan,
}

/// The refusals a day plans: orders made to be refused, per million orders, for each reason a
/// real day refuses payments for. Any other refusal of an order is the model's own mistake (a
/// wrong estimate of a wallet, a coupon whose budget ran out): the summary sets what was
/// planned beside what was got, and the user of an order refused unplanned orders again.
#[derive(Clone, Copy, Debug)]
pub struct RefusalPlan {
    /// An order from the wallet of more than it holds.
    pub insufficient_funds_per_million: u32,
    /// A coupon used on an order below its campaign's minimum.
    pub coupon_minimum_not_met_per_million: u32,
}

impl Default for RefusalPlan {
    /// One order in a thousand refused for want of funds, one in five thousand for a coupon's
    /// minimum.
    fn default() -> Self {
        RefusalPlan {
            insufficient_funds_per_million: 1_000,
            coupon_minimum_not_met_per_million: 200,
        }
    }
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
            refusals: RefusalPlan::default(),
        }
    }
}

/// Counters the clients update as they go, for live progress.
#[derive(Debug)]
pub struct Progress {
    pub payments: AtomicU64,
    pub ops: AtomicU64,
    /// Batch latencies in microseconds since the last `take_latency`.
    pub(crate) latency: Mutex<Histogram<u64>>,
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
    pub rejected: BTreeMap<String, u64>,
    /// Orders made to be refused (`RefusalPlan`), by the error code they were made for.
    pub refusals_planned: BTreeMap<String, u64>,
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
            *self.rejected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.refusals_planned {
            *self.refusals_planned.entry(k.clone()).or_default() += v;
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
/// Warm-up orders per merchant-funded campaign: they give its merchant the takings that fund it.
const WARMUP_ORDERS_PER_CAMPAIGN: u64 = 50;
/// Food amount and delivery fee of a warm-up order, in fen.
const WARMUP_FOOD: u64 = 5_000;
const WARMUP_DELIVERY: u64 = 500;

fn campaign_rule() -> CouponRule {
    CouponRule {
        amount_off: 500,
        min_order: COUPON_MIN_ORDER,
        valid_from: 0,
        valid_until: 0,
        per_user_limit: 2,
    }
}

/// What the clients of a day did, before any audit.
#[derive(Debug)]
pub struct Day {
    pub counts: Counts,
    /// From the first payment batch to the last reply.
    pub seconds: f64,
    /// Latency of each batch, submit to reply, in microseconds.
    pub latency: Histogram<u64>,
    /// Sampled acknowledged payment ids.
    pub acknowledged: Vec<u64>,
}

/// Runs the whole simulation on `engine`: set-up, the day, the audit.
pub fn run(
    engine: &Arc<Engine<PaymentsMachine>>,
    config: &SimConfig,
    progress: &Progress,
) -> Result<SimResult, EngineError> {
    let day = run_day(
        &mut EngineTransport::new(engine.clone()),
        |_| EngineTransport::new(engine.clone()),
        config,
        progress,
    )?;
    let acknowledged = day.acknowledged;
    let checked = acknowledged.len() as u64;
    let (report, missing) = engine.read(move |m| {
        let missing = acknowledged.iter().filter(|id| m.payment(**id).is_none()).count() as u64;
        (audit(m), missing)
    })?;
    Ok(SimResult {
        counts: day.counts,
        seconds: day.seconds,
        latency: day.latency,
        audit: report,
        acknowledged_missing: missing,
        acknowledged_checked: checked,
    })
}

/// Set-up through `setup`, then the day with one transport per client (`client(k)` for
/// client `k`), each on its own thread.
pub fn run_day<T, F>(
    setup_transport: &mut T,
    client: F,
    config: &SimConfig,
    progress: &Progress,
) -> Result<Day, T::Error>
where
    T: Transport + Send,
    F: Fn(usize) -> T + Sync,
{
    run_day_with(setup_transport, client, config, progress, || Ok(()))
}

/// `run_day`, calling `before_day` between the set-up and the day: for what needs the parties
/// to exist and must be in place before the traffic (a merchant's webhook endpoint is owed the
/// events after its creation).
pub fn run_day_with<T, F>(
    setup_transport: &mut T,
    client: F,
    config: &SimConfig,
    progress: &Progress,
    before_day: impl FnOnce() -> Result<(), T::Error>,
) -> Result<Day, T::Error>
where
    T: Transport + Send,
    F: Fn(usize) -> T + Sync,
{
    assert!(config.users >= config.clients as u64 && config.merchants >= MERCHANT_CAMPAIGNS);
    assert!(config.riders >= 1 && config.clients >= 1 && config.batch_ops >= 1);
    let balances = setup(setup_transport, config)?;
    before_day()?;

    let zipf = Arc::new(Zipf::new(config.merchants, 1.1));
    let ids = AtomicU64::new(0);
    let started = Instant::now();
    progress.started.set(started).ok();
    let results: Vec<Result<client::ClientResult, T::Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.clients)
            .map(|k| {
                let zipf = zipf.clone();
                let transport = client(k);
                let (balances, ids) = (&balances, &ids);
                scope.spawn(move || {
                    Client::new(k, config, zipf, started, transport, balances, ids).run(progress)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    let ended = Instant::now();
    progress.ended.set(ended).ok();
    let mut counts = Counts::default();
    let mut latency = histogram();
    let mut acknowledged = Vec::new();
    for r in results {
        let (c, h, ack) = r?;
        counts.add(&c);
        latency.add(&h).expect("same bounds");
        acknowledged.extend(ack);
    }
    Ok(Day { counts, seconds: ended.duration_since(started).as_secs_f64(), latency, acknowledged })
}

/// The acknowledgements of a set-up step; a rejection there is a bug of the model or the
/// engine, not traffic.
fn expect_acks(what: &str, replies: Vec<Reply>) -> Vec<Ack> {
    replies
        .into_iter()
        .map(|r| r.unwrap_or_else(|code| panic!("set-up step {what} failed: {code}")))
        .collect()
}

/// Parties, channels, opening balances, warm-up orders, campaigns. Returns each user's
/// opening wallet balance (index `user - 1`).
fn setup<T: Transport>(t: &mut T, config: &SimConfig) -> Result<Vec<u64>, T::Error> {
    let mut rng = SmallRng::seed_from_u64(config.seed ^ 0x5E7);
    let channels: Vec<Op> =
        (1..=CHANNELS).map(|id| Op::CreateChannel { id, currency: CURRENCY }).collect();
    expect_acks("channels", t.submit_independent(channels)?);
    let mut parties: Vec<Op> = (1..=config.merchants)
        .map(|id| Op::CreateMerchant {
            id,
            currency: CURRENCY,
            commission_bps: rng.gen_range(500..=2_000),
            channel: 1 + id % CHANNELS,
        })
        .collect();
    parties.extend((1..=config.riders).map(|id| Op::CreateRider { id, currency: CURRENCY }));
    parties.extend((1..=config.users).map(|id| Op::CreateUser { id, currency: CURRENCY }));
    for id in 1..=PLATFORM_CAMPAIGNS {
        let budget = config.payments.max(1_000) * 40; // runs out before the day ends
        parties.push(Op::CreateCampaign {
            id,
            currency: CURRENCY,
            funder: Funder::Platform,
            budget,
            rule: campaign_rule(),
        });
    }
    expect_acks("parties", t.submit_independent(parties)?);

    // Opening balances, confirmed by the bank at once; enough for a user's warm-up orders too.
    let mut balances: Vec<u64> = Vec::with_capacity(usize::try_from(config.users).expect("fits"));
    let topups: Vec<Op> = (1..=config.users)
        .map(|user| {
            let warmups = warmup_orders_of(user, config.users) * (WARMUP_FOOD + WARMUP_DELIVERY);
            let amount = rng.gen_range(20_000..200_000) + warmups;
            balances.push(amount);
            Op::TopUp {
                id: topup_id(user),
                user,
                channel: 1 + user % CHANNELS,
                amount,
                timeout_s: 60,
            }
        })
        .collect();
    let holds = expect_acks("opening top-ups", t.submit_independent(topups)?);
    let answers = holds.iter().map(|a| Op::BankResult { id: a.id, ok: true }).collect();
    expect_acks("opening top-ups confirmed", t.submit_independent(answers)?);

    // The busiest merchants fund their own campaigns from their takings: warm-up orders first.
    let warmup: Vec<Op> = (0..(MERCHANT_CAMPAIGNS * WARMUP_ORDERS_PER_CAMPAIGN))
        .map(|i| Op::Pay {
            id: setup_payment_id(i),
            user: 1 + i % config.users,
            merchant: 1 + i % MERCHANT_CAMPAIGNS,
            rider: 1 + i % config.riders,
            food: WARMUP_FOOD,
            delivery: WARMUP_DELIVERY,
            coupon: 0,
            channel: 0,
            timeout_s: 0,
        })
        .collect();
    for (op, ack) in warmup.iter().zip(expect_acks("warm-up orders", t.submit(warmup.clone())?)) {
        if let Op::Pay { user, .. } = op {
            let balance = &mut balances[usize::try_from(*user - 1).expect("fits")];
            *balance = balance.saturating_sub(ack.amount);
        }
    }
    let campaigns: Vec<Op> = (1..=MERCHANT_CAMPAIGNS)
        .map(|i| Op::CreateCampaign {
            id: PLATFORM_CAMPAIGNS + i,
            currency: CURRENCY,
            funder: Funder::Merchant(i),
            budget: WARMUP_ORDERS_PER_CAMPAIGN * 4_000,
            rule: campaign_rule(),
        })
        .collect();
    expect_acks("merchant campaigns", t.submit_independent(campaigns)?);
    Ok(balances)
}

/// How many of the warm-up orders (order `i` is paid by user `1 + i % users`) `user` pays.
fn warmup_orders_of(user: u64, users: u64) -> u64 {
    let orders = MERCHANT_CAMPAIGNS * WARMUP_ORDERS_PER_CAMPAIGN;
    (orders + users - user) / users
}

// Operation ids of the set-up, below the clients' (`client::OP_ID_BASE` and up): a user's
// opening top-up is the user's id, a warm-up order its number from 1.
fn topup_id(user: u64) -> u64 {
    user
}
fn setup_payment_id(i: u64) -> u64 {
    i + 1
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
        let c = &result.counts;
        assert!(c.refunds > 0 && c.topups > 0 && c.settlement_runs > 0, "{c:?}");
        assert_eq!(result.acknowledged_missing, 0);
        // The day made what it was asked for, less the refusals it planned; every refusal of
        // a payment was planned, and was got.
        let planned: u64 = c.refusals_planned.values().sum();
        assert_eq!(c.payments + planned, config.payments, "{c:?}");
        for (code, n) in &c.refusals_planned {
            assert_eq!(c.rejected.get(code), Some(n), "{c:?}");
        }
        for code in ["budget_exhausted", "coupon_limit_reached", "coupon_used"] {
            assert_eq!(c.rejected.get(code), None, "{c:?}");
        }
    }

    /// Few users pay many warm-up orders each: their opening balances cover them.
    #[test]
    fn a_tiny_day_sets_up_and_runs() {
        for users in [1, 7, 20, 199, 200, 201, 1_000] {
            let all: u64 = (1..=users).map(|u| warmup_orders_of(u, users)).sum();
            assert_eq!(all, MERCHANT_CAMPAIGNS * WARMUP_ORDERS_PER_CAMPAIGN, "{users}");
        }
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir.path())).unwrap();
        let engine = Arc::new(engine);
        let config =
            SimConfig { users: 20, merchants: 4, riders: 3, payments: 40, ..SimConfig::default() };
        let result = run(&engine, &config, &Progress::default()).unwrap();
        assert!(result.audit.ok(), "{:?}", result.audit.violations);
        let planned: u64 = result.counts.refusals_planned.values().sum();
        assert_eq!(result.counts.payments + planned, 40, "{:?}", result.counts);
    }

    /// A day with many orders per user: wallets run dry unless their users top them up.
    #[test]
    fn users_top_up_so_a_long_day_makes_what_it_asks() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir.path())).unwrap();
        let engine = Arc::new(engine);
        let config = SimConfig {
            users: 1_000,
            merchants: 20,
            riders: 10,
            payments: 40_000,
            clients: 1,
            batch_ops: 128,
            refusals: RefusalPlan {
                insufficient_funds_per_million: 5_000,
                coupon_minimum_not_met_per_million: 0,
            },
            ..SimConfig::default()
        };
        let result = run(&engine, &config, &Progress::default()).unwrap();
        assert!(result.audit.ok(), "{:?}", result.audit.violations);
        let c = &result.counts;
        // 40 orders a user, about 2,100 yuan: twice an opening balance on average.
        assert!(c.topups > 500, "{c:?}");
        let planned = c.refusals_planned["insufficient_funds"];
        assert!((100..=300).contains(&planned), "{c:?}");
        assert_eq!(c.rejected.get("insufficient_funds"), Some(&planned), "{c:?}");
        assert_eq!(c.payments + planned, config.payments, "{c:?}");
        // Three orders in four from the wallet, as when wallets are full.
        assert!(c.payments_wallet * 100 > c.payments * 60, "{c:?}");
    }
}
