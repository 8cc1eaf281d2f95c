//! The simulated bank's statements: the lines a bank would book for a channel's ledger entries,
//! with discrepancies injected at a seeded rate, and the list of what was injected so a run can
//! be scored against it.
//!
//! The bank books each entry on its ledger day, except a settlement run's payouts, which it
//! books as one line with the run's reference (`stl_…`) on the day of the first. Each line is, with the
//! configured probability, given one discrepancy: left out, booked twice, booked with another
//! amount, booked a day late, or followed by a line the ledger knows nothing of (a fee). A
//! changed amount and a late booking are injected only on lines that carry a reference (without
//! one, a bank's line can only be matched by amount and date, and such a line is then simply
//! unmatched), a late booking only before the last day of the period, and an unknown line never
//! has the amount of a ledger entry: so every discrepancy injected is one a reconciliation can
//! tell, and `score` can demand all of them.

use std::collections::{HashMap, HashSet};

use crate::entries::Entry;
use crate::matcher::{Item, State};
use crate::statement::{Day, Direction, Line, Statement};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BankConfig {
    pub statement_id: String,
    pub account: String,
    /// ISO 4217 numeric code.
    pub currency: u32,
    pub from_day: Day,
    pub to_day: Day,
    /// The balance before the first line, in minor units.
    pub opening_minor: i128,
    /// Lines given a discrepancy, per million.
    pub discrepancies_per_million: u32,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Discrepancy {
    Missing,
    Duplicated,
    AmountChanged,
    BookedLate,
    Unknown,
}

impl Discrepancy {
    pub fn name(self) -> &'static str {
        match self {
            Discrepancy::Missing => "missing",
            Discrepancy::Duplicated => "duplicated",
            Discrepancy::AmountChanged => "amount_changed",
            Discrepancy::BookedLate => "booked_late",
            Discrepancy::Unknown => "unknown",
        }
    }
}

/// One injected discrepancy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub kind: Discrepancy,
    /// The bank reference of the line concerned (the copy's, for a duplicate; the new line's,
    /// for an unknown one); empty for a missing line.
    pub bank_reference: String,
    /// The ledger entries of a missing line.
    pub transfer_ids: Vec<u128>,
}

#[derive(Clone, Debug)]
pub struct Generated {
    pub statement: Statement,
    pub injected: Vec<Injected>,
}

/// SplitMix64: small, seeded, good enough to pick discrepancies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The statement the simulated bank sends for `entries` (those dated in the period).
pub fn generate(entries: &[Entry], config: &BankConfig) -> Generated {
    let mut rng = Rng(config.seed);
    let period = config.from_day..=config.to_day;
    // The bank's lines before discrepancies, with their entries: batches become one line.
    let mut lines: Vec<(Line, Vec<usize>)> = Vec::new();
    let mut batches: HashMap<(&str, Direction), usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if !period.contains(&e.day) {
            continue;
        }
        if !e.batch.is_empty() {
            if let Some(&at) = batches.get(&(e.batch.as_str(), e.direction)) {
                let (line, members) = &mut lines[at];
                line.amount_minor =
                    line.amount_minor.checked_add(e.amount_minor).expect("a batch fits in u64");
                members.push(i);
                continue;
            }
            batches.insert((e.batch.as_str(), e.direction), lines.len());
        }
        let reference = if e.batch.is_empty() { e.reference.clone() } else { e.batch.clone() };
        let line = Line {
            number: 0,
            direction: e.direction,
            amount_minor: e.amount_minor,
            booking_day: e.day,
            value_day: e.day,
            bank_reference: String::new(),
            reference,
            detail: 0,
            other_references: Vec::new(),
            reversal: false,
            batch_count: None,
        };
        lines.push((line, vec![i]));
    }
    let taken_amounts: HashSet<(u64, Direction)> =
        entries.iter().map(|e| (e.amount_minor, e.direction)).collect();
    // Each output line with its entry (group): the transactions of a batch entry share one.
    let mut out: Vec<(Line, usize)> = Vec::with_capacity(lines.len());
    let mut injected = Vec::new();
    let mut seq = 0u64;
    let mut bank_reference = |day: Day| {
        seq += 1;
        format!("B{day}N{seq:010}")
    };
    let mut group = 0usize;
    for (mut line, members) in lines {
        group += 1;
        // A batch entry books its transactions on one day: only a batch of one day is one.
        let one_day = members.iter().all(|&m| entries[m].day == line.booking_day);
        if members.len() > 1 && one_day && rng.below(2) == 0 {
            // A batch entry: one transaction (with its own reference and amount) per movement.
            for &m in &members {
                let e = &entries[m];
                let detail = Line {
                    detail: 1,
                    amount_minor: e.amount_minor,
                    bank_reference: bank_reference(line.booking_day),
                    reference: e.reference.clone(),
                    ..line.clone()
                };
                let roll = rng.below(1_000_000);
                if roll >= u64::from(config.discrepancies_per_million) {
                    out.push((detail, group));
                    continue;
                }
                // A transaction is booked on its entry's day: no late booking of one alone.
                let kinds = [
                    Discrepancy::Missing,
                    Discrepancy::Duplicated,
                    Discrepancy::Unknown,
                    Discrepancy::AmountChanged,
                ];
                let kind = kinds[usize::try_from(rng.below(kinds.len() as u64)).expect("small")];
                inject(
                    kind,
                    detail,
                    group,
                    &[m],
                    entries,
                    &taken_amounts,
                    &mut rng,
                    &mut bank_reference,
                    &mut out,
                    &mut injected,
                );
            }
            continue;
        }
        if members.len() > 1 {
            // A batch booked as its total only (`Btch/NbOfTxs`).
            line.batch_count = Some(u32::try_from(members.len()).expect("a batch fits in u32"));
        }
        line.bank_reference = bank_reference(line.booking_day);
        let roll = rng.below(1_000_000);
        if roll >= u64::from(config.discrepancies_per_million) {
            out.push((line, group));
            continue;
        }
        let mut kinds = vec![Discrepancy::Missing, Discrepancy::Duplicated, Discrepancy::Unknown];
        if !line.reference.is_empty() {
            kinds.push(Discrepancy::AmountChanged);
            if line.booking_day < config.to_day {
                kinds.push(Discrepancy::BookedLate);
            }
        }
        let kind = kinds[usize::try_from(rng.below(kinds.len() as u64)).expect("small")];
        inject(
            kind,
            line,
            group,
            &members,
            entries,
            &taken_amounts,
            &mut rng,
            &mut bank_reference,
            &mut out,
            &mut injected,
        );
    }
    // Number the entries; a batch entry left with one transaction is an entry like any other.
    let mut numbered: Vec<Line> = Vec::with_capacity(out.len());
    let mut number = 0u32;
    let mut previous = usize::MAX;
    for (k, (mut line, g)) in out.iter().cloned().enumerate() {
        if line.detail == 0 || g != previous {
            number += 1;
        }
        previous = if line.detail == 0 { usize::MAX } else { g };
        let alone = line.detail > 0
            && (k == 0 || out[k - 1].1 != g || out[k - 1].0.detail == 0)
            && (k + 1 == out.len() || out[k + 1].1 != g || out[k + 1].0.detail == 0);
        if alone {
            line.detail = 0;
        }
        line.number = number;
        numbered.push(line);
    }
    let mut detail = 0;
    for k in 0..numbered.len() {
        if numbered[k].detail > 0 {
            detail = if k > 0
                && numbered[k - 1].detail > 0
                && numbered[k - 1].number == numbered[k].number
            {
                detail + 1
            } else {
                1
            };
            numbered[k].detail = detail;
        }
    }
    let mut out = numbered;
    let mut balance = config.opening_minor;
    for line in out.iter_mut() {
        match line.direction {
            Direction::Credit => balance += i128::from(line.amount_minor),
            Direction::Debit => balance -= i128::from(line.amount_minor),
        }
    }
    Generated {
        statement: Statement {
            id: config.statement_id.clone(),
            account: config.account.clone(),
            currency: config.currency,
            from_day: config.from_day,
            to_day: config.to_day,
            opening_minor: Some(config.opening_minor),
            closing_minor: Some(balance),
            pending_lines: 0,
            lines: out,
        },
        injected,
    }
}

/// Gives `line` (of entry `group`, for the ledger entries `members`) the discrepancy `kind`,
/// pushing what the bank books to `out` and what was injected to `injected`.
#[allow(clippy::too_many_arguments)]
fn inject(
    kind: Discrepancy,
    mut line: Line,
    group: usize,
    members: &[usize],
    entries: &[Entry],
    taken_amounts: &HashSet<(u64, Direction)>,
    rng: &mut Rng,
    bank_reference: &mut impl FnMut(Day) -> String,
    out: &mut Vec<(Line, usize)>,
    injected: &mut Vec<Injected>,
) {
    let record = |bank_reference: &str| Injected {
        kind,
        bank_reference: bank_reference.to_owned(),
        transfer_ids: Vec::new(),
    };
    match kind {
        Discrepancy::Missing => {
            let mut i = record("");
            i.transfer_ids = members.iter().map(|&m| entries[m].transfer_id).collect();
            injected.push(i);
        }
        Discrepancy::Duplicated => {
            injected.push(record(&line.bank_reference));
            out.push((line.clone(), group));
            out.push((line, group));
        }
        Discrepancy::AmountChanged => {
            injected.push(record(&line.bank_reference));
            line.amount_minor = line.amount_minor.saturating_add(1 + rng.below(100));
            out.push((line, group));
        }
        Discrepancy::BookedLate => {
            injected.push(record(&line.bank_reference));
            line.booking_day += 1;
            line.value_day += 1;
            out.push((line, group));
        }
        Discrepancy::Unknown => {
            let day = line.booking_day;
            out.push((line, group));
            let direction = if rng.below(2) == 0 { Direction::Credit } else { Direction::Debit };
            let mut amount_minor = 1 + rng.below(1_000_000);
            while taken_amounts.contains(&(amount_minor, direction)) {
                amount_minor += 1;
            }
            let mut fee = Line::new(0, direction, amount_minor, day, "");
            fee.bank_reference = bank_reference(day);
            injected.push(record(&fee.bank_reference));
            // An entry of its own.
            out.push((fee, usize::MAX - out.len()));
        }
    }
}

/// How a run did against what was injected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Score {
    pub injected: usize,
    /// Injected discrepancies the run reported as the exception each one should be.
    pub found: usize,
    /// Exceptions (and late matches) no injected discrepancy explains.
    pub false_alarms: usize,
    /// What was not found, and what was reported wrongly, for messages.
    pub missed: Vec<Injected>,
    pub alarms: Vec<Item>,
}

/// Scores the items of a run over `statements` and `entries` against `injected`.
pub fn score(
    statements: &[Statement],
    entries: &[Entry],
    items: &[Item],
    injected: &[Injected],
) -> Score {
    let mut claimed = vec![false; items.len()];
    let signature =
        |e: &Entry| (e.direction, e.amount_minor, e.reference.clone(), e.batch.clone(), e.day);
    let by_id: HashMap<u128, usize> =
        entries.iter().enumerate().map(|(i, e)| (e.transfer_id, i)).collect();
    let line_ref = |item: &Item| {
        item.lines.first().map(|&(s, l)| statements[s].lines[l].bank_reference.as_str())
    };
    let mut score = Score { injected: injected.len(), ..Score::default() };
    for inj in injected {
        let found = match inj.kind {
            Discrepancy::Missing => inj.transfer_ids.iter().all(|id| {
                let want = signature(&entries[by_id[id]]);
                let hit = items.iter().enumerate().position(|(k, item)| {
                    !claimed[k]
                        && item.state == State::UnmatchedLedger
                        && signature(&entries[item.entries[0]]) == want
                });
                hit.map(|k| claimed[k] = true).is_some()
            }),
            kind => {
                let hit = items.iter().enumerate().position(|(k, item)| {
                    let state_ok = match kind {
                        Discrepancy::Duplicated => item.state == State::Duplicate,
                        Discrepancy::AmountChanged => item.state == State::AmountMismatch,
                        Discrepancy::BookedLate => {
                            item.state == State::Matched && item.lag_days > 0
                        }
                        Discrepancy::Unknown => item.state == State::UnmatchedBank,
                        Discrepancy::Missing => unreachable!(),
                    };
                    !claimed[k] && state_ok && line_ref(item) == Some(inj.bank_reference.as_str())
                });
                hit.map(|k| claimed[k] = true).is_some()
            }
        };
        if found {
            score.found += 1;
        } else {
            score.missed.push(inj.clone());
        }
    }
    for (k, item) in items.iter().enumerate() {
        let alarm = !matches!(item.state, State::Matched | State::Reversed) || item.lag_days > 0;
        if alarm && !claimed[k] {
            score.false_alarms += 1;
            score.alarms.push(item.clone());
        }
    }
    score
}
