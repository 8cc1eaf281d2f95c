//! Crash test: a child process runs the engine under load and prints each batch it got an
//! acknowledgement for; the parent kills it with SIGKILL at random moments, restarts it, and
//! finally checks that every acknowledged batch is present and no batch is partially applied.
//!
//! The child is this same test binary, re-executed with `HUIFU_CRASH_CHILD` set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use huifu_engine::{
    Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome, LedgerQuery,
};
use huifu_ledger::{Account, CreateTransferResult, Transfer, TransferFlags};

const ACCOUNTS: u64 = 100;
const BATCH: u64 = 50;

fn options(dir: &Path) -> EngineOptions {
    let mut options = EngineOptions::new(dir);
    // Small segments and frequent checkpoints, so crashes land in rotations and checkpoints too.
    options.segment_size_max = 64 << 10;
    options.checkpoint_interval_bytes = 512 << 10;
    options
}

fn transfer_id(run: u64, batch: u64, i: u64) -> u128 {
    (u128::from(run) << 64) | (u128::from(batch) << 16) | u128::from(i + 1)
}

/// One batch: a linked chain (so it must apply whole or not at all) of `BATCH` transfers.
fn batch_of(run: u64, batch: u64) -> Vec<Transfer> {
    (0..BATCH)
        .map(|i| {
            let debit = (run * 7 + batch * 13 + i) % ACCOUNTS + 1;
            let credit = (debit + 1 + (batch + i) % (ACCOUNTS - 1)) % ACCOUNTS + 1;
            let mut flags = TransferFlags::default();
            flags.set(TransferFlags::LINKED, i + 1 < BATCH);
            Transfer {
                id: transfer_id(run, batch, i),
                debit_account_id: u128::from(debit),
                credit_account_id: u128::from(credit),
                amount: u128::from(i + 1),
                ledger: 1,
                code: 1,
                flags,
                ..Transfer::default()
            }
        })
        .collect()
}

/// The child: apply batches forever, printing "ack <run> <batch>" after each durable reply.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("HUIFU_CRASH_CHILD") else {
        return;
    };
    let run: u64 = std::env::var("HUIFU_CRASH_RUN").unwrap().parse().unwrap();
    let (engine, _) = Engine::<LedgerMachine>::open(options(Path::new(&dir))).unwrap();
    let accounts: Vec<Account> = (1..=ACCOUNTS)
        .map(|i| Account { id: u128::from(i), ledger: 1, code: 1, ..Account::default() })
        .collect();
    engine.execute(LedgerCommand::CreateAccounts(accounts)).unwrap();
    let engine = std::sync::Arc::new(engine);
    // Several client threads, so acknowledged batches come from real group commits.
    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let stdout = std::io::stdout();
                for batch in (thread..).step_by(4) {
                    let outcome =
                        engine.execute(LedgerCommand::CreateTransfers(batch_of(run, batch)));
                    let LedgerOutcome::Transfers(results) = outcome.unwrap() else { panic!() };
                    assert!(results.iter().all(|r| *r == CreateTransferResult::Created));
                    let mut out = stdout.lock();
                    writeln!(out, "ack {run} {batch}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn lookup(engine: &Engine<LedgerMachine>, ids: Vec<u128>) -> usize {
    match engine.query(LedgerQuery::LookupTransfers(ids)).unwrap() {
        LedgerAnswer::Transfers(found) => found.len(),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let runs = 6;
    for run in 1..=runs {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("HUIFU_CRASH_CHILD", dir.path())
            .env("HUIFU_CRASH_RUN", run.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        // Kill after a random number of acknowledgements, so the kill lands under load.
        let kill_after = 20 + seed % 400;
        let reader = BufReader::new(child.stdout.take().unwrap());
        let started = Instant::now();
        let mut seen = 0;
        for line in reader.lines() {
            let line = line.unwrap();
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ack") {
                continue;
            }
            let run: u64 = parts.next().unwrap().parse().unwrap();
            let batch: u64 = parts.next().unwrap().parse().unwrap();
            acked.insert((run, batch));
            seen += 1;
            if seen >= kill_after || started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        // SIGKILL: no destructor, no flush, no goodbye.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen > 0, "run {run}: the child acknowledged nothing");
    }

    let (engine, recovery) = Engine::<LedgerMachine>::open(options(dir.path())).unwrap();
    assert!(recovery.checkpoint_seq > 1, "no checkpoint was taken: {recovery:?}");
    for &(run, batch) in &acked {
        let ids: Vec<u128> = (0..BATCH).map(|i| transfer_id(run, batch, i)).collect();
        assert_eq!(lookup(&engine, ids), BATCH as usize, "acknowledged batch {run}/{batch} lost");
    }
    // Whole or nothing, for every batch any run could have sent.
    let max_batch = acked.iter().map(|&(_, b)| b).max().unwrap() + 64;
    for run in 1..=runs {
        for batch in 0..max_batch {
            let ids: Vec<u128> = (0..BATCH).map(|i| transfer_id(run, batch, i)).collect();
            let found = lookup(&engine, ids);
            assert!(
                found == 0 || found == BATCH as usize,
                "batch {run}/{batch} is partial: {found}"
            );
        }
    }
    let LedgerAnswer::Totals(totals) = engine.query(LedgerQuery::Totals).unwrap() else { panic!() };
    assert!(totals.is_balanced());
}
