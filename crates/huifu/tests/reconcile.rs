//! `huifu reconcile` on a real data folder: a simulated day, then the bank's statement of one
//! channel with known discrepancies, reconciled by the binary.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use huifu_engine::{Engine, EngineOptions};
use huifu_payments::PaymentsMachine;
use huifu_recon::generate::{generate, BankConfig, Discrepancy, Generated};
use huifu_recon::{camt053, channel_entries, csv_layout, Entry};

/// The tests take turns: each opens its data folder in this process for a moment, and a child
/// spawned by another test in that moment shares the folder's lock until it has started.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn huifu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huifu")).args(args).output().expect("huifu runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A small simulated day in `dir`, and the entries of each channel.
fn day(dir: &Path) -> Vec<Vec<Entry>> {
    let out = huifu(&[
        "simulate",
        "--payments",
        "3000",
        "--users",
        "300",
        "--merchants",
        "10",
        "--riders",
        "20",
        "--clients",
        "2",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (engine, _) = Engine::<PaymentsMachine>::open(EngineOptions::new(dir)).unwrap();
    let channels = (1..=huifu_sim::CHANNELS)
        .map(|c| engine.read(move |m| channel_entries(m, 156, c, 0, u64::MAX)).unwrap())
        .collect();
    drop(engine);
    channels
}

fn statement(entries: &[Entry], id: &str, rate: u32) -> Generated {
    let first = entries.first().expect("the day moved money through the channel").day;
    let last = entries.last().unwrap().day;
    generate(
        entries,
        &BankConfig {
            statement_id: id.into(),
            account: "CLR".into(),
            currency: 156,
            from_day: first,
            to_day: last + 1,
            opening_minor: 0,
            discrepancies_per_million: rate,
            seed: 11,
        },
    )
}

/// Exception rows by state.
fn by_state(csv: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in csv.lines().skip(1) {
        *out.entry(line.split(',').nth(1).unwrap().to_owned()).or_insert(0) += 1;
    }
    out
}

#[test]
fn reconcile_reports_exactly_the_discrepancies_of_a_statement_and_imports_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let channels = day(&data);
    let data = data.to_str().unwrap();

    let g = statement(&channels[0], "BANK-1-DAY", 60_000);
    let count = |k: Discrepancy| g.injected.iter().filter(|i| i.kind == k).count();
    assert!(g.injected.len() >= 5, "a statement with a few discrepancies");
    let file = dir.path().join("day.xml");
    std::fs::write(&file, camt053::write(&g.statement, "2026-11-27T01:00:00Z")).unwrap();
    let exceptions = dir.path().join("exceptions.csv");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "reconcile",
            "--channel",
            "chn_1",
            "--statement",
            file.to_str().unwrap(),
            "--data-dir",
            data,
            "--exceptions",
            exceptions.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = huifu(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr), std::fs::read_to_string(&exceptions).unwrap())
    };
    let (summary, log, csv) = run(&[]);
    assert!(log.contains("BANK-1-DAY of chn_1 (camt053"), "{log}");
    let states = by_state(&csv);
    let missing_entries: usize = g
        .injected
        .iter()
        .filter(|i| i.kind == Discrepancy::Missing)
        .map(|i| i.transfer_ids.len())
        .sum();
    let got = |s: &str| states.get(s).copied().unwrap_or(0);
    assert_eq!(got("unmatched_ledger"), missing_entries, "{csv}");
    assert_eq!(got("duplicate"), count(Discrepancy::Duplicated), "{csv}");
    assert_eq!(got("amount_mismatch"), count(Discrepancy::AmountChanged), "{csv}");
    assert_eq!(got("unmatched_bank"), count(Discrepancy::Unknown), "{csv}");
    assert!(
        summary.contains(&format!("matched late       {}", count(Discrepancy::BookedLate))),
        "{summary}"
    );
    for state in ["matched", "unmatched_bank", "unmatched_ledger", "amount_mismatch", "duplicate"] {
        assert!(summary.lines().any(|l| l.starts_with(state)), "{state} in {summary}");
    }

    // The same file again: nothing new is stored, the same result.
    let stored = |channel: &str| {
        std::fs::read_dir(Path::new(data).join("recon").join(channel).join("statements"))
            .unwrap()
            .count()
    };
    let files = stored("chn_1");
    let (again, log, csv_again) = run(&[]);
    assert!(log.contains("imported before, unchanged"), "{log}");
    assert_eq!((again, csv_again), (summary.clone(), csv.clone()));
    assert_eq!(stored("chn_1"), files);

    // A resolution is recorded with who and why, and kept.
    let key = csv.lines().nth(1).unwrap().split(',').next().unwrap().to_owned();
    let (after, _, csv) = run(&["--resolve", &key, "--by", "alice", "--reason", "bank fee"]);
    let row = csv.lines().find(|l| l.starts_with(&key)).unwrap();
    assert!(row.ends_with(",alice,bank fee"), "{row}");
    let open = |summary: &str| -> (usize, usize) {
        let line = summary.lines().find(|l| l.starts_with("exceptions")).unwrap();
        let numbers: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        (numbers[0], numbers[1])
    };
    let (all, before) = open(&summary);
    assert_eq!(all, before);
    assert_eq!(open(&after), (all, before - 1));

    // The CSV layout for another channel, with no discrepancy: no exception.
    let g = statement(&channels[1], "BANK-2-DAY", 0);
    let file2 = dir.path().join("day2.csv");
    std::fs::write(&file2, csv_layout::write(&g.statement)).unwrap();
    let out = huifu(&[
        "reconcile",
        "--channel",
        "2",
        "--statement",
        file2.to_str().unwrap(),
        "--data-dir",
        data,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("exceptions         0 (0 open)"), "{}", text(&out.stdout));
}

#[test]
fn a_malformed_statement_is_refused_with_its_place_and_nothing_is_stored() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let channels = day(&data);
    let g = statement(&channels[0], "BANK-BAD", 0);
    let xml = camt053::write(&g.statement, "2026-11-27T01:00:00Z");
    // Spoil the direction of the first entry (not of a balance).
    let at = xml.find("<Ntry>").unwrap();
    let xml = format!("{}{}", &xml[..at], xml[at..].replacen("<CdtDbtInd>", "<CdtDbtInd>X", 1));
    let file = dir.path().join("bad.xml");
    std::fs::write(&file, xml).unwrap();
    let out = huifu(&[
        "reconcile",
        "--channel",
        "chn_1",
        "--statement",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Document/BkToCstmrStmt/Stmt/Ntry[") && err.contains("CdtDbtInd"),
        "{err}"
    );
    assert!(!data.join("recon").join("chn_1").exists());
    let out = huifu(&[
        "reconcile",
        "--channel",
        "chn_99",
        "--statement",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no channel chn_99"), "{}", text(&out.stderr));
}
