//! Power loss under the whole engine (journal and checkpoints), simulated.
//!
//! Each seed runs the ledger engine over `FaultyStorage`, cuts the power at a storage operation
//! the seed picks (every write, fsync and directory fsync from then on fails, then the unsynced
//! bytes are dropped, torn, or kept as a random subset of their pages, and unsynced renames and
//! removals are undone), and recovers with no help. Every acknowledged batch must be there;
//! every other batch is there whole or not at all, and the batches there are a prefix of those
//! submitted; account balances equal what those batches add up to; and the recovered engine
//! takes more writes and recovers again.
//!
//! `cargo test` runs `POWER_LOSS_SEEDS_DEFAULT` seeds; `HUIFU_POWER_LOSS_SEEDS=5000 cargo test
//! --release -p huifu-engine --test power_loss` runs more, `HUIFU_POWER_LOSS_SEED=N` one. A
//! failure names its seed. The seed fixes the workload, the crash point and what the crash
//! keeps; how requests fall into group commits depends on thread timing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use huifu_engine::{
    Clock, Engine, EngineError, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine,
    LedgerOutcome, LedgerQuery,
};
use huifu_journal::faulty::{CrashStats, FaultyStorage};
use huifu_journal::Storage;
use huifu_ledger::{Account, CreateTransferResult, Transfer, TransferFlags};

const POWER_LOSS_SEEDS_DEFAULT: u64 = 400;
const ACCOUNTS: u64 = 16;
const BATCHES: u64 = 60;
/// Batches submitted before their replies are awaited, so that groups hold several.
const IN_FLIGHT_MAX: u64 = 4;
/// Storage operations of a run are about this many: crash points are drawn below it.
const CRASH_POINT_MAX: u64 = 150;

/// A clock that moves a microsecond a reading, so runs do not depend on the real one.
#[derive(Clone)]
struct StepClock(Arc<AtomicU64>);

impl Clock for StepClock {
    fn now_ns(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::Relaxed) + 1_700_000_000_000_000_000
    }
}

fn options() -> EngineOptions {
    options_in(Path::new("/data"))
}

fn options_in(dir: &Path) -> EngineOptions {
    let mut options = EngineOptions::new(dir);
    // Small segments and frequent checkpoints: crash points land in rotations, checkpoint
    // writes, renames and segment removals as well as group commits.
    options.segment_size_max = 6 << 10;
    options.checkpoint_interval_bytes = 16 << 10;
    options
}

fn open(storage: &FaultyStorage, clock: &StepClock) -> Result<Engine<LedgerMachine>, EngineError> {
    Engine::open_with(options(), clock.clone(), storage.clone()).map(|(engine, _)| engine)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Batch `batch` of the seed's workload: a linked chain of 1 to 8 transfers (whole or nothing).
fn batch_of(rng: &mut Rng, round: u64, batch: u64) -> Vec<Transfer> {
    let len = 1 + rng.next() % 8;
    (0..len)
        .map(|i| {
            let debit = rng.next() % ACCOUNTS + 1;
            let credit = (debit + rng.next() % (ACCOUNTS - 1)) % ACCOUNTS + 1;
            let mut flags = TransferFlags::default();
            flags.set(TransferFlags::LINKED, i + 1 < len);
            Transfer {
                id: (u128::from(round) << 96) | (u128::from(batch) << 16) | u128::from(i + 1),
                debit_account_id: u128::from(debit),
                credit_account_id: u128::from(credit),
                amount: u128::from(1 + rng.next() % 1_000),
                ledger: 1,
                code: 1,
                flags,
                ..Transfer::default()
            }
        })
        .collect()
}

/// What one round submitted, in order, and which batches were acknowledged.
struct Round {
    batches: Vec<Vec<Transfer>>,
    acked: Vec<bool>,
}

/// Submits the round's batches, a few at a time, with a checkpoint now and then, until the
/// engine stops (the power is going) or all are done.
fn drive(engine: &Engine<LedgerMachine>, rng: &mut Rng, round: u64) -> Round {
    drive_with(engine, rng, round, true)
}

/// [`drive`], with or without its checkpoints.
fn drive_with(
    engine: &Engine<LedgerMachine>,
    rng: &mut Rng,
    round: u64,
    checkpoints: bool,
) -> Round {
    let mut out = Round { batches: Vec::new(), acked: Vec::new() };
    let mut batch = 0;
    'run: while batch < BATCHES {
        let (tx, rx) = mpsc::channel();
        let first = out.batches.len();
        let count = 1 + rng.next() % IN_FLIGHT_MAX;
        for _ in 0..count {
            let transfers = batch_of(rng, round, batch);
            batch += 1;
            out.batches.push(transfers.clone());
            out.acked.push(false);
            let tx = tx.clone();
            let index = out.batches.len() - 1;
            engine.submit(LedgerCommand::CreateTransfers(transfers), move |result| {
                let _ = tx.send((index, result));
            });
        }
        drop(tx);
        let mut stopped = false;
        for (index, result) in rx {
            match result {
                Ok(LedgerOutcome::Transfers(results)) => {
                    assert!(results.iter().all(|r| *r == CreateTransferResult::Created));
                    out.acked[index] = true;
                }
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => stopped = true,
            }
        }
        assert!(out.batches.len() > first);
        if stopped {
            break 'run;
        }
        if checkpoints && rng.next().is_multiple_of(9) && engine.checkpoint().is_err() {
            break 'run;
        }
    }
    out
}

fn accounts() -> LedgerCommand {
    LedgerCommand::CreateAccounts(
        (1..=ACCOUNTS)
            .map(|i| Account { id: u128::from(i), ledger: 1, code: 1, ..Account::default() })
            .collect(),
    )
}

/// Checks the recovered engine against the rounds so far; returns how many batches survived.
fn check(seed: u64, engine: &Engine<LedgerMachine>, rounds: &mut [Round]) -> usize {
    let mut debits: BTreeMap<u128, u128> = BTreeMap::new();
    let mut credits: BTreeMap<u128, u128> = BTreeMap::new();
    let mut survived = 0;
    for (r, round) in rounds.iter_mut().enumerate() {
        let mut gone_from = None;
        for (b, batch) in round.batches.iter().enumerate() {
            let ids = batch.iter().map(|t| t.id).collect();
            let LedgerAnswer::Transfers(found) =
                engine.query(LedgerQuery::LookupTransfers(ids)).unwrap()
            else {
                panic!("seed {seed}: unexpected answer")
            };
            assert!(
                found.is_empty() || found.len() == batch.len(),
                "seed {seed}: round {r} batch {b} is partly there ({} of {})",
                found.len(),
                batch.len()
            );
            if found.is_empty() {
                assert!(!round.acked[b], "seed {seed}: acknowledged round {r} batch {b} is lost");
                gone_from.get_or_insert(b);
                continue;
            }
            assert!(
                gone_from.is_none(),
                "seed {seed}: round {r} batch {b} is there but batch {gone_from:?} before it is not"
            );
            for (want, got) in batch.iter().zip(&found) {
                assert_eq!((want.id, want.amount), (got.id, got.amount), "seed {seed}");
                *debits.entry(want.debit_account_id).or_default() += want.amount;
                *credits.entry(want.credit_account_id).or_default() += want.amount;
            }
            survived += 1;
        }
        // Batches that did not survive were never acknowledged: forget them, so a later round
        // expects only what is there.
        if let Some(from) = gone_from {
            round.batches.truncate(from);
            round.acked.truncate(from);
        }
    }
    let LedgerAnswer::Accounts(accounts) =
        engine.query(LedgerQuery::LookupAccounts((1..=u128::from(ACCOUNTS)).collect())).unwrap()
    else {
        panic!("seed {seed}: unexpected answer")
    };
    assert_eq!(accounts.len(), usize::try_from(ACCOUNTS).unwrap(), "seed {seed}: accounts lost");
    for account in accounts {
        assert_eq!(
            (account.debits_posted, account.credits_posted),
            (
                debits.get(&account.id).copied().unwrap_or(0),
                credits.get(&account.id).copied().unwrap_or(0)
            ),
            "seed {seed}: account {} does not add up",
            account.id
        );
    }
    survived
}

fn run(seed: u64) -> CrashStats {
    let storage = FaultyStorage::new(seed);
    let clock = StepClock(Arc::new(AtomicU64::new(0)));
    let mut rng = Rng(seed ^ 0x5eed);
    let mut rounds = Vec::new();
    open(&storage, &clock).unwrap().execute(accounts()).unwrap();
    // Two rounds, each ended by a power cut at a point of the seed's choosing: the second
    // writes after the first's recovery, so recovery is also checked on a journal that was cut.
    for round in 0..2 {
        let engine = open(&storage, &clock).unwrap();
        storage.set_fail_after(Some(rng.next() % CRASH_POINT_MAX));
        rounds.push(drive(&engine, &mut rng, round));
        drop(engine);
        storage.crash();
        storage.set_fail_after(None);
        let recovered = open(&storage, &clock)
            .unwrap_or_else(|e| panic!("seed {seed}: recovery after a power cut failed: {e}"));
        check(seed, &recovered, &mut rounds);
    }
    storage.crash_stats()
}

/// The seeds to run: `HUIFU_POWER_LOSS_SEED` alone, or the first `HUIFU_POWER_LOSS_SEEDS`
/// (`default` when unset).
fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("HUIFU_POWER_LOSS_SEED") {
        Ok(seed) => vec![seed.parse().expect("HUIFU_POWER_LOSS_SEED is a number")],
        Err(_) => {
            let count = std::env::var("HUIFU_POWER_LOSS_SEEDS")
                .map(|n| n.parse().expect("HUIFU_POWER_LOSS_SEEDS is a number"))
                .unwrap_or(default);
            (0..count).collect()
        }
    }
}

#[test]
fn power_cuts_lose_nothing_acknowledged_and_leave_nothing_half_applied() {
    let seeds = seeds(POWER_LOSS_SEEDS_DEFAULT);
    let mut total = CrashStats::default();
    for &seed in &seeds {
        let stats = run(seed);
        total.crashes += stats.crashes;
        total.dropped += stats.dropped;
        total.torn += stats.torn;
        total.pages += stats.pages;
    }
    println!("{} seeds: {total:?}", seeds.len());
    assert_eq!(total.crashes, 2 * u64::try_from(seeds.len()).unwrap());
    if seeds.len() > 1 {
        assert!(total.dropped > 0 && total.torn > 0 && total.pages > 0, "{total:?}");
    }
}

/// Seeds of the run with a history store (each opens fjall a few times).
const HISTORY_SEEDS_DEFAULT: u64 = 60;
/// Transfers the engine keeps in memory in that run: most of each round's go to the store.
const HISTORY_MEMORY_MAX: usize = 40;
/// Its storage operations: group commits only, as it takes checkpoints itself.
const HISTORY_CRASH_POINT_MAX: u64 = 60;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// One seed of power cuts under an engine with a memory bound. The journal and checkpoints are
/// cut as in the run above. The history store is fjall's, on the real file system: how fjall
/// recovers its own files is fjall's to test, but what a cut can leave of the store as a whole
/// ranges from all it was given (the store ahead of the checkpoint the journal replays from)
/// to nothing since its last persist (each checkpoint persists it first). The seed picks one
/// of the two ends. Every acknowledged batch must be there, whether in memory or in the store,
/// and the ids of those batches are refused when sent again. Returns the crash statistics and
/// how many cuts rewound the store.
fn run_with_history(seed: u64) -> (CrashStats, u64) {
    let folder = tempfile::tempdir().unwrap();
    let data = folder.path().join("data");
    let history = data.join("history");
    let persisted = folder.path().join("history-as-persisted");
    std::fs::create_dir_all(&data).unwrap();
    let storage = FaultyStorage::new(seed);
    let clock = StepClock(Arc::new(AtomicU64::new(0)));
    let mut options = options_in(&data);
    options.memory_max = Some(HISTORY_MEMORY_MAX);
    options.checkpoint_interval_bytes = u64::MAX;
    let open = || {
        Engine::<LedgerMachine>::open_with(options.clone(), clock.clone(), storage.clone())
            .map(|(engine, _)| engine)
    };
    let mut rng = Rng(seed ^ 0x4157);
    let mut rounds = Vec::new();
    let mut rewound = 0;
    open().unwrap().execute(accounts()).unwrap();
    for round in 0..2 {
        // The store as a checkpoint's persist leaves it, copied with the engine stopped.
        let engine = open().unwrap();
        engine.checkpoint().unwrap();
        drop(engine);
        let _ = std::fs::remove_dir_all(&persisted);
        copy_tree(&history, &persisted);

        let engine = open().unwrap();
        storage.set_fail_after(Some(rng.next() % HISTORY_CRASH_POINT_MAX));
        rounds.push(drive_with(&engine, &mut rng, round, false));
        drop(engine);
        storage.crash();
        storage.set_fail_after(None);
        if rng.next().is_multiple_of(2) {
            std::fs::remove_dir_all(&history).unwrap();
            copy_tree(&persisted, &history);
            rewound += 1;
        }
        let recovered = open()
            .unwrap_or_else(|e| panic!("seed {seed}: recovery after a power cut failed: {e}"));
        check(seed, &recovered, &mut rounds);
        if let Some(first) = rounds.iter().find_map(|r| r.batches.first()) {
            let again = recovered.execute(LedgerCommand::CreateTransfers(first.clone())).unwrap();
            let LedgerOutcome::Transfers(results) = again else { panic!("seed {seed}: {again:?}") };
            assert!(
                results.iter().all(|r| *r != CreateTransferResult::Created),
                "seed {seed}: a batch made before the cut was made again: {results:?}"
            );
        }
    }
    (storage.crash_stats(), rewound)
}

#[test]
fn power_cuts_with_a_history_store_behind_or_ahead_lose_nothing() {
    let seeds = seeds(HISTORY_SEEDS_DEFAULT);
    let mut rewound = 0;
    let mut crashes = 0;
    for &seed in &seeds {
        let (stats, r) = run_with_history(seed);
        rewound += r;
        crashes += stats.crashes;
    }
    println!("{} seeds, {crashes} cuts, {rewound} with the store rewound", seeds.len());
    if seeds.len() > 1 {
        assert!(rewound > 0 && rewound < crashes, "both ends of the store were tried");
    }
}

fn checkpoint_files(storage: &FaultyStorage) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = storage
        .list(Path::new("/data"))
        .unwrap()
        .into_iter()
        .filter(|name| name.to_str().is_some_and(|n| n.starts_with("checkpoint-")))
        .map(|name| Path::new("/data").join(name))
        .collect();
    files.sort();
    files
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_one_before() {
    let storage = FaultyStorage::new(11);
    let clock = StepClock(Arc::new(AtomicU64::new(0)));
    let mut rng = Rng(11);
    let engine = open(&storage, &clock).unwrap();
    engine.execute(accounts()).unwrap();
    let mut rounds = Vec::new();
    for round in 0..3 {
        rounds.push(drive(&engine, &mut rng, round));
        engine.checkpoint().unwrap();
    }
    // A few batches after the last checkpoint, for the journal to replay.
    rounds.push(drive(&engine, &mut rng, 3));
    drop(engine);
    let total: usize = rounds.iter().map(|r| r.batches.len()).sum();
    let files = checkpoint_files(&storage);
    assert_eq!(files.len(), 2, "the newest two checkpoints are kept: {files:?}");

    storage.corrupt_byte(&files[1], 40).unwrap();
    let recovered = open(&storage, &clock).expect("falls back to the checkpoint before");
    assert_eq!(check(11, &recovered, &mut rounds), total);
    drop(recovered);

    // With both damaged, the journal no longer reaches back to the start: refused, not guessed.
    // (The recovered engine may have taken a checkpoint of its own: list them again; another
    // byte, so that the one damaged already is not mended.)
    for file in checkpoint_files(&storage) {
        storage.corrupt_byte(&file, 50).unwrap();
    }
    let error = open(&storage, &clock).err().expect("refused");
    assert!(error.to_string().contains("cannot replay from seq 1"), "{error}");
}
