//! The payment machine run by the engine: a retry returns the first outcome across restarts,
//! from the journal alone, from a checkpoint and the journal after it, and from a checkpoint
//! alone; with history in the store as well; and operations the machine rejects are replayed
//! alike.

#[path = "../../payments/tests/support/mod.rs"]
mod support;

use std::path::Path;

use huifu_engine::{Engine, EngineOptions};
use huifu_payments::constants::BATCH_OPS_MAX;
use huifu_payments::{audit, CouponRule, Funder, Op, Outcome, PaymentError, PaymentsMachine};
use support::*;

fn open(dir: &Path) -> (Engine<PaymentsMachine>, huifu_engine::Recovery) {
    open_bounded(dir, None)
}

/// With `memory_max`, at most that many ledger transfers (and a quarter as many entries of each
/// payment table) stay in memory; the rest goes to the history store.
fn open_bounded(
    dir: &Path,
    memory_max: Option<usize>,
) -> (Engine<PaymentsMachine>, huifu_engine::Recovery) {
    let mut options = EngineOptions::new(dir);
    options.fsync = false;
    options.segment_size_max = 64 << 10;
    options.memory_max = memory_max;
    Engine::open(options).expect("engine opens")
}

/// Runs `actions` through the engine (its clock: no expiries or waits), returning every
/// operation with its outcome.
fn run_engine(
    engine: &Engine<PaymentsMachine>,
    mut mix: Mix,
    actions: &[Action],
) -> (Mix, Vec<(Op, Outcome)>) {
    let mut applied = Vec::new();
    for action in actions {
        if matches!(action, Action::Expire { .. } | Action::Wait { .. }) {
            continue;
        }
        let action = action.clone();
        let (back, op) = engine
            .read(move |m| {
                let op = mix.op(m, &action);
                (mix, op)
            })
            .unwrap();
        mix = back;
        let outcome = engine.execute(op.clone()).unwrap();
        mix.ops.push((0, op.clone()));
        applied.push((op, outcome));
    }
    (mix, applied)
}

fn retry_all(engine: &Engine<PaymentsMachine>, applied: &[(Op, Outcome)]) {
    for (op, first) in applied {
        assert_eq!(&engine.execute(op.clone()).unwrap(), first, "retry of {op:?}");
    }
}

/// The state's snapshot, less its last 16 bytes: the journal position (records applied, the
/// last move to the history store), which every record moves, retries included.
fn check_engine(engine: &Engine<PaymentsMachine>) -> Vec<u8> {
    let report = engine.read(audit).unwrap();
    assert!(report.ok(), "{:#?}", report.violations);
    let mut bytes = engine.read(snapshot).unwrap();
    bytes.truncate(bytes.len() - 16);
    bytes
}

#[test]
fn retries_return_the_first_outcomes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut applied = Vec::new();
    let (engine, _) = open(dir.path());
    for op in mix_setup() {
        let outcome = engine.execute(op.clone()).unwrap();
        applied.push((op, outcome));
    }
    // Campaign 41 ended long before the engine's clock: the rest must have worked.
    assert!(applied.iter().all(|(_, o)| o.is_ok()));
    let (mix, more) = run_engine(&engine, Mix::new(), &actions(250, 0xfeed));
    applied.extend(more);
    let state = check_engine(&engine);
    drop(engine);

    // From the journal alone.
    let (engine, recovery) = open(dir.path());
    assert_eq!(recovery.records_replayed as usize, applied.len());
    assert_eq!(check_engine(&engine), state);
    retry_all(&engine, &applied);
    assert_eq!(check_engine(&engine), state);

    // From a checkpoint, then the journal after it.
    engine.checkpoint().unwrap();
    let (_, more) = run_engine(&engine, mix, &actions(150, 0xbeef));
    let after_checkpoint = more.len();
    applied.extend(more);
    let state = check_engine(&engine);
    drop(engine);
    let (engine, recovery) = open(dir.path());
    assert!(recovery.checkpoint_seq > 1);
    assert_eq!(recovery.records_replayed as usize, after_checkpoint);
    assert_eq!(check_engine(&engine), state);
    retry_all(&engine, &applied);
    assert_eq!(check_engine(&engine), state);

    // From a checkpoint alone.
    engine.checkpoint().unwrap();
    drop(engine);
    let (engine, recovery) = open(dir.path());
    assert_eq!(recovery.records_replayed, 0);
    assert_eq!(check_engine(&engine), state);
    retry_all(&engine, &applied);
}

/// What a state means, wherever its parts are held: every payment, every account's balances,
/// each merchant's and user's list of payments, after a clean audit.
type Logical = (Vec<(u64, huifu_payments::Payment)>, Vec<u8>, Vec<Option<Vec<u64>>>);

fn logical(engine: &Engine<PaymentsMachine>) -> Logical {
    let report = engine.read(audit).unwrap();
    assert!(report.ok(), "{:#?}", report.violations);
    engine
        .read(|m| {
            let mut accounts = Vec::new();
            for a in m.ledger().accounts() {
                accounts.extend_from_slice(format!("{a:?}").as_bytes());
            }
            let lists = MERCHANTS
                .iter()
                .map(|&p| (true, p))
                .chain(USERS.iter().map(|&p| (false, p)))
                .map(|(merchant, party)| m.payments_page(merchant, party, None, usize::MAX))
                .collect();
            (m.payments_all(), accounts, lists)
        })
        .unwrap()
}

#[test]
fn retries_return_the_first_outcomes_after_restarts_with_history_in_the_store() {
    // At most 8 transfers and 2 entries of each payment table in memory: nearly everything a
    // retry or a refund needs comes back from the store, across restarts from the journal and
    // from checkpoints whose store went on ahead of them.
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open_bounded(dir.path(), Some(8));
    let mut applied = Vec::new();
    for op in mix_setup() {
        let outcome = engine.execute(op.clone()).unwrap();
        applied.push((op, outcome));
    }
    let (mix, more) = run_engine(&engine, Mix::new(), &actions(250, 0xfeed));
    applied.extend(more);
    let state = logical(&engine);
    assert!(engine.read(|m| m.payments_in_memory()).unwrap() < state.0.len() / 2);
    retry_all(&engine, &applied);
    assert_eq!(logical(&engine), state);
    drop(engine);

    let (engine, _) = open_bounded(dir.path(), Some(8));
    assert_eq!(logical(&engine), state);
    retry_all(&engine, &applied);
    assert_eq!(logical(&engine), state);
    engine.checkpoint().unwrap();
    let (mix, more) = run_engine(&engine, mix, &actions(150, 0xbeef));
    applied.extend(more);
    let state = logical(&engine);
    drop(engine);

    // The checkpoint, then the journal after it; the store holds what went out after it.
    let (engine, recovery) = open_bounded(dir.path(), Some(8));
    assert!(recovery.checkpoint_seq > 1);
    assert_eq!(logical(&engine), state);
    retry_all(&engine, &applied);
    let (_, more) = run_engine(&engine, mix, &actions(100, 0xcafe));
    applied.extend(more);
    let state = logical(&engine);
    drop(engine);

    // Reopened without a bound: everything is still found.
    let (engine, _) = open_bounded(dir.path(), None);
    assert_eq!(logical(&engine), state);
    retry_all(&engine, &applied);
    assert_eq!(logical(&engine), state);
    engine.checkpoint().unwrap();
    drop(engine);

    // Without its store, the state refuses to start rather than answer "not found".
    std::fs::rename(dir.path().join("history"), dir.path().join("history.moved")).unwrap();
    let mut options = EngineOptions::new(dir.path());
    options.fsync = false;
    let error = Engine::<PaymentsMachine>::open(options).err().expect("refused");
    assert!(error.to_string().contains("is missing, but the state moved records"), "{error}");
}

#[test]
fn operations_the_machine_rejects_are_replayed_alike_after_a_restart() {
    // Whatever a client sends is journaled before it is applied, so it must come back from the
    // journal as it was sent, however malformed.
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = open(dir.path());
    let mut ops: Vec<Op> = mix_setup();
    ops.extend([
        Op::Batch(vec![Op::Batch(vec![]), Op::CreateUser { id: 500, currency: CNY }]),
        Op::Batch(vec![Op::Batch(vec![Op::Batch(vec![Op::Expire])]), Op::Expire]),
        Op::Batch(vec![Op::Capture { id: 1 }; BATCH_OPS_MAX + 1]),
        Op::CreateCampaign {
            id: 501,
            currency: CNY,
            funder: Funder::Merchant(0),
            budget: 100,
            rule: CouponRule {
                amount_off: 10,
                min_order: 0,
                valid_from: 0,
                valid_until: 0,
                per_user_limit: 0,
            },
        },
    ]);
    let applied: Vec<(Op, Outcome)> =
        ops.into_iter().map(|op| (op.clone(), engine.execute(op).unwrap())).collect();
    let n = applied.len();
    assert_eq!(applied[n - 1].1, Err(PaymentError::UnknownMerchant));
    assert_eq!(applied[n - 2].1, Err(PaymentError::BatchTooLarge));
    let state = check_engine(&engine);
    drop(engine);
    let (engine, _) = open(dir.path());
    assert_eq!(check_engine(&engine), state);
    retry_all(&engine, &applied);
    assert!(engine.read(|m| m.campaign(501).is_none()).unwrap());
}
