//! `huifu export` as users run it: on the folder of a simulated day, and with bad arguments.

use std::path::Path;
use std::process::{Command, Output};

fn huifu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_huifu")).args(args).output().expect("run huifu")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The rows reported for each table: `payments 123 rows path`.
fn reported(stdout: &str) -> Vec<(String, u64)> {
    stdout
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            (words[0].to_owned(), words[1].parse().expect("a row count"))
        })
        .collect()
}

fn csv_rows(path: &Path) -> u64 {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let mut rows = 0;
    for record in reader.records() {
        record.expect("record");
        rows += 1;
    }
    rows
}

/// A small simulated day (3,000 payments, one client) in `data_dir`, with `extra` arguments.
fn simulate_day(data_dir: &str, extra: &[&str]) {
    let mut args = vec![
        "simulate",
        "--data-dir",
        data_dir,
        "--users",
        "200",
        "--merchants",
        "8",
        "--riders",
        "20",
        "--payments",
        "3000",
        "--clients",
        "1",
    ];
    args.extend_from_slice(extra);
    let day = huifu(&args);
    assert!(day.status.success(), "{}", text(&day).1);
}

#[test]
fn a_simulated_day_exports_as_parquet_and_csv_and_a_range_takes_part_of_it() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    simulate_day(data_dir, &[]);

    let out = tempfile::tempdir().unwrap();
    let all = out.path().join("all");
    let parquet = huifu(&["export", "--data-dir", data_dir, "--out", all.to_str().unwrap()]);
    let (stdout, stderr) = text(&parquet);
    assert!(parquet.status.success(), "{stderr}");
    let tables = reported(&stdout);
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["payments", "refunds", "payouts", "topups_withdrawals", "transfers"]);
    assert!(tables.iter().all(|(_, rows)| *rows > 0), "{stdout}");
    for (name, _) in &tables {
        assert!(all.join(format!("{name}.parquet")).is_file(), "{name}");
    }
    // The same folder again is refused, and accepted with --force.
    let again = huifu(&["export", "--data-dir", data_dir, "--out", all.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).1.contains("already exists (pass --force"), "{}", text(&again).1);
    let forced =
        huifu(&["export", "--data-dir", data_dir, "--out", all.to_str().unwrap(), "--force"]);
    assert!(forced.status.success(), "{}", text(&forced).1);

    // CSV of everything up to the middle transfer: fewer transfers, counts as reported.
    let csv_all = out.path().join("csv");
    let run = huifu(&[
        "export",
        "--data-dir",
        data_dir,
        "--format",
        "csv",
        "--out",
        csv_all.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run).1);
    let everything = reported(&text(&run).0);
    assert_eq!(everything, tables, "parquet and csv hold the same rows");
    let times: Vec<u64> = csv::Reader::from_path(csv_all.join("transfers.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[2].parse().unwrap())
        .collect();
    let middle = times[times.len() / 2].to_string();
    let half = out.path().join("half");
    let run = huifu(&[
        "export",
        "--data-dir",
        data_dir,
        "--format",
        "csv",
        "--to",
        &middle,
        "--out",
        half.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run).1);
    let part = reported(&text(&run).0);
    let transfers = part.iter().find(|(n, _)| n == "transfers").unwrap().1;
    let earlier = times.iter().filter(|&&t| t < times[times.len() / 2]).count() as u64;
    assert_eq!(transfers, earlier);
    for (name, rows) in &part {
        assert_eq!(csv_rows(&half.join(format!("{name}.csv"))), *rows, "{name}");
    }
}

#[test]
fn bad_arguments_are_refused_before_anything_is_opened_or_written() {
    let data = tempfile::tempdir().unwrap();
    let out = data.path().join("out");
    let out = out.to_str().unwrap();
    let missing = data.path().join("nothing-here");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], &str); 5] = [
        (&["--data-dir", missing, "--out", out], "holds no huifu data (no journal folder)"),
        (&["--data-dir", missing, "--out", out, "--format", "xlsx"], "unknown format `xlsx`"),
        (
            &[
                "--data-dir",
                missing,
                "--out",
                out,
                "--from",
                "2026-02-01T00:00:00Z",
                "--to",
                "2026-01-31T00:00:00Z",
            ],
            "--from (2026-02-01T00:00:00.000000000Z",
        ),
        (
            &["--data-dir", missing, "--out", out, "--from", "last tuesday"],
            "`last tuesday` is not a time",
        ),
        (&["--data-dir", missing, "--out", out, "--from", "5", "--to", "5"], "is empty"),
    ];
    for (args, message) in cases {
        let output = huifu(&[&["export"], args].concat());
        let (_, stderr) = text(&output);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(!Path::new(missing).exists(), "{args:?} created the data folder");
        assert!(!Path::new(out).exists(), "{args:?} created the output folder");
    }
}

#[test]
fn a_folder_whose_history_left_memory_exports_every_transfer() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    // Most of the day's transfers leave memory for the history store.
    simulate_day(data_dir, &["--memory-transfers-max", "500"]);
    assert!(data.path().join("history").is_dir());

    // The audit of the stopped folder counts every transfer, in memory and in the store alike.
    let audit = huifu(&["audit", "--data-dir", data_dir]);
    let (stdout, stderr) = text(&audit);
    assert!(audit.status.success(), "{stderr}");
    let all = format!("{stdout}{stderr}");
    let audited: u64 = all
        .split(" transfers")
        .next()
        .and_then(|before| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no transfer count in {all}"));
    assert!(audited > 3_000, "{all}");

    let out = tempfile::tempdir().unwrap();
    let csv_dir = out.path().join("csv");
    let run = huifu(&[
        "export",
        "--data-dir",
        data_dir,
        "--format",
        "csv",
        "--out",
        csv_dir.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run).1);
    let transfers: Vec<String> = csv::Reader::from_path(csv_dir.join("transfers.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_owned())
        .collect();
    assert_eq!(transfers.len() as u64, audited);
    let distinct: std::collections::HashSet<&String> = transfers.iter().collect();
    assert_eq!(distinct.len(), transfers.len(), "a transfer exported twice");
}
