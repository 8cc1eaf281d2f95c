//! `huifu simulate` stopped by a signal: the first ends the day early with its summary and
//! audit, a second quits at once.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A day far longer than the test, paced, with `users` users, started in `data_dir`. Returns
/// the child and a channel of its stderr lines once the day's set-up has begun.
fn start_long_day(data_dir: &str, users: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["simulate", "--data-dir", data_dir, "--users", users, "--merchants", "20"])
        .args(["--riders", "50", "--payments", "100000000", "--rate", "20000"])
        .args(["--no-reconcile", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run huifu");
    let stderr = child.stderr.take().expect("stderr");
    let (lines, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the day starts");
        if line.starts_with("simulating a day") {
            break;
        }
    }
    (child, rx)
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

#[test]
fn a_signal_ends_the_day_early_with_its_summary_and_audit() {
    let data = tempfile::tempdir().unwrap();
    let (child, rx) = start_long_day(data.path().to_str().unwrap(), "2000");
    // Set-up done (2,000 users take a moment) and the day under way.
    std::thread::sleep(Duration::from_secs(2));
    signal(&child, "INT");
    let out = child.wait_with_output().expect("wait");
    // Every line, up to the end of the child's stderr.
    let stderr: Vec<String> = rx.iter().collect();
    assert!(out.status.success(), "{out:?} {stderr:?}");
    assert!(stderr.iter().any(|l| l.starts_with("stopping:")), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.starts_with("stopped early")), "{stderr:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("a JSON line")).unwrap();
    assert_eq!(json["stopped_early"], true, "{json}");
    assert_eq!(json["audit"], "ok", "{json}");
    let payments = json["payments"].as_u64().unwrap();
    assert!(payments > 0 && payments < 100_000_000, "{json}");
    // The folder it left passes the audit on its own too.
    let audit = Command::new(env!("CARGO_BIN_EXE_huifu"))
        .args(["audit", "--data-dir", data.path().to_str().unwrap()])
        .output()
        .expect("run huifu audit");
    assert!(audit.status.success(), "{audit:?}");
}

#[test]
fn a_second_signal_quits_at_once() {
    let data = tempfile::tempdir().unwrap();
    // A million users: the set-up takes seconds, so both signals come before the day is over.
    let (child, _rx) = start_long_day(data.path().to_str().unwrap(), "1000000");
    signal(&child, "TERM");
    // Two signals at once may be delivered as one.
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let out = child.wait_with_output().expect("wait");
    // The shell's status for SIGTERM.
    assert_eq!(out.status.code(), Some(128 + 15), "{out:?}");
    assert!(out.stdout.is_empty(), "no summary: {out:?}");
}
