//! `huifu export`: the finance tables of a time range of a stopped data folder.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use huifu_engine::{Clock, Engine};
use huifu_export::{export, ExportOptions, Format, TimeRange};
use huifu_payments::PaymentsMachine;

#[derive(Args)]
pub struct ExportArgs {
    /// The data folder of a stopped huifu.
    #[arg(long)]
    data_dir: PathBuf,
    /// Start of the range, included: RFC 3339 (2026-01-31T00:00:00+08:00) or nanoseconds since
    /// the Unix epoch. Default: the beginning.
    #[arg(long)]
    from: Option<String>,
    /// End of the range, excluded, in the same forms. Default: the end.
    #[arg(long)]
    to: Option<String>,
    /// parquet or csv.
    #[arg(long, default_value = "parquet")]
    format: String,
    /// The folder for the files (payments, refunds, payouts, topups_withdrawals, transfers).
    #[arg(long)]
    out: PathBuf,
    /// Replace the files of an earlier export in that folder.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    memory: crate::util::BoundedMemoryArgs,
}

/// A clock that stands still before any ledger timestamp: recovery then expires nothing that
/// was not already due when the folder stopped, so the export sees the folder as it was left.
struct Stopped;

impl Clock for Stopped {
    fn now_ns(&self) -> u64 {
        0
    }
}

pub fn export_command(args: ExportArgs) -> anyhow::Result<ExitCode> {
    // Every argument is checked before the folder is opened.
    let range = TimeRange::parse(args.from.as_deref(), args.to.as_deref())?;
    let format: Format = args.format.parse()?;
    if !args.data_dir.join("journal").is_dir() {
        bail!("{} holds no huifu data (no journal folder)", args.data_dir.display());
    }
    let (engine, recovery) = Engine::<PaymentsMachine>::open_with_clock(
        args.memory.engine_options(&args.data_dir),
        Stopped,
    )
    .with_context(|| format!("cannot open {}", args.data_dir.display()))?;
    eprintln!(
        "recovered {} journal records after checkpoint {} in {:?}",
        recovery.records_replayed, recovery.checkpoint_seq, recovery.duration
    );
    let options = ExportOptions { range, format, out_dir: args.out, overwrite: args.force };
    let written = engine.read(move |m| export(m, &options))??;
    for w in &written {
        println!("{:<20} {:>10} rows  {}", w.table.name(), w.rows, w.path.display());
    }
    Ok(ExitCode::SUCCESS)
}
