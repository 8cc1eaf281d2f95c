//! `huifu simulate` and `huifu audit`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use huifu_bench::measure;
use huifu_engine::Engine;
use huifu_payments::{audit, AuditReport, PaymentsMachine};
use huifu_sim::http::HttpDay;
use huifu_sim::webhooks;
use huifu_sim::{report, Progress, RefusalPlan, SimConfig, SimResult};
use indicatif::{ProgressBar, ProgressStyle};

use crate::interrupt::Interrupt;
use crate::util;

#[derive(Args)]
pub struct SimulateArgs {
    /// Users, each with a wallet.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Merchants (picked with a heavy tail: a few are very busy).
    #[arg(long, default_value_t = 5_000)]
    merchants: u64,
    /// Riders.
    #[arg(long, default_value_t = 10_000)]
    riders: u64,
    /// Payments in the day.
    #[arg(long, default_value_t = 1_000_000)]
    payments: u64,
    #[command(flatten)]
    memory: util::BoundedMemoryArgs,
    /// Seed of everything random in the run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Average payments per second over the day (peaks at lunch and dinner go above it).
    #[arg(long, conflicts_with = "max_rate")]
    rate: Option<u64>,
    /// As fast as the engine goes (the default).
    #[arg(long)]
    max_rate: bool,
    /// Concurrent clients, each sending batches of operations.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Operations per batch.
    #[arg(long, default_value_t = huifu_sim::BATCH_OPS_DEFAULT)]
    batch: usize,
    /// Data folder (default: a temporary folder, removed afterwards).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    json: bool,
    /// Write a self-contained HTML report (summary, charts over the day, operation mix) here.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Drive a running `huifu serve` at this base URL over HTTP instead of an embedded engine;
    /// the closing audit then checks every acknowledged operation on the server. For a
    /// cluster, give every node's URL, separated by commas: a request that fails on one node
    /// is retried on the next with the same idempotency key.
    #[arg(long, value_name = "URL", conflicts_with = "data_dir")]
    server: Option<String>,
    /// An admin or platform API key of the server (default: `HUIFU_ADMIN_KEY`).
    #[arg(long, requires = "server")]
    api_key: Option<String>,
    /// Append one line per operation the server acknowledged to this file (`--server` only).
    #[arg(long, value_name = "FILE", requires = "server")]
    ack_log: Option<PathBuf>,
    /// How long one request is retried (same key, same body) while the server is unreachable
    /// or answers 5xx, before the run gives up.
    #[arg(long, default_value_t = 60, requires = "server")]
    retry_seconds: u64,
    /// Local webhook receivers to start once the merchants exist, one endpoint (every event)
    /// each for the first N merchants: one answers 410 Gone, a tenth answer slowly, a tenth fail
    /// the first attempt of every 20th event. At the end the day waits (at most 120 s) for
    /// delivery to catch up, then checks it: no gap in any sequence, every signature valid,
    /// every acknowledged payment of those merchants delivered. The receivers listen on
    /// 127.0.0.1, so the server must run with `--webhooks-allow-private`.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "server")]
    webhook_receivers: usize,
    /// Orders per million made to be refused for want of funds (a wallet payment of more than
    /// the wallet holds). Users top up their wallets as they run low, so no other order is
    /// refused for want of funds unless the model errs.
    #[arg(long, default_value_t = RefusalPlan::default().insufficient_funds_per_million)]
    refusals_insufficient_funds_per_million: u32,
    /// Orders per million made to be refused because their coupon's minimum order is not met.
    #[arg(long, default_value_t = RefusalPlan::default().coupon_minimum_not_met_per_million)]
    refusals_coupon_minimum_per_million: u32,
    #[command(flatten)]
    recon: crate::reconcile::SimReconArgs,
}

/// How often the progress loop wakes to move the bar.
const PROGRESS_POLL_MS: u64 = 250;
/// Length of one timeline window: the resolution of the report's charts.
const TIMELINE_WINDOW_MS: u64 = 1_000;
/// The window cut short by the end of the day is kept only if at least this long: a shorter
/// one holds too few batches for a meaningful rate or percentile.
const TIMELINE_TAIL_MS_MIN: u64 = 250;
/// When stderr is not a terminal (a run logged to a file), the progress bar draws nothing and
/// a plain progress line is printed this often instead.
const PROGRESS_LINE_SECONDS: u64 = 10;

pub fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    if args.users < args.clients as u64 || args.clients == 0 {
        bail!("--clients must be between 1 and --users");
    }
    if args.users > huifu_sim::USERS_MAX {
        bail!("--users must be at most {}", huifu_sim::USERS_MAX);
    }
    if args.merchants < 4 || args.riders == 0 || args.payments == 0 {
        bail!("need at least 4 merchants, 1 rider and 1 payment");
    }
    if args.batch == 0 || args.batch > huifu_payments::constants::BATCH_OPS_MAX {
        bail!("--batch must be between 1 and {}", huifu_payments::constants::BATCH_OPS_MAX);
    }
    if args.webhook_receivers as u64 > args.merchants {
        bail!("--webhook-receivers must be at most --merchants");
    }
    let config = SimConfig {
        users: args.users,
        merchants: args.merchants,
        riders: args.riders,
        payments: args.payments,
        seed: args.seed,
        rate: args.rate,
        clients: args.clients,
        batch_ops: args.batch,
        refusals: RefusalPlan {
            insufficient_funds_per_million: args.refusals_insufficient_funds_per_million,
            coupon_minimum_not_met_per_million: args.refusals_coupon_minimum_per_million,
        },
        ..SimConfig::default()
    };
    // Before anything is printed: a signal that comes once the user can see the day starting
    // ends it early instead of killing the process.
    let interrupt = Interrupt::install_or_warn();
    if let Some(url) = &args.server {
        return simulate_over_http(&args, url, &config, interrupt);
    }
    let data_dir =
        util::DataDir::new(args.data_dir.clone()).context("cannot create data folder")?;
    let options = args.memory.engine_options(data_dir.path());
    let (engine, _) = Engine::<PaymentsMachine>::open(options)
        .with_context(|| format!("cannot open engine in {}", data_dir.path().display()))?;
    let engine = Arc::new(engine);
    eprintln!(
        "simulating a day of {} payments: {} users, {} merchants, {} riders, {} clients, data in {}",
        args.payments,
        args.users,
        args.merchants,
        args.riders,
        args.clients,
        data_dir.path().display()
    );
    let progress = Progress::default();
    let (result, timeline) =
        watch(&progress, interrupt, args.payments, || huifu_sim::run(&engine, &config, &progress));
    let result = result?;
    let rss_bytes_max = measure::rss_bytes_max();
    let recon = crate::reconcile::after_day(&engine, &args.recon, args.seed)?;
    drop(engine);
    let disk_bytes = measure::disk_bytes(data_dir.path());
    let embedded = Embedded { rss_bytes_max, disk_bytes, recon };
    let stopped_early = progress.stop.load(Ordering::Relaxed);
    summarize(&args, &config, &result, &timeline, stopped_early, Some(embedded), None)
}

/// The day against a running server; its closing check is of every acknowledged operation.
fn simulate_over_http(
    args: &SimulateArgs,
    url: &str,
    config: &SimConfig,
    interrupt: Option<Interrupt>,
) -> anyhow::Result<ExitCode> {
    if args.report.is_some() {
        bail!("--report needs the embedded engine (no --server)");
    }
    let key = util::api_key(args.api_key.as_ref())?;
    let retry = Duration::from_secs(args.retry_seconds);
    let http = HttpDay::open(url, &key, retry, args.ack_log.as_deref(), args.seed, args.clients)?
        .with_webhook_receivers(args.webhook_receivers);
    eprintln!(
        "simulating a day of {} payments: {} users, {} merchants, {} riders, {} clients, against {}",
        args.payments,
        args.users,
        args.merchants,
        args.riders,
        args.clients,
        http.base()
    );
    let progress = Progress::default();
    let (day, timeline) =
        watch(&progress, interrupt, args.payments, || http.run(config, &progress));
    http.flush_acks()?;
    let day = day?;
    eprintln!("checking every acknowledged operation on the server");
    let (result, replayed) = http.check(day)?;
    eprintln!("replayed            {replayed} requests with their keys");
    if args.webhook_receivers > 0 {
        eprintln!("waiting for the webhook deliveries to catch up, then checking them");
    }
    let webhooks = http.check_webhooks()?;
    let stopped_early = progress.stop.load(Ordering::Relaxed);
    summarize(args, config, &result, &timeline, stopped_early, None, webhooks.as_ref())
}

/// What only an embedded run measures: its own memory and disk, and the reconciliation of its
/// banks' statements.
struct Embedded {
    pub rss_bytes_max: u64,
    pub disk_bytes: u64,
    pub recon: crate::reconcile::SimRecon,
}

/// Prints the summary (and the report and JSON when asked); the exit status is the audit's
/// (and the webhook check's, when the day had receivers).
fn summarize(
    args: &SimulateArgs,
    config: &SimConfig,
    result: &SimResult,
    timeline: &[report::Sample],
    stopped_early: bool,
    embedded: Option<Embedded>,
    webhooks: Option<&webhooks::Summary>,
) -> anyhow::Result<ExitCode> {
    let c = &result.counts;
    let l = &result.latency;
    eprintln!();
    if stopped_early {
        eprintln!("stopped early       by a signal, {} payments asked", args.payments);
    }
    eprintln!(
        "payments            {} ({} wallet, {} bank channel)",
        c.payments, c.payments_wallet, c.payments_channel
    );
    eprintln!("captures/releases   {} / {}", c.captures, c.releases);
    eprintln!("refunds             {} ({} full)", c.refunds, c.refunds_full);
    eprintln!("coupons redeemed    {}", c.coupons_redeemed);
    eprintln!("top-ups             {}", c.topups);
    eprintln!("withdrawals         {}", c.withdrawals);
    eprintln!("payouts             {} ({} settlement runs)", c.payouts, c.settlement_runs);
    eprintln!("operations          {}", c.ops);
    // Each reason refused, with how many of its refusals the day planned.
    let reasons: std::collections::BTreeSet<&String> =
        c.rejected.keys().chain(c.refusals_planned.keys()).collect();
    for code in reasons {
        let got = c.rejected.get(code).copied().unwrap_or(0);
        let planned = c.refusals_planned.get(code).copied().unwrap_or(0);
        eprintln!("rejected            {got} {code} ({planned} planned)");
    }
    eprintln!("seconds             {:.2}", result.seconds);
    eprintln!("payments/s          {:.0}", result.payments_per_second());
    eprintln!(
        "batch latency ms    p50 {:.2}  p99 {:.2}  max {:.2}",
        measure::ms(l.value_at_quantile(0.5)),
        measure::ms(l.value_at_quantile(0.99)),
        measure::ms(l.max())
    );
    let (rss_bytes_max, disk_bytes) = embedded
        .as_ref()
        .map_or((measure::rss_bytes_max(), 0), |e| (e.rss_bytes_max, e.disk_bytes));
    let per_payment = disk_bytes / c.payments.max(1);
    eprintln!("rss max             {} MiB", rss_bytes_max >> 20);
    if embedded.is_some() {
        eprintln!("disk                {} MiB ({per_payment} bytes per payment)", disk_bytes >> 20);
    }
    eprintln!(
        "acknowledged        {} {}, {} missing",
        result.acknowledged_checked,
        if embedded.is_some() { "sampled" } else { "checked on the server" },
        result.acknowledged_missing
    );
    if let Some(e) = &embedded {
        e.recon.print();
    }
    let audit_ok = result.audit.ok() && result.acknowledged_missing == 0;
    let recon_ok = embedded.as_ref().is_none_or(|e| e.recon.ok());
    if audit_ok && embedded.is_some() {
        eprintln!(
            "audit               ok ({} accounts, {} transfers, {} payments)",
            result.audit.accounts, result.audit.transfers, result.audit.payments
        );
    } else if audit_ok {
        eprintln!("audit               ok ({} payments on the server)", result.audit.payments);
    } else {
        eprintln!("audit               FAILED");
        for v in &result.audit.violations {
            eprintln!("  {v}");
        }
    }
    if let Some(w) = webhooks {
        eprintln!("{}", w.line());
        for p in &w.problems {
            eprintln!("  {p}");
        }
    }
    // Before the JSON, which stays the last line.
    if let Some(path) = &args.report {
        report::write(
            path,
            &report::Report { config, result, timeline, rss_bytes_max, disk_bytes },
        )?;
        eprintln!("report              {}", path.display());
    }
    if args.json {
        let mut violations = result.audit.violations.clone();
        if result.acknowledged_missing > 0 {
            violations
                .push(format!("{} acknowledged payments missing", result.acknowledged_missing));
        }
        let mut json = serde_json::json!({
            "payments": c.payments,
            "payments_per_second": result.payments_per_second().round() as u64,
            "latency_ms_p50": measure::ms(l.value_at_quantile(0.5)),
            "latency_ms_p99": measure::ms(l.value_at_quantile(0.99)),
            "latency_ms_max": measure::ms(l.max()),
            "refunds": c.refunds,
            "topups": c.topups,
            "withdrawals": c.withdrawals,
            "payouts": c.payouts,
            "settlement_runs": c.settlement_runs,
            "coupons_redeemed": c.coupons_redeemed,
            "operations": c.ops,
            "rejected": c.rejected,
            "refusals_planned": c.refusals_planned,
            "seconds": result.seconds,
            "rss_bytes_max": rss_bytes_max,
            "acknowledged_checked": result.acknowledged_checked,
            "stopped_early": stopped_early,
            "audit": if audit_ok { serde_json::json!("ok") } else { serde_json::json!(violations) },
        });
        if let Some(e) = &embedded {
            json["disk_bytes"] = disk_bytes.into();
            json["disk_bytes_per_payment"] = per_payment.into();
            e.recon.add_to(&mut json);
        } else {
            json["server"] = args.server.clone().into();
        }
        if let Some(w) = webhooks {
            json["webhooks"] = w.to_json();
        }
        println!("{json}");
    }
    let webhooks_ok = webhooks.is_none_or(webhooks::Summary::ok);
    Ok(if audit_ok && recon_ok && webhooks_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs `run` (the simulated day) on its own thread while showing live progress; returns its
/// result and the timeline of the day, one sample per window.
fn watch<R: Send>(
    progress: &Progress,
    interrupt: Option<Interrupt>,
    payments: u64,
    run: impl FnOnce() -> R + Send,
) -> (R, Vec<report::Sample>) {
    let bar = ProgressBar::new(payments);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{wide_bar}] {human_pos}/{human_len} payments  {msg}  ETA {eta}",
        )
        .expect("valid template"),
    );
    let mut timeline: Vec<report::Sample> = Vec::new();
    let plain = !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut line_at = Instant::now();
    let result = std::thread::scope(|scope| {
        let runner = scope.spawn(run);
        // The current window: when it began and the payments done then. Windows start with
        // the day (set-up is not part of the timeline).
        let mut window: Option<(Instant, u64)> = None;
        let mut tail_done = false;
        // One more pass after the runner finished, so that the last window is not lost.
        let mut finished = false;
        while !finished {
            finished = runner.is_finished();
            if !finished {
                std::thread::sleep(Duration::from_millis(PROGRESS_POLL_MS));
            }
            // The end of the day first: once it is set, the payments read after it are final.
            let ended = progress.ended.get().copied();
            if let Some(interrupt) = &interrupt {
                if ended.is_some() {
                    interrupt.arm();
                } else if interrupt.requested() && !progress.stop.swap(true, Ordering::Relaxed) {
                    // `println` would print nothing when the bar is hidden (stderr not a
                    // terminal).
                    bar.suspend(|| {
                        eprintln!(
                            "stopping: the clients finish their batches in flight, then the \
                             summary and the audit follow (again to quit at once)"
                        )
                    });
                }
            }
            let done = progress.payments.load(Ordering::Relaxed);
            bar.set_position(done);
            let Some(&day) = progress.started.get() else { continue };
            let (from, done_before) = *window.get_or_insert((day, 0));
            let to = ended.unwrap_or_else(Instant::now);
            let length = to.saturating_duration_since(from);
            let full = length >= Duration::from_millis(TIMELINE_WINDOW_MS);
            let tail = ended.is_some() && !tail_done;
            if !(full || tail) {
                continue;
            }
            tail_done |= ended.is_some();
            let latency = progress.take_latency();
            if !full && length < Duration::from_millis(TIMELINE_TAIL_MS_MIN) {
                continue;
            }
            let rate = (done - done_before) as f64 / length.as_secs_f64();
            let percentile =
                |q: f64| (!latency.is_empty()).then(|| measure::ms(latency.value_at_quantile(q)));
            let rss = measure::rss_bytes();
            timeline.push(report::Sample {
                seconds: to.duration_since(day).as_secs_f64(),
                payments: done,
                payments_per_second: rate,
                latency_ms_p50: percentile(0.5),
                latency_ms_p99: percentile(0.99),
                rss_bytes: rss,
            });
            let average = done as f64 / to.duration_since(day).as_secs_f64().max(1e-9);
            let message = format!(
                "{rate:.0}/s now, {average:.0}/s average, p99 {:.1} ms",
                percentile(0.99).unwrap_or(0.0)
            );
            if plain && line_at.elapsed() >= Duration::from_secs(PROGRESS_LINE_SECONDS) {
                line_at = Instant::now();
                eprintln!(
                    "{:.0} s: {done}/{payments} payments, {message}, rss {} MiB",
                    to.duration_since(day).as_secs_f64(),
                    rss >> 20
                );
            }
            bar.set_message(message);
            window = Some((to, done));
        }
        runner.join().expect("simulation thread")
    });
    bar.finish_and_clear();
    (result, timeline)
}

#[derive(Args)]
pub struct AuditArgs {
    /// The data folder of a stopped huifu.
    #[arg(long)]
    data_dir: PathBuf,
    #[command(flatten)]
    memory: util::BoundedMemoryArgs,
}

impl AuditArgs {
    /// The audit of `data_dir` with the default memory bound.
    pub fn of(data_dir: PathBuf) -> AuditArgs {
        AuditArgs { data_dir, memory: util::BoundedMemoryArgs::default() }
    }
}

pub fn audit_command(args: AuditArgs) -> anyhow::Result<ExitCode> {
    if !args.data_dir.join("journal").is_dir() {
        bail!("{} holds no huifu data (no journal folder)", args.data_dir.display());
    }
    if huifu_cluster::LogStore::is_node_folder(&args.data_dir) {
        return audit_node(&args.data_dir);
    }
    let (engine, recovery) =
        Engine::<PaymentsMachine>::open(args.memory.engine_options(&args.data_dir))
            .with_context(|| format!("cannot open {}", args.data_dir.display()))?;
    let report = engine.read(audit)?;
    eprintln!(
        "recovered {} journal records after checkpoint {} in {:?}",
        recovery.records_replayed, recovery.checkpoint_seq, recovery.duration
    );
    eprintln!(
        "{} accounts, {} transfers, {} payments",
        report.accounts, report.transfers, report.payments
    );
    verdict(&report)
}

/// `huifu audit` of a stopped cluster node's folder: its newest checkpoint and its whole log.
fn audit_node(dir: &Path) -> anyhow::Result<ExitCode> {
    let replayed = huifu_cluster::offline::open_stopped(dir)
        .with_context(|| format!("cannot open the cluster node folder {}", dir.display()))?;
    let (report, applied, digest) = replayed
        .engine
        .read(|r| (audit(&r.machine), r.applied.map(|id| id.index), r.digest_hex()))?;
    eprintln!(
        "cluster node: checkpoint at index {}, {} log entries applied after it, to index {}",
        replayed.checkpoint.map_or("none".into(), |i| i.to_string()),
        replayed.entries,
        applied.map_or("none".into(), |i| i.to_string()),
    );
    eprintln!("digest at index {}: {digest}", applied.map_or("none".into(), |i| i.to_string()));
    eprintln!(
        "{} accounts, {} transfers, {} payments",
        report.accounts, report.transfers, report.payments
    );
    verdict(&report)
}

fn verdict(report: &AuditReport) -> anyhow::Result<ExitCode> {
    if report.ok() {
        println!("audit ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for v in &report.violations {
            println!("violation: {v}");
        }
        Ok(ExitCode::FAILURE)
    }
}
