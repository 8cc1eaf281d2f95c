//! A ledger engine with a bound on transfers in memory behaves like one that keeps everything:
//! results, lookups and statements, before and after restarts.

use std::path::Path;

use huifu_engine::{
    Clock, Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerOutcome,
    LedgerQuery,
};
use huifu_ledger::{Account, AccountFilter, CreateTransferResult as T, Transfer, TransferFlags};

const ACCOUNTS: u64 = 8;
const BATCHES: u64 = 20;
/// Transfers kept in memory by the bounded engine: a small part of the 160,000.
const MEMORY_MAX: usize = 20_000;
const BATCH: u64 = 8_000;

/// A clock that never moves: timestamps are then the smallest valid ones, the same in every
/// engine given the same commands.
struct Stopped;

impl Clock for Stopped {
    fn now_ns(&self) -> u64 {
        1
    }
}

fn open(dir: &Path, memory_max: Option<usize>) -> Engine<LedgerMachine> {
    let mut options = EngineOptions::new(dir);
    options.memory_max = memory_max;
    Engine::open_with_clock(options, Stopped).unwrap().0
}

fn assert_same(a: &[String], b: &[String], context: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        assert!(a == b, "{context}: view {i} differs");
    }
}

fn transfers(engine: &Engine<LedgerMachine>, batch: Vec<Transfer>) -> Vec<T> {
    match engine.execute(LedgerCommand::CreateTransfers(batch)).unwrap() {
        LedgerOutcome::Transfers(results) => results,
        other => panic!("{other:?}"),
    }
}

/// Batch `b`: transfers between the accounts in turn; one in 1,000 is a hold left pending.
fn batch(b: u64) -> Vec<Transfer> {
    (0..BATCH)
        .map(|i| {
            let n = b * BATCH + i;
            let mut flags = TransferFlags::default();
            flags.set(TransferFlags::PENDING, n.is_multiple_of(1_000));
            Transfer {
                id: u128::from(n + 1),
                debit_account_id: u128::from(n % ACCOUNTS + 1),
                credit_account_id: u128::from((n + 1) % ACCOUNTS + 1),
                amount: u128::from(n % 97 + 1),
                ledger: 1,
                code: 1,
                flags,
                ..Transfer::default()
            }
        })
        .collect()
}

fn run(engine: &Engine<LedgerMachine>, batches: std::ops::Range<u64>) {
    for b in batches {
        assert!(transfers(engine, batch(b)).iter().all(|&r| r == T::Created));
    }
}

/// Everything a client can see: accounts, some lookups, and statement pages both ways.
fn view(engine: &Engine<LedgerMachine>) -> Vec<String> {
    let mut view = Vec::new();
    let ids: Vec<u128> = (1..=u128::from(ACCOUNTS)).collect();
    view.push(format!("{:?}", engine.query(LedgerQuery::LookupAccounts(ids)).unwrap()));
    let ids: Vec<u128> = (1..=u128::from(BATCHES * BATCH + 10)).step_by(997).collect();
    view.push(format!("{:?}", engine.query(LedgerQuery::LookupTransfers(ids)).unwrap()));
    for account in 1..=u128::from(ACCOUNTS) {
        for filter in [
            AccountFilter::all(account, 8_189),
            AccountFilter { reversed: true, ..AccountFilter::all(account, 8_189) },
            AccountFilter { timestamp_min: 1, code: 1, ..AccountFilter::all(account, 300) },
        ] {
            view.push(format!(
                "{:?}",
                engine.query(LedgerQuery::AccountTransfers(filter)).unwrap()
            ));
        }
    }
    view
}

#[test]
fn a_bounded_engine_answers_like_an_unbounded_one_across_restarts() {
    let plain_dir = tempfile::tempdir().unwrap();
    let bounded_dir = tempfile::tempdir().unwrap();
    let accounts: Vec<Account> = (1..=u128::from(ACCOUNTS))
        .map(|id| Account { id, ledger: 1, code: 1, ..Account::default() })
        .collect();
    let plain = open(plain_dir.path(), None);
    let bounded = open(bounded_dir.path(), Some(MEMORY_MAX));
    for engine in [&plain, &bounded] {
        engine.execute(LedgerCommand::CreateAccounts(accounts.clone())).unwrap();
        run(engine, 0..BATCHES / 2);
        engine.checkpoint().unwrap();
        run(engine, BATCHES / 2..BATCHES);
    }
    // The first transfers are no longer in memory, but still answer for their ids.
    let LedgerAnswer::Transfers(found) =
        bounded.query(LedgerQuery::LookupTransfers(vec![1, 2])).unwrap()
    else {
        panic!()
    };
    assert_eq!(found.len(), 2);
    assert!(bounded_dir.path().join("history").exists());
    assert_same(&view(&bounded), &view(&plain), "before restarts");

    // Retries of old transfers, a changed one, and posting a hold that stayed pending.
    let mut retry = batch(0);
    retry.truncate(3);
    retry[2].amount += 1;
    let post = Transfer {
        id: u128::from(BATCHES * BATCH + 1),
        pending_id: 1,
        amount: u128::MAX,
        flags: TransferFlags::POST_PENDING_TRANSFER,
        ..Transfer::default()
    };
    retry.push(post);
    for engine in [&plain, &bounded] {
        assert_eq!(
            transfers(engine, retry.clone()),
            [T::Exists, T::Exists, T::ExistsWithDifferentAmount, T::Created]
        );
    }
    assert_same(&view(&bounded), &view(&plain), "after retries");
    drop(bounded);

    // After a restart (checkpoint plus journal), bounded or not, the same answers.
    for memory_max in [Some(MEMORY_MAX), None] {
        let bounded = open(bounded_dir.path(), memory_max);
        assert_same(&view(&bounded), &view(&plain), &format!("memory_max {memory_max:?}"));
        drop(bounded);
    }
}

#[test]
fn a_state_whose_history_store_is_gone_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), Some(MEMORY_MAX));
    let accounts: Vec<Account> = (1..=u128::from(ACCOUNTS))
        .map(|id| Account { id, ledger: 1, code: 1, ..Account::default() })
        .collect();
    engine.execute(LedgerCommand::CreateAccounts(accounts)).unwrap();
    run(&engine, 0..4);
    engine.checkpoint().unwrap();
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("history")).unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.memory_max = Some(MEMORY_MAX);
    let error = Engine::<LedgerMachine>::open_with_clock(options, Stopped).err().expect("refused");
    assert!(error.to_string().contains("is missing"), "{error}");
}
