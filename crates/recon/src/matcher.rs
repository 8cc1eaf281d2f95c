//! Matching statement lines with ledger entries: a pure function of both and a config.
//!
//! The rules, in order (docs/reconciliation.md has them too):
//!
//! 1. **Duplicate**: a line with the same direction, amount, reference and bank reference as an
//!    earlier line (of this or another statement) is a duplicate; so is a line whose reference
//!    names ledger movements that an earlier line already took.
//! 2. **By reference**: a line whose reference is the reference of an untaken entry of the same
//!    direction, dated within the window of the booking date, takes it (one-to-one); else, a
//!    line whose reference is a batch (`stl_…`) takes every such entry of that batch
//!    (one-to-many). Equal amounts (the sum, for a batch) make it matched; else amount mismatch.
//! 3. **By amount and date**: a remaining line takes the untaken entry of the same direction and
//!    amount nearest its booking date within the window (on a tie, one without a reference,
//!    then the earliest). A line that carries a reference the ledger does not know takes only
//!    entries without a reference.
//! 4. What is left is unmatched: lines on the bank side, entries in the ledger.
//!
//! Lines are visited in statement order (by first day, then id), then line order, so the result
//! is a function of the inputs alone, and adding a statement can only settle more.

use std::collections::HashMap;

use crate::constants::DATE_WINDOW_DAYS_DEFAULT;
use crate::entries::Entry;
use crate::statement::{Day, Direction, Statement};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchConfig {
    /// How many days a booking date and a ledger date may differ and still match.
    pub date_window_days: u32,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig { date_window_days: DATE_WINDOW_DAYS_DEFAULT }
    }
}

/// Where each line and each entry ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Matched,
    /// On the statement, not in the ledger.
    UnmatchedBank,
    /// In the ledger, not on the statement.
    UnmatchedLedger,
    /// Matched by reference, but the amounts differ.
    AmountMismatch,
    /// The bank booked the same movement again.
    Duplicate,
    /// A line and the bank's reversal of it (`RvslInd`): they cancel out on the statement and
    /// take no ledger movement.
    Reversed,
}

impl State {
    pub const ALL: [State; 6] = [
        State::Matched,
        State::UnmatchedBank,
        State::UnmatchedLedger,
        State::AmountMismatch,
        State::Duplicate,
        State::Reversed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            State::Matched => "matched",
            State::UnmatchedBank => "unmatched_bank",
            State::UnmatchedLedger => "unmatched_ledger",
            State::AmountMismatch => "amount_mismatch",
            State::Duplicate => "duplicate",
            State::Reversed => "reversed",
        }
    }
}

/// How a match was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Reference,
    Batch,
    AmountDate,
    Reversal,
    None,
}

/// A line: (statement index, line index) in the input.
pub type LineRef = (usize, usize);

/// One outcome: some lines and some entries (indexes into the input) and their state. Every
/// line and every entry given is in exactly one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub state: State,
    pub rule: Rule,
    pub lines: Vec<LineRef>,
    pub entries: Vec<usize>,
    /// For a match: how many days the booking date is from the ledger date (of the first
    /// movement, for a batch).
    pub lag_days: i32,
}

impl Item {
    /// A line the ledger has nothing for.
    fn unmatched_bank(line: LineRef) -> Item {
        Item {
            state: State::UnmatchedBank,
            rule: Rule::None,
            lines: vec![line],
            entries: Vec::new(),
            lag_days: 0,
        }
    }
}

/// Matches the lines of `statements` with `entries`.
pub fn reconcile(statements: &[Statement], entries: &[Entry], config: &MatchConfig) -> Vec<Item> {
    let window = i32::try_from(config.date_window_days).unwrap_or(i32::MAX);
    let mut order: Vec<usize> = (0..statements.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&statements[a], &statements[b]);
        (a.from_day, &a.id).cmp(&(b.from_day, &b.id))
    });
    let lines: Vec<LineRef> =
        order.iter().flat_map(|&s| (0..statements[s].lines.len()).map(move |l| (s, l))).collect();
    let line = |r: LineRef| &statements[r.0].lines[r.1];

    let mut by_reference: HashMap<(&str, Direction), Vec<usize>> = HashMap::new();
    let mut by_batch: HashMap<(&str, Direction), Vec<usize>> = HashMap::new();
    let mut by_amount: HashMap<(u64, Direction), Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if !e.reference.is_empty() {
            by_reference.entry((&e.reference, e.direction)).or_default().push(i);
        }
        if !e.batch.is_empty() {
            by_batch.entry((&e.batch, e.direction)).or_default().push(i);
        }
        by_amount.entry((e.amount_minor, e.direction)).or_default().push(i);
    }
    let near = |e: &Entry, day: Day| (e.day - day).abs() <= window;

    let mut taken = vec![false; entries.len()];
    let mut items = Vec::new();
    let paired = reversals(statements, &lines, &mut items);
    let mut seen: HashMap<(Direction, u64, &str, &str), ()> = HashMap::new();
    let mut left = Vec::new();
    for &r in &lines {
        if paired.contains(&r) {
            continue;
        }
        let l = line(r);
        let item = |state, rule, entries: Vec<usize>, lag_days| Item {
            state,
            rule,
            lines: vec![r],
            entries,
            lag_days,
        };
        let key = (l.direction, l.amount_minor, l.reference.as_str(), l.bank_reference.as_str());
        // The transactions of one batch entry without references of their own are told apart
        // by their place, not their content.
        let anonymous_detail =
            l.detail > 0 && l.reference.is_empty() && l.bank_reference.is_empty();
        if !anonymous_detail && seen.insert(key, ()).is_some() {
            items.push(item(State::Duplicate, Rule::None, Vec::new(), 0));
            continue;
        }
        if l.reference.is_empty() {
            left.push(r);
            continue;
        }
        // The line's reference, else the first of its other references that names movements.
        let candidates = std::iter::once(&l.reference).chain(&l.other_references);
        let mut k = (l.reference.as_str(), l.direction);
        for c in candidates {
            let key = (c.as_str(), l.direction);
            if by_reference.contains_key(&key) || by_batch.contains_key(&key) {
                k = key;
                break;
            }
        }
        let named = by_reference.get(&k);
        let batch = by_batch.get(&k);
        let single = named.and_then(|c| {
            c.iter().copied().find(|&i| !taken[i] && near(&entries[i], l.booking_day))
        });
        let group: Vec<usize> = match single {
            Some(i) => vec![i],
            None => batch
                .map(|c| {
                    c.iter()
                        .copied()
                        .filter(|&i| !taken[i] && near(&entries[i], l.booking_day))
                        .collect()
                })
                .unwrap_or_default(),
        };
        if group.is_empty() {
            let all_taken = |c: Option<&Vec<usize>>| {
                c.is_some_and(|c| c.iter().any(|&i| taken[i] && near(&entries[i], l.booking_day)))
            };
            if all_taken(named) || all_taken(batch) {
                items.push(item(State::Duplicate, Rule::None, Vec::new(), 0));
            } else {
                left.push(r);
            }
            continue;
        }
        let rule = if single.is_some() { Rule::Reference } else { Rule::Batch };
        let sum = group.iter().try_fold(0u64, |s, &i| s.checked_add(entries[i].amount_minor));
        // A batch is due on the day of its first movement.
        let first = group.iter().map(|&i| entries[i].day).min().expect("not empty");
        let lag = (l.booking_day - first).abs();
        for &i in &group {
            taken[i] = true;
        }
        // A batch total (`Btch/NbOfTxs`) also says how many movements it holds.
        let count_ok = single.is_some()
            || l.batch_count.is_none_or(|c| usize::try_from(c).ok() == Some(group.len()));
        let state = if sum == Some(l.amount_minor) && count_ok {
            State::Matched
        } else {
            State::AmountMismatch
        };
        items.push(item(state, rule, group, if state == State::Matched { lag } else { 0 }));
    }
    for r in left {
        let l = line(r);
        let unknown_reference = !l.reference.is_empty();
        let best = by_amount.get(&(l.amount_minor, l.direction)).and_then(|c| {
            c.iter()
                .copied()
                .filter(|&i| {
                    let e = &entries[i];
                    !taken[i]
                        && near(e, l.booking_day)
                        && (!unknown_reference || e.reference.is_empty())
                })
                .min_by_key(|&i| {
                    let e = &entries[i];
                    ((e.day - l.booking_day).abs(), !e.reference.is_empty(), e.timestamp_ns)
                })
        });
        let item = match best {
            Some(i) => {
                taken[i] = true;
                Item {
                    state: State::Matched,
                    rule: Rule::AmountDate,
                    lines: vec![r],
                    entries: vec![i],
                    lag_days: (l.booking_day - entries[i].day).abs(),
                }
            }
            None => Item::unmatched_bank(r),
        };
        items.push(item);
    }
    for (i, _) in taken.iter().enumerate().filter(|(_, t)| !**t) {
        items.push(Item {
            state: State::UnmatchedLedger,
            rule: Rule::None,
            lines: Vec::new(),
            entries: vec![i],
            lag_days: 0,
        });
    }
    items
}

/// Pairs each reversal line with the line it reverses: the nearest earlier line of the
/// opposite direction and the same amount, with the same reference (or, without one, the same
/// bank reference). Pushes a `Reversed` item per pair and an unmatched one per reversal with
/// nothing to reverse; returns every line so accounted for.
fn reversals(
    statements: &[Statement],
    lines: &[LineRef],
    items: &mut Vec<Item>,
) -> std::collections::HashSet<LineRef> {
    let mut done = std::collections::HashSet::new();
    let line = |r: LineRef| &statements[r.0].lines[r.1];
    for (at, &r) in lines.iter().enumerate() {
        let l = line(r);
        if !l.reversal {
            continue;
        }
        let same = |o: &crate::statement::Line| {
            if !l.reference.is_empty() {
                o.reference == l.reference
            } else if !l.bank_reference.is_empty() {
                o.bank_reference == l.bank_reference
            } else {
                true
            }
        };
        let original = lines[..at].iter().rev().copied().find(|&o| {
            let ol = line(o);
            !ol.reversal
                && !done.contains(&o)
                && ol.direction != l.direction
                && ol.amount_minor == l.amount_minor
                && same(ol)
        });
        done.insert(r);
        let item = match original {
            Some(o) => {
                done.insert(o);
                Item {
                    state: State::Reversed,
                    rule: Rule::Reversal,
                    lines: vec![o, r],
                    entries: Vec::new(),
                    lag_days: 0,
                }
            }
            None => Item::unmatched_bank(r),
        };
        items.push(item);
    }
    done
}
