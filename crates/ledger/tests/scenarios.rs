//! Scenarios across several events and batches: linked chains and their rollback, two-phase
//! transfers (post, void, expiry), balancing and closing transfers, imported events, and the
//! idempotency of resubmissions.

mod support;

use huifu_ledger::constants::{AMOUNT_MAX, EXPIRE_EVENTS_MAX, NS_PER_S};
use huifu_ledger::{
    Account, AccountFlags as AF, CreateAccountResult as A, CreateTransferResult as T,
    PendingStatus, Transfer, TransferFlags as TF,
};
use support::*;

fn linked(t: Transfer) -> Transfer {
    Transfer { flags: t.flags | TF::LINKED, ..t }
}

fn linked_account(a: Account) -> Account {
    Account { flags: a.flags | AF::LINKED, ..a }
}

/// Account 1 limited to its credits, funded with `amount` from the unlimited account 2.
fn wallet(amount: u128) -> Ledger {
    let mut ledger = Ledger::new();
    ledger.create_accounts_ok(&[
        Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(1) },
        account(2),
        account(3),
    ]);
    if amount > 0 {
        ledger.create_transfers_ok(&[transfer(1_000, 2, 1, amount)]);
    }
    ledger
}

mod linked_chains {
    use super::*;

    #[test]
    fn a_failing_middle_event_fails_the_whole_chain() {
        let mut ledger = wallet(100);
        let before = ledger.fingerprint();
        let batch =
            [linked(transfer(10, 1, 3, 30)), linked(transfer(11, 1, 3, 80)), transfer(12, 3, 2, 1)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::LinkedEventFailed, T::ExceedsCredits, T::LinkedEventFailed]
        );
        assert_eq!(ledger.fingerprint(), before);
        assert!(ledger.sm.lookup_transfer(10).is_none());

        // Only the failing event's id is burned, and only because its failure was transient.
        let retry = [transfer(10, 1, 3, 30), transfer(11, 1, 3, 30), transfer(12, 3, 2, 1)];
        assert_eq!(ledger.create_transfers(&retry), [T::Created, T::IdAlreadyFailed, T::Created]);
    }

    #[test]
    fn a_chain_sees_its_own_effects() {
        let mut ledger = wallet(0);
        // The wallet is empty, but the chain funds it before spending.
        let batch = [
            linked(transfer(10, 2, 1, 50)),
            linked(transfer(11, 1, 3, 50)),
            transfer(12, 3, 2, 50),
        ];
        assert_eq!(ledger.create_transfers(&batch), [T::Created, T::Created, T::Created]);
        assert_eq!(ledger.balances(1), [0, 50, 0, 50]);
        assert_eq!(ledger.balances(3), [0, 50, 0, 50]);
    }

    #[test]
    fn a_rolled_back_chain_is_invisible_to_later_events() {
        let mut ledger = wallet(0);
        let batch = [
            linked(transfer(10, 2, 1, 50)),
            Transfer { code: 0, ..transfer(11, 2, 3, 1) },
            // Independent of the chain, and would only succeed if the rollback had not happened.
            transfer(12, 1, 3, 50),
            // Independent and fine.
            transfer(13, 2, 3, 7),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::LinkedEventFailed, T::CodeMustNotBeZero, T::ExceedsCredits, T::Created]
        );
        assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 7, 0, 0]);
        assert_eq!(ledger.balances(3), [0, 0, 0, 7]);
        let totals = ledger.sm.totals();
        assert_eq!((totals.debits_posted, totals.credits_posted), (7, 7));
    }

    #[test]
    fn independent_chains_succeed_or_fail_on_their_own() {
        let mut ledger = Ledger::with_accounts(3);
        let batch = [
            linked(transfer(10, 1, 2, 1)),
            transfer(11, 1, 2, 1),
            linked(transfer(12, 1, 2, 1)),
            transfer(13, 1, 1, 1),
            transfer(14, 1, 2, 1),
            linked(transfer(15, 1, 2, 1)),
            linked(transfer(16, 2, 3, 1)),
            transfer(17, 3, 1, 1),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::Created,
                T::Created,
                T::LinkedEventFailed,
                T::AccountsMustBeDifferent,
                T::Created,
                T::Created,
                T::Created,
                T::Created,
            ]
        );
        for (id, exists) in [
            (10, true),
            (11, true),
            (12, false),
            (13, false),
            (14, true),
            (15, true),
            (16, true),
            (17, true),
        ] {
            assert_eq!(ledger.sm.lookup_transfer(id).is_some(), exists, "transfer {id}");
        }
        assert_eq!(ledger.balances(1), [0, 4, 0, 1]);
    }

    #[test]
    fn the_first_event_of_a_chain_can_break_it() {
        let mut ledger = Ledger::with_accounts(2);
        let batch =
            [linked(transfer(10, 1, 9, 1)), linked(transfer(11, 1, 2, 1)), transfer(12, 1, 2, 1)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::CreditAccountNotFound, T::LinkedEventFailed, T::LinkedEventFailed]
        );
        assert_eq!(ledger.create_transfers(&[transfer(10, 1, 2, 1)]), [T::IdAlreadyFailed]);
    }

    #[test]
    fn an_open_chain_at_the_end_of_the_batch_fails() {
        let mut ledger = Ledger::with_accounts(2);
        let before = ledger.fingerprint();
        let batch =
            [transfer(10, 1, 2, 1), linked(transfer(11, 1, 2, 1)), linked(transfer(12, 1, 2, 1))];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::Created, T::LinkedEventFailed, T::LinkedEventChainOpen]
        );
        assert_eq!(ledger.sm.transfers().len(), before.transfers.len() + 1);
        assert!(ledger.sm.lookup_transfer(11).is_none());

        // When the chain already broke, its events still fail and the last still reports the
        // open chain.
        let batch = [
            linked(transfer(11, 1, 2, 1)),
            linked(transfer(12, 1, 1, 1)),
            linked(transfer(13, 1, 2, 1)),
            linked(transfer(14, 1, 2, 1)),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::LinkedEventFailed,
                T::AccountsMustBeDifferent,
                T::LinkedEventFailed,
                T::LinkedEventChainOpen
            ]
        );
        assert_eq!(ledger.sm.transfers().len(), before.transfers.len() + 1);
    }

    #[test]
    fn a_resubmission_inside_the_chain_breaks_it() {
        // The first event is created inside the chain, so the second one `exists`; the chain
        // then rolls back, the first event included.
        let mut ledger = Ledger::with_accounts(2);
        let t = transfer(10, 1, 2, 5);
        assert_eq!(
            ledger.create_transfers(&[linked(t), t]),
            [T::LinkedEventFailed, T::ExistsWithDifferentFlags]
        );
        assert_eq!(
            ledger.create_transfers(&[linked(t), linked(t), transfer(11, 1, 2, 1)]),
            [T::LinkedEventFailed, T::Exists, T::LinkedEventFailed]
        );
        assert!(ledger.sm.lookup_transfer(10).is_none());

        let mut ledger = Ledger::new();
        let a = account(1);
        assert_eq!(
            ledger.create_accounts(&[linked_account(a), linked_account(a), account(2)]),
            [A::LinkedEventFailed, A::Exists, A::LinkedEventFailed]
        );
        assert!(ledger.sm.accounts().is_empty());
    }

    #[test]
    fn a_transient_failure_in_a_chain_burns_only_its_own_id() {
        let mut ledger = wallet(10);
        let batch = [
            linked(transfer(10, 2, 3, 5)),
            linked(transfer(11, 1, 3, 50)),
            linked(transfer(12, 3, 2, 1)),
            transfer(13, 2, 3, 1),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::LinkedEventFailed, T::ExceedsCredits, T::LinkedEventFailed, T::LinkedEventFailed]
        );
        // The same chain, now valid, in a later batch: only the burned id is refused.
        let batch = [
            linked(transfer(10, 2, 3, 5)),
            linked(transfer(11, 1, 3, 5)),
            linked(transfer(12, 3, 2, 1)),
            transfer(13, 2, 3, 1),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::LinkedEventFailed, T::IdAlreadyFailed, T::LinkedEventFailed, T::LinkedEventFailed]
        );
        let batch = [transfer(10, 2, 3, 5), transfer(12, 3, 2, 1), transfer(13, 2, 3, 1)];
        assert_eq!(ledger.create_transfers(&batch), [T::Created, T::Created, T::Created]);
    }

    #[test]
    fn linked_accounts_roll_back_together() {
        let mut ledger = Ledger::new();
        let batch = [
            account(7),
            linked_account(account(1)),
            linked_account(account(2)),
            linked_account(account(1)),
            account(3),
            account(1),
            Account { flags: AF::LINKED, code: 2, ..account(1) },
            account(2),
            account(2),
            linked_account(account(3)),
            Account { ledger: 2, ..account(1) },
            linked_account(account(3)),
            account(4),
        ];
        // The reference model's own linked accounts scenario.
        assert_eq!(
            ledger.create_accounts(&batch),
            [
                A::Created,
                A::LinkedEventFailed,
                A::LinkedEventFailed,
                A::Exists,
                A::LinkedEventFailed,
                A::Created,
                A::ExistsWithDifferentFlags,
                A::LinkedEventFailed,
                A::Created,
                A::LinkedEventFailed,
                A::ExistsWithDifferentLedger,
                A::Created,
                A::Created,
            ]
        );
        let ids: Vec<u128> = ledger.sm.accounts().iter().map(|a| a.id).collect();
        assert_eq!(ids, [7, 1, 2, 3, 4]);
        // Timestamps are still those of each event's position in the batch.
        let last = ledger.last_timestamp;
        let stamps: Vec<u64> = ledger.sm.accounts().iter().map(|a| a.timestamp).collect();
        assert_eq!(stamps, [last - 12, last - 7, last - 4, last - 1, last]);
    }

    #[test]
    fn rollback_restores_pending_statuses_and_expiry() {
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 50, 60), pending(11, 1, 2, 7, 0)]);
        let before = ledger.fingerprint();
        let batch = [
            linked(post(20, 10, AMOUNT_MAX)),
            linked(void(21, 11)),
            linked(pending(22, 2, 3, 5, 30)),
            transfer(23, 1, 9, 1),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::LinkedEventFailed,
                T::LinkedEventFailed,
                T::LinkedEventFailed,
                T::CreditAccountNotFound
            ]
        );
        assert_eq!(ledger.fingerprint(), before);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Pending));
        assert_eq!(ledger.sm.pending_status(11), Some(PendingStatus::Pending));
        assert_eq!(ledger.sm.pending_status(22), None);
        assert_eq!(ledger.sm.expiry_waiting(), 1);

        // Both holds are still there to be resolved, and still expire.
        ledger.create_transfers_ok(&[void(21, 11)]);
        ledger.advance_s(60);
        assert_eq!(ledger.expire(), 1);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Expired));
        assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
    }

    #[test]
    fn rollback_restores_closed_flags() {
        let mut ledger = Ledger::with_accounts(3);
        let closing = Transfer { flags: TF::PENDING | TF::CLOSING_DEBIT, ..transfer(10, 1, 2, 0) };
        ledger.create_transfers_ok(&[closing]);
        let before = ledger.fingerprint();
        // Reopen, move money, close the credit account too, then fail.
        let batch = [
            linked(void(11, 10)),
            linked(transfer(12, 1, 2, 5)),
            linked(Transfer { flags: TF::PENDING | TF::CLOSING_CREDIT, ..transfer(13, 1, 3, 0) }),
            transfer(14, 1, 3, 1),
        ];
        // The last event sees account 1 reopened and account 3 closed by the chain.
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::LinkedEventFailed,
                T::LinkedEventFailed,
                T::LinkedEventFailed,
                T::CreditAccountAlreadyClosed
            ]
        );
        assert_eq!(ledger.fingerprint(), before);
        assert!(ledger.account(1).flags.contains(AF::CLOSED));
        assert!(!ledger.account(3).flags.contains(AF::CLOSED));
    }

    #[test]
    fn rollback_spans_many_updates_of_one_account() {
        let mut ledger = wallet(100);
        let before = ledger.fingerprint();
        let mut batch: Vec<Transfer> = (0..50).map(|i| linked(transfer(10 + i, 1, 3, 2))).collect();
        batch.push(transfer(60, 1, 3, 1));
        let results = ledger.create_transfers(&batch);
        assert_eq!(results[50], T::ExceedsCredits);
        assert!(results[..50].iter().all(|r| *r == T::LinkedEventFailed));
        assert_eq!(ledger.fingerprint(), before);
    }
}

mod two_phase {
    use super::*;

    /// Accounts 1..=3, and a pending transfer 10 of 100 from 1 to 2 with user data.
    fn held() -> Ledger {
        let mut ledger = Ledger::with_accounts(3);
        let p = Transfer {
            user_data_128: 1,
            user_data_64: 2,
            user_data_32: 3,
            code: 4,
            ..pending(10, 1, 2, 100, 0)
        };
        ledger.create_transfers_ok(&[p]);
        assert_eq!(ledger.balances(1), [100, 0, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 100, 0]);
        ledger
    }

    #[test]
    fn post_the_full_amount() {
        let mut ledger = held();
        let timestamp = ledger.next_timestamp(1);
        assert_eq!(ledger.create_transfers(&[post(20, 10, AMOUNT_MAX)]), [T::Created]);
        // The stored post carries what it did: the real amount, and every inherited field.
        assert_eq!(
            ledger.transfer(20),
            Transfer {
                id: 20,
                debit_account_id: 1,
                credit_account_id: 2,
                amount: 100,
                pending_id: 10,
                user_data_128: 1,
                user_data_64: 2,
                user_data_32: 3,
                timeout: 0,
                ledger: LEDGER,
                code: 4,
                flags: TF::POST_PENDING_TRANSFER,
                timestamp,
            }
        );
        assert_eq!(ledger.balances(1), [0, 100, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 0, 100]);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Posted));
        let totals = ledger.sm.totals();
        assert_eq!((totals.debits_pending, totals.debits_posted), (0, 100));
    }

    #[test]
    fn post_the_exact_amount() {
        let mut ledger = held();
        assert_eq!(ledger.create_transfers(&[post(20, 10, 100)]), [T::Created]);
        assert_eq!(ledger.transfer(20).amount, 100);
        assert_eq!(ledger.balances(1), [0, 100, 0, 0]);
    }

    #[test]
    fn post_part_releases_the_rest() {
        let mut ledger = held();
        assert_eq!(ledger.create_transfers(&[post(20, 10, 30)]), [T::Created]);
        assert_eq!(ledger.transfer(20).amount, 30);
        assert_eq!(ledger.balances(1), [0, 30, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 0, 30]);
        // Once posted, nothing more can be taken from the hold.
        assert_eq!(ledger.create_transfers(&[post(21, 10, 70)]), [T::PendingTransferAlreadyPosted]);
    }

    #[test]
    fn post_zero_posts_nothing() {
        // Zero is an amount like any other: it does not mean "everything".
        let mut ledger = held();
        assert_eq!(ledger.create_transfers(&[post(20, 10, 0)]), [T::Created]);
        assert_eq!(ledger.transfer(20).amount, 0);
        assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Posted));
    }

    #[test]
    fn void_the_whole_amount() {
        for amount in [0, 100] {
            let mut ledger = held();
            let v = Transfer { amount, ..void(20, 10) };
            assert_eq!(ledger.create_transfers(&[v]), [T::Created]);
            assert_eq!(ledger.transfer(20).amount, 100, "void of amount {amount}");
            assert_eq!(ledger.transfer(20).user_data_64, 2);
            assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
            assert_eq!(ledger.balances(2), [0, 0, 0, 0]);
            assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Voided));
            assert_eq!(ledger.sm.totals().debits_pending, 0);
        }
    }

    #[test]
    fn void_part_is_refused() {
        let mut ledger = held();
        let before = ledger.fingerprint();
        for amount in [1, 99] {
            let v = Transfer { amount, ..void(20, 10) };
            assert_eq!(ledger.create_transfers(&[v]), [T::PendingTransferHasDifferentAmount]);
        }
        assert_eq!(
            ledger.create_transfers(&[Transfer { amount: 101, ..void(20, 10) }]),
            [T::ExceedsPendingTransferAmount]
        );
        assert_eq!(ledger.fingerprint(), before);
    }

    #[test]
    fn resolve_after_resolve() {
        let mut ledger = held();
        ledger.create_transfers_ok(&[pending(11, 1, 2, 5, 0)]);
        assert_eq!(
            ledger.create_transfers(&[post(20, 10, 1), void(21, 11)]),
            [T::Created, T::Created]
        );
        let before = ledger.fingerprint();
        let batch = [post(22, 10, 1), void(23, 10), post(24, 11, 1), void(25, 11)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::PendingTransferAlreadyPosted,
                T::PendingTransferAlreadyPosted,
                T::PendingTransferAlreadyVoided,
                T::PendingTransferAlreadyVoided,
            ]
        );
        assert_eq!(ledger.fingerprint(), before);
        // Not transient: the ids stay usable.
        assert_eq!(ledger.create_transfers(&[transfer(22, 1, 2, 1)]), [T::Created]);
    }

    #[test]
    fn post_and_void_in_one_batch() {
        // The second resolution in a batch sees the first.
        let mut ledger = held();
        assert_eq!(
            ledger.create_transfers(&[void(20, 10), post(21, 10, 5)]),
            [T::Created, T::PendingTransferAlreadyVoided]
        );
    }

    #[test]
    fn user_data_is_inherited_unless_given() {
        let mut ledger = held();
        let p = Transfer { user_data_64: 77, ..post(20, 10, 10) };
        assert_eq!(ledger.create_transfers(&[p]), [T::Created]);
        let stored = ledger.transfer(20);
        assert_eq!((stored.user_data_128, stored.user_data_64, stored.user_data_32), (1, 77, 3));

        // The same post resubmitted: zero still means "the pending transfer's".
        let same = [
            p,
            Transfer { user_data_128: 1, ..p },
            Transfer {
                user_data_32: 3,
                debit_account_id: 1,
                credit_account_id: 2,
                ledger: LEDGER,
                code: 4,
                ..p
            },
        ];
        assert_eq!(ledger.create_transfers(&same), [T::Exists, T::Exists, T::Exists]);
        // But omitting a field that was given is a different transfer.
        let omitted = Transfer { user_data_64: 0, ..p };
        assert_eq!(ledger.create_transfers(&[omitted]), [T::ExistsWithDifferentUserData64]);
    }

    #[test]
    fn a_post_given_every_field_matches_the_pending_transfer() {
        let mut ledger = held();
        let full = Transfer {
            debit_account_id: 1,
            credit_account_id: 2,
            ledger: LEDGER,
            code: 4,
            ..post(20, 10, 10)
        };
        assert_eq!(ledger.create_transfers(&[full]), [T::Created]);
        assert_eq!(ledger.balances(1), [0, 10, 0, 0]);
    }

    #[test]
    fn resubmitted_posts() {
        let mut ledger = held();
        ledger.create_transfers_ok(&[
            pending(11, 1, 2, 5, 0),
            post(20, 10, AMOUNT_MAX),
            post(21, 11, 3),
        ]);
        // A full post is the same whether resubmitted as AMOUNT_MAX or as the amount.
        let batch =
            [post(20, 10, AMOUNT_MAX), post(20, 10, 100), post(20, 10, 99), post(20, 10, 0)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::Exists, T::Exists, T::ExistsWithDifferentAmount, T::ExistsWithDifferentAmount]
        );
        // A partial post is not a full one.
        let batch = [post(21, 11, 3), post(21, 11, AMOUNT_MAX), post(21, 11, 5), post(21, 11, 2)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::Exists,
                T::ExistsWithDifferentAmount,
                T::ExistsWithDifferentAmount,
                T::ExistsWithDifferentAmount
            ]
        );
    }

    #[test]
    fn resubmitted_voids() {
        let mut ledger = held();
        ledger.create_transfers_ok(&[void(20, 10)]);
        let batch = [
            void(20, 10),
            Transfer { amount: 100, ..void(20, 10) },
            Transfer { amount: 99, ..void(20, 10) },
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::Exists, T::Exists, T::ExistsWithDifferentAmount]
        );
    }

    #[test]
    fn post_the_largest_amount() {
        // AMOUNT_MAX as a pending amount: posting "everything" posts exactly that.
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[pending(10, 1, 2, AMOUNT_MAX, 0), post(20, 10, AMOUNT_MAX)]);
        assert_eq!(ledger.create_transfers(&[post(20, 10, AMOUNT_MAX)]), [T::Exists]);
        assert_eq!(ledger.transfer(20).amount, AMOUNT_MAX);
        assert_eq!(ledger.balances(1), [0, AMOUNT_MAX, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 0, AMOUNT_MAX]);
    }

    #[test]
    fn holds_count_against_limits_until_released() {
        let mut ledger = wallet(100);
        ledger.create_transfers_ok(&[pending(10, 1, 3, 80, 0)]);
        assert_eq!(ledger.create_transfers(&[transfer(11, 1, 3, 30)]), [T::ExceedsCredits]);
        // Posting part of the hold frees the rest.
        assert_eq!(
            ledger.create_transfers(&[post(20, 10, 50), transfer(12, 1, 3, 50)]),
            [T::Created, T::Created]
        );
        assert_eq!(ledger.balances(1), [0, 100, 0, 100]);
    }

    #[test]
    fn posting_ignores_limits_already_checked_by_the_hold() {
        // A hold of the whole balance; posting it needs no further room.
        let mut ledger = wallet(100);
        ledger.create_transfers_ok(&[pending(10, 1, 3, 100, 0)]);
        assert_eq!(ledger.create_transfers(&[post(20, 10, AMOUNT_MAX)]), [T::Created]);
        assert_eq!(ledger.balances(1), [0, 100, 0, 100]);
    }
}

mod expiry {
    use super::*;

    #[test]
    fn expired_holds_are_released_oldest_deadline_first() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[
            pending(10, 1, 2, 10, 0),
            pending(11, 1, 2, 11, 3),
            pending(12, 1, 2, 12, 1),
            pending(13, 1, 2, 13, 2),
        ]);
        assert_eq!(ledger.balances(1), [46, 0, 0, 0]);
        assert_eq!(ledger.sm.expiry_waiting(), 3);
        let created = ledger.transfer(12).timestamp;
        assert_eq!(ledger.sm.expiry_next(), Some(created + NS_PER_S));

        // Transfer `id` holds `id` units; one second apart, one deadline passes at a time.
        for id in [12, 13, 11] {
            ledger.advance_s(1);
            let held = ledger.balances(1)[0];
            assert_eq!(ledger.expire(), 1);
            assert_eq!(ledger.balances(1)[0], held - id);
            assert_eq!(ledger.sm.pending_status(id), Some(PendingStatus::Expired));
        }
        // A hold without a timeout never expires.
        ledger.advance_s(1_000_000);
        assert_eq!(ledger.expire(), 0);
        assert_eq!(ledger.balances(1), [10, 0, 0, 0]);
        assert_eq!(ledger.balances(2), [0, 0, 10, 0]);
        assert_eq!(ledger.sm.expiry_next(), None);
        assert!(ledger.sm.totals().is_balanced());
    }

    #[test]
    fn a_deadline_expires_exactly_at_its_time() {
        let window = EXPIRE_EVENTS_MAX as u64;
        // Deadlines up to `timestamp - EXPIRE_EVENTS_MAX + 1` are due.
        for (after_deadline, expired) in [(0, 0), (1, 1)] {
            let mut ledger = Ledger::with_accounts(2);
            ledger.create_transfers_ok(&[pending(10, 1, 2, 10, 1)]);
            let deadline = ledger.transfer(10).timestamp + NS_PER_S;
            let timestamp = deadline + window - 2 + after_deadline;
            assert_eq!(ledger.sm.expire_pending_transfers(timestamp), expired);
            let status = if expired == 1 { PendingStatus::Expired } else { PendingStatus::Pending };
            assert_eq!(ledger.sm.pending_status(10), Some(status));
            assert_eq!(ledger.balances(1)[0], 10 - 10 * expired as u128);
        }
    }

    #[test]
    fn resolving_before_the_deadline_works() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 10, 1)]);
        let deadline = ledger.transfer(10).timestamp + NS_PER_S;
        ledger.set_clock(deadline - 1);
        assert_eq!(ledger.create_transfers(&[post(20, 10, 4)]), [T::Created]);
        assert_eq!(ledger.sm.expiry_waiting(), 0);
        // Nothing is left to expire.
        ledger.advance_s(10);
        assert_eq!(ledger.expire(), 0);
        assert_eq!(ledger.balances(1), [0, 4, 0, 0]);
    }

    #[test]
    fn a_deadline_past_the_event_time_fails_before_expiry_ran() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 10, 1)]);
        let deadline = ledger.transfer(10).timestamp + NS_PER_S;
        // A batch of two at `deadline + 1`: its events are at the deadline and just after.
        ledger.set_clock(deadline + 1);
        let before = ledger.fingerprint();
        assert_eq!(
            ledger.create_transfers(&[post(20, 10, 4), void(21, 10)]),
            [T::PendingTransferExpired, T::PendingTransferExpired]
        );
        // The hold is still there until expiry runs.
        assert_eq!(ledger.fingerprint(), before);
        assert_eq!(ledger.sm.pending_status(10), Some(PendingStatus::Pending));
        assert_eq!(ledger.expire(), 1);
        assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
        // And the ids were not burned.
        assert_eq!(ledger.create_transfers(&[transfer(20, 1, 2, 1)]), [T::Created]);
    }

    #[test]
    fn each_event_of_a_batch_has_its_own_time() {
        // A batch of two stamped with the deadline: its first event is just before it, its
        // second at it.
        for (batch, expected) in [
            ([post(20, 10, 1), transfer(21, 1, 2, 1)], [T::Created, T::Created]),
            ([transfer(21, 1, 2, 1), post(20, 10, 1)], [T::Created, T::PendingTransferExpired]),
        ] {
            let mut ledger = Ledger::with_accounts(2);
            ledger.create_transfers_ok(&[pending(10, 1, 2, 10, 1)]);
            let deadline = ledger.transfer(10).timestamp + NS_PER_S;
            assert_eq!(ledger.create_transfers_at(deadline, &batch), expected);
        }
    }

    #[test]
    fn expiry_counts_against_nothing_once_released() {
        let mut ledger = wallet(100);
        ledger.create_transfers_ok(&[pending(10, 1, 3, 100, 1)]);
        assert_eq!(ledger.create_transfers(&[transfer(11, 1, 3, 1)]), [T::ExceedsCredits]);
        ledger.advance_s(1);
        assert_eq!(ledger.expire(), 1);
        assert_eq!(ledger.create_transfers(&[transfer(12, 1, 3, 100)]), [T::Created]);
    }

    #[test]
    fn expiry_and_batches_share_one_timeline() {
        let mut ledger = Ledger::with_accounts(2);
        let before = ledger.sm.timestamp_min(1);
        ledger.expire();
        let expired_at = ledger.last_timestamp;
        // Expiry takes timestamps for up to EXPIRE_EVENTS_MAX events, even when none is due.
        assert_eq!(expired_at, before - 1 + EXPIRE_EVENTS_MAX as u64);
        assert_eq!(ledger.sm.timestamp_min(1), expired_at + 1);
        ledger.create_transfers_ok(&[pending(10, 1, 2, 1, 1)]);
        assert_eq!(ledger.transfer(10).timestamp, expired_at + 1);
    }
}

mod balancing {
    use super::*;

    fn balancing_debit(t: Transfer) -> Transfer {
        Transfer { flags: t.flags | TF::BALANCING_DEBIT, ..t }
    }

    fn balancing_credit(t: Transfer) -> Transfer {
        Transfer { flags: t.flags | TF::BALANCING_CREDIT, ..t }
    }

    /// Account 1 (debits must not exceed credits) with 10 credited and 1 held; account 2
    /// (credits must not exceed debits) with 10 debited and 2 held; account 3 plain; account 9
    /// the unlimited counterparty of the setup.
    fn limited() -> Ledger {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[
            Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(1) },
            Account { flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS, ..account(2) },
            account(3),
            account(9),
        ]);
        ledger.create_transfers_ok(&[
            transfer(901, 9, 1, 10),
            pending(902, 1, 9, 1, 0),
            transfer(903, 2, 9, 10),
            pending(904, 9, 2, 2, 0),
        ]);
        assert_eq!(ledger.balances(1), [1, 0, 0, 10]);
        assert_eq!(ledger.balances(2), [0, 10, 2, 0]);
        ledger
    }

    #[test]
    fn amounts_are_clamped_to_the_balance() {
        let mut ledger = limited();
        let batch = [
            balancing_debit(transfer(1, 1, 3, 3)),
            balancing_debit(transfer(2, 1, 3, 13)),
            balancing_credit(transfer(3, 3, 2, 3)),
            balancing_credit(transfer(4, 3, 2, 13)),
            balancing_debit(transfer(5, 1, 3, 1)),
            balancing_credit(balancing_debit(transfer(6, 1, 3, 1))),
            balancing_credit(transfer(7, 3, 2, 1)),
            balancing_credit(balancing_debit(transfer(8, 1, 2, 1))),
        ];
        assert_eq!(ledger.create_transfers(&batch), [T::Created; 8]);
        let amounts: Vec<u128> = (1..=8).map(|id| ledger.transfer(id).amount).collect();
        assert_eq!(amounts, [3, 6, 3, 5, 0, 0, 0, 0]);
        assert_eq!(ledger.balances(1), [1, 9, 0, 10]);
        assert_eq!(ledger.balances(2), [0, 10, 2, 8]);
        assert_eq!(ledger.balances(3), [0, 8, 0, 9]);

        // A resubmission with an amount at least what was moved is the same transfer.
        let batch = [
            balancing_debit(transfer(1, 1, 3, 2)),
            balancing_debit(transfer(1, 1, 3, 0)),
            balancing_debit(transfer(1, 1, 3, 3)),
            balancing_debit(transfer(1, 1, 3, 4)),
            balancing_debit(transfer(2, 1, 3, 6)),
            balancing_debit(transfer(2, 1, 3, AMOUNT_MAX)),
            balancing_debit(transfer(2, 1, 3, 5)),
            balancing_credit(transfer(4, 3, 2, 5)),
            balancing_credit(transfer(4, 3, 2, 4)),
            balancing_debit(transfer(5, 1, 3, 0)),
            transfer(1, 1, 3, 3),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::ExistsWithDifferentAmount,
                T::ExistsWithDifferentAmount,
                T::Exists,
                T::Exists,
                T::Exists,
                T::Exists,
                T::ExistsWithDifferentAmount,
                T::Exists,
                T::ExistsWithDifferentAmount,
                T::Exists,
                T::ExistsWithDifferentFlags,
            ]
        );
    }

    #[test]
    fn clamping_happens_before_the_limit_check() {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[
            Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(1) },
            account(2),
            Account { flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS, ..account(3) },
            account(4),
        ]);
        ledger.create_transfers_ok(&[
            transfer(901, 2, 1, 4),
            transfer(902, 2, 4, 1),
            transfer(903, 3, 4, 4),
        ]);
        let batch = [
            // Balancing the credit side does not help the debit side's limit.
            balancing_credit(transfer(1, 1, 2, 10)),
            balancing_debit(transfer(2, 1, 2, 10)),
            balancing_debit(transfer(3, 4, 3, 10)),
            balancing_credit(transfer(4, 4, 3, 10)),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::ExceedsCredits, T::Created, T::ExceedsDebits, T::Created]
        );
        assert_eq!(ledger.transfer(2).amount, 4);
        assert_eq!(ledger.transfer(4).amount, 4);
    }

    #[test]
    fn unlimited_accounts_balance_too() {
        // The clamp applies to any account, not only limited ones.
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_transfers_ok(&[transfer(901, 2, 1, 10), transfer(902, 3, 2, 8)]);
        let batch = [
            balancing_debit(transfer(1, 1, 3, 99)),
            balancing_debit(transfer(2, 1, 3, 99)),
            balancing_credit(transfer(3, 3, 2, 99)),
            balancing_debit(transfer(4, 3, 1, 99)),
        ];
        assert_eq!(ledger.create_transfers(&batch), [T::Created; 4]);
        let amounts: Vec<u128> = (1..=4).map(|id| ledger.transfer(id).amount).collect();
        assert_eq!(amounts, [10, 0, 2, 0]);
    }

    #[test]
    fn the_largest_amount_moves_the_whole_balance() {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[
            Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(1) },
            account(2),
            account(3),
        ]);
        ledger.create_transfers_ok(&[transfer(901, 3, 1, u128::MAX)]);
        assert_eq!(
            ledger.create_transfers(&[balancing_debit(transfer(1, 1, 2, AMOUNT_MAX))]),
            [T::Created]
        );
        assert_eq!(ledger.transfer(1).amount, u128::MAX);
        assert_eq!(ledger.balances(1), [0, u128::MAX, 0, u128::MAX]);
    }

    #[test]
    fn balancing_holds_and_posts() {
        let mut ledger = Ledger::new();
        ledger.create_accounts_ok(&[
            Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(1) },
            Account { flags: AF::CREDITS_MUST_NOT_EXCEED_DEBITS, ..account(2) },
            account(9),
        ]);
        ledger.create_transfers_ok(&[transfer(901, 9, 1, 10), transfer(902, 2, 9, 10)]);
        let hold = |id, amount| balancing_debit(pending(id, 1, 2, amount, 0));
        assert_eq!(
            ledger.create_transfers(&[hold(1, 3), hold(2, 13), hold(3, 1)]),
            [T::Created; 3]
        );
        assert_eq!(ledger.balances(1), [10, 0, 0, 10]);
        assert_eq!(ledger.balances(2), [0, 10, 10, 0]);
        assert_eq!(ledger.create_transfers(&[post(4, 1, 3), post(5, 2, 5)]), [T::Created; 2]);
        let amounts: Vec<u128> = (1..=5).map(|id| ledger.transfer(id).amount).collect();
        assert_eq!(amounts, [3, 7, 0, 3, 5]);
        assert_eq!(ledger.balances(1), [0, 8, 0, 10]);
    }

    #[test]
    fn funding_a_payment_from_several_sources() {
        // Sources 1..=3 pay into control account 4 as much as each holds, up to what the limit
        // account 5 allows; the chain fails as a whole if they cannot cover it.
        for (third_source, expected) in [(21, Some([40, 40, 20])), (19, None)] {
            let mut ledger = Ledger::new();
            let limited = |id| Account { flags: AF::DEBITS_MUST_NOT_EXCEED_CREDITS, ..account(id) };
            ledger.create_accounts_ok(&[
                limited(1),
                limited(2),
                limited(3),
                account(4),
                limited(5),
                account(6),
                account(9),
            ]);
            ledger.create_transfers_ok(&[
                transfer(901, 9, 1, 40),
                transfer(902, 9, 2, 40),
                transfer(903, 9, 3, third_source),
            ]);
            let both = |t: Transfer| balancing_credit(balancing_debit(t));
            let batch = [
                linked(transfer(1, 4, 5, 100)),
                linked(both(transfer(2, 1, 4, 100))),
                linked(both(transfer(3, 2, 4, 100))),
                linked(both(transfer(4, 3, 4, 100))),
                linked(transfer(5, 4, 6, 100)),
                balancing_credit(transfer(6, 5, 4, AMOUNT_MAX)),
            ];
            let results = ledger.create_transfers(&batch);
            match expected {
                Some(paid) => {
                    assert_eq!(results, [T::Created; 6]);
                    let amounts: Vec<u128> = (2..=4).map(|id| ledger.transfer(id).amount).collect();
                    assert_eq!(amounts, paid);
                    assert_eq!(ledger.balances(6), [0, 0, 0, 100]);
                    assert_eq!(ledger.balances(4), [0, 200, 0, 200]);
                }
                None => {
                    assert_eq!(results[..5], [T::LinkedEventFailed; 5]);
                    assert_eq!(results[5], T::ExceedsCredits);
                    assert_eq!(ledger.balances(6), [0, 0, 0, 0]);
                }
            }
        }
    }
}

mod closing {
    use super::*;

    fn closing_debit(id: u128, debit: u128, credit: u128, timeout: u32) -> Transfer {
        Transfer {
            flags: TF::PENDING | TF::CLOSING_DEBIT,
            ..pending(id, debit, credit, 0, timeout)
        }
    }

    fn closing_credit(id: u128, debit: u128, credit: u128, timeout: u32) -> Transfer {
        Transfer {
            flags: TF::PENDING | TF::CLOSING_CREDIT,
            ..pending(id, debit, credit, 0, timeout)
        }
    }

    #[test]
    fn an_account_created_closed_takes_no_transfers() {
        let mut ledger = Ledger::with_accounts(1);
        ledger.create_accounts_ok(&[Account { flags: AF::CLOSED, ..account(2) }]);
        assert!(ledger.account(2).flags.contains(AF::CLOSED));
        assert_eq!(
            ledger.create_transfers(&[transfer(1, 1, 2, 0), transfer(2, 2, 1, 0)]),
            [T::CreditAccountAlreadyClosed, T::DebitAccountAlreadyClosed]
        );
    }

    #[test]
    fn close_and_reopen_by_void() {
        let mut ledger = Ledger::with_accounts(3);
        ledger.create_transfers_ok(&[transfer(1, 1, 2, 15)]);
        assert_eq!(ledger.create_transfers(&[closing_debit(2, 1, 2, 0)]), [T::Created]);
        assert!(ledger.account(1).flags.contains(AF::CLOSED));
        assert!(!ledger.account(2).flags.contains(AF::CLOSED));
        assert_eq!(ledger.create_transfers(&[closing_debit(2, 1, 2, 0)]), [T::Exists]);

        let batch =
            [transfer(3, 1, 2, 5), transfer(4, 2, 1, 5), closing_debit(5, 1, 3, 0), post(6, 2, 0)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::DebitAccountAlreadyClosed,
                T::CreditAccountAlreadyClosed,
                T::DebitAccountAlreadyClosed,
                T::DebitAccountAlreadyClosed
            ]
        );
        for id in [3, 4, 5, 6] {
            assert_eq!(ledger.create_transfers(&[void(id, 2)]), [T::IdAlreadyFailed]);
        }

        assert_eq!(ledger.create_transfers(&[void(7, 2)]), [T::Created]);
        assert!(!ledger.account(1).flags.contains(AF::CLOSED));
        assert_eq!(
            ledger.create_transfers(&[void(7, 2), transfer(8, 1, 2, 5)]),
            [T::Exists, T::Created]
        );
        assert_eq!(ledger.balances(1), [0, 20, 0, 0]);
    }

    #[test]
    fn close_both_accounts() {
        let mut ledger = Ledger::with_accounts(3);
        let both = Transfer {
            flags: TF::PENDING | TF::CLOSING_DEBIT | TF::CLOSING_CREDIT,
            ..pending(1, 1, 2, 0, 0)
        };
        ledger.create_transfers_ok(&[both]);
        assert!(ledger.account(1).flags.contains(AF::CLOSED));
        assert!(ledger.account(2).flags.contains(AF::CLOSED));
        let batch = [closing_debit(2, 1, 3, 0), closing_credit(3, 3, 2, 0), transfer(4, 3, 2, 0)];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::DebitAccountAlreadyClosed,
                T::CreditAccountAlreadyClosed,
                T::CreditAccountAlreadyClosed
            ]
        );
        ledger.create_transfers_ok(&[void(5, 1)]);
        assert!(!ledger.account(1).flags.contains(AF::CLOSED));
        assert!(!ledger.account(2).flags.contains(AF::CLOSED));
    }

    #[test]
    fn close_with_a_timeout_and_reopen_by_expiry() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[
            pending(1, 1, 2, 10, 1),
            pending(2, 1, 2, 10, 0),
            closing_credit(3, 1, 2, 2),
        ]);
        assert!(ledger.account(2).flags.contains(AF::CLOSED));
        // Holds on a closed account can be voided but not posted.
        let batch = [post(4, 2, 10), void(5, 2)];
        assert_eq!(ledger.create_transfers(&batch), [T::CreditAccountAlreadyClosed, T::Created]);
        assert_eq!(ledger.balances(2), [0, 0, 10, 0]);
        // Holds expire in closed accounts, which stay closed...
        ledger.advance_s(1);
        assert_eq!(ledger.expire(), 1);
        assert_eq!(ledger.balances(2), [0, 0, 0, 0]);
        assert!(ledger.account(2).flags.contains(AF::CLOSED));
        // ...until the closing transfer itself expires.
        ledger.advance_s(1);
        assert_eq!(ledger.expire(), 1);
        assert!(!ledger.account(2).flags.contains(AF::CLOSED));
        assert_eq!(ledger.sm.pending_status(3), Some(PendingStatus::Expired));
        assert_eq!(ledger.create_transfers(&[transfer(6, 1, 2, 1)]), [T::Created]);
    }

    #[test]
    fn a_closing_transfer_can_carry_an_amount() {
        let mut ledger = Ledger::with_accounts(2);
        let close = Transfer { amount: 7, ..closing_debit(1, 1, 2, 0) };
        ledger.create_transfers_ok(&[close]);
        assert_eq!(ledger.balances(1), [7, 0, 0, 0]);
        // Posting it is refused, since it would move money out of a closed account.
        assert_eq!(ledger.create_transfers(&[post(2, 1, 7)]), [T::DebitAccountAlreadyClosed]);
        ledger.create_transfers_ok(&[void(3, 1)]);
        assert_eq!(ledger.balances(1), [0, 0, 0, 0]);
    }

    #[test]
    fn resubmitting_a_closed_account() {
        let mut ledger = Ledger::with_accounts(2);
        ledger.create_transfers_ok(&[closing_debit(1, 1, 2, 0)]);
        // The closed flag is part of the account's flags now.
        assert_eq!(ledger.create_accounts(&[account(1)]), [A::ExistsWithDifferentFlags]);
        assert_eq!(
            ledger.create_accounts(&[Account { flags: AF::CLOSED, ..account(1) }]),
            [A::Exists]
        );
    }
}

mod imported {
    use super::*;

    fn imported_account(id: u128, timestamp: u64) -> Account {
        Account { flags: AF::IMPORTED, timestamp, ..account(id) }
    }

    fn imported(t: Transfer, timestamp: u64) -> Transfer {
        Transfer { flags: t.flags | TF::IMPORTED, timestamp, ..t }
    }

    #[test]
    fn imports_keep_their_timestamps() {
        let mut ledger = Ledger::new();
        ledger.set_clock(10);
        ledger.create_accounts_ok(&[imported_account(1, 1), imported_account(2, 2)]);
        let batch = [imported(transfer(1, 1, 2, 3), 3), imported(pending(2, 1, 2, 4, 0), 4)];
        assert_eq!(ledger.create_transfers(&batch), [T::Created, T::Created]);
        assert_eq!(ledger.balances(1), [4, 3, 0, 0]);
        assert_eq!(ledger.create_transfers(&[imported(post(3, 2, 4), 5)]), [T::Created]);
        assert_eq!(ledger.balances(1), [0, 7, 0, 0]);
        let stamps: Vec<u64> = (1..=3).map(|id| ledger.transfer(id).timestamp).collect();
        assert_eq!(stamps, [3, 4, 5]);
        assert_eq!(ledger.account(1).timestamp, 1);
        // Imports go into the past, but later batches still move forward.
        ledger.create_transfers_ok(&[transfer(4, 1, 2, 1)]);
        assert!(ledger.transfer(4).timestamp > 10);
    }

    #[test]
    fn resubmitted_imports_exist_whatever_their_timestamp() {
        let mut ledger = Ledger::new();
        ledger.set_clock(10);
        let batch = [
            imported_account(1, 2),
            imported_account(2, 1),
            imported_account(2, 3),
            imported_account(3, 9),
        ];
        assert_eq!(
            ledger.create_accounts(&batch),
            [A::Created, A::ImportedEventTimestampMustNotRegress, A::Created, A::Created]
        );
        let batch = [
            imported_account(2, 1),
            imported_account(2, 3),
            imported_account(2, 4),
            imported_account(3, 9),
        ];
        assert_eq!(ledger.create_accounts(&batch), [A::Exists; 4]);

        let t = transfer(1, 1, 2, 3);
        let batch = [
            imported(t, 2),
            imported(t, 3),
            imported(transfer(1, 3, 2, 3), 4),
            imported(transfer(1, 1, 3, 3), 4),
            imported(t, 4),
            imported(transfer(2, 1, 2, 3), 3),
            imported(transfer(2, 1, 2, 3), 5),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [
                T::ImportedEventTimestampMustNotRegress,
                T::ImportedEventTimestampMustNotRegress,
                T::ImportedEventTimestampMustPostdateDebitAccount,
                T::ImportedEventTimestampMustPostdateCreditAccount,
                T::Created,
                T::ImportedEventTimestampMustNotRegress,
                T::Created,
            ]
        );
        let batch = [
            imported(transfer(2, 1, 2, 3), 4),
            imported(transfer(2, 1, 2, 3), 5),
            imported(transfer(2, 1, 2, 3), 6),
        ];
        assert_eq!(ledger.create_transfers(&batch), [T::Exists; 3]);
        // A new account may not take a transfer's timestamp.
        assert_eq!(ledger.create_transfers(&[imported(transfer(3, 1, 2, 3), 10)]), [T::Created]);
        assert_eq!(
            ledger.create_accounts(&[imported_account(4, 10)]),
            [A::ImportedEventTimestampMustNotRegress]
        );
    }

    #[test]
    fn a_rolled_back_import_does_not_count_as_the_newest() {
        let mut ledger = Ledger::new();
        ledger.set_clock(100);
        let batch = [
            linked_account(imported_account(1, 1)),
            linked_account(imported_account(2, 2)),
            imported_account(3, 0),
        ];
        assert_eq!(
            ledger.create_accounts(&batch),
            [A::LinkedEventFailed, A::LinkedEventFailed, A::ImportedEventTimestampOutOfRange]
        );
        let batch = [
            linked_account(imported_account(1, 1)),
            linked_account(imported_account(2, 2)),
            imported_account(3, 3),
        ];
        assert_eq!(ledger.create_accounts(&batch), [A::Created; 3]);

        let batch = [
            linked(imported(transfer(1, 1, 2, 3), 4)),
            linked(imported(transfer(2, 1, 2, 3), 5)),
            imported(transfer(3, 1, 2, 3), 0),
        ];
        assert_eq!(
            ledger.create_transfers(&batch),
            [T::LinkedEventFailed, T::LinkedEventFailed, T::ImportedEventTimestampOutOfRange]
        );
        let batch = [
            linked(imported(transfer(1, 1, 2, 3), 4)),
            linked(imported(transfer(2, 1, 2, 3), 5)),
            imported(transfer(3, 1, 2, 3), 6),
        ];
        assert_eq!(ledger.create_transfers(&batch), [T::Created; 3]);
        assert_eq!(ledger.balances(1), [0, 9, 0, 0]);
    }

    #[test]
    fn imported_holds_never_expire() {
        let mut ledger = Ledger::new();
        ledger.set_clock(10);
        ledger.create_accounts_ok(&[imported_account(1, 1), imported_account(2, 2)]);
        assert_eq!(ledger.create_transfers(&[imported(pending(1, 1, 2, 5, 0), 3)]), [T::Created]);
        ledger.advance_s(1_000);
        assert_eq!(ledger.expire(), 0);
        assert_eq!(ledger.create_transfers(&[void(2, 1)]), [T::Created]);
    }
}

/// Transfers that left memory for the history store: the ledger asks for what a batch needs,
/// and a pending transfer stays in memory until it is settled.
mod tiers {
    use super::*;
    use huifu_ledger::{ColdTransfer, StateMachine};
    use std::collections::HashMap;

    /// Fetches what `batch` needs from `store`, applies it, and moves out all it can.
    fn apply(
        ledger: &mut Ledger,
        store: &mut HashMap<u128, ColdTransfer>,
        batch: &[Transfer],
    ) -> Vec<T> {
        let mut ids = Vec::new();
        ledger.sm.cold_ids(batch, &mut ids);
        for id in ids {
            if let Some(cold) = store.get(&id) {
                ledger.sm.fetched_insert(*cold);
            }
        }
        let results = ledger.create_transfers(batch);
        ledger.sm.fetched_clear();
        let mut out = Vec::new();
        ledger.sm.evict(0, |_| false, &mut out);
        for cold in out {
            store.insert(cold.transfer.id, cold);
        }
        results
    }

    #[test]
    fn stored_transfers_still_answer_for_their_ids() {
        let mut ledger = Ledger::new();
        ledger.sm = StateMachine::with_chunk_shift(1);
        ledger.create_accounts_ok(&[account(1), account(2)]);
        let mut store = HashMap::new();
        let batch = [transfer(1, 1, 2, 5), pending(2, 1, 2, 7, 0), pending(3, 1, 2, 9, 0)];
        assert_eq!(apply(&mut ledger, &mut store, &batch), [T::Created; 3]);
        assert_eq!(apply(&mut ledger, &mut store, &[post(4, 3, AMOUNT_MAX)]), [T::Created]);
        // The first chunk (1 and 2) left the log; 2 is still pending, so it stays in memory.
        assert!(ledger.sm.horizon() > 0);
        assert!(ledger.sm.lookup_transfer(1).is_none());
        assert_eq!(store[&1].transfer.amount, 5);
        assert_eq!(ledger.sm.pending_status(2), Some(PendingStatus::Pending));
        // A retry of a stored transfer is found, with its differences.
        assert_eq!(apply(&mut ledger, &mut store, &[transfer(1, 1, 2, 5)]), [T::Exists]);
        assert_eq!(
            apply(&mut ledger, &mut store, &[transfer(1, 1, 2, 6)]),
            [T::ExistsWithDifferentAmount]
        );
        // The pinned hold is posted from memory; once settled it leaves with its status.
        assert_eq!(apply(&mut ledger, &mut store, &[post(5, 2, AMOUNT_MAX)]), [T::Created]);
        assert_eq!(apply(&mut ledger, &mut store, &[transfer(6, 1, 2, 1)]), [T::Created]);
        assert!(ledger.sm.lookup_transfer(2).is_none());
        assert_eq!(store[&2].pending, Some(PendingStatus::Posted));
        assert_eq!(
            apply(&mut ledger, &mut store, &[void(7, 2)]),
            [T::PendingTransferAlreadyPosted]
        );
        assert_eq!(apply(&mut ledger, &mut store, &[post(5, 2, AMOUNT_MAX)]), [T::Exists]);
        assert_eq!(ledger.balances(1), [0, 22, 0, 0]);
    }

    #[test]
    fn a_store_ahead_of_the_state_is_not_believed() {
        let mut ledger = Ledger::new();
        ledger.sm = StateMachine::with_chunk_shift(1);
        ledger.create_accounts_ok(&[account(1), account(2)]);
        let horizon = ledger.sm.horizon();
        // A record from a future this state has not reached (written before a crash).
        ledger.sm.fetched_insert(ColdTransfer {
            transfer: Transfer { timestamp: u64::MAX >> 2, ..transfer(1, 1, 2, 5) },
            pending: None,
        });
        assert_eq!(horizon, 0);
        assert_eq!(ledger.create_transfers(&[transfer(1, 1, 2, 5)]), [T::Created]);
    }
}
