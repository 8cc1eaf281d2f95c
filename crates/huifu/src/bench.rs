//! `huifu bench ...`: throughput and latency of the engine, measured in release builds. The
//! measuring is `huifu_bench`'s; here are the flags and what is printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use huifu_bench::http::{HttpBench, HttpOptions, Spawned};
use huifu_bench::ledger::LedgerOptions;
use huifu_bench::ledger_net::NetLedgerOptions;
use huifu_bench::measure::ms;
use huifu_bench::payments::{PaymentsBench, PaymentsOptions};
use huifu_ledger::constants::BATCH_EVENTS_MAX;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

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
    Http(HttpArgs),
    /// Event streams under payment load: payments/s through the HTTP API without streams, then
    /// with 1,000 streams on one merchant and 100 on others, and each event's delivery latency.
    Events(EventsArgs),
}

#[derive(Args)]
pub struct EventsArgs {
    /// Payments of each of the two runs (without streams, then with them).
    #[arg(long, default_value_t = 200_000)]
    payments: u64,
    /// Keep-alive connections sending payments.
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// Streams on the first merchant.
    #[arg(long, default_value_t = 1_000)]
    busy_streams: usize,
    /// Other merchants followed, one stream each.
    #[arg(long, default_value_t = 100)]
    other_streams: usize,
    /// Merchants the payments go to (at least one more than --other-streams).
    #[arg(long, default_value_t = 101)]
    merchants: u64,
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// Worker threads of the load generator (the streams' reader has one of its own).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
    /// Over the network instead of the embedded engine: start this many `huifu serve`
    /// processes on loopback (1: a server alone; 3: a cluster replicating every batch to a
    /// majority, fsynced) and send the batches to the leader as JSON over HTTP.
    #[arg(long, value_name = "N", conflicts_with_all = ["data_dir", "no_fsync"])]
    nodes: Option<usize>,
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
        BenchCommand::Http(args) => bench_http(args),
        BenchCommand::Events(args) => bench_events(args),
    }
}

/// The progress bar of a benchmark, on stderr.
struct Bar(ProgressBar);

impl Bar {
    fn new(total: u64) -> Bar {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} {per_sec} ETA {eta}",
            )
            .expect("valid template"),
        );
        Bar(bar)
    }
}

impl huifu_bench::Progress for Bar {
    fn start(&self) {
        self.0.reset_elapsed();
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

fn bench_ledger(args: LedgerArgs) -> anyhow::Result<ExitCode> {
    if let Some(nodes) = args.nodes {
        return bench_ledger_net(args, nodes);
    }
    let options = LedgerOptions {
        accounts: args.accounts,
        transfers: args.transfers,
        batch: args.batch,
        clients: args.clients,
        fsync: !args.no_fsync,
        seed: args.seed,
        memory_transfers_max: args.memory.transfers_max,
    };
    huifu_bench::ledger::check(&options)?;
    let data_dir =
        util::DataDir::new(args.data_dir.clone()).context("cannot create data folder")?;
    let run = huifu_bench::ledger::run(&options, data_dir.path(), &Bar::new(args.transfers))?;
    let transfers_per_second = (args.transfers as f64 / run.seconds).round() as u64;
    let latencies = &run.latencies;

    eprintln!("transfers           {}", args.transfers);
    eprintln!("accounts            {}", args.accounts);
    eprintln!("batch               {} ({} client(s))", args.batch, args.clients);
    eprintln!("durable             {}", !args.no_fsync);
    match args.memory.transfers_max {
        Some(n) => eprintln!("in memory           at most ~{n} transfers, the rest in the store"),
        None => eprintln!("in memory           all transfers"),
    }
    eprintln!("seconds             {:.3}", run.seconds);
    eprintln!("transfers/s         {transfers_per_second}");
    eprintln!(
        "batch latency ms    p50 {:.3}  p99 {:.3}  max {:.3}",
        ms(latencies.value_at_quantile(0.50)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.max())
    );
    eprintln!("rss max             {} MiB", run.rss_bytes_max >> 20);
    eprintln!("disk                {} MiB", run.disk_bytes >> 20);
    eprintln!("lookups             {} of {} sampled transfers found", run.found, run.sampled);
    eprintln!(
        "restart             checkpoint {:.2} s, reopen {:.2} s \
         ({} journal records replayed), {} found again",
        run.checkpoint_seconds, run.restart_seconds, run.records_replayed, run.found_after_restart
    );
    if args.json {
        let json = json!({
            "transfers": args.transfers,
            "accounts": args.accounts,
            "batch": args.batch,
            "clients": args.clients,
            "seconds": run.seconds,
            "transfers_per_second": transfers_per_second,
            "batch_latency_ms_p50": ms(latencies.value_at_quantile(0.50)),
            "batch_latency_ms_p99": ms(latencies.value_at_quantile(0.99)),
            "batch_latency_ms_max": ms(latencies.max()),
            "durable": !args.no_fsync,
            "memory_transfers_max": args.memory.transfers_max,
            "failed": run.failed,
            "rss_bytes_max": run.rss_bytes_max,
            "disk_bytes": run.disk_bytes,
            "checkpoint_seconds": run.checkpoint_seconds,
            "restart_seconds": run.restart_seconds,
        });
        println!("{json}");
    }
    if !run.ok() {
        eprintln!(
            "error: {} transfers failed, {}/{} found, totals {:?}",
            run.failed, run.found, run.sampled, run.totals
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `bench ledger --nodes N`: the servers started for the run, the batches over HTTP.
fn bench_ledger_net(args: LedgerArgs, nodes: usize) -> anyhow::Result<ExitCode> {
    let options = NetLedgerOptions {
        nodes,
        accounts: args.accounts,
        transfers: args.transfers,
        batch: args.batch,
        clients: args.clients,
        seed: args.seed,
    };
    let exe = std::env::current_exe().context("cannot find the huifu executable")?;
    let run = huifu_bench::ledger_net::run(&exe, &options, Arc::new(Bar::new(args.transfers)))?;
    let transfers_per_second = (args.transfers as f64 / run.seconds).round() as u64;
    let latencies = &run.latencies;
    let shape = if nodes == 1 {
        "1 (a server alone)".to_owned()
    } else {
        format!("{nodes} (a cluster: each batch fsynced on a majority before the reply)")
    };
    eprintln!("nodes               {shape}, huifu serve on loopback, JSON over HTTP");
    eprintln!("transfers           {}", args.transfers);
    eprintln!("accounts            {}", args.accounts);
    eprintln!("batch               {} ({} client(s))", args.batch, args.clients);
    eprintln!("seconds             {:.3}", run.seconds);
    eprintln!("transfers/s         {transfers_per_second}");
    eprintln!(
        "batch latency ms    p50 {:.3}  p99 {:.3}  max {:.3}",
        ms(latencies.value_at_quantile(0.50)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.max())
    );
    let seconds = |s: Option<f64>| s.map_or("?".to_owned(), |s| format!("{s:.1}"));
    eprintln!(
        "cpu seconds         client {}  servers {}",
        seconds(run.client_cpu_seconds),
        seconds(run.server_cpu_seconds)
    );
    eprintln!("lookups             {} of {} sampled transfers found", run.found, run.sampled);
    eprintln!("retried batches     {} (503 while the cluster had no leader)", run.retries);
    for (id, applied, digest) in &run.nodes {
        eprintln!("node {id}              applied {applied}  digest {digest}");
    }
    if args.json {
        let json = json!({
            "nodes": nodes,
            "transfers": args.transfers,
            "accounts": args.accounts,
            "batch": args.batch,
            "clients": args.clients,
            "seconds": run.seconds,
            "transfers_per_second": transfers_per_second,
            "batch_latency_ms_p50": ms(latencies.value_at_quantile(0.50)),
            "batch_latency_ms_p99": ms(latencies.value_at_quantile(0.99)),
            "batch_latency_ms_max": ms(latencies.max()),
            "failed": run.failed,
            "retried_batches": run.retries,
            "client_cpu_seconds": run.client_cpu_seconds,
            "server_cpu_seconds": run.server_cpu_seconds,
        });
        println!("{json}");
    }
    if !run.ok() {
        eprintln!(
            "error: {} transfers failed, {}/{} found, nodes {:?}",
            run.failed, run.found, run.sampled, run.nodes
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
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

fn bench_payments(args: PaymentsArgs) -> anyhow::Result<ExitCode> {
    let options = PaymentsOptions {
        payments: args.payments,
        clients: args.clients,
        batch: args.batch,
        users: args.users,
        merchants: args.merchants,
        riders: args.riders,
        fsync: !args.no_fsync,
        seed: args.seed,
        memory_transfers_max: args.memory.transfers_max,
    };
    huifu_bench::payments::funding(&options)?;
    let data_dir =
        util::DataDir::new(args.data_dir.clone()).context("cannot create data folder")?;
    let mut bench = PaymentsBench::open(options, data_dir.path())?;
    eprintln!(
        "setting up {} users, {} merchants, {} riders, {} coupons in {}",
        args.users,
        args.merchants,
        args.riders,
        bench.coupons(),
        data_dir.path().display()
    );
    bench.set_up()?;
    let run = bench.run(&Bar::new(args.payments))?;
    let tally = &run.tally;
    let payments_per_second = (tally.payments as f64 / run.seconds).round() as u64;
    let disk_bytes_per_payment = run.disk_bytes / tally.payments.max(1);
    let (p50, p99, max) = (
        ms(run.latencies.value_at_quantile(0.50)),
        ms(run.latencies.value_at_quantile(0.99)),
        ms(run.latencies.max()),
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
        let json = json!({
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

#[derive(Args)]
pub struct HttpArgs {
    /// Base URL of a running server (default: start `huifu serve` on a temporary folder for the
    /// run, and stop it afterwards). Several, comma-separated (`URL,URL,URL`: a cluster's
    /// nodes): the connections take them in turn, every request carries an idempotency key,
    /// and one that gets no answer or a 503 goes again, unchanged, to the next node.
    #[arg(long)]
    url: Option<String>,
    /// With several URLs: how long a request is sent again before the run fails.
    #[arg(long, default_value_t = 60)]
    retry_seconds: u64,
    /// An admin or platform API key of the server at --url (default: `HUIFU_ADMIN_KEY`).
    #[arg(long)]
    api_key: Option<String>,
    /// Payments to make.
    #[arg(long, default_value_t = 200_000)]
    payments: u64,
    /// Keep-alive connections, each sending its requests back to back.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Payments per request: 1 sends `POST /v1/payments`, more send `POST /v1/batch` (at most
    /// 1,000).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Users, each with a wallet funded over HTTP for its share of the payments.
    #[arg(long, default_value_t = 1_000)]
    users: u64,
    /// Merchants.
    #[arg(long, default_value_t = 100)]
    merchants: u64,
    /// Riders.
    #[arg(long, default_value_t = 200)]
    riders: u64,
    /// Name the currency in every payment (optional in the API; the server then checks it
    /// against the user's wallet).
    #[arg(long)]
    name_currency: bool,
    /// Worker threads of the load generator (the server started for the run has its own).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seed of the random merchants, riders and amounts.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
}

impl HttpArgs {
    fn options(&self) -> HttpOptions {
        HttpOptions {
            payments: self.payments,
            connections: self.connections,
            batch: self.batch,
            users: self.users,
            merchants: self.merchants,
            riders: self.riders,
            name_currency: self.name_currency,
            threads: self.threads,
            seed: self.seed,
            retry_seconds: self.retry_seconds,
        }
    }
}

fn bench_events(args: EventsArgs) -> anyhow::Result<ExitCode> {
    use huifu_bench::events::{platform_keys, Streams};
    anyhow::ensure!(
        args.merchants > args.other_streams as u64,
        "--merchants must be above --other-streams"
    );
    let options = HttpOptions {
        payments: args.payments,
        connections: args.connections,
        batch: 1,
        users: args.users,
        merchants: args.merchants,
        riders: 200,
        name_currency: false,
        threads: args.threads,
        seed: args.seed,
        retry_seconds: 0,
    };
    let exe = std::env::current_exe().context("cannot find the huifu executable")?;
    let server = Spawned::start(&exe)?;
    let urls = [server.url.clone()];
    // Both worlds first: the second's set-up does not run beside the streams.
    let mut quiet = HttpBench::connect(options.clone(), &urls, &server.key)?;
    quiet.set_up()?;
    let mut loud = HttpBench::connect(options, &urls, &server.key)?;
    loud.set_up()?;
    eprintln!("run 1: {} payments, no streams", args.payments);
    let quiet = quiet.run(Some(server.pid()), Arc::new(Bar::new(args.payments)))?;

    let per_key = huifu_server::constants::EVENTS_STREAMS_PER_KEY_MAX;
    let total = args.busy_streams + args.other_streams;
    let keys = platform_keys(&server.url, &server.key, total.div_ceil(per_key))?;
    let merchants = loud.merchants().to_vec();
    let first = merchants[0].clone();
    let mut follows = vec![(first.clone(), args.busy_streams)];
    follows.extend(merchants[1..=args.other_streams].iter().map(|m| (m.clone(), 1)));
    let streams = Streams::open(&server.url, &keys, per_key, &follows, 1)?;
    eprintln!("run 2: {} payments, {total} streams open", args.payments);
    let loud = loud.run(Some(server.pid()), Arc::new(Bar::new(args.payments)))?;
    // The last events are on their way.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let events = streams.events();
    let received = streams.stop()?;
    drop(server);

    let rate = |run: &huifu_bench::http::HttpRun| (run.tally.payments as f64 / run.seconds).round();
    let (rate_quiet, rate_loud) = (rate(&quiet), rate(&loud));
    let l = &received.latencies_us;
    let ms = |us: u64| us as f64 / 1_000.0;
    eprintln!("payments            {} a run, {} connections", args.payments, args.connections);
    eprintln!(
        "streams             {} on {first}, {} on other merchants",
        args.busy_streams, args.other_streams
    );
    eprintln!(
        "payments/s          {rate_quiet} without streams, {rate_loud} with ({:+.1}%)",
        (rate_loud / rate_quiet - 1.0) * 100.0
    );
    eprintln!("errors              {} and {}", quiet.tally.errors(), loud.tally.errors());
    eprintln!("events delivered    {events} over {} streams", received.streams);
    eprintln!(
        "delivery ms         p50 {:.1}  p99 {:.1}  max {:.1} (from the ledger timestamp)",
        ms(l.value_at_quantile(0.50)),
        ms(l.value_at_quantile(0.99)),
        ms(l.max())
    );
    eprintln!(
        "server cpu seconds  {} without streams, {} with",
        seconds_text(quiet.server_cpu_seconds),
        seconds_text(loud.server_cpu_seconds)
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_http(args: HttpArgs) -> anyhow::Result<ExitCode> {
    huifu_bench::http::funding(&args.options())?;
    let mut server = None;
    let (url, key) = match &args.url {
        Some(url) => {
            let key = args
                .api_key
                .clone()
                .or_else(|| std::env::var("HUIFU_ADMIN_KEY").ok())
                .filter(|k| !k.trim().is_empty())
                .context("--url needs --api-key (or HUIFU_ADMIN_KEY)")?;
            (url.clone(), key)
        }
        None => {
            let exe = std::env::current_exe().context("cannot find the huifu executable")?;
            let spawned = Spawned::start(&exe)?;
            let target = (spawned.url.clone(), spawned.key.clone());
            server = Some(spawned);
            target
        }
    };
    let urls: Vec<String> =
        url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect();
    let mut bench = HttpBench::connect(args.options(), &urls, &key)?;
    eprintln!(
        "setting up {} users, {} merchants, {} riders over {} connections to {url}",
        args.users, args.merchants, args.riders, args.connections
    );
    bench.set_up()?;
    let run = bench.run(server.as_ref().map(Spawned::pid), Arc::new(Bar::new(args.payments)))?;
    drop(server);

    let payments_per_second = (run.tally.payments as f64 / run.seconds).round() as u64;
    let requests_per_second = (run.tally.requests as f64 / run.seconds).round() as u64;
    let latencies = &run.tally.latencies;
    let (p50, p99, max) = (
        ms(latencies.value_at_quantile(0.50)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.max()),
    );
    let errors = run.tally.errors();
    let endpoint = if args.batch > 1 { "POST /v1/batch" } else { "POST /v1/payments" };
    let started = if args.url.is_some() { "given" } else { "started for the run" };
    eprintln!("server              {url} ({started})");
    eprintln!("payments            {}", run.tally.payments);
    let named = if args.name_currency { ", currency named" } else { "" };
    eprintln!(
        "requests            {} ({endpoint}, {} per request{named})",
        run.tally.requests, args.batch
    );
    eprintln!("connections         {} ({} client thread(s))", args.connections, args.threads);
    eprintln!("set-up seconds      {:.3}", run.setup_seconds);
    eprintln!("seconds             {:.3}", run.seconds);
    eprintln!("payments/s          {payments_per_second}");
    eprintln!("requests/s          {requests_per_second}");
    eprintln!("latency ms          p50 {p50:.3}  p99 {p99:.3}  max {max:.3}");
    eprintln!(
        "cpu seconds         client {}  server {}",
        seconds_text(run.client_cpu_seconds),
        seconds_text(run.server_cpu_seconds)
    );
    eprintln!(
        "rss max             client {} MiB  server {}",
        run.client_rss_bytes_max >> 20,
        run.server_rss_bytes_max.map_or("-".to_owned(), |b| format!("{} MiB", b >> 20))
    );
    if urls.len() > 1 {
        eprintln!(
            "retries             {} in the set-up, {} in the run (same idempotency keys)",
            run.setup_retries, run.tally.retries
        );
    }
    eprintln!("errors              {errors}");
    for (kind, n) in &run.tally.error_kinds {
        eprintln!("error               {n} {kind}");
    }
    if args.json {
        let json = json!({
            "url": url,
            "server_started": args.url.is_none(),
            "payments": run.tally.payments,
            "requests": run.tally.requests,
            "connections": args.connections,
            "batch": args.batch,
            "threads": args.threads,
            "name_currency": args.name_currency,
            "users": args.users,
            "merchants": args.merchants,
            "riders": args.riders,
            "setup_seconds": run.setup_seconds,
            "seconds": run.seconds,
            "payments_per_second": payments_per_second,
            "requests_per_second": requests_per_second,
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "latency_ms_max": max,
            "errors": errors,
            "error_kinds": run.tally.error_kinds,
            "setup_retries": run.setup_retries,
            "retries": run.tally.retries,
            "client_cpu_seconds": run.client_cpu_seconds,
            "server_cpu_seconds": run.server_cpu_seconds,
            "client_rss_bytes_max": run.client_rss_bytes_max,
            "server_rss_bytes_max": run.server_rss_bytes_max,
        });
        println!("{json}");
    }
    if errors > 0 {
        eprintln!("error: {errors} of {} payments did not succeed", args.payments);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn seconds_text(seconds: Option<f64>) -> String {
    seconds.map_or("-".to_owned(), |s| format!("{s:.2}"))
}
