//! `huifu bench ...`: throughput and latency of the engine, measured in release builds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use huifu_engine::{
    Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome, LedgerQuery,
};
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use huifu_ledger::{Account, CreateAccountResult, CreateTransferResult, Transfer};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::util;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Durable ledger transfers per second through the engine, in batches (the counterpart of
    /// TigerBeetle's `benchmark`).
    Ledger(LedgerArgs),
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
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

pub fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Ledger(args) => bench_ledger(args),
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
    let mut options = EngineOptions::new(data_dir.path());
    options.fsync = !args.no_fsync;
    let (engine, _) = Engine::<LedgerMachine>::open(options)
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

    let progress = progress_bar(args.transfers, args.json);
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
    let rss_bytes_max = util::rss_bytes_max();
    let transfers_per_second = (args.transfers as f64 / seconds).round() as u64;
    let disk_bytes = util::disk_bytes(data_dir.path());
    drop(engine);

    eprintln!("transfers           {}", args.transfers);
    eprintln!("accounts            {}", args.accounts);
    eprintln!("batch               {} ({} client(s))", args.batch, args.clients);
    eprintln!("durable             {}", !args.no_fsync);
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
            "failed": failures,
            "rss_bytes_max": rss_bytes_max,
            "disk_bytes": disk_bytes,
        });
        println!("{json}");
    }
    if failures > 0 || found != ids.len() || !totals.is_balanced() {
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

pub fn progress_bar(total: u64, quiet_json: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let _ = quiet_json;
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} ETA {eta}",
        )
        .expect("valid template"),
    );
    bar
}
