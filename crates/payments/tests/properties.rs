//! Random sequences of payment operations in a small world: after every operation the audit is
//! clean, money is conserved, rejections move nothing, successes move exactly their legs,
//! refunds stay within their payments, campaigns within their budgets, settlement runs pay
//! exactly what is owed; and the same sequence replayed, or continued from a snapshot, gives the
//! same outcomes.

mod support;

use std::collections::HashMap;

use huifu_payments::chart::Kind;
use huifu_payments::command::codec;
use huifu_payments::{Done, Op, Outcome, PaymentError, PaymentStatus, PaymentsMachine};
use proptest::prelude::*;
use support::*;

fn leaf() -> impl Strategy<Value = Action> {
    let index = || 0usize..1_000;
    let timeout = || prop_oneof![Just(0u32), 30u32..120, Just(600)];
    prop_oneof![
        3 => (index(), index(), 1u64..8_000, timeout()).prop_map(
            |(user, channel, amount, timeout_s)| Action::TopUp { user, channel, amount, timeout_s }
        ),
        1 => (index(), index(), 1u64..4_000)
            .prop_map(|(user, channel, amount)| Action::Withdraw { user, channel, amount }),
        3 => (index(), prop::bool::weighted(0.75))
            .prop_map(|(hold, ok)| Action::BankResult { hold, ok }),
        6 => (
            (index(), index(), index()),
            (0u64..4_000, 0u64..600),
            (prop::option::of(index()), prop::option::weighted(0.4, index()), timeout()),
        )
            .prop_map(|((user, merchant, rider), (food, delivery), (coupon, channel, timeout_s))| {
                Action::Pay { user, merchant, rider, food, delivery, coupon, channel, timeout_s }
            }),
        2 => index().prop_map(|payment| Action::Capture { payment }),
        1 => index().prop_map(|payment| Action::Release { payment }),
        3 => (index(), 0u64..1_100).prop_map(|(payment, part)| Action::Refund { payment, part }),
        1 => (index(), prop_oneof![Just(0u64), 1u64..3_000])
            .prop_map(|(merchant, amount)| Action::Payout { merchant, amount }),
        2 => (index(), prop::bool::weighted(0.7))
            .prop_map(|(payout, ok)| Action::PayoutResult { payout, ok }),
        1 => Just(Action::SettlementRun),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        20 => leaf(),
        2 => (0u64..400).prop_map(|seconds| Action::Expire { seconds }),
        1 => (0u64..200).prop_map(|seconds| Action::Wait { seconds }),
        2 => (0usize..1_000).prop_map(|op| Action::Retry { op }),
        1 => prop::collection::vec(leaf(), 2..4).prop_map(Action::Batch),
    ]
}

/// What the checks of one step need from before it.
struct Before {
    money: Money,
    wallets: HashMap<u64, i128>,
    merchants: HashMap<u64, i128>,
    riders: HashMap<u64, i128>,
    revenue: i128,
    budgets: HashMap<u64, u64>,
    /// Payment id → (status, what remains to refund).
    payments: HashMap<u64, (PaymentStatus, u64)>,
    /// The first outcome, when the operation is a retry.
    first: Option<Outcome>,
    /// Another operation already took the operation's id.
    taken: bool,
}

fn before(m: &PaymentsMachine, op: &Op, first: Option<Outcome>) -> Before {
    Before {
        money: money(m),
        wallets: USERS.iter().map(|&u| (u, wallet(m, u))).collect(),
        merchants: MERCHANTS.iter().map(|&id| (id, merchant(m, id))).collect(),
        riders: RIDERS.iter().map(|&id| (id, rider(m, id))).collect(),
        revenue: revenue(m),
        budgets: CAMPAIGNS.iter().map(|&c| (c, budget_left(m, c))).collect(),
        payments: m
            .payments_all()
            .into_iter()
            .map(|(id, p)| (id, (m.payment_status(id, &p), p.total() - p.refunded_total())))
            .collect(),
        taken: first.is_none()
            && !matches!(op, Op::Batch(_) | Op::Expire)
            && m.outcome_of(op).is_some(),
        first,
    }
}

/// Every check of one operation's outcome against the state before and after it.
fn check(m: &PaymentsMachine, b: &Before, op: &Op, outcome: &Outcome) {
    let report = huifu_payments::audit(m);
    assert!(report.ok(), "after {op:?} → {outcome:?}: {:#?}", report.violations);
    // Money is conserved: every debit has its credit.
    assert!(m.ledger().totals().is_balanced());
    m.for_each_payment(|id, p| {
        assert!(p.refunded_total() <= p.total(), "payment {id} refunded above its total");
    });
    for (id, c) in m.campaigns() {
        assert!(budget_left(m, id) <= c.budget, "campaign {id} above its budget");
    }

    if let Some(first) = &b.first {
        // A retry returns the first outcome and moves nothing.
        assert_eq!(outcome, first, "retry of {op:?}");
        assert_eq!(money(m), b.money, "retry of {op:?} moved money");
        return;
    }
    if b.taken {
        assert_eq!(outcome, &Err(PaymentError::IdempotencyConflict), "{op:?}");
    }
    let unchanged = match outcome {
        Err(_) => true,
        Ok(Done::Batch(outcomes)) => outcomes.iter().all(Result::is_err),
        Ok(_) => false,
    };
    if unchanged {
        assert_eq!(money(m), b.money, "{op:?} → {outcome:?} moved money");
        return;
    }
    match (op, outcome) {
        (
            Op::Pay { id, user, merchant: to, rider: by, .. },
            Ok(Done::Payment { status, total, legs, .. }),
        ) => {
            let campaign = m.payment(*id).unwrap().0.campaign;
            if let Some(&left) = b.budgets.get(&campaign) {
                assert_eq!(budget_left(m, campaign), left - legs.coupon);
            }
            if *status == PaymentStatus::Succeeded {
                assert_eq!(wallet(m, *user), b.wallets[user] - i128::from(*total));
                assert_eq!(merchant(m, *to), b.merchants[to] + i128::from(legs.merchant));
                assert_eq!(rider(m, *by), b.riders[by] + i128::from(legs.rider));
                assert_eq!(revenue(m), b.revenue + i128::from(legs.platform));
            } else {
                assert_eq!(*status, PaymentStatus::Authorized);
                assert_eq!(wallet(m, *user), b.wallets[user]);
                assert_eq!(merchant(m, *to), b.merchants[to]);
            }
        }
        (Op::Capture { id }, Ok(Done::Payment { status, total, legs, .. })) => {
            assert_eq!(b.payments[id].0, PaymentStatus::Authorized);
            assert_eq!(*status, PaymentStatus::Succeeded);
            let p = m.payment(*id).unwrap().0;
            assert_eq!(p.total(), *total);
            assert_eq!(wallet(m, p.user), b.wallets[&p.user]);
            assert_eq!(
                merchant(m, p.merchant),
                b.merchants[&p.merchant] + i128::from(legs.merchant)
            );
            assert_eq!(revenue(m), b.revenue + i128::from(legs.platform));
        }
        (Op::Release { id }, Ok(Done::Payment { status, .. })) => {
            assert_eq!(b.payments[id].0, PaymentStatus::Authorized);
            assert_eq!(*status, PaymentStatus::Released);
            let p = m.payment(*id).unwrap().0;
            assert_eq!(wallet(m, p.user), b.wallets[&p.user]);
            assert_eq!(merchant(m, p.merchant), b.merchants[&p.merchant]);
            if let Some(&left) = b.budgets.get(&p.campaign) {
                assert_eq!(budget_left(m, p.campaign), left + p.legs.coupon);
            }
        }
        (Op::Refund { payment, amount, .. }, Ok(Done::Refund { amount: refunded, legs, full })) => {
            let (status, remaining) = b.payments[payment];
            assert_eq!(status, PaymentStatus::Succeeded);
            assert_eq!(amount, refunded);
            assert!(*amount <= remaining, "refund {amount} above the remaining {remaining}");
            assert_eq!(*full, *amount == remaining);
            assert_eq!(legs.total(), *amount);
            let p = m.payment(*payment).unwrap().0;
            assert_eq!(wallet(m, p.user), b.wallets[&p.user] + i128::from(*amount));
            assert_eq!(
                merchant(m, p.merchant),
                b.merchants[&p.merchant] - i128::from(legs.merchant)
            );
            assert_eq!(rider(m, p.rider), b.riders[&p.rider] - i128::from(legs.rider));
            assert_eq!(revenue(m), b.revenue - i128::from(legs.platform));
            if let Some(&left) = b.budgets.get(&p.campaign) {
                assert_eq!(budget_left(m, p.campaign), left + legs.coupon);
            }
            if *full {
                assert_eq!(p.refunded, p.legs, "the last refund reverses every leg exactly");
            }
        }
        (Op::Payout { merchant: id, amount, .. }, Ok(Done::Payout { amount: paid, .. })) => {
            let available = b.merchants[id];
            assert!(i128::from(*paid) <= available);
            if *amount == 0 {
                assert_eq!(i128::from(*paid), available);
            }
            assert_eq!(merchant(m, *id), available - i128::from(*paid));
        }
        (Op::SettlementRun { .. }, Ok(Done::Settlement { lines })) => {
            // Each merchant is paid exactly its available balance just before the run.
            for &id in &MERCHANTS {
                let owed = b.merchants[&id];
                let net = lines.iter().find(|l| l.merchant == id).map_or(0, |l| l.net);
                assert_eq!(i128::from(net), owed, "merchant {id}");
                assert_eq!(merchant(m, id), 0, "merchant {id} after the run");
            }
        }
        _ => {}
    }
}

fn encoding(op: &Op) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec::encode(op, &mut bytes);
    bytes
}

/// The operations of the world's setup and of `actions`, each with its time.
fn run(actions: &[Action]) -> (Vec<(u64, Op)>, Vec<Outcome>, PaymentsMachine) {
    let mut w = World::empty();
    let mut ops = Vec::new();
    let mut outcomes = Vec::new();
    for op in mix_setup() {
        let now = w.now;
        outcomes.push(Ok(w.ok(op.clone())));
        ops.push((now, op));
    }
    let mut mix = Mix::new();
    mix.ops = ops.clone();
    // First outcome of every operation (by its encoding), to know a retry.
    let mut firsts: HashMap<Vec<u8>, Outcome> = HashMap::new();
    for (op, outcome) in ops.iter().map(|(_, op)| op).zip(&outcomes) {
        firsts.insert(encoding(op), outcome.clone());
    }
    for action in actions {
        match action {
            Action::Expire { seconds } => w.now += seconds * S,
            Action::Wait { seconds } => {
                w.now += seconds * S;
                continue;
            }
            _ => {}
        }
        let op = mix.op(&w.m, action);
        let now = w.now;
        let first = match op {
            Op::Batch(_) | Op::Expire => None,
            _ => firsts.get(&encoding(&op)).cloned(),
        };
        let b = before(&w.m, &op, first);
        let outcome = w.apply(op.clone());
        check(&w.m, &b, &op, &outcome);
        match (&op, &outcome) {
            (Op::Batch(inner), Ok(Done::Batch(results))) => {
                for (op, outcome) in inner.iter().zip(results) {
                    if *outcome != Err(PaymentError::IdempotencyConflict) {
                        firsts.entry(encoding(op)).or_insert_with(|| outcome.clone());
                    }
                }
            }
            _ if !b.taken => {
                firsts.entry(encoding(&op)).or_insert_with(|| outcome.clone());
            }
            _ => {}
        }
        mix.ops.push((now, op.clone()));
        ops.push((now, op));
        outcomes.push(outcome);
    }
    (ops, outcomes, w.m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_operation_keeps_the_invariants(
        actions in prop::collection::vec(action(), 10..80),
    ) {
        run(&actions);
    }

    #[test]
    fn replay_and_snapshots_give_the_same_outcomes(
        actions in prop::collection::vec(action(), 10..60),
        cut in 0usize..1_000,
    ) {
        let (ops, outcomes, m) = run(&actions);
        let end = snapshot(&m);

        // The same operations at the same times on a fresh machine.
        let mut fresh = PaymentsMachine::new();
        for ((now, op), first) in ops.iter().zip(&outcomes) {
            prop_assert_eq!(&fresh.apply(*now, op), first, "replay of {:?}", op);
        }
        prop_assert_eq!(snapshot(&fresh), end.clone());

        // Stopped anywhere, written to a snapshot and read back, it goes on the same way.
        let cut = cut % (ops.len() + 1);
        let mut before_cut = PaymentsMachine::new();
        for (now, op) in &ops[..cut] {
            let _ = before_cut.apply(*now, op);
        }
        let mut restored = restore(&snapshot(&before_cut));
        prop_assert_eq!(snapshot(&restored), snapshot(&before_cut));
        assert_audit_clean(&restored);
        for ((now, op), first) in ops[cut..].iter().zip(&outcomes[cut..]) {
            prop_assert_eq!(&restored.apply(*now, op), first, "after a snapshot: {:?}", op);
        }
        prop_assert_eq!(snapshot(&restored), end);
    }
}

/// The same operations on a machine that keeps at most `memory_max` ledger transfers in memory
/// and the rest in a history store, driven as the engine drives it (prefetch, apply, evict),
/// written to a snapshot after `cut` operations and continued from it with the store as it is
/// (ahead of the snapshot, as after a crash). One more checkpoint is taken halfway through the
/// rest, and the restart is still from the cut's: the engine keeps two checkpoints and falls
/// back to the older when the newest is damaged, so the store must never need a record that
/// only the newest holds.
/// A checkpoint as the engine takes one: the store made durable, then the snapshot (here
/// not written: the test restores only from the cut's, taken just before).
fn checkpoint(m: &mut PaymentsMachine) {
    use huifu_engine::Machine;
    Machine::persist_history(m).unwrap();
    Machine::checkpointed(m);
}

fn run_bounded(
    ops: &[(u64, Op)],
    outcomes: &[Outcome],
    memory_max: usize,
    cut: usize,
) -> Result<(PaymentsMachine, tempfile::TempDir), TestCaseError> {
    use huifu_engine::Machine;
    // Returned with the machine: its store reads files there.
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut m = PaymentsMachine::new();
    Machine::open_history(&mut m, &history, Some(memory_max)).unwrap();
    let mut at_cut = None;
    for (i, ((now, op), first)) in ops.iter().zip(outcomes).enumerate() {
        if i == cut {
            at_cut = Some(snapshot(&m));
            checkpoint(&mut m);
        }
        Machine::prefetch(&mut m, op).unwrap();
        prop_assert_eq!(&m.apply(*now, op), first, "bounded: {:?}", op);
        Machine::evict(&mut m).unwrap();
        // As the engine does, but only before the cut: the restart below is from the cut's
        // checkpoint, which is at worst the one before the latest.
        if i < cut && Machine::checkpoint_wanted(&m) {
            checkpoint(&mut m);
        }
        if i > cut && i == cut + (ops.len() - cut) / 2 {
            checkpoint(&mut m);
        }
    }
    assert_audit_clean(&m);
    let Some(at_cut) = at_cut else { return Ok((m, dir)) };
    drop(m);
    let mut restored = restore(&at_cut);
    Machine::open_history(&mut restored, &history, Some(memory_max)).unwrap();
    for ((now, op), first) in ops[cut..].iter().zip(&outcomes[cut..]) {
        Machine::prefetch(&mut restored, op).unwrap();
        prop_assert_eq!(&restored.apply(*now, op), first, "restored, bounded: {:?}", op);
        Machine::evict(&mut restored).unwrap();
        if Machine::checkpoint_wanted(&restored) {
            checkpoint(&mut restored);
        }
    }
    assert_audit_clean(&restored);
    Ok((restored, dir))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn moving_history_to_the_store_changes_no_outcome(
        actions in prop::collection::vec(action(), 10..80),
        memory_max in 0usize..8,
        cut in 0usize..1_000,
    ) {
        let (ops, outcomes, m) = run(&actions);
        let cut = cut % (ops.len() + 1);
        let (mut bounded, _dir) = run_bounded(&ops, &outcomes, memory_max, cut)?;
        prop_assert!(bounded.ledger().horizon() > 0, "nothing left memory");
        // Statements and lookups see the whole history.
        for a in m.ledger().accounts() {
            let filter = huifu_ledger::AccountFilter::all(a.id, 8_000);
            prop_assert_eq!(bounded.statement(&filter), m.statement(&filter));
            let reversed = huifu_ledger::AccountFilter { reversed: true, ..filter };
            prop_assert_eq!(bounded.statement(&reversed), m.statement(&reversed));
        }
        for t in m.ledger().transfers().iter() {
            prop_assert_eq!(bounded.lookup_transfer(t.id).unwrap(), Some(*t));
            prop_assert_eq!(bounded.pending_status(t.id).unwrap(), m.ledger().pending_status(t.id));
        }
        // So do the payment tables: payments, refunds, outcomes, lists.
        let payments = m.payments_all();
        prop_assert_eq!(bounded.payments_all(), payments.clone());
        for (id, p) in &payments {
            prop_assert_eq!(bounded.payment(*id), m.payment(*id));
            for r in &p.refunds {
                prop_assert_eq!(bounded.refund_of(*r), m.refund_of(*r));
            }
        }
        for (_, op) in &ops {
            prop_assert_eq!(bounded.outcome_of(op), m.outcome_of(op));
        }
        prop_assert_eq!(bounded.payouts(), m.payouts());
        for (id, p) in m.payouts() {
            prop_assert_eq!(bounded.payout_of(id), Some(p));
        }
        prop_assert_eq!(bounded.holds(), m.holds());
        for (id, _) in m.holds() {
            prop_assert_eq!(bounded.hold_of(id), m.hold_of(id));
        }
        for merchant in [true, false] {
            let parties = if merchant { &MERCHANTS[..] } else { &USERS[..] };
            for &party in parties {
                let all = m.payments_page(merchant, party, None, usize::MAX).unwrap();
                prop_assert_eq!(bounded.payments_page(merchant, party, None, usize::MAX), Some(all.clone()));
                // Page by two through the cursor.
                let mut paged = Vec::new();
                let mut after = None;
                loop {
                    let page = bounded.payments_page(merchant, party, after, 2).unwrap();
                    paged.extend_from_slice(&page);
                    if page.len() < 2 {
                        break;
                    }
                    after = page.last().copied();
                }
                prop_assert_eq!(paged, all);
            }
        }
        // Memory holds the bound's worth of payments and those it must keep (authorized),
        // once a checkpoint let the ones read back and changed go too.
        checkpoint(&mut bounded);
        huifu_engine::Machine::evict(&mut bounded).unwrap();
        let authorized =
            payments.iter().filter(|(_, p)| p.status == PaymentStatus::Authorized).count();
        let held_max = memory_max / huifu_payments::constants::TRANSFERS_PER_RECORD;
        prop_assert!(
            bounded.payments_in_memory() <= authorized + held_max,
            "{} payments in memory, {} authorized, bound {}",
            bounded.payments_in_memory(), authorized, held_max
        );
        prop_assert_eq!(bounded.payments_all(), payments);
    }
}

#[test]
fn a_long_mix_keeps_the_invariants() {
    // One long deterministic run, for states only many operations reach (spent budgets,
    // repeated settlement runs, many expiries).
    let mut rng = Rng(0x5eed_1234_5678_9abc);
    let actions: Vec<Action> = (0..1_500).map(|_| rng.action(false)).collect();
    let (_, outcomes, m) = run(&actions);
    let succeeded = outcomes.iter().filter(|o| o.is_ok()).count();
    assert!(succeeded > 500, "only {succeeded} operations succeeded");
    let statuses: Vec<PaymentStatus> =
        m.payments_all().iter().map(|(id, p)| m.payment_status(*id, p)).collect();
    for status in [PaymentStatus::Succeeded, PaymentStatus::Released, PaymentStatus::Expired] {
        assert!(statuses.contains(&status), "no payment {}", status.name());
    }
    for &c in &CAMPAIGNS {
        assert!(budget_left(&m, c) < m.campaign(c).unwrap().0.budget);
    }
    assert!(m.account(Kind::PayoutsInTransit, CNY, 0).is_some());
}
