//! A statement of a million lines imported and reconciled, timed. Ignored by default (it
//! writes a file of about 400 MB to the temporary folder); run it with
//!
//! ```text
//! cargo test --release -p huifu-recon --test scale -- --ignored --nocapture
//! ```

use std::collections::HashMap;
use std::time::Instant;

use huifu_recon::generate::{generate, score, BankConfig};
use huifu_recon::statement::{parse_day, DAY_NS};
use huifu_recon::{camt053, run, Direction, Entry, Format, MatchConfig, Store};

const LINES: u64 = 1_000_000;

#[test]
#[ignore = "a million-line statement: run with --release --ignored"]
fn a_million_line_statement_imports_and_reconciles_in_under_ten_seconds() {
    let day = parse_day("2026-11-26").unwrap();
    let day_ns = u64::try_from(day).unwrap() * DAY_NS;
    let entries: Vec<Entry> = (1..=LINES)
        .map(|i| Entry {
            transfer_id: u128::from(i),
            direction: if i % 3 == 0 { Direction::Debit } else { Direction::Credit },
            amount_minor: 100 + i % 99_991,
            timestamp_ns: day_ns + i * 80_000,
            day,
            reference: if i % 3 == 0 { format!("wdr_{i}") } else { format!("top_{i}") },
            batch: String::new(),
        })
        .collect();
    let bank = BankConfig {
        statement_id: "SCALE-1".into(),
        account: "CH9300762011623852957".into(),
        currency: 156,
        from_day: day,
        to_day: day,
        opening_minor: 0,
        discrepancies_per_million: 1_000,
        seed: 7,
    };
    let g = generate(&entries, &bank);
    let file = camt053::write(&g.statement, "2026-11-27T02:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("statement.xml");
    std::fs::write(&path, &file).unwrap();
    let size = file.len();
    drop(file);

    // Imported from disk as `huifu reconcile --statement` imports it: as a stream.
    let started = Instant::now();
    let store = Store::new(dir.path());
    store.set_account(1, &bank.account).unwrap();
    let imported = store.import_path(Format::Camt053, &path, None, |_| Some(156)).unwrap();
    let imported_s = started.elapsed().as_secs_f64();
    let (_, stored, _) = imported.stored.into_iter().next().unwrap();
    let key = stored.key.clone();
    let config = MatchConfig::default();
    let all = store.statements_reusing(1, vec![stored]).unwrap();
    let statements = run::context(all, &key, &config).unwrap();
    let result = run::run(statements, &entries, &HashMap::new(), &config);
    let total_s = started.elapsed().as_secs_f64();
    let s = score(&result.statements, &entries, &result.items, &g.injected);
    println!(
        "{} lines, {} MB: imported in {imported_s:.2} s, read back and reconciled by {total_s:.2} s; \
         {} injected, {} found, {} false alarms",
        g.statement.lines.len(),
        size / 1_000_000,
        s.injected,
        s.found,
        s.false_alarms
    );
    assert_eq!((s.found, s.false_alarms), (s.injected, 0));
    assert!(total_s < 10.0, "{total_s:.2} s");
}
