//! `huifu reconcile`, and the simulated bank's end-of-day reconciliation of `huifu simulate`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use huifu_engine::Engine;
use huifu_payments::PaymentsMachine;
use huifu_recon::constants::{DATE_WINDOW_DAYS_DEFAULT, DATE_WINDOW_DAYS_MAX, STATEMENT_BYTES_MAX};
use huifu_recon::generate::{generate, score, BankConfig};
use huifu_recon::statement::{currency_code, day_of_ns, format_amount, format_day};
use huifu_recon::{channel_entries, run, Format, MatchConfig, Report, Store};

#[derive(Args)]
pub struct ReconcileArgs {
    /// The bank channel: `chn_1` or `1`. A statement goes to the channel whose bank account it
    /// names; a file of one statement of an account no channel has goes to this one.
    #[arg(long)]
    channel: Option<String>,
    /// The bank's statement file (camt.053/.054/.052, MT940, CSV); it may hold statements of
    /// several accounts.
    #[arg(long, value_name = "FILE", required_unless_present = "bank_account")]
    statement: Option<PathBuf>,
    /// Record this IBAN or other account id as `--channel`'s bank account (statements of it
    /// are routed there), then reconcile `--statement` if given.
    #[arg(long, value_name = "ACCOUNT", requires = "channel")]
    bank_account: Option<String>,
    /// `camt053`, `mt940` or `csv` (default: from the file's extension, else its content).
    #[arg(long)]
    format: Option<String>,
    /// Read the CSV statement in the layout this file describes (TOML: delimiter, rows to
    /// skip, which column holds what; see docs/csv-layouts/) instead of huifu's own.
    #[arg(long, value_name = "FILE.toml", requires = "statement")]
    csv_layout: Option<PathBuf>,
    /// The data folder of a stopped huifu.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// Write the exceptions here, as CSV.
    #[arg(long, value_name = "FILE.csv")]
    exceptions: Option<PathBuf>,
    /// How many days a booking date and the ledger's date may differ and still match.
    #[arg(long, default_value_t = DATE_WINDOW_DAYS_DEFAULT)]
    date_window_days: u32,
    /// Record that the exception with this key (see the exception list) is resolved; needs
    /// `--by` and `--reason`.
    #[arg(long, value_name = "KEY", requires_all = ["by", "reason"])]
    resolve: Option<String>,
    /// Who resolves it.
    #[arg(long)]
    by: Option<String>,
    /// Why.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    memory: crate::util::BoundedMemoryArgs,
}

/// Parses `chn_7` or `7`.
fn channel_id(text: &str) -> anyhow::Result<u64> {
    let digits = text.strip_prefix("chn_").unwrap_or(text);
    match digits.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => bail!("`{text}` is not a channel (like chn_1)"),
    }
}

fn format_of(given: Option<&str>, path: &Path, bytes: &[u8]) -> anyhow::Result<Format> {
    if let Some(name) = given {
        return Format::from_name(name)
            .with_context(|| format!("unknown format `{name}` (camt053, mt940 or csv)"));
    }
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("xml") => Format::Camt053,
        Some("csv") => Format::Csv,
        Some("sta" | "mt940" | "940") => Format::Mt940,
        _ => Format::sniff(bytes),
    })
}

/// How much of a statement file is read to tell its format from its content: a byte-order mark,
/// white space and the first character are enough.
const SNIFF_BYTES_MAX: u64 = 4 * 1024;

/// The first `SNIFF_BYTES_MAX` bytes of the file at `path`.
fn file_start(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut start = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(SNIFF_BYTES_MAX).read_to_end(&mut start))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(start)
}

pub fn reconcile_command(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    let channel = args.channel.as_deref().map(channel_id).transpose()?;
    if args.date_window_days > DATE_WINDOW_DAYS_MAX {
        bail!("--date-window-days is at most {DATE_WINDOW_DAYS_MAX}");
    }
    let config = MatchConfig { date_window_days: args.date_window_days };
    if !args.data_dir.join("journal").is_dir() {
        bail!("{} holds no huifu data (no journal folder)", args.data_dir.display());
    }
    let store = Store::new(&args.data_dir);
    let (engine, _) = Engine::<PaymentsMachine>::open(args.memory.engine_options(&args.data_dir))
        .with_context(|| format!("cannot open {}", args.data_dir.display()))?;
    if let (Some(account), Some(channel)) = (&args.bank_account, channel) {
        if engine.read(move |m| m.channel_currency(channel))?.is_none() {
            bail!("there is no channel chn_{channel}");
        }
        store.set_account(channel, account)?;
        eprintln!("chn_{channel}'s bank account is {account}");
    }
    let Some(path) = &args.statement else { return Ok(ExitCode::SUCCESS) };
    let size =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
    if size > STATEMENT_BYTES_MAX as u64 {
        bail!("{} is {size} bytes, more than the {STATEMENT_BYTES_MAX} allowed", path.display());
    }
    let layout = match &args.csv_layout {
        None => None,
        Some(layout) => {
            if args.format.as_deref().is_some_and(|f| f != "csv") {
                bail!("--csv-layout reads a CSV statement: --format csv, or none");
            }
            let text = std::fs::read_to_string(layout)
                .with_context(|| format!("cannot read {}", layout.display()))?;
            Some(text)
        }
    };
    let format = match layout {
        Some(_) => Format::CsvLayout,
        None => format_of(args.format.as_deref(), path, &file_start(path)?)?,
    };
    // Channel currencies, read once for the channels the file may go to.
    let mut currencies = HashMap::new();
    for c in store.accounts()?.into_values().chain(channel) {
        if let Some(currency) = engine.read(move |m| m.channel_currency(c))? {
            currencies.insert(c, currency);
        }
    }
    if let Some(c) = channel {
        if !currencies.contains_key(&c) {
            bail!("there is no channel chn_{c}");
        }
    }
    let currency_of = |c| currencies.get(&c).copied();
    // A CSV file in a layout of its own is parsed whole; any other is read as a stream.
    let imported = match &layout {
        Some(layout) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            store.import_csv_layout(layout, &bytes, channel, currency_of)
        }
        None => store.import_path(format, path, channel, currency_of),
    }
    .with_context(|| format!("{} refused", path.display()))?;
    for u in &imported.unrouted {
        eprintln!(
            "statement {} (account {}): no channel has this bank account; not imported \
             (record it with --channel and --bank-account)",
            u.id, u.account
        );
    }
    for (channel, stored, new) in &imported.stored {
        let s = &stored.statement;
        eprintln!(
            "statement {} of chn_{channel} ({}, {} lines, {} to {}){}",
            s.id,
            format.name(),
            s.lines.len(),
            format_day(s.from_day),
            format_day(s.to_day),
            if *new { "" } else { ": imported before, unchanged" }
        );
        let (channel, currency) = (*channel, currencies[channel]);
        let all = store.statements_reusing(channel, vec![stored.clone()])?;
        let statements =
            run::context(all, &stored.key, &config).expect("the statement just imported is stored");
        let (from, to) = run::ledger_range(&statements[0], &config);
        let entries = engine.read(move |m| channel_entries(m, currency, channel, from, to))?;
        let mut result =
            run::run(statements.clone(), &entries, &store.resolutions(channel)?, &config);
        if let Some(key) = &args.resolve {
            if result.report.exceptions.iter().any(|e| e.key == *key) {
                let by = args.by.as_deref().unwrap_or_default();
                let reason = args.reason.as_deref().unwrap_or_default();
                store.resolve(channel, key, by, reason)?;
                eprintln!("resolved {key} (by {by}: {reason})");
                result = run::run(statements, &entries, &store.resolutions(channel)?, &config);
            } else if imported.stored.len() == 1 {
                bail!("`{key}` is not an exception of this statement's run");
            }
        }
        let exponent = currency_code(currency).map_or(0, |(_, e)| e);
        print_summary(&result.report, exponent);
        if let Some(path) = &args.exceptions {
            let path = if imported.stored.len() == 1 {
                path.clone()
            } else {
                path.with_file_name(format!(
                    "chn_{channel}-{}",
                    path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
                ))
            };
            std::fs::write(&path, huifu_recon::report::exceptions_csv(&result.report, exponent))
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("exceptions          {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(report: &Report, exponent: u32) {
    println!(
        "{:<18} {:>8} {:>16} {:>8} {:>16}",
        "state", "lines", "bank amount", "entries", "ledger amount"
    );
    for (state, t) in &report.tallies {
        let amount =
            |minor: u128| format_amount(u64::try_from(minor).unwrap_or(u64::MAX), exponent);
        println!(
            "{:<18} {:>8} {:>16} {:>8} {:>16}",
            state.name(),
            t.lines,
            amount(t.lines_minor),
            t.entries,
            amount(t.entries_minor)
        );
    }
    println!("matched late       {}", report.matched_late);
    if report.pending_lines > 0 {
        println!("pending (not booked) {}", report.pending_lines);
    }
    if let Some(d) = report.balance_difference_minor {
        let (amount, direction) = huifu_recon::statement::format_balance(d, exponent);
        println!(
            "BALANCE MISMATCH   the closing balance is {amount} {} off the opening balance plus the lines",
            direction.code()
        );
    }
    println!("exceptions         {} ({} open)", report.exceptions.len(), report.open_exceptions());
}

/// The discrepancy rate of the simulated bank's statements.
#[derive(Args)]
pub struct SimReconArgs {
    /// Statement lines the simulated bank gets wrong (missing, duplicated, amount changed,
    /// booked a day late, or a line unknown to the ledger), per million.
    #[arg(long, default_value_t = 10_000)]
    recon_discrepancies_per_million: u32,
    /// Skip the end-of-day reconciliation (a day of more than about 1.5 M payments makes a
    /// channel's one-day statement larger than the import limit of 64 MiB).
    #[arg(long)]
    no_reconcile: bool,
}

/// What the end-of-day reconciliation of a simulated day found.
#[derive(Debug, Default)]
pub struct SimRecon {
    /// Not run (`--no-reconcile`).
    pub skipped: bool,
    pub statements: u64,
    pub lines: u64,
    pub injected: u64,
    pub found: u64,
    pub false_alarms: u64,
    pub problems: Vec<String>,
    /// Generating, writing, importing and reconciling the statements.
    pub seconds: f64,
}

impl SimRecon {
    pub fn ok(&self) -> bool {
        self.found == self.injected && self.false_alarms == 0
    }

    pub fn print(&self) {
        if self.skipped {
            eprintln!("reconciliation      skipped (--no-reconcile)");
            return;
        }
        eprintln!(
            "reconciliation      {} ({} statements, {} lines: {} discrepancies injected, {} found, {} false alarms; {:.2} s)",
            if self.ok() { "ok" } else { "FAILED" },
            self.statements,
            self.lines,
            self.injected,
            self.found,
            self.false_alarms,
            self.seconds
        );
        for p in &self.problems {
            eprintln!("  {p}");
        }
    }

    /// Adds the counts to the summary's JSON object.
    pub fn add_to(&self, json: &mut serde_json::Value) {
        if self.skipped {
            json["recon"] = "skipped".into();
            return;
        }
        json["recon_injected"] = self.injected.into();
        json["recon_found"] = self.found.into();
        json["recon_false_alarms"] = self.false_alarms.into();
    }
}

/// The simulated banks send each channel's statement of the day (one camt.053 file with a
/// statement per odd channel, routed by bank account; CSV for the others), with discrepancies; huifu imports and reconciles each, and the
/// result is scored against what the banks injected. The statements go to a temporary store,
/// not the data folder, so the run's disk figures stay the engine's.
pub fn after_day(
    engine: &Engine<PaymentsMachine>,
    args: &SimReconArgs,
    seed: u64,
) -> anyhow::Result<SimRecon> {
    if args.no_reconcile {
        return Ok(SimRecon { skipped: true, ..SimRecon::default() });
    }
    let started = std::time::Instant::now();
    let config = MatchConfig::default();
    let scratch = tempfile::Builder::new()
        .prefix("huifu-statements-")
        .tempdir()
        .context("cannot make a folder for the simulated statements")?;
    let store = Store::new(scratch.path());
    let currency = huifu_sim::CURRENCY;
    let mut out = SimRecon::default();
    // Each channel's statement of the day, with what its bank injected.
    let mut days = Vec::new();
    for channel in 1..=huifu_sim::CHANNELS {
        let entries = engine.read(move |m| channel_entries(m, currency, channel, 0, u64::MAX))?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else { continue };
        let (from_day, to_day) = (first.day, last.day + 1);
        let created = format!("{}T23:59:59Z", format_day(day_of_ns(last.timestamp_ns)));
        let bank = BankConfig {
            statement_id: format!("SIM-CHN{channel}-{}", format_day(from_day)),
            account: format!("SIM-CLEARING-{channel}"),
            currency,
            from_day,
            to_day,
            opening_minor: 0,
            discrepancies_per_million: args.recon_discrepancies_per_million,
            seed: seed ^ channel.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let g = generate(&entries, &bank);
        store.set_account(channel, &bank.account)?;
        days.push((channel, entries, g, created));
    }
    // The odd channels' bank sends one camt.053 file with a statement per account, routed by
    // account; the others send CSV, a file per channel.
    let camt: Vec<&(u64, Vec<_>, _, String)> = days.iter().filter(|d| d.0 % 2 == 1).collect();
    let mut keys = HashMap::new();
    if let Some(created) = camt.first().map(|d| d.3.clone()) {
        let statements: Vec<_> = camt.iter().map(|d| d.2.statement.clone()).collect();
        let file = huifu_recon::camt053::write_all(&statements, &created);
        let imported =
            store.import_file(Format::Camt053, file.as_bytes(), None, |_| Some(currency)).context(
                "the simulated camt.053 file was refused (a day this large needs --no-reconcile)",
            )?;
        if !imported.unrouted.is_empty() {
            bail!("simulated statements not routed: {:?}", imported.unrouted);
        }
        for (channel, stored, _) in imported.stored {
            keys.insert(channel, stored.key);
        }
    }
    for (channel, _, g, _) in days.iter().filter(|d| d.0 % 2 == 0) {
        let file = huifu_recon::csv_layout::write(&g.statement);
        let (stored, _) =
            store.import(*channel, currency, Format::Csv, file.as_bytes()).with_context(|| {
                format!(
                    "the simulated statement of chn_{channel} was refused (a day this large \
                     needs --no-reconcile)"
                )
            })?;
        keys.insert(*channel, stored.key);
    }
    for (channel, entries, g, _) in &days {
        let channel = *channel;
        let key = keys.get(&channel).context("a simulated statement was not stored")?;
        let statements =
            run::context(store.statements(channel)?, key, &config).expect("just stored");
        let result = run::run(statements, entries, &HashMap::new(), &config);
        let s = score(&result.statements, entries, &result.items, &g.injected);
        out.statements += 1;
        out.lines += g.statement.lines.len() as u64;
        out.injected += s.injected as u64;
        out.found += s.found as u64;
        out.false_alarms += s.false_alarms as u64;
        if let Some(d) = result.report.balance_difference_minor {
            out.problems.push(format!("chn_{channel}: the statement is {d} off its balances"));
            out.false_alarms += 1;
        }
        for missed in s.missed.iter().take(5) {
            out.problems.push(format!("chn_{channel}: not found: {missed:?}"));
        }
        for alarm in s.alarms.iter().take(5) {
            out.problems.push(format!("chn_{channel}: false alarm: {alarm:?}"));
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
