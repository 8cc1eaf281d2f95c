//! SWIFT MT940 statements in the shapes banks send, written by hand after public layouts: the
//! SWIFT MT940 field specification (fields 20, 25, 28C, 60F/M, 61, 86, 62F/M, 64, 65; amounts
//! with a decimal comma; `RC`/`RD` reversals; the funds code), ING Netherlands' "MT940
//! Structured" format description (SWIFT blocks, the account as IBAN and currency, `:86:` as
//! `/EREF/…//CNTP/…//REMI/USTD//…/`, `/TRCD/` supplementary details), ABN AMRO's MT940 export
//! (the `ABNANL2A`/`940` header lines, `:28:`, `/TRTP/…/REMI/…/EREF/` without a closing slash),
//! Rabobank's (a `:940:` first line), and a German savings bank's export (`STARTUMSE`, account
//! as bank code/account number, `:86:` with a GVC code and `?20`–`?29` purpose subfields holding
//! `EREF+`, `KREF+`, `SVWZ+`, wrapped across lines). References are huifu's (`top_7`).

use std::io::BufReader;

use huifu_recon::statement::parse_day;
use huifu_recon::{matcher, mt940, parse_all, Direction, Entry, Format, MatchConfig, State};

const ING: &str = "{1:F01INGBNL2ABXXX0000000000}
{2:I940INGBNL2AXXXN}
{4:
:20:P261126000000001
:25:NL69INGB0123456789EUR
:28C:00000
:60F:C261125EUR662,23
:61:2611261126C1,56NTRFEREF//00000000001005
/TRCD/00100/
:86:/EREF/top_7//CNTP/NL32INGB0000012345/INGBNL2A/ING BANK NV INZAKE WEB///REMI/USTD//EV1000
1REP1000000T1000/
:61:2611261126D1,57NTRFPREF//00000000001006
/TRCD/00200/
:86:/PREF/stl_3//REMI/USTD//TOTAAL 2 VZ/
:62F:C261126EUR662,22
:64:C261126EUR662,22
:65:C261127EUR662,22
:86:/SUM/2/1/1,57/1,56/
-}{5:}
{1:F01INGBNL2ABXXX0000000000}{2:I940INGBNL2AXXXN}{4:
:20:P261126000000002
:25:NL20INGB0001234567EUR
:28C:00000
:60F:D261125EUR10,00
:61:2611261126C25,00NTRFtop_8//B2
:61:2611261126RC25,00NTRFtop_8//B3
:61:2611271127RD5,00NTRFNONREF//B4
:86:/EREF/wdr_9/
:62F:D261127EUR5,00
-}
";

const SPARKASSE: &str = ":20:STARTUMSE
:25:10020030/1234567
:28C:00000/001
:60F:C261125EUR1000,00
:61:2611261126CR50,00NTRFNONREF//ABC1
:86:166?00SEPA-GUTSCHRIFT?109310?20EREF+top_1?21SVWZ+Rechnung 4711?30
COBADEFFXXX?31DE89370400440532013000?32Max Mustermann
:61:2611261126DR20,00NDDTNONREF
:86:105?00SEPA-LASTSCHRIFT?20EREF+wdr_?2142KREF+K-77?22SVWZ+po_1a?30B
IC?32Shop
:62F:C261126EUR1030,00
-
:20:STARTUMSE
:25:10020030/1234567
:28C:00000/001
:60F:C261126EUR1030,00
:61:2611271127CR10,00NTRFtop_2
:62F:C261127EUR1050,00
-
";

const ABN: &str = "ABNANL2A
940
ABNANL2A
:20:ABN AMRO BANK NV
:25:517852257
:28:19321/1
:60F:C261125EUR3236,28
:61:261126D1,21NMSCNONREF
:86:/TRTP/SEPA OVERBOEKING/IBAN/NL44RABO0123456789/BIC/RABONL2U/NAME/
JANSEN/REMI/po_5f/EREF/NOTPROVIDED
:62F:C261126EUR3235,07
-
";

/// Kuwaiti dinars have three decimals.
const KWD: &str = ":940:
:20:KW-1
:25:KW81CBKU0000000000001234560101
:28C:1/1
:60F:C261125KWD100,000
:61:261126C12,345NTRFtop_11
:62F:C261126KWD112,345
";

fn day(text: &str) -> i32 {
    parse_day(text).unwrap()
}

#[test]
fn ing_blocks_hold_two_statements_with_reversals() {
    let all = mt940::parse_all(ING.as_bytes()).unwrap();
    assert_eq!(all.len(), 2);
    let (a, b) = (&all[0], &all[1]);
    assert_eq!(a.id, "P261126000000001/00000/261126");
    assert_eq!(a.account, "NL69INGB0123456789", "the currency after the IBAN is not the account");
    assert_eq!(a.currency, 978);
    assert_eq!((a.from_day, a.to_day), (day("2026-11-26"), day("2026-11-26")));
    assert_eq!((a.opening_minor, a.closing_minor), (Some(66_223), Some(66_222)));
    assert_eq!(a.balance_difference(), None);
    assert_eq!(a.lines.len(), 2);
    let l = &a.lines[0];
    assert_eq!((l.direction, l.amount_minor, l.number), (Direction::Credit, 156, 8));
    assert_eq!((l.reference.as_str(), l.bank_reference.as_str()), ("top_7", "00000000001005"));
    assert_eq!(
        l.other_references,
        ["EREF", "EV10001REP1000000T1000"],
        "the customer reference, then the one-word remittance, are tried after EREF"
    );
    let l = &a.lines[1];
    assert_eq!((l.direction, l.amount_minor), (Direction::Debit, 157));
    assert_eq!(
        (l.reference.as_str(), l.other_references.as_slice()),
        ("PREF", &["stl_3".into()][..])
    );

    assert_eq!(b.account, "NL20INGB0001234567");
    assert_eq!((b.opening_minor, b.closing_minor), (Some(-1_000), Some(-500)));
    assert_eq!(b.balance_difference(), None);
    assert_eq!((b.from_day, b.to_day), (day("2026-11-26"), day("2026-11-27")));
    let marks: Vec<_> = b.lines.iter().map(|l| (l.direction, l.reversal)).collect();
    assert_eq!(
        marks,
        [(Direction::Credit, false), (Direction::Debit, true), (Direction::Credit, true)],
        "RC takes a credit back (a debit), RD a debit (a credit)"
    );
    assert_eq!(b.lines[0].reference, "top_8", "the customer reference without an EREF");
    assert_eq!(b.lines[2].reference, "wdr_9", "NONREF is no reference");
    assert_eq!(b.lines[2].booking_day, day("2026-11-27"));
}

#[test]
fn german_subfields_and_a_balance_that_does_not_add_up() {
    let all = parse_all(Format::Mt940, SPARKASSE.as_bytes()).unwrap();
    assert_eq!(all.len(), 2);
    let a = &all[0];
    assert_eq!(a.id, "STARTUMSE/00000/001/261126");
    assert_eq!(a.account, "10020030/1234567");
    let refs: Vec<_> =
        a.lines.iter().map(|l| (l.reference.as_str(), l.other_references.clone())).collect();
    assert_eq!(
        refs,
        [("top_1", vec![]), ("wdr_42", vec!["K-77".to_owned(), "po_1a".to_owned()])],
        "EREF+ across ?20/?21, KREF+ and a one-word SVWZ+; `Rechnung 4711` is no reference"
    );
    assert_eq!(a.lines[0].bank_reference, "ABC1");
    assert_eq!(a.balance_difference(), None);
    let b = &all[1];
    assert_eq!(b.id, "STARTUMSE/00000/001/261127", "unnumbered statements differ by date");
    assert_eq!(b.balance_difference(), Some(1_000), "the closing balance is 10,00 too high");
}

#[test]
fn abn_amro_header_lines_and_remittance_reference() {
    let s = mt940::parse_all(ABN.as_bytes()).unwrap().pop().unwrap();
    assert_eq!(s.id, "ABN AMRO BANK NV/19321/1/261126");
    assert_eq!(s.account, "517852257");
    let l = &s.lines[0];
    assert_eq!(
        (l.direction, l.amount_minor, l.reference.as_str()),
        (Direction::Debit, 121, "po_5f")
    );
    assert!(l.other_references.is_empty(), "NOTPROVIDED and NONREF are no references");
}

#[test]
fn three_decimal_currencies_take_three_decimals_and_no_more() {
    let s = mt940::parse_all(KWD.as_bytes()).unwrap().pop().unwrap();
    assert_eq!((s.currency, s.lines[0].amount_minor), (414, 12_345));
    assert_eq!(s.balance_difference(), None);
    let bad = KWD.replace("C12,345NTRF", "C12,3456NTRF");
    let e = mt940::parse_all(bad.as_bytes()).unwrap_err().to_string();
    assert_eq!(e, "line 6, :61:: `12,3456` has more decimals than KWD has (3)");
}

#[test]
fn a_small_read_buffer_reads_the_same() {
    for text in [ING, SPARKASSE, ABN, KWD] {
        let whole = mt940::parse_all(text.as_bytes()).unwrap();
        let streamed = mt940::read(BufReader::with_capacity(3, text.as_bytes())).unwrap();
        assert_eq!(whole, streamed);
        let crlf = text.replace('\n', "\r\n");
        assert_eq!(mt940::parse_all(crlf.as_bytes()).unwrap(), whole, "CRLF line ends");
    }
}

#[test]
fn bad_input_is_refused_naming_the_line() {
    let cases: [(&str, &str, &str); 12] = [
        (":61:261126C12,345NTRFtop_11", ":61:2611X6C12,345NTRFtop_11", "line 6, :61:"),
        (":61:261126C12,345NTRFtop_11", ":61:261126X12,345NTRFtop_11", "no mark C, D, RC or RD"),
        (":61:261126C12,345NTRFtop_11", ":61:261126C12.345NTRFtop_11", "decimal comma"),
        (":61:261126C12,345NTRFtop_11", ":61:261126C12,345XTRFtop_11", "transaction type"),
        (":61:261126C12,345NTRFtop_11", ":61:2611261340C12,345NTRF", "entry date"),
        (":60F:C261125KWD100,000", ":60F:C261125XYZ100,000", "line 5, :60F:: unknown currency"),
        (":60F:C261125KWD100,000", ":60F:X261125KWD100,000", "is not a balance"),
        (":62F:C261126KWD112,345", ":62F:C261126EUR112,34", "line 7, :62F:: currency `EUR`"),
        (":62F:C261126KWD112,345", ":62F:C261326KWD112,345", "`261326` is not a date"),
        (":62F:C261126KWD112,345", ":62F:C261126KWD112,345\nextra", "line 8: `extra`"),
        (":28C:1/1", ":28C:first", "line 4, :28C:: `first` is not a statement number"),
        (":25:KW81CBKU0000000000001234560101", ":99:x", "line 3, :99:: `:99:` is not a field"),
    ];
    for (from, to, expected) in cases {
        let text = KWD.replace(from, to);
        let e = mt940::parse_all(text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(expected), "{to}: {e}");
    }
    let no_closing = KWD.replace(":62F:C261126KWD112,345\n", "");
    let e = mt940::parse_all(no_closing.as_bytes()).unwrap_err().to_string();
    assert_eq!(
        e,
        "line 2: the message that starts here has no :62F: closing balance (it ends on line 6)"
    );
    let late = KWD.replace(":25:", ":61:261126C1,000NTRF\n:25:");
    let e = mt940::parse_all(late.as_bytes()).unwrap_err().to_string();
    assert!(e.starts_with("line 3, :61:: a statement line before the opening balance"), "{e}");
    for (text, expected) in [
        ("", "line 1: no MT940 message in the file"),
        ("hello world\n", "line 1: `hello world` is not an MT940 field"),
        (":25:X\n", "line 1, :25:: a message starts with :20:"),
        ("{1:F01X\n", "line 1: an unclosed SWIFT block"),
    ] {
        let e = mt940::parse_all(text.as_bytes()).unwrap_err().to_string();
        assert_eq!(e, expected);
    }
    let long = format!(":20:R\n:86:{}\n", "x".repeat(5_000));
    let e = mt940::parse_all(long.as_bytes()).unwrap_err().to_string();
    assert!(e.starts_with("line 2: longer than"), "{e}");
    let latin1 = b":20:R\n:25:K\xf6ln\n";
    let e = mt940::parse_all(latin1).unwrap_err().to_string();
    assert_eq!(e, "line 2: not UTF-8");
}

#[test]
fn format_is_told_by_content() {
    for text in [ING, SPARKASSE, KWD] {
        assert_eq!(Format::sniff(text.as_bytes()), Format::Mt940);
    }
    assert_eq!(Format::from_name("mt940"), Some(Format::Mt940));
    assert_eq!(Format::from_extension(Format::Mt940.extension()), Some(Format::Mt940));
}

#[test]
fn mt940_lines_reconcile_with_the_ledger() {
    let all = mt940::parse_all(ING.as_bytes()).unwrap();
    let d = day("2026-11-26");
    let entry = |id: u128, direction, amount_minor, reference: &str, batch: &str| Entry {
        transfer_id: id,
        direction,
        amount_minor,
        timestamp_ns: 0,
        day: d,
        reference: reference.into(),
        batch: batch.into(),
    };
    let entries = [
        entry(1, Direction::Credit, 156, "top_7", ""),
        entry(2, Direction::Debit, 100, "po_1", "stl_3"),
        entry(3, Direction::Debit, 57, "po_2", "stl_3"),
        entry(4, Direction::Credit, 500, "wdr_9", ""),
    ];
    let first = matcher::reconcile(&all[..1], &entries[..3], &MatchConfig::default());
    let states: Vec<_> = first.iter().map(|i| (i.state, i.entries.len())).collect();
    assert_eq!(states, [(State::Matched, 1), (State::Matched, 2)], "by EREF, by PREF's batch");
    let second = matcher::reconcile(&all[1..], &entries[3..], &MatchConfig::default());
    let states: Vec<_> = second.iter().map(|i| (i.state, i.lines.len())).collect();
    assert_eq!(
        states,
        [(State::Reversed, 2), (State::UnmatchedBank, 1), (State::UnmatchedLedger, 0)],
        "a credit and its reversal pair; an RD whose debit is on no statement takes no movement"
    );
}
