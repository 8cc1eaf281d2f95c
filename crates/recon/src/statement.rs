//! A bank statement as huifu sees it, whatever the file format: its period and its lines.

use sha2::{Digest, Sha256};

/// A calendar day: days since 1970-01-01 (UTC).
pub type Day = i32;

/// Nanoseconds in a day.
pub const DAY_NS: u64 = 86_400 * 1_000_000_000;

/// Which way money moved on the bank account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Money came in (camt.053 `CRDT`): a top-up or a payment charged through the bank.
    Credit,
    /// Money went out (`DBIT`): a withdrawal or a payout.
    Debit,
}

impl Direction {
    pub fn code(self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }

    pub fn from_code(code: &str) -> Option<Direction> {
        match code {
            "CRDT" => Some(Direction::Credit),
            "DBIT" => Some(Direction::Debit),
            _ => None,
        }
    }
}

/// One booked movement on the statement: an entry, or one transaction of a batch entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Where it is in its file, for messages: the CSV line number, the MT940 `:61:` field's
    /// position, or the entry's position (1-based) among the statement's `Ntry` elements.
    pub number: u32,
    /// 0 for a whole entry; n for the n-th transaction (`TxDtls`) of a batch entry, which is a
    /// line of its own.
    pub detail: u32,
    pub direction: Direction,
    pub amount_minor: u64,
    pub booking_day: Day,
    pub value_day: Day,
    /// The bank's own id of the line (camt.053 `AcctSvcrRef`); may be empty.
    pub bank_reference: String,
    /// The reference huifu gave the bank and the bank echoes (`EndToEndId`): `top_7`, `wdr_9`,
    /// `pay_12`, `po_…`, `stl_3`. Empty when the bank has none.
    pub reference: String,
    /// Further references the line carries (instruction id, remittance reference), tried in
    /// order after `reference` when that one names no ledger movement.
    pub other_references: Vec<String>,
    /// The bank reverses an earlier line (camt `RvslInd`, MT940 `RC`/`RD`): it is matched with
    /// that line, not with the ledger.
    pub reversal: bool,
    /// For an entry booked as a batch total (`Btch/NbOfTxs`, no transaction details): how many
    /// transactions it holds.
    pub batch_count: Option<u32>,
}

impl Line {
    /// A line with no further references, no reversal and no batch count.
    pub fn new(
        number: u32,
        direction: Direction,
        amount_minor: u64,
        booking_day: Day,
        reference: &str,
    ) -> Line {
        Line {
            number,
            detail: 0,
            direction,
            amount_minor,
            booking_day,
            value_day: booking_day,
            bank_reference: String::new(),
            reference: reference.to_owned(),
            other_references: Vec::new(),
            reversal: false,
            batch_count: None,
        }
    }

    /// The amount signed as the balance moves: credits up, debits down.
    pub fn signed_minor(&self) -> i128 {
        match self.direction {
            Direction::Credit => i128::from(self.amount_minor),
            Direction::Debit => -i128::from(self.amount_minor),
        }
    }
}

/// A parsed statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The bank's id of the statement (`Stmt/Id`).
    pub id: String,
    /// The bank account (`Acct/Id/IBAN` or `Acct/Id/Othr/Id`).
    pub account: String,
    /// ISO 4217 numeric code.
    pub currency: u32,
    /// First and last day covered, inclusive.
    pub from_day: Day,
    pub to_day: Day,
    /// Opening and closing booked balances in minor units (credit positive), when given.
    pub opening_minor: Option<i128>,
    pub closing_minor: Option<i128>,
    /// Entries not booked yet (`Sts` other than `BOOK`): counted, not reconciled.
    pub pending_lines: u32,
    pub lines: Vec<Line>,
}

impl Statement {
    /// How far the closing balance is from the opening balance plus the lines, when both
    /// balances are given and they do not agree: a statement that does not add up.
    pub fn balance_difference(&self) -> Option<i128> {
        let (opening, closing) = (self.opening_minor?, self.closing_minor?);
        let moved: i128 = self.lines.iter().map(Line::signed_minor).sum();
        let difference = closing - opening - moved;
        (difference != 0).then_some(difference)
    }
}

/// The SHA-256 of a statement file's bytes: with the statement id, the key that makes imports
/// idempotent.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The numeric code and exponent of an ISO 4217 alphabetic code (the payment domain's list).
pub fn currency(code: &str) -> Option<(u32, u32)> {
    let number = huifu_payments::currency::number(code)?;
    huifu_payments::currency::by_number(number).map(|(_, e)| (number, e))
}

/// The alphabetic code and exponent of a numeric code.
pub fn currency_code(number: u32) -> Option<(&'static str, u32)> {
    huifu_payments::currency::by_number(number)
}

/// Parses a decimal amount (`1234.50`) into minor units with `exponent` decimals. No sign, no
/// exponent notation, no more decimals than the currency has; `None` if it is not such an amount
/// or does not fit.
pub fn parse_amount(text: &str, exponent: u32) -> Option<u64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (text.contains('.') && !digits(fraction)) {
        return None;
    }
    if u32::try_from(fraction.len()).ok()? > exponent {
        return None;
    }
    let scale = 10u64.checked_pow(exponent)?;
    let mut minor = whole.parse::<u64>().ok()?.checked_mul(scale)?;
    if !fraction.is_empty() {
        let pad = 10u64.pow(exponent - u32::try_from(fraction.len()).ok()?);
        minor = minor.checked_add(fraction.parse::<u64>().ok()?.checked_mul(pad)?)?;
    }
    Some(minor)
}

/// Why `text` is not an amount in `code`: more decimals than the currency has, or not a
/// decimal number.
pub fn amount_error(text: &str, code: &str, exponent: u32) -> String {
    let fraction = text.split_once('.').map_or("", |(_, f)| f);
    let numeric = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if numeric && u32::try_from(fraction.len()).unwrap_or(u32::MAX) > exponent {
        return format!("`{text}` has more decimals than {code} has ({exponent})");
    }
    format!("`{text}` is not an amount in {code} ({exponent} decimals)")
}

/// Formats minor units as a decimal amount with `exponent` decimals.
pub fn format_amount(minor: u64, exponent: u32) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(exponent);
    format!("{}.{:0width$}", minor / scale, minor % scale, width = exponent as usize)
}

/// Formats a signed balance.
pub fn format_balance(minor: i128, exponent: u32) -> (String, Direction) {
    let direction = if minor < 0 { Direction::Debit } else { Direction::Credit };
    let abs = u64::try_from(minor.unsigned_abs()).unwrap_or(u64::MAX);
    (format_amount(abs, exponent), direction)
}

/// Parses `YYYY-MM-DD` (a longer ISO 8601 date-time is cut at its date).
pub fn parse_day(text: &str) -> Option<Day> {
    let date = text.get(..10)?;
    let rest = &text[10..];
    if !(rest.is_empty() || rest.starts_with('T')) {
        return None;
    }
    let b = date.as_bytes();
    if b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |s: &str| -> Option<i32> {
        s.bytes().all(|c| c.is_ascii_digit()).then(|| s.parse().ok()).flatten()
    };
    let (y, m, d) = (number(&date[..4])?, number(&date[5..7])?, number(&date[8..])?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// `YYYY-MM-DD` of a day.
pub fn format_day(day: Day) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day (UTC) of a ledger timestamp.
pub fn day_of_ns(timestamp_ns: u64) -> Day {
    i32::try_from(timestamp_ns / DAY_NS).expect("a ledger timestamp is before the year 5.8 million")
}

/// The first nanosecond of a day (0 for days before the epoch).
pub fn ns_of_day(day: Day) -> u64 {
    u64::try_from(day).map_or(0, |d| d.saturating_mul(DAY_NS))
}

fn days_in_month(y: i32, m: i32) -> i32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i32, m: i32, d: i32) -> Day {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: Day) -> (i32, i32, i32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_roundtrip_through_the_calendar() {
        assert_eq!(parse_day("1970-01-01"), Some(0));
        assert_eq!(parse_day("2026-11-26T03:00:00+08:00"), parse_day("2026-11-26"));
        for day in [-1, 0, 59, 365, 11_016, 20_000, 30_000] {
            assert_eq!(parse_day(&format_day(day)), Some(day));
        }
        for bad in ["2026-02-29", "2026-13-01", "2026-1-01", "20261126", "2026-11-26X", ""] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
        assert!(parse_day("2024-02-29").is_some());
    }

    #[test]
    fn amounts_parse_to_minor_units_exactly() {
        assert_eq!(parse_amount("1234.5", 2), Some(123_450));
        assert_eq!(parse_amount("0.01", 2), Some(1));
        assert_eq!(parse_amount("7", 0), Some(7));
        for bad in ["1.234", "-1", "1e3", ".5", "1.", "", "1,00", "99999999999999999999"] {
            assert_eq!(parse_amount(bad, 2), None, "{bad}");
        }
        assert_eq!(parse_amount("1.5", 0), None);
        for minor in [0, 1, 99, 100, 123_456_789] {
            assert_eq!(parse_amount(&format_amount(minor, 2), 2), Some(minor));
        }
    }
}
