//! A crash drill at small scale: `huifu simulate --server` against the real `huifu serve`,
//! which is killed with SIGKILL while the simulator runs and restarted on the same data folder
//! and port. The simulator must ride through the restarts, and at the end every acknowledged
//! operation must be on the server exactly once (`check-acks`, also after one more kill), and
//! the stopped folder must pass `huifu audit`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

const ADMIN: &str = "crash-drill-admin-key-0123456789";
/// Kills of the server while the simulator runs.
const KILLS: usize = 2;

fn huifu() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_huifu"));
    command.env("HUIFU_ADMIN_KEY", ADMIN);
    command
}

/// Starts `huifu serve` on `listen` and returns it with the base URL it printed.
fn serve(dir: &Path, listen: &str) -> (Child, String) {
    let mut child = huifu()
        .args(["serve", "--listen", listen, "--data-dir"])
        .arg(dir)
        // A small bound, so that most ledger history goes through the history store and its
        // recovery after each kill is part of what the drill proves.
        .args(["--memory-transfers-max", "2000"])
        .args(["--key-rate-per-second", "10000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start huifu serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("the server printed its address").unwrap();
        if let Some(url) = line.strip_prefix("huifu listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn kill(mut child: Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

fn passed(output: &Output) -> bool {
    if !output.status.success() {
        eprintln!("stdout: {}", String::from_utf8_lossy(&output.stdout));
        eprintln!("stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    output.status.success()
}

#[test]
fn nothing_acknowledged_is_lost_or_applied_twice_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acks = dir.path().join("acks.log");
    let (mut server, url) = serve(&data, "127.0.0.1:0");
    let listen = url.trim_start_matches("http://").to_owned();

    let simulator = huifu()
        .args(["simulate", "--server", &url, "--ack-log"])
        .arg(&acks)
        .args(["--users", "300", "--merchants", "20", "--riders", "30", "--payments", "6000"])
        .args(["--clients", "4", "--batch", "32", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start huifu simulate");
    let seed: u64 = rand::random();
    eprintln!("kill moments seeded with {seed}");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut kills = 0;
    let mut simulator = Some(simulator);
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..900)));
        let running = simulator.as_mut().unwrap().try_wait().unwrap().is_none();
        if !running {
            break;
        }
        kill(server);
        (server, _) = serve(&data, &listen);
        kills += 1;
    }
    let output = simulator.take().unwrap().wait_with_output().unwrap();
    assert!(passed(&output), "the simulator failed across {kills} kills");
    assert!(kills >= 1, "the run ended before the first kill ({:?})", started.elapsed());
    let json = String::from_utf8_lossy(&output.stdout);
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["audit"], "ok", "{last}");
    let acknowledged = last["acknowledged_checked"].as_u64().unwrap();
    let log = std::fs::read_to_string(&acks).unwrap();
    assert_eq!(log.lines().count() as u64, acknowledged, "one ack log line per acknowledgement");
    assert!(log.lines().any(|l| l.split('\t').nth(1) == Some("payment")));

    // One more crash after the last acknowledgement, then the ack log against the server.
    kill(server);
    (server, _) = serve(&data, &listen);
    let check =
        huifu().args(["check-acks", "--server", &url, "--ack-log"]).arg(&acks).output().unwrap();
    assert!(passed(&check), "check-acks after a final kill -9");
    kill(server);
    let audit = huifu().arg("audit").arg("--data-dir").arg(&data).output().unwrap();
    assert!(passed(&audit), "huifu audit of the data folder");
}
