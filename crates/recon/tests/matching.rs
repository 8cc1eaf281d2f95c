//! The matcher: every state, one-to-many, the date window, and convergence as statements come.

use std::collections::HashMap;

use huifu_recon::{
    reconcile, report, Direction, Entry, Item, Line, MatchConfig, Rule, State, Statement,
};

const DAY: i32 = 20_418;

fn entry(
    id: u128,
    direction: Direction,
    amount: u64,
    day: i32,
    reference: &str,
    batch: &str,
) -> Entry {
    Entry {
        transfer_id: id,
        direction,
        amount_minor: amount,
        timestamp_ns: huifu_recon::statement::ns_of_day(day) + u64::try_from(id).unwrap(),
        day,
        reference: reference.into(),
        batch: batch.into(),
    }
}

fn line(n: u32, direction: Direction, amount: u64, day: i32, reference: &str) -> Line {
    Line {
        bank_reference: format!("B{day}-{n}"),
        ..Line::new(n, direction, amount, day, reference)
    }
}

fn statement(id: &str, from: i32, to: i32, lines: Vec<Line>) -> Statement {
    Statement {
        id: id.into(),
        account: "CLR-1".into(),
        currency: 156,
        from_day: from,
        to_day: to,
        opening_minor: None,
        closing_minor: None,
        pending_lines: 0,
        lines,
    }
}

/// The state of the item holding line `n` of statement 0.
fn line_state(items: &[Item], s: &[Statement], n: u32) -> (State, Rule, Vec<usize>) {
    let item = items
        .iter()
        .find(|i| i.lines.iter().any(|&(st, l)| st == 0 && s[0].lines[l].number == n))
        .unwrap_or_else(|| panic!("line {n} in no item"));
    (item.state, item.rule, item.entries.clone())
}

fn entry_state(items: &[Item], e: usize) -> State {
    let holding: Vec<&Item> = items.iter().filter(|i| i.entries.contains(&e)).collect();
    assert_eq!(holding.len(), 1, "entry {e} in exactly one item");
    holding[0].state
}

use Direction::{Credit, Debit};

#[test]
fn every_state_and_a_batch_booked_as_one_line() {
    let entries = vec![
        entry(1, Credit, 20_000, DAY, "top_1", ""),
        entry(2, Debit, 5_000, DAY, "wdr_2", ""),
        entry(3, Credit, 3_550, DAY, "pay_3", ""),
        entry(4, Debit, 10_000, DAY, "po_40", "stl_9"),
        entry(5, Debit, 2_500, DAY, "po_41", "stl_9"),
        entry(6, Debit, 700, DAY, "po_42", "stl_9"),
        entry(7, Credit, 8_800, DAY, "top_7", ""),
        entry(8, Credit, 1_234, DAY, "", ""),
    ];
    let lines = vec![
        line(1, Credit, 20_000, DAY, "top_1"),
        line(2, Debit, 5_001, DAY, "wdr_2"),
        line(3, Credit, 3_550, DAY, "pay_3"),
        line(4, Debit, 13_200, DAY, "stl_9"),
        line(5, Credit, 999, DAY, ""),
        line(6, Credit, 1_234, DAY, ""),
    ];
    let mut lines = lines;
    let copy = lines[2].clone();
    lines.push(Line { number: 7, ..copy });
    let s = vec![statement("S1", DAY, DAY, lines)];
    let items = reconcile(&s, &entries, &MatchConfig::default());

    assert_eq!(line_state(&items, &s, 1), (State::Matched, Rule::Reference, vec![0]));
    assert_eq!(line_state(&items, &s, 2), (State::AmountMismatch, Rule::Reference, vec![1]));
    assert_eq!(line_state(&items, &s, 3), (State::Matched, Rule::Reference, vec![2]));
    // One line, three payouts of the settlement run.
    assert_eq!(line_state(&items, &s, 4), (State::Matched, Rule::Batch, vec![3, 4, 5]));
    assert_eq!(line_state(&items, &s, 5).0, State::UnmatchedBank);
    assert_eq!(line_state(&items, &s, 6), (State::Matched, Rule::AmountDate, vec![7]));
    assert_eq!(line_state(&items, &s, 7).0, State::Duplicate);
    assert_eq!(entry_state(&items, 6), State::UnmatchedLedger);
    for e in 0..entries.len() {
        entry_state(&items, e);
    }
    let lines_seen: usize = items.iter().map(|i| i.lines.len()).sum();
    assert_eq!(lines_seen, s[0].lines.len(), "every line in exactly one item");

    let r = report(&s, 0, &entries, &items, &HashMap::new());
    let t = r.tally(State::Matched);
    assert_eq!((t.lines, t.entries), (4, 6));
    assert_eq!(t.lines_minor, t.entries_minor);
    assert_eq!(r.exceptions.len(), 4);
    let mismatch = r.exceptions.iter().find(|e| e.state == State::AmountMismatch).unwrap();
    assert_eq!((mismatch.bank_minor, mismatch.ledger_minor), (5_001, 5_000));
    assert_eq!(mismatch.key, "line:S1:2");
    let unmatched = r.exceptions.iter().find(|e| e.state == State::UnmatchedLedger).unwrap();
    assert_eq!(unmatched.key, "entry:7");
}

#[test]
fn a_batch_whose_sum_differs_is_one_amount_mismatch() {
    let entries = vec![
        entry(1, Debit, 100, DAY, "po_1", "stl_2"),
        entry(2, Debit, 200, DAY, "po_2", "stl_2"),
    ];
    let s = vec![statement("S", DAY, DAY, vec![line(1, Debit, 299, DAY, "stl_2")])];
    let items = reconcile(&s, &entries, &MatchConfig::default());
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].state, items[0].rule, items[0].entries.clone()),
        (State::AmountMismatch, Rule::Batch, vec![0, 1])
    );
}

#[test]
fn the_date_window_bounds_both_kinds_of_match() {
    let entries = vec![entry(1, Credit, 500, DAY, "top_1", ""), entry(2, Credit, 600, DAY, "", "")];
    let lines = vec![line(1, Credit, 500, DAY + 2, "top_1"), line(2, Credit, 600, DAY + 2, "")];
    let s = vec![statement("S", DAY, DAY + 2, lines)];
    let wide = reconcile(&s, &entries, &MatchConfig { date_window_days: 2 });
    assert!(wide.iter().all(|i| i.state == State::Matched && i.lag_days == 2));
    let narrow = reconcile(&s, &entries, &MatchConfig { date_window_days: 1 });
    let states: Vec<State> = narrow.iter().map(|i| i.state).collect();
    assert_eq!(
        states,
        [
            State::UnmatchedBank,
            State::UnmatchedBank,
            State::UnmatchedLedger,
            State::UnmatchedLedger
        ]
    );
}

#[test]
fn a_line_with_a_reference_the_ledger_lacks_never_takes_another_operations_entry() {
    let entries = vec![entry(1, Credit, 500, DAY, "top_1", "")];
    let s = vec![statement("S", DAY, DAY, vec![line(1, Credit, 500, DAY, "top_999")])];
    let states: Vec<State> =
        reconcile(&s, &entries, &MatchConfig::default()).iter().map(|i| i.state).collect();
    assert_eq!(states, [State::UnmatchedBank, State::UnmatchedLedger]);
    // Without a reference it may (the bank dropped it): amount and date decide.
    let s = vec![statement("S", DAY, DAY, vec![line(1, Credit, 500, DAY, "")])];
    let items = reconcile(&s, &entries, &MatchConfig::default());
    assert_eq!((items.len(), items[0].state, items[0].rule), (1, State::Matched, Rule::AmountDate));
}

#[test]
fn a_second_line_for_a_reference_already_booked_is_a_duplicate() {
    let entries = vec![entry(1, Credit, 500, DAY, "top_1", "")];
    let mut again = line(2, Credit, 500, DAY, "top_1");
    again.bank_reference = "OTHER".into();
    let s = vec![statement("S", DAY, DAY, vec![line(1, Credit, 500, DAY, "top_1"), again])];
    let items = reconcile(&s, &entries, &MatchConfig::default());
    assert_eq!(line_state(&items, &s, 2).0, State::Duplicate);
}

#[test]
fn a_late_booking_in_the_next_statement_converges_and_resolutions_are_kept() {
    let entries =
        vec![entry(1, Credit, 500, DAY, "top_1", ""), entry(2, Credit, 700, DAY, "top_2", "")];
    let today = statement("D", DAY, DAY, vec![line(1, Credit, 500, DAY, "top_1")]);
    let mut resolutions = HashMap::new();
    let first = reconcile(std::slice::from_ref(&today), &entries, &MatchConfig::default());
    let r = report(std::slice::from_ref(&today), 0, &entries, &first, &resolutions);
    assert_eq!(r.exceptions.len(), 1);
    assert_eq!(r.exceptions[0].state, State::UnmatchedLedger);
    resolutions.insert(
        r.exceptions[0].key.clone(),
        huifu_recon::Resolution { by: "ops@platform".into(), reason: "bank booked it late".into() },
    );
    let r = report(std::slice::from_ref(&today), 0, &entries, &first, &resolutions);
    assert_eq!(r.open_exceptions(), 0);
    assert_eq!(r.exceptions[0].resolution.as_ref().unwrap().by, "ops@platform");

    let tomorrow = statement("D+1", DAY + 1, DAY + 1, vec![line(1, Credit, 700, DAY + 1, "top_2")]);
    let both = vec![today, tomorrow];
    let items = reconcile(&both, &entries, &MatchConfig::default());
    let r = report(&both, 0, &entries, &items, &resolutions);
    assert!(r.exceptions.is_empty(), "{:?}", r.exceptions);
    assert_eq!((r.tally(State::Matched).entries, r.matched_late), (2, 1));
    // The same inputs give the same result: re-running changes nothing.
    assert_eq!(reconcile(&both, &entries, &MatchConfig::default()), items);
}

#[test]
fn the_same_line_in_two_overlapping_statements_counts_once() {
    let entries = vec![entry(1, Credit, 500, DAY, "top_1", "")];
    let a = statement("A", DAY, DAY, vec![line(1, Credit, 500, DAY, "top_1")]);
    let b = statement("B", DAY, DAY + 1, vec![line(1, Credit, 500, DAY, "top_1")]);
    let items = reconcile(&[b, a], &entries, &MatchConfig::default());
    let states: Vec<State> = items.iter().map(|i| i.state).collect();
    assert_eq!(states, [State::Matched, State::Duplicate]);
}
