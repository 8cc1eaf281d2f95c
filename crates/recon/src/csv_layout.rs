//! huifu's CSV layout for bank statements, for banks that do not send camt.053.
//!
//! One header line, then one record per statement line, comma-separated, UTF-8, quoted as RFC
//! 4180:
//!
//! ```text
//! statement_id,account,currency,from_date,to_date,booking_date,value_date,direction,amount,bank_reference,reference
//! 2026-11-26-CHN1,CHN1-CLEARING,CNY,2026-11-26,2026-11-26,2026-11-26,2026-11-26,CRDT,120.50,B000001,top_17
//! ```
//!
//! The first five columns describe the statement and are the same on every record. `direction`
//! is `CRDT` (money in) or `DBIT` (money out); `amount` is a positive decimal with at most the
//! currency's decimals; dates are `YYYY-MM-DD`; `bank_reference` and `reference` may be empty.
//! A statement without movements is one record whose last six columns are empty.

use crate::constants::{STATEMENT_LINES_MAX, TEXT_LEN_MAX};
use crate::error::ImportError;
use crate::statement::{
    currency, currency_code, format_amount, format_day, parse_amount, parse_day, Direction, Line,
    Statement,
};

/// The header line, column by column.
pub const COLUMNS: [&str; 11] = [
    "statement_id",
    "account",
    "currency",
    "from_date",
    "to_date",
    "booking_date",
    "value_date",
    "direction",
    "amount",
    "bank_reference",
    "reference",
];

/// Parses a statement in the CSV layout.
pub fn parse(bytes: &[u8]) -> Result<Statement, ImportError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(bytes);
    let mut statement: Option<(Statement, u32)> = None;
    let mut header_seen = false;
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line() + 1;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                let message = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8".to_owned(),
                    _ => e.to_string(),
                };
                return Err(ImportError::invalid(format!("line {line}"), message));
            }
        }
        // The record's own first line (a quoted field can span lines).
        let line = record.position().map_or(line, |p| p.line());
        let at = |column: Option<&str>| match column {
            Some(c) => format!("line {line}, column {c}"),
            None => format!("line {line}"),
        };
        if !header_seen {
            header_seen = true;
            if record.iter().map(str::trim).ne(COLUMNS) {
                return Err(ImportError::invalid(
                    at(None),
                    format!("the header must be `{}`", COLUMNS.join(",")),
                ));
            }
            continue;
        }
        if record.len() != COLUMNS.len() {
            return Err(ImportError::invalid(
                at(None),
                format!("{} columns, not {}", record.len(), COLUMNS.len()),
            ));
        }
        let field = |i: usize| record[i].trim();
        let text = |i: usize| -> Result<String, ImportError> {
            let v = field(i);
            if v.len() > TEXT_LEN_MAX {
                return Err(ImportError::invalid(
                    at(Some(COLUMNS[i])),
                    format!("longer than {TEXT_LEN_MAX} bytes"),
                ));
            }
            Ok(v.to_owned())
        };
        let day = |i: usize| {
            parse_day(field(i)).filter(|_| field(i).len() == 10).ok_or_else(|| {
                ImportError::invalid(
                    at(Some(COLUMNS[i])),
                    format!("`{}` is not a date (YYYY-MM-DD)", field(i)),
                )
            })
        };
        let (s, exponent) = match &mut statement {
            None => {
                let id = text(0)?;
                let account = text(1)?;
                for (i, v) in [(0, &id), (1, &account)] {
                    if v.is_empty() {
                        return Err(ImportError::invalid(at(Some(COLUMNS[i])), "empty"));
                    }
                }
                let (number, exponent) = currency(field(2)).ok_or_else(|| {
                    ImportError::invalid(
                        at(Some(COLUMNS[2])),
                        format!("unknown currency `{}`", field(2)),
                    )
                })?;
                let (from_day, to_day) = (day(3)?, day(4)?);
                if to_day < from_day {
                    return Err(ImportError::invalid(
                        at(Some(COLUMNS[4])),
                        "the period ends before it starts",
                    ));
                }
                let s = Statement {
                    id,
                    account,
                    currency: number,
                    from_day,
                    to_day,
                    opening_minor: None,
                    closing_minor: None,
                    pending_lines: 0,
                    lines: Vec::new(),
                };
                let (s, exponent) = statement.insert((s, exponent));
                (&mut *s, *exponent)
            }
            Some((s, exponent)) => {
                let (code, _) = currency_code(s.currency).expect("known");
                let same = [
                    (0, s.id.clone()),
                    (1, s.account.clone()),
                    (2, code.to_owned()),
                    (3, format_day(s.from_day)),
                    (4, format_day(s.to_day)),
                ];
                for (i, v) in same {
                    if field(i) != v {
                        return Err(ImportError::invalid(
                            at(Some(COLUMNS[i])),
                            format!("`{}` differs from the first record's `{v}`", field(i)),
                        ));
                    }
                }
                (s, *exponent)
            }
        };
        if (5..COLUMNS.len()).all(|i| field(i).is_empty()) {
            continue;
        }
        if s.lines.len() >= STATEMENT_LINES_MAX {
            return Err(ImportError::TooManyLines { max: STATEMENT_LINES_MAX });
        }
        let booking_day = day(5)?;
        if booking_day < s.from_day || booking_day > s.to_day {
            return Err(ImportError::invalid(
                at(Some(COLUMNS[5])),
                "booked outside the statement period",
            ));
        }
        let value_day = day(6)?;
        let direction = Direction::from_code(field(7)).ok_or_else(|| {
            ImportError::invalid(
                at(Some(COLUMNS[7])),
                format!("`{}` is neither CRDT nor DBIT", field(7)),
            )
        })?;
        let amount_minor = parse_amount(field(8), exponent).ok_or_else(|| {
            ImportError::invalid(
                at(Some(COLUMNS[8])),
                format!("`{}` is not an amount with at most {exponent} decimals", field(8)),
            )
        })?;
        s.lines.push(Line {
            number: u32::try_from(line).unwrap_or(u32::MAX),
            direction,
            amount_minor,
            booking_day,
            value_day,
            bank_reference: text(9)?,
            reference: text(10)?,
            detail: 0,
            other_references: Vec::new(),
            reversal: false,
            batch_count: None,
        });
    }
    match statement {
        Some((s, _)) => Ok(s),
        None if header_seen => Err(ImportError::invalid("line 2", "no records after the header")),
        None => Err(ImportError::invalid("line 1", "empty file")),
    }
}

/// Writes a statement in the CSV layout.
pub fn write(s: &Statement) -> String {
    let (code, exponent) = currency_code(s.currency).expect("a known currency");
    let mut w =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record(COLUMNS).expect("in memory");
    let head = [
        s.id.clone(),
        s.account.clone(),
        code.to_owned(),
        format_day(s.from_day),
        format_day(s.to_day),
    ];
    if s.lines.is_empty() {
        let mut record = head.to_vec();
        record.extend(std::iter::repeat_n(String::new(), 6));
        w.write_record(&record).expect("in memory");
    }
    for l in &s.lines {
        let mut record = head.to_vec();
        record.extend([
            format_day(l.booking_day),
            format_day(l.value_day),
            l.direction.code().to_owned(),
            format_amount(l.amount_minor, exponent),
            l.bank_reference.clone(),
            l.reference.clone(),
        ]);
        w.write_record(&record).expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8 in, UTF-8 out")
}
