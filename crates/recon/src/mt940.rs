//! SWIFT MT940 (customer statement message), read as a stream, line by line.
//!
//! A file holds one message or several, each a statement: in SWIFT blocks
//! (`{1:…}{2:…}{3:…}{4:` … `-}{5:…}`), or the text block alone, messages then parted by a line
//! `-` or simply by the next `:20:`. Lines of a bank's own header before a message (`ABNANL2A`,
//! `940`, `:940:`) are skipped. Read, of each message:
//!
//! - `:20:` the reference, `:25:` the account (routes the statement as camt's `Acct` does; an
//!   IBAN followed by its currency, as ING writes it, is read as the IBAN), `:28C:` (or `:28:`)
//!   the statement number `nnnnn[/nnnnn]`. The statement id is `<:20:>/<:28C:>/<closing date
//!   YYMMDD>`: banks number statements from 0 every year, or not at all (`00000`).
//! - `:60F:`/`:60M:` and `:62F:`/`:62M:`, the opening and closing balances (`C`/`D`, `YYMMDD`,
//!   currency, amount with a decimal comma). The statement covers the day after the opening
//!   balance's (the day of it when it is the closing balance's day) to the closing balance's
//!   day, widened to its lines' booking days.
//! - each `:61:`: value date `YYMMDD`, entry date `MMDD` (the booking date; the value date when
//!   absent), `C`, `D`, `RC` or `RD` (a reversal of a credit, booked as a debit; of a debit, as
//!   a credit), an optional funds code letter, the amount, the transaction type (`N`, `F` or `S`
//!   and three characters), the customer reference up to `//`, the bank's reference after it,
//!   and an optional second line of supplementary details.
//! - the `:86:` after a `:61:` (information to the account owner, any number of lines joined
//!   as the bank wrapped them): the end-to-end reference of SEPA (`/EREF/…/` of Dutch banks,
//!   `EREF+…` in the `?20`–`?29` and `?60`–`?63` subfields of German ones), the customer
//!   reference (`KREF+`) and a remittance reference (`/REMI/…/`, `SVWZ+…`) when it is one word.
//!
//! A line's reference is the end-to-end reference when there is one, else the customer
//! reference unless it is `NONREF`; the others are tried after it. `:21:`, `:13:`/`:13D:`,
//! `:34F:`, `:64:`, `:65:`, `:90C:`/`:90D:` and `:86:` of the statement are read past; any other
//! field is refused. Amounts with more decimals than their currency has are refused. Errors
//! name the line (`line 12, :61:`).

use std::io::{BufRead, Read};

use crate::constants::{
    MT940_INFO_BYTES_MAX, MT940_LINE_BYTES_MAX, STATEMENTS_PER_FILE_MAX, STATEMENT_BYTES_MAX,
    STATEMENT_LINES_MAX, TEXT_LEN_MAX,
};
use crate::error::ImportError;
use crate::statement::{currency, parse_day, Day, Direction, Line, Statement};

/// What a bank writes in `:61:` for "no customer reference".
const NO_REFERENCE: &str = "NONREF";
/// What SEPA writes for "no end-to-end reference".
const NOT_PROVIDED: &str = "NOTPROVIDED";
/// The longest `:20:` reference (SWIFT `16x`).
const REFERENCE_LEN_MAX: usize = 16;
/// The SEPA tags of German `:86:` purpose subfields, each ending a value that precedes it.
const SEPA_TAGS: [&str; 12] = [
    "EREF+", "KREF+", "MREF+", "CRED+", "DEBT+", "SVWZ+", "ABWA+", "ABWE+", "COAM+", "OAMT+",
    "IBAN+", "BIC+",
];
/// Fields read past.
const IGNORED: [&str; 9] = ["21", "13", "13D", "34F", "64", "65", "90C", "90D", "NS"];

/// Parses every statement of an MT940 file.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Statement>, ImportError> {
    read(bytes)
}

/// Reads every statement of an MT940 file from `input`, in one pass.
pub fn read(input: impl BufRead) -> Result<Vec<Statement>, ImportError> {
    let mut input = input;
    let mut p = Parser::default();
    let mut buf = Vec::with_capacity(256);
    let mut number = 0usize;
    let mut bytes = 0u64;
    let limit = (MT940_LINE_BYTES_MAX + 2) as u64;
    loop {
        buf.clear();
        let n = (&mut input)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|e| ImportError::invalid("the file", format!("cannot be read: {e}")))?;
        if n == 0 {
            break;
        }
        number += 1;
        bytes += n as u64;
        if bytes > STATEMENT_BYTES_MAX as u64 {
            return Err(ImportError::TooLarge {
                size: usize::try_from(bytes).unwrap_or(usize::MAX),
                max: STATEMENT_BYTES_MAX,
            });
        }
        let ended = buf.last() == Some(&b'\n');
        let mut text: &[u8] = &buf;
        text = text.strip_suffix(b"\n").unwrap_or(text);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if number == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if !ended && n as u64 == limit || text.len() > MT940_LINE_BYTES_MAX {
            return Err(ImportError::invalid(
                format!("line {number}"),
                format!("longer than {MT940_LINE_BYTES_MAX} bytes"),
            ));
        }
        p.line(text, number)?;
    }
    p.finish(number)
}

/// A field being read: its tag, first line and lines.
struct Field {
    tag: String,
    line: usize,
    first: String,
    more: Vec<String>,
    bytes: usize,
}

#[derive(Clone, Copy)]
struct Balance {
    minor: i128,
    day: Day,
}

#[derive(Default)]
struct Message {
    line: usize,
    reference: Option<String>,
    account: Option<String>,
    number: Option<String>,
    opening: Option<Balance>,
    closing: Option<Balance>,
    /// The currency of the opening balance: code, number, exponent.
    currency: Option<(String, u32, u32)>,
    lines: Vec<Line>,
    /// The last `:61:` has no `:86:` yet.
    line_open: bool,
}

#[derive(Default)]
struct Parser {
    statements: Vec<Statement>,
    message: Option<Message>,
    field: Option<Field>,
    lines_total: usize,
}

impl Parser {
    fn line(&mut self, raw: &[u8], number: usize) -> Result<(), ImportError> {
        // `:86:` may be in a bank's 8-bit code page (German umlauts): only ASCII is read of it.
        let in_info = self.field.as_ref().is_some_and(|f| f.tag == "86");
        let text = match std::str::from_utf8(raw) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) if in_info || raw.starts_with(b":86:") => String::from_utf8_lossy(raw),
            Err(_) => {
                return Err(ImportError::invalid(format!("line {number}"), "not UTF-8"));
            }
        };
        let mut text: &str = text.trim_end();
        if self.message.is_none() && (text.trim().is_empty() || is_header(text)) {
            return Ok(());
        }
        // SWIFT blocks: the headers before the text block, the trailer after it.
        if text.starts_with('{') {
            let (rest, opens) = strip_blocks(text).ok_or_else(|| {
                ImportError::invalid(format!("line {number}"), "an unclosed SWIFT block")
            })?;
            if opens {
                self.close(number)?;
                self.message = Some(Message { line: number, ..Message::default() });
            }
            text = rest;
            if text.is_empty() {
                return Ok(());
            }
        }
        if text == "-" || text.starts_with("-}") {
            return self.close(number);
        }
        if let Some((tag, rest)) = split_tag(text) {
            self.flush()?;
            if tag == "20" && self.message.as_ref().is_some_and(|m| m.reference.is_some()) {
                self.close(number)?;
            }
            let message =
                self.message.get_or_insert_with(|| Message { line: number, ..Message::default() });
            if message.reference.is_none() && tag != "20" {
                return Err(ImportError::invalid(
                    format!("line {number}, :{tag}:"),
                    "a message starts with :20:",
                ));
            }
            self.field = Some(Field {
                tag: tag.to_owned(),
                line: number,
                first: rest.to_owned(),
                more: Vec::new(),
                bytes: rest.len(),
            });
            return Ok(());
        }
        match &mut self.field {
            Some(_) if text.is_empty() => Ok(()),
            Some(f) if f.tag == "86" || f.tag == "61" => {
                f.bytes += text.len();
                if f.bytes > MT940_INFO_BYTES_MAX {
                    return Err(ImportError::invalid(
                        format!("line {}, :{}:", f.line, f.tag),
                        format!("longer than {MT940_INFO_BYTES_MAX} bytes"),
                    ));
                }
                f.more.push(text.to_owned());
                Ok(())
            }
            Some(f) => Err(ImportError::invalid(
                format!("line {number}"),
                format!("`{text}`: :{}: is a field of one line", f.tag),
            )),
            None if text.trim().is_empty() => Ok(()),
            None => Err(ImportError::invalid(
                format!("line {number}"),
                format!("`{}` is not an MT940 field", cut(text)),
            )),
        }
    }

    /// Applies the field read so far to its message.
    fn flush(&mut self) -> Result<(), ImportError> {
        let Some(f) = self.field.take() else { return Ok(()) };
        let m = self.message.as_mut().expect("a field is in a message");
        let at = |what: &str| format!("line {}, :{}:{what}", f.line, f.tag);
        let value = f.first.trim();
        let once = |slot: bool| -> Result<(), ImportError> {
            if slot {
                return Err(ImportError::invalid(at(""), "given twice in the message"));
            }
            Ok(())
        };
        match f.tag.as_str() {
            "20" => {
                if value.is_empty() || value.len() > REFERENCE_LEN_MAX {
                    return Err(ImportError::invalid(
                        at(""),
                        format!("the reference must be 1 to {REFERENCE_LEN_MAX} characters"),
                    ));
                }
                m.reference = Some(value.to_owned());
            }
            "25" => {
                once(m.account.is_some())?;
                if value.is_empty() || value.len() > TEXT_LEN_MAX {
                    return Err(ImportError::invalid(
                        at(""),
                        format!("the account must be 1 to {TEXT_LEN_MAX} characters"),
                    ));
                }
                m.account = Some(value.to_owned());
            }
            "28C" | "28" => {
                once(m.number.is_some())?;
                if !statement_number(value) {
                    return Err(ImportError::invalid(
                        at(""),
                        format!(
                            "`{}` is not a statement number (nnnnn or nnnnn/nnnnn)",
                            cut(value)
                        ),
                    ));
                }
                m.number = Some(value.to_owned());
            }
            "60F" | "60M" => {
                once(m.opening.is_some())?;
                let (b, code) = balance(value, &at(""))?;
                let (number, exponent) = currency(&code).ok_or_else(|| {
                    ImportError::invalid(at(""), format!("unknown currency `{code}`"))
                })?;
                let minor = balance_amount(value, &code, exponent, &at(""))?;
                m.opening = Some(Balance { minor: b * minor, day: balance_day(value, &at(""))? });
                m.currency = Some((code, number, exponent));
            }
            "61" => {
                let (code, _, exponent) = m.currency.clone().ok_or_else(|| {
                    ImportError::invalid(
                        at(""),
                        "a statement line before the opening balance :60F:",
                    )
                })?;
                if m.closing.is_some() {
                    return Err(ImportError::invalid(
                        at(""),
                        "a statement line after the closing balance",
                    ));
                }
                if f.more.len() > 1 {
                    return Err(ImportError::invalid(
                        at(""),
                        "more than one line of supplementary details",
                    ));
                }
                // The supplementary details (`/TRCD/00100/` at ING) hold no reference.
                let line = statement_line(value, &code, exponent, f.line, &at(""))?;
                self.lines_total += 1;
                if self.lines_total > STATEMENT_LINES_MAX {
                    return Err(ImportError::TooManyLines { max: STATEMENT_LINES_MAX });
                }
                m.lines.push(line);
                m.line_open = true;
            }
            "86" => {
                if m.line_open {
                    m.line_open = false;
                    let mut info = f.first.clone();
                    for more in &f.more {
                        info.push_str(more);
                    }
                    let line = m.lines.last_mut().expect("an open line");
                    add_information(line, &info, &at(""))?;
                }
            }
            "62F" | "62M" => {
                once(m.closing.is_some())?;
                let (code, _, exponent) = m.currency.clone().ok_or_else(|| {
                    ImportError::invalid(at(""), "a closing balance without an opening balance")
                })?;
                let (b, given) = balance(value, &at(""))?;
                if given != code {
                    return Err(ImportError::invalid(
                        at(""),
                        format!("currency `{given}` is not the opening balance's `{code}`"),
                    ));
                }
                let minor = balance_amount(value, &code, exponent, &at(""))?;
                m.closing = Some(Balance { minor: b * minor, day: balance_day(value, &at(""))? });
            }
            tag if IGNORED.contains(&tag) => {}
            tag => {
                return Err(ImportError::invalid(
                    at(""),
                    format!("`:{tag}:` is not a field of MT940"),
                ));
            }
        }
        if f.tag != "61" {
            m.line_open = false;
        }
        Ok(())
    }

    /// Ends the message being read, if any, as a statement.
    fn close(&mut self, line: usize) -> Result<(), ImportError> {
        self.flush()?;
        let Some(m) = self.message.take() else { return Ok(()) };
        if m.reference.is_none() && m.lines.is_empty() && m.account.is_none() {
            // Blocks without a text block, or a separator after one.
            return Ok(());
        }
        let missing = |what: &str| {
            ImportError::invalid(
                format!("line {}", m.line),
                format!("the message that starts here has no {what} (it ends on line {line})"),
            )
        };
        let reference = m.reference.clone().ok_or_else(|| missing(":20:"))?;
        let account = m.account.clone().ok_or_else(|| missing(":25: account"))?;
        let number = m.number.clone().ok_or_else(|| missing(":28C: statement number"))?;
        let opening = m.opening.ok_or_else(|| missing(":60F: opening balance"))?;
        let closing = m.closing.ok_or_else(|| missing(":62F: closing balance"))?;
        let (code, currency_number, _) = m.currency.clone().expect("with the opening balance");
        let mut from_day =
            if opening.day < closing.day { opening.day + 1 } else { opening.day.min(closing.day) };
        let mut to_day = closing.day;
        for l in &m.lines {
            from_day = from_day.min(l.booking_day);
            to_day = to_day.max(l.booking_day);
        }
        if self.statements.len() >= STATEMENTS_PER_FILE_MAX {
            return Err(ImportError::invalid(
                format!("line {}", m.line),
                format!("more than {STATEMENTS_PER_FILE_MAX} statements in the file"),
            ));
        }
        let (y, mo, d) = ymd(closing.day);
        self.statements.push(Statement {
            id: format!("{reference}/{number}/{:02}{mo:02}{d:02}", y % 100),
            account: account_of(&account, &code),
            currency: currency_number,
            from_day,
            to_day,
            opening_minor: Some(opening.minor),
            closing_minor: Some(closing.minor),
            pending_lines: 0,
            lines: m.lines,
        });
        Ok(())
    }

    fn finish(mut self, last: usize) -> Result<Vec<Statement>, ImportError> {
        self.close(last)?;
        if self.statements.is_empty() {
            return Err(ImportError::invalid(
                format!("line {}", last.max(1)),
                "no MT940 message in the file",
            ));
        }
        Ok(self.statements)
    }
}

/// A bank's header line before a message: one short word (`ABNANL2A`, `940`) or `:940:`.
fn is_header(text: &str) -> bool {
    let t = text.trim();
    t == ":940:" || (t.len() <= REFERENCE_LEN_MAX && t.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Strips the SWIFT blocks at the start of a line; says whether the text block `{4:` opened
/// (the rest of the line is then its first line). `None` for a block not closed on its line.
fn strip_blocks(mut text: &str) -> Option<(&str, bool)> {
    while text.starts_with('{') {
        if let Some(rest) = text.strip_prefix("{4:") {
            return Some((rest, true));
        }
        let mut depth = 0usize;
        let mut end = None;
        for (i, c) in text.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        text = &text[end? + 1..];
    }
    Some((text, false))
}

/// `:61:1126…` → (`61`, `1126…`): two digits and an optional letter between colons (`NS` too).
fn split_tag(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(':')?;
    let (tag, value) = rest.split_once(':')?;
    let b = tag.as_bytes();
    let ok = match b {
        [a, c] => (a.is_ascii_digit() && c.is_ascii_digit()) || tag == "NS",
        [a, c, l] => a.is_ascii_digit() && c.is_ascii_digit() && l.is_ascii_uppercase(),
        _ => false,
    };
    ok.then_some((tag, value))
}

fn statement_number(v: &str) -> bool {
    let digits = |s: &str| (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    match v.split_once('/') {
        Some((a, b)) => digits(a) && digits(b),
        None => digits(v),
    }
}

/// At most 40 characters of `text`, for a message.
fn cut(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// `C261126EUR1234,56`: the sign (1 or -1) and the currency code.
fn balance(value: &str, at: &str) -> Result<(i128, String), ImportError> {
    let bad = || {
        ImportError::invalid(
            at,
            format!("`{}` is not a balance (C or D, YYMMDD, currency, amount)", cut(value)),
        )
    };
    let sign = match value.as_bytes().first() {
        Some(b'C') => 1,
        Some(b'D') => -1,
        _ => return Err(bad()),
    };
    let code = value.get(7..10).ok_or_else(bad)?;
    if !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    Ok((sign, code.to_owned()))
}

fn balance_day(value: &str, at: &str) -> Result<Day, ImportError> {
    let date = value.get(1..7).unwrap_or_default();
    yymmdd(date).ok_or_else(|| ImportError::invalid(at, format!("`{date}` is not a date (YYMMDD)")))
}

fn balance_amount(value: &str, code: &str, exponent: u32, at: &str) -> Result<i128, ImportError> {
    let amount = value.get(10..).unwrap_or_default();
    amount_minor(amount, code, exponent, at).map(i128::from)
}

/// An amount with a decimal comma (`1234,56`, `1234,`) in minor units of `code`.
fn amount_minor(text: &str, code: &str, exponent: u32, at: &str) -> Result<u64, ImportError> {
    let Some((whole, fraction)) = text.split_once(',') else {
        return Err(ImportError::invalid(
            at,
            format!("`{}` is not an amount with a decimal comma", cut(text)),
        ));
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || text.len() > 15 {
        return Err(ImportError::invalid(
            at,
            format!("`{}` is not an amount (digits, a decimal comma, at most 15)", cut(text)),
        ));
    }
    if u32::try_from(fraction.len()).unwrap_or(u32::MAX) > exponent {
        return Err(ImportError::invalid(
            at,
            format!("`{text}` has more decimals than {code} has ({exponent})"),
        ));
    }
    let dotted = if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") };
    crate::statement::parse_amount(&dotted, exponent).ok_or_else(|| {
        ImportError::invalid(at, format!("`{text}` is too large an amount in {code}"))
    })
}

/// `YYMMDD`, years 1980 to 2079.
fn yymmdd(text: &str) -> Option<Day> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = text[..2].parse().ok()?;
    let year = if yy < 80 { 2000 + yy } else { 1900 + yy };
    parse_day(&format!("{year:04}-{}-{}", &text[2..4], &text[4..]))
}

fn ymd(day: Day) -> (i32, i32, i32) {
    let text = crate::statement::format_day(day);
    let n = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse().ok()).unwrap_or(0);
    (n(0..4), n(5..7), n(8..10))
}

/// The account of `:25:`: an IBAN followed by the statement's currency (ING writes
/// `NL69INGB0123456789EUR`) is the IBAN.
fn account_of(text: &str, code: &str) -> String {
    let iban = |s: &str| {
        let b = s.as_bytes();
        (15..=34).contains(&b.len())
            && b[..2].iter().all(u8::is_ascii_uppercase)
            && b[2..4].iter().all(u8::is_ascii_digit)
            && b[4..].iter().all(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_digit)
    };
    match text.strip_suffix(code) {
        Some(prefix) if iban(prefix) => prefix.to_owned(),
        _ => text.to_owned(),
    }
}

/// The day of `MMDD` nearest `near` (an entry date a few days from its value date, possibly in
/// the year before or after).
fn mmdd_near(text: &str, near: Day) -> Option<Day> {
    if text.len() != 4 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, _, _) = ymd(near);
    (year - 1..=year + 1)
        .filter_map(|y| parse_day(&format!("{y:04}-{}-{}", &text[..2], &text[2..])))
        .min_by_key(|d| (d - near).abs())
}

/// A `:61:` statement line.
fn statement_line(
    value: &str,
    code: &str,
    exponent: u32,
    number: usize,
    at: &str,
) -> Result<Line, ImportError> {
    let bad = |what: &str| ImportError::invalid(at, format!("{what} in `{}`", cut(value)));
    let b = value.as_bytes();
    let value_day = value.get(..6).and_then(yymmdd).ok_or_else(|| bad("no value date YYMMDD"))?;
    let mut i = 6;
    let mut booking_day = value_day;
    if b.len() >= i + 4 && b[i..i + 4].iter().all(u8::is_ascii_digit) {
        booking_day = mmdd_near(&value[i..i + 4], value_day)
            .ok_or_else(|| bad("the entry date MMDD is not a date"))?;
        i += 4;
    }
    let reversal = b.get(i) == Some(&b'R');
    if reversal {
        i += 1;
    }
    // A reversal of a credit takes the money back out: a debit; of a debit, a credit.
    let direction = match (b.get(i), reversal) {
        (Some(b'C'), false) | (Some(b'D'), true) => Direction::Credit,
        (Some(b'D'), false) | (Some(b'C'), true) => Direction::Debit,
        _ => return Err(bad("no mark C, D, RC or RD")),
    };
    i += 1;
    if b.get(i).is_some_and(u8::is_ascii_alphabetic) {
        i += 1; // the funds code: the third letter of the currency code
    }
    let start = i;
    while b.get(i).is_some_and(|c| c.is_ascii_digit() || *c == b',') {
        i += 1;
    }
    let amount_minor = amount_minor(&value[start..i], code, exponent, at)?;
    let kind = value.get(i..i + 4).ok_or_else(|| bad("no transaction type"))?;
    let kb = kind.as_bytes();
    if !matches!(kb[0], b'N' | b'F' | b'S') || !kb[1..].iter().all(u8::is_ascii_alphanumeric) {
        return Err(bad("no transaction type (N, F or S and three characters)"));
    }
    let rest = &value[i + 4..];
    let (customer, bank) = match rest.split_once("//") {
        Some((c, b)) => (c.trim(), b.trim()),
        None => (rest.trim(), ""),
    };
    for (what, text) in [("customer reference", customer), ("bank reference", bank)] {
        if text.len() > TEXT_LEN_MAX {
            return Err(ImportError::invalid(
                at,
                format!("the {what} is longer than {TEXT_LEN_MAX} bytes"),
            ));
        }
    }
    let mut line = Line::new(
        u32::try_from(number).unwrap_or(u32::MAX),
        direction,
        amount_minor,
        booking_day,
        "",
    );
    line.value_day = value_day;
    line.reversal = reversal;
    line.bank_reference = bank.to_owned();
    if customer != NO_REFERENCE {
        push_reference(&mut line, customer);
    }
    Ok(line)
}

/// A text that can be a reference: one word of at most `TEXT_LEN_MAX` bytes.
fn is_word(text: &str) -> bool {
    !text.is_empty() && text.len() <= TEXT_LEN_MAX && !text.contains(char::is_whitespace)
}

/// Adds a reference after those the line has.
fn push_reference(line: &mut Line, reference: &str) {
    if reference.is_empty()
        || reference == NOT_PROVIDED
        || reference == NO_REFERENCE
        || line.reference == reference
        || line.other_references.iter().any(|r| r == reference)
    {
        return;
    }
    if line.reference.is_empty() {
        line.reference = reference.to_owned();
    } else {
        line.other_references.push(reference.to_owned());
    }
}

/// The references of a `:86:`: the end-to-end reference becomes the line's reference (the
/// customer reference is then tried after it), the others are tried after.
fn add_information(line: &mut Line, info: &str, at: &str) -> Result<(), ImportError> {
    let found = information(info);
    if let Some(e) = found.end_to_end.filter(|e| e != NOT_PROVIDED && !e.is_empty()) {
        if e.len() > TEXT_LEN_MAX {
            return Err(ImportError::invalid(
                at,
                format!("the end-to-end reference is longer than {TEXT_LEN_MAX} bytes"),
            ));
        }
        let before = std::mem::take(&mut line.reference);
        let others = std::mem::take(&mut line.other_references);
        push_reference(line, &e);
        push_reference(line, &before);
        for o in &others {
            push_reference(line, o);
        }
    }
    for r in [found.batch, found.customer, found.remittance].into_iter().flatten() {
        if is_word(&r) {
            push_reference(line, &r);
        }
    }
    Ok(())
}

/// What a `:86:` names.
#[derive(Debug, Default, PartialEq, Eq)]
struct Information {
    end_to_end: Option<String>,
    /// The payment information id of a batch (`/PREF/`), as camt's `PmtInfId`.
    batch: Option<String>,
    customer: Option<String>,
    remittance: Option<String>,
}

/// Reads the references of a `:86:` text: German `?nn` subfields with SEPA tags, or the
/// `/CODE/value/` structure of Dutch banks.
fn information(info: &str) -> Information {
    let b = info.as_bytes();
    if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b'?' {
        return german(info);
    }
    let mut out = Information::default();
    let value_after = |code: &str| -> Option<String> {
        let at = info.find(code)? + code.len();
        let rest = &info[at..];
        Some(rest.split('/').next().unwrap_or_default().trim().to_owned())
    };
    out.end_to_end = value_after("/EREF/");
    out.customer = value_after("/KREF/");
    out.batch = value_after("/PREF/");
    out.remittance = info.find("/REMI/").map(|at| {
        let mut rest = &info[at + "/REMI/".len()..];
        for prefix in ["USTD//", "USTD/", "STRD/CUR/", "STRD/ISO/", "STRD/"] {
            if let Some(r) = rest.strip_prefix(prefix) {
                rest = r;
                break;
            }
        }
        rest.split('/').next().unwrap_or_default().trim().to_owned()
    });
    out
}

/// `166?00GUTSCHRIFT?20EREF+top_7?21SVWZ+…`: the purpose subfields `?20`–`?29` and `?60`–`?63`,
/// joined, hold SEPA tags whose values run to the next tag.
fn german(info: &str) -> Information {
    let mut purpose = String::new();
    for part in info.split('?').skip(1) {
        let Some(code) = part.get(..2) else { continue };
        let subfield: u32 = match code.parse() {
            Ok(n) if code.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => continue,
        };
        if (20..=29).contains(&subfield) || (60..=63).contains(&subfield) {
            purpose.push_str(&part[2..]);
        }
    }
    let value = |tag: &str| -> Option<String> {
        let at = purpose.find(tag)? + tag.len();
        let rest = &purpose[at..];
        let end = SEPA_TAGS.iter().filter_map(|t| rest.find(t)).min().unwrap_or(rest.len());
        Some(rest[..end].trim().to_owned())
    };
    Information {
        end_to_end: value("EREF+"),
        batch: None,
        customer: value("KREF+"),
        remittance: value("SVWZ+"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_reads_dutch_and_german_references() {
        let ing = "/EREF/top_7//CNTP/NL32INGB0000012345/INGBNL2A/J Jansen///REMI/USTD//inv_12/";
        let i = information(ing);
        assert_eq!(i.end_to_end.as_deref(), Some("top_7"));
        assert_eq!(i.remittance.as_deref(), Some("inv_12"));
        let abn = "/TRTP/SEPA OVERBOEKING/IBAN/NL44RABO0123456789/REMI/Factuur 1/EREF/NOTPROVIDED";
        let i = information(abn);
        assert_eq!(i.end_to_end.as_deref(), Some("NOTPROVIDED"));
        assert_eq!(i.remittance.as_deref(), Some("Factuur 1"));
        let de = "166?00SEPA-GUTSCHRIFT?109310?20EREF+wdr_?2142KREF+K1?22SVWZ+po_ab?30BIC?32Name";
        let i = information(de);
        assert_eq!(i.end_to_end.as_deref(), Some("wdr_42"));
        assert_eq!(i.customer.as_deref(), Some("K1"));
        assert_eq!(i.remittance.as_deref(), Some("po_ab"));
        assert_eq!(information("plain text"), Information::default());
    }

    #[test]
    fn dates_take_the_century_and_the_nearest_year() {
        assert_eq!(yymmdd("261126"), parse_day("2026-11-26"));
        assert_eq!(yymmdd("991231"), parse_day("1999-12-31"));
        assert_eq!(yymmdd("260230"), None);
        let new_year = parse_day("2026-12-31").unwrap();
        assert_eq!(mmdd_near("0102", new_year), parse_day("2027-01-02"));
        assert_eq!(mmdd_near("1230", new_year), parse_day("2026-12-30"));
        assert_eq!(mmdd_near("1330", new_year), None);
    }

    #[test]
    fn blocks_and_tags_are_told_apart() {
        assert_eq!(strip_blocks("{1:F01X}{2:O940}{3:{108:A}}{4:"), Some(("", true)));
        assert_eq!(strip_blocks("{1:F01X}{4::20:R"), Some((":20:R", true)));
        assert_eq!(strip_blocks("{5:{CHK:1}}"), Some(("", false)));
        assert_eq!(strip_blocks("{1:F01X"), None);
        assert_eq!(split_tag(":61:2611"), Some(("61", "2611")));
        assert_eq!(split_tag(":28C:1/1"), Some(("28C", "1/1")));
        assert_eq!(split_tag(":940:"), None);
        assert_eq!(split_tag("/EREF/x:y"), None);
    }
}
