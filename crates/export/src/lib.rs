//! Finance exports of huifu: the payments, refunds, payouts, top-ups, withdrawals and ledger
//! transfers of a time range, as Parquet (for DuckDB, pandas, Spark) or CSV.
//!
//! It reads a recovered `PaymentsMachine` and writes files; it knows neither the engine nor the
//! command line. The tables and their columns are defined once, in `table.rs`, which the
//! writers and `docs/export.md` follow.
//!
//! ```
//! use huifu_export::{export, ExportOptions, Format, TimeRange};
//! use huifu_payments::{Op, PaymentsMachine};
//!
//! let mut m = PaymentsMachine::new();
//! let now = 1_700_000_000_000_000_000;
//! for op in [
//!     Op::CreateChannel { id: 1, currency: 156 },
//!     Op::CreateUser { id: 10, currency: 156 },
//!     Op::TopUp { id: 40, user: 10, channel: 1, amount: 10_000, timeout_s: 0 },
//! ] {
//!     m.apply(now, &op).unwrap();
//! }
//! let out = tempfile::tempdir().unwrap();
//! let options = ExportOptions {
//!     range: TimeRange::parse(Some("2023-11-14T00:00:00Z"), Some("2023-11-15T00:00:00Z"))?,
//!     format: Format::Csv,
//!     out_dir: out.path().to_path_buf(),
//!     overwrite: false,
//! };
//! let written = export(&m, &options)?;
//! let topups = std::fs::read_to_string(out.path().join("topups_withdrawals.csv")).unwrap();
//! assert!(topups.lines().nth(1).unwrap().starts_with("top_40,topup,2023-11-14T22:13:20"));
//! # Ok::<(), huifu_export::ExportError>(())
//! ```

pub mod constants;
mod error;
mod rows;
mod table;
mod time;
mod write;

pub use error::ExportError;
pub use rows::{currency_code, payout_id, prefixed, rows, Row};
pub use table::{markdown, Cell, Column, ColumnType, Table};
pub use time::{parse_time, rfc3339, TimeRange};
pub use write::{export, write_csv, write_parquet, ExportOptions, Format, Written};
