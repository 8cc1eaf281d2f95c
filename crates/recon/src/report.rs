//! What a run tells: the items that concern one statement, counted and summed per state, and
//! the exceptions with their keys for manual resolution.

use std::collections::HashMap;

use crate::entries::Entry;
use crate::matcher::{Item, State};
use crate::statement::{Day, Direction, Statement};

/// Counts and sums of one state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub items: u64,
    pub lines: u64,
    pub lines_minor: u128,
    pub entries: u64,
    pub entries_minor: u128,
}

/// A line or entry that did not match, with what an operator needs to look into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Stable across runs: `line:<statement id>:<line number>` or `entry:<transfer id, hex>`.
    pub key: String,
    pub state: State,
    pub direction: Direction,
    pub statement_id: String,
    pub line_number: u32,
    pub booking_day: Option<Day>,
    pub bank_minor: u64,
    pub ledger_minor: u64,
    pub ledger_day: Option<Day>,
    pub reference: String,
    pub bank_reference: String,
    pub transfer_ids: Vec<u128>,
    /// Who resolved it and why, if someone did.
    pub resolution: Option<Resolution>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub by: String,
    pub reason: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Per state, in `State::ALL` order.
    pub tallies: Vec<(State, Tally)>,
    /// Matches whose booking date is not the ledger's date (within the window).
    pub matched_late: u64,
    pub exceptions: Vec<Exception>,
    /// The statement's closing balance minus its opening balance and its lines, when that is
    /// not zero: a statement that does not add up (minor units).
    pub balance_difference_minor: Option<i128>,
    /// Entries of the statement not booked yet (pending): not reconciled.
    pub pending_lines: u32,
}

impl Report {
    pub fn tally(&self, state: State) -> Tally {
        self.tallies.iter().find(|(s, _)| *s == state).map(|(_, t)| *t).unwrap_or_default()
    }

    /// Exceptions nobody resolved yet.
    pub fn open_exceptions(&self) -> usize {
        self.exceptions.iter().filter(|e| e.resolution.is_none()).count()
    }
}

/// The report of statement `focus` (an index into `statements`) from the items of a match over
/// `statements` and `entries`: the items that hold one of its lines or an entry dated in its
/// period. Entries outside the period that found no line belong to a neighbouring statement's
/// report, not to this one.
pub fn report(
    statements: &[Statement],
    focus: usize,
    entries: &[Entry],
    items: &[Item],
    resolutions: &HashMap<String, Resolution>,
) -> Report {
    let s = &statements[focus];
    let in_period = |i: usize| (s.from_day..=s.to_day).contains(&entries[i].day);
    let mut tallies: Vec<(State, Tally)> =
        State::ALL.iter().map(|&st| (st, Tally::default())).collect();
    let mut report = Report::default();
    for item in items {
        let mine = item.lines.iter().any(|&(st, _)| st == focus)
            || item.entries.iter().any(|&i| in_period(i));
        if !mine {
            continue;
        }
        let t = &mut tallies.iter_mut().find(|(st, _)| *st == item.state).expect("every state").1;
        t.items += 1;
        let bank_minor: u128 = item
            .lines
            .iter()
            .map(|&(st, l)| u128::from(statements[st].lines[l].amount_minor))
            .sum();
        let ledger_minor: u128 =
            item.entries.iter().map(|&i| u128::from(entries[i].amount_minor)).sum();
        t.lines += item.lines.len() as u64;
        t.lines_minor += bank_minor;
        t.entries += item.entries.len() as u64;
        t.entries_minor += ledger_minor;
        if item.state == State::Reversed {
            continue;
        }
        if item.state == State::Matched {
            if item.lag_days > 0 {
                report.matched_late += 1;
            }
            continue;
        }
        let first_line =
            item.lines.first().map(|&(st, l)| (&statements[st], &statements[st].lines[l]));
        let first_entry = item.entries.first().map(|&i| &entries[i]);
        let key = match (first_line, first_entry) {
            (Some((st, l)), _) if l.detail > 0 => {
                format!("line:{}:{}.{}", st.id, l.number, l.detail)
            }
            (Some((st, l)), _) => format!("line:{}:{}", st.id, l.number),
            (None, Some(e)) => format!("entry:{:x}", e.transfer_id),
            (None, None) => unreachable!("an item holds a line or an entry"),
        };
        let resolution = resolutions.get(&key).cloned();
        report.exceptions.push(Exception {
            state: item.state,
            direction: first_line
                .map(|(_, l)| l.direction)
                .or(first_entry.map(|e| e.direction))
                .expect("a line or an entry"),
            statement_id: first_line.map(|(st, _)| st.id.clone()).unwrap_or_default(),
            line_number: first_line.map_or(0, |(_, l)| l.number),
            booking_day: first_line.map(|(_, l)| l.booking_day),
            bank_minor: u64::try_from(bank_minor).unwrap_or(u64::MAX),
            ledger_minor: u64::try_from(ledger_minor).unwrap_or(u64::MAX),
            ledger_day: first_entry.map(|e| e.day),
            reference: first_line
                .map(|(_, l)| l.reference.clone())
                .filter(|r| !r.is_empty())
                .or(first_entry.map(|e| {
                    if e.batch.is_empty() {
                        e.reference.clone()
                    } else {
                        e.batch.clone()
                    }
                }))
                .unwrap_or_default(),
            bank_reference: first_line.map(|(_, l)| l.bank_reference.clone()).unwrap_or_default(),
            transfer_ids: item.entries.iter().map(|&i| entries[i].transfer_id).collect(),
            key,
            resolution,
        });
    }
    report.tallies = tallies;
    report.balance_difference_minor = s.balance_difference();
    report.pending_lines = s.pending_lines;
    report
}

/// The exceptions as CSV: a header, then one record each.
pub fn exceptions_csv(report: &Report, exponent: u32) -> String {
    use crate::statement::{format_amount, format_day};
    let mut w =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    w.write_record([
        "key",
        "state",
        "direction",
        "statement_id",
        "line",
        "booking_date",
        "bank_amount",
        "ledger_amount",
        "ledger_date",
        "reference",
        "bank_reference",
        "transfer_ids",
        "resolved_by",
        "resolution_reason",
    ])
    .expect("in memory");
    for e in &report.exceptions {
        let day = |d: Option<Day>| d.map(format_day).unwrap_or_default();
        let ids: Vec<String> = e.transfer_ids.iter().map(|id| format!("{id:x}")).collect();
        let (by, reason) = e
            .resolution
            .as_ref()
            .map_or((String::new(), String::new()), |r| (r.by.clone(), r.reason.clone()));
        w.write_record([
            e.key.clone(),
            e.state.name().to_owned(),
            e.direction.code().to_owned(),
            e.statement_id.clone(),
            if e.line_number == 0 { String::new() } else { e.line_number.to_string() },
            day(e.booking_day),
            if e.statement_id.is_empty() {
                String::new()
            } else {
                format_amount(e.bank_minor, exponent)
            },
            if e.transfer_ids.is_empty() {
                String::new()
            } else {
                format_amount(e.ledger_minor, exponent)
            },
            day(e.ledger_day),
            e.reference.clone(),
            e.bank_reference.clone(),
            ids.join(" "),
            by,
            reason,
        ])
        .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
}
