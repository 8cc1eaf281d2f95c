//! The engine under faults: a full queue refuses callers that must not wait, and a writer that
//! stops on a storage error or a panic says why, to every later request and to `failure()`.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use huifu_engine::constants::{GROUP_REQUESTS_MAX, QUEUE_REQUESTS_MAX};
use huifu_engine::{
    DecodeError, Engine, EngineError, EngineOptions, FailureKind, LedgerCommand, LedgerMachine,
    Machine,
};
use huifu_ledger::Account;

/// Commands of `Faulty`.
const NOTHING: u8 = 0;
/// Every later `evict` fails as a full disk does.
const FILL_THE_DISK: u8 = 1;
const PANIC: u8 = 2;

/// A machine that fails when told to: the faults come from inside the engine's own calls.
#[derive(Default)]
struct Faulty {
    applied: u64,
    disk_full: bool,
}

impl Machine for Faulty {
    type Command = u8;
    type Outcome = u64;
    type Query = ();
    type Answer = u64;

    fn events(&self, _: &u8) -> usize {
        1
    }
    fn timestamp_min(&self, _: usize) -> u64 {
        0
    }
    fn apply(&mut self, _: u64, command: &u8) -> u64 {
        assert!(*command != PANIC, "debits are not credits");
        self.disk_full |= *command == FILL_THE_DISK;
        self.applied += 1;
        self.applied
    }
    fn query(&self, _: ()) -> u64 {
        self.applied
    }
    fn tick(&self, _: u64) -> Option<u8> {
        None
    }
    fn encode(command: &u8, out: &mut Vec<u8>) {
        out.push(*command);
    }
    fn decode(bytes: &[u8]) -> Result<u8, DecodeError> {
        bytes.first().copied().ok_or_else(|| DecodeError("empty command".into()))
    }
    fn evict(&mut self) -> io::Result<()> {
        if self.disk_full {
            return Err(io::Error::from_raw_os_error(28));
        }
        Ok(())
    }
    fn write_snapshot(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(&self.applied.to_le_bytes())
    }
    fn read_snapshot(r: &mut dyn Read) -> io::Result<Faulty> {
        let mut applied = [0; 8];
        r.read_exact(&mut applied)?;
        Ok(Faulty { applied: u64::from_le_bytes(applied), disk_full: false })
    }
}

/// Waits until the engine records a failure (a panic drops the reply it was making before
/// the failure is recorded, so its caller may hear of it a moment early).
fn failure_of<M: Machine>(engine: &Engine<M>) -> huifu_engine::Failure {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(failure) = engine.failure() {
            return failure.clone();
        }
        assert!(Instant::now() < deadline, "no failure recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_full_queue_refuses_at_once_and_then_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::<Faulty>::open(EngineOptions::new(dir.path())).unwrap();
    // A read that holds the writer until it is let go.
    let (release, held) = mpsc::channel::<()>();
    let (started, writer_held) = mpsc::channel();
    engine.submit_read(
        move |_| {
            started.send(()).unwrap();
            held.recv().unwrap();
        },
        |_| {},
    );
    writer_held.recv().unwrap();
    let (replies, answers) = mpsc::channel();
    let mut accepted = 0;
    let busy = loop {
        assert!(accepted <= QUEUE_REQUESTS_MAX + GROUP_REQUESTS_MAX, "the queue never filled");
        let reply = replies.clone();
        let started = Instant::now();
        engine.try_submit(NOTHING, move |r| reply.send(r).unwrap());
        // A refusal is answered before `try_submit` returns, on this thread.
        if let Ok(r) = answers.try_recv() {
            assert!(started.elapsed() < Duration::from_secs(1));
            break r;
        }
        accepted += 1;
    };
    assert!(matches!(busy, Err(EngineError::Busy)), "{busy:?}");
    assert!(accepted >= QUEUE_REQUESTS_MAX);
    let (reply, answer) = mpsc::channel();
    engine.try_submit_read(|m| m.applied, move |r| reply.send(r).unwrap());
    assert!(matches!(answer.try_recv(), Ok(Err(EngineError::Busy))));
    assert!(engine.failure().is_none() && !engine.is_stopped());

    // Let go: everything accepted is applied, in order, and nothing refused was.
    release.send(()).unwrap();
    let outcomes: Vec<u64> =
        (0..accepted).map(|_| answers.recv().unwrap().expect("applied")).collect();
    assert_eq!(outcomes, (1..=accepted as u64).collect::<Vec<_>>());
    assert_eq!(engine.query(()).unwrap(), accepted as u64);
}

#[test]
fn a_full_disk_stops_the_writer_and_says_which_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::<Faulty>::open(EngineOptions::new(dir.path())).unwrap();
    assert_eq!(engine.execute(NOTHING).unwrap(), 1);
    // The group is durable before the store is written: its reply is sent, the next is not.
    assert_eq!(engine.execute(FILL_THE_DISK).unwrap(), 2);
    let failure = failure_of(&engine);
    assert_eq!(failure.kind, FailureKind::StorageFull);
    assert_eq!(failure.folder.as_deref(), Some(dir.path().join("history").as_path()));
    assert!(engine.is_stopped());
    match engine.execute(NOTHING) {
        Err(EngineError::Failed(f)) => assert_eq!(f.kind, FailureKind::StorageFull),
        other => panic!("{other:?}"),
    }
    let error = engine.read(|m| m.applied).unwrap_err();
    assert!(huifu_engine::is_storage_full(&error), "{error}");
    assert!(error.to_string().contains("history"), "{error}");
}

#[test]
fn a_panic_of_the_writer_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::<Faulty>::open(EngineOptions::new(dir.path())).unwrap();
    assert!(engine.execute(PANIC).is_err());
    let failure = failure_of(&engine);
    assert_eq!(failure.kind, FailureKind::Panic);
    assert!(failure.detail.contains("debits are not credits"), "{failure}");
    assert!(matches!(engine.execute(NOTHING), Err(EngineError::Failed(_))));
    // A clean shutdown after a failure joins the thread that is already gone.
    engine.shutdown();
}

#[test]
fn a_journal_that_cannot_write_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EngineOptions::new(dir.path());
    // Small segments: the next one is soon created, in the folder that is gone by then.
    options.segment_size_max = 64 << 10;
    let (engine, _) = Engine::<LedgerMachine>::open(options).unwrap();
    let journal = dir.path().join("journal");
    std::fs::remove_dir_all(&journal).unwrap();
    let mut error = None;
    for batch in 0..1_000u128 {
        let accounts = (0..100)
            .map(|i| Account { id: batch * 100 + i + 1, ledger: 1, code: 1, ..Account::default() })
            .collect();
        if let Err(e) = engine.execute(LedgerCommand::CreateAccounts(accounts)) {
            error = Some(e);
            break;
        }
    }
    let error = error.expect("a write failed");
    let failure = engine.failure().expect("the failure is recorded before any reply fails");
    assert_eq!(failure.kind, FailureKind::Storage);
    assert_eq!(failure.folder.as_deref(), Some(journal.as_path()));
    assert!(matches!(error, EngineError::Failed(_)), "{error}");
    assert!(error.to_string().contains(&format!("storage failed in {}", journal.display())));
    assert!(engine.is_stopped());
}

#[test]
fn a_clean_shutdown_is_no_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::<Faulty>::open(EngineOptions::new(dir.path())).unwrap();
    engine.execute(NOTHING).unwrap();
    assert!(engine.failure().is_none() && !engine.is_stopped());
    engine.shutdown();
    let (engine, _) = Engine::<Faulty>::open(EngineOptions::new(dir.path())).unwrap();
    assert_eq!(engine.query(()).unwrap(), 1);
    assert!(engine.failure().is_none());
}
