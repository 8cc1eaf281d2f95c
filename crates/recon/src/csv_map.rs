//! CSV statements in a bank's or a clearing house's own layout, described by a layout file
//! (TOML): which column holds what, how dates are written, how a credit is told from a debit.
//! Examples are in docs/csv-layouts/.
//!
//! ```toml
//! delimiter = ","              # one character ("\t" for tab); "," by default
//! skip_rows = 4                # lines before the header (a title, the account, the period)
//! header = true                # a row of column names follows (true by default)
//! skip_prefixes = ["#"]        # rows whose first field starts so are skipped (footers)
//! encoding = "UTF-8"           # the only one read: convert a GBK export first
//! date_format = "%Y-%m-%d %H:%M:%S"   # chrono's format; a date or a date and time
//! thousands_separator = ","    # taken out of amounts (none by default)
//! account = "2088123456789012" # the account, fixed here or [columns] account
//! currency = "CNY"             # the currency, fixed here or [columns] currency
//!
//! [columns]                    # a header name, or a number counting from 1
//! booking_date = "入账时间"
//! amount = "金额"              # one signed column (a minus is a debit) ...
//! # credit_amount = "收入"     # ... or a column of credits and one of debits (signs ignored) ...
//! # debit_amount = "支出"
//! # direction = "借贷标志"      # ... or an unsigned amount and a column saying which
//! reference = "商户订单号"      # the end-to-end reference (huifu's id, a merchant order)
//! other_reference = "交易号"    # tried after it
//! bank_reference = "账务流水号"
//! description = "备注"          # tried too when it is one ASCII word
//!
//! [direction]                  # the values of the direction column
//! credit = ["贷", "C"]
//! debit = ["借", "D"]
//! ```
//!
//! A file is one statement: its period is its booking days, its id `<first day>..<last day>`
//! (so a corrected file of the same days is refused as a conflict). Errors name the line and
//! the column.

use serde::Deserialize;

use crate::constants::{
    CSV_LAYOUT_BYTES_MAX, CSV_LAYOUT_SKIP_ROWS_MAX, STATEMENT_LINES_MAX, TEXT_LEN_MAX,
};
use crate::error::ImportError;
use crate::statement::{currency, format_day, parse_amount, parse_day, Day, Direction, Line};
use crate::Statement;

/// A layout file, parsed and checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    #[serde(default = "comma")]
    delimiter: String,
    #[serde(default)]
    skip_rows: u32,
    #[serde(default = "yes")]
    header: bool,
    #[serde(default)]
    skip_prefixes: Vec<String>,
    #[serde(default = "utf8")]
    encoding: String,
    date_format: String,
    #[serde(default)]
    thousands_separator: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    columns: Columns,
    #[serde(default)]
    direction: Option<Values>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Columns {
    booking_date: Column,
    #[serde(default)]
    value_date: Option<Column>,
    #[serde(default)]
    amount: Option<Column>,
    #[serde(default)]
    credit_amount: Option<Column>,
    #[serde(default)]
    debit_amount: Option<Column>,
    #[serde(default)]
    direction: Option<Column>,
    #[serde(default)]
    account: Option<Column>,
    #[serde(default)]
    currency: Option<Column>,
    #[serde(default)]
    reference: Option<Column>,
    #[serde(default)]
    other_reference: Option<Column>,
    #[serde(default)]
    bank_reference: Option<Column>,
    #[serde(default)]
    description: Option<Column>,
}

/// A column by its header name or its number (from 1).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Column {
    Number(u32),
    Name(String),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Values {
    credit: Vec<String>,
    debit: Vec<String>,
}

fn comma() -> String {
    ",".to_owned()
}

fn yes() -> bool {
    true
}

fn utf8() -> String {
    "UTF-8".to_owned()
}

impl Layout {
    /// Reads and checks a layout file. Errors are `the layout: …`.
    pub fn parse(text: &str) -> Result<Layout, ImportError> {
        let bad = |message: String| ImportError::invalid("the layout", message);
        if text.len() > CSV_LAYOUT_BYTES_MAX {
            return Err(bad(format!("longer than {CSV_LAYOUT_BYTES_MAX} bytes")));
        }
        let layout: Layout = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if layout.delimiter.len() != 1 || layout.delimiter == "\"" {
            return Err(bad("delimiter must be one ASCII character other than `\"`".into()));
        }
        if !matches!(layout.encoding.to_ascii_lowercase().as_str(), "utf-8" | "utf8") {
            return Err(bad(format!(
                "encoding `{}`: only UTF-8 is read (convert the file first, e.g. `iconv -f \
                 GBK -t UTF-8`)",
                layout.encoding
            )));
        }
        if layout.skip_rows > CSV_LAYOUT_SKIP_ROWS_MAX {
            return Err(bad(format!("skip_rows is at most {CSV_LAYOUT_SKIP_ROWS_MAX}")));
        }
        let c = &layout.columns;
        match (&c.amount, &c.credit_amount, &c.debit_amount) {
            (Some(_), None, None) => {}
            (None, Some(_), Some(_)) if c.direction.is_none() => {}
            _ => {
                return Err(bad("give columns.amount (with columns.direction or signed), or \
                     columns.credit_amount and columns.debit_amount"
                    .into()))
            }
        }
        if c.direction.is_some() != layout.direction.is_some() {
            return Err(bad("columns.direction and [direction] go together".into()));
        }
        if let Some(v) = &layout.direction {
            if v.credit.is_empty()
                || v.debit.is_empty()
                || v.credit.iter().any(|c| v.debit.contains(c))
            {
                return Err(bad("[direction] needs credit and debit values, none in both".into()));
            }
        }
        if layout.account.is_some() == c.account.is_some() {
            return Err(
                bad("give the account either fixed (account) or as columns.account".into()),
            );
        }
        if layout.currency.is_some() == c.currency.is_some() {
            return Err(bad(
                "give the currency either fixed (currency) or as columns.currency".into()
            ));
        }
        if let Some(code) = &layout.currency {
            currency(code).ok_or_else(|| bad(format!("unknown currency `{code}`")))?;
        }
        for (name, column) in layout.all_columns() {
            match column {
                Column::Number(0) => {
                    return Err(bad(format!("columns.{name}: columns count from 1")))
                }
                Column::Name(n) if !layout.header => {
                    return Err(bad(format!(
                        "columns.{name} = `{n}`: without a header, columns are numbers"
                    )))
                }
                _ => {}
            }
        }
        Ok(layout)
    }

    fn all_columns(&self) -> Vec<(&'static str, &Column)> {
        let c = &self.columns;
        let all = [
            ("booking_date", Some(&c.booking_date)),
            ("value_date", c.value_date.as_ref()),
            ("amount", c.amount.as_ref()),
            ("credit_amount", c.credit_amount.as_ref()),
            ("debit_amount", c.debit_amount.as_ref()),
            ("direction", c.direction.as_ref()),
            ("account", c.account.as_ref()),
            ("currency", c.currency.as_ref()),
            ("reference", c.reference.as_ref()),
            ("other_reference", c.other_reference.as_ref()),
            ("bank_reference", c.bank_reference.as_ref()),
            ("description", c.description.as_ref()),
        ];
        all.into_iter().filter_map(|(n, c)| c.map(|c| (n, c))).collect()
    }
}

/// Where a column is and what to call it in messages.
#[derive(Clone, Debug, Default)]
struct At {
    index: usize,
    name: String,
}

/// Reads a statement in `layout` from a CSV file.
pub fn parse(layout: &Layout, bytes: &[u8]) -> Result<Statement, ImportError> {
    let mut bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // Skipped lines are lines, not records: titles often hold stray quotes.
    let mut skipped = 0u64;
    while skipped < u64::from(layout.skip_rows) && !bytes.is_empty() {
        let end = bytes.iter().position(|&b| b == b'\n').map_or(bytes.len(), |p| p + 1);
        bytes = &bytes[end..];
        skipped += 1;
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter.as_bytes()[0])
        .from_reader(bytes);
    let mut columns: Option<Vec<(&'static str, At)>> = None;
    if !layout.header {
        columns = Some(resolve(layout, None, 0)?);
    }
    let mut record = csv::StringRecord::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut account: Option<String> = layout.account.clone();
    let mut code: Option<String> = layout.currency.clone();
    loop {
        let line = reader.position().line() + skipped;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line() + skipped);
                let message = match e.kind() {
                    csv::ErrorKind::Utf8 { .. } => "not UTF-8 (the layout's encoding)".to_owned(),
                    _ => e.to_string(),
                };
                return Err(ImportError::invalid(format!("line {line}"), message));
            }
        }
        let line = record.position().map_or(line, |p| p.line() + skipped);
        let Some(cols) = &columns else {
            columns = Some(resolve(layout, Some(&record), line)?);
            continue;
        };
        let first = record.get(0).unwrap_or_default().trim();
        if record.iter().all(|f| f.trim().is_empty())
            || layout.skip_prefixes.iter().any(|p| !p.is_empty() && first.starts_with(p.as_str()))
        {
            continue;
        }
        let place = |a: &At| format!("line {line}, column {}", a.name);
        let get = |name: &str| -> Result<Option<(&str, &At)>, ImportError> {
            let Some((_, a)) = cols.iter().find(|(n, _)| *n == name) else { return Ok(None) };
            let v = record.get(a.index).ok_or_else(|| {
                ImportError::invalid(
                    place(a),
                    format!("missing: the row has {} fields", record.len()),
                )
            })?;
            Ok(Some((v.trim(), a)))
        };
        let same = |slot: &mut Option<String>, name: &str| -> Result<(), ImportError> {
            let Some((v, a)) = get(name)? else { return Ok(()) };
            match slot {
                None if v.is_empty() => Err(ImportError::invalid(place(a), "empty")),
                None => {
                    *slot = Some(v.to_owned());
                    Ok(())
                }
                Some(first) if first != v => Err(ImportError::invalid(
                    place(a),
                    format!(
                        "`{v}` differs from the first row's `{first}` (a file is one statement)"
                    ),
                )),
                Some(_) => Ok(()),
            }
        };
        if layout.columns.account.is_some() {
            same(&mut account, "account")?;
        }
        if layout.columns.currency.is_some() {
            same(&mut code, "currency")?;
        }
        let code_now = code.clone().expect("fixed or read");
        let (_, exponent) = currency(&code_now).ok_or_else(|| {
            let a = get("currency").ok().flatten().map(|(_, a)| place(a));
            ImportError::invalid(
                a.unwrap_or_else(|| format!("line {line}")),
                format!("unknown currency `{code_now}`"),
            )
        })?;
        let day = |name: &str| -> Result<Option<Day>, ImportError> {
            let Some((v, a)) = get(name)? else { return Ok(None) };
            parse_date(v, &layout.date_format).map(Some).ok_or_else(|| {
                ImportError::invalid(
                    place(a),
                    format!("`{v}` is not a date in the layout's format `{}`", layout.date_format),
                )
            })
        };
        let booking_day = day("booking_date")?.expect("required");
        let value_day = day("value_date")?.unwrap_or(booking_day);
        let amount = |v: &str, a: &At, signed: bool| -> Result<(bool, u64), ImportError> {
            let mut text = v.to_owned();
            if let Some(t) = layout.thousands_separator.as_deref().filter(|t| !t.is_empty()) {
                text = text.replace(t, "");
            }
            let (negative, digits) = match text.strip_prefix('-') {
                Some(rest) if signed => (true, rest.to_owned()),
                _ => (false, text.strip_prefix('+').unwrap_or(&text).to_owned()),
            };
            let minor = parse_amount(&digits, exponent).ok_or_else(|| {
                ImportError::invalid(
                    place(a),
                    crate::statement::amount_error(&digits, &code_now, exponent),
                )
            })?;
            Ok((negative, minor))
        };
        let (direction, amount_minor) = if let Some((v, a)) = get("amount")? {
            match get("direction")? {
                Some((d, da)) => {
                    let values = layout.direction.as_ref().expect("checked with the layout");
                    let direction = if values.credit.iter().any(|c| c == d) {
                        Direction::Credit
                    } else if values.debit.iter().any(|c| c == d) {
                        Direction::Debit
                    } else {
                        return Err(ImportError::invalid(
                            place(da),
                            format!(
                                "`{d}` is none of the layout's credit ({}) or debit ({}) values",
                                values.credit.join(", "),
                                values.debit.join(", ")
                            ),
                        ));
                    };
                    (direction, amount(v, a, false)?.1)
                }
                None => {
                    let (negative, minor) = amount(v, a, true)?;
                    (if negative { Direction::Debit } else { Direction::Credit }, minor)
                }
            }
        } else {
            let (c, ca) = get("credit_amount")?.expect("checked with the layout");
            let (d, dcol) = get("debit_amount")?.expect("checked with the layout");
            // The column says which way: a sign in it (Alipay writes debits `-35.50`) is read
            // past.
            let credit = if c.is_empty() { 0 } else { amount(c, ca, true)?.1 };
            let debit = if d.is_empty() { 0 } else { amount(d, dcol, true)?.1 };
            match (credit, debit) {
                (0, 0) => {
                    return Err(ImportError::invalid(
                        place(ca),
                        format!("no amount in {} or {}", ca.name, dcol.name),
                    ))
                }
                (m, 0) => (Direction::Credit, m),
                (0, m) => (Direction::Debit, m),
                _ => {
                    return Err(ImportError::invalid(
                        place(ca),
                        format!("an amount in both {} and {}", ca.name, dcol.name),
                    ))
                }
            }
        };
        let text = |name: &str| -> Result<String, ImportError> {
            let Some((v, a)) = get(name)? else { return Ok(String::new()) };
            if v.len() > TEXT_LEN_MAX {
                return Err(ImportError::invalid(
                    place(a),
                    format!("longer than {TEXT_LEN_MAX} bytes"),
                ));
            }
            Ok(v.to_owned())
        };
        if lines.len() >= STATEMENT_LINES_MAX {
            return Err(ImportError::TooManyLines { max: STATEMENT_LINES_MAX });
        }
        let mut l = Line::new(
            u32::try_from(line).unwrap_or(u32::MAX),
            direction,
            amount_minor,
            booking_day,
            "",
        );
        l.value_day = value_day;
        l.bank_reference = text("bank_reference")?;
        let description = get("description")?.map(|(v, _)| v).unwrap_or_default();
        // Only a word in ASCII: huifu's ids are, a bank's summary (`银联清算`) is not one.
        let description = if !description.is_empty()
            && description.len() <= TEXT_LEN_MAX
            && description.bytes().all(|b| b.is_ascii_graphic())
        {
            description.to_owned()
        } else {
            String::new()
        };
        for r in [text("reference")?, text("other_reference")?, description] {
            if r.is_empty() || l.reference == r || l.other_references.contains(&r) {
                continue;
            }
            if l.reference.is_empty() {
                l.reference = r;
            } else {
                l.other_references.push(r);
            }
        }
        lines.push(l);
    }
    if columns.is_none() {
        return Err(ImportError::invalid(format!("line {}", skipped + 1), "no header row"));
    }
    let (Some(from_day), Some(to_day)) =
        (lines.iter().map(|l| l.booking_day).min(), lines.iter().map(|l| l.booking_day).max())
    else {
        return Err(ImportError::invalid(format!("line {}", skipped + 2), "no rows"));
    };
    let account = account.expect("fixed or read with the first row");
    if account.is_empty() || account.len() > TEXT_LEN_MAX {
        return Err(ImportError::invalid(
            "the layout",
            format!("the account must be 1 to {TEXT_LEN_MAX} bytes"),
        ));
    }
    let code = code.expect("fixed or read with the first row");
    let (number, _) = currency(&code).expect("checked on every row");
    Ok(Statement {
        id: format!("{}..{}", format_day(from_day), format_day(to_day)),
        account,
        currency: number,
        from_day,
        to_day,
        opening_minor: None,
        closing_minor: None,
        pending_lines: 0,
        lines,
    })
}

/// The layout's columns, found in the header row (`None`: the layout numbers them).
fn resolve(
    layout: &Layout,
    header: Option<&csv::StringRecord>,
    line: u64,
) -> Result<Vec<(&'static str, At)>, ImportError> {
    let mut out = Vec::new();
    for (name, column) in layout.all_columns() {
        let at = match (column, header) {
            (Column::Number(n), h) => {
                let index = usize::try_from(*n).unwrap_or(usize::MAX).saturating_sub(1);
                let title = h.and_then(|h| h.get(index)).map(str::trim).filter(|t| !t.is_empty());
                At { index, name: title.map_or(format!("{n}"), |t| format!("{n} ({t})")) }
            }
            (Column::Name(wanted), Some(h)) => {
                let index = h.iter().position(|t| t.trim() == wanted.trim()).ok_or_else(|| {
                    ImportError::invalid(
                        format!("line {line}"),
                        format!("no column `{wanted}` (columns.{name}) in the header"),
                    )
                })?;
                At { index, name: wanted.clone() }
            }
            (Column::Name(_), None) => unreachable!("checked with the layout"),
        };
        out.push((name, at));
    }
    Ok(out)
}

/// A date, or a date and time (its day), in chrono's `format`.
fn parse_date(text: &str, format: &str) -> Option<Day> {
    let date = chrono::NaiveDateTime::parse_from_str(text, format)
        .map(|t| t.date())
        .or_else(|_| chrono::NaiveDate::parse_from_str(text, format))
        .ok()?;
    parse_day(&date.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(extra: &str) -> Result<Layout, ImportError> {
        Layout::parse(&format!(
            "date_format = \"%Y%m%d\"\naccount = \"A\"\ncurrency = \"CNY\"\n{extra}"
        ))
    }

    #[test]
    fn layouts_say_what_is_wrong_with_them() {
        assert!(layout("[columns]\nbooking_date = 1\namount = 2\n").is_ok());
        for (extra, expected) in [
            ("[columns]\nbooking_date = 1\n", "give columns.amount"),
            ("[columns]\nbooking_date = 1\namount = 2\ndirection = 3\n", "go together"),
            ("[columns]\nbooking_date = 1\ncredit_amount = 2\n", "give columns.amount"),
            ("[columns]\nbooking_date = 0\namount = 2\n", "count from 1"),
            ("header = false\n[columns]\nbooking_date = \"d\"\namount = 2\n", "are numbers"),
            ("encoding = \"GBK\"\n[columns]\nbooking_date = 1\namount = 2\n", "only UTF-8"),
            ("delimiter = \";;\"\n[columns]\nbooking_date = 1\namount = 2\n", "delimiter"),
            ("[columns]\nbooking_date = 1\namount = 2\naccount = 3\n", "either fixed"),
            ("[columns]\nbooking_date = 1\namount = 2\nwhat = 3\n", "unknown field"),
        ] {
            let e = layout(extra).unwrap_err().to_string();
            assert!(e.starts_with("the layout: ") && e.contains(expected), "{extra}: {e}");
        }
    }

    #[test]
    fn dates_in_the_layouts_format() {
        assert_eq!(parse_date("20261126", "%Y%m%d"), parse_day("2026-11-26"));
        assert_eq!(parse_date("2026-11-26 23:59:01", "%Y-%m-%d %H:%M:%S"), parse_day("2026-11-26"));
        assert_eq!(parse_date("2026/11/26", "%Y-%m-%d"), None);
        assert_eq!(parse_date("20261131", "%Y%m%d"), None);
    }
}
