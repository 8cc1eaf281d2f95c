//! Recovery reproduces the state exactly: from the journal alone, and from checkpoint + journal.

use std::path::Path;

use huifu_engine::{
    Engine, EngineOptions, LedgerAnswer, LedgerCommand, LedgerMachine, LedgerQuery,
};
use huifu_ledger::{Account, AccountFilter, AccountFlags, Transfer, TransferFlags};

fn open(dir: &Path) -> Engine<LedgerMachine> {
    let mut options = EngineOptions::new(dir);
    options.segment_size_max = 16 << 10;
    Engine::open(options).unwrap().0
}

/// Everything observable: every account and every account's transfers.
fn state(engine: &Engine<LedgerMachine>, accounts: u64) -> (Vec<Account>, Vec<Transfer>) {
    let ids: Vec<u128> = (1..=u128::from(accounts)).collect();
    let LedgerAnswer::Accounts(a) = engine.query(LedgerQuery::LookupAccounts(ids)).unwrap() else {
        panic!()
    };
    let mut transfers = Vec::new();
    for id in 1..=u128::from(accounts) {
        let LedgerAnswer::Transfers(t) =
            engine.query(LedgerQuery::AccountTransfers(AccountFilter::all(id, 8_190))).unwrap()
        else {
            panic!()
        };
        transfers.extend(t);
    }
    (a, transfers)
}

fn workload(engine: &Engine<LedgerMachine>, accounts: u64, from: u64, batches: u64) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ from;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for b in from..from + batches {
        let transfers: Vec<Transfer> = (0..40u64)
            .map(|i| {
                let debit = next() % accounts + 1;
                let credit = (debit + next() % (accounts - 1)) % accounts + 1;
                let pending = next() % 4 == 0;
                let mut flags = TransferFlags::default();
                flags.set(TransferFlags::PENDING, pending);
                flags.set(TransferFlags::LINKED, next() % 3 == 0 && i < 39);
                Transfer {
                    id: u128::from(b * 1_000 + i + 1),
                    debit_account_id: u128::from(debit),
                    credit_account_id: u128::from(credit),
                    amount: u128::from(next() % 500),
                    ledger: 1,
                    code: 1,
                    flags,
                    ..Transfer::default()
                }
            })
            .collect();
        engine.execute(LedgerCommand::CreateTransfers(transfers)).unwrap();
    }
}

#[test]
fn restart_from_journal_and_from_checkpoint_gives_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let accounts = 30;
    let engine = open(dir.path());
    let mut list: Vec<Account> = (1..=accounts)
        .map(|i| Account { id: u128::from(i), ledger: 1, code: 1, ..Account::default() })
        .collect();
    // Some wallets that may not go negative, so some transfers fail and burn their ids.
    for a in list.iter_mut().take(10) {
        a.flags = AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS;
    }
    engine.execute(LedgerCommand::CreateAccounts(list)).unwrap();
    workload(&engine, accounts, 0, 50);
    let before = state(&engine, accounts);
    drop(engine);

    // From the journal alone.
    let engine = open(dir.path());
    assert_eq!(state(&engine, accounts), before);
    // Checkpoint, more work, restart: checkpoint + journal tail.
    engine.checkpoint().unwrap();
    workload(&engine, accounts, 50, 50);
    let before = state(&engine, accounts);
    drop(engine);
    let (engine, recovery) = Engine::<LedgerMachine>::open(EngineOptions::new(dir.path())).unwrap();
    assert!(recovery.checkpoint_seq > 1);
    assert_eq!(recovery.records_replayed, 50);
    assert_eq!(state(&engine, accounts), before);
}

#[test]
fn a_second_engine_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = open(dir.path());
    let second = Engine::<LedgerMachine>::open(EngineOptions::new(dir.path()));
    assert!(matches!(second, Err(huifu_engine::EngineError::Locked(_))));
}

#[test]
fn a_torn_journal_tail_is_cut_and_the_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let list: Vec<Account> =
        (1..=5).map(|i| Account { id: i, ledger: 1, code: 1, ..Account::default() }).collect();
    engine.execute(LedgerCommand::CreateAccounts(list)).unwrap();
    drop(engine);
    // Half a record of garbage at the end of the newest segment, as a crash mid-write leaves.
    let journal = dir.path().join("journal");
    let mut segments: Vec<_> =
        std::fs::read_dir(&journal).unwrap().map(|e| e.unwrap().path()).collect();
    segments.sort();
    let last = segments.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&[0xAB; 37]);
    std::fs::write(last, bytes).unwrap();
    let (engine, recovery) = Engine::<LedgerMachine>::open(EngineOptions::new(dir.path())).unwrap();
    assert_eq!(recovery.truncated_bytes, 37);
    assert_eq!(state(&engine, 5).0.len(), 5);
}
