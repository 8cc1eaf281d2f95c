//! Durable wallet payments per second through the payment engine (`huifu bench payments`):
//! merchant, rider and commission legs, a coupon on about a quarter of them, in batches from
//! several clients; then the ledger checked against what the replies said.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use huifu_engine::{Engine, EngineOptions};
use huifu_payments::chart::Kind;
use huifu_payments::constants::{AMOUNT_MAX, BATCH_OPS_MAX};
use huifu_payments::{CouponRule, Done, Funder, Op, PaymentStatus, PaymentsMachine};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::measure::{self, duration_us};
use crate::Progress;

/// What to run.
#[derive(Clone, Debug)]
pub struct PaymentsOptions {
    /// Payments to make.
    pub payments: u64,
    /// Clients sending batches back to back, each waiting for its reply.
    pub clients: usize,
    /// Payments per batch: one engine command, one journal record.
    pub batch: usize,
    /// Users, each with a wallet funded for its share of the payments.
    pub users: u64,
    /// Merchants, each with a commission rate above zero.
    pub merchants: u64,
    pub riders: u64,
    /// `false`: no fsync, the engine without the disk.
    pub fsync: bool,
    /// Seed of the random merchants, riders and amounts.
    pub seed: u64,
    /// The engine's memory bound in ledger transfers; `None`: all in memory.
    pub memory_transfers_max: Option<usize>,
}

/// Currency of the payments benchmark (ISO 4217 numeric: CNY); amounts are in fen.
const PAY_CURRENCY: u32 = 156;
/// The one bank channel, through which the wallets are funded at set-up.
const PAY_CHANNEL: u64 = 1;
/// Platform-funded coupon campaigns; coupons alternate between them, so two budget accounts
/// share the redemptions.
const PAY_CAMPAIGNS: u64 = 2;
/// One payment in this many carries a coupon: about a quarter, as on a busy platform.
const PAY_COUPON_EVERY: u64 = 4;
/// Discount of one coupon, in fen.
const PAY_COUPON_OFF: u64 = 500;
/// Smallest food amount of an order, in fen (inclusive). It is also the coupons' minimum
/// order, so no coupon is refused for a small order.
const PAY_FOOD_MIN: u64 = 1_500;
/// Largest food amount of an order, in fen (exclusive).
const PAY_FOOD_MAX: u64 = 8_000;
/// Smallest delivery fee, in fen (inclusive).
const PAY_DELIVERY_MIN: u64 = 300;
/// Largest delivery fee, in fen (exclusive).
const PAY_DELIVERY_MAX: u64 = 800;
/// Lowest merchant commission rate in basis points: above zero, so that every payment has a
/// commission leg.
const PAY_COMMISSION_BPS_MIN: u32 = 500;
/// Highest merchant commission rate in basis points (inclusive).
const PAY_COMMISSION_BPS_MAX: u32 = 2_000;
/// Hold of the set-up top-ups. The bank's confirmation follows in the same batch, so the hold
/// never runs out; it only has to be valid.
const PAY_TOPUP_TIMEOUT_S: u32 = 3_600;

const _: () = assert!(PAY_COUPON_OFF <= PAY_FOOD_MIN && PAY_COMMISSION_BPS_MIN > 0);

/// What the payments of the benchmark look like; shared by the clients.
#[derive(Clone, Copy)]
struct PaymentShape {
    users: u64,
    merchants: u64,
    riders: u64,
    seed: u64,
}

impl PaymentShape {
    /// Payment `i` (from 0): its id is `i + 1`, its user `1 + i % users`, and every
    /// `PAY_COUPON_EVERY`-th payment redeems coupon `1 + i / PAY_COUPON_EVERY`, granted at
    /// set-up to that user. The rest is drawn from `rng`.
    fn payment(&self, rng: &mut SmallRng, i: u64) -> Op {
        let coupon = if i.is_multiple_of(PAY_COUPON_EVERY) { 1 + i / PAY_COUPON_EVERY } else { 0 };
        Op::Pay {
            id: i + 1,
            user: self.user(i),
            merchant: rng.gen_range(1..=self.merchants),
            rider: rng.gen_range(1..=self.riders),
            food: rng.gen_range(PAY_FOOD_MIN..PAY_FOOD_MAX),
            delivery: rng.gen_range(PAY_DELIVERY_MIN..PAY_DELIVERY_MAX),
            coupon,
            channel: 0,
            timeout_s: 0,
        }
    }

    fn user(&self, i: u64) -> u64 {
        1 + i % self.users
    }

    /// The random source of the batch starting at payment `start`: the payments are the same
    /// whichever client sends them.
    fn rng(&self, start: u64) -> SmallRng {
        SmallRng::seed_from_u64(self.seed ^ start.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

/// What one client saw: successful payments, the sums of their legs, rejections by code.
#[derive(Default)]
pub struct PaymentTally {
    pub payments: u64,
    pub coupons: u64,
    pub merchant: u64,
    pub rider: u64,
    pub platform: u64,
    pub coupon: u64,
    pub rejected: BTreeMap<&'static str, u64>,
}

impl PaymentTally {
    fn add(&mut self, other: &PaymentTally) {
        self.payments += other.payments;
        self.coupons += other.coupons;
        self.merchant += other.merchant;
        self.rider += other.rider;
        self.platform += other.platform;
        self.coupon += other.coupon;
        for (code, n) in &other.rejected {
            *self.rejected.entry(code).or_default() += n;
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// What a payments benchmark measured and found.
pub struct PaymentsRun {
    pub tally: PaymentTally,
    /// Batch latencies, submit to durable reply, in microseconds.
    pub latencies: Histogram<u64>,
    /// From the first payment batch to the last reply.
    pub seconds: f64,
    pub setup_seconds: f64,
    pub check: LedgerCheck,
    pub rss_bytes_max: u64,
    pub disk_bytes: u64,
}

impl PaymentsRun {
    /// The ledger holds exactly what the replies said: every payment, every leg.
    pub fn ledger_agrees(&self) -> bool {
        let (check, tally) = (&self.check, &self.tally);
        check.balanced
            && check.payments == tally.payments
            && check.merchant == u128::from(tally.merchant)
            && check.rider == u128::from(tally.rider)
            && check.platform == u128::from(tally.platform)
            && check.coupon == u128::from(tally.coupon)
    }
}

/// Checks the options; what each user's wallet is funded with: enough for all its payments at
/// the largest amounts, coupons aside.
pub fn funding(options: &PaymentsOptions) -> anyhow::Result<u64> {
    if options.batch == 0 || options.batch > BATCH_OPS_MAX {
        bail!("--batch must be between 1 and {BATCH_OPS_MAX}, not {}", options.batch);
    }
    if options.clients == 0 || options.payments == 0 {
        bail!("--clients and --payments must be at least 1");
    }
    if options.users == 0 || options.merchants == 0 || options.riders == 0 {
        bail!("--users, --merchants and --riders must be at least 1");
    }
    let per_user = options.payments.div_ceil(options.users);
    let funding = per_user.saturating_mul(PAY_FOOD_MAX + PAY_DELIVERY_MAX);
    if funding > AMOUNT_MAX {
        bail!("{per_user} payments per user need more than one top-up: raise --users");
    }
    Ok(funding)
}

/// A payments benchmark on its engine: `open`, `set_up`, then `run`.
pub struct PaymentsBench {
    options: PaymentsOptions,
    engine: Engine<PaymentsMachine>,
    data_dir: PathBuf,
    shape: PaymentShape,
    funding: u64,
    setup_seconds: f64,
}

impl PaymentsBench {
    /// Checks the options and opens an engine in `data_dir`.
    pub fn open(options: PaymentsOptions, data_dir: &Path) -> anyhow::Result<PaymentsBench> {
        let funding = funding(&options)?;
        let mut engine_options = EngineOptions::new(data_dir);
        engine_options.fsync = options.fsync;
        engine_options.memory_max = options.memory_transfers_max;
        let (engine, _) = Engine::<PaymentsMachine>::open(engine_options)
            .with_context(|| format!("cannot open engine in {}", data_dir.display()))?;
        let shape = PaymentShape {
            users: options.users,
            merchants: options.merchants,
            riders: options.riders,
            seed: options.seed,
        };
        Ok(PaymentsBench {
            options,
            engine,
            data_dir: data_dir.to_owned(),
            shape,
            funding,
            setup_seconds: 0.0,
        })
    }

    /// Coupons granted at set-up: one per `PAY_COUPON_EVERY` payments.
    pub fn coupons(&self) -> u64 {
        self.options.payments.div_ceil(PAY_COUPON_EVERY)
    }

    /// The channel, parties, funded wallets, campaigns and coupons.
    pub fn set_up(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        setup_payments(&self.engine, &self.shape, self.options.payments, self.funding)?;
        self.setup_seconds = started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Runs the clients, and checks the ledger against what they were told.
    pub fn run(self, progress: &dyn Progress) -> anyhow::Result<PaymentsRun> {
        let PaymentsBench { options, engine, data_dir, shape, setup_seconds, .. } = self;
        let next = AtomicU64::new(0);
        progress.start();
        let started = Instant::now();
        let results = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..options.clients)
                .map(|_| {
                    let (engine, next) = (&engine, &next);
                    let (total, batch) = (options.payments, options.batch as u64);
                    scope.spawn(move || client(engine, &shape, next, total, batch, progress))
                })
                .collect();
            clients.into_iter().map(|c| c.join().expect("client thread")).collect::<Vec<_>>()
        });
        let mut tally = PaymentTally::default();
        let mut latencies = measure::histogram();
        for result in results {
            let (t, h) = result?;
            tally.add(&t);
            latencies.add(&h).expect("same bounds");
        }
        let seconds = started.elapsed().as_secs_f64();
        progress.finish();

        // What the ledger holds must be what the clients were told: every leg, in its account.
        let merchants = options.merchants;
        let riders = options.riders;
        let check = engine.read(move |m| {
            let credits = |kind: Kind, entity: u64| {
                m.account(kind, PAY_CURRENCY, entity).map_or(0, |a| a.credits_posted)
            };
            let debits = |kind: Kind, entity: u64| {
                m.account(kind, PAY_CURRENCY, entity).map_or(0, |a| a.debits_posted)
            };
            LedgerCheck {
                balanced: m.ledger().totals().is_balanced(),
                payments: {
                    let mut n = 0;
                    m.for_each_payment(|_, _| n += 1);
                    n
                },
                merchant: (1..=merchants).map(|e| credits(Kind::Merchant, e)).sum(),
                rider: (1..=riders).map(|e| credits(Kind::Rider, e)).sum(),
                platform: credits(Kind::PlatformRevenue, 0),
                coupon: (1..=PAY_CAMPAIGNS).map(|e| debits(Kind::CampaignBudget, e)).sum(),
            }
        })?;
        let rss_bytes_max = measure::rss_bytes_max();
        let disk_bytes = measure::disk_bytes(&data_dir);
        drop(engine);
        Ok(PaymentsRun {
            tally,
            latencies,
            seconds,
            setup_seconds,
            check,
            rss_bytes_max,
            disk_bytes,
        })
    }
}

/// One client: batches of the next payments, back to back, until all are sent.
fn client(
    engine: &Engine<PaymentsMachine>,
    shape: &PaymentShape,
    next: &AtomicU64,
    total: u64,
    batch: u64,
    progress: &dyn Progress,
) -> anyhow::Result<(PaymentTally, Histogram<u64>)> {
    let mut tally = PaymentTally::default();
    let mut histogram = measure::histogram();
    loop {
        let start = next.fetch_add(batch, Ordering::Relaxed);
        if start >= total {
            break;
        }
        let count = batch.min(total - start);
        let mut rng = shape.rng(start);
        let ops: Vec<Op> = (start..start + count).map(|i| shape.payment(&mut rng, i)).collect();
        let sent = Instant::now();
        let outcome = engine.execute(Op::Batch(ops))?;
        histogram.record(duration_us(sent.elapsed())).ok();
        let Ok(Done::Batch(outcomes)) = outcome else { bail!("a batch got {outcome:?}") };
        if outcomes.len() as u64 != count {
            bail!("{} outcomes for a batch of {count}", outcomes.len());
        }
        let before = tally.payments;
        for outcome in outcomes {
            match outcome {
                Ok(Done::Payment { status: PaymentStatus::Succeeded, legs, .. }) => {
                    tally.payments += 1;
                    tally.coupons += u64::from(legs.coupon > 0);
                    tally.merchant += legs.merchant;
                    tally.rider += legs.rider;
                    tally.platform += legs.platform;
                    tally.coupon += legs.coupon;
                }
                Ok(_) => *tally.rejected.entry("unexpected_outcome").or_default() += 1,
                Err(e) => *tally.rejected.entry(e.code()).or_default() += 1,
            }
        }
        progress.advance(tally.payments - before);
    }
    Ok((tally, histogram))
}

/// The ledger's side of the payments benchmark's closing check.
#[derive(Debug)]
pub struct LedgerCheck {
    pub balanced: bool,
    pub payments: u64,
    pub merchant: u128,
    pub rider: u128,
    pub platform: u128,
    pub coupon: u128,
}

/// The channel, parties, funded wallets, campaigns and coupons of the payments benchmark.
fn setup_payments(
    engine: &Engine<PaymentsMachine>,
    shape: &PaymentShape,
    payments: u64,
    funding: u64,
) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(shape.seed);
    let mut ops = vec![Op::CreateChannel { id: PAY_CHANNEL, currency: PAY_CURRENCY }];
    ops.extend((1..=shape.merchants).map(|id| Op::CreateMerchant {
        id,
        currency: PAY_CURRENCY,
        commission_bps: rng.gen_range(PAY_COMMISSION_BPS_MIN..=PAY_COMMISSION_BPS_MAX),
        channel: PAY_CHANNEL,
    }));
    ops.extend((1..=shape.riders).map(|id| Op::CreateRider { id, currency: PAY_CURRENCY }));
    for user in 1..=shape.users {
        ops.push(Op::CreateUser { id: user, currency: PAY_CURRENCY });
        ops.push(Op::TopUp {
            id: user,
            user,
            channel: PAY_CHANNEL,
            amount: funding,
            timeout_s: PAY_TOPUP_TIMEOUT_S,
        });
        ops.push(Op::BankResult { id: user, ok: true });
    }
    let coupons = payments.div_ceil(PAY_COUPON_EVERY);
    // A budget for every coupon, so that none is refused for want of budget.
    let budget = coupons.div_ceil(PAY_CAMPAIGNS) * PAY_COUPON_OFF;
    ops.extend((1..=PAY_CAMPAIGNS).map(|id| Op::CreateCampaign {
        id,
        currency: PAY_CURRENCY,
        funder: Funder::Platform,
        budget,
        rule: CouponRule {
            amount_off: PAY_COUPON_OFF,
            min_order: PAY_FOOD_MIN,
            valid_from: 0,
            valid_until: 0,
            per_user_limit: 0,
        },
    }));
    ops.extend((0..coupons).map(|c| Op::GrantCoupon {
        id: 1 + c,
        campaign: 1 + c % PAY_CAMPAIGNS,
        user: shape.user(c * PAY_COUPON_EVERY),
    }));
    for chunk in ops.chunks(BATCH_OPS_MAX) {
        let outcome = engine.execute(Op::Batch(chunk.to_vec()))?;
        let Ok(Done::Batch(outcomes)) = &outcome else { bail!("set-up batch got {outcome:?}") };
        if let Some((op, error)) =
            chunk.iter().zip(outcomes).find_map(|(op, o)| o.as_ref().err().map(|e| (op, e)))
        {
            bail!("set-up step {op:?} failed: {error}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payments_benchmark_pays_every_order_with_a_coupon_on_a_quarter() {
        let dir = tempfile::tempdir().unwrap();
        let options = PaymentsOptions {
            payments: 3_001,
            clients: 3,
            batch: 100,
            users: 70,
            merchants: 9,
            riders: 5,
            fsync: false,
            // Small, so that most of the history goes through the store.
            memory_transfers_max: Some(1_000),
            seed: 7,
        };
        let mut bench = PaymentsBench::open(options, dir.path()).unwrap();
        assert_eq!(bench.coupons(), 751);
        bench.set_up().unwrap();
        let run = bench.run(&()).unwrap();
        assert!(run.tally.rejected.is_empty(), "{:?}", run.tally.rejected);
        assert_eq!(run.tally.payments, 3_001);
        assert_eq!(run.tally.coupons, 3_001_u64.div_ceil(PAY_COUPON_EVERY));
        assert!(run.tally.platform > 0 && run.tally.rider > 0 && run.tally.merchant > 0);
        assert!(run.ledger_agrees(), "{:?}", run.check);
        assert_eq!(run.latencies.len(), 3_001_u64.div_ceil(100));
    }

    #[test]
    fn a_payment_is_the_same_whichever_client_sends_it() {
        let shape = PaymentShape { users: 10, merchants: 3, riders: 2, seed: 1 };
        let make = |start: u64| {
            let mut rng = shape.rng(start);
            (start..start + 8).map(|i| shape.payment(&mut rng, i)).collect::<Vec<_>>()
        };
        assert_eq!(make(16), make(16));
        let Op::Pay { id, user, coupon, channel, .. } = make(16)[0] else { panic!() };
        assert_eq!((id, user, coupon, channel), (17, 7, 5, 0));
    }
}
