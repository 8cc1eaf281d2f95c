//! Lookups and `get_account_transfers`: every filter, alone and combined, and the filters the
//! reference model rejects as invalid (which return nothing).

mod support;

use huifu_ledger::constants::{AMOUNT_MAX, QUERY_LIMIT_MAX, TIMESTAMP_MAX};
use huifu_ledger::{Account, AccountFilter, PendingStatus, Transfer};
use support::*;

/// Accounts 1 and 2 and four transfers between them, alternating direction, each in its own
/// batch 10 ns after the last:
/// 1 (1→2, u128 1000, u64 10, u32 1, code 1), 2 (2→1, 1001, 10, 2, code 2),
/// 3 (1→2, 1000, 20, 2, code 1), 4 (2→1, 1001, 20, 1, code 2).
fn ledger() -> Ledger {
    let mut ledger = Ledger::with_accounts(2);
    let t = |id, debit, credit, amount, u128_, u64_, u32_, code| Transfer {
        user_data_128: u128_,
        user_data_64: u64_,
        user_data_32: u32_,
        code,
        ..transfer(id, debit, credit, amount)
    };
    for one in [
        t(1, 1, 2, 10, 1000, 10, 1, 1),
        t(2, 2, 1, 11, 1001, 10, 2, 2),
        t(3, 1, 2, 12, 1000, 20, 2, 1),
        t(4, 2, 1, 13, 1001, 20, 1, 2),
    ] {
        ledger.advance_ns(10);
        ledger.create_transfers_ok(&[one]);
    }
    ledger
}

fn timestamp_of(ledger: &Ledger, id: u128) -> u64 {
    ledger.transfer(id).timestamp
}

#[test]
fn debits_and_credits_oldest_first() {
    let ledger = ledger();
    assert_eq!(ledger.query(&AccountFilter::all(1, 10)), [1, 2, 3, 4]);
    assert_eq!(ledger.query(&AccountFilter::all(2, 10)), [1, 2, 3, 4]);
}

#[test]
fn newest_first() {
    let ledger = ledger();
    assert_eq!(
        ledger.query(&AccountFilter { reversed: true, ..AccountFilter::all(1, 10) }),
        [4, 3, 2, 1]
    );
}

#[test]
fn limit() {
    let ledger = ledger();
    assert_eq!(ledger.query(&AccountFilter::all(1, 2)), [1, 2]);
    assert_eq!(ledger.query(&AccountFilter { reversed: true, ..AccountFilter::all(1, 2) }), [4, 3]);
    assert_eq!(ledger.query(&AccountFilter::all(1, 1)), [1]);
    assert_eq!(ledger.query(&AccountFilter::all(1, u32::MAX)), [1, 2, 3, 4]);
}

#[test]
fn the_limit_is_capped() {
    let mut ledger = Ledger::with_accounts(2);
    let transfers: Vec<Transfer> =
        (1..=u128::from(QUERY_LIMIT_MAX) + 5).map(|id| transfer(id, 1, 2, 1)).collect();
    for batch in transfers.chunks(1_000) {
        ledger.create_transfers_ok(batch);
    }
    // One reply of the reference model holds 8_189 transfers, one less than a batch.
    assert_eq!(QUERY_LIMIT_MAX, 8_189);
    assert_eq!(ledger.query(&AccountFilter::all(1, 8_190)).len(), 8_189);
    let all = ledger.query(&AccountFilter::all(1, u32::MAX));
    assert_eq!(all.len(), QUERY_LIMIT_MAX as usize);
    assert_eq!(all[0], 1);
    let newest = ledger.query(&AccountFilter { reversed: true, ..AccountFilter::all(1, u32::MAX) });
    assert_eq!(newest.len(), QUERY_LIMIT_MAX as usize);
    assert_eq!(newest[0], u128::from(QUERY_LIMIT_MAX) + 5);
}

#[test]
fn debits_only_and_credits_only() {
    let ledger = ledger();
    assert_eq!(
        ledger.query(&AccountFilter { credits: false, ..AccountFilter::all(1, 10) }),
        [1, 3]
    );
    assert_eq!(ledger.query(&AccountFilter { debits: false, ..AccountFilter::all(1, 10) }), [2, 4]);
    assert_eq!(
        ledger.query(&AccountFilter { debits: false, reversed: true, ..AccountFilter::all(2, 10) }),
        [3, 1]
    );
}

#[test]
fn timestamp_range_is_inclusive() {
    let ledger = ledger();
    let (t2, t3) = (timestamp_of(&ledger, 2), timestamp_of(&ledger, 3));
    assert_eq!(
        ledger.query(&AccountFilter { timestamp_min: t3, ..AccountFilter::all(1, 10) }),
        [3, 4]
    );
    assert_eq!(
        ledger.query(&AccountFilter { timestamp_max: t2, ..AccountFilter::all(1, 10) }),
        [1, 2]
    );
    let between =
        AccountFilter { timestamp_min: t2, timestamp_max: t3, ..AccountFilter::all(1, 10) };
    assert_eq!(ledger.query(&between), [2, 3]);
    assert_eq!(ledger.query(&AccountFilter { reversed: true, ..between }), [3, 2]);
    let one = AccountFilter { timestamp_min: t2, timestamp_max: t2, ..AccountFilter::all(1, 10) };
    assert_eq!(ledger.query(&one), [2]);
    // Bounds between transfers.
    let loose =
        AccountFilter { timestamp_min: t2 - 1, timestamp_max: t3 + 1, ..AccountFilter::all(1, 10) };
    assert_eq!(ledger.query(&loose), [2, 3]);
    assert_eq!(
        ledger.query(&AccountFilter { timestamp_max: TIMESTAMP_MAX, ..AccountFilter::all(1, 10) }),
        [1, 2, 3, 4]
    );
}

#[test]
fn user_data_and_code() {
    let ledger = ledger();
    let all = AccountFilter::all(1, 10);
    assert_eq!(ledger.query(&AccountFilter { user_data_128: 1001, ..all }), [2, 4]);
    assert_eq!(ledger.query(&AccountFilter { user_data_64: 10, ..all }), [1, 2]);
    assert_eq!(ledger.query(&AccountFilter { user_data_32: 1, ..all }), [1, 4]);
    assert_eq!(ledger.query(&AccountFilter { code: 1, ..all }), [1, 3]);
    assert_eq!(ledger.query(&AccountFilter { code: 3, ..all }), Vec::<u128>::new());
}

#[test]
fn every_filter_at_once() {
    let ledger = ledger();
    let (t1, t3) = (timestamp_of(&ledger, 1), timestamp_of(&ledger, 3));
    let filter = AccountFilter {
        user_data_128: 1000,
        user_data_64: 10,
        user_data_32: 1,
        code: 1,
        timestamp_min: t1,
        timestamp_max: t3,
        ..AccountFilter::all(1, 10)
    };
    assert_eq!(ledger.query(&filter), [1]);
    assert_eq!(ledger.query(&AccountFilter { credits: false, ..filter }), [1]);
    assert_eq!(ledger.query(&AccountFilter { debits: false, ..filter }), Vec::<u128>::new());
    assert_eq!(ledger.query(&AccountFilter { account_id: 2, debits: false, ..filter }), [1]);
    // Nothing matches every field of the last transfer but its user_data_32.
    let none = AccountFilter {
        user_data_128: 1000,
        user_data_64: 20,
        user_data_32: 1,
        code: 1,
        ..AccountFilter::all(1, 10)
    };
    assert_eq!(ledger.query(&none), Vec::<u128>::new());
}

#[test]
fn invalid_filters_return_nothing() {
    let ledger = ledger();
    let (t1, t2) = (timestamp_of(&ledger, 1), timestamp_of(&ledger, 2));
    let all = AccountFilter::all(1, 10);
    for (what, filter) in [
        ("unknown account", AccountFilter { account_id: 3, ..all }),
        ("account zero", AccountFilter { account_id: 0, ..all }),
        ("account int max", AccountFilter { account_id: u128::MAX, ..all }),
        ("neither debits nor credits", AccountFilter { debits: false, credits: false, ..all }),
        ("limit zero", AccountFilter { limit: 0, ..all }),
        ("min above max", AccountFilter { timestamp_min: t2, timestamp_max: t1, ..all }),
        ("min out of range", AccountFilter { timestamp_min: TIMESTAMP_MAX + 1, ..all }),
        ("max out of range", AccountFilter { timestamp_max: TIMESTAMP_MAX + 1, ..all }),
        ("max out of range", AccountFilter { timestamp_max: u64::MAX, ..all }),
    ] {
        assert_eq!(ledger.query(&filter), Vec::<u128>::new(), "{what}");
    }
}

#[test]
fn the_output_is_replaced() {
    let ledger = ledger();
    let mut out = vec![transfer(99, 1, 2, 1)];
    ledger.sm.get_account_transfers(&AccountFilter::all(1, 1), &mut out);
    assert_eq!(out, [ledger.transfer(1)]);
    ledger.sm.get_account_transfers(&AccountFilter::all(3, 1), &mut out);
    assert!(out.is_empty());
}

#[test]
fn two_phase_transfers_and_failures() {
    let mut ledger = Ledger::with_accounts(3);
    ledger.create_transfers_ok(&[pending(1, 1, 2, 2, 0), post(2, 1, 1)]);
    // A failed transfer is nowhere to be found.
    ledger
        .create_transfers(&[transfer(3, 1, 2, 1), Transfer { ledger: 0, ..transfer(4, 1, 2, 1) }]);
    assert_eq!(ledger.query(&AccountFilter::all(1, 10)), [1, 2, 3]);
    assert_eq!(ledger.query(&AccountFilter { code: 1, ..AccountFilter::all(2, 10) }), [1, 2, 3]);
    assert_eq!(ledger.query(&AccountFilter::all(3, 10)), Vec::<u128>::new());
    // The post carries the pending transfer's accounts.
    let mut out = Vec::new();
    ledger.sm.get_account_transfers(
        &AccountFilter { reversed: true, ..AccountFilter::all(2, 2) },
        &mut out,
    );
    assert_eq!(
        out.iter().map(|t| (t.id, t.debit_account_id, t.credit_account_id)).collect::<Vec<_>>(),
        [(3, 1, 2), (2, 1, 2)]
    );
}

#[test]
fn a_rolled_back_chain_leaves_no_trace_in_queries() {
    let mut ledger = Ledger::with_accounts(3);
    ledger.create_transfers_ok(&[transfer(1, 1, 2, 1)]);
    let linked =
        |t: Transfer| Transfer { flags: t.flags | huifu_ledger::TransferFlags::LINKED, ..t };
    ledger.create_transfers(&[
        linked(transfer(2, 1, 2, 1)),
        linked(transfer(3, 2, 3, 1)),
        transfer(4, 1, 1, 1),
    ]);
    ledger.create_transfers_ok(&[transfer(5, 3, 1, 1)]);
    assert_eq!(ledger.query(&AccountFilter::all(1, 10)), [1, 5]);
    assert_eq!(ledger.query(&AccountFilter::all(2, 10)), [1]);
    assert_eq!(ledger.query(&AccountFilter::all(3, 10)), [5]);
}

#[test]
fn lookups() {
    let mut ledger = Ledger::with_accounts(2);
    let a = Account { user_data_128: 5, ..account(3) };
    ledger.create_accounts_ok(&[a]);
    assert_eq!(
        ledger.sm.lookup_account(3),
        Some(&Account { timestamp: ledger.last_timestamp, ..a })
    );
    for id in [0, 4, u128::MAX] {
        assert_eq!(ledger.sm.lookup_account(id), None);
        assert_eq!(ledger.sm.lookup_transfer(id), None);
        assert_eq!(ledger.sm.pending_status(id), None);
    }
    ledger.create_transfers_ok(&[pending(1, 1, 2, 5, 0), transfer(2, 2, 3, AMOUNT_MAX)]);
    assert_eq!(ledger.sm.pending_status(1), Some(PendingStatus::Pending));
    assert_eq!(ledger.sm.pending_status(2), None);
    assert_eq!(ledger.transfer(2).amount, AMOUNT_MAX);
    // Accounts and transfers are listed in creation (timestamp) order.
    let ids: Vec<u128> = ledger.sm.accounts().iter().map(|a| a.id).collect();
    assert_eq!(ids, [1, 2, 3]);
    let ids: Vec<u128> = ledger.sm.transfers().iter().map(|t| t.id).collect();
    assert_eq!(ids, [1, 2]);
}
