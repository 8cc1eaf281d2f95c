//! `huifu bench ...`: throughput and latency of the engine, measured in release builds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use huifu_engine::{
    Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome, LedgerQuery,
};
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use huifu_ledger::{Account, CreateAccountResult, CreateTransferResult, Transfer};
use huifu_payments::chart::Kind;
use huifu_payments::constants::{AMOUNT_MAX, BATCH_OPS_MAX};
use huifu_payments::{CouponRule, Done, Funder, Op, PaymentStatus, PaymentsMachine};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::util;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Durable ledger transfers per second through the engine, in batches (the counterpart of
    /// TigerBeetle's `benchmark`).
    Ledger(LedgerArgs),
    /// Durable wallet payments per second through the payment engine: merchant, rider and
    /// commission legs, a coupon on about a quarter of them.
    Payments(PaymentsArgs),
    /// Wallet payments per second through the HTTP API (`huifu serve`), over many keep-alive
    /// connections, one payment or one batch per request.
    Http(crate::bench_http::HttpArgs),
}

#[derive(Args)]
pub struct LedgerArgs {
    /// Accounts to create before the run.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// Transfers to submit.
    #[arg(long, default_value_t = 10_000_000)]
    transfers: u64,
    /// Transfers per batch (at most 8,190).
    #[arg(long, default_value_t = BATCH_EVENTS_MAX)]
    batch: usize,
    /// Clients sending batches back to back, each waiting for its reply.
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Data folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Do not fsync: measures the engine without the disk. Acknowledged work is not durable.
    #[arg(long)]
    no_fsync: bool,
    /// Seed of the random accounts, amounts and ids.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    memory: util::MemoryArgs,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    // A full disk is named by the folder given (a temporary one is named by the engine).
    let full =
        |dir: Option<PathBuf>| move |e: anyhow::Error| util::name_full_folder(e, dir.as_deref());
    match command {
        BenchCommand::Ledger(args) => {
            let dir = args.data_dir.clone();
            bench_ledger(args).map_err(full(dir))
        }
        BenchCommand::Payments(args) => {
            let dir = args.data_dir.clone();
            bench_payments(args).map_err(full(dir))
        }
        BenchCommand::Http(args) => crate::bench_http::bench_http(args),
    }
}

const LEDGER: u32 = 1;

fn bench_ledger(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    if args.batch == 0 || args.batch > BATCH_EVENTS_MAX {
        bail!("--batch must be between 1 and {BATCH_EVENTS_MAX}, not {}", args.batch);
    }
    if args.accounts < 2 {
        bail!("--accounts must be at least 2");
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let data_dir =
        util::DataDir::new(args.data_dir.clone()).context("cannot create data folder")?;
    // The same options for the run and for the restart after it.
    let options = || {
        let mut options = EngineOptions::new(data_dir.path());
        options.fsync = !args.no_fsync;
        options.memory_max = args.memory.transfers_max;
        options
    };
    let (engine, _) = Engine::<LedgerMachine>::open(options())
        .with_context(|| format!("cannot open engine in {}", data_dir.path().display()))?;
    let engine = Arc::new(engine);

    // Account ids are 1..=accounts; transfer ids are random so the id index sees real hashing.
    let accounts: Vec<Account> = (1..=args.accounts)
        .map(|i| Account { id: u128::from(i), ledger: LEDGER, code: 1, ..Account::default() })
        .collect();
    for chunk in accounts.chunks(BATCH_EVENTS_MAX) {
        match engine.execute(LedgerCommand::CreateAccounts(chunk.to_vec()))? {
            LedgerOutcome::Accounts(results)
                if results.iter().all(|r| *r == CreateAccountResult::Created) => {}
            other => bail!("account creation failed: {other:?}"),
        }
    }
    drop(accounts);

    let progress = progress_bar(args.transfers);
    let next = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(util::histogram()));
    let failures = Arc::new(AtomicU64::new(0));
    let sample_ids = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|client| {
            let engine = engine.clone();
            let next = next.clone();
            let latencies = latencies.clone();
            let failures = failures.clone();
            let sample_ids = sample_ids.clone();
            let progress = progress.clone();
            let (total, batch, accounts) = (args.transfers, args.batch as u64, args.accounts);
            let seed = args.seed.wrapping_add(client as u64);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut rng = SmallRng::seed_from_u64(seed);
                let mut histogram = util::histogram();
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= total {
                        break;
                    }
                    let count = batch.min(total - start);
                    let transfers: Vec<Transfer> =
                        (0..count).map(|_| random_transfer(&mut rng, accounts)).collect();
                    let first_id = transfers[0].id;
                    let sent = Instant::now();
                    let outcome = engine.execute(LedgerCommand::CreateTransfers(transfers))?;
                    histogram.record(duration_us(sent.elapsed())).ok();
                    let LedgerOutcome::Transfers(results) = outcome else {
                        bail!("unexpected outcome {outcome:?}")
                    };
                    let failed =
                        results.iter().filter(|r| **r != CreateTransferResult::Created).count();
                    failures.fetch_add(failed as u64, Ordering::Relaxed);
                    sample_ids.lock().expect("lock").push(first_id);
                    progress.inc(count);
                }
                latencies.lock().expect("lock").add(&histogram).ok();
                Ok(())
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    // Every acknowledged transfer must be retrievable: look up the first of each batch.
    let ids = std::mem::take(&mut *sample_ids.lock().expect("lock"));
    let mut found = 0;
    for chunk in ids.chunks(BATCH_EVENTS_MAX) {
        if let LedgerAnswer::Transfers(t) =
            engine.query(LedgerQuery::LookupTransfers(chunk.to_vec()))?
        {
            found += t.len();
        }
    }
    let LedgerAnswer::Totals(totals) = engine.query(LedgerQuery::Totals)? else {
        bail!("unexpected answer")
    };
    let failures = failures.load(Ordering::Relaxed);
    let latencies = latencies.lock().expect("lock");
    let transfers_per_second = (args.transfers as f64 / seconds).round() as u64;
    let disk_bytes = util::disk_bytes(data_dir.path());

    // Restart: a checkpoint, then a new engine on the folder; the sampled transfers must be
    // there again.
    let started = Instant::now();
    engine.checkpoint()?;
    let checkpoint_seconds = started.elapsed().as_secs_f64();
    drop(engine);
    let started = Instant::now();
    let (engine, recovery) = Engine::<LedgerMachine>::open(options())?;
    let restart_seconds = started.elapsed().as_secs_f64();
    let mut found_after_restart = 0;
    for chunk in ids.chunks(BATCH_EVENTS_MAX) {
        if let LedgerAnswer::Transfers(t) =
            engine.query(LedgerQuery::LookupTransfers(chunk.to_vec()))?
        {
            found_after_restart += t.len();
        }
    }
    drop(engine);
    let rss_bytes_max = util::rss_bytes_max();

    eprintln!("transfers           {}", args.transfers);
    eprintln!("accounts            {}", args.accounts);
    eprintln!("batch               {} ({} client(s))", args.batch, args.clients);
    eprintln!("durable             {}", !args.no_fsync);
    match args.memory.transfers_max {
        Some(n) => eprintln!("in memory           at most ~{n} transfers, the rest in the store"),
        None => eprintln!("in memory           all transfers"),
    }
    eprintln!("seconds             {seconds:.3}");
    eprintln!("transfers/s         {transfers_per_second}");
    eprintln!(
        "batch latency ms    p50 {:.3}  p99 {:.3}  max {:.3}",
        util::ms(latencies.value_at_quantile(0.50)),
        util::ms(latencies.value_at_quantile(0.99)),
        util::ms(latencies.max())
    );
    eprintln!("rss max             {} MiB", rss_bytes_max >> 20);
    eprintln!("disk                {} MiB", disk_bytes >> 20);
    eprintln!("lookups             {found} of {} sampled transfers found", ids.len());
    eprintln!(
        "restart             checkpoint {checkpoint_seconds:.2} s, reopen {restart_seconds:.2} s \
         ({} journal records replayed), {found_after_restart} found again",
        recovery.records_replayed
    );
    if args.json {
        let json = serde_json::json!({
            "transfers": args.transfers,
            "accounts": args.accounts,
            "batch": args.batch,
            "clients": args.clients,
            "seconds": seconds,
            "transfers_per_second": transfers_per_second,
            "batch_latency_ms_p50": util::ms(latencies.value_at_quantile(0.50)),
            "batch_latency_ms_p99": util::ms(latencies.value_at_quantile(0.99)),
            "batch_latency_ms_max": util::ms(latencies.max()),
            "durable": !args.no_fsync,
            "memory_transfers_max": args.memory.transfers_max,
            "failed": failures,
            "rss_bytes_max": rss_bytes_max,
            "disk_bytes": disk_bytes,
            "checkpoint_seconds": checkpoint_seconds,
            "restart_seconds": restart_seconds,
        });
        println!("{json}");
    }
    if failures > 0
        || found != ids.len()
        || found_after_restart != ids.len()
        || !totals.is_balanced()
    {
        eprintln!(
            "error: {failures} transfers failed, {found}/{} found, totals {totals:?}",
            ids.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn random_transfer(rng: &mut SmallRng, accounts: u64) -> Transfer {
    let debit = rng.gen_range(1..=accounts);
    let mut credit = rng.gen_range(1..accounts);
    if credit >= debit {
        credit += 1;
    }
    Transfer {
        id: rng.gen_range(1..u128::MAX),
        debit_account_id: u128::from(debit),
        credit_account_id: u128::from(credit),
        amount: rng.gen_range(1..=1_000),
        ledger: LEDGER,
        code: 1,
        ..Transfer::default()
    }
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}

#[derive(Args)]
pub struct PaymentsArgs {
    /// Payments to make.
    #[arg(long, default_value_t = 2_000_000)]
    payments: u64,
    /// Clients sending batches back to back, each waiting for its reply.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Payments per batch: one engine command, one journal record.
    #[arg(long, default_value_t = huifu_sim::BATCH_OPS_DEFAULT)]
    batch: usize,
    /// Users, each with a wallet funded for its share of the payments.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Merchants, each with a commission rate above zero.
    #[arg(long, default_value_t = 5_000)]
    merchants: u64,
    /// Riders.
    #[arg(long, default_value_t = 10_000)]
    riders: u64,
    #[command(flatten)]
    memory: util::MemoryArgs,
    /// Data folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Do not fsync: measures the engine without the disk. Acknowledged work is not durable.
    #[arg(long)]
    no_fsync: bool,
    /// Seed of the random merchants, riders and amounts.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
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
struct PaymentTally {
    payments: u64,
    coupons: u64,
    merchant: u64,
    rider: u64,
    platform: u64,
    coupon: u64,
    rejected: BTreeMap<&'static str, u64>,
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

    fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

fn bench_payments(args: PaymentsArgs) -> anyhow::Result<ExitCode> {
    let run = run_payments(&args)?;
    let tally = &run.tally;
    let payments_per_second = (tally.payments as f64 / run.seconds).round() as u64;
    let disk_bytes_per_payment = run.disk_bytes / tally.payments.max(1);
    let (p50, p99, max) = (
        util::ms(run.latencies.value_at_quantile(0.50)),
        util::ms(run.latencies.value_at_quantile(0.99)),
        util::ms(run.latencies.max()),
    );
    let ledger_ok = run.ledger_agrees();

    eprintln!("payments            {} ({} with a coupon)", tally.payments, tally.coupons);
    eprintln!("users               {}", args.users);
    eprintln!("batch               {} ({} client(s))", args.batch, args.clients);
    eprintln!("durable             {}", !args.no_fsync);
    eprintln!("set-up seconds      {:.3}", run.setup_seconds);
    eprintln!("seconds             {:.3}", run.seconds);
    eprintln!("payments/s          {payments_per_second}");
    eprintln!("batch latency ms    p50 {p50:.3}  p99 {p99:.3}  max {max:.3}");
    eprintln!("rss max             {} MiB", run.rss_bytes_max >> 20);
    eprintln!(
        "disk                {} MiB ({disk_bytes_per_payment} bytes per payment)",
        run.disk_bytes >> 20
    );
    for (code, n) in &tally.rejected {
        eprintln!("rejected            {n} {code}");
    }
    eprintln!(
        "ledger              {}",
        if ledger_ok { "agrees with the replies" } else { "DIFFERS" }
    );
    if args.json {
        let json = serde_json::json!({
            "payments": tally.payments,
            "coupons": tally.coupons,
            "users": args.users,
            "merchants": args.merchants,
            "riders": args.riders,
            "clients": args.clients,
            "batch": args.batch,
            "setup_seconds": run.setup_seconds,
            "seconds": run.seconds,
            "payments_per_second": payments_per_second,
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "latency_ms_max": max,
            "durable": !args.no_fsync,
            "rejected": tally.rejected,
            "rss_bytes_max": run.rss_bytes_max,
            "disk_bytes": run.disk_bytes,
            "disk_bytes_per_payment": disk_bytes_per_payment,
        });
        println!("{json}");
    }
    if tally.rejected_total() > 0 || !ledger_ok {
        eprintln!(
            "error: {} payments rejected; ledger {:?} against replies: {} payments, legs \
             merchant {} rider {} platform {} coupon {}",
            tally.rejected_total(),
            run.check,
            tally.payments,
            tally.merchant,
            tally.rider,
            tally.platform,
            tally.coupon
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// What a payments benchmark measured and found.
struct PaymentsRun {
    tally: PaymentTally,
    /// Batch latencies, submit to durable reply, in microseconds.
    latencies: Histogram<u64>,
    /// From the first payment batch to the last reply.
    seconds: f64,
    setup_seconds: f64,
    check: LedgerCheck,
    rss_bytes_max: u64,
    disk_bytes: u64,
}

impl PaymentsRun {
    /// The ledger holds exactly what the replies said: every payment, every leg.
    fn ledger_agrees(&self) -> bool {
        let (check, tally) = (&self.check, &self.tally);
        check.balanced
            && check.payments == tally.payments
            && check.merchant == u128::from(tally.merchant)
            && check.rider == u128::from(tally.rider)
            && check.platform == u128::from(tally.platform)
            && check.coupon == u128::from(tally.coupon)
    }
}

/// Sets up, runs the clients, and checks the ledger against what they were told.
fn run_payments(args: &PaymentsArgs) -> anyhow::Result<PaymentsRun> {
    if args.batch == 0 || args.batch > BATCH_OPS_MAX {
        bail!("--batch must be between 1 and {BATCH_OPS_MAX}, not {}", args.batch);
    }
    if args.clients == 0 || args.payments == 0 {
        bail!("--clients and --payments must be at least 1");
    }
    if args.users == 0 || args.merchants == 0 || args.riders == 0 {
        bail!("--users, --merchants and --riders must be at least 1");
    }
    // Each wallet holds enough for all its payments at the largest amounts, coupons aside.
    let per_user = args.payments.div_ceil(args.users);
    let funding = per_user.saturating_mul(PAY_FOOD_MAX + PAY_DELIVERY_MAX);
    if funding > AMOUNT_MAX {
        bail!("{per_user} payments per user need more than one top-up: raise --users");
    }
    let data_dir =
        util::DataDir::new(args.data_dir.clone()).context("cannot create data folder")?;
    let mut options = EngineOptions::new(data_dir.path());
    options.fsync = !args.no_fsync;
    options.memory_max = args.memory.transfers_max;
    let (engine, _) = Engine::<PaymentsMachine>::open(options)
        .with_context(|| format!("cannot open engine in {}", data_dir.path().display()))?;
    let engine = Arc::new(engine);
    let shape = PaymentShape {
        users: args.users,
        merchants: args.merchants,
        riders: args.riders,
        seed: args.seed,
    };

    eprintln!(
        "setting up {} users, {} merchants, {} riders, {} coupons in {}",
        args.users,
        args.merchants,
        args.riders,
        args.payments.div_ceil(PAY_COUPON_EVERY),
        data_dir.path().display()
    );
    let setup_started = Instant::now();
    setup_payments(&engine, &shape, args.payments, funding)?;
    let setup_seconds = setup_started.elapsed().as_secs_f64();

    let progress = progress_bar(args.payments);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.clients)
        .map(|_| {
            let engine = engine.clone();
            let next = next.clone();
            let progress = progress.clone();
            let (total, batch) = (args.payments, args.batch as u64);
            std::thread::spawn(move || -> anyhow::Result<(PaymentTally, Histogram<u64>)> {
                let mut tally = PaymentTally::default();
                let mut histogram = util::histogram();
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= total {
                        break;
                    }
                    let count = batch.min(total - start);
                    let mut rng = shape.rng(start);
                    let ops: Vec<Op> =
                        (start..start + count).map(|i| shape.payment(&mut rng, i)).collect();
                    let sent = Instant::now();
                    let outcome = engine.execute(Op::Batch(ops))?;
                    histogram.record(duration_us(sent.elapsed())).ok();
                    let Ok(Done::Batch(outcomes)) = outcome else {
                        bail!("a batch got {outcome:?}")
                    };
                    if outcomes.len() as u64 != count {
                        bail!("{} outcomes for a batch of {count}", outcomes.len());
                    }
                    let before = tally.payments;
                    for outcome in outcomes {
                        match outcome {
                            Ok(Done::Payment {
                                status: PaymentStatus::Succeeded, legs, ..
                            }) => {
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
                    progress.inc(tally.payments - before);
                }
                Ok((tally, histogram))
            })
        })
        .collect();
    let mut tally = PaymentTally::default();
    let mut latencies = util::histogram();
    for client in clients {
        let (t, h) = client.join().expect("client thread")?;
        tally.add(&t);
        latencies.add(&h).expect("same bounds");
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    // What the ledger holds must be what the clients were told: every leg, in its account.
    let merchants = args.merchants;
    let riders = args.riders;
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
    let rss_bytes_max = util::rss_bytes_max();
    let disk_bytes = util::disk_bytes(data_dir.path());
    drop(engine);
    Ok(PaymentsRun { tally, latencies, seconds, setup_seconds, check, rss_bytes_max, disk_bytes })
}

/// The ledger's side of the payments benchmark's closing check.
#[derive(Debug)]
struct LedgerCheck {
    balanced: bool,
    payments: u64,
    merchant: u128,
    rider: u128,
    platform: u128,
    coupon: u128,
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
        let args = PaymentsArgs {
            payments: 3_001,
            clients: 3,
            batch: 100,
            users: 70,
            merchants: 9,
            riders: 5,
            data_dir: Some(dir.path().to_path_buf()),
            no_fsync: true,
            // Small, so that most of the history goes through the store.
            memory: util::MemoryArgs { transfers_max: Some(1_000) },
            seed: 7,
            json: false,
        };
        let run = run_payments(&args).unwrap();
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
