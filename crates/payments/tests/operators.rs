//! Operators can change the ledger directly (the ledger endpoints share the payments' ledger).
//! Whatever they do, the machine answers with errors and never stops: a panic here would be
//! journaled and replayed at every restart.

use huifu_ledger::{Account, CreateTransferResult, Transfer, TransferFlags};
use huifu_payments::chart::{account_id, Kind};
use huifu_payments::{Done, Op, PaymentError, PaymentsMachine};

const NOW: u64 = 1_700_000_000_000_000_000;
const CNY: u32 = 156;

fn world() -> PaymentsMachine {
    let mut m = PaymentsMachine::new();
    for op in [
        Op::CreateChannel { id: 1, currency: CNY },
        Op::CreateUser { id: 10, currency: CNY },
        Op::CreateMerchant { id: 20, currency: CNY, commission_bps: 1_000, channel: 1 },
        Op::CreateRider { id: 30, currency: CNY },
        Op::TopUp { id: 40, user: 10, channel: 1, amount: 100_000, timeout_s: 0 },
        Op::BankResult { id: 40, ok: true },
    ] {
        m.apply(NOW, &op).unwrap();
    }
    m
}

fn pay(id: u64) -> Op {
    Op::Pay {
        id,
        user: 10,
        merchant: 20,
        rider: 30,
        food: 3_000,
        delivery: 500,
        coupon: 0,
        channel: 0,
        timeout_s: 0,
    }
}

#[test]
fn a_merchant_account_closed_by_an_operator_fails_payments_and_skips_settlement() {
    let mut m = world();
    m.apply(NOW, &pay(50)).unwrap();
    // An operator closes the merchant's account with a pending closing transfer.
    let merchant = account_id(Kind::Merchant, CNY, 20);
    let revenue = account_id(Kind::PlatformRevenue, CNY, 0);
    let close = Transfer {
        id: 9_000,
        debit_account_id: merchant,
        credit_account_id: revenue,
        amount: 0,
        ledger: CNY,
        code: 99,
        flags: TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT,
        ..Transfer::default()
    };
    let done = m.apply(NOW, &Op::LedgerTransfers(vec![close])).unwrap();
    assert_eq!(done, Done::LedgerTransfers(vec![CreateTransferResult::Created]));

    assert_eq!(m.apply(NOW, &pay(51)), Err(PaymentError::AccountClosed));
    let Ok(Done::Settlement { lines }) = m.apply(NOW, &Op::SettlementRun { id: 1 }) else {
        panic!("settlement failed")
    };
    assert_eq!((lines[0].net, lines[0].payout), (0, 0));
    assert_eq!(m.merchant_available(CNY, 20), 2_700, "nothing was paid out");
    assert!(huifu_payments::audit(&m).ok());
}

#[test]
fn an_account_taken_by_an_operator_makes_the_party_a_conflict() {
    let mut m = world();
    let taken = Account {
        id: account_id(Kind::Wallet, CNY, 11),
        ledger: CNY,
        code: 77,
        ..Account::default()
    };
    m.apply(NOW, &Op::LedgerAccounts(vec![taken])).unwrap();
    assert_eq!(
        m.apply(NOW, &Op::CreateUser { id: 11, currency: CNY }),
        Err(PaymentError::AccountConflict)
    );
}

#[test]
fn a_balance_inflated_by_an_operator_is_paid_out_in_bounded_payouts() {
    let mut m = world();
    let merchant = account_id(Kind::Merchant, CNY, 20);
    let channel = account_id(Kind::Channel, CNY, 1);
    let huge = Transfer {
        id: 9_001,
        debit_account_id: channel,
        credit_account_id: merchant,
        amount: u128::from(u64::MAX) * 4,
        ledger: CNY,
        code: 99,
        ..Transfer::default()
    };
    m.apply(NOW, &Op::LedgerTransfers(vec![huge])).unwrap();
    let Ok(Done::Payout { amount, .. }) =
        m.apply(NOW, &Op::Payout { id: 60, merchant: 20, amount: 0 })
    else {
        panic!("payout failed")
    };
    assert_eq!(amount, huifu_payments::constants::AMOUNT_MAX);
    assert!(m.apply(NOW, &Op::SettlementRun { id: 2 }).is_ok());
}

#[test]
fn a_rejected_payment_leaves_its_ids_free_but_an_operators_failed_id_stays_failed() {
    let mut m = world();
    let too_much = Op::Pay {
        id: 60,
        user: 10,
        merchant: 20,
        rider: 30,
        food: 1_000_000,
        delivery: 500,
        coupon: 0,
        channel: 0,
        timeout_s: 0,
    };
    assert_eq!(m.apply(NOW, &too_much), Err(PaymentError::InsufficientFunds));
    // The retry is answered from the payment's outcome, never from the ledger.
    assert_eq!(m.apply(NOW, &too_much), Err(PaymentError::InsufficientFunds));
    let wallet = account_id(Kind::Wallet, CNY, 10);
    let revenue = account_id(Kind::PlatformRevenue, CNY, 0);
    let move_one = |id| Transfer {
        id,
        debit_account_id: wallet,
        credit_account_id: revenue,
        amount: 1,
        ledger: CNY,
        code: 99,
        ..Transfer::default()
    };
    // The ledger does not remember the payment's failed transfer id (its merchant leg, the
    // first the wallet could not pay): an operator taking it gets it created, and the payment
    // will never use it again ...
    let leg = huifu_payments::chart::transfer_id(huifu_payments::chart::OpTag::Payment, 60, 2);
    let done = m.apply(NOW, &Op::LedgerTransfers(vec![move_one(leg)])).unwrap();
    assert_eq!(done, Done::LedgerTransfers(vec![CreateTransferResult::Created]));
    // ... while an operator's own transfer that failed keeps its id failed, as in TigerBeetle.
    let short = Transfer { amount: 10_000_000, ..move_one(9_001) };
    let done = m.apply(NOW, &Op::LedgerTransfers(vec![short])).unwrap();
    assert_eq!(done, Done::LedgerTransfers(vec![CreateTransferResult::ExceedsCredits]));
    let done = m.apply(NOW, &Op::LedgerTransfers(vec![move_one(9_001)])).unwrap();
    assert_eq!(done, Done::LedgerTransfers(vec![CreateTransferResult::IdAlreadyFailed]));
    assert!(huifu_payments::audit(&m).ok());
}
