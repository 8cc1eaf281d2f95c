//! The payment machine with its history in the fjall store, driven as the engine drives it:
//! moving transfers and payment records out of memory changes no outcome, and every query
//! (statements, lookups, payments, refunds, outcomes, payouts, holds, lists) still sees the
//! whole history, also after a restart from an older checkpoint with the store ahead of it.

#[path = "../../payments/tests/support/mod.rs"]
mod support;

use huifu_engine::Machine;
use huifu_payments::{Op, Outcome, PaymentStatus, PaymentsMachine};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use support::checked::{action, run};
use support::*;

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
    m.persist_history().unwrap();
    m.checkpointed();
}

fn run_bounded(
    ops: &[(u64, Op)],
    outcomes: &[Outcome],
    memory_max: usize,
    cut: usize,
) -> Result<(PaymentsMachine, tempfile::TempDir), TestCaseError> {
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
        Machine::evict(&mut bounded).unwrap();
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
