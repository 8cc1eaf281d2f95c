//! Every camt version read, .02 to .13, gives the same statement; the versions around them are
//! refused.
//!
//! The documents are written here by hand, one layout per version, from the element names and
//! order of the published ISO 20022 message definitions (BankToCustomerStatementV02 to V13,
//! BankToCustomerDebitCreditNotificationV02 to V13). Of what the reader takes, they differ in:
//!
//! - `Ntry/Sts`: up to .07 the code itself (`EntryStatus2Code`: `<Sts>BOOK</Sts>`); from .08
//!   (the 2019 maintenance) a choice of an external code or a proprietary one
//!   (`EntryStatus1Choice`: `<Sts><Cd>BOOK</Cd></Sts>`).
//! - The amount of one transaction of a batch entry: .02 has it only in
//!   `TxDtls/AmtDtls/TxAmt/Amt`; later definitions add `TxDtls/Amt` with its own `CdtDbtInd`,
//!   which the banks' guides of .04 and after fill. The layout here uses `AmtDtls` up to .03
//!   and `Amt` from .04, so both places are read.
//!
//! The rest of what is read (`Id`, `FrToDt`, `Acct/Id/IBAN`, `Acct/Ccy`, `Bal` with `Tp`, `Amt`,
//! `CdtDbtInd`, `Dt`; `Ntry` with `Amt`, `CdtDbtInd`, `RvslInd`, `BookgDt`, `ValDt`,
//! `AcctSvcrRef`, `BkTxCd`, `NtryDtls/TxDtls/Refs`) keeps its name and place in every version;
//! the types behind some of them were renumbered (`DateAndDateTime2Choice` for `BookgDt` from
//! .08), not reshaped. Elements the reader skips (`StmtPgntn`, `ElctrncSeqNb`, `RltdPties`, …)
//! are left out: they are optional in every version.

use huifu_recon::statement::parse_day;
use huifu_recon::{camt, Direction, ImportError, Line, Statement};

/// The messages checked: the root's child and the report element.
#[derive(Clone, Copy)]
enum Message {
    Statement,
    Notification,
}

impl Message {
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Message::Statement => ("camt.053", "BkToCstmrStmt", "Stmt"),
            Message::Notification => ("camt.054", "BkToCstmrDbtCdtNtfctn", "Ntfctn"),
        }
    }
}

/// The same month of one account as a bank of `version` writes it: an opening balance of
/// 1,000.00, a top-up of 250.00, a payout batch of 100.00 in two transactions, a pending
/// credit, the top-up reversed, a closing balance of 900.00.
fn document(message: Message, version: u32) -> String {
    let (name, root, report) = message.names();
    let status = |code: &str| {
        if version <= 7 {
            format!("<Sts>{code}</Sts>")
        } else {
            format!("<Sts><Cd>{code}</Cd></Sts>")
        }
    };
    let transaction = |amount: &str| {
        if version <= 3 {
            format!("<AmtDtls><TxAmt><Amt Ccy=\"EUR\">{amount}</Amt></TxAmt></AmtDtls>")
        } else {
            format!("<Amt Ccy=\"EUR\">{amount}</Amt><CdtDbtInd>DBIT</CdtDbtInd>")
        }
    };
    let book = status("BOOK");
    let pending = status("PDNG");
    let (po_a, po_b) = (transaction("60.00"), transaction("40.00"));
    let domain = "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd>\
                  </Fmly></Domn></BkTxCd>";
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{name}.001.{version:02}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <{root}>
  <GrpHdr><MsgId>MSG-2026-11</MsgId><CreDtTm>2026-12-01T06:00:00</CreDtTm></GrpHdr>
  <{report}>
   <Id>EUR-2026-11</Id>
   <CreDtTm>2026-12-01T06:00:00</CreDtTm>
   <FrToDt><FrDtTm>2026-11-01T00:00:00</FrDtTm><ToDtTm>2026-11-30T23:59:59</ToDtTm></FrToDt>
   <Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>
   <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">1000.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-10-31</Dt></Dt></Bal>
   <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">900.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-30</Dt></Dt></Bal>
   <Ntry>
    <Amt Ccy="EUR">250.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>{book}
    <BookgDt><Dt>2026-11-02</Dt></BookgDt><ValDt><Dt>2026-11-03</Dt></ValDt>
    <AcctSvcrRef>BK-1</AcctSvcrRef>{domain}
    <NtryDtls><TxDtls><Refs><InstrId>ins_1</InstrId><EndToEndId>top_1</EndToEndId></Refs></TxDtls></NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">100.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>{book}
    <BookgDt><Dt>2026-11-10</Dt></BookgDt><ValDt><Dt>2026-11-10</Dt></ValDt>
    <AcctSvcrRef>BK-2</AcctSvcrRef>{domain}
    <NtryDtls>
     <Btch><PmtInfId>stl_3</PmtInfId><NbOfTxs>2</NbOfTxs></Btch>
     <TxDtls><Refs><AcctSvcrRef>BK-2a</AcctSvcrRef><EndToEndId>po_a</EndToEndId></Refs>{po_a}</TxDtls>
     <TxDtls><Refs><AcctSvcrRef>BK-2b</AcctSvcrRef><EndToEndId>po_b</EndToEndId></Refs>{po_b}</TxDtls>
    </NtryDtls>
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>{pending}
    <BookgDt><Dt>2026-11-30</Dt></BookgDt>{domain}
   </Ntry>
   <Ntry>
    <Amt Ccy="EUR">250.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>{book}
    <BookgDt><Dt>2026-11-20</Dt></BookgDt><ValDt><Dt>2026-11-03</Dt></ValDt>
    <AcctSvcrRef>BK-4</AcctSvcrRef>{domain}
    <NtryDtls><TxDtls><Refs><EndToEndId>top_1</EndToEndId></Refs></TxDtls></NtryDtls>
   </Ntry>
  </{report}>
 </{root}>
</Document>
"#
    )
}

fn day(text: &str) -> i32 {
    parse_day(text).unwrap()
}

/// What every version must read to, written out rather than taken from one version's parse.
fn expected() -> Statement {
    let line = |number, detail, direction, amount_minor, booking: &str, value: &str| Line {
        number,
        detail,
        direction,
        amount_minor,
        booking_day: day(booking),
        value_day: day(value),
        bank_reference: String::new(),
        reference: String::new(),
        other_references: Vec::new(),
        reversal: false,
        batch_count: None,
    };
    let top_up = Line {
        bank_reference: "BK-1".into(),
        reference: "top_1".into(),
        other_references: vec!["ins_1".into()],
        ..line(1, 0, Direction::Credit, 25_000, "2026-11-02", "2026-11-03")
    };
    let po_a = Line {
        bank_reference: "BK-2a".into(),
        reference: "po_a".into(),
        ..line(2, 1, Direction::Debit, 6_000, "2026-11-10", "2026-11-10")
    };
    let po_b = Line {
        bank_reference: "BK-2b".into(),
        reference: "po_b".into(),
        ..line(2, 2, Direction::Debit, 4_000, "2026-11-10", "2026-11-10")
    };
    let reversal = Line {
        bank_reference: "BK-4".into(),
        reference: "top_1".into(),
        reversal: true,
        ..line(4, 0, Direction::Debit, 25_000, "2026-11-20", "2026-11-03")
    };
    Statement {
        id: "EUR-2026-11".into(),
        account: "DE89370400440532013000".into(),
        currency: 978,
        from_day: day("2026-11-01"),
        to_day: day("2026-11-30"),
        opening_minor: Some(100_000),
        closing_minor: Some(90_000),
        pending_lines: 1,
        lines: vec![top_up, po_a, po_b, reversal],
    }
}

#[test]
fn every_camt053_version_from_02_to_13_reads_to_the_same_statement() {
    let expected = expected();
    assert_eq!(expected.balance_difference(), None, "1000 + 250 - 60 - 40 - 250 = 900");
    for version in 2..=13 {
        let xml = document(Message::Statement, version);
        let nested = xml.contains("<Sts><Cd>");
        assert_eq!(nested, version >= 8, "the layout of .{version:02}");
        let parsed = camt::parse_all(xml.as_bytes())
            .unwrap_or_else(|e| panic!("camt.053.001.{version:02}: {e}"));
        assert_eq!(parsed, std::slice::from_ref(&expected), "camt.053.001.{version:02}");
    }
}

#[test]
fn camt054_notifications_read_to_the_same_statement_in_old_and_new_versions() {
    let expected = expected();
    for version in [2, 4, 7, 8, 13] {
        let xml = document(Message::Notification, version);
        let parsed = camt::parse_all(xml.as_bytes())
            .unwrap_or_else(|e| panic!("camt.054.001.{version:02}: {e}"));
        assert_eq!(parsed, std::slice::from_ref(&expected), "camt.054.001.{version:02}");
    }
}

#[test]
fn versions_outside_02_to_13_are_refused_naming_the_namespace_and_the_range() {
    for message in [Message::Statement, Message::Notification] {
        let (name, _, _) = message.names();
        for version in [1, 14] {
            let xml = document(message, version);
            let err = camt::parse_all(xml.as_bytes()).unwrap_err();
            let ImportError::Invalid { at, message } = &err else {
                panic!("{name}.001.{version:02}: {err:?}");
            };
            assert_eq!(at, "line 2, Document", "{name}.001.{version:02}");
            let namespace = format!("urn:iso:std:iso:20022:tech:xsd:{name}.001.{version:02}");
            assert!(
                message.contains(&format!("`{namespace}` is not a message read here")),
                "{err}"
            );
            assert!(message.contains("versions 02 to 13"), "{err}");
        }
    }
}

#[test]
fn a_status_other_than_booked_is_pending_in_both_shapes() {
    // The entry's status written the other way round from its version's layout: a bank that
    // keeps the old shape after moving to .08 is still read, and a pending entry never becomes
    // a line whichever shape it has.
    let old_in_new = document(Message::Statement, 8)
        .replace("<Sts><Cd>BOOK</Cd></Sts>", "<Sts>BOOK</Sts>")
        .replace("<Sts><Cd>PDNG</Cd></Sts>", "<Sts>PDNG</Sts>");
    let new_in_old = document(Message::Statement, 7)
        .replace("<Sts>BOOK</Sts>", "<Sts><Cd>BOOK</Cd></Sts>")
        .replace("<Sts>PDNG</Sts>", "<Sts><Cd>PDNG</Cd></Sts>");
    for xml in [old_in_new, new_in_old] {
        assert_eq!(camt::parse_all(xml.as_bytes()).unwrap(), [expected()]);
    }
    // Every entry pending: no line, each counted.
    let all_pending = document(Message::Statement, 13).replace("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>");
    let s = camt::parse_all(all_pending.as_bytes()).unwrap().pop().unwrap();
    assert_eq!((s.lines.len(), s.pending_lines), (0, 4));
}
