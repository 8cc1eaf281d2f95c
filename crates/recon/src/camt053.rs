//! ISO 20022 camt.053 (bank-to-customer statement): writing what the simulated bank sends, and
//! reading a file of one statement. The reader of every camt message, version and shape is
//! `camt`.

use crate::error::ImportError;
use crate::statement::{
    currency_code, format_amount, format_balance, format_day, Direction, Line, Statement,
};

/// What the ISO standard writes for "no end-to-end reference".
const NOT_PROVIDED: &str = "NOTPROVIDED";

/// Parses a camt document that holds exactly one statement (see `camt::parse_all` for files
/// with several).
pub fn parse(bytes: &[u8]) -> Result<Statement, ImportError> {
    let mut all = crate::camt::parse_all(bytes)?;
    if all.len() != 1 {
        return Err(ImportError::invalid(
            "Document",
            format!("{} statements in the file where one was expected", all.len()),
        ));
    }
    Ok(all.pop().expect("one"))
}

/// Writes a statement as a camt.053.001.08 document (what the simulated bank sends).
pub fn write(s: &Statement, created: &str) -> String {
    write_all(std::slice::from_ref(s), created)
}

fn write_statement(x: &mut String, s: &Statement, created: &str) {
    use quick_xml::escape::escape;
    use std::fmt::Write;
    let (code, exponent) = currency_code(s.currency).expect("a known currency");
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
    // of it. The transactions of a batch entry (lines with the same number and a detail) are
    // one `Ntry`.
    let mut i = 0;
    while i < s.lines.len() {
        let l = &s.lines[i];
        let mut end = i + 1;
        if l.detail > 0 {
            while end < s.lines.len() && s.lines[end].number == l.number && s.lines[end].detail > 0
            {
                end += 1;
            }
        }
        let group = &s.lines[i..end];
        i = end;
        let signed: i128 = group.iter().map(Line::signed_minor).sum();
        let direction = match signed.cmp(&0) {
            std::cmp::Ordering::Less => Direction::Debit,
            std::cmp::Ordering::Greater => Direction::Credit,
            std::cmp::Ordering::Equal => l.direction,
        };
        let amount = u64::try_from(signed.unsigned_abs()).expect("a batch entry fits in u64");
        let _ = write!(
            x,
            "      <Ntry><Amt Ccy=\"{code}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd>{}<Sts><Cd>BOOK</Cd></Sts>\
             <BookgDt><Dt>{}</Dt></BookgDt><ValDt><Dt>{}</Dt></ValDt>",
            format_amount(amount, exponent),
            direction.code(),
            if l.reversal { "<RvslInd>true</RvslInd>" } else { "" },
            format_day(l.booking_day),
            format_day(l.value_day)
        );
        if l.detail == 0 && !l.bank_reference.is_empty() {
            let _ = write!(x, "<AcctSvcrRef>{}</AcctSvcrRef>", escape(&l.bank_reference));
        }
        x.push_str("<BkTxCd><Domn><Cd>PMNT</Cd></Domn></BkTxCd><NtryDtls>");
        if let Some(count) = l.batch_count {
            let _ = write!(
                x,
                "<Btch><PmtInfId>{}</PmtInfId><NbOfTxs>{count}</NbOfTxs></Btch>",
                escape(&l.reference)
            );
        } else {
            for t in group {
                x.push_str("<TxDtls><Refs>");
                if t.detail > 0 && !t.bank_reference.is_empty() {
                    let _ = write!(x, "<AcctSvcrRef>{}</AcctSvcrRef>", escape(&t.bank_reference));
                }
                let other = |k: usize| t.other_references.get(k).map(escape);
                if let Some(r) = other(2) {
                    let _ = write!(x, "<PmtInfId>{r}</PmtInfId>");
                }
                if let Some(r) = other(0) {
                    let _ = write!(x, "<InstrId>{r}</InstrId>");
                }
                let reference = if t.reference.is_empty() { NOT_PROVIDED } else { &t.reference };
                let _ = write!(x, "<EndToEndId>{}</EndToEndId></Refs>", escape(reference));
                if t.detail > 0 {
                    let _ = write!(
                        x,
                        "<Amt Ccy=\"{code}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd>",
                        format_amount(t.amount_minor, exponent),
                        t.direction.code()
                    );
                }
                if other(1).is_some() || other(3).is_some() {
                    x.push_str("<RmtInf>");
                    if let Some(r) = other(3) {
                        let _ = write!(x, "<Ustrd>{r}</Ustrd>");
                    }
                    if let Some(r) = other(1) {
                        let _ = write!(x, "<Strd><CdtrRefInf><Ref>{r}</Ref></CdtrRefInf></Strd>");
                    }
                    x.push_str("</RmtInf>");
                }
                x.push_str("</TxDtls>");
            }
        }
        x.push_str("</NtryDtls></Ntry>\n");
    }
    x.push_str("    </Stmt>\n");
}

/// Writes statements as one camt.053.001.08 document, a `Stmt` each (what a bank sends for
/// several accounts).
pub fn write_all(statements: &[Statement], created: &str) -> String {
    use quick_xml::escape::escape;
    use std::fmt::Write;
    let mut x = String::with_capacity(
        512 + statements.iter().map(|s| 512 + s.lines.len() * 360).sum::<usize>(),
    );
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">\n");
    x.push_str("  <BkToCstmrStmt>\n");
    let id = statements.first().map_or("", |s| s.id.as_str());
    let _ = writeln!(
        x,
        "    <GrpHdr><MsgId>{}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>",
        escape(id)
    );
    for s in statements {
        write_statement(&mut x, s, created);
    }
    x.push_str("  </BkToCstmrStmt>\n</Document>\n");
    x
}
