//! Every limit of the export, in one place.

/// Rows per Arrow record batch, and so per Parquet row group at most: the column builders hold
/// this many rows (about 300 bytes each for the widest table, ~20 MiB) before they are written.
/// Larger groups compress a little better; smaller ones bound memory more tightly.
pub const BATCH_ROWS_MAX: usize = 65_536;

/// Digits of the Parquet/Arrow decimal that holds ledger amounts (`Decimal128(38, 0)`, the
/// widest decimal every reader supports). Amounts of 10^38 or more (u128 goes to about
/// 3.4 × 10^38) can only be made through the operators' ledger endpoints; they do not fit and
/// stop the export with an error rather than being written wrong.
pub const DECIMAL_PRECISION: u8 = 38;

/// The largest amount `Decimal128(DECIMAL_PRECISION, 0)` holds: 10^38 − 1.
pub const DECIMAL_MAX: u128 = 10u128.pow(DECIMAL_PRECISION as u32) - 1;

const _: () = assert!(BATCH_ROWS_MAX > 0);
const _: () = assert!(DECIMAL_MAX <= i128::MAX as u128);
