//! One reconciliation run: a statement, its stored neighbours, and the ledger around its period.
//!
//! A run reports on one statement. Its neighbours (the channel's other statements whose periods
//! come within the date window) take part in the matching, so a movement the bank booked late in
//! the next statement is matched, not reported missing; and the ledger is read over the period
//! widened by twice the window, so the neighbours' own movements are there for them.

use std::collections::HashMap;

use crate::entries::Entry;
use crate::matcher::{reconcile, Item, MatchConfig};
use crate::report::{report, Report, Resolution};
use crate::statement::{ns_of_day, Day, Statement};
use crate::store::Stored;

/// The statements of a run of `focus` (a key of `all`): it first, then its neighbours. `None`
/// if no statement has that key.
pub fn context(all: Vec<Stored>, focus: &str, config: &MatchConfig) -> Option<Vec<Statement>> {
    let w = window(config);
    let at = all.iter().position(|s| s.key == focus)?;
    let (from, to) = (all[at].statement.from_day - w, all[at].statement.to_day + w);
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for (i, s) in all.into_iter().enumerate() {
        if i == at {
            out.push(s.statement);
        } else if s.statement.to_day >= from && s.statement.from_day <= to {
            rest.push(s.statement);
        }
    }
    out.extend(rest);
    Some(out)
}

fn window(config: &MatchConfig) -> Day {
    Day::try_from(config.date_window_days).unwrap_or(Day::MAX / 4)
}

/// The timestamps (inclusive) of the ledger entries a run of `focus` reads.
pub fn ledger_range(focus: &Statement, config: &MatchConfig) -> (u64, u64) {
    let w = window(config);
    let from = ns_of_day(focus.from_day - 2 * w);
    let to = ns_of_day(focus.to_day + 2 * w + 1).saturating_sub(1);
    (from, to)
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The statement reported on first, then its neighbours.
    pub statements: Vec<Statement>,
    pub items: Vec<Item>,
    pub report: Report,
}

/// Matches `statements` (the one reported on first) with `entries` and reports on the first.
pub fn run(
    statements: Vec<Statement>,
    entries: &[Entry],
    resolutions: &HashMap<String, Resolution>,
    config: &MatchConfig,
) -> Run {
    assert!(!statements.is_empty(), "a run reports on a statement");
    let items = reconcile(&statements, entries, config);
    let report = report(&statements, 0, entries, &items, resolutions);
    Run { statements, items, report }
}
