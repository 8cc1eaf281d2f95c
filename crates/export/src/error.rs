//! The one error type of the export.

use std::path::PathBuf;

/// Why an export could not be made. Bad arguments are reported before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(
        "`{0}` is not a time: give RFC 3339 (2026-01-31T08:00:00Z, 2026-01-31T16:00:00+08:00) \
         or nanoseconds since the Unix epoch"
    )]
    InvalidTime(String),
    #[error("`{0}` is before the Unix epoch or after the ledger's last timestamp (2^63 − 1 ns)")]
    TimeOutOfRange(String),
    #[error("--from ({from}) is after --to ({to})")]
    FromAfterTo { from: String, to: String },
    #[error("--from and --to are both {0}: the range [from, to) is empty")]
    EmptyRange(String),
    #[error("unknown format `{0}`: use parquet or csv")]
    UnknownFormat(String),
    #[error("{0} already exists (pass --force to replace it)")]
    Exists(PathBuf),
    #[error(
        "ledger transfer {transfer}: amount {amount} does not fit the Decimal128(38, 0) column"
    )]
    AmountTooLarge { transfer: u128, amount: u128 },
    /// The I/O error is part of the message, not a separate cause, so it is printed once.
    #[error("cannot {what} {path}: {cause}")]
    Io { what: &'static str, path: PathBuf, cause: std::io::Error },
    #[error("cannot write {path}: {cause}")]
    Parquet { path: PathBuf, cause: parquet::errors::ParquetError },
    #[error("cannot write {path}: {cause}")]
    Csv { path: PathBuf, cause: csv::Error },
    #[error("cannot build a batch of {table}: {cause}")]
    Arrow { table: &'static str, cause: arrow_schema::ArrowError },
}
