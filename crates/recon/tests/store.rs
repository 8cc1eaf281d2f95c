//! Imports are idempotent, refused files leave nothing behind, resolutions are kept.

use huifu_recon::{Format, ImportError, Store, StoreError};

const CAMT: &str = include_str!("data/camt053_day.xml");
const CSV: &str = include_str!("data/statement_day.csv");

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|e| if e.path().is_dir() { walk(&e.path()) } else { vec![e.path()] })
        .collect()
}

#[test]
fn the_same_statement_twice_changes_nothing_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let (first, new) = store.import(1, 156, Format::Camt053, CAMT.as_bytes()).unwrap();
    assert!(new);
    let after_first = files(dir.path());
    assert_eq!(after_first.len(), 1);
    let (again, new) = store.import(1, 156, Format::Camt053, CAMT.as_bytes()).unwrap();
    assert!(!new);
    assert_eq!(again.key, first.key);
    assert_eq!(files(dir.path()), after_first);
    // The same id with other content (the CSV of the same statement) is a conflict.
    let err = store.import(1, 156, Format::Csv, CSV.as_bytes()).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::Conflict { .. })), "{err}");
    // Other channels are separate.
    assert!(store.import(2, 156, Format::Csv, CSV.as_bytes()).unwrap().1);
    assert_eq!(store.statements(1).unwrap().len(), 1);
    assert_eq!(store.statements(1).unwrap()[0].statement, first.statement);
}

#[test]
fn refused_files_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let bad = CAMT.replace("<Amt Ccy=\"CNY\">35.50</Amt>", "<Amt Ccy=\"CNY\">x</Amt>");
    assert!(matches!(
        store.import(1, 156, Format::Camt053, bad.as_bytes()),
        Err(StoreError::Import(_))
    ));
    let wrong_currency = store.import(1, 978, Format::Camt053, CAMT.as_bytes()).unwrap_err();
    assert!(matches!(wrong_currency, StoreError::Import(ImportError::CurrencyMismatch { .. })));
    assert!(files(dir.path()).is_empty());
}

#[test]
fn resolutions_are_recorded_with_who_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.resolve(1, "line:S:3", "alice", "fee, booked to expenses").unwrap();
    store.resolve(1, "entry:ff", "bob", "refunded, \"see\" ticket,\nnext line").unwrap();
    store.resolve(1, "line:S:3", "carol", "re-checked").unwrap();
    let all = Store::new(dir.path()).resolutions(1).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        (all["line:S:3"].by.as_str(), all["line:S:3"].reason.as_str()),
        ("carol", "re-checked")
    );
    assert_eq!(all["entry:ff"].reason, "refunded, \"see\" ticket,\nnext line");
    assert!(store.resolve(1, "line:S:4", " ", "why").is_err());
    assert!(store.resolutions(2).unwrap().is_empty());
}
