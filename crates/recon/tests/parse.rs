//! Statement files: real-shaped samples parse to the same statement in both formats, and
//! malformed files are refused with the place at fault.

use huifu_recon::statement::parse_day;
use huifu_recon::{camt053, csv_layout, parse, Direction, Format, ImportError};

const CAMT: &str = include_str!("data/camt053_day.xml");
const CSV: &str = include_str!("data/statement_day.csv");

fn at(error: ImportError) -> (String, String) {
    match error {
        ImportError::Invalid { at, message } => (at, message),
        other => panic!("expected an invalid-file error, got {other:?}"),
    }
}

#[test]
fn a_camt053_day_statement_parses_with_its_booked_entries() {
    let s = camt053::parse(CAMT.as_bytes()).unwrap();
    assert_eq!(s.id, "STMT-20261126-CLR1");
    assert_eq!(s.account, "6222021001123456789");
    assert_eq!(s.currency, 156);
    assert_eq!(
        (s.from_day, s.to_day),
        (parse_day("2026-11-26").unwrap(), parse_day("2026-11-26").unwrap())
    );
    assert_eq!((s.opening_minor, s.closing_minor), (Some(100_000), Some(106_725)));
    // The pending entry (Sts PDNG) is not booked: four lines, numbered by position.
    let numbers: Vec<u32> = s.lines.iter().map(|l| l.number).collect();
    assert_eq!(numbers, [1, 2, 3, 5]);
    let first = &s.lines[0];
    assert_eq!((first.direction, first.amount_minor), (Direction::Credit, 20_000));
    assert_eq!(
        (first.reference.as_str(), first.bank_reference.as_str()),
        ("top_17", "ICBC26112600001")
    );
    assert_eq!(s.lines[1].value_day, s.lines[1].booking_day + 1);
    assert_eq!((s.lines[2].direction, s.lines[2].reference.as_str()), (Direction::Debit, "stl_3"));
    // NOTPROVIDED is no reference; a booking date-time counts by its date.
    assert_eq!(s.lines[3].reference, "");
    assert_eq!(s.lines[3].booking_day, s.from_day);
}

#[test]
fn the_csv_layout_reads_the_same_statement() {
    let from_csv = csv_layout::parse(CSV.as_bytes()).unwrap();
    let from_xml = camt053::parse(CAMT.as_bytes()).unwrap();
    assert_eq!(from_csv.id, from_xml.id);
    assert_eq!(from_csv.currency, from_xml.currency);
    let strip = |s: &huifu_recon::Statement| -> Vec<_> {
        s.lines
            .iter()
            .map(|l| {
                (
                    l.direction,
                    l.amount_minor,
                    l.booking_day,
                    l.value_day,
                    l.reference.clone(),
                    l.bank_reference.clone(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&from_csv), strip(&from_xml));
    // CSV lines are numbered by their line in the file (the header is line 1).
    assert_eq!(from_csv.lines.iter().map(|l| l.number).collect::<Vec<_>>(), [2, 3, 4, 5]);
}

#[test]
fn both_writers_roundtrip_through_their_parsers() {
    let s = camt053::parse(CAMT.as_bytes()).unwrap();
    let again = camt053::parse(camt053::write(&s, "2026-11-27T02:10:00Z").as_bytes()).unwrap();
    let renumber = |mut s: huifu_recon::Statement| {
        for (i, l) in s.lines.iter_mut().enumerate() {
            l.number = u32::try_from(i).unwrap();
        }
        // Pending entries are counted, not written.
        s.pending_lines = 0;
        s
    };
    assert_eq!(renumber(again), renumber(s.clone()));
    let mut no_balances = s.clone();
    no_balances.opening_minor = None;
    no_balances.closing_minor = None;
    let from_csv = csv_layout::parse(csv_layout::write(&no_balances).as_bytes()).unwrap();
    assert_eq!(renumber(from_csv), renumber(no_balances));
}

#[test]
fn a_statement_without_movements_roundtrips_in_csv() {
    let mut s = csv_layout::parse(CSV.as_bytes()).unwrap();
    s.lines.clear();
    let text = csv_layout::write(&s);
    assert_eq!(text.lines().count(), 2);
    assert_eq!(csv_layout::parse(text.as_bytes()).unwrap(), s);
}

#[test]
fn malformed_camt053_is_refused_naming_the_element_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (replace, with, expected place, expected message part)
        ("<Amt Ccy=\"CNY\">35.50</Amt>", "<Amt Ccy=\"CNY\">35.505</Amt>", "line 58, Document/BkToCstmrStmt/Stmt/Ntry[2]/Amt", "35.505"),
        ("<Amt Ccy=\"CNY\">35.50</Amt>", "<Amt Ccy=\"USD\">35.50</Amt>", "Ntry[2]/Amt", "USD"),
        ("<CdtDbtInd>DBIT</CdtDbtInd>\n        <Sts><Cd>BOOK</Cd></Sts>\n        <BookgDt><Dt>2026-11-26</Dt></BookgDt>\n        <ValDt><Dt>2026-11-26</Dt></ValDt>\n        <AcctSvcrRef>ICBC26112600003",
         "<CdtDbtInd>DR</CdtDbtInd>\n        <Sts><Cd>BOOK</Cd></Sts>\n        <BookgDt><Dt>2026-11-26</Dt></BookgDt>\n        <ValDt><Dt>2026-11-26</Dt></ValDt>\n        <AcctSvcrRef>ICBC26112600003",
         "Ntry[3]/CdtDbtInd", "DR"),
        ("<BookgDt><Dt>2026-11-26</Dt></BookgDt>\n        <ValDt><Dt>2026-11-27</Dt>", "<BookgDt><Dt>2026-11-31</Dt></BookgDt>\n        <ValDt><Dt>2026-11-27</Dt>", "line 61, Document/BkToCstmrStmt/Stmt/Ntry[2]/BookgDt", "2026-11-31"),
        ("<BookgDt><Dt>2026-11-26</Dt></BookgDt>\n        <ValDt><Dt>2026-11-27</Dt>", "<BookgDt><Dt>2026-11-28</Dt></BookgDt>\n        <ValDt><Dt>2026-11-27</Dt>", "Ntry[2]/BookgDt", "outside the statement period"),
        ("<Id>STMT-20261126-CLR1</Id>", "", "Document/BkToCstmrStmt/Stmt", "missing Id"),
        ("</Ntry>\n    </Stmt>", "</Ntry>\n    </Stmnt>", "line 90", "not well-formed"),
        ("<EndToEndId>top_17</EndToEndId>", "<EndToEndId>top_17_and_a_reference_far_too_long_for_iso</EndToEndId>", "line 50, Document/BkToCstmrStmt/Stmt/Ntry[1]/NtryDtls/TxDtls/Refs/EndToEndId", "longer than 35"),
    ];
    for (from, to, place, message) in cases {
        assert!(CAMT.contains(from), "the sample holds {from}");
        let bad = CAMT.replacen(from, to, 1);
        let (at, msg) = at(camt053::parse(bad.as_bytes()).unwrap_err());
        assert!(at.contains(place), "{from} -> {to}: at `{at}`, expected `{place}`");
        assert!(msg.contains(message), "{from} -> {to}: message `{msg}`, expected `{message}`");
    }
}

#[test]
fn a_statement_that_does_not_add_up_is_read_and_flagged() {
    let from = "<Cd>CLBD</Cd></CdOrPrtry></Tp>\n        <Amt Ccy=\"CNY\">1067.25</Amt>";
    assert!(CAMT.contains(from));
    let off = CAMT.replacen(from, &from.replace("1067.25", "1067.26"), 1);
    assert_eq!(camt053::parse(off.as_bytes()).unwrap().balance_difference(), Some(1));
    assert_eq!(camt053::parse(CAMT.as_bytes()).unwrap().balance_difference(), None);
}

#[test]
fn files_that_are_not_statements_are_refused() {
    let (at_, _) = at(camt053::parse(b"<Invoice><Id>1</Id></Invoice>").unwrap_err());
    assert!(at_.starts_with("line 1, Invoice"), "{at_}");
    let (at_, msg) = at(camt053::parse(b"<Document><BkToCstmrStmt/></Document>").unwrap_err());
    assert_eq!((at_.as_str(), msg.contains("no Stmt")), ("Document/BkToCstmrStmt", true));
    let second = "<Stmt><Id>X</Id><FrToDt><FrDtTm>2026-11-26T00:00:00</FrDtTm><ToDtTm>2026-11-26T23:59:59</ToDtTm></FrToDt><Acct><Id><IBAN>CH9300762011623852957</IBAN></Id><Ccy>CNY</Ccy></Acct></Stmt>";
    let two = CAMT.replace("</Stmt>", &format!("</Stmt>{second}"));
    let (_, msg) = at(camt053::parse(two.as_bytes()).unwrap_err());
    assert!(msg.contains("2 statements"), "{msg}");
    // A second statement without an account is refused, naming it.
    let two = CAMT.replace("</Stmt>", "</Stmt><Stmt><Id>X</Id></Stmt>");
    let (at_, msg) = at(huifu_recon::camt::parse_all(two.as_bytes()).unwrap_err());
    assert!(at_.contains("Document/BkToCstmrStmt/Stmt[2]") && msg.contains("Acct"), "{at_}: {msg}");
    let (at_, _) = at(camt053::parse(b"\n\n<Document>\xff</Document>").unwrap_err());
    assert_eq!(at_, "line 3");
}

#[test]
fn malformed_csv_is_refused_naming_the_line_and_column() {
    let lines: Vec<&str> = CSV.lines().collect();
    let with = |n: usize, line: &str| {
        let mut l = lines.clone();
        l[n] = line;
        l.join("\n")
    };
    let cases = [
        (with(2, &lines[2].replace("35.50", "35.5.0")), "line 3", "column amount"),
        (with(2, &lines[2].replace(",CRDT,", ",IN,")), "line 3", "column direction"),
        (with(3, &lines[3].replace(",DBIT,168.25", ",DBIT,168.25,extra")), "line 4", "12 columns"),
        (
            with(
                1,
                &lines[1].replacen(
                    "2026-11-26,2026-11-26,2026-11-26",
                    "2026-11-26,2026-11-26,2026-11-25",
                    1,
                ),
            ),
            "line 2",
            "column booking_date",
        ),
        (with(4, &lines[4].replace(",CNY,", ",EUR,")), "line 5", "column currency"),
        (with(0, "id,account"), "line 1", "header"),
    ];
    for (text, line, place) in cases {
        let (at_, msg) = at(csv_layout::parse(text.as_bytes()).unwrap_err());
        assert!(at_.starts_with(line), "at `{at_}`, expected {line}");
        assert!(at_.contains(place) || msg.contains(place), "`{at_}: {msg}`, expected {place}");
    }
    let (at_, _) = at(csv_layout::parse(lines[0].as_bytes()).unwrap_err());
    assert_eq!(at_, "line 2");
}

#[test]
fn size_is_checked_before_parsing_and_the_format_is_sniffed() {
    let big = vec![b' '; huifu_recon::constants::STATEMENT_BYTES_MAX + 1];
    assert!(matches!(parse(Format::Csv, &big), Err(ImportError::TooLarge { .. })));
    assert_eq!(Format::sniff(CAMT.as_bytes()), Format::Camt053);
    assert_eq!(Format::sniff(CSV.as_bytes()), Format::Csv);
    assert_eq!(parse(Format::sniff(CSV.as_bytes()), CSV.as_bytes()).unwrap().lines.len(), 4);
}
