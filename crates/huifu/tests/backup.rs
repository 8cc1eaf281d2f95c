//! `huifu backup` of the real `huifu serve`: copied while the simulator drives it (with most of
//! the ledger history in the history store), copied idle, and copied stopped after a kill -9.
//! Each copy must pass the audit that `backup` runs on it, and a server started on the copy
//! taken after the last acknowledgement must hold every acknowledged operation.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod support;
use support::Server;

const ADMIN: &str = "backup-test-admin-key-0123456789";

fn huifu() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
    command.env("HUIFU_ADMIN_KEY", ADMIN);
    command
}

/// `huifu serve` on `dir` with a small memory bound, so that most ledger history goes through
/// the history store and the backup copies a store that is being written; killed when dropped,
/// a failed assertion included.
fn serve(dir: &Path) -> (Server, String) {
    let mut command = huifu();
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--memory-transfers-max", "2000"])
        .args(["--key-rate-per-second", support::UNLIMITED])
        .stderr(Stdio::null());
    let server = Server::spawn(command);
    let url = server.base.clone();
    (server, url)
}

fn passed(output: &Output) -> bool {
    if !output.status.success() {
        eprintln!("stdout: {}", String::from_utf8_lossy(&output.stdout));
        eprintln!("stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

fn backup(data: &Path, out: &Path) -> String {
    let output =
        huifu().args(["backup", "--data-dir"]).arg(data).arg("--out").arg(out).output().unwrap();
    assert!(passed(&output), "huifu backup to {}", out.display());
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(stdout.contains("audit ok"), "{stdout}");
    stdout
}

#[test]
fn a_backup_of_a_running_or_stopped_node_audits_and_serves_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acks = dir.path().join("acks.log");
    let (server, url) = serve(&data);
    let simulator = huifu()
        .args(["simulate", "--server", &url, "--ack-log"])
        .arg(&acks)
        .args(["--users", "300", "--merchants", "20", "--riders", "30", "--payments", "6000"])
        .args(["--clients", "2", "--batch", "32", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start huifu simulate");

    std::thread::sleep(Duration::from_millis(800));
    let during = backup(&data, &dir.path().join("during"));
    let output = simulator.wait_with_output().unwrap();
    assert!(passed(&output), "the simulator failed");
    assert!(during.contains("copied while the node ran"), "{during}");

    let after = backup(&data, &dir.path().join("after"));
    assert!(after.contains("copied while the node ran"), "{after}");
    drop(server); // SIGKILL
    let stopped = backup(&data, &dir.path().join("stopped"));
    assert!(stopped.contains("copied stopped"), "{stopped}");

    // Restore: a server on the copy taken after the last acknowledgement holds all of them.
    for copy in ["after", "stopped"] {
        let (restored, url) = serve(&dir.path().join(copy));
        let check = huifu()
            .args(["check-acks", "--server", &url, "--ack-log"])
            .arg(&acks)
            .output()
            .unwrap();
        assert!(passed(&check), "check-acks against the server on the {copy} copy");
        drop(restored);
    }
}
