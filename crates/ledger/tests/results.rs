//! One test for every result code of `create_accounts` and `create_transfers`: each builds the
//! smallest state and batch that yields exactly that code, and checks that a failure leaves the
//! ledger as it was. Then the precedence of the checks, where an event has two problems and the
//! check the reference model runs first must win.

mod support;

use huifu_ledger::constants::{AMOUNT_MAX, NS_PER_S, TIMESTAMP_MAX};
use huifu_ledger::{
    Account, AccountFlags as AF, CreateAccountResult as A, CreateTransferResult as T,
    PendingStatus, Transfer, TransferFlags as TF,
};
use support::*;

/// Runs a batch of accounts that must change nothing, and checks its results.
fn accounts_rejected(ledger: &mut Ledger, batch: &[Account], expected: &[A]) {
    let before = ledger.fingerprint();
    assert_eq!(ledger.create_accounts(batch), expected);
    assert_eq!(ledger.fingerprint(), before, "a failed batch changed the ledger");
}

/// Runs a batch of transfers that must change nothing, and checks its results.
fn transfers_rejected(ledger: &mut Ledger, batch: &[Transfer], expected: &[T]) {
    let before = ledger.fingerprint();
    assert_eq!(ledger.create_transfers(batch), expected);
    assert_eq!(ledger.fingerprint(), before, "a failed batch changed the ledger");
}

/// Runs one transfer that fails with a transient result, then checks that its id is burned: a
/// valid retry (`retry`, with the same id) gets `id_already_failed`.
fn transfer_burned(ledger: &mut Ledger, t: Transfer, expected: T, retry: Transfer) {
    assert!(expected.is_transient());
    assert_eq!(t.id, retry.id);
    transfers_rejected(ledger, &[t], &[expected]);
    transfers_rejected(ledger, &[retry], &[T::IdAlreadyFailed]);
}

/// Accounts 1 and 2 (plain) plus account 3 in the same ledger, and imported-free.
fn three_accounts() -> Ledger {
    Ledger::with_accounts(3)
}

/// A ledger whose accounts were imported: account 1 at timestamp 10, 2 at 20, 3 at 30. The clock
/// stands at 1_000, so imports up to 999 are allowed in the next batch.
fn imported_accounts() -> Ledger {
    let mut ledger = Ledger::new();
    ledger.set_clock(1_000);
    let imported = |id, timestamp| Account { flags: AF::IMPORTED, timestamp, ..account(id) };
    ledger.create_accounts_ok(&[imported(1, 10), imported(2, 20), imported(3, 30)]);
    ledger
}

fn imported(t: Transfer, timestamp: u64) -> Transfer {
    Transfer { flags: t.flags | TF::IMPORTED, timestamp, ..t }
}

mod create_account {
    use super::*;

    #[test]
    fn created() {
        let mut ledger = Ledger::new();
        let timestamp = ledger.next_timestamp(2);
        let first = Account {
            user_data_128: 7,
            user_data_64: 8,
            user_data_32: 9,
            flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS | AF::HISTORY,
            ..account(1)
        };
        assert_eq!(ledger.create_accounts(&[first, account(2)]), [A::Created, A::Created]);
        // Event i of n is stamped `timestamp - n + i + 1`.
        assert_eq!(ledger.account(1), Account { timestamp: timestamp - 1, ..first });
        assert_eq!(ledger.account(2), Account { timestamp, ..account(2) });
        assert_eq!(ledger.sm.accounts().len(), 2);
        assert_eq!(ledger.sm.commit_timestamp(), timestamp);
    }

    #[test]
    fn linked_event_failed() {
        let mut ledger = Ledger::new();
        let linked = Account { flags: AF::LINKED, ..account(1) };
        let invalid = Account { ledger: 0, ..account(2) };
        accounts_rejected(
            &mut ledger,
            &[linked, invalid],
            &[A::LinkedEventFailed, A::LedgerMustNotBeZero],
        );
        assert!(ledger.sm.lookup_account(1).is_none());
    }

    #[test]
    fn linked_event_chain_open() {
        let mut ledger = Ledger::new();
        let linked = |id| Account { flags: AF::LINKED, ..account(id) };
        accounts_rejected(&mut ledger, &[linked(1)], &[A::LinkedEventChainOpen]);
        accounts_rejected(
            &mut ledger,
            &[linked(1), linked(2)],
            &[A::LinkedEventFailed, A::LinkedEventChainOpen],
        );
    }

    #[test]
    fn imported_event_expected() {
        // The first event makes the batch an import, even when that event itself fails.
        let mut ledger = Ledger::new();
        ledger.set_clock(1_000);
        let first = Account { flags: AF::IMPORTED, timestamp: 5, ..account(0) };
        accounts_rejected(
            &mut ledger,
            &[first, account(2)],
            &[A::IdMustNotBeZero, A::ImportedEventExpected],
        );

        let first = Account { flags: AF::IMPORTED, timestamp: 5, ..account(1) };
        assert_eq!(
            ledger.create_accounts(&[first, account(2)]),
            [A::Created, A::ImportedEventExpected]
        );
        assert_eq!(ledger.account(1).timestamp, 5);
        assert!(ledger.sm.lookup_account(2).is_none());
    }

    #[test]
    fn imported_event_not_expected() {
        let mut ledger = Ledger::new();
        let second = Account { flags: AF::IMPORTED, timestamp: 1, ..account(2) };
        assert_eq!(
            ledger.create_accounts(&[account(1), second]),
            [A::Created, A::ImportedEventNotExpected]
        );
        assert!(ledger.sm.lookup_account(2).is_none());
    }

    #[test]
    fn timestamp_must_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { timestamp: 1, ..account(1) }],
            &[A::TimestampMustBeZero],
        );
    }

    #[test]
    fn imported_event_timestamp_out_of_range() {
        let mut ledger = Ledger::new();
        ledger.set_clock(1_000);
        let at = |timestamp| Account { flags: AF::IMPORTED, timestamp, ..account(1) };
        accounts_rejected(&mut ledger, &[at(0)], &[A::ImportedEventTimestampOutOfRange]);
        accounts_rejected(
            &mut ledger,
            &[at(TIMESTAMP_MAX + 1)],
            &[A::ImportedEventTimestampOutOfRange],
        );
        accounts_rejected(&mut ledger, &[at(u64::MAX)], &[A::ImportedEventTimestampOutOfRange]);
    }

    #[test]
    fn imported_event_timestamp_must_not_advance() {
        let mut ledger = Ledger::new();
        ledger.set_clock(1_000);
        let at = |timestamp| Account { flags: AF::IMPORTED, timestamp, ..account(1) };
        // Not even the batch timestamp itself: imports must be strictly in the past.
        let timestamp = ledger.next_timestamp(1);
        let before = ledger.fingerprint();
        assert_eq!(
            ledger.create_accounts_at(timestamp, &[at(timestamp)]),
            [A::ImportedEventTimestampMustNotAdvance]
        );
        assert_eq!(ledger.fingerprint(), before);
        accounts_rejected(
            &mut ledger,
            &[at(TIMESTAMP_MAX)],
            &[A::ImportedEventTimestampMustNotAdvance],
        );

        let timestamp = ledger.next_timestamp(1);
        assert_eq!(ledger.create_accounts_at(timestamp, &[at(timestamp - 1)]), [A::Created]);
        assert_eq!(ledger.account(1).timestamp, timestamp - 1);
    }

    #[test]
    fn reserved_field() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { reserved: 1, ..account(1) }],
            &[A::ReservedField],
        );
    }

    #[test]
    fn reserved_flag() {
        let mut ledger = Ledger::new();
        for bit in 6..16 {
            let a = Account { flags: AF(1 << bit), ..account(1) };
            accounts_rejected(&mut ledger, &[a], &[A::ReservedFlag]);
        }
    }

    #[test]
    fn id_must_not_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(&mut ledger, &[account(0)], &[A::IdMustNotBeZero]);
    }

    #[test]
    fn id_must_not_be_int_max() {
        let mut ledger = Ledger::new();
        accounts_rejected(&mut ledger, &[account(u128::MAX)], &[A::IdMustNotBeIntMax]);
    }

    fn existing() -> (Ledger, Account) {
        let mut ledger = Ledger::new();
        let a = Account { user_data_128: 1, user_data_64: 2, user_data_32: 3, ..account(1) };
        ledger.create_accounts_ok(&[a]);
        (ledger, a)
    }

    #[test]
    fn exists_with_different_flags() {
        let (mut ledger, a) = existing();
        let linked = Account { flags: AF::LINKED, ..a };
        let limited = Account { flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS, ..a };
        accounts_rejected(&mut ledger, &[limited], &[A::ExistsWithDifferentFlags]);
        // The linked flag counts too; the chain then breaks on this very event.
        accounts_rejected(
            &mut ledger,
            &[linked, account(2)],
            &[A::ExistsWithDifferentFlags, A::LinkedEventFailed],
        );
    }

    #[test]
    fn exists_with_different_user_data_128() {
        let (mut ledger, a) = existing();
        accounts_rejected(
            &mut ledger,
            &[Account { user_data_128: 9, ..a }],
            &[A::ExistsWithDifferentUserData128],
        );
    }

    #[test]
    fn exists_with_different_user_data_64() {
        let (mut ledger, a) = existing();
        accounts_rejected(
            &mut ledger,
            &[Account { user_data_64: 9, ..a }],
            &[A::ExistsWithDifferentUserData64],
        );
    }

    #[test]
    fn exists_with_different_user_data_32() {
        let (mut ledger, a) = existing();
        accounts_rejected(
            &mut ledger,
            &[Account { user_data_32: 9, ..a }],
            &[A::ExistsWithDifferentUserData32],
        );
    }

    #[test]
    fn exists_with_different_ledger() {
        let (mut ledger, a) = existing();
        accounts_rejected(
            &mut ledger,
            &[Account { ledger: 9, ..a }],
            &[A::ExistsWithDifferentLedger],
        );
    }

    #[test]
    fn exists_with_different_code() {
        let (mut ledger, a) = existing();
        accounts_rejected(&mut ledger, &[Account { code: 9, ..a }], &[A::ExistsWithDifferentCode]);
    }

    #[test]
    fn exists() {
        let (mut ledger, a) = existing();
        accounts_rejected(&mut ledger, &[a, a], &[A::Exists, A::Exists]);
        // The balances are not compared: they are validated only for new accounts.
        let with_balance = Account { debits_posted: 5, credits_pending: 1, ..a };
        accounts_rejected(&mut ledger, &[with_balance], &[A::Exists]);
    }

    #[test]
    fn flags_are_mutually_exclusive() {
        let mut ledger = Ledger::new();
        let both = AF::DEBITS_MUST_NOT_EXCEED_CREDITS | AF::CREDITS_MUST_NOT_EXCEED_DEBITS;
        accounts_rejected(
            &mut ledger,
            &[Account { flags: both, ..account(1) }],
            &[A::FlagsAreMutuallyExclusive],
        );
    }

    #[test]
    fn debits_pending_must_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { debits_pending: 1, ..account(1) }],
            &[A::DebitsPendingMustBeZero],
        );
    }

    #[test]
    fn debits_posted_must_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { debits_posted: 1, ..account(1) }],
            &[A::DebitsPostedMustBeZero],
        );
    }

    #[test]
    fn credits_pending_must_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { credits_pending: 1, ..account(1) }],
            &[A::CreditsPendingMustBeZero],
        );
    }

    #[test]
    fn credits_posted_must_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { credits_posted: 1, ..account(1) }],
            &[A::CreditsPostedMustBeZero],
        );
    }

    #[test]
    fn ledger_must_not_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { ledger: 0, ..account(1) }],
            &[A::LedgerMustNotBeZero],
        );
    }

    #[test]
    fn code_must_not_be_zero() {
        let mut ledger = Ledger::new();
        accounts_rejected(
            &mut ledger,
            &[Account { code: 0, ..account(1) }],
            &[A::CodeMustNotBeZero],
        );
    }

    #[test]
    fn imported_event_timestamp_must_not_regress() {
        let mut ledger = imported_accounts();
        let at = |id, timestamp| Account { flags: AF::IMPORTED, timestamp, ..account(id) };
        // At or before the newest account.
        accounts_rejected(&mut ledger, &[at(4, 30)], &[A::ImportedEventTimestampMustNotRegress]);
        accounts_rejected(&mut ledger, &[at(4, 25)], &[A::ImportedEventTimestampMustNotRegress]);

        // Or at the very timestamp of a transfer.
        assert_eq!(ledger.create_transfers(&[imported(transfer(1, 1, 2, 5), 40)]), [T::Created]);
        accounts_rejected(&mut ledger, &[at(4, 40)], &[A::ImportedEventTimestampMustNotRegress]);

        // Between transfers is fine.
        assert_eq!(ledger.create_accounts(&[at(4, 35)]), [A::Created]);
        assert_eq!(ledger.account(4).timestamp, 35);
    }

    /// Adding a result without a test here fails to compile.
    #[test]
    fn every_result_has_a_test() {
        for result in A::ALL {
            let test: fn() = match result {
                A::Created => created,
                A::LinkedEventFailed => linked_event_failed,
                A::LinkedEventChainOpen => linked_event_chain_open,
                A::ImportedEventExpected => imported_event_expected,
                A::ImportedEventNotExpected => imported_event_not_expected,
                A::TimestampMustBeZero => timestamp_must_be_zero,
                A::ImportedEventTimestampOutOfRange => imported_event_timestamp_out_of_range,
                A::ImportedEventTimestampMustNotAdvance => {
                    imported_event_timestamp_must_not_advance
                }
                A::ReservedField => reserved_field,
                A::ReservedFlag => reserved_flag,
                A::IdMustNotBeZero => id_must_not_be_zero,
                A::IdMustNotBeIntMax => id_must_not_be_int_max,
                A::ExistsWithDifferentFlags => exists_with_different_flags,
                A::ExistsWithDifferentUserData128 => exists_with_different_user_data_128,
                A::ExistsWithDifferentUserData64 => exists_with_different_user_data_64,
                A::ExistsWithDifferentUserData32 => exists_with_different_user_data_32,
                A::ExistsWithDifferentLedger => exists_with_different_ledger,
                A::ExistsWithDifferentCode => exists_with_different_code,
                A::Exists => exists,
                A::FlagsAreMutuallyExclusive => flags_are_mutually_exclusive,
                A::DebitsPendingMustBeZero => debits_pending_must_be_zero,
                A::DebitsPostedMustBeZero => debits_posted_must_be_zero,
                A::CreditsPendingMustBeZero => credits_pending_must_be_zero,
                A::CreditsPostedMustBeZero => credits_posted_must_be_zero,
                A::LedgerMustNotBeZero => ledger_must_not_be_zero,
                A::CodeMustNotBeZero => code_must_not_be_zero,
                A::ImportedEventTimestampMustNotRegress => {
                    imported_event_timestamp_must_not_regress
                }
            };
            test();
        }
    }

    #[test]
    fn codes_and_names_match_the_reference_model() {
        assert_eq!(A::ALL.len(), 27);
        for (result, code) in [
            (A::Created, 0),
            (A::LinkedEventFailed, 1),
            (A::ImportedEventExpected, 22),
            (A::ExistsWithDifferentFlags, 15),
            (A::Exists, 21),
            (A::ImportedEventTimestampMustNotRegress, 26),
        ] {
            assert_eq!(result.code(), code);
        }
        for result in A::ALL {
            assert_eq!(A::from_code(result.code()), Some(*result));
            assert_eq!(A::from_name(result.name()), Some(*result));
        }
        // Codes 0..=26, each once.
        let mut codes: Vec<u32> = A::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        assert_eq!(codes, (0..27).collect::<Vec<u32>>());
    }
}

mod create_transfer {
    use super::*;

    #[test]
    fn created() {
        let mut ledger = Ledger::with_accounts(2);
        let t = Transfer {
            user_data_128: 1,
            user_data_64: 2,
            user_data_32: 3,
            code: 7,
            ..transfer(10, 1, 2, 25)
        };
        let timestamp = ledger.next_timestamp(1);
        assert_eq!(ledger.create_transfers(&[t]), [T::Created]);
        assert_eq!(ledger.transfer(10), Transfer { timestamp, ..t });
        assert_eq!(ledger.balances(1), [0, 25, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 0, 25]);
        assert_eq!(ledger.sm.totals().debits_posted, 25);
        assert_eq!(ledger.sm.totals().credits_posted, 25);
        assert_eq!(ledger.sm.pending_status(10), None);

        // A zero amount is a valid transfer.
        assert_eq!(ledger.create_transfers(&[transfer(11, 1, 2, 0)]), [T::Created]);
        assert_eq!(ledger.transfer(11).amount, 0);
        assert_eq!(ledger.balances(1), [0, 25, 0, 0]);
    }

    #[test]
    fn linked_event_failed() {
        let mut ledger = Ledger::with_accounts(2);
        let first = Transfer { flags: TF::LINKED, ..transfer(10, 1, 2, 5) };
        let second = Transfer { ledger: 0, ..transfer(11, 1, 2, 5) };
        transfers_rejected(
            &mut ledger,
            &[first, second],
            &[T::LinkedEventFailed, T::LedgerMustNotBeZero],
        );
        assert!(ledger.sm.lookup_transfer(10).is_none());
        // A linked_event_failed id is not burned.
        assert_eq!(ledger.create_transfers(&[transfer(10, 1, 2, 5)]), [T::Created]);
    }

    #[test]
    fn linked_event_chain_open() {
        let mut ledger = Ledger::with_accounts(2);
        let linked = |id| Transfer { flags: TF::LINKED, ..transfer(id, 1, 2, 5) };
        transfers_rejected(&mut ledger, &[linked(10)], &[T::LinkedEventChainOpen]);
        transfers_rejected(
            &mut ledger,
            &[linked(10), linked(11)],
            &[T::LinkedEventFailed, T::LinkedEventChainOpen],
        );
        // Not burned either.
        assert_eq!(
            ledger.create_transfers(&[transfer(10, 1, 2, 5), transfer(11, 1, 2, 5)]),
            [T::Created, T::Created]
        );
    }

    #[test]
    fn imported_event_expected() {
        let mut ledger = imported_accounts();
        let first = imported(transfer(10, 1, 2, 5), 40);
        assert_eq!(
            ledger.create_transfers(&[first, transfer(11, 1, 2, 5)]),
            [T::Created, T::ImportedEventExpected]
        );
        assert!(ledger.sm.lookup_transfer(11).is_none());
        assert_eq!(ledger.balances(1), [0, 5, 0, 0]);
    }

    #[test]
    fn imported_event_not_expected() {
        let mut ledger = Ledger::with_accounts(2);
        let second = imported(transfer(11, 1, 2, 5), 1);
        assert_eq!(
            ledger.create_transfers(&[transfer(10, 1, 2, 5), second]),
            [T::Created, T::ImportedEventNotExpected]
        );
        assert!(ledger.sm.lookup_transfer(11).is_none());
    }

    #[test]
    fn timestamp_must_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[Transfer { timestamp: 1, ..transfer(10, 1, 2, 5) }],
            &[T::TimestampMustBeZero],
        );
    }

    #[test]
    fn imported_event_timestamp_out_of_range() {
        let mut ledger = imported_accounts();
        for timestamp in [0, TIMESTAMP_MAX + 1, u64::MAX] {
            transfers_rejected(
                &mut ledger,
                &[imported(transfer(10, 1, 2, 5), timestamp)],
                &[T::ImportedEventTimestampOutOfRange],
            );
        }
    }

    #[test]
    fn imported_event_timestamp_must_not_advance() {
        let mut ledger = imported_accounts();
        let timestamp = ledger.next_timestamp(1);
        let before = ledger.fingerprint();
        let t = imported(transfer(10, 1, 2, 5), timestamp);
        assert_eq!(
            ledger.create_transfers_at(timestamp, &[t]),
            [T::ImportedEventTimestampMustNotAdvance]
        );
        assert_eq!(ledger.fingerprint(), before);
    }

    #[test]
    fn reserved_flag() {
        let mut ledger = Ledger::with_accounts(2);
        for bit in 9..16 {
            let t = Transfer { flags: TF(1 << bit), ..transfer(10, 1, 2, 5) };
            transfers_rejected(&mut ledger, &[t], &[T::ReservedFlag]);
        }
    }

    #[test]
    fn id_must_not_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(&mut ledger, &[transfer(0, 1, 2, 5)], &[T::IdMustNotBeZero]);
    }

    #[test]
    fn id_must_not_be_int_max() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(&mut ledger, &[transfer(u128::MAX, 1, 2, 5)], &[T::IdMustNotBeIntMax]);
    }

    /// Accounts 1..=3 and a pending transfer 10 of 1 → 2 with every optional field set.
    fn existing() -> (Ledger, Transfer) {
        let mut ledger = three_accounts();
        let t = Transfer {
            user_data_128: 1,
            user_data_64: 2,
            user_data_32: 3,
            ..pending(10, 1, 2, 50, 60)
        };
        ledger.create_transfers_ok(&[t]);
        (ledger, t)
    }

    #[test]
    fn exists_with_different_flags() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { flags: TF::default(), timeout: 0, ..t }],
            &[T::ExistsWithDifferentFlags],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { flags: t.flags | TF::LINKED, ..t }, transfer(11, 1, 2, 1)],
            &[T::ExistsWithDifferentFlags, T::LinkedEventFailed],
        );
    }

    #[test]
    fn exists_with_different_pending_id() {
        let (mut ledger, _) = existing();
        ledger.create_transfers_ok(&[pending(11, 1, 2, 5, 0), post(20, 10, 7)]);
        transfers_rejected(&mut ledger, &[post(20, 11, 7)], &[T::ExistsWithDifferentPendingId]);
        // Also for a transfer that is not a post or void.
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { pending_id: 3, ..t }],
            &[T::ExistsWithDifferentPendingId],
        );
    }

    #[test]
    fn exists_with_different_timeout() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { timeout: 61, ..t }],
            &[T::ExistsWithDifferentTimeout],
        );
    }

    #[test]
    fn exists_with_different_debit_account_id() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { debit_account_id: 3, ..t }],
            &[T::ExistsWithDifferentDebitAccountId],
        );
    }

    #[test]
    fn exists_with_different_credit_account_id() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { credit_account_id: 3, ..t }],
            &[T::ExistsWithDifferentCreditAccountId],
        );
    }

    #[test]
    fn exists_with_different_amount() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 49, ..t }],
            &[T::ExistsWithDifferentAmount],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: AMOUNT_MAX, ..t }],
            &[T::ExistsWithDifferentAmount],
        );
    }

    #[test]
    fn exists_with_different_user_data_128() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { user_data_128: 0, ..t }],
            &[T::ExistsWithDifferentUserData128],
        );
    }

    #[test]
    fn exists_with_different_user_data_64() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { user_data_64: 0, ..t }],
            &[T::ExistsWithDifferentUserData64],
        );
    }

    #[test]
    fn exists_with_different_user_data_32() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { user_data_32: 0, ..t }],
            &[T::ExistsWithDifferentUserData32],
        );
    }

    #[test]
    fn exists_with_different_ledger() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 2, ..t }],
            &[T::ExistsWithDifferentLedger],
        );
    }

    #[test]
    fn exists_with_different_code() {
        let (mut ledger, t) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { code: 2, ..t }],
            &[T::ExistsWithDifferentCode],
        );
    }

    #[test]
    fn exists() {
        let (mut ledger, t) = existing();
        transfers_rejected(&mut ledger, &[t, t], &[T::Exists, T::Exists]);
        // Exists even after the pending transfer was resolved, and in a later batch.
        ledger.create_transfers_ok(&[void(11, 10)]);
        transfers_rejected(&mut ledger, &[t], &[T::Exists]);
    }

    #[test]
    fn id_already_failed() {
        let mut ledger = Ledger::with_accounts(2);
        transfer_burned(
            &mut ledger,
            transfer(10, 1, 9, 5),
            T::CreditAccountNotFound,
            transfer(10, 1, 2, 5),
        );
        // Whatever else is wrong with a later event of that id.
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 0, code: 0, ..transfer(10, 0, 0, 0) }],
            &[T::IdAlreadyFailed],
        );
        transfers_rejected(&mut ledger, &[post(10, 99, 1)], &[T::IdAlreadyFailed]);
        // In a later batch as well; and other ids are not affected.
        assert_eq!(
            ledger.create_transfers(&[transfer(10, 1, 2, 5), transfer(11, 1, 2, 5)]),
            [T::IdAlreadyFailed, T::Created]
        );
    }

    #[test]
    fn flags_are_mutually_exclusive() {
        let (mut ledger, _) = existing();
        let post_with =
            |flags| Transfer { flags: TF::POST_PENDING_TRANSFER | flags, ..post(20, 10, 5) };
        let void_with =
            |flags| Transfer { flags: TF::VOID_PENDING_TRANSFER | flags, ..void(20, 10) };
        for t in [
            post_with(TF::VOID_PENDING_TRANSFER),
            post_with(TF::PENDING),
            post_with(TF::BALANCING_DEBIT),
            post_with(TF::BALANCING_CREDIT),
            post_with(TF::CLOSING_DEBIT),
            post_with(TF::CLOSING_CREDIT),
            void_with(TF::PENDING),
            void_with(TF::BALANCING_DEBIT),
            void_with(TF::BALANCING_CREDIT),
            void_with(TF::CLOSING_DEBIT),
            void_with(TF::CLOSING_CREDIT),
        ] {
            transfers_rejected(&mut ledger, &[t], &[T::FlagsAreMutuallyExclusive]);
        }
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Pending));
    }

    #[test]
    fn flags_that_combine() {
        // Outside posts and voids no combination of flags is exclusive.
        let mut ledger = Ledger::with_accounts(4);
        let all = TF::PENDING
            | TF::BALANCING_DEBIT
            | TF::BALANCING_CREDIT
            | TF::CLOSING_DEBIT
            | TF::CLOSING_CREDIT;
        assert_eq!(
            ledger.create_transfers(&[Transfer { flags: all, ..transfer(10, 1, 2, 5) }]),
            [T::Created]
        );
        assert_eq!(ledger.transfer(10).amount, 0, "balancing against empty accounts moves nothing");
        assert!(ledger.account(1).flags.contains(AF::CLOSED));
        assert!(ledger.account(2).flags.contains(AF::CLOSED));
    }

    #[test]
    fn debit_account_id_must_not_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[transfer(10, 0, 2, 5)],
            &[T::DebitAccountIdMustNotBeZero],
        );
    }

    #[test]
    fn debit_account_id_must_not_be_int_max() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[transfer(10, u128::MAX, 2, 5)],
            &[T::DebitAccountIdMustNotBeIntMax],
        );
    }

    #[test]
    fn credit_account_id_must_not_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[transfer(10, 1, 0, 5)],
            &[T::CreditAccountIdMustNotBeZero],
        );
    }

    #[test]
    fn credit_account_id_must_not_be_int_max() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[transfer(10, 1, u128::MAX, 5)],
            &[T::CreditAccountIdMustNotBeIntMax],
        );
    }

    #[test]
    fn accounts_must_be_different() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(&mut ledger, &[transfer(10, 1, 1, 5)], &[T::AccountsMustBeDifferent]);
    }

    #[test]
    fn pending_id_must_be_zero() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { pending_id: 10, ..transfer(11, 1, 2, 5) }],
            &[T::PendingIdMustBeZero],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { pending_id: 10, ..pending(11, 1, 2, 5, 0) }],
            &[T::PendingIdMustBeZero],
        );
    }

    #[test]
    fn pending_id_must_not_be_zero() {
        let (mut ledger, _) = existing();
        transfers_rejected(&mut ledger, &[post(20, 0, 5)], &[T::PendingIdMustNotBeZero]);
        transfers_rejected(&mut ledger, &[void(20, 0)], &[T::PendingIdMustNotBeZero]);
    }

    #[test]
    fn pending_id_must_not_be_int_max() {
        let (mut ledger, _) = existing();
        transfers_rejected(&mut ledger, &[post(20, u128::MAX, 5)], &[T::PendingIdMustNotBeIntMax]);
    }

    #[test]
    fn pending_id_must_be_different() {
        let (mut ledger, _) = existing();
        transfers_rejected(&mut ledger, &[post(20, 20, 5)], &[T::PendingIdMustBeDifferent]);
    }

    #[test]
    fn timeout_reserved_for_pending_transfer() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { timeout: 1, ..transfer(11, 1, 2, 5) }],
            &[T::TimeoutReservedForPendingTransfer],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { timeout: 1, ..post(20, 10, 5) }],
            &[T::TimeoutReservedForPendingTransfer],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { timeout: 1, ..void(20, 10) }],
            &[T::TimeoutReservedForPendingTransfer],
        );
    }

    #[test]
    fn closing_transfer_must_be_pending() {
        let mut ledger = Ledger::with_accounts(2);
        for flags in [TF::CLOSING_DEBIT, TF::CLOSING_CREDIT, TF::CLOSING_DEBIT | TF::CLOSING_CREDIT]
        {
            transfers_rejected(
                &mut ledger,
                &[Transfer { flags, ..transfer(10, 1, 2, 0) }],
                &[T::ClosingTransferMustBePending],
            );
        }
    }

    #[test]
    fn ledger_must_not_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 0, ..transfer(10, 1, 2, 5) }],
            &[T::LedgerMustNotBeZero],
        );
    }

    #[test]
    fn code_must_not_be_zero() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[Transfer { code: 0, ..transfer(10, 1, 2, 5) }],
            &[T::CodeMustNotBeZero],
        );
    }

    #[test]
    fn debit_account_not_found() {
        let mut ledger = Ledger::with_accounts(2);
        transfer_burned(
            &mut ledger,
            transfer(10, 9, 2, 5),
            T::DebitAccountNotFound,
            transfer(10, 1, 2, 5),
        );
    }

    #[test]
    fn credit_account_not_found() {
        let mut ledger = Ledger::with_accounts(2);
        transfer_burned(
            &mut ledger,
            transfer(10, 1, 9, 5),
            T::CreditAccountNotFound,
            transfer(10, 1, 2, 5),
        );
    }

    #[test]
    fn accounts_must_have_the_same_ledger() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account { ledger: 840, ..account(3) }]);
        transfers_rejected(
            &mut ledger,
            &[transfer(10, 1, 3, 5)],
            &[T::AccountsMustHaveTheSameLedger],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 840, ..transfer(10, 3, 1, 5) }],
            &[T::AccountsMustHaveTheSameLedger],
        );
    }

    #[test]
    fn transfer_must_have_the_same_ledger_as_accounts() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 840, ..transfer(10, 1, 2, 5) }],
            &[T::TransferMustHaveTheSameLedgerAsAccounts],
        );
    }

    #[test]
    fn pending_transfer_not_found() {
        let (mut ledger, _) = existing();
        transfer_burned(&mut ledger, post(20, 11, 5), T::PendingTransferNotFound, post(20, 10, 5));
        // A burned id is not a transfer that can be posted.
        transfers_rejected(&mut ledger, &[post(21, 20, 5)], &[T::PendingTransferNotFound]);
    }

    #[test]
    fn pending_transfer_not_pending() {
        let (mut ledger, _) = existing();
        ledger.create_transfers_ok(&[transfer(11, 1, 2, 5)]);
        transfers_rejected(&mut ledger, &[post(20, 11, 5)], &[T::PendingTransferNotPending]);
        transfers_rejected(&mut ledger, &[void(20, 11)], &[T::PendingTransferNotPending]);
        // A post is not pending either.
        ledger.create_transfers_ok(&[post(12, 10, 5)]);
        transfers_rejected(&mut ledger, &[void(20, 12)], &[T::PendingTransferNotPending]);
    }

    #[test]
    fn pending_transfer_has_different_debit_account_id() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { debit_account_id: 3, ..post(20, 10, 5) }],
            &[T::PendingTransferHasDifferentDebitAccountId],
        );
    }

    #[test]
    fn pending_transfer_has_different_credit_account_id() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { credit_account_id: 3, ..void(20, 10) }],
            &[T::PendingTransferHasDifferentCreditAccountId],
        );
    }

    #[test]
    fn pending_transfer_has_different_ledger() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 840, ..post(20, 10, 5) }],
            &[T::PendingTransferHasDifferentLedger],
        );
    }

    #[test]
    fn pending_transfer_has_different_code() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { code: 2, ..post(20, 10, 5) }],
            &[T::PendingTransferHasDifferentCode],
        );
    }

    #[test]
    fn exceeds_pending_transfer_amount() {
        let (mut ledger, _) = existing();
        transfers_rejected(&mut ledger, &[post(20, 10, 51)], &[T::ExceedsPendingTransferAmount]);
        transfers_rejected(
            &mut ledger,
            &[post(20, 10, AMOUNT_MAX - 1)],
            &[T::ExceedsPendingTransferAmount],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 51, ..void(20, 10) }],
            &[T::ExceedsPendingTransferAmount],
        );
    }

    #[test]
    fn pending_transfer_has_different_amount() {
        let (mut ledger, _) = existing();
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 49, ..void(20, 10) }],
            &[T::PendingTransferHasDifferentAmount],
        );
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 1, ..void(20, 10) }],
            &[T::PendingTransferHasDifferentAmount],
        );
    }

    #[test]
    fn pending_transfer_already_posted() {
        let (mut ledger, _) = existing();
        ledger.create_transfers_ok(&[post(20, 10, 5)]);
        transfers_rejected(&mut ledger, &[post(21, 10, 5)], &[T::PendingTransferAlreadyPosted]);
        transfers_rejected(&mut ledger, &[void(21, 10)], &[T::PendingTransferAlreadyPosted]);
    }

    #[test]
    fn pending_transfer_already_voided() {
        let (mut ledger, _) = existing();
        ledger.create_transfers_ok(&[void(20, 10)]);
        transfers_rejected(&mut ledger, &[post(21, 10, 5)], &[T::PendingTransferAlreadyVoided]);
        transfers_rejected(&mut ledger, &[void(21, 10)], &[T::PendingTransferAlreadyVoided]);
    }

    #[test]
    fn pending_transfer_expired() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 1)]);
        ledger.advance_s(1);
        assert_eq!(ledger.expire(), 1);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Expired));
        transfers_rejected(&mut ledger, &[post(20, 10, 5)], &[T::PendingTransferExpired]);
        transfers_rejected(&mut ledger, &[void(20, 10)], &[T::PendingTransferExpired]);
        // Not transient: the id can be used for something else.
        assert_eq!(ledger.create_transfers(&[transfer(20, 1, 2, 5)]), [T::Created]);
    }

    #[test]
    fn imported_event_timestamp_must_not_regress() {
        let mut ledger = imported_accounts();
        // At an account's timestamp.
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(10, 1, 2, 5), 30)],
            &[T::ImportedEventTimestampMustNotRegress],
        );
        assert_eq!(ledger.create_transfers(&[imported(transfer(10, 1, 2, 5), 40)]), [T::Created]);
        // At or before the newest transfer.
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(11, 1, 2, 5), 40)],
            &[T::ImportedEventTimestampMustNotRegress],
        );
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(11, 1, 2, 5), 35)],
            &[T::ImportedEventTimestampMustNotRegress],
        );
        // Posts and voids too.
        assert_eq!(ledger.create_transfers(&[imported(pending(11, 1, 2, 5, 0), 41)]), [T::Created]);
        transfers_rejected(
            &mut ledger,
            &[imported(post(12, 11, 5), 41)],
            &[T::ImportedEventTimestampMustNotRegress],
        );
        assert_eq!(ledger.create_transfers(&[imported(post(12, 11, 5), 42)]), [T::Created]);
        assert_eq!(ledger.transfer(12).timestamp, 42);
    }

    #[test]
    fn imported_event_timestamp_must_postdate_debit_account() {
        let mut ledger = imported_accounts();
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(10, 2, 1, 5), 15)],
            &[T::ImportedEventTimestampMustPostdateDebitAccount],
        );
    }

    #[test]
    fn imported_event_timestamp_must_postdate_credit_account() {
        let mut ledger = imported_accounts();
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(10, 1, 2, 5), 15)],
            &[T::ImportedEventTimestampMustPostdateCreditAccount],
        );
    }

    #[test]
    fn imported_event_timeout_must_be_zero() {
        let mut ledger = imported_accounts();
        transfers_rejected(
            &mut ledger,
            &[imported(pending(10, 1, 2, 5, 1), 40)],
            &[T::ImportedEventTimeoutMustBeZero],
        );
        assert_eq!(ledger.create_transfers(&[imported(pending(10, 1, 2, 5, 0), 40)]), [T::Created]);
    }

    #[test]
    fn debit_account_already_closed() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account { flags: AF::CLOSED, ..account(3) }]);
        transfer_burned(
            &mut ledger,
            transfer(10, 3, 2, 5),
            T::DebitAccountAlreadyClosed,
            transfer(10, 1, 2, 5),
        );
    }

    #[test]
    fn credit_account_already_closed() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account { flags: AF::CLOSED, ..account(3) }]);
        transfer_burned(
            &mut ledger,
            transfer(10, 1, 3, 5),
            T::CreditAccountAlreadyClosed,
            transfer(10, 1, 2, 5),
        );
    }

    #[test]
    fn overflows_debits_pending() {
        let mut ledger = three_accounts();
        ledger.create_transfers_ok(&[pending(10, 1, 2, u128::MAX - 5, 0)]);
        transfers_rejected(&mut ledger, &[pending(11, 1, 3, 6, 0)], &[T::OverflowsDebitsPending]);
        assert_eq!(ledger.create_transfers(&[pending(11, 1, 3, 5, 0)]), [T::Created]);
        assert_eq!(ledger.balances(1), [u128::MAX, 0, 0, 0]);
    }

    #[test]
    fn overflows_credits_pending() {
        let mut ledger = three_accounts();
        ledger.create_transfers_ok(&[pending(10, 1, 2, u128::MAX - 5, 0)]);
        transfers_rejected(&mut ledger, &[pending(11, 3, 2, 6, 0)], &[T::OverflowsCreditsPending]);
    }

    #[test]
    fn overflows_debits_posted() {
        let mut ledger = three_accounts();
        ledger.create_transfers_ok(&[transfer(10, 1, 2, u128::MAX - 5)]);
        transfers_rejected(&mut ledger, &[transfer(11, 1, 3, 6)], &[T::OverflowsDebitsPosted]);
        // A pending transfer is checked against the posted balance too: it may be posted later.
        transfers_rejected(&mut ledger, &[pending(11, 1, 3, 6, 0)], &[T::OverflowsDebitsPosted]);
    }

    #[test]
    fn overflows_credits_posted() {
        let mut ledger = three_accounts();
        ledger.create_transfers_ok(&[transfer(10, 1, 2, u128::MAX - 5)]);
        transfers_rejected(&mut ledger, &[transfer(11, 3, 2, 6)], &[T::OverflowsCreditsPosted]);
    }

    #[test]
    fn overflows_debits() {
        let mut ledger = Ledger::with_accounts(4);
        let half = 1u128 << 127;
        // Pending and posted each fit, and so does their sum, exactly.
        ledger.create_transfers_ok(&[pending(10, 1, 2, half, 0), transfer(11, 1, 3, half - 1)]);
        assert_eq!(ledger.balances(1), [half, half - 1, 0, 0]);
        transfers_rejected(&mut ledger, &[transfer(12, 1, 4, 1)], &[T::OverflowsDebits]);
    }

    #[test]
    fn overflows_credits() {
        let mut ledger = Ledger::with_accounts(4);
        let half = 1u128 << 127;
        ledger.create_transfers_ok(&[pending(10, 2, 1, half, 0), transfer(11, 3, 1, half - 1)]);
        transfers_rejected(&mut ledger, &[transfer(12, 4, 1, 1)], &[T::OverflowsCredits]);
    }

    #[test]
    fn overflows_timeout() {
        let mut ledger = Ledger::with_accounts(2);
        // The deadline of a pending transfer must stay at or below the largest timestamp.
        let timestamp = TIMESTAMP_MAX - 3 * NS_PER_S + 1;
        ledger.set_clock(timestamp);
        let before = ledger.fingerprint();
        let results = ledger
            .create_transfers_at(timestamp, &[pending(10, 1, 2, 5, 3), pending(11, 1, 2, 5, 3)]);
        // The first event is at `timestamp - 1`, so its deadline is exactly the largest timestamp.
        assert_eq!(results, [T::Created, T::OverflowsTimeout]);
        assert_eq!(ledger.sm.expiry_next(), Some(TIMESTAMP_MAX));
        assert_eq!(ledger.balances(1), [5, 0, 0, 0]);
        assert_eq!(ledger.fingerprint().transfers.len(), before.transfers.len() + 1);
        assert!(ledger.sm.lookup_transfer(11).is_none());
    }

    #[test]
    fn exceeds_credits() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account {
            flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS,
            ..account(3)
        }]);
        ledger.create_transfers_ok(&[transfer(10, 1, 3, 10), pending(11, 3, 2, 4, 0)]);
        // Available: 10 credited − 4 held.
        transfer_burned(
            &mut ledger,
            transfer(12, 3, 2, 7),
            T::ExceedsCredits,
            transfer(12, 1, 2, 1),
        );
        transfers_rejected(&mut ledger, &[pending(13, 3, 2, 7, 0)], &[T::ExceedsCredits]);
        assert_eq!(ledger.create_transfers(&[transfer(14, 3, 2, 6)]), [T::Created]);
        assert_eq!(ledger.balances(3), [4, 6, 0, 10]);
    }

    #[test]
    fn exceeds_debits() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account {
            flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS,
            ..account(3)
        }]);
        ledger.create_transfers_ok(&[transfer(10, 3, 1, 10), pending(11, 2, 3, 4, 0)]);
        transfer_burned(
            &mut ledger,
            transfer(12, 2, 3, 7),
            T::ExceedsDebits,
            transfer(12, 1, 2, 1),
        );
        assert_eq!(ledger.create_transfers(&[transfer(14, 2, 3, 6)]), [T::Created]);
        assert_eq!(ledger.balances(3), [0, 10, 4, 6]);
    }

    /// Adding a result without a test here fails to compile.
    #[test]
    fn every_result_has_a_test() {
        for result in T::ALL {
            let test: fn() = match result {
                T::Created => created,
                T::LinkedEventFailed => linked_event_failed,
                T::LinkedEventChainOpen => linked_event_chain_open,
                T::ImportedEventExpected => imported_event_expected,
                T::ImportedEventNotExpected => imported_event_not_expected,
                T::TimestampMustBeZero => timestamp_must_be_zero,
                T::ImportedEventTimestampOutOfRange => imported_event_timestamp_out_of_range,
                T::ImportedEventTimestampMustNotAdvance => {
                    imported_event_timestamp_must_not_advance
                }
                T::ReservedFlag => reserved_flag,
                T::IdMustNotBeZero => id_must_not_be_zero,
                T::IdMustNotBeIntMax => id_must_not_be_int_max,
                T::ExistsWithDifferentFlags => exists_with_different_flags,
                T::ExistsWithDifferentPendingId => exists_with_different_pending_id,
                T::ExistsWithDifferentTimeout => exists_with_different_timeout,
                T::ExistsWithDifferentDebitAccountId => exists_with_different_debit_account_id,
                T::ExistsWithDifferentCreditAccountId => exists_with_different_credit_account_id,
                T::ExistsWithDifferentAmount => exists_with_different_amount,
                T::ExistsWithDifferentUserData128 => exists_with_different_user_data_128,
                T::ExistsWithDifferentUserData64 => exists_with_different_user_data_64,
                T::ExistsWithDifferentUserData32 => exists_with_different_user_data_32,
                T::ExistsWithDifferentLedger => exists_with_different_ledger,
                T::ExistsWithDifferentCode => exists_with_different_code,
                T::Exists => exists,
                T::IdAlreadyFailed => id_already_failed,
                T::FlagsAreMutuallyExclusive => flags_are_mutually_exclusive,
                T::DebitAccountIdMustNotBeZero => debit_account_id_must_not_be_zero,
                T::DebitAccountIdMustNotBeIntMax => debit_account_id_must_not_be_int_max,
                T::CreditAccountIdMustNotBeZero => credit_account_id_must_not_be_zero,
                T::CreditAccountIdMustNotBeIntMax => credit_account_id_must_not_be_int_max,
                T::AccountsMustBeDifferent => accounts_must_be_different,
                T::PendingIdMustBeZero => pending_id_must_be_zero,
                T::PendingIdMustNotBeZero => pending_id_must_not_be_zero,
                T::PendingIdMustNotBeIntMax => pending_id_must_not_be_int_max,
                T::PendingIdMustBeDifferent => pending_id_must_be_different,
                T::TimeoutReservedForPendingTransfer => timeout_reserved_for_pending_transfer,
                T::ClosingTransferMustBePending => closing_transfer_must_be_pending,
                T::LedgerMustNotBeZero => ledger_must_not_be_zero,
                T::CodeMustNotBeZero => code_must_not_be_zero,
                T::DebitAccountNotFound => debit_account_not_found,
                T::CreditAccountNotFound => credit_account_not_found,
                T::AccountsMustHaveTheSameLedger => accounts_must_have_the_same_ledger,
                T::TransferMustHaveTheSameLedgerAsAccounts => {
                    transfer_must_have_the_same_ledger_as_accounts
                }
                T::PendingTransferNotFound => pending_transfer_not_found,
                T::PendingTransferNotPending => pending_transfer_not_pending,
                T::PendingTransferHasDifferentDebitAccountId => {
                    pending_transfer_has_different_debit_account_id
                }
                T::PendingTransferHasDifferentCreditAccountId => {
                    pending_transfer_has_different_credit_account_id
                }
                T::PendingTransferHasDifferentLedger => pending_transfer_has_different_ledger,
                T::PendingTransferHasDifferentCode => pending_transfer_has_different_code,
                T::ExceedsPendingTransferAmount => exceeds_pending_transfer_amount,
                T::PendingTransferHasDifferentAmount => pending_transfer_has_different_amount,
                T::PendingTransferAlreadyPosted => pending_transfer_already_posted,
                T::PendingTransferAlreadyVoided => pending_transfer_already_voided,
                T::PendingTransferExpired => pending_transfer_expired,
                T::ImportedEventTimestampMustNotRegress => {
                    imported_event_timestamp_must_not_regress
                }
                T::ImportedEventTimestampMustPostdateDebitAccount => {
                    imported_event_timestamp_must_postdate_debit_account
                }
                T::ImportedEventTimestampMustPostdateCreditAccount => {
                    imported_event_timestamp_must_postdate_credit_account
                }
                T::ImportedEventTimeoutMustBeZero => imported_event_timeout_must_be_zero,
                T::DebitAccountAlreadyClosed => debit_account_already_closed,
                T::CreditAccountAlreadyClosed => credit_account_already_closed,
                T::OverflowsDebitsPending => overflows_debits_pending,
                T::OverflowsCreditsPending => overflows_credits_pending,
                T::OverflowsDebitsPosted => overflows_debits_posted,
                T::OverflowsCreditsPosted => overflows_credits_posted,
                T::OverflowsDebits => overflows_debits,
                T::OverflowsCredits => overflows_credits,
                T::OverflowsTimeout => overflows_timeout,
                T::ExceedsCredits => exceeds_credits,
                T::ExceedsDebits => exceeds_debits,
            };
            test();
        }
    }

    #[test]
    fn transient_results_are_the_reference_models() {
        let transient: Vec<T> = T::ALL.iter().copied().filter(|r| r.is_transient()).collect();
        assert_eq!(
            transient,
            [
                T::DebitAccountNotFound,
                T::CreditAccountNotFound,
                T::PendingTransferNotFound,
                T::DebitAccountAlreadyClosed,
                T::CreditAccountAlreadyClosed,
                T::ExceedsCredits,
                T::ExceedsDebits,
            ]
        );
    }

    #[test]
    fn codes_and_names_match_the_reference_model() {
        assert_eq!(T::ALL.len(), 68);
        for (result, code, name) in [
            (T::Created, 0, "created"),
            (T::ImportedEventExpected, 56, "imported_event_expected"),
            (T::ExistsWithDifferentFlags, 36, "exists_with_different_flags"),
            (T::ExistsWithDifferentLedger, 67, "exists_with_different_ledger"),
            (T::IdAlreadyFailed, 68, "id_already_failed"),
            (T::ClosingTransferMustBePending, 64, "closing_transfer_must_be_pending"),
            (T::OverflowsTimeout, 53, "overflows_timeout"),
            (T::ExceedsDebits, 55, "exceeds_debits"),
        ] {
            assert_eq!(result.code(), code);
            assert_eq!(result.name(), name);
            assert_eq!(result.to_string(), name);
        }
        for result in T::ALL {
            assert_eq!(T::from_code(result.code()), Some(*result));
            assert_eq!(T::from_name(result.name()), Some(*result));
        }
        // Codes 0..=68 each once, but 18 (a retired amount_must_not_be_zero).
        let mut codes: Vec<u32> = T::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        assert_eq!(codes, (0..69).filter(|c| *c != 18).collect::<Vec<u32>>());
        assert_eq!(T::from_code(18), None);
    }
}

/// Events with more than one problem: the check the reference model runs first decides.
mod precedence {
    use super::*;

    #[test]
    fn account_checks_in_order() {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[account(1)]);
        let exclusive = AF::DEBITS_MUST_NOT_EXCEED_CREDITS | AF::CREDITS_MUST_NOT_EXCEED_DEBITS;
        // Start from an account wrong in every way and fix one problem at a time.
        let mut a = Account {
            id: 0,
            debits_pending: 1,
            debits_posted: 1,
            credits_pending: 1,
            credits_posted: 1,
            reserved: 1,
            ledger: 0,
            code: 0,
            flags: AF(exclusive.0 | 1 << 10),
            timestamp: 1,
            ..Account::default()
        };
        let mut expect = |a: Account, result: A| accounts_rejected(&mut ledger, &[a], &[result]);
        expect(a, A::TimestampMustBeZero);
        a.timestamp = 0;
        expect(a, A::ReservedField);
        a.reserved = 0;
        expect(a, A::ReservedFlag);
        a.flags = exclusive;
        expect(a, A::IdMustNotBeZero);
        a.id = u128::MAX;
        expect(a, A::IdMustNotBeIntMax);
        a.id = 2;
        expect(a, A::FlagsAreMutuallyExclusive);
        a.flags = AF::default();
        expect(a, A::DebitsPendingMustBeZero);
        a.debits_pending = 0;
        expect(a, A::DebitsPostedMustBeZero);
        a.debits_posted = 0;
        expect(a, A::CreditsPendingMustBeZero);
        a.credits_pending = 0;
        expect(a, A::CreditsPostedMustBeZero);
        a.credits_posted = 0;
        expect(a, A::LedgerMustNotBeZero);
        a.ledger = 9;
        expect(a, A::CodeMustNotBeZero);
    }

    #[test]
    fn account_exists_before_validation() {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[account(1)]);
        let exclusive = AF::DEBITS_MUST_NOT_EXCEED_CREDITS | AF::CREDITS_MUST_NOT_EXCEED_DEBITS;
        // An existing id is compared before the new account is validated.
        let invalid =
            Account { flags: exclusive, debits_posted: 1, ledger: 0, code: 0, ..account(1) };
        accounts_rejected(&mut ledger, &[invalid], &[A::ExistsWithDifferentFlags]);
        // The exists comparisons, in order.
        let mut a = Account {
            user_data_128: 1,
            user_data_64: 1,
            user_data_32: 1,
            ledger: 9,
            code: 9,
            flags: AF::HISTORY,
            ..account(1)
        };
        let mut expect = |a: Account, result: A| accounts_rejected(&mut ledger, &[a], &[result]);
        expect(a, A::ExistsWithDifferentFlags);
        a.flags = AF::default();
        expect(a, A::ExistsWithDifferentUserData128);
        a.user_data_128 = 0;
        expect(a, A::ExistsWithDifferentUserData64);
        a.user_data_64 = 0;
        expect(a, A::ExistsWithDifferentUserData32);
        a.user_data_32 = 0;
        expect(a, A::ExistsWithDifferentLedger);
        a.ledger = LEDGER;
        expect(a, A::ExistsWithDifferentCode);
        a.code = 1;
        expect(a, A::Exists);
        // But the reserved field and flags come first.
        expect(Account { reserved: 1, ..a }, A::ReservedField);
        expect(Account { flags: AF(1 << 15), ..a }, A::ReservedFlag);
    }

    #[test]
    fn account_batch_checks_before_the_account_checks() {
        let mut ledger = Ledger::new();
        ledger.set_clock(1_000);
        // An imported batch: a plain event is unexpected before any of its own problems count.
        let first = Account { flags: AF::IMPORTED, timestamp: 5, ..account(1) };
        let plain_with_timestamp = Account { timestamp: 7, reserved: 1, ..account(0) };
        let bad_import =
            Account { flags: AF(AF::IMPORTED.0 | 1 << 9), timestamp: 0, reserved: 1, ..account(0) };
        let late_import =
            Account { flags: AF::IMPORTED, timestamp: 2_000, reserved: 1, ..account(0) };
        assert_eq!(
            ledger.create_accounts(&[first, plain_with_timestamp, bad_import, late_import]),
            [
                A::Created,
                A::ImportedEventExpected,
                A::ImportedEventTimestampOutOfRange,
                A::ImportedEventTimestampMustNotAdvance
            ]
        );
        // The regression check comes after every other account check.
        let regressed = Account { flags: AF::IMPORTED, timestamp: 5, code: 0, ..account(2) };
        accounts_rejected(&mut ledger, &[regressed], &[A::CodeMustNotBeZero]);
        let regressed_existing = Account { flags: AF::IMPORTED, timestamp: 4, ..account(1) };
        accounts_rejected(&mut ledger, &[regressed_existing], &[A::Exists]);
    }

    #[test]
    fn linked_event_chain_open_before_everything() {
        let mut ledger = Ledger::new();
        let broken =
            Account { flags: AF(AF::LINKED.0 | 1 << 12), reserved: 1, timestamp: 3, ..account(0) };
        accounts_rejected(&mut ledger, &[broken], &[A::LinkedEventChainOpen]);
        let mut ledger = Ledger::with_accounts(2);
        let broken =
            Transfer { flags: TF(TF::LINKED.0 | 1 << 12), timestamp: 3, ..transfer(0, 0, 0, 0) };
        transfers_rejected(&mut ledger, &[broken], &[T::LinkedEventChainOpen]);
    }

    #[test]
    fn transfer_checks_in_order() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[Account { ledger: 840, ..account(3) }]);
        ledger.create_transfers_ok(&[transfer(99, 1, 2, 1)]);
        // Start from a transfer wrong in every way and fix one problem at a time.
        let mut t = Transfer {
            id: 0,
            debit_account_id: 0,
            credit_account_id: 0,
            amount: 1,
            pending_id: 5,
            timeout: 1,
            ledger: 0,
            code: 0,
            flags: TF(TF::CLOSING_DEBIT.0 | 1 << 13),
            timestamp: 1,
            ..Transfer::default()
        };
        let mut expect = |t: Transfer, result: T| transfers_rejected(&mut ledger, &[t], &[result]);
        expect(t, T::TimestampMustBeZero);
        t.timestamp = 0;
        expect(t, T::ReservedFlag);
        t.flags = TF::CLOSING_DEBIT;
        expect(t, T::IdMustNotBeZero);
        t.id = u128::MAX;
        expect(t, T::IdMustNotBeIntMax);
        t.id = 10;
        expect(t, T::DebitAccountIdMustNotBeZero);
        t.debit_account_id = u128::MAX;
        expect(t, T::DebitAccountIdMustNotBeIntMax);
        t.debit_account_id = 7;
        expect(t, T::CreditAccountIdMustNotBeZero);
        t.credit_account_id = u128::MAX;
        expect(t, T::CreditAccountIdMustNotBeIntMax);
        t.credit_account_id = 7;
        expect(t, T::AccountsMustBeDifferent);
        t.credit_account_id = 8;
        expect(t, T::PendingIdMustBeZero);
        t.pending_id = 0;
        expect(t, T::TimeoutReservedForPendingTransfer);
        t.timeout = 0;
        expect(t, T::ClosingTransferMustBePending);
        t.flags = TF::default();
        expect(t, T::LedgerMustNotBeZero);
        t.ledger = 840;
        expect(t, T::CodeMustNotBeZero);
        t.code = 1;
        // From here on the failures are transient: each burns its id, so each check uses a
        // fresh one.
        t.id = 11;
        expect(t, T::DebitAccountNotFound);
        t.id = 12;
        t.debit_account_id = 1;
        expect(t, T::CreditAccountNotFound);
        t.id = 13;
        t.credit_account_id = 3;
        expect(t, T::AccountsMustHaveTheSameLedger);
        t.credit_account_id = 2;
        expect(t, T::TransferMustHaveTheSameLedgerAsAccounts);
        t.ledger = LEDGER;
        assert_eq!(ledger.create_transfers(&[t]), [T::Created]);
    }

    #[test]
    fn timeout_reserved_before_closing_must_be_pending() {
        // A closing transfer with a timeout but no pending flag fails on the timeout first.
        let mut ledger = Ledger::with_accounts(2);
        let t = Transfer { flags: TF::CLOSING_CREDIT, timeout: 5, ..transfer(10, 1, 2, 0) };
        transfers_rejected(&mut ledger, &[t], &[T::TimeoutReservedForPendingTransfer]);
    }

    #[test]
    fn transfer_exists_before_validation() {
        let mut ledger = Ledger::with_accounts(3);
        let t = Transfer {
            user_data_128: 1,
            user_data_64: 1,
            user_data_32: 1,
            ..pending(10, 1, 2, 50, 5)
        };
        ledger.create_transfers_ok(&[t]);
        // A resubmission is compared field by field before anything else is validated.
        let mut r = Transfer {
            debit_account_id: 0,
            credit_account_id: 0,
            amount: 0,
            pending_id: 7,
            user_data_128: 2,
            user_data_64: 2,
            user_data_32: 2,
            timeout: 0,
            ledger: 0,
            code: 0,
            flags: TF::POST_PENDING_TRANSFER | TF::VOID_PENDING_TRANSFER,
            ..t
        };
        let mut expect = |r: Transfer, result: T| transfers_rejected(&mut ledger, &[r], &[result]);
        expect(r, T::ExistsWithDifferentFlags);
        r.flags = t.flags;
        expect(r, T::ExistsWithDifferentPendingId);
        r.pending_id = 0;
        expect(r, T::ExistsWithDifferentTimeout);
        r.timeout = 5;
        expect(r, T::ExistsWithDifferentDebitAccountId);
        r.debit_account_id = 1;
        expect(r, T::ExistsWithDifferentCreditAccountId);
        r.credit_account_id = 2;
        expect(r, T::ExistsWithDifferentAmount);
        r.amount = 50;
        expect(r, T::ExistsWithDifferentUserData128);
        r.user_data_128 = 1;
        expect(r, T::ExistsWithDifferentUserData64);
        r.user_data_64 = 1;
        expect(r, T::ExistsWithDifferentUserData32);
        r.user_data_32 = 1;
        expect(r, T::ExistsWithDifferentLedger);
        r.ledger = LEDGER;
        expect(r, T::ExistsWithDifferentCode);
        r.code = 1;
        expect(r, T::Exists);
        // The reserved flags still come first.
        expect(Transfer { flags: TF(t.flags.0 | 1 << 11), ..r }, T::ReservedFlag);
    }

    #[test]
    fn post_exists_before_validation() {
        let mut ledger = Ledger::with_accounts(3);
        let p = Transfer {
            user_data_128: 1,
            user_data_64: 1,
            user_data_32: 1,
            ..pending(10, 1, 2, 50, 0)
        };
        ledger.create_transfers_ok(&[p, pending(11, 1, 2, 5, 0), post(20, 10, 30)]);
        let mut r = Transfer {
            debit_account_id: 3,
            credit_account_id: 3,
            amount: 31,
            user_data_128: 2,
            user_data_64: 2,
            user_data_32: 2,
            ledger: 840,
            code: 9,
            ..post(20, 11, 30)
        };
        let mut expect = |r: Transfer, result: T| transfers_rejected(&mut ledger, &[r], &[result]);
        expect(Transfer { timeout: 1, ..r }, T::ExistsWithDifferentPendingId);
        r.pending_id = 10;
        expect(Transfer { timeout: 1, ..r }, T::ExistsWithDifferentTimeout);
        expect(r, T::ExistsWithDifferentDebitAccountId);
        r.debit_account_id = 0;
        expect(r, T::ExistsWithDifferentCreditAccountId);
        r.credit_account_id = 2;
        expect(r, T::ExistsWithDifferentAmount);
        r.amount = 30;
        expect(r, T::ExistsWithDifferentUserData128);
        r.user_data_128 = 0;
        expect(r, T::ExistsWithDifferentUserData64);
        r.user_data_64 = 1;
        expect(r, T::ExistsWithDifferentUserData32);
        r.user_data_32 = 0;
        expect(r, T::ExistsWithDifferentLedger);
        r.ledger = 0;
        expect(r, T::ExistsWithDifferentCode);
        r.code = 1;
        expect(r, T::Exists);
    }

    #[test]
    fn id_already_failed_before_validation() {
        let mut ledger = Ledger::with_accounts(2);
        transfers_rejected(&mut ledger, &[transfer(10, 1, 9, 5)], &[T::CreditAccountNotFound]);
        let invalid = Transfer {
            flags: TF::POST_PENDING_TRANSFER | TF::VOID_PENDING_TRANSFER,
            ..transfer(10, 0, 0, 0)
        };
        transfers_rejected(&mut ledger, &[invalid], &[T::IdAlreadyFailed]);
        // But the id checks and reserved flags come first.
        transfers_rejected(
            &mut ledger,
            &[Transfer { flags: TF(1 << 10), ..transfer(10, 1, 2, 5) }],
            &[T::ReservedFlag],
        );
    }

    #[test]
    fn post_and_void_checks_in_order() {
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_accounts_ok(&[Account { ledger: 840, ..account(4) }]);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 0), transfer(11, 1, 2, 1)]);
        // A post's own debit and credit accounts are never validated as such: zero means
        // "the pending transfer's", and any other value must match it.
        let mut t = Transfer {
            debit_account_id: u128::MAX,
            credit_account_id: u128::MAX,
            amount: 60,
            ledger: 840,
            code: 9,
            timeout: 1,
            flags: TF::POST_PENDING_TRANSFER | TF::VOID_PENDING_TRANSFER | TF::PENDING,
            ..post(20, 0, 60)
        };
        let mut expect = |t: Transfer, result: T| transfers_rejected(&mut ledger, &[t], &[result]);
        expect(t, T::FlagsAreMutuallyExclusive);
        t.flags = TF::POST_PENDING_TRANSFER | TF::PENDING;
        expect(t, T::FlagsAreMutuallyExclusive);
        t.flags = TF::POST_PENDING_TRANSFER;
        expect(t, T::PendingIdMustNotBeZero);
        t.pending_id = u128::MAX;
        expect(t, T::PendingIdMustNotBeIntMax);
        t.pending_id = 20;
        expect(t, T::PendingIdMustBeDifferent);
        t.pending_id = 11;
        expect(t, T::TimeoutReservedForPendingTransfer);
        t.timeout = 0;
        expect(t, T::PendingTransferNotPending);
        t.pending_id = 10;
        expect(t, T::PendingTransferHasDifferentDebitAccountId);
        t.debit_account_id = 1;
        expect(t, T::PendingTransferHasDifferentCreditAccountId);
        t.credit_account_id = 0;
        expect(t, T::PendingTransferHasDifferentLedger);
        t.ledger = 0;
        expect(t, T::PendingTransferHasDifferentCode);
        t.code = 1;
        expect(t, T::ExceedsPendingTransferAmount);
        t.amount = 50;
        assert_eq!(ledger.create_transfers(&[t]), [T::Created]);
        assert_eq!(ledger.balances(1), [0, 51, 0, 0]);
    }

    #[test]
    fn pending_transfer_not_found_before_amounts() {
        // Fails before anything about the (unknown) pending transfer can be compared.
        let mut ledger = Ledger::with_accounts(2);
        let t = Transfer { debit_account_id: 5, ledger: 9, code: 9, ..post(20, 10, 1) };
        transfers_rejected(&mut ledger, &[t], &[T::PendingTransferNotFound]);
    }

    #[test]
    fn amount_checks_before_status() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[
            pending(10, 1, 2, 50, 0),
            pending(11, 1, 2, 50, 0),
            post(20, 10, 50),
            void(21, 11),
        ]);
        // An already-posted transfer is first compared against the amount asked for.
        transfers_rejected(&mut ledger, &[post(22, 10, 51)], &[T::ExceedsPendingTransferAmount]);
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 49, ..void(22, 10) }],
            &[T::PendingTransferHasDifferentAmount],
        );
        transfers_rejected(&mut ledger, &[post(22, 10, 49)], &[T::PendingTransferAlreadyPosted]);
        transfers_rejected(
            &mut ledger,
            &[Transfer { amount: 51, ..void(22, 11) }],
            &[T::ExceedsPendingTransferAmount],
        );
        transfers_rejected(&mut ledger, &[post(22, 11, 1)], &[T::PendingTransferAlreadyVoided]);
    }

    #[test]
    fn status_before_deadline_and_deadline_before_closed() {
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 1), post(20, 10, 5)]);
        ledger.advance_s(2);
        // Posted, and past its deadline: the status wins.
        transfers_rejected(&mut ledger, &[post(21, 10, 5)], &[T::PendingTransferAlreadyPosted]);

        let mut ledger = Ledger::with_accounts(3);
        let closing = Transfer { flags: TF::PENDING | TF::CLOSING_CREDIT, ..transfer(11, 3, 2, 0) };
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 1), closing]);
        ledger.advance_s(1);
        // Past its deadline, into a closed account: the deadline wins (and burns nothing).
        transfers_rejected(&mut ledger, &[post(21, 10, 5)], &[T::PendingTransferExpired]);
        // Within its deadline the closed account decides, for a post but not a void.
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 10), closing]);
        transfer_burned(&mut ledger, post(21, 10, 5), T::CreditAccountAlreadyClosed, void(21, 10));
        assert_eq!(ledger.create_transfers(&[void(22, 10)]), [T::Created]);
    }

    #[test]
    fn closed_checks_after_validation_before_amounts() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_accounts_ok(&[
            Account { flags: AF::CLOSED, ..account(3) },
            Account { flags: AF::CLOSED | AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(4) },
        ]);
        // Validation first.
        transfers_rejected(
            &mut ledger,
            &[Transfer { ledger: 840, ..transfer(10, 3, 4, 5) }],
            &[T::TransferMustHaveTheSameLedgerAsAccounts],
        );
        // Debit side before credit side.
        transfers_rejected(&mut ledger, &[transfer(10, 3, 4, 5)], &[T::DebitAccountAlreadyClosed]);
        // Closed before limits and overflows.
        transfers_rejected(
            &mut ledger,
            &[transfer(11, 4, 1, u128::MAX)],
            &[T::DebitAccountAlreadyClosed],
        );
        transfers_rejected(&mut ledger, &[transfer(12, 1, 3, 5)], &[T::CreditAccountAlreadyClosed]);
    }

    #[test]
    fn overflow_checks_in_order_and_before_limits() {
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_accounts_ok(&[
            Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(4) },
            Account { flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS, ..account(5) },
        ]);
        let big = u128::MAX - 5;
        ledger.create_transfers_ok(&[pending(10, 1, 2, big, 0), transfer(11, 3, 2, 5)]);
        // Both pending sides overflow: debit first.
        transfers_rejected(&mut ledger, &[pending(12, 1, 2, 6, 0)], &[T::OverflowsDebitsPending]);
        // Overflowing beats exceeding a limit: account 4 would exceed its credits, 5 its debits.
        transfers_rejected(&mut ledger, &[pending(12, 4, 2, 6, 0)], &[T::OverflowsCreditsPending]);
        transfers_rejected(&mut ledger, &[pending(12, 1, 5, 6, 0)], &[T::OverflowsDebitsPending]);
        // Exceeding credits before exceeding debits.
        transfers_rejected(&mut ledger, &[transfer(12, 4, 5, 1)], &[T::ExceedsCredits]);
        // The timeout overflow comes after the balance overflows and before the limits.
        ledger.set_clock(TIMESTAMP_MAX - NS_PER_S);
        transfers_rejected(&mut ledger, &[pending(13, 1, 3, 6, 2)], &[T::OverflowsDebitsPending]);
        transfers_rejected(&mut ledger, &[pending(13, 4, 5, 1, 2)], &[T::OverflowsTimeout]);
    }

    #[test]
    fn imported_checks_in_order() {
        let mut ledger = imported_accounts();
        assert_eq!(ledger.create_transfers(&[imported(transfer(10, 1, 2, 5), 40)]), [T::Created]);
        ledger.create_accounts_ok(&[Account {
            flags: AF::IMPORTED,
            ledger: 840,
            timestamp: 45,
            ..account(4)
        }]);
        // Ledger validation comes before the timestamp checks.
        transfers_rejected(
            &mut ledger,
            &[imported(transfer(11, 1, 4, 5), 1)],
            &[T::AccountsMustHaveTheSameLedger],
        );
        // Regression, then the accounts' timestamps, then the timeout.
        let late_account = Account { flags: AF::IMPORTED, timestamp: 50, ..account(5) };
        ledger.create_accounts_ok(&[late_account]);
        transfers_rejected(
            &mut ledger,
            &[imported(pending(11, 5, 1, 5, 1), 40)],
            &[T::ImportedEventTimestampMustNotRegress],
        );
        transfers_rejected(
            &mut ledger,
            &[imported(pending(11, 5, 1, 5, 1), 46)],
            &[T::ImportedEventTimestampMustPostdateDebitAccount],
        );
        transfers_rejected(
            &mut ledger,
            &[imported(pending(11, 1, 5, 5, 1), 46)],
            &[T::ImportedEventTimestampMustPostdateCreditAccount],
        );
        // The timeout check comes before the closed checks.
        let closing = imported(
            Transfer { flags: TF::PENDING | TF::CLOSING_DEBIT, ..transfer(11, 3, 1, 0) },
            51,
        );
        ledger.create_transfers_ok(&[closing]);
        transfers_rejected(
            &mut ledger,
            &[imported(pending(12, 3, 1, 5, 1), 52)],
            &[T::ImportedEventTimeoutMustBeZero],
        );
        transfers_rejected(
            &mut ledger,
            &[imported(pending(12, 3, 1, 5, 0), 52)],
            &[T::DebitAccountAlreadyClosed],
        );
        // An existing id is reported before any timestamp problem.
        transfers_rejected(&mut ledger, &[imported(transfer(10, 1, 2, 5), 1)], &[T::Exists]);
    }
}
