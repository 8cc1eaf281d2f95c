//! The clearing account's entries, read from a real payments machine, carry the references the
//! API shows (and the bank echoes): if the payments crate changes its ids, this fails.

use huifu_payments::{Done, Op, PaymentsMachine};
use huifu_recon::generate::{generate, BankConfig};
use huifu_recon::statement::{day_of_ns, DAY_NS};
use huifu_recon::{channel_entries, reconcile, Direction, MatchConfig, State};

const NOW: u64 = 20_418 * DAY_NS + 3_600_000_000_000;

fn apply(m: &mut PaymentsMachine, op: Op) -> Done {
    m.apply(NOW, &op).unwrap_or_else(|e| panic!("{op:?}: {e:?}"))
}

#[test]
fn entries_carry_the_operation_references_and_settlement_batches() {
    let mut m = PaymentsMachine::new();
    apply(&mut m, Op::CreateChannel { id: 1, currency: 156 });
    apply(&mut m, Op::CreateChannel { id: 2, currency: 156 });
    apply(&mut m, Op::CreateUser { id: 10, currency: 156 });
    apply(&mut m, Op::CreateRider { id: 30, currency: 156 });
    for merchant in [20, 21] {
        apply(
            &mut m,
            Op::CreateMerchant { id: merchant, currency: 156, commission_bps: 1_000, channel: 1 },
        );
    }
    apply(&mut m, Op::TopUp { id: 40, user: 10, channel: 1, amount: 100_000, timeout_s: 0 });
    apply(&mut m, Op::BankResult { id: 40, ok: true });
    // Another channel's movements are not this channel's entries.
    apply(&mut m, Op::TopUp { id: 41, user: 10, channel: 2, amount: 5_000, timeout_s: 0 });
    apply(&mut m, Op::BankResult { id: 41, ok: true });
    // A failed withdrawal moved nothing; a pending one has not moved yet.
    apply(&mut m, Op::Withdraw { id: 42, user: 10, channel: 1, amount: 1_000, timeout_s: 0 });
    apply(&mut m, Op::BankResult { id: 42, ok: false });
    apply(&mut m, Op::Withdraw { id: 43, user: 10, channel: 1, amount: 2_000, timeout_s: 0 });
    apply(&mut m, Op::BankResult { id: 43, ok: true });
    apply(&mut m, Op::Withdraw { id: 44, user: 10, channel: 1, amount: 3_000, timeout_s: 0 });
    let pay = |id, merchant, channel| Op::Pay {
        id,
        user: 10,
        merchant,
        rider: 30,
        food: 3_000,
        delivery: 500,
        coupon: 0,
        channel,
        timeout_s: 0,
    };
    apply(&mut m, pay(50, 20, 1));
    apply(&mut m, Op::Capture { id: 50 });
    apply(&mut m, pay(51, 21, 0));
    apply(&mut m, pay(52, 21, 1));
    apply(&mut m, Op::Release { id: 52 });
    let Done::Payout { payout, .. } =
        apply(&mut m, Op::Payout { id: 60, merchant: 20, amount: 1_000 })
    else {
        panic!()
    };
    apply(&mut m, Op::PayoutResult { payout, ok: true });
    let Done::Settlement { lines } = apply(&mut m, Op::SettlementRun { id: 70 }) else { panic!() };
    assert_eq!(lines.len(), 2);
    for l in &lines {
        apply(&mut m, Op::PayoutResult { payout: l.payout, ok: true });
    }

    let entries = channel_entries(&m, 156, 1, 0, u64::MAX);
    let seen: Vec<(Direction, u64, &str, &str)> = entries
        .iter()
        .map(|e| (e.direction, e.amount_minor, e.reference.as_str(), e.batch.as_str()))
        .collect();
    let po = format!("po_{payout:x}");
    let settlement: Vec<String> = lines.iter().map(|l| format!("po_{:x}", l.payout)).collect();
    let mut expected = vec![
        (Direction::Credit, 100_000, "top_40", ""),
        (Direction::Debit, 2_000, "wdr_43", ""),
        (Direction::Credit, 3_500, "pay_50", ""),
        (Direction::Debit, 1_000, po.as_str(), ""),
    ];
    for (l, reference) in lines.iter().zip(&settlement) {
        expected.push((Direction::Debit, l.net, reference.as_str(), "stl_70"));
    }
    assert_eq!(seen, expected);
    assert!(entries.iter().all(|e| e.day == day_of_ns(NOW)));

    // The simulated bank's statement of these entries reconciles completely.
    let config = BankConfig {
        statement_id: "S".into(),
        account: "CLR-1".into(),
        currency: 156,
        from_day: day_of_ns(NOW),
        to_day: day_of_ns(NOW),
        opening_minor: 0,
        discrepancies_per_million: 0,
        seed: 1,
    };
    let g = generate(&entries, &config);
    assert_eq!(g.statement.lines.len(), 5, "the settlement run's two payouts are one line");
    let items = reconcile(&[g.statement], &entries, &MatchConfig::default());
    assert!(items.iter().all(|i| i.state == State::Matched && i.lag_days == 0), "{items:?}");
}
