//! Idempotency: a retry returns the first outcome, failures included, whenever it comes; the
//! same id with other fields is a conflict. Also: every operation survives the journal's
//! encoding, so a restart replays exactly what was applied. (Across restarts of the engine, from
//! the journal alone and from a checkpoint: the engine's tests/payments_restart.rs.)

mod support;

use huifu_payments::command::codec;
use huifu_payments::{CouponRule, Funder, Op, Outcome, PaymentError};
use proptest::prelude::*;
use support::*;

/// Applies the world's setup and `actions`; returns every operation (with batches' operations
/// also one by one) and its first outcome.
fn run(w: &mut World, actions: &[Action]) -> Vec<(Op, Outcome)> {
    let mut applied = Vec::new();
    for op in mix_setup() {
        applied.push((op.clone(), Ok(w.ok(op))));
    }
    let mut mix = Mix::new();
    for action in actions {
        match action {
            Action::Expire { seconds } | Action::Wait { seconds } => {
                w.now += seconds * S;
                if let Action::Expire { .. } = action {
                    w.ok(Op::Expire);
                }
                continue;
            }
            _ => {}
        }
        let op = mix.op(&w.m, action);
        let outcome = w.apply(op.clone());
        if op == Op::Expire {
            // A retry with nothing to retry: the clock's operation, not a client's.
            continue;
        }
        if let (Op::Batch(ops), Ok(huifu_payments::Done::Batch(outcomes))) = (&op, &outcome) {
            applied.extend(ops.iter().cloned().zip(outcomes.iter().cloned()));
        }
        mix.ops.push((w.now, op.clone()));
        applied.push((op, outcome));
    }
    assert_audit_clean(&w.m);
    applied
}

/// The same operation with one field changed (`None` when it has no field but its id).
fn other(op: &Op) -> Option<Op> {
    Some(match op.clone() {
        Op::CreateChannel { id, currency } => Op::CreateChannel { id, currency: currency + 1 },
        Op::CreateUser { id, currency } => Op::CreateUser { id, currency: currency + 1 },
        Op::CreateMerchant { id, currency, commission_bps, channel } => {
            Op::CreateMerchant { id, currency, commission_bps: commission_bps + 1, channel }
        }
        Op::CreateRider { id, currency } => Op::CreateRider { id, currency: currency + 1 },
        Op::CreateCampaign { id, currency, funder, budget, rule } => {
            Op::CreateCampaign { id, currency, funder, budget: budget + 1, rule }
        }
        Op::GrantCoupon { id, campaign, user } => Op::GrantCoupon { id, campaign, user: user + 1 },
        // Top-ups and withdrawals share their ids.
        Op::TopUp { id, user, channel, amount, timeout_s } => {
            Op::Withdraw { id, user, channel, amount, timeout_s }
        }
        Op::Withdraw { id, user, channel, amount, timeout_s } => {
            Op::Withdraw { id, user, channel, amount, timeout_s: timeout_s + 1 }
        }
        Op::BankResult { id, ok } => Op::BankResult { id, ok: !ok },
        Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s } => {
            Op::Pay {
                id,
                user,
                merchant,
                rider,
                food,
                delivery: delivery + 1,
                coupon,
                channel,
                timeout_s,
            }
        }
        // Capture and release share the payment's id.
        Op::Capture { id } => Op::Release { id },
        Op::Release { id } => Op::Capture { id },
        Op::Refund { id, payment, amount } => Op::Refund { id, payment, amount: amount + 1 },
        Op::Payout { id, merchant, amount } => Op::Payout { id, merchant, amount: amount + 1 },
        Op::PayoutResult { payout, ok } => Op::PayoutResult { payout, ok: !ok },
        _ => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_retry_returns_the_first_outcome(seed in any::<u64>(), n in 20usize..120) {
        let mut w = World::empty();
        let applied = run(&mut w, &actions(n, seed | 1));
        let before = money(&w.m);
        // A day later: coupons ended, holds timed out (but not expired), nothing else changed.
        w.now += 24 * 3_600 * S;
        for (op, first) in &applied {
            prop_assert_eq!(&w.apply(op.clone()), first, "retry of {:?}", op);
        }
        prop_assert_eq!(money(&w.m), before);
        assert_audit_clean(&w.m);
    }

    #[test]
    fn the_same_id_with_other_fields_is_a_conflict(seed in any::<u64>(), n in 20usize..120) {
        let mut w = World::empty();
        let applied = run(&mut w, &actions(n, seed | 1));
        let before = money(&w.m);
        let mut conflicts = 0;
        for (op, first) in &applied {
            // Operations that own their id: their first outcome is the one kept.
            if *first == Err(PaymentError::IdempotencyConflict) || w.m.outcome_of(op).as_ref() != Some(first) {
                continue;
            }
            let Some(other) = other(op) else { continue };
            prop_assert_eq!(
                w.apply(other.clone()),
                Err(PaymentError::IdempotencyConflict),
                "{:?} after {:?}", other, op
            );
            conflicts += 1;
            // The conflict did not replace the first outcome.
            prop_assert_eq!(&w.apply(op.clone()), first);
        }
        prop_assert!(conflicts > 20);
        prop_assert_eq!(money(&w.m), before);
        assert_audit_clean(&w.m);
    }
}

// The journal's encoding.

fn rule() -> impl Strategy<Value = CouponRule> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
        |(amount_off, min_order, valid_from, valid_until, per_user_limit)| CouponRule {
            amount_off,
            min_order,
            valid_from,
            valid_until,
            per_user_limit,
        },
    )
}

fn any_op() -> impl Strategy<Value = Op> {
    let leaf =
        prop_oneof![
            (any::<u64>(), any::<u32>())
                .prop_map(|(id, currency)| Op::CreateChannel { id, currency }),
            (any::<u64>(), any::<u32>()).prop_map(|(id, currency)| Op::CreateUser { id, currency }),
            (any::<u64>(), any::<u32>())
                .prop_map(|(id, currency)| Op::CreateRider { id, currency }),
            (any::<u64>(), any::<u32>(), any::<u32>(), any::<u64>()).prop_map(
                |(id, currency, commission_bps, channel)| Op::CreateMerchant {
                    id,
                    currency,
                    commission_bps,
                    channel
                }
            ),
            (
                any::<u64>(),
                any::<u32>(),
                prop_oneof![Just(Funder::Platform), any::<u64>().prop_map(Funder::Merchant)],
                any::<u64>(),
                rule()
            )
                .prop_map(|(id, currency, funder, budget, rule)| Op::CreateCampaign {
                    id,
                    currency,
                    funder,
                    budget,
                    rule
                }),
            (any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(id, campaign, user)| Op::GrantCoupon { id, campaign, user }),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>(), any::<bool>())
                .prop_map(|(id, user, channel, amount, timeout_s, top_up)| if top_up {
                    Op::TopUp { id, user, channel, amount, timeout_s }
                } else {
                    Op::Withdraw { id, user, channel, amount, timeout_s }
                }),
            (any::<u64>(), any::<bool>()).prop_map(|(id, ok)| Op::BankResult { id, ok }),
            (any::<[u64; 8]>(), any::<u32>()).prop_map(|(v, timeout_s)| Op::Pay {
                id: v[0],
                user: v[1],
                merchant: v[2],
                rider: v[3],
                food: v[4],
                delivery: v[5],
                coupon: v[6],
                channel: v[7],
                timeout_s,
            }),
            any::<u64>().prop_map(|id| Op::Capture { id }),
            any::<u64>().prop_map(|id| Op::Release { id }),
            (any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(id, payment, amount)| Op::Refund { id, payment, amount }),
            (any::<u64>(), any::<u64>(), any::<u64>())
                .prop_map(|(id, merchant, amount)| Op::Payout { id, merchant, amount }),
            any::<u64>().prop_map(|id| Op::SettlementRun { id }),
            (any::<u128>(), any::<bool>()).prop_map(|(payout, ok)| Op::PayoutResult { payout, ok }),
            Just(Op::Expire),
        ];
    // Batches and keyed operations, nested ones included (the machine rejects those, the
    // journal must keep them).
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Op::Batch),
            (any::<u128>(), inner).prop_map(|(key, op)| Op::Keyed { key, op: Box::new(op) }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_operation_decodes_to_itself(op in any_op()) {
        let mut bytes = Vec::new();
        codec::encode(&op, &mut bytes);
        prop_assert_eq!(codec::decode(&bytes), Ok(op));
    }
}
