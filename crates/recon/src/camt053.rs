//! ISO 20022 camt.053 (bank-to-customer end-of-day statement): reading and writing the subset
//! reconciliation needs.
//!
//! Read: `Document/BkToCstmrStmt/Stmt` (exactly one) with `Id`, `FrToDt`, `Acct` (`Id/IBAN` or
//! `Id/Othr/Id`, `Ccy`), `Bal` (`OPBD` and `CLBD` are checked against the lines) and each `Ntry`
//! with `Amt Ccy=`, `CdtDbtInd`, `Sts`, `BookgDt`, `ValDt`, `AcctSvcrRef` and
//! `NtryDtls/TxDtls/Refs/EndToEndId`. Entries whose status is not `BOOK` are not booked yet and
//! are skipped. Every other element is ignored, namespaces included, so any camt.053 version
//! reads. An error names the line and the element path at fault.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::constants::{STATEMENT_LINES_MAX, TEXT_LEN_MAX};
use crate::error::ImportError;
use crate::statement::{
    currency, currency_code, format_amount, format_balance, format_day, parse_amount, parse_day,
    Day, Direction, Line, Statement,
};

/// What the ISO standard writes for "no end-to-end reference".
const NOT_PROVIDED: &str = "NOTPROVIDED";

#[derive(Default)]
struct Entry {
    number: u32,
    line: usize,
    amount: Option<(String, String)>,
    direction: Option<String>,
    status: Option<String>,
    booking: Option<String>,
    value: Option<String>,
    /// The line of each field read, by field name, for messages.
    field_lines: Vec<(&'static str, usize)>,
    bank_reference: String,
    reference: Option<String>,
    reversal: bool,
}

#[derive(Default)]
struct Balance {
    line: usize,
    code: Option<String>,
    amount: Option<(String, String)>,
    direction: Option<String>,
}

#[derive(Default)]
struct Parsed {
    statements: u32,
    id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    account: Option<String>,
    account_currency: Option<String>,
    balances: Vec<Balance>,
    entries: Vec<Entry>,
}

/// Parses a camt.053 document.
pub fn parse(bytes: &[u8]) -> Result<Statement, ImportError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = line_of(bytes, e.valid_up_to());
        ImportError::invalid(format!("line {line}"), "the file is not UTF-8")
    })?;
    let parsed = read(text)?;
    build(parsed)
}

/// The line of the first byte at or after `offset` that is not white space: where the element
/// read from `offset` starts.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    let offset = offset.min(bytes.len());
    let start = bytes[offset..]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(bytes.len(), |p| offset + p);
    1 + bytes[..start].iter().filter(|&&b| b == b'\n').count()
}

/// Line numbers of offsets read in increasing order, counted incrementally (linear in the file,
/// where counting from the start each time would be quadratic).
struct Lines<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
}

impl Lines<'_> {
    fn line(&mut self, offset: u64) -> usize {
        let offset = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        let start = self.bytes[offset..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(self.bytes.len(), |p| offset + p);
        if start < self.offset {
            return line_of(self.bytes, offset);
        }
        self.line += self.bytes[self.offset..start].iter().filter(|&&b| b == b'\n').count();
        self.offset = start;
        self.line
    }
}

/// Reads the elements reconciliation needs, with their line numbers.
fn read(text: &str) -> Result<Parsed, ImportError> {
    let mut lines = Lines { bytes: text.as_bytes(), offset: 0, line: 1 };
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut path: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut parsed = Parsed::default();
    // The amount's currency attribute, read at the start tag of an `Amt`.
    let mut ccy = String::new();
    // The place of an error: the line, and the path with the entry's or balance's position.
    let at = |path: &[String], offset: u64, parsed: &Parsed| {
        let line = line_of(text.as_bytes(), usize::try_from(offset).unwrap_or(usize::MAX));
        let in_stmt = in_statement(path).is_some();
        let names: Vec<String> = path
            .iter()
            .enumerate()
            .map(|(i, n)| match (i, n.as_str()) {
                (3, "Ntry") if in_stmt => format!("Ntry[{}]", parsed.entries.len()),
                (3, "Bal") if in_stmt => format!("Bal[{}]", parsed.balances.len()),
                _ => n.clone(),
            })
            .collect();
        format!("line {line}, {}", names.join("/"))
    };
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| {
            ImportError::invalid(at(&path, offset, &parsed), format!("not well-formed XML: {e}"))
        })?;
        match event {
            Event::Start(e) => {
                path.push(name(&e));
                value.clear();
                start(&mut parsed, &path, &e, &mut ccy, lines.line(offset))
                    .map_err(|m| ImportError::invalid(at(&path, offset, &parsed), m))?;
            }
            Event::Empty(e) => {
                path.push(name(&e));
                value.clear();
                start(&mut parsed, &path, &e, &mut ccy, lines.line(offset))
                    .map_err(|m| ImportError::invalid(at(&path, offset, &parsed), m))?;
                let line = lines.line(offset);
                end(&mut parsed, &path, "", &ccy, line)
                    .map_err(|m| ImportError::invalid(at(&path, offset, &parsed), m))?;
                path.pop();
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|e| {
                    ImportError::invalid(at(&path, offset, &parsed), format!("bad text: {e}"))
                })?;
                value.push_str(&t);
            }
            Event::CData(t) => {
                value.push_str(&String::from_utf8_lossy(&t));
            }
            Event::End(_) => {
                let line = lines.line(offset);
                end(&mut parsed, &path, value.trim(), &ccy, line)
                    .map_err(|m| ImportError::invalid(at(&path, offset, &parsed), m))?;
                value.clear();
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(ImportError::invalid(
            at(&path, reader.buffer_position(), &parsed),
            "unclosed element",
        ));
    }
    Ok(parsed)
}

fn name(e: &BytesStart) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// The path below `Document/BkToCstmrStmt/Stmt`, if the element is in the statement.
fn in_statement(path: &[String]) -> Option<Vec<&str>> {
    let names: Vec<&str> = path.iter().map(String::as_str).collect();
    match names.as_slice() {
        ["Document", "BkToCstmrStmt", "Stmt", rest @ ..] => Some(rest.to_vec()),
        _ => None,
    }
}

fn start(
    parsed: &mut Parsed,
    path: &[String],
    e: &BytesStart,
    ccy: &mut String,
    line: usize,
) -> Result<(), String> {
    if path.len() == 1 && path[0] != "Document" {
        return Err("the root element is not a camt.053 Document".into());
    }
    let Some(rest) = in_statement(path) else { return Ok(()) };
    match rest.as_slice() {
        [] => {
            parsed.statements += 1;
            if parsed.statements > 1 {
                return Err("one statement (Stmt) per file".into());
            }
        }
        ["Ntry"] => {
            if parsed.entries.len() >= STATEMENT_LINES_MAX {
                return Err(format!("more than {STATEMENT_LINES_MAX} entries"));
            }
            let number = u32::try_from(parsed.entries.len() + 1).expect("bounded");
            parsed.entries.push(Entry { number, line, ..Entry::default() });
        }
        ["Bal"] => parsed.balances.push(Balance { line, ..Balance::default() }),
        [.., "Amt"] => {
            ccy.clear();
            for attr in e.attributes() {
                let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
                if attr.key.local_name().as_ref() == b"Ccy" {
                    let v = attr.unescape_value().map_err(|e| format!("bad attribute: {e}"))?;
                    ccy.push_str(&v);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn end(
    parsed: &mut Parsed,
    path: &[String],
    value: &str,
    ccy: &str,
    line: usize,
) -> Result<(), String> {
    let Some(rest) = in_statement(path) else { return Ok(()) };
    let text = || -> Result<String, String> {
        if value.len() > TEXT_LEN_MAX {
            return Err(format!("longer than {TEXT_LEN_MAX} bytes"));
        }
        Ok(value.to_owned())
    };
    match rest.as_slice() {
        ["Id"] => parsed.id = Some(text()?),
        ["FrToDt", "FrDtTm"] => parsed.from = Some(value.to_owned()),
        ["FrToDt", "ToDtTm"] => parsed.to = Some(value.to_owned()),
        ["Acct", "Id", "IBAN"] | ["Acct", "Id", "Othr", "Id"] => parsed.account = Some(text()?),
        ["Acct", "Ccy"] => parsed.account_currency = Some(value.to_owned()),
        ["Bal", rest @ ..] => {
            let b = parsed.balances.last_mut().expect("started");
            match rest {
                ["Tp", "CdOrPrtry", "Cd"] => b.code = Some(value.to_owned()),
                ["Amt"] => b.amount = Some((value.to_owned(), ccy.to_owned())),
                ["CdtDbtInd"] => b.direction = Some(value.to_owned()),
                _ => {}
            }
        }
        ["Ntry", rest @ ..] => {
            let n = parsed.entries.last_mut().expect("started");
            if let [field, ..] = rest {
                for name in ["Amt", "CdtDbtInd", "BookgDt", "ValDt"] {
                    if field == &name {
                        n.field_lines.push((name, line));
                    }
                }
            }
            match rest {
                ["Amt"] => n.amount = Some((value.to_owned(), ccy.to_owned())),
                ["CdtDbtInd"] => n.direction = Some(value.to_owned()),
                // `Sts` holds the code itself (camt.053.001.02) or in `Cd` (later versions).
                ["Sts"] | ["Sts", "Cd"] if !value.is_empty() => n.status = Some(value.to_owned()),
                ["BookgDt", "Dt"] | ["BookgDt", "DtTm"] => n.booking = Some(value.to_owned()),
                ["ValDt", "Dt"] | ["ValDt", "DtTm"] => n.value = Some(value.to_owned()),
                ["AcctSvcrRef"] => n.bank_reference = text()?,
                ["RvslInd"] => n.reversal = value == "true",
                ["NtryDtls", "TxDtls", "Refs", "EndToEndId"] => {
                    let reference = text()?;
                    if reference != NOT_PROVIDED && !reference.is_empty() {
                        match &n.reference {
                            Some(first) if *first != reference => {
                                return Err("entries with several end-to-end references (one per \
                                            transaction) are not supported"
                                    .into())
                            }
                            _ => n.reference = Some(reference),
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
    Ok(())
}

const STMT: &str = "Document/BkToCstmrStmt/Stmt";

/// Checks what was read and builds the statement.
fn build(p: Parsed) -> Result<Statement, ImportError> {
    if p.statements == 0 {
        return Err(ImportError::invalid(
            "Document/BkToCstmrStmt",
            "no Stmt: not a camt.053 statement",
        ));
    }
    let missing = |what: &str| ImportError::invalid(STMT, format!("missing {what}"));
    let id = p.id.filter(|s| !s.is_empty()).ok_or_else(|| missing("Id"))?;
    let account = p.account.filter(|s| !s.is_empty()).ok_or_else(|| missing("Acct/Id"))?;
    let day = |v: Option<String>, what: &str| -> Result<Day, ImportError> {
        let v = v.ok_or_else(|| missing(&format!("FrToDt/{what}")))?;
        parse_day(&v).ok_or_else(|| {
            ImportError::invalid(format!("{STMT}/FrToDt/{what}"), format!("`{v}` is not a date"))
        })
    };
    let from_day = day(p.from, "FrDtTm")?;
    let to_day = day(p.to, "ToDtTm")?;
    if to_day < from_day {
        return Err(ImportError::invalid(
            format!("{STMT}/FrToDt"),
            "the period ends before it starts",
        ));
    }
    check_period(from_day, to_day)
        .map_err(|m| ImportError::invalid(format!("{STMT}/FrToDt"), m))?;
    // The statement's currency: the account's, else the first amount's.
    let code = p
        .account_currency
        .or_else(|| p.entries.first().and_then(|n| n.amount.as_ref()).map(|(_, c)| c.clone()))
        .or_else(|| p.balances.first().and_then(|b| b.amount.as_ref()).map(|(_, c)| c.clone()))
        .ok_or_else(|| missing("Acct/Ccy"))?;
    let (number, exponent) = currency(&code).ok_or_else(|| {
        ImportError::invalid(format!("{STMT}/Acct/Ccy"), format!("unknown currency `{code}`"))
    })?;
    let amount = |a: &Option<(String, String)>, at: &str| -> Result<u64, ImportError> {
        let (v, c) = a.as_ref().ok_or_else(|| ImportError::invalid(at, "missing Amt"))?;
        if *c != code {
            return Err(ImportError::invalid(
                format!("{at}/Amt"),
                format!("currency `{c}` is not the statement's `{code}`"),
            ));
        }
        parse_amount(v, exponent).ok_or_else(|| {
            ImportError::invalid(
                format!("{at}/Amt"),
                format!("`{v}` is not an amount in {code} ({exponent} decimals)"),
            )
        })
    };
    let direction = |d: &Option<String>, at: &str| -> Result<Direction, ImportError> {
        let d = d.as_deref().ok_or_else(|| ImportError::invalid(at, "missing CdtDbtInd"))?;
        Direction::from_code(d).ok_or_else(|| {
            ImportError::invalid(
                format!("{at}/CdtDbtInd"),
                format!("`{d}` is neither CRDT nor DBIT"),
            )
        })
    };
    let mut lines = Vec::with_capacity(p.entries.len());
    for n in &p.entries {
        let at = format!("line {}, {STMT}/Ntry[{}]", n.line, n.number);
        // The place of a field: its own line.
        let place = |field: &str| {
            let line = n.field_lines.iter().find(|(f, _)| *f == field).map_or(n.line, |(_, l)| *l);
            format!("line {line}, {STMT}/Ntry[{}]", n.number)
        };
        if n.status.as_deref().is_some_and(|s| s != "BOOK") {
            continue;
        }
        if n.reversal {
            return Err(ImportError::invalid(
                format!("{at}/RvslInd"),
                "reversals are not supported",
            ));
        }
        let amount_minor = amount(&n.amount, &place("Amt"))?;
        let direction = direction(&n.direction, &place("CdtDbtInd"))?;
        let booking =
            n.booking.as_ref().ok_or_else(|| ImportError::invalid(&at, "missing BookgDt"))?;
        let booking_day = parse_day(booking).ok_or_else(|| {
            ImportError::invalid(
                format!("{}/BookgDt", place("BookgDt")),
                format!("`{booking}` is not a date"),
            )
        })?;
        if booking_day < from_day || booking_day > to_day {
            return Err(ImportError::invalid(
                format!("{}/BookgDt", place("BookgDt")),
                format!("booked on {booking}, outside the statement period"),
            ));
        }
        let value_day = match &n.value {
            None => booking_day,
            Some(v) => parse_day(v).ok_or_else(|| {
                ImportError::invalid(
                    format!("{}/ValDt", place("ValDt")),
                    format!("`{v}` is not a date"),
                )
            })?,
        };
        lines.push(Line {
            number: n.number,
            direction,
            amount_minor,
            booking_day,
            value_day,
            bank_reference: n.bank_reference.clone(),
            reference: n.reference.clone().unwrap_or_default(),
        });
    }
    let mut opening_minor = None;
    let mut closing_minor = None;
    for (i, b) in p.balances.iter().enumerate() {
        let at = format!("line {}, {STMT}/Bal[{}]", b.line, i + 1);
        let slot = match b.code.as_deref() {
            Some("OPBD") => &mut opening_minor,
            Some("CLBD") => &mut closing_minor,
            _ => continue,
        };
        let value = i128::from(amount(&b.amount, &at)?);
        *slot = Some(match direction(&b.direction, &at)? {
            Direction::Credit => value,
            Direction::Debit => -value,
        });
    }
    let statement = Statement {
        id,
        account,
        currency: number,
        from_day,
        to_day,
        opening_minor,
        closing_minor,
        lines,
    };
    check_balances(&statement).map_err(|m| ImportError::invalid(format!("{STMT}/Bal"), m))?;
    Ok(statement)
}

/// A period no longer than `PERIOD_DAYS_MAX`.
pub(crate) fn check_period(from_day: Day, to_day: Day) -> Result<(), String> {
    use crate::constants::PERIOD_DAYS_MAX;
    if to_day - from_day >= PERIOD_DAYS_MAX {
        return Err(format!("a period longer than {PERIOD_DAYS_MAX} days"));
    }
    Ok(())
}

/// The closing balance is the opening balance plus the lines.
fn check_balances(s: &Statement) -> Result<(), String> {
    let (Some(opening), Some(closing)) = (s.opening_minor, s.closing_minor) else {
        return Ok(());
    };
    let moved: i128 = s
        .lines
        .iter()
        .map(|l| match l.direction {
            Direction::Credit => i128::from(l.amount_minor),
            Direction::Debit => -i128::from(l.amount_minor),
        })
        .sum();
    if opening + moved != closing {
        return Err(format!(
            "the closing balance {closing} is not the opening balance {opening} plus the lines \
             ({moved}), in minor units"
        ));
    }
    Ok(())
}

/// Writes a statement as a camt.053.001.08 document (what the simulated bank sends).
pub fn write(s: &Statement, created: &str) -> String {
    use quick_xml::escape::escape;
    use std::fmt::Write;
    let (code, exponent) = currency_code(s.currency).expect("a known currency");
    let mut x = String::with_capacity(512 + s.lines.len() * 360);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">\n");
    x.push_str("  <BkToCstmrStmt>\n");
    let _ = writeln!(
        x,
        "    <GrpHdr><MsgId>{}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
        escape(&s.id)
    );
    x.push_str("    <Stmt>\n");
    let _ = writeln!(x, "      <Id>{}</Id>", escape(&s.id));
    let _ = writeln!(x, "      <CreDtTm>{created}</CreDtTm>");
    let _ = writeln!(
        x,
        "      <FrToDt><FrDtTm>{}T00:00:00Z</FrDtTm><ToDtTm>{}T23:59:59Z</ToDtTm></FrToDt>",
        format_day(s.from_day),
        format_day(s.to_day)
    );
    let _ = writeln!(
        x,
        "      <Acct><Id><Othr><Id>{}</Id></Othr></Id><Ccy>{code}</Ccy></Acct>",
        escape(&s.account)
    );
    for (tp, balance, day) in
        [("OPBD", s.opening_minor, s.from_day), ("CLBD", s.closing_minor, s.to_day)]
    {
        let Some(balance) = balance else { continue };
        let (amount, direction) = format_balance(balance, exponent);
        let _ = writeln!(
            x,
            "      <Bal><Tp><CdOrPrtry><Cd>{tp}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{code}\">{amount}</Amt>\
             <CdtDbtInd>{}</CdtDbtInd><Dt><Dt>{}</Dt></Dt></Bal>",
            direction.code(),
            format_day(day)
        );
    }
    // One line per entry: a busy channel's day is a large file, indentation would be a third
    // of it.
    for l in &s.lines {
        let _ = write!(
            x,
            "      <Ntry><Amt Ccy=\"{code}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt>",
            format_amount(l.amount_minor, exponent),
            l.direction.code(),
            format_day(l.booking_day),
            format_day(l.value_day)
        );
        if !l.bank_reference.is_empty() {
            let _ = write!(x, "<AcctSvcrRef>{}</AcctSvcrRef>", escape(&l.bank_reference));
        }
        let reference = if l.reference.is_empty() { NOT_PROVIDED } else { &l.reference };
        let _ = writeln!(
            x,
            "<BkTxCd><Domn><Cd>PMNT</Cd></Domn></BkTxCd>\
             <NtryDtls><TxDtls><Refs><EndToEndId>{}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>",
            escape(reference)
        );
    }
    x.push_str("    </Stmt>\n  </BkToCstmrStmt>\n</Document>\n");
    x
}
