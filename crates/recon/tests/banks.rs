//! Statements in the shapes banks send, written by hand from the ISO 20022 message definitions
//! of camt.053.001.02 and camt.054.001.08 (the element names and order of their published
//! schemas): batch bookings, batch totals, reversals, plain and nested `Sts`, balances without
//! a credit/debit indicator, a currency outside the first few.

use huifu_recon::{camt, matcher, Direction, Entry, MatchConfig, State};

const V02: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
 <BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-12-01T06:00:00</CreDtTm></GrpHdr>
  <Stmt><Id>CH-NOV</Id>
   <FrToDt><FrDtTm>2026-11-01T00:00:00</FrDtTm><ToDtTm>2026-11-30T23:59:59</ToDtTm></FrToDt>
   <Acct><Id><IBAN>CH9300762011623852957</IBAN></Id><Ccy>CHF</Ccy></Acct>
   <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="CHF">100.00</Amt><Dt><Dt>2026-11-01</Dt></Dt></Bal>
   <Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="CHF">115.00</Amt><Dt><Dt>2026-11-30</Dt></Dt></Bal>
   <Ntry><Amt Ccy="CHF">30.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-03</Dt></BookgDt><AcctSvcrRef>E1</AcctSvcrRef>
    <NtryDtls><Btch><NbOfTxs>2</NbOfTxs></Btch>
     <TxDtls><Refs><EndToEndId>top_1</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="CHF">10.00</Amt></TxAmt></AmtDtls></TxDtls>
     <TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs><AmtDtls><TxAmt><Amt Ccy="CHF">20.00</Amt></TxAmt></AmtDtls>
      <RmtInf><Ustrd>top_2</Ustrd></RmtInf></TxDtls>
    </NtryDtls></Ntry>
   <Ntry><Amt Ccy="CHF">15.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-20</Dt></BookgDt>
    <NtryDtls><Btch><PmtInfId>stl_9</PmtInfId><NbOfTxs>2</NbOfTxs><TtlAmt Ccy="CHF">15.00</TtlAmt></Btch></NtryDtls></Ntry>
   <Ntry><Amt Ccy="CHF">5.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-21</Dt></BookgDt>
    <NtryDtls><TxDtls><Refs><EndToEndId>top_3</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="CHF">5.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd><Sts>BOOK</Sts>
    <BookgDt><Dt>2026-11-22</Dt></BookgDt>
    <NtryDtls><TxDtls><Refs><EndToEndId>top_3</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
   <Ntry><Amt Ccy="CHF">7.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>PDNG</Sts>
    <BookgDt><Dt>2026-11-30</Dt></BookgDt></Ntry>
  </Stmt>
 </BkToCstmrStmt>
</Document>"#;

const V08_054: &str = r#"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
 <BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>N1</MsgId><CreDtTm>2026-11-26T10:00:00</CreDtTm></GrpHdr>
  <Ntfctn><Id>N1-1</Id><Acct><Id><Othr><Id>SE-1</Id></Othr></Id><Ccy>SEK</Ccy></Acct>
   <Ntry><Amt Ccy="SEK">12.50</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>
    <BookgDt><Dt>2026-11-26</Dt></BookgDt>
    <NtryDtls><TxDtls><Refs><InstrId>top_5</InstrId><EndToEndId>NOTPROVIDED</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
  </Ntfctn>
 </BkToCstmrDbtCdtNtfctn>
</Document>"#;

fn entry(
    id: u128,
    direction: Direction,
    amount_minor: u64,
    day: i32,
    reference: &str,
    batch: &str,
) -> Entry {
    Entry {
        transfer_id: id,
        direction,
        amount_minor,
        timestamp_ns: 0,
        day,
        reference: reference.into(),
        batch: batch.into(),
    }
}

#[test]
fn a_monthly_camt053_02_with_batches_and_a_reversal_reads_and_matches() {
    let s = camt::parse_all(V02.as_bytes()).unwrap().pop().unwrap();
    assert_eq!((s.currency, s.to_day - s.from_day), (756, 29));
    assert_eq!(s.pending_lines, 1);
    assert_eq!(s.balance_difference(), None, "100 + 30 - 15 + 5 - 5 = 115");
    let shape: Vec<_> = s.lines.iter().map(|l| (l.number, l.detail, l.amount_minor)).collect();
    assert_eq!(shape, [(1, 1, 1_000), (1, 2, 2_000), (2, 0, 1_500), (3, 0, 500), (4, 0, 500)]);
    assert_eq!(s.lines[1].reference, "top_2");
    assert_eq!(s.lines[2].batch_count, Some(2));
    let d = s.lines[0].booking_day;
    let entries = [
        entry(1, Direction::Credit, 1_000, d, "top_1", ""),
        entry(2, Direction::Credit, 2_000, d, "top_2", ""),
        entry(3, Direction::Debit, 1_000, s.lines[2].booking_day, "po_a", "stl_9"),
        entry(4, Direction::Debit, 500, s.lines[2].booking_day, "po_b", "stl_9"),
        entry(5, Direction::Credit, 500, s.lines[3].booking_day, "top_3", ""),
    ];
    let items = matcher::reconcile(std::slice::from_ref(&s), &entries, &MatchConfig::default());
    let state_of_entry = |e: usize| items.iter().find(|i| i.entries.contains(&e)).map(|i| i.state);
    assert_eq!(state_of_entry(0), Some(State::Matched));
    assert_eq!(state_of_entry(1), Some(State::Matched), "by the remittance reference");
    assert_eq!(state_of_entry(2), Some(State::Matched), "1:N against the settlement batch");
    // The bank reversed top_3: the line and its reversal pair, the movement is unmatched.
    assert!(items.iter().any(|i| i.state == State::Reversed && i.lines == [(0, 3), (0, 4)]));
    assert_eq!(state_of_entry(4), Some(State::UnmatchedLedger));
}

#[test]
fn batch_entries_that_do_not_add_up_and_too_many_decimals_are_refused_naming_the_entry() {
    let bad = V02.replacen("<Amt Ccy=\"CHF\">20.00</Amt>", "<Amt Ccy=\"CHF\">21.00</Amt>", 1);
    let e = camt::parse_all(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("Ntry[1]/Amt") && e.contains("sum of its 2 transactions"), "{e}");
    let bad = V02.replacen("<Amt Ccy=\"CHF\">5.00</Amt>", "<Amt Ccy=\"CHF\">5.001</Amt>", 1);
    let e = camt::parse_all(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("Ntry[3]/Amt") && e.contains("more decimals than CHF"), "{e}");
    let bad = V02.replace("camt.053.001.02", "camt.053.001.14");
    assert!(camt::parse_all(bad.as_bytes()).unwrap_err().to_string().contains("versions 02 to 13"));
}

#[test]
fn a_camt054_notification_without_a_period_takes_its_entries_days() {
    let s = camt::parse_all(V08_054.as_bytes()).unwrap().pop().unwrap();
    assert_eq!((s.id.as_str(), s.currency, s.from_day), ("N1-1", 752, s.to_day));
    assert_eq!(s.lines[0].reference, "top_5", "the instruction id when there is no end-to-end id");
}
