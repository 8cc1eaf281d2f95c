//! Imports are idempotent, refused files leave nothing behind, a file of several accounts is
//! routed by account, resolutions are kept.

use huifu_recon::{
    camt053, Direction, Format, ImportError, Line, Statement, Store, StoreError, Unrouted,
};

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

/// The accounts of the routing tests: two channels' and one no channel has.
const ACCOUNT_CHF: &str = "CH9300762011623852957";
const ACCOUNT_EUR: &str = "DE89370400440532013000";
const ACCOUNT_UNKNOWN: &str = "GB29NWBK60161331926819";

fn statement(id: &str, account: &str, currency: u32, reference: &str) -> Statement {
    let day = huifu_recon::statement::parse_day("2026-11-26").unwrap();
    let line = Line::new(1, Direction::Credit, 1_250, day, reference);
    Statement {
        id: id.into(),
        account: account.into(),
        currency,
        from_day: day,
        to_day: day,
        opening_minor: Some(0),
        closing_minor: Some(1_250),
        pending_lines: 0,
        lines: vec![line],
    }
}

/// One file of three statements: chn_1's (CHF), chn_2's (EUR), and one of an account no
/// channel has.
fn three_accounts() -> (Vec<Statement>, String) {
    let all = vec![
        statement("CHF-1126", ACCOUNT_CHF, 756, "top_1"),
        statement("EUR-1126", ACCOUNT_EUR, 978, "top_2"),
        statement("GBP-1126", ACCOUNT_UNKNOWN, 826, "top_3"),
    ];
    let xml = camt053::write_all(&all, "2026-11-27T02:00:00Z");
    (all, xml)
}

/// chn_1 holds CHF, chn_2 and chn_3 EUR; no other channel exists.
fn currency_of(channel: u64) -> Option<u32> {
    match channel {
        1 => Some(756),
        2 | 3 => Some(978),
        _ => None,
    }
}

fn store_with_accounts(dir: &std::path::Path) -> Store {
    let store = Store::new(dir);
    // As people type an IBAN: in groups of four, lower case.
    store.set_account(1, "ch93 0076 2011 6238 5295 7").unwrap();
    store.set_account(2, ACCOUNT_EUR).unwrap();
    store
}

#[test]
fn a_file_of_several_accounts_sends_each_statement_to_its_channel_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_accounts(dir.path());
    let (all, xml) = three_accounts();
    // chn_3 is given, but a file of several statements routes by account only: the third
    // statement is not chn_3's because it was named.
    let imported =
        store.import_file(Format::Camt053, xml.as_bytes(), Some(3), currency_of).unwrap();
    let routed: Vec<_> =
        imported.stored.iter().map(|(c, s, new)| (*c, s.statement.id.as_str(), *new)).collect();
    assert_eq!(routed, [(1, "CHF-1126", true), (2, "EUR-1126", true)]);
    assert_eq!(
        imported.unrouted,
        [Unrouted { id: "GBP-1126".into(), account: ACCOUNT_UNKNOWN.into() }]
    );
    let kept = |channel| -> Vec<Statement> {
        store.statements(channel).unwrap().into_iter().map(|s| s.statement).collect()
    };
    assert_eq!(kept(1), [all[0].clone()]);
    assert_eq!(kept(2), [all[1].clone()]);
    assert!(kept(3).is_empty());
    let after_first = files(dir.path());
    assert_eq!(
        after_first.len(),
        4,
        "an account file and a statement per channel: {after_first:?}"
    );
    assert!(after_first
        .iter()
        .all(|f| f.starts_with("recon/chn_1/") || f.starts_with("recon/chn_2/")));

    // The same file again: nothing new, nothing written, the third still reported.
    let again = store.import_file(Format::Camt053, xml.as_bytes(), None, currency_of).unwrap();
    assert!(again.stored.iter().all(|(_, _, new)| !new));
    assert_eq!(again.unrouted.len(), 1);
    assert_eq!(files(dir.path()), after_first);

    // A channel that does not exist (no currency) takes nothing: its statement is reported.
    let only_chn_1 = |c: u64| (c == 1).then_some(756);
    let partial = store.import_file(Format::Camt053, xml.as_bytes(), None, only_chn_1).unwrap();
    let ids: Vec<_> = partial.unrouted.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["EUR-1126", "GBP-1126"]);
}

#[test]
fn a_file_with_a_refused_statement_writes_nothing_for_any_channel() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_accounts(dir.path());
    let (all, xml) = three_accounts();
    let accounts_only = files(dir.path());
    assert_eq!(accounts_only, ["recon/chn_1/account", "recon/chn_2/account"]);

    // chn_2 keeps another currency: its statement is refused, and chn_1's is not kept either.
    let chn_2_in_chf = |c: u64| if c == 2 { Some(756) } else { currency_of(c) };
    let err = store.import_file(Format::Camt053, xml.as_bytes(), None, chn_2_in_chf).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::CurrencyMismatch { .. })), "{err}");
    assert_eq!(files(dir.path()), accounts_only);

    // The statement of the account no channel has does not parse: the whole file is refused.
    let bad = xml.replacen("<Id>GBP-1126</Id>", "<Id></Id>", 1);
    let err = store.import_file(Format::Camt053, bad.as_bytes(), None, currency_of).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::Invalid { .. })), "{err}");
    assert_eq!(files(dir.path()), accounts_only);

    // No statement of a channel: refused, naming them.
    let unknown = camt053::write_all(&all[2..], "2026-11-27T02:00:00Z");
    let err =
        store.import_file(Format::Camt053, unknown.as_bytes(), None, currency_of).unwrap_err();
    assert!(err.to_string().contains("GBP-1126 (account GB29NWBK60161331926819)"), "{err}");
    assert_eq!(files(dir.path()), accounts_only);

    // chn_2 already holds EUR-1126 with other content: a conflict, and chn_1 gets nothing.
    let corrected = statement("EUR-1126", ACCOUNT_EUR, 978, "top_9");
    let first = camt053::write(&corrected, "2026-11-27T01:00:00Z");
    store.import_file(Format::Camt053, first.as_bytes(), None, currency_of).unwrap();
    let before = files(dir.path());
    let err = store.import_file(Format::Camt053, xml.as_bytes(), None, currency_of).unwrap_err();
    assert!(
        matches!(&err, StoreError::Import(ImportError::Conflict { id }) if id == "EUR-1126"),
        "{err}"
    );
    assert_eq!(files(dir.path()), before);
    assert!(store.statements(1).unwrap().is_empty());
}

#[test]
fn a_statement_file_many_buffers_long_imports_from_disk_as_the_same_bytes() {
    use huifu_recon::constants::IMPORT_BUFFER_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(&dir.path().join("data"));
    let day = huifu_recon::statement::parse_day("2026-11-26").unwrap();
    let lines: Vec<Line> = (1..=5_000u32)
        .map(|i| Line::new(i, Direction::Credit, 100 + u64::from(i), day, &format!("top_{i}")))
        .collect();
    let total: i128 = lines.iter().map(Line::signed_minor).sum();
    let big = Statement {
        lines,
        closing_minor: Some(total),
        ..statement("CHF-BIG", ACCOUNT_CHF, 756, "top_0")
    };
    // White space after the document: part of the file, of its hash and of the copy.
    let xml = camt053::write(&big, "2026-11-27T02:00:00Z") + "\n \n";
    assert!(xml.len() > 16 * IMPORT_BUFFER_BYTES, "{} bytes", xml.len());
    let path = dir.path().join("big.xml");
    std::fs::write(&path, &xml).unwrap();

    let imported = store.import_path(Format::Camt053, &path, Some(1), currency_of).unwrap();
    let [(1, stored, true)] = imported.stored.as_slice() else { panic!("{imported:?}") };
    assert_eq!(stored.statement, big);
    let kept = dir.path().join("data/recon/chn_1/statements").join(format!("{}.xml", stored.key));
    assert!(std::fs::read(&kept).unwrap() == xml.as_bytes(), "the file is kept as received");
    // The key is the one the same bytes from memory get: importing them again is no change.
    let again = store.import_file(Format::Camt053, xml.as_bytes(), Some(1), currency_of).unwrap();
    assert_eq!(again.stored[0].1.key, stored.key);
    assert!(!again.stored[0].2);
    assert_eq!(store.statements(1).unwrap()[0].statement, big);

    // A file of several statements: the first channel's copy is made from the file, the
    // second's from the first copy; both are the file's bytes.
    let (_, several) = three_accounts();
    let path = dir.path().join("several.xml");
    std::fs::write(&path, &several).unwrap();
    store.set_account(2, ACCOUNT_EUR).unwrap();
    store.set_account(1, ACCOUNT_CHF).unwrap();
    let imported = store.import_path(Format::Camt053, &path, None, currency_of).unwrap();
    assert_eq!(imported.stored.len(), 2);
    for (channel, stored, new) in &imported.stored {
        assert!(new);
        let kept =
            dir.path().join(format!("data/recon/chn_{channel}/statements/{}.xml", stored.key));
        assert!(std::fs::read(&kept).unwrap() == several.as_bytes());
    }

    // CSV is parsed whole, kept the same way.
    let path = dir.path().join("day.csv");
    std::fs::write(&path, CSV).unwrap();
    let from_disk = store.import_path(Format::Csv, &path, Some(3), |_| Some(156)).unwrap();
    let from_memory =
        store.import_file(Format::Csv, CSV.as_bytes(), Some(3), |_| Some(156)).unwrap();
    assert_eq!(from_disk.stored[0].1.key, from_memory.stored[0].1.key);
    assert!(!from_memory.stored[0].2);
}

#[test]
fn a_refused_file_from_disk_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(&dir.path().join("data"));
    let path = dir.path().join("bad.xml");
    let bad = CAMT.replace("<Amt Ccy=\"CNY\">35.50</Amt>", "<Amt Ccy=\"CNY\">x</Amt>");
    std::fs::write(&path, bad).unwrap();
    let err = store.import_path(Format::Camt053, &path, Some(1), |_| Some(156)).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::Invalid { .. })), "{err}");
    let missing =
        store.import_path(Format::Camt053, &dir.path().join("none.xml"), Some(1), |_| Some(156));
    assert!(matches!(missing, Err(StoreError::Io(_))));
    assert!(files(&dir.path().join("data")).is_empty());
}
