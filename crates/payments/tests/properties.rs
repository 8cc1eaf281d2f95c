//! Random sequences of payment operations in a small world: after every operation the audit is
//! clean, money is conserved, rejections move nothing, successes move exactly their legs,
//! refunds stay within their payments, campaigns within their budgets, settlement runs pay
//! exactly what is owed; and the same sequence replayed, or continued from a snapshot, gives the
//! same outcomes. (The same with the history store: the engine's tests/payments_history.rs.)

mod support;

use huifu_payments::chart::Kind;
use huifu_payments::{PaymentStatus, PaymentsMachine};
use proptest::prelude::*;
use support::checked::{action, run};
use support::*;

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
