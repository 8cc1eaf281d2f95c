//! `huifu`: the one binary. Glue over the library crates: it parses the command line and calls
//! the engine, the benchmarks and the simulator.

mod backup;
mod bench;
mod check_acks;
mod export;
mod interrupt;
mod reconcile;
mod serve;
mod simulate;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "huifu", version, about = "A real-time payment engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a day of food-delivery payments on the embedded engine (or against a running
    /// server with --server), then audit it. Ctrl-C ends the day early, with its summary and
    /// audit; a second Ctrl-C quits at once.
    Simulate(simulate::SimulateArgs),
    /// Serve the HTTP/JSON API on the embedded engine.
    Serve(serve::ServeArgs),
    /// Check every invariant of a stopped data folder.
    Audit(simulate::AuditArgs),
    /// Check an ack log of `simulate --server` against the running server: every acknowledged
    /// operation present with its amount and status, nothing applied twice.
    CheckAcks(check_acks::CheckAcksArgs),
    /// Write the payments, refunds, payouts and ledger transfers of a time range as Parquet or CSV.
    Export(export::ExportArgs),
    /// Copy a running or stopped node's data folder to a new folder that `audit` accepts and
    /// `serve` starts from (restore: stop the node, move the copy into place).
    Backup(backup::BackupArgs),
    /// Import a bank statement and reconcile it with a stopped data folder's ledger.
    Reconcile(reconcile::ReconcileArgs),
    /// Measure the engine under load.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    util::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Simulate(args) => simulate::simulate(args),
        Command::Serve(args) => serve::serve(args),
        Command::Audit(args) => simulate::audit_command(args),
        Command::CheckAcks(args) => check_acks::check_acks(args),
        Command::Export(args) => export::export_command(args),
        Command::Reconcile(args) => reconcile::reconcile_command(args),
        Command::Backup(args) => backup::backup_command(args),
        Command::Bench(command) => bench::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {:#}", util::name_full_folder(error, None));
            std::process::ExitCode::FAILURE
        }
    }
}
