//! Random operation mixes run with every check after each step: the audit is clean, money is
//! conserved, rejections move nothing, successes move exactly their legs, refunds stay within
//! their payments, campaigns within their budgets, settlement runs pay exactly what is owed.

use std::collections::HashMap;

use huifu_payments::command::codec;
use huifu_payments::{Done, Op, Outcome, PaymentError, PaymentStatus, PaymentsMachine};
use proptest::prelude::*;

use super::*;

pub fn leaf() -> impl Strategy<Value = Action> {
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

pub fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        20 => leaf(),
        2 => (0u64..400).prop_map(|seconds| Action::Expire { seconds }),
        1 => (0u64..200).prop_map(|seconds| Action::Wait { seconds }),
        2 => (0usize..1_000).prop_map(|op| Action::Retry { op }),
        1 => prop::collection::vec(leaf(), 2..4).prop_map(Action::Batch),
    ]
}

/// What the checks of one step need from before it.
pub struct Before {
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

pub fn before(m: &PaymentsMachine, op: &Op, first: Option<Outcome>) -> Before {
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
pub fn check(m: &PaymentsMachine, b: &Before, op: &Op, outcome: &Outcome) {
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

pub fn encoding(op: &Op) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec::encode(op, &mut bytes);
    bytes
}

/// The operations of the world's setup and of `actions`, each with its time.
pub fn run(actions: &[Action]) -> (Vec<(u64, Op)>, Vec<Outcome>, PaymentsMachine) {
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
