//! ISO 20022 bank-to-customer cash management messages, read as a stream: camt.053 (statement),
//! camt.054 (debit/credit notification) and camt.052 (account report), versions
//! `CAMT_VERSION_MIN` to `CAMT_VERSION_MAX` (namespace
//! `urn:iso:std:iso:20022:tech:xsd:camt.05N.001.NN`; a document without a namespace is read as
//! one of them too).
//!
//! Read, of each `Stmt`/`Ntfctn`/`Rpt` (as many as the file holds): `Id`, `FrToDt`, `Acct`
//! (`Id/IBAN` or `Id/Othr/Id`, `Ccy`), the `OPBD` (else `PRCD`) and `CLBD` balances, with or
//! without `CdtDbtInd` (without: a credit, or a debit when the amount has a minus sign), and
//! each `Ntry`: `Amt Ccy=`, `CdtDbtInd`, `RvslInd`, `Sts` (a code in .02 to .07, `Sts/Cd` from
//! .08), `BookgDt`, `ValDt`, `AcctSvcrRef`, and its `NtryDtls`: `Btch` (`MsgId`, `PmtInfId`,
//! `NbOfTxs`, `TtlAmt`) and each `TxDtls` (`Refs/EndToEndId`, `InstrId`, `AcctSvcrRef`,
//! `PmtInfId`; `Amt` or `AmtDtls/TxAmt/Amt`; `CdtDbtInd`; `RmtInf/Strd/CdtrRefInf/Ref`,
//! `RmtInf/Ustrd`). Everything else is skipped.
//!
//! An entry with one transaction (or none) is one `Line`; an entry with several (a batch
//! booking) is a line per transaction, whose amounts, signed by their direction, must add up to
//! the entry's; an entry with batch totals only (`Btch/NbOfTxs`) is one line that names the batch
//! and its count. Entries that are not booked (`Sts` other than `BOOK`) are counted, not
//! reconciled. The file is read in one pass through a buffer, so memory holds the parsed lines,
//! not the file. Errors name the line and the element path (`line 58,
//! Document/BkToCstmrStmt/Stmt/Ntry[2]/Amt`; `Stmt[2]` from a file's second statement on).

use std::io::{BufRead, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::constants::{
    CAMT_VERSION_MAX, CAMT_VERSION_MIN, STATEMENTS_PER_FILE_MAX, STATEMENT_BYTES_MAX,
    STATEMENT_LINES_MAX, TEXT_LEN_MAX,
};
use crate::error::ImportError;
use crate::statement::{currency, parse_day, Day, Direction, Line, Statement};

/// What the ISO standard writes for "no end-to-end reference".
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// The messages read, by the name of their root's child.
const MESSAGES: [(&str, &str, &str); 3] = [
    ("BkToCstmrStmt", "Stmt", "camt.053"),
    ("BkToCstmrDbtCdtNtfctn", "Ntfctn", "camt.054"),
    ("BkToCstmrAcctRpt", "Rpt", "camt.052"),
];

/// Parses every statement (or notification, or report) of a camt document.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Statement>, ImportError> {
    read(bytes)
}

/// Reads every statement of a camt document from `input`, in one pass.
pub fn read(input: impl BufRead) -> Result<Vec<Statement>, ImportError> {
    let mut reader = Reader::from_reader(Counting { inner: input, newlines: 0, bytes: 0 });
    reader.config_mut().trim_text(true);
    let mut p = Parser::default();
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            Err(e) => {
                let counting = reader.get_ref();
                if counting.bytes > STATEMENT_BYTES_MAX as u64 {
                    return Err(ImportError::TooLarge {
                        size: usize::try_from(counting.bytes).unwrap_or(usize::MAX),
                        max: STATEMENT_BYTES_MAX,
                    });
                }
                let message = match e {
                    quick_xml::Error::Io(ref io)
                        if io.kind() == std::io::ErrorKind::InvalidData =>
                    {
                        "the file is not UTF-8".to_owned()
                    }
                    e => format!("not well-formed XML: {e}"),
                };
                return Err(ImportError::invalid(p.place(counting.newlines + 1, None), message));
            }
        };
        // The line the event ends on: a start tag is on its own line, so is an end tag.
        let here = reader.get_ref().newlines + 1;
        match event {
            Event::Start(e) => p.start(&e, here)?,
            Event::Empty(e) => {
                p.start(&e, here)?;
                p.end(here)?;
            }
            Event::Text(t) => {
                let text = std::str::from_utf8(t.as_ref()).map_err(|_| {
                    ImportError::invalid(format!("line {here}"), "the file is not UTF-8")
                })?;
                if p.wanted() {
                    let text = quick_xml::escape::unescape(text).map_err(|e| {
                        ImportError::invalid(p.place(here, None), format!("bad text: {e}"))
                    })?;
                    p.value.push_str(&text);
                }
            }
            Event::CData(t) if p.wanted() => {
                let text = std::str::from_utf8(t.as_ref()).map_err(|_| {
                    ImportError::invalid(format!("line {here}"), "the file is not UTF-8")
                })?;
                p.value.push_str(text);
            }
            Event::End(_) => p.end(here)?,
            Event::Eof => break,
            _ => {}
        }
    }
    if !p.tags.is_empty() {
        let line = reader.get_ref().newlines + 1;
        return Err(ImportError::invalid(p.place(line, None), "unclosed element"));
    }
    p.finish()
}

/// A `BufRead` that counts the newlines and bytes consumed through it, so errors name lines
/// without the file held in memory, and that refuses more than `STATEMENT_BYTES_MAX` bytes.
struct Counting<R> {
    inner: R,
    newlines: usize,
    bytes: u64,
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.bytes > STATEMENT_BYTES_MAX as u64 {
            return Err(std::io::Error::other("too large"));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(buffer) = self.inner.fill_buf() {
            let amount = amount.min(buffer.len());
            self.newlines += buffer[..amount].iter().filter(|&&b| b == b'\n').count();
        }
        self.bytes += amount as u64;
        self.inner.consume(amount);
    }
}

/// The elements the reader tells apart; everything else is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Document,
    Message,
    Report,
    GrpHdr,
    Id,
    FrToDt,
    FrDtTm,
    ToDtTm,
    Acct,
    Iban,
    Othr,
    Ccy,
    Bal,
    Tp,
    CdOrPrtry,
    Cd,
    Amt,
    CdtDbtInd,
    Ntry,
    RvslInd,
    Sts,
    BookgDt,
    ValDt,
    Dt,
    DtTm,
    AcctSvcrRef,
    NtryDtls,
    Btch,
    MsgId,
    PmtInfId,
    NbOfTxs,
    TtlAmt,
    TxDtls,
    Refs,
    EndToEndId,
    InstrId,
    AmtDtls,
    TxAmt,
    RmtInf,
    Ustrd,
    Strd,
    CdtrRefInf,
    Ref,
    Other,
}

fn tag(depth: usize, name: &[u8]) -> Tag {
    use Tag::*;
    match (depth, name) {
        (0, b"Document") => Document,
        (1, _) if MESSAGES.iter().any(|(m, _, _)| m.as_bytes() == name) => Message,
        (2, b"GrpHdr") => GrpHdr,
        (2, _) if MESSAGES.iter().any(|(_, r, _)| r.as_bytes() == name) => Report,
        (0..=2, _) => Other,
        (_, b"Id") => Id,
        (_, b"FrToDt") => FrToDt,
        (_, b"FrDtTm") => FrDtTm,
        (_, b"ToDtTm") => ToDtTm,
        (_, b"Acct") => Acct,
        (_, b"IBAN") => Iban,
        (_, b"Othr") => Othr,
        (_, b"Ccy") => Ccy,
        (_, b"Bal") => Bal,
        (_, b"Tp") => Tp,
        (_, b"CdOrPrtry") => CdOrPrtry,
        (_, b"Cd") => Cd,
        (_, b"Amt") => Amt,
        (_, b"CdtDbtInd") => CdtDbtInd,
        (_, b"Ntry") => Ntry,
        (_, b"RvslInd") => RvslInd,
        (_, b"Sts") => Sts,
        (_, b"BookgDt") => BookgDt,
        (_, b"ValDt") => ValDt,
        (_, b"Dt") => Dt,
        (_, b"DtTm") => DtTm,
        (_, b"AcctSvcrRef") => AcctSvcrRef,
        (_, b"NtryDtls") => NtryDtls,
        (_, b"Btch") => Btch,
        (_, b"MsgId") => MsgId,
        (_, b"PmtInfId") => PmtInfId,
        (_, b"NbOfTxs") => NbOfTxs,
        (_, b"TtlAmt") => TtlAmt,
        (_, b"TxDtls") => TxDtls,
        (_, b"Refs") => Refs,
        (_, b"EndToEndId") => EndToEndId,
        (_, b"InstrId") => InstrId,
        (_, b"AmtDtls") => AmtDtls,
        (_, b"TxAmt") => TxAmt,
        (_, b"RmtInf") => RmtInf,
        (_, b"Ustrd") => Ustrd,
        (_, b"Strd") => Strd,
        (_, b"CdtrRefInf") => CdtrRefInf,
        (_, b"Ref") => Ref,
        _ => Other,
    }
}

/// An amount as written, its currency attribute and its line.
#[derive(Clone, Debug, Default)]
struct Amount {
    text: String,
    ccy: String,
    line: usize,
}

#[derive(Default)]
struct Detail {
    line: usize,
    amount: Option<Amount>,
    tx_amount: Option<Amount>,
    direction: Option<(String, usize)>,
    end_to_end: String,
    instruction: String,
    payment_info: String,
    bank_reference: String,
    creditor_reference: String,
    unstructured: String,
}

#[derive(Default)]
struct NtryAcc {
    number: u32,
    line: usize,
    amount: Option<Amount>,
    direction: Option<(String, usize)>,
    reversal: bool,
    status: Option<String>,
    booking: Option<(String, usize)>,
    value: Option<(String, usize)>,
    bank_reference: String,
    batch_message: String,
    batch_payment_info: String,
    batch_count: Option<(String, usize)>,
    batch_total: Option<Amount>,
    details: Vec<Detail>,
}

#[derive(Default)]
struct BalAcc {
    line: usize,
    code: Option<String>,
    amount: Option<Amount>,
    direction: Option<String>,
}

#[derive(Default)]
struct StmtAcc {
    number: u32,
    line: usize,
    id: Option<String>,
    from: Option<(String, usize)>,
    to: Option<(String, usize)>,
    account: Option<String>,
    account_ccy: Option<String>,
    /// Code, number, exponent, once known.
    currency: Option<(String, u32, u32)>,
    balances: Vec<BalAcc>,
    lines: Vec<Line>,
    entries: u32,
    pending: u32,
    /// The first and last booking day of the booked entries.
    booked: Option<(Day, Day)>,
}

#[derive(Default)]
struct Parser {
    tags: Vec<Tag>,
    /// The element names of the path, one after another, and where each ends.
    names: String,
    name_ends: Vec<usize>,
    value: String,
    /// The `Ccy` attribute of the `Amt` being read.
    ccy: String,
    message: usize,
    statements: Vec<Statement>,
    stmt: Option<StmtAcc>,
    ntry: Option<NtryAcc>,
    lines_total: usize,
}

impl Parser {
    /// The path below the statement element, if the current element is in one.
    fn rest(&self) -> Option<&[Tag]> {
        match self.tags.as_slice() {
            [Tag::Document, Tag::Message, Tag::Report, rest @ ..] => Some(rest),
            _ => None,
        }
    }

    /// Whether the current element's text is read: anything in a statement.
    fn wanted(&self) -> bool {
        self.tags.len() >= 3 && self.stmt.is_some()
    }

    /// `line N, Document/…/Ntry[k]/…`, the entry, balance, detail and statement numbered.
    fn place(&self, line: usize, depth: Option<usize>) -> String {
        let depth = depth.unwrap_or(self.name_ends.len());
        let mut out = format!("line {line}, ");
        let mut start = 0;
        let mut details = 0;
        for (i, &end) in self.name_ends.iter().enumerate().take(depth) {
            if i > 0 {
                out.push('/');
            }
            out.push_str(&self.names[start..end]);
            match self.tags.get(i) {
                Some(Tag::Report) => {
                    if let Some(s) = self.stmt.as_ref().filter(|s| s.number > 1) {
                        out.push_str(&format!("[{}]", s.number));
                    }
                }
                Some(Tag::Ntry) if i == 3 => {
                    if let Some(n) = &self.ntry {
                        out.push_str(&format!("[{}]", n.number));
                        details = n.details.len();
                    }
                }
                Some(Tag::Bal) if i == 3 => {
                    if let Some(s) = &self.stmt {
                        out.push_str(&format!("[{}]", s.balances.len()));
                    }
                }
                Some(Tag::TxDtls) if details > 1 => out.push_str(&format!("[{details}]")),
                _ => {}
            }
            start = end;
        }
        out
    }

    fn start(&mut self, e: &BytesStart, line: usize) -> Result<(), ImportError> {
        let local = e.local_name();
        let t = tag(self.tags.len(), local.as_ref());
        self.tags.push(t);
        self.names.push_str(&String::from_utf8_lossy(local.as_ref()));
        self.name_ends.push(self.names.len());
        self.value.clear();
        let fail = |p: &Parser, m: String| Err(ImportError::invalid(p.place(line, None), m));
        match self.tags.as_slice() {
            [Tag::Document] => self.namespace(e, line)?,
            [_] => return fail(self, "the root element is not an ISO 20022 camt Document".into()),
            [Tag::Document, Tag::Message] => {
                self.message = MESSAGES
                    .iter()
                    .position(|(m, _, _)| m.as_bytes() == local.as_ref())
                    .expect("tagged as a message");
            }
            [Tag::Document, Tag::Message, Tag::Report] => {
                let expected = MESSAGES[self.message].1;
                if local.as_ref() != expected.as_bytes() {
                    return fail(
                        self,
                        format!("a {} message holds {expected}", MESSAGES[self.message].2),
                    );
                }
                if self.statements.len() >= STATEMENTS_PER_FILE_MAX {
                    return fail(
                        self,
                        format!("more than {STATEMENTS_PER_FILE_MAX} statements in one file"),
                    );
                }
                let number = u32::try_from(self.statements.len() + 1).unwrap_or(u32::MAX);
                self.stmt = Some(StmtAcc { number, line, ..StmtAcc::default() });
            }
            _ => {}
        }
        let Some(rest) = self.rest() else { return Ok(()) };
        match rest {
            [Tag::Ntry] => {
                let s = self.stmt.as_mut().expect("in a statement");
                s.entries = s.entries.saturating_add(1);
                self.ntry = Some(NtryAcc { number: s.entries, line, ..NtryAcc::default() });
            }
            [Tag::Bal] => {
                let s = self.stmt.as_mut().expect("in a statement");
                s.balances.push(BalAcc { line, ..BalAcc::default() });
            }
            [Tag::Ntry, Tag::NtryDtls, Tag::TxDtls] => {
                let n = self.ntry.as_mut().expect("in an entry");
                if n.details.len() >= STATEMENT_LINES_MAX {
                    return Err(ImportError::TooManyLines { max: STATEMENT_LINES_MAX });
                }
                n.details.push(Detail { line, ..Detail::default() });
            }
            [.., Tag::Amt] | [.., Tag::TtlAmt] => {
                self.ccy.clear();
                for attr in e.attributes() {
                    let attr = match attr {
                        Ok(a) => a,
                        Err(err) => return fail(self, format!("bad attribute: {err}")),
                    };
                    if attr.key.local_name().as_ref() == b"Ccy" {
                        match attr.unescape_value() {
                            Ok(v) => self.ccy.push_str(&v),
                            Err(err) => return fail(self, format!("bad attribute: {err}")),
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks the namespace of `Document`: a camt message of a version read, or none.
    fn namespace(&self, e: &BytesStart, line: usize) -> Result<(), ImportError> {
        for attr in e.attributes().flatten() {
            if attr.key.as_ref() != b"xmlns" {
                continue;
            }
            let ns = String::from_utf8_lossy(&attr.value).into_owned();
            let known = ns
                .strip_prefix("urn:iso:std:iso:20022:tech:xsd:camt.05")
                .and_then(|r| r.split_once(".001."))
                .filter(|(m, _)| ["2", "3", "4"].contains(m))
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .filter(|v| (CAMT_VERSION_MIN..=CAMT_VERSION_MAX).contains(v));
            if known.is_none() {
                return Err(ImportError::invalid(
                    self.place(line, None),
                    format!(
                        "`{ns}` is not a message read here (camt.052, camt.053 and camt.054, \
                         versions {CAMT_VERSION_MIN:02} to {CAMT_VERSION_MAX:02})"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn end(&mut self, line: usize) -> Result<(), ImportError> {
        let result = self.close(line);
        self.tags.pop();
        self.name_ends.pop();
        self.names.truncate(self.name_ends.last().copied().unwrap_or(0));
        self.value.clear();
        result
    }

    fn close(&mut self, line: usize) -> Result<(), ImportError> {
        let Some(rest) = self.rest() else { return Ok(()) };
        // Copied out of the path (no allocation: this runs for every element).
        let mut path = [Tag::Other; 8];
        let Some(slot) = path.get_mut(..rest.len()) else { return Ok(()) };
        slot.copy_from_slice(rest);
        let rest = &path[..rest.len()];
        if !matches!(
            rest.first(),
            None | Some(Tag::Id | Tag::FrToDt | Tag::Acct | Tag::Bal | Tag::Ntry)
        ) {
            return Ok(());
        }
        let value = self.value.trim().to_owned();
        let text = |p: &Parser| -> Result<String, ImportError> {
            if value.len() > TEXT_LEN_MAX {
                return Err(ImportError::invalid(
                    p.place(line, None),
                    format!("longer than {TEXT_LEN_MAX} bytes"),
                ));
            }
            Ok(value.clone())
        };
        let amount = |p: &Parser| Amount { text: value.clone(), ccy: p.ccy.clone(), line };
        use Tag::*;
        match rest {
            [] => {
                let s = self.stmt.take().expect("in a statement");
                let statement = self.build(s)?;
                self.statements.push(statement);
            }
            [Id] => self.stmt_mut().id = Some(text(self)?),
            [FrToDt, FrDtTm] => self.stmt_mut().from = Some((value, line)),
            [FrToDt, ToDtTm] => self.stmt_mut().to = Some((value, line)),
            [Acct, Id, Iban] | [Acct, Id, Othr, Id] => self.stmt_mut().account = Some(text(self)?),
            [Acct, Ccy] => self.stmt_mut().account_ccy = Some(value),
            [Bal, rest @ ..] => {
                let a = amount(self);
                let b = self.stmt_mut().balances.last_mut().expect("started");
                match rest {
                    [Tp, CdOrPrtry, Cd] => b.code = Some(value),
                    [Amt] => b.amount = Some(a),
                    [CdtDbtInd] => b.direction = Some(value),
                    _ => {}
                }
            }
            [Ntry] => {
                let n = self.ntry.take().expect("started");
                self.entry(n, line)?;
            }
            [Ntry, rest @ ..] => {
                let a = amount(self);
                let long = value.len() > TEXT_LEN_MAX;
                let place = if long { Some(self.place(line, None)) } else { None };
                let too_long = || {
                    ImportError::invalid(
                        place.clone().unwrap_or_default(),
                        format!("longer than {TEXT_LEN_MAX} bytes"),
                    )
                };
                let n = self.ntry.as_mut().expect("started");
                match rest {
                    [Amt] => n.amount = Some(a),
                    [CdtDbtInd] => n.direction = Some((value, line)),
                    [RvslInd] => n.reversal = value == "true" || value == "1",
                    // `Sts` holds the code itself (.02 to .07) or in `Cd` (from .08).
                    [Sts] | [Sts, Cd] if !value.is_empty() => n.status = Some(value),
                    [BookgDt, Dt] | [BookgDt, DtTm] => n.booking = Some((value, line)),
                    [ValDt, Dt] | [ValDt, DtTm] => n.value = Some((value, line)),
                    [AcctSvcrRef] => {
                        if long {
                            return Err(too_long());
                        }
                        n.bank_reference = value;
                    }
                    [NtryDtls, Btch, MsgId] if !long => n.batch_message = value,
                    [NtryDtls, Btch, PmtInfId] if !long => n.batch_payment_info = value,
                    [NtryDtls, Btch, NbOfTxs] => n.batch_count = Some((value, line)),
                    [NtryDtls, Btch, TtlAmt] => n.batch_total = Some(a),
                    [NtryDtls, TxDtls, rest @ ..] => {
                        let d = n.details.last_mut().expect("started");
                        match rest {
                            [Refs, EndToEndId] | [Refs, InstrId] | [Refs, AcctSvcrRef] if long => {
                                return Err(too_long())
                            }
                            [Refs, EndToEndId] => d.end_to_end = value,
                            [Refs, InstrId] => d.instruction = value,
                            [Refs, AcctSvcrRef] => d.bank_reference = value,
                            [Refs, PmtInfId] if !long => d.payment_info = value,
                            [Amt] => d.amount = Some(a),
                            [AmtDtls, TxAmt, Amt] => d.tx_amount = Some(a),
                            [CdtDbtInd] => d.direction = Some((value, line)),
                            [RmtInf, Strd, CdtrRefInf, Ref] if !long => {
                                d.creditor_reference = value
                            }
                            [RmtInf, Ustrd] if d.unstructured.is_empty() => d.unstructured = value,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn stmt_mut(&mut self) -> &mut StmtAcc {
        self.stmt.as_mut().expect("in a statement")
    }

    /// `Document/…/Stmt` with the statement's number, for messages about the whole statement.
    fn stmt_path(&self, s: &StmtAcc) -> String {
        let (message, report, _) = MESSAGES[self.message];
        if s.number > 1 {
            format!("Document/{message}/{report}[{}]", s.number)
        } else {
            format!("Document/{message}/{report}")
        }
    }

    /// The statement's currency, from its account, else from `first` (the first amount read).
    fn currency(&mut self, first: &Amount, at: &str) -> Result<(String, u32, u32), ImportError> {
        let s = self.stmt.as_mut().expect("in a statement");
        if let Some(c) = &s.currency {
            return Ok(c.clone());
        }
        let code = s.account_ccy.clone().unwrap_or_else(|| first.ccy.clone());
        let (number, exponent) = currency(&code).ok_or_else(|| {
            ImportError::invalid(at, format!("unknown currency `{code}` (not an ISO 4217 code)"))
        })?;
        s.currency = Some((code.clone(), number, exponent));
        Ok((code, number, exponent))
    }

    /// Turns a finished entry into its lines.
    fn entry(&mut self, n: NtryAcc, _end_line: usize) -> Result<(), ImportError> {
        let s = self.stmt.as_ref().expect("in a statement");
        let stmt = self.stmt_path(s);
        let period = match (&s.from, &s.to) {
            (Some((f, _)), Some((t, _))) => parse_day(f).zip(parse_day(t)),
            _ => None,
        };
        let at = |line: usize, what: &str| {
            if what.is_empty() {
                format!("line {line}, {stmt}/Ntry[{}]", n.number)
            } else {
                format!("line {line}, {stmt}/Ntry[{}]/{what}", n.number)
            }
        };
        if n.status.as_deref().is_some_and(|st| st != "BOOK") {
            self.stmt_mut().pending += 1;
            return Ok(());
        }
        let entry_amount =
            n.amount.as_ref().ok_or_else(|| ImportError::invalid(at(n.line, ""), "missing Amt"))?;
        let (code, _, exponent) = self.currency(entry_amount, &at(entry_amount.line, "Amt"))?;
        let amount_of = |a: &Amount, what: &str| parse_in(a, &code, exponent, at(a.line, what));
        let amount_minor = amount_of(entry_amount, "Amt")?;
        let direction =
            direction_of(n.direction.as_ref(), || at(n.line, ""), |l| at(l, "CdtDbtInd"))?;
        let (booking, booking_line) = n
            .booking
            .as_ref()
            .ok_or_else(|| ImportError::invalid(at(n.line, ""), "missing BookgDt"))?;
        let booking_day = parse_day(booking).ok_or_else(|| {
            ImportError::invalid(at(*booking_line, "BookgDt"), format!("`{booking}` is not a date"))
        })?;
        let value_day = match &n.value {
            None => booking_day,
            Some((v, l)) => parse_day(v).ok_or_else(|| {
                ImportError::invalid(at(*l, "ValDt"), format!("`{v}` is not a date"))
            })?,
        };
        if let Some((f, t)) = period {
            if booking_day < f || booking_day > t {
                return Err(ImportError::invalid(
                    at(*booking_line, "BookgDt"),
                    format!("booked on {booking}, outside the statement period"),
                ));
            }
        }
        let batch_count = match &n.batch_count {
            None => None,
            Some((v, l)) => Some(v.parse::<u32>().ok().filter(|c| *c > 0).ok_or_else(|| {
                ImportError::invalid(
                    at(*l, "NtryDtls/Btch/NbOfTxs"),
                    format!("`{v}` is not a count"),
                )
            })?),
        };
        if let Some(total) = &n.batch_total {
            if amount_of(total, "NtryDtls/Btch/TtlAmt")? != amount_minor {
                return Err(ImportError::invalid(
                    at(total.line, "NtryDtls/Btch/TtlAmt"),
                    format!(
                        "the batch total {} is not the entry's amount {}",
                        total.text, entry_amount.text
                    ),
                ));
            }
        }
        let mut out: Vec<Line> = Vec::new();
        let references = |d: &Detail| -> (String, Vec<String>) {
            let mut all: Vec<&str> = Vec::new();
            for r in [&d.end_to_end, &d.instruction, &d.creditor_reference, &d.payment_info] {
                if !r.is_empty() && r != NOT_PROVIDED && !all.contains(&r.as_str()) {
                    all.push(r);
                }
            }
            let u = d.unstructured.as_str();
            if !u.is_empty() && u.len() <= TEXT_LEN_MAX && !u.contains(' ') && !all.contains(&u) {
                all.push(u);
            }
            let mut all = all.into_iter().map(str::to_owned);
            (all.next().unwrap_or_default(), all.collect())
        };
        match n.details.len() {
            0 | 1 => {
                let (reference, other_references) = match n.details.first() {
                    Some(d) => {
                        // A detail's amount in the statement's currency must be the entry's; in
                        // another currency it is what the counterparty sent.
                        if let Some(a) =
                            d.amount.as_ref().filter(|a| a.ccy == code || a.ccy.is_empty())
                        {
                            if amount_of(a, "NtryDtls/TxDtls/Amt")? != amount_minor {
                                return Err(ImportError::invalid(
                                    at(a.line, "NtryDtls/TxDtls/Amt"),
                                    format!(
                                        "the transaction's amount {} is not the entry's {}",
                                        a.text, entry_amount.text
                                    ),
                                ));
                            }
                        }
                        references(d)
                    }
                    None => {
                        let batch = [&n.batch_payment_info, &n.batch_message]
                            .into_iter()
                            .find(|r| !r.is_empty())
                            .cloned()
                            .unwrap_or_default();
                        (batch, Vec::new())
                    }
                };
                let bank_reference = if n.bank_reference.is_empty() {
                    n.details.first().map(|d| d.bank_reference.clone()).unwrap_or_default()
                } else {
                    n.bank_reference.clone()
                };
                out.push(Line {
                    number: n.number,
                    detail: 0,
                    direction,
                    amount_minor,
                    booking_day,
                    value_day,
                    bank_reference,
                    reference,
                    other_references,
                    reversal: n.reversal,
                    batch_count,
                });
            }
            count => {
                if let Some(c) = batch_count {
                    if usize::try_from(c).ok() != Some(count) {
                        return Err(ImportError::invalid(
                            at(n.line, "NtryDtls/Btch/NbOfTxs"),
                            format!("{c} transactions announced, {count} given"),
                        ));
                    }
                }
                let mut sum: i128 = 0;
                for (i, d) in n.details.iter().enumerate() {
                    let dat = |line: usize, what: &str| {
                        format!(
                            "line {line}, {stmt}/Ntry[{}]/NtryDtls/TxDtls[{}]{what}",
                            n.number,
                            i + 1
                        )
                    };
                    let in_code = |a: &&Amount| a.ccy == code || a.ccy.is_empty();
                    let a =
                        d.amount.as_ref().filter(in_code).or(d.tx_amount.as_ref().filter(in_code));
                    let a = a.ok_or_else(|| {
                        ImportError::invalid(
                            dat(d.line, ""),
                            format!("a transaction of a batch entry needs its amount in {code}"),
                        )
                    })?;
                    let minor = parse_in(a, &code, exponent, dat(a.line, "/Amt"))?;
                    let dir = match &d.direction {
                        None => direction,
                        Some((v, l)) => Direction::from_code(v).ok_or_else(|| {
                            ImportError::invalid(
                                dat(*l, "/CdtDbtInd"),
                                format!("`{v}` is neither CRDT nor DBIT"),
                            )
                        })?,
                    };
                    sum += signed(dir, minor);
                    let (reference, other_references) = references(d);
                    out.push(Line {
                        number: n.number,
                        detail: u32::try_from(i + 1).unwrap_or(u32::MAX),
                        direction: dir,
                        amount_minor: minor,
                        booking_day,
                        value_day,
                        bank_reference: d.bank_reference.clone(),
                        reference,
                        other_references,
                        reversal: n.reversal,
                        batch_count: None,
                    });
                }
                if sum != signed(direction, amount_minor) {
                    return Err(ImportError::invalid(
                        at(entry_amount.line, "Amt"),
                        format!(
                            "the entry's amount {} {} is not the sum of its {count} transactions \
                             ({sum} in minor units)",
                            direction.code(),
                            entry_amount.text
                        ),
                    ));
                }
            }
        }
        self.lines_total += out.len();
        if self.lines_total > STATEMENT_LINES_MAX {
            return Err(ImportError::TooManyLines { max: STATEMENT_LINES_MAX });
        }
        let s = self.stmt_mut();
        s.booked = Some(match s.booked {
            None => (booking_day, booking_day),
            Some((a, b)) => (a.min(booking_day), b.max(booking_day)),
        });
        s.lines.append(&mut out);
        Ok(())
    }

    fn build(&mut self, mut s: StmtAcc) -> Result<Statement, ImportError> {
        let stmt = self.stmt_path(&s);
        let missing = |what: &str| {
            ImportError::invalid(format!("line {}, {stmt}", s.line), format!("missing {what}"))
        };
        let id = s.id.clone().filter(|v| !v.is_empty()).ok_or_else(|| missing("Id"))?;
        let account =
            s.account.clone().filter(|v| !v.is_empty()).ok_or_else(|| missing("Acct/Id"))?;
        let day = |v: &Option<(String, usize)>, what: &str| -> Result<Option<Day>, ImportError> {
            match v {
                None => Ok(None),
                Some((v, l)) => parse_day(v).map(Some).ok_or_else(|| {
                    ImportError::invalid(
                        format!("line {l}, {stmt}/FrToDt/{what}"),
                        format!("`{v}` is not a date"),
                    )
                }),
            }
        };
        let (from, to) = (day(&s.from, "FrDtTm")?, day(&s.to, "ToDtTm")?);
        // A notification or report may have no period: its entries' days are.
        let (from_day, to_day) = match (from, to, s.booked) {
            (Some(f), Some(t), _) => (f, t),
            (f, t, Some((a, b))) => (f.unwrap_or(a), t.unwrap_or(b)),
            _ => return Err(missing("FrToDt (and no booked entry to take the period from)")),
        };
        if to_day < from_day {
            return Err(ImportError::invalid(
                format!("{stmt}/FrToDt"),
                "the period ends before it starts",
            ));
        }
        let first_amount = s.balances.iter().find_map(|b| b.amount.clone()).unwrap_or_default();
        let code_at = format!("line {}, {stmt}/Acct/Ccy", s.line);
        let currency = match s.currency.clone() {
            Some(c) => c,
            None => {
                if s.account_ccy.is_none() && first_amount.ccy.is_empty() {
                    return Err(missing("Acct/Ccy"));
                }
                let saved = self.stmt.replace(std::mem::take(&mut s));
                let c = self.currency(&first_amount, &code_at);
                s = std::mem::replace(&mut self.stmt, saved).expect("put back");
                c?
            }
        };
        let (code, number, exponent) = currency;
        let mut opening = None;
        let mut previous_closing = None;
        let mut closing = None;
        for (i, b) in s.balances.iter().enumerate() {
            let at = format!("line {}, {stmt}/Bal[{}]", b.line, i + 1);
            let slot = match b.code.as_deref() {
                Some("OPBD") => &mut opening,
                Some("PRCD") => &mut previous_closing,
                Some("CLBD") => &mut closing,
                _ => continue,
            };
            let a = b.amount.as_ref().ok_or_else(|| ImportError::invalid(&at, "missing Amt"))?;
            let (negative, text) = match a.text.strip_prefix('-') {
                Some(t) if b.direction.is_none() => (true, t),
                _ => (false, a.text.as_str()),
            };
            let unsigned = Amount { text: text.to_owned(), ..a.clone() };
            let value = i128::from(parse_in(&unsigned, &code, exponent, format!("{at}/Amt"))?);
            let direction = match b.direction.as_deref() {
                None if negative => Direction::Debit,
                None => Direction::Credit,
                Some(d) => Direction::from_code(d).ok_or_else(|| {
                    ImportError::invalid(
                        format!("{at}/CdtDbtInd"),
                        format!("`{d}` is neither CRDT nor DBIT"),
                    )
                })?,
            };
            *slot = Some(if direction == Direction::Credit { value } else { -value });
        }
        Ok(Statement {
            id,
            account,
            currency: number,
            from_day,
            to_day,
            opening_minor: opening.or(previous_closing),
            closing_minor: closing,
            pending_lines: s.pending,
            lines: s.lines,
        })
    }

    fn finish(self) -> Result<Vec<Statement>, ImportError> {
        if self.statements.is_empty() {
            let (message, report, _) = MESSAGES[self.message];
            return Err(ImportError::invalid(
                format!("Document/{message}"),
                format!("no {report}: not a camt statement, notification or report"),
            ));
        }
        Ok(self.statements)
    }
}

fn signed(direction: Direction, minor: u64) -> i128 {
    match direction {
        Direction::Credit => i128::from(minor),
        Direction::Debit => -i128::from(minor),
    }
}

fn direction_of(
    d: Option<&(String, usize)>,
    entry: impl Fn() -> String,
    field: impl Fn(usize) -> String,
) -> Result<Direction, ImportError> {
    let (d, line) = d.ok_or_else(|| ImportError::invalid(entry(), "missing CdtDbtInd"))?;
    Direction::from_code(d).ok_or_else(|| {
        ImportError::invalid(field(*line), format!("`{d}` is neither CRDT nor DBIT"))
    })
}

/// An amount in the statement's currency `code`, with at most its decimals.
fn parse_in(a: &Amount, code: &str, exponent: u32, at: String) -> Result<u64, ImportError> {
    if !a.ccy.is_empty() && a.ccy != code {
        return Err(ImportError::invalid(
            at,
            format!("currency `{}` is not the statement's `{code}`", a.ccy),
        ));
    }
    crate::statement::parse_amount(&a.text, exponent).ok_or_else(|| {
        ImportError::invalid(at, crate::statement::amount_error(&a.text, code, exponent))
    })
}
