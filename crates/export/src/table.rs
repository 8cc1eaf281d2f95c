//! The tables of an export and their columns: the one place the schema is written down. The
//! Parquet schema, the CSV header and the documentation (`docs/export.md`, checked by a test)
//! all come from `Table::columns`.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};

use crate::constants::DECIMAL_PRECISION;

/// The tables, one file each (`payments.parquet`, `refunds.csv`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Payments,
    Refunds,
    Payouts,
    TopupsWithdrawals,
    Transfers,
}

/// How a column is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text; CSV: as is.
    Text,
    /// Signed 64-bit integer (`Int64`, Parquet `INT64`); CSV: decimal digits.
    Int,
    /// An instant, to the microsecond, in UTC (`Timestamp(Microsecond, "UTC")`, Parquet `INT64
    /// TIMESTAMP(MICROS, true)`, which every reader takes as a timestamp); CSV: RFC 3339 in UTC
    /// with all nine digits of the nanoseconds. The exact nanoseconds are in the `_ns` column
    /// beside it.
    Time,
    /// An integer of up to 38 digits (`Decimal128(38, 0)`, Parquet `FIXED_LEN_BYTE_ARRAY
    /// DECIMAL(38, 0)`); CSV: decimal digits.
    Decimal,
}

impl ColumnType {
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Int => DataType::Int64,
            ColumnType::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Decimal => DataType::Decimal128(DECIMAL_PRECISION, 0),
        }
    }

    /// As written in the documentation.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Text => "string",
            ColumnType::Int => "int64",
            ColumnType::Time => "timestamp[us, UTC]",
            ColumnType::Decimal => "decimal(38,0)",
        }
    }
}

/// One column: its name, how it is stored, whether it can be empty (null; an empty field in
/// CSV), and what it means.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn col(name: &'static str, kind: ColumnType, doc: &'static str) -> Column {
    Column { name, kind, nullable: false, doc }
}

const fn opt(name: &'static str, kind: ColumnType, doc: &'static str) -> Column {
    Column { name, kind, nullable: true, doc }
}

use ColumnType::{Decimal, Int, Text, Time};

const PAYMENTS: &[Column] = &[
    col("id", Text, "The payment (`pay_…`, as in the HTTP API)."),
    col("created_at", Time, "When it was made: its first ledger transfer's timestamp."),
    col("created_at_ns", Int, "The same, in nanoseconds since the Unix epoch (exact)."),
    col(
        "status",
        Text,
        "authorized, succeeded, released or expired, at the end of the journal (not at --to).",
    ),
    col("method", Text, "wallet, or bank_channel (authorised at a bank, then captured)."),
    col("currency", Text, "ISO 4217 code (CNY), or the numeric code when not a known one."),
    col("amount", Int, "What the user paid, minor units: food + delivery − discount."),
    col("food_amount", Int, "The order's food amount, minor units."),
    col("delivery_fee", Int, "The delivery fee, minor units; all of it goes to the rider."),
    col("discount", Int, "The coupon's discount, minor units, paid from its campaign budget."),
    col("commission", Int, "The platform's commission, minor units."),
    col("merchant_amount", Int, "Credited to the merchant, minor units: food − commission."),
    col("amount_refunded", Int, "Refunded so far, minor units (at the end of the journal)."),
    col("user", Text, "The paying user (`usr_…`)."),
    col("merchant", Text, "The merchant (`mer_…`)."),
    col("rider", Text, "The rider (`rdr_…`)."),
    opt("coupon", Text, "The coupon redeemed (`cpn_…`), if any."),
    opt("campaign", Text, "The coupon's campaign (`cmp_…`), if any."),
    opt("channel", Text, "The bank channel (`chn_…`) of a bank-channel payment."),
];

const REFUNDS: &[Column] = &[
    col("id", Text, "The refund (`ref_…`)."),
    col("created_at", Time, "When it was made: its first ledger transfer's timestamp."),
    col("created_at_ns", Int, "The same, in nanoseconds since the Unix epoch (exact)."),
    col("payment", Text, "The payment refunded (`pay_…`)."),
    col("currency", Text, "ISO 4217 code."),
    col("amount", Int, "Returned to the user's wallet, minor units (net of the coupon's share)."),
    col("merchant_amount", Int, "Taken back from the merchant, minor units."),
    col("delivery_fee", Int, "Taken back from the rider, minor units."),
    col("commission", Int, "Given back by the platform, minor units."),
    col("discount", Int, "Returned from the wallet to the coupon's campaign budget, minor units."),
    col("user", Text, "The user refunded (`usr_…`)."),
    col("merchant", Text, "The payment's merchant (`mer_…`)."),
];

const PAYOUTS: &[Column] = &[
    col("id", Text, "The payout (`po_…`: its ledger transfer id in hex, as in the HTTP API)."),
    col("created_at", Time, "When it was sent: its pending ledger transfer's timestamp."),
    col("created_at_ns", Int, "The same, in nanoseconds since the Unix epoch (exact)."),
    col(
        "status",
        Text,
        "pending (sent, not yet answered), paid or failed (money back to the merchant), \
         at the end of the journal.",
    ),
    col("merchant", Text, "The merchant paid (`mer_…`)."),
    col("channel", Text, "The bank channel it goes through (`chn_…`)."),
    col("currency", Text, "ISO 4217 code."),
    col("amount", Int, "Minor units."),
    opt("settlement_run", Text, "The settlement run (`stl_…`) that made it; empty if instant."),
];

const TOPUPS_WITHDRAWALS: &[Column] = &[
    col("id", Text, "The top-up (`top_…`) or withdrawal (`wdr_…`)."),
    col("kind", Text, "topup (bank → wallet) or withdrawal (wallet → bank)."),
    col("created_at", Time, "When it was asked: its pending ledger transfer's timestamp."),
    col("created_at_ns", Int, "The same, in nanoseconds since the Unix epoch (exact)."),
    col(
        "status",
        Text,
        "pending, succeeded, failed (the bank said no) or expired (no answer in time), \
         at the end of the journal.",
    ),
    col("user", Text, "The user (`usr_…`)."),
    col("channel", Text, "The bank channel (`chn_…`)."),
    col("currency", Text, "ISO 4217 code."),
    col("amount", Int, "Minor units."),
];

const TRANSFERS: &[Column] = &[
    col(
        "id",
        Text,
        "The ledger transfer id (a u128, in decimal, as the ledger endpoints give it).",
    ),
    col("timestamp", Time, "When the ledger applied it (unique, increasing)."),
    col("timestamp_ns", Int, "The same, in nanoseconds since the Unix epoch (exact, unique)."),
    col("debit_account_id", Text, "The debited account (u128, decimal)."),
    opt("debit_account_kind", Text, "Its kind in the chart of accounts (wallet, merchant, ...)."),
    opt("debit_account_owner", Text, "Whose it is (`usr_…`, `mer_…`, ...); empty: the platform's."),
    col("credit_account_id", Text, "The credited account (u128, decimal)."),
    opt("credit_account_kind", Text, "Its kind in the chart of accounts."),
    opt("credit_account_owner", Text, "Whose it is; empty for the platform's accounts."),
    col(
        "amount",
        Decimal,
        "Minor units. For a post, the amount posted; for a void, the amount released.",
    ),
    col("currency", Text, "ISO 4217 code of the transfer's ledger."),
    col("ledger", Int, "The ledger: the ISO 4217 numeric code."),
    col("code", Int, "Why the money moved (the chart of accounts' reason code)."),
    opt("reason", Text, "The reason's name (merchant_share, refund, payout, ...)."),
    col("flags", Text, "The transfer's flags, comma-separated (`pending,linked`); may be empty."),
    opt("pending_id", Text, "For a post or void: the pending transfer it resolves (decimal)."),
    opt(
        "pending_status",
        Text,
        "For a pending transfer: pending, posted, voided or expired, at the end of the journal.",
    ),
    col("timeout_s", Int, "Seconds after which a pending transfer expires; 0 for never."),
    opt(
        "operation",
        Text,
        "The payment-domain object it belongs to (`pay_…`, `ref_…`, `top_…`, `wdr_…`, `po_…`, \
         `cmp_…`); empty for transfers made through the operators' ledger endpoints.",
    ),
    col("user_data_128", Text, "Free field (u128, decimal)."),
    col(
        "user_data_64",
        Text,
        "Free field (u64, decimal); the operation's id for domain transfers.",
    ),
    col("user_data_32", Int, "Free field (u32); the operation's kind for domain transfers."),
];

impl Table {
    pub const ALL: [Table; 5] = [
        Table::Payments,
        Table::Refunds,
        Table::Payouts,
        Table::TopupsWithdrawals,
        Table::Transfers,
    ];

    /// The file name without extension.
    pub fn name(self) -> &'static str {
        match self {
            Table::Payments => "payments",
            Table::Refunds => "refunds",
            Table::Payouts => "payouts",
            Table::TopupsWithdrawals => "topups_withdrawals",
            Table::Transfers => "transfers",
        }
    }

    /// What one row is, and which rows a range selects.
    pub fn doc(self) -> &'static str {
        match self {
            Table::Payments => "One row per payment made in the range, oldest first.",
            Table::Refunds => "One row per refund made in the range, oldest first.",
            Table::Payouts => {
                "One row per merchant payout (instant or from a settlement run) sent in the \
                 range, oldest first."
            }
            Table::TopupsWithdrawals => {
                "One row per top-up or withdrawal asked in the range, oldest first."
            }
            Table::Transfers => {
                "One row per ledger transfer applied in the range, in ledger order: every \
                 movement of money, also those of operators."
            }
        }
    }

    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Payments => PAYMENTS,
            Table::Refunds => REFUNDS,
            Table::Payouts => PAYOUTS,
            Table::TopupsWithdrawals => TOPUPS_WITHDRAWALS,
            Table::Transfers => TRANSFERS,
        }
    }

    pub fn schema(self) -> Arc<Schema> {
        let fields: Vec<Field> = self
            .columns()
            .iter()
            .map(|c| Field::new(c.name, c.kind.data_type(), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// The tables and their columns as Markdown, for `docs/export.md`.
pub fn markdown() -> String {
    let sections: Vec<String> = Table::ALL
        .iter()
        .map(|table| {
            let mut out = format!("### {}\n\n{}\n\n", table.name(), table.doc());
            out.push_str("| column | type | null | meaning |\n|---|---|---|---|\n");
            for c in table.columns() {
                let null = if c.nullable { "yes" } else { "" };
                out.push_str(&format!(
                    "| `{}` | {} | {null} | {} |\n",
                    c.name,
                    c.kind.name(),
                    c.doc
                ));
            }
            out
        })
        .collect();
    sections.join("\n")
}

/// One value of a row, in column order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
    Int(i64),
    /// Nanoseconds since the Unix epoch.
    Time(u64),
    Decimal(u128),
}

impl Cell {
    /// A text cell, or null for `None`.
    pub fn text_or_null(text: Option<String>) -> Cell {
        text.map_or(Cell::Null, Cell::Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_are_unique_and_times_have_their_nanoseconds_beside_them() {
        for table in Table::ALL {
            let columns = table.columns();
            for (i, c) in columns.iter().enumerate() {
                assert!(columns[..i].iter().all(|d| d.name != c.name), "{}", c.name);
                if c.kind == ColumnType::Time {
                    let ns = &columns[i + 1];
                    assert_eq!((ns.name, ns.kind), (&*format!("{}_ns", c.name), ColumnType::Int));
                }
            }
        }
    }

    /// The documentation of the export holds the tables exactly as the code defines them, so it
    /// cannot drift from the schema.
    #[test]
    fn the_documentation_lists_every_column() {
        let doc = include_str!("../../../docs/export.md");
        let expected = markdown();
        assert!(
            doc.contains(&expected),
            "docs/export.md is out of date; its tables should read:\n\n{expected}"
        );
    }
}
