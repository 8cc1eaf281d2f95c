//! Properties over random histories of batches:
//!
//! - conservation: debits equal credits (pending and posted), the running totals equal the sum of
//!   the accounts, and no limited account ever breaks its limit;
//! - agreement with a reference model: a deliberately plain restatement of the ledger's rules
//!   (maps, clones for linked chains, no indexes), which must give the same result for every
//!   event and the same accounts, transfers and pending statuses after every step;
//! - snapshots: a state read back from a snapshot behaves exactly like the original, and writes
//!   the same bytes;
//! - memory tiers: a ledger that moves old transfers out to a history store (a map here) after
//!   every step, and fetches what each batch needs before applying it, gives the same results
//!   as one that keeps everything, also when restarted from a snapshot with a store that already
//!   holds a later future.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use huifu_ledger::constants::{AMOUNT_MAX, EXPIRE_EVENTS_MAX, NS_PER_S, TIMESTAMP_MAX};
use huifu_ledger::{
    Account, AccountFilter, AccountFlags as AF, ColdTransfer, CreateAccountResult as A,
    CreateTransferResult as T, PendingStatus, StateMachine, Totals, Transfer, TransferFlags as TF,
};
use proptest::prelude::*;
use support::*;

/// The reference model. Each rule is written out in the order the reference ledger checks it,
/// with no shortcuts: a linked chain runs on a clone that is kept or thrown away whole.
mod model {
    use super::*;

    #[derive(Clone, Debug, Default)]
    pub struct Model {
        pub accounts: BTreeMap<u128, Account>,
        pub transfers: BTreeMap<u128, Transfer>,
        /// The status of every pending transfer, by its id.
        pub status: BTreeMap<u128, PendingStatus>,
        /// Ids of transfers that failed transiently.
        pub failed: BTreeSet<u128>,
    }

    /// What the batch loop needs to know of an event.
    pub trait Event: Copy {
        type R: Copy + PartialEq + std::fmt::Debug;
        const CREATED: Self::R;
        const LINKED_EVENT_FAILED: Self::R;
        const LINKED_EVENT_CHAIN_OPEN: Self::R;
        fn linked(&self) -> bool;
        fn id(&self) -> u128;
        fn apply(&self, model: &mut Model, timestamp: u64) -> Self::R;
        fn transient(result: Self::R) -> bool;
    }

    impl Event for Account {
        type R = A;
        const CREATED: A = A::Created;
        const LINKED_EVENT_FAILED: A = A::LinkedEventFailed;
        const LINKED_EVENT_CHAIN_OPEN: A = A::LinkedEventChainOpen;
        fn linked(&self) -> bool {
            self.flags.contains(AF::LINKED)
        }
        fn id(&self) -> u128 {
            self.id
        }
        fn apply(&self, model: &mut Model, timestamp: u64) -> A {
            model.create_account(timestamp, self)
        }
        fn transient(_: A) -> bool {
            false
        }
    }

    impl Event for Transfer {
        type R = T;
        const CREATED: T = T::Created;
        const LINKED_EVENT_FAILED: T = T::LinkedEventFailed;
        const LINKED_EVENT_CHAIN_OPEN: T = T::LinkedEventChainOpen;
        fn linked(&self) -> bool {
            self.flags.contains(TF::LINKED)
        }
        fn id(&self) -> u128 {
            self.id
        }
        fn apply(&self, model: &mut Model, timestamp: u64) -> T {
            model.create_transfer(timestamp, self)
        }
        fn transient(result: T) -> bool {
            matches!(
                result,
                T::DebitAccountNotFound
                    | T::CreditAccountNotFound
                    | T::PendingTransferNotFound
                    | T::ExceedsCredits
                    | T::ExceedsDebits
                    | T::DebitAccountAlreadyClosed
                    | T::CreditAccountAlreadyClosed
            )
        }
    }

    impl Model {
        /// Runs a batch (never an import: the generators make none). The batch is cut into
        /// groups: a run of linked events with the event that ends it, or a lone event. A group
        /// runs on a clone, kept if every event succeeded and dropped otherwise.
        pub fn execute<E: Event>(&mut self, timestamp: u64, batch: &[E]) -> Vec<E::R> {
            let n = batch.len();
            let time = |i: usize| timestamp - n as u64 + i as u64 + 1;
            let mut results = Vec::with_capacity(n);
            let mut start = 0;
            while start < n {
                let mut end = start;
                while end < n - 1 && batch[end].linked() {
                    end += 1;
                }
                // `start..=end` is a group; it is open when its last event is linked.
                let open = batch[end].linked();
                let mut scratch = self.clone();
                let mut failure = None;
                for (i, event) in batch.iter().enumerate().take(end + 1).skip(start) {
                    let result = if open && i == end {
                        E::LINKED_EVENT_CHAIN_OPEN
                    } else {
                        event.apply(&mut scratch, time(i))
                    };
                    if result != E::CREATED {
                        failure = Some((i, result));
                        break;
                    }
                }
                match failure {
                    None => {
                        *self = scratch;
                        results.extend((start..=end).map(|_| E::CREATED));
                    }
                    Some((failed, result)) => {
                        for i in start..=end {
                            results.push(if i == failed {
                                result
                            } else if open && i == end {
                                E::LINKED_EVENT_CHAIN_OPEN
                            } else {
                                E::LINKED_EVENT_FAILED
                            });
                        }
                        if E::transient(result) {
                            self.failed.insert(batch[failed].id());
                        }
                    }
                }
                start = end + 1;
            }
            results
        }

        fn create_account(&mut self, timestamp: u64, a: &Account) -> A {
            if a.timestamp != 0 {
                return A::TimestampMustBeZero;
            }
            if a.reserved != 0 {
                return A::ReservedField;
            }
            if a.flags.0 & !AF::ALL.0 != 0 {
                return A::ReservedFlag;
            }
            if a.id == 0 {
                return A::IdMustNotBeZero;
            }
            if a.id == u128::MAX {
                return A::IdMustNotBeIntMax;
            }
            if let Some(e) = self.accounts.get(&a.id) {
                return if a.flags != e.flags {
                    A::ExistsWithDifferentFlags
                } else if a.user_data_128 != e.user_data_128 {
                    A::ExistsWithDifferentUserData128
                } else if a.user_data_64 != e.user_data_64 {
                    A::ExistsWithDifferentUserData64
                } else if a.user_data_32 != e.user_data_32 {
                    A::ExistsWithDifferentUserData32
                } else if a.ledger != e.ledger {
                    A::ExistsWithDifferentLedger
                } else if a.code != e.code {
                    A::ExistsWithDifferentCode
                } else {
                    A::Exists
                };
            }
            if a.flags.contains(AF::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && a.flags.contains(AF::CREDITS_MUST_NOT_EXCEED_DEBITS)
            {
                return A::FlagsAreMutuallyExclusive;
            }
            if a.debits_pending != 0 {
                return A::DebitsPendingMustBeZero;
            }
            if a.debits_posted != 0 {
                return A::DebitsPostedMustBeZero;
            }
            if a.credits_pending != 0 {
                return A::CreditsPendingMustBeZero;
            }
            if a.credits_posted != 0 {
                return A::CreditsPostedMustBeZero;
            }
            if a.ledger == 0 {
                return A::LedgerMustNotBeZero;
            }
            if a.code == 0 {
                return A::CodeMustNotBeZero;
            }
            self.accounts.insert(a.id, Account { timestamp, ..*a });
            A::Created
        }

        fn create_transfer(&mut self, timestamp: u64, t: &Transfer) -> T {
            let post = t.flags.contains(TF::POST_PENDING_TRANSFER);
            let void = t.flags.contains(TF::VOID_PENDING_TRANSFER);
            if t.timestamp != 0 {
                return T::TimestampMustBeZero;
            }
            if t.flags.0 & !TF::ALL.0 != 0 {
                return T::ReservedFlag;
            }
            if t.id == 0 {
                return T::IdMustNotBeZero;
            }
            if t.id == u128::MAX {
                return T::IdMustNotBeIntMax;
            }
            if let Some(e) = self.transfers.get(&t.id) {
                return self.transfer_exists(t, e);
            }
            if self.failed.contains(&t.id) {
                return T::IdAlreadyFailed;
            }
            if post || void {
                return self.post_or_void(timestamp, t);
            }
            if t.debit_account_id == 0 {
                return T::DebitAccountIdMustNotBeZero;
            }
            if t.debit_account_id == u128::MAX {
                return T::DebitAccountIdMustNotBeIntMax;
            }
            if t.credit_account_id == 0 {
                return T::CreditAccountIdMustNotBeZero;
            }
            if t.credit_account_id == u128::MAX {
                return T::CreditAccountIdMustNotBeIntMax;
            }
            if t.debit_account_id == t.credit_account_id {
                return T::AccountsMustBeDifferent;
            }
            if t.pending_id != 0 {
                return T::PendingIdMustBeZero;
            }
            let pending = t.flags.contains(TF::PENDING);
            let closing_debit = t.flags.contains(TF::CLOSING_DEBIT);
            let closing_credit = t.flags.contains(TF::CLOSING_CREDIT);
            if !pending && t.timeout != 0 {
                return T::TimeoutReservedForPendingTransfer;
            }
            if !pending && (closing_debit || closing_credit) {
                return T::ClosingTransferMustBePending;
            }
            if t.ledger == 0 {
                return T::LedgerMustNotBeZero;
            }
            if t.code == 0 {
                return T::CodeMustNotBeZero;
            }
            let Some(mut dr) = self.accounts.get(&t.debit_account_id).copied() else {
                return T::DebitAccountNotFound;
            };
            let Some(mut cr) = self.accounts.get(&t.credit_account_id).copied() else {
                return T::CreditAccountNotFound;
            };
            if dr.ledger != cr.ledger {
                return T::AccountsMustHaveTheSameLedger;
            }
            if t.ledger != dr.ledger {
                return T::TransferMustHaveTheSameLedgerAsAccounts;
            }
            if dr.flags.contains(AF::CLOSED) {
                return T::DebitAccountAlreadyClosed;
            }
            if cr.flags.contains(AF::CLOSED) {
                return T::CreditAccountAlreadyClosed;
            }
            let mut amount = t.amount;
            if t.flags.contains(TF::BALANCING_DEBIT) {
                let available =
                    dr.credits_posted.saturating_sub(dr.debits_posted + dr.debits_pending);
                amount = amount.min(available);
            }
            if t.flags.contains(TF::BALANCING_CREDIT) {
                let available =
                    cr.debits_posted.saturating_sub(cr.credits_posted + cr.credits_pending);
                amount = amount.min(available);
            }
            let fits = |a: u128, b: u128| a.checked_add(b).is_some();
            if pending && !fits(amount, dr.debits_pending) {
                return T::OverflowsDebitsPending;
            }
            if pending && !fits(amount, cr.credits_pending) {
                return T::OverflowsCreditsPending;
            }
            if !fits(amount, dr.debits_posted) {
                return T::OverflowsDebitsPosted;
            }
            if !fits(amount, cr.credits_posted) {
                return T::OverflowsCreditsPosted;
            }
            if !fits(amount, dr.debits_pending + dr.debits_posted) {
                return T::OverflowsDebits;
            }
            if !fits(amount, cr.credits_pending + cr.credits_posted) {
                return T::OverflowsCredits;
            }
            if timestamp + u64::from(t.timeout) * NS_PER_S > TIMESTAMP_MAX {
                return T::OverflowsTimeout;
            }
            if dr.flags.contains(AF::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && dr.debits_pending + dr.debits_posted + amount > dr.credits_posted
            {
                return T::ExceedsCredits;
            }
            if cr.flags.contains(AF::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && cr.credits_pending + cr.credits_posted + amount > cr.debits_posted
            {
                return T::ExceedsDebits;
            }
            if pending {
                dr.debits_pending += amount;
                cr.credits_pending += amount;
                self.status.insert(t.id, PendingStatus::Pending);
            } else {
                dr.debits_posted += amount;
                cr.credits_posted += amount;
            }
            if closing_debit {
                dr.flags.set(AF::CLOSED, true);
            }
            if closing_credit {
                cr.flags.set(AF::CLOSED, true);
            }
            self.accounts.insert(dr.id, dr);
            self.accounts.insert(cr.id, cr);
            self.transfers.insert(t.id, Transfer { amount, timestamp, ..*t });
            T::Created
        }

        fn transfer_exists(&self, t: &Transfer, e: &Transfer) -> T {
            if t.flags != e.flags {
                return T::ExistsWithDifferentFlags;
            }
            if t.pending_id != e.pending_id {
                return T::ExistsWithDifferentPendingId;
            }
            if t.timeout != e.timeout {
                return T::ExistsWithDifferentTimeout;
            }
            let post = t.flags.contains(TF::POST_PENDING_TRANSFER);
            let void = t.flags.contains(TF::VOID_PENDING_TRANSFER);
            if post || void {
                let p = &self.transfers[&t.pending_id];
                if t.debit_account_id != 0 && t.debit_account_id != e.debit_account_id {
                    return T::ExistsWithDifferentDebitAccountId;
                }
                if t.credit_account_id != 0 && t.credit_account_id != e.credit_account_id {
                    return T::ExistsWithDifferentCreditAccountId;
                }
                // A void of zero and a post of AMOUNT_MAX stand for the whole pending amount.
                let whole = (void && t.amount == 0) || (post && t.amount == AMOUNT_MAX);
                let amount_differs =
                    if whole { e.amount != p.amount } else { t.amount != e.amount };
                if amount_differs {
                    return T::ExistsWithDifferentAmount;
                }
                // Zero stands for the pending transfer's value.
                let or_pending =
                    |given: u128, pending: u128| if given == 0 { pending } else { given };
                if or_pending(t.user_data_128, p.user_data_128) != e.user_data_128 {
                    return T::ExistsWithDifferentUserData128;
                }
                if or_pending(t.user_data_64.into(), p.user_data_64.into())
                    != u128::from(e.user_data_64)
                {
                    return T::ExistsWithDifferentUserData64;
                }
                if or_pending(t.user_data_32.into(), p.user_data_32.into())
                    != u128::from(e.user_data_32)
                {
                    return T::ExistsWithDifferentUserData32;
                }
                if t.ledger != 0 && t.ledger != e.ledger {
                    return T::ExistsWithDifferentLedger;
                }
                if t.code != 0 && t.code != e.code {
                    return T::ExistsWithDifferentCode;
                }
                return T::Exists;
            }
            if t.debit_account_id != e.debit_account_id {
                return T::ExistsWithDifferentDebitAccountId;
            }
            if t.credit_account_id != e.credit_account_id {
                return T::ExistsWithDifferentCreditAccountId;
            }
            let balancing =
                t.flags.contains(TF::BALANCING_DEBIT) || t.flags.contains(TF::BALANCING_CREDIT);
            if (balancing && t.amount < e.amount) || (!balancing && t.amount != e.amount) {
                return T::ExistsWithDifferentAmount;
            }
            if t.user_data_128 != e.user_data_128 {
                return T::ExistsWithDifferentUserData128;
            }
            if t.user_data_64 != e.user_data_64 {
                return T::ExistsWithDifferentUserData64;
            }
            if t.user_data_32 != e.user_data_32 {
                return T::ExistsWithDifferentUserData32;
            }
            if t.ledger != e.ledger {
                return T::ExistsWithDifferentLedger;
            }
            if t.code != e.code {
                return T::ExistsWithDifferentCode;
            }
            T::Exists
        }

        fn post_or_void(&mut self, timestamp: u64, t: &Transfer) -> T {
            let post = t.flags.contains(TF::POST_PENDING_TRANSFER);
            let void = t.flags.contains(TF::VOID_PENDING_TRANSFER);
            if post && void {
                return T::FlagsAreMutuallyExclusive;
            }
            for flag in [
                TF::PENDING,
                TF::BALANCING_DEBIT,
                TF::BALANCING_CREDIT,
                TF::CLOSING_DEBIT,
                TF::CLOSING_CREDIT,
            ] {
                if t.flags.contains(flag) {
                    return T::FlagsAreMutuallyExclusive;
                }
            }
            if t.pending_id == 0 {
                return T::PendingIdMustNotBeZero;
            }
            if t.pending_id == u128::MAX {
                return T::PendingIdMustNotBeIntMax;
            }
            if t.pending_id == t.id {
                return T::PendingIdMustBeDifferent;
            }
            if t.timeout != 0 {
                return T::TimeoutReservedForPendingTransfer;
            }
            let Some(p) = self.transfers.get(&t.pending_id).copied() else {
                return T::PendingTransferNotFound;
            };
            if !p.flags.contains(TF::PENDING) {
                return T::PendingTransferNotPending;
            }
            if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
                return T::PendingTransferHasDifferentDebitAccountId;
            }
            if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
                return T::PendingTransferHasDifferentCreditAccountId;
            }
            if t.ledger != 0 && t.ledger != p.ledger {
                return T::PendingTransferHasDifferentLedger;
            }
            if t.code != 0 && t.code != p.code {
                return T::PendingTransferHasDifferentCode;
            }
            let amount = if (void && t.amount == 0) || (post && t.amount == AMOUNT_MAX) {
                p.amount
            } else {
                t.amount
            };
            if amount > p.amount {
                return T::ExceedsPendingTransferAmount;
            }
            if void && amount < p.amount {
                return T::PendingTransferHasDifferentAmount;
            }
            match self.status[&p.id] {
                PendingStatus::Pending => {}
                PendingStatus::Posted => return T::PendingTransferAlreadyPosted,
                PendingStatus::Voided => return T::PendingTransferAlreadyVoided,
                PendingStatus::Expired => return T::PendingTransferExpired,
            }
            if p.timeout != 0 && p.timestamp + u64::from(p.timeout) * NS_PER_S <= timestamp {
                return T::PendingTransferExpired;
            }
            let mut dr = self.accounts[&p.debit_account_id];
            let mut cr = self.accounts[&p.credit_account_id];
            if !void && dr.flags.contains(AF::CLOSED) {
                return T::DebitAccountAlreadyClosed;
            }
            if !void && cr.flags.contains(AF::CLOSED) {
                return T::CreditAccountAlreadyClosed;
            }
            dr.debits_pending -= p.amount;
            cr.credits_pending -= p.amount;
            if post {
                dr.debits_posted += amount;
                cr.credits_posted += amount;
                self.status.insert(p.id, PendingStatus::Posted);
            } else {
                if p.flags.contains(TF::CLOSING_DEBIT) {
                    dr.flags.set(AF::CLOSED, false);
                }
                if p.flags.contains(TF::CLOSING_CREDIT) {
                    cr.flags.set(AF::CLOSED, false);
                }
                self.status.insert(p.id, PendingStatus::Voided);
            }
            self.accounts.insert(dr.id, dr);
            self.accounts.insert(cr.id, cr);
            let pick = |given: u128, pending: u128| if given != 0 { given } else { pending };
            let stored = Transfer {
                id: t.id,
                debit_account_id: p.debit_account_id,
                credit_account_id: p.credit_account_id,
                amount,
                pending_id: p.id,
                user_data_128: pick(t.user_data_128, p.user_data_128),
                user_data_64: if t.user_data_64 != 0 { t.user_data_64 } else { p.user_data_64 },
                user_data_32: if t.user_data_32 != 0 { t.user_data_32 } else { p.user_data_32 },
                timeout: 0,
                ledger: p.ledger,
                code: p.code,
                flags: t.flags,
                timestamp,
            };
            self.transfers.insert(t.id, stored);
            T::Created
        }

        /// Expires every pending transfer due by `timestamp - EXPIRE_EVENTS_MAX + 1`, earliest
        /// deadline first (ties by creation).
        pub fn expire(&mut self, timestamp: u64) -> usize {
            let cutoff = timestamp - EXPIRE_EVENTS_MAX as u64 + 1;
            let mut due: Vec<(u64, u64, u128)> = self
                .transfers
                .values()
                .filter(|p| {
                    p.timeout > 0 && self.status.get(&p.id) == Some(&PendingStatus::Pending)
                })
                .map(|p| (p.timestamp + u64::from(p.timeout) * NS_PER_S, p.timestamp, p.id))
                .filter(|&(deadline, _, _)| deadline <= cutoff)
                .collect();
            due.sort_unstable();
            due.truncate(EXPIRE_EVENTS_MAX);
            for &(_, _, id) in &due {
                let p = self.transfers[&id];
                let mut dr = self.accounts[&p.debit_account_id];
                dr.debits_pending -= p.amount;
                if p.flags.contains(TF::CLOSING_DEBIT) {
                    dr.flags.set(AF::CLOSED, false);
                }
                self.accounts.insert(dr.id, dr);
                let mut cr = self.accounts[&p.credit_account_id];
                cr.credits_pending -= p.amount;
                if p.flags.contains(TF::CLOSING_CREDIT) {
                    cr.flags.set(AF::CLOSED, false);
                }
                self.accounts.insert(cr.id, cr);
                self.status.insert(id, PendingStatus::Expired);
            }
            due.len()
        }
    }
}

use model::Model;

/// Accounts draw ids from 1..=ACCOUNTS (and a few invalid ones). Transfers draw ids from
/// 1..=TRANSFERS, except holds (pending transfers), which `resolve` numbers from HOLD_IDS on so
/// that posts and voids can point at recent ones; a post or void whose pending id is drawn in
/// 1..=RECENT points at one of the RECENT latest holds.
const ACCOUNTS: u128 = 6;
const TRANSFERS: u128 = 160;
const HOLD_IDS: u128 = 1_000;
const RECENT: u128 = 3;

#[derive(Clone, Debug)]
enum Op {
    Accounts(Vec<Account>),
    Transfers(Vec<Transfer>),
    /// Submits again the n-th earlier batch of transfers (modulo their count), unchanged.
    Resubmit(usize),
    /// Moves the clock forward by this many nanoseconds.
    Advance(u64),
    Expire,
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        12 => 0..=20u128,
        1 => Just(AMOUNT_MAX),
        1 => Just(AMOUNT_MAX - 1),
        1 => Just(1u128 << 127),
    ]
}

fn account_strategy() -> impl Strategy<Value = Account> {
    let flags = (
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.03),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(linked, debits_limited, credits_limited, closed, history)| {
            let mut flags = AF::default();
            flags.set(AF::LINKED, linked);
            flags.set(AF::DEBITS_MUST_NOT_EXCEED_CREDITS, debits_limited);
            flags.set(AF::CREDITS_MUST_NOT_EXCEED_DEBITS, credits_limited);
            flags.set(AF::CLOSED, closed);
            flags.set(AF::HISTORY, history);
            flags
        });
    (
        prop_oneof![20 => 1..=ACCOUNTS, 1 => Just(0u128), 1 => Just(u128::MAX)],
        flags,
        prop_oneof![12 => Just(1u32), 2 => Just(2u32), 1 => Just(0u32)],
        prop_oneof![12 => Just(1u16), 1 => Just(0u16)],
        0..2u128,
        prop_oneof![30 => Just(0u128), 1 => Just(1u128)],
    )
        .prop_map(|(id, flags, ledger, code, user_data, balance)| Account {
            id,
            flags,
            ledger,
            code,
            user_data_128: user_data,
            debits_posted: balance,
            ..Account::default()
        })
}

/// What a random transfer is meant to be; the other fields are then drawn to suit it.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    Pending,
    Post,
    Void,
    Balancing,
    Closing,
    /// Any combination of the defined flags, and sometimes a reserved one.
    Anything,
}

fn transfer_strategy() -> impl Strategy<Value = Transfer> {
    let kind = prop_oneof![
        6 => Just(Kind::Plain),
        5 => Just(Kind::Pending),
        4 => Just(Kind::Post),
        2 => Just(Kind::Void),
        2 => Just(Kind::Balancing),
        1 => Just(Kind::Closing),
        1 => Just(Kind::Anything),
    ];
    let account_id = || prop_oneof![40 => 1..=ACCOUNTS, 1 => Just(ACCOUNTS + 1), 1 => Just(0u128)];
    (
        kind,
        (0..1_000u128, prop::bool::weighted(0.02)),
        // The credit account is mostly another account than the debit one.
        (account_id(), prop_oneof![20 => 1..ACCOUNTS, 1 => Just(0u128)], account_id()),
        amount(),
        prop_oneof![12 => 1..=RECENT, 2 => RECENT + 1..=TRANSFERS, 1 => Just(TRANSFERS + 1)],
        prop_oneof![3 => Just(0u32), 1 => 1..=2u32],
        (
            prop_oneof![30 => Just(1u32), 1 => Just(2u32), 1 => Just(0u32)],
            prop_oneof![30 => Just(1u16), 1 => Just(0u16)],
        ),
        (0..3u128, 0..2u64),
        prop::bool::weighted(0.12),
        (any::<u16>(), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                kind,
                (raw_id, zero_id),
                (debit, offset, other),
                amount,
                pending_id,
                timeout,
                (ledger, code),
                (u128_, u64_),
                linked,
                (bits, reserved),
            )| {
                let credit = match (debit, offset) {
                    (1..=ACCOUNTS, 1..) => (debit + offset - 1) % ACCOUNTS + 1,
                    _ => other,
                };
                let id = if zero_id { 0 } else { 1 + raw_id % TRANSFERS };
                let base = Transfer {
                    id,
                    debit_account_id: debit,
                    credit_account_id: credit,
                    amount,
                    user_data_128: u128_,
                    user_data_64: u64_,
                    ledger,
                    code,
                    ..Transfer::default()
                };
                let mut t = match kind {
                    Kind::Plain => base,
                    Kind::Pending => Transfer { flags: TF::PENDING, timeout, ..base },
                    // Posts and voids mostly leave the optional fields to the pending transfer.
                    Kind::Post | Kind::Void => Transfer {
                        debit_account_id: if bits % 4 == 0 { debit } else { 0 },
                        credit_account_id: if bits % 5 == 0 { credit } else { 0 },
                        amount: match (kind, bits % 3) {
                            (Kind::Post, 0) => AMOUNT_MAX,
                            (Kind::Void, 0 | 1) => 0,
                            _ => amount,
                        },
                        pending_id,
                        ledger: if bits % 6 == 0 { ledger } else { 0 },
                        code: if bits % 7 == 0 { code } else { 0 },
                        flags: if matches!(kind, Kind::Post) {
                            TF::POST_PENDING_TRANSFER
                        } else {
                            TF::VOID_PENDING_TRANSFER
                        },
                        timeout: if bits % 29 == 0 { 1 } else { 0 },
                        ..base
                    },
                    Kind::Balancing => {
                        let side = [
                            TF::BALANCING_DEBIT,
                            TF::BALANCING_CREDIT,
                            TF::BALANCING_DEBIT | TF::BALANCING_CREDIT,
                        ][bits as usize % 3];
                        let hold = if bits % 2 == 0 { TF::PENDING } else { TF::default() };
                        let timeout = if hold.contains(TF::PENDING) { timeout } else { 0 };
                        Transfer { flags: side | hold, timeout, ..base }
                    }
                    Kind::Closing => {
                        let side = [
                            TF::CLOSING_DEBIT,
                            TF::CLOSING_CREDIT,
                            TF::CLOSING_DEBIT | TF::CLOSING_CREDIT,
                        ][bits as usize % 3];
                        // Mostly with a timeout, so that the account reopens by itself.
                        let hold = if bits % 8 == 0 { TF::default() } else { TF::PENDING };
                        let timeout = if bits % 5 == 0 { 0 } else { timeout.max(1) };
                        Transfer { flags: side | hold, timeout, amount: amount % 3, ..base }
                    }
                    Kind::Anything => {
                        let mut flags = TF(bits & 0xfe & !TF::IMPORTED.0);
                        if reserved {
                            flags = TF(flags.0 | 1 << 9);
                        }
                        Transfer {
                            flags,
                            pending_id: if bits % 2 == 0 { pending_id } else { 0 },
                            timeout,
                            ..base
                        }
                    }
                };
                t.flags.set(TF::LINKED, linked);
                t
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => prop::collection::vec(account_strategy(), 1..=4).prop_map(Op::Accounts),
        12 => prop::collection::vec(transfer_strategy(), 1..=8).prop_map(Op::Transfers),
        2 => any::<usize>().prop_map(Op::Resubmit),
        3 => prop_oneof![Just(1u64), Just(NS_PER_S / 2), Just(NS_PER_S), Just(2 * NS_PER_S)].prop_map(Op::Advance),
        2 => Just(Op::Expire),
    ]
}

/// A history: accounts to start with (so transfers have something to move between), then
/// random operations.
fn history() -> impl Strategy<Value = (Vec<Account>, Vec<Op>)> {
    let start = prop::collection::vec(
        (
            prop_oneof![
                4 => Just(AF::default()),
                1 => Just(AF::DEBITS_MUST_NOT_EXCEED_CREDITS),
                1 => Just(AF::CREDITS_MUST_NOT_EXCEED_DEBITS),
            ],
            prop_oneof![30 => Just(1u32), 1 => Just(2u32)],
        ),
        ACCOUNTS as usize,
    )
    .prop_map(|accounts| {
        accounts
            .into_iter()
            .zip(1..)
            .map(|((flags, ledger), id)| Account {
                id,
                flags,
                ledger,
                code: 1,
                ..Account::default()
            })
            .collect()
    });
    (start, prop::collection::vec(op_strategy(), 1..40).prop_map(|ops| resolve(&ops)))
}

/// Numbers the holds, points posts and voids at recent holds, and turns `Resubmit` into the
/// batch it repeats.
fn resolve(ops: &[Op]) -> Vec<Op> {
    let mut batches: Vec<Vec<Transfer>> = Vec::new();
    let mut holds: Vec<u128> = Vec::new();
    let mut resolved = Vec::with_capacity(ops.len());
    for op in ops {
        let op = match op {
            Op::Resubmit(n) if !batches.is_empty() => {
                Op::Transfers(batches[n % batches.len()].clone())
            }
            Op::Resubmit(_) => continue,
            Op::Transfers(batch) => Op::Transfers(
                batch
                    .iter()
                    .map(|t| {
                        let resolves = t.flags.contains(TF::POST_PENDING_TRANSFER)
                            || t.flags.contains(TF::VOID_PENDING_TRANSFER);
                        let mut t = *t;
                        if t.flags.contains(TF::PENDING) && !resolves && t.id != 0 {
                            t.id = HOLD_IDS + holds.len() as u128;
                            holds.push(t.id);
                        } else if resolves
                            && (1..=RECENT).contains(&t.pending_id)
                            && !holds.is_empty()
                        {
                            let back = (t.pending_id as usize - 1).min(holds.len() - 1);
                            t.pending_id = holds[holds.len() - 1 - back];
                        }
                        t
                    })
                    .collect(),
            ),
            op => op.clone(),
        };
        if let Op::Transfers(batch) = &op {
            batches.push(batch.clone());
        }
        resolved.push(op);
    }
    resolved
}

/// Applies one operation to the ledger; returns the results, if it was a batch.
fn apply(ledger: &mut Ledger, op: &Op) -> Option<Results> {
    match op {
        Op::Accounts(batch) => Some(Results::Accounts(ledger.create_accounts(batch))),
        Op::Transfers(batch) => Some(Results::Transfers(ledger.create_transfers(batch))),
        Op::Resubmit(_) => unreachable!("resolved into a batch of transfers first"),
        Op::Advance(ns) => {
            ledger.advance_ns(*ns);
            None
        }
        Op::Expire => Some(Results::Expired(ledger.expire())),
    }
}

#[derive(Debug, PartialEq)]
enum Results {
    Accounts(Vec<A>),
    Transfers(Vec<T>),
    Expired(usize),
}

/// Sums of every account's balances, wrapping like the running totals do.
fn sum_of_accounts(sm: &StateMachine) -> Totals {
    sm.accounts().iter().fold(Totals::default(), |t, a| Totals {
        debits_pending: t.debits_pending.wrapping_add(a.debits_pending),
        debits_posted: t.debits_posted.wrapping_add(a.debits_posted),
        credits_pending: t.credits_pending.wrapping_add(a.credits_pending),
        credits_posted: t.credits_posted.wrapping_add(a.credits_posted),
    })
}

fn check_invariants(sm: &StateMachine) -> Result<(), TestCaseError> {
    let sum = sum_of_accounts(sm);
    prop_assert_eq!(sum, sm.totals());
    prop_assert!(sum.is_balanced(), "debits and credits differ: {:?}", sum);
    for a in sm.accounts() {
        // No sum of one account's balances ever overflows.
        let debits = a.debits_pending.checked_add(a.debits_posted);
        let credits = a.credits_pending.checked_add(a.credits_posted);
        prop_assert!(debits.is_some() && credits.is_some(), "account {} overflows", a.id);
        if a.flags.contains(AF::DEBITS_MUST_NOT_EXCEED_CREDITS) {
            prop_assert!(
                debits.unwrap() <= a.credits_posted,
                "account {} exceeds its credits",
                a.id
            );
        }
        if a.flags.contains(AF::CREDITS_MUST_NOT_EXCEED_DEBITS) {
            prop_assert!(
                credits.unwrap() <= a.debits_posted,
                "account {} exceeds its debits",
                a.id
            );
        }
    }
    // Every pending status belongs to a pending transfer; every hold still pending is in the
    // pending balances.
    let mut held = 0u128;
    for t in sm.transfers().iter() {
        let status = sm.pending_status(t.id);
        prop_assert_eq!(status.is_some(), t.flags.contains(TF::PENDING));
        if status == Some(PendingStatus::Pending) {
            held = held.wrapping_add(t.amount);
        }
    }
    prop_assert_eq!(held, sm.totals().debits_pending);
    Ok(())
}

/// The ledger and the model hold the same accounts, transfers and pending statuses.
fn check_agrees(sm: &StateMachine, model: &Model) -> Result<(), TestCaseError> {
    let accounts: Vec<Account> = sm.accounts().to_vec();
    let mut expected: Vec<Account> = model.accounts.values().copied().collect();
    expected.sort_by_key(|a| a.timestamp);
    prop_assert_eq!(accounts, expected);

    let mut expected: Vec<Transfer> = model.transfers.values().copied().collect();
    expected.sort_by_key(|t| t.timestamp);
    prop_assert_eq!(sm.transfers().to_vec(), expected.to_vec());
    for id in (0..=TRANSFERS + 1).chain(HOLD_IDS..HOLD_IDS + 40) {
        prop_assert_eq!(sm.lookup_transfer(id), model.transfers.get(&id));
        prop_assert_eq!(sm.pending_status(id), model.status.get(&id).copied());
    }
    for id in 0..=ACCOUNTS + 1 {
        prop_assert_eq!(sm.lookup_account(id), model.accounts.get(&id));
        // Each account's transfers, oldest first.
        let mut out = Vec::new();
        sm.get_account_transfers(&AccountFilter::all(id, u32::MAX), &mut out);
        let theirs: Vec<u128> = expected
            .iter()
            .filter(|t| t.debit_account_id == id || t.credit_account_id == id)
            .map(|t| t.id)
            .collect();
        prop_assert_eq!(out.iter().map(|t| t.id).collect::<Vec<_>>(), theirs);
    }
    Ok(())
}

/// A ledger that keeps at most `held_max` transfers (plus a chunk, and pinned pending ones) in
/// memory, and a history store (a map by id) for the rest, driven like the engine drives it:
/// fetch what a batch needs, apply it, move what is old out to the store.
struct Tiered {
    ledger: Ledger,
    store: BTreeMap<u128, ColdTransfer>,
    held_max: usize,
}

impl Tiered {
    fn new(accounts: &[Account], held_max: usize) -> Tiered {
        let mut ledger = Ledger::new();
        ledger.sm = StateMachine::with_chunk_shift(1);
        ledger.create_accounts_ok(accounts);
        Tiered { ledger, store: BTreeMap::new(), held_max }
    }

    fn apply(&mut self, op: &Op) -> Option<Results> {
        let sm = &mut self.ledger.sm;
        match op {
            Op::Transfers(batch) => {
                let mut ids = Vec::new();
                sm.cold_ids(batch, &mut ids);
                for id in ids {
                    if let Some(cold) = self.store.get(&id) {
                        sm.fetched_insert(*cold);
                    }
                }
            }
            Op::Accounts(batch) => {
                let mut timestamps = Vec::new();
                sm.cold_timestamps(batch, &mut timestamps);
                for ts in timestamps {
                    if self.store.values().any(|c| c.transfer.timestamp == ts) {
                        sm.fetched_timestamp_insert(ts);
                    }
                }
            }
            _ => {}
        }
        let results = apply(&mut self.ledger, op);
        self.ledger.sm.fetched_clear();
        let mut out = Vec::new();
        // Some transfers are kept in memory by the caller's choice: that too changes nothing.
        self.ledger.sm.evict(self.held_max, |t| t.id % 5 == 3, &mut out);
        for cold in out {
            self.store.insert(cold.transfer.id, cold);
        }
        results
    }

    /// The transfers of the store that this state has reached, and are not held.
    fn stored(&self) -> impl Iterator<Item = &ColdTransfer> {
        let sm = &self.ledger.sm;
        self.store
            .values()
            .filter(|c| c.transfer.timestamp <= sm.horizon())
            .filter(|c| sm.lookup_transfer(c.transfer.id).is_none())
    }

    /// Every transfer, stored and held, in timestamp order.
    fn transfers(&self) -> Vec<Transfer> {
        let sm = &self.ledger.sm;
        let pinned: Vec<Transfer> = self
            .store
            .values()
            .filter(|c| c.transfer.timestamp <= sm.horizon())
            .map(|c| c.transfer)
            .filter(|t| sm.lookup_transfer(t.id).is_some())
            .collect();
        let mut all: Vec<Transfer> = self.stored().map(|c| c.transfer).collect();
        all.extend(pinned);
        all.extend(sm.transfers().iter().copied());
        all.sort_by_key(|t| t.timestamp);
        all
    }

    fn lookup(&self, id: u128) -> Option<Transfer> {
        let sm = &self.ledger.sm;
        sm.lookup_transfer(id)
            .copied()
            .or_else(|| self.stored().find(|c| c.transfer.id == id).map(|c| c.transfer))
    }

    fn status(&self, id: u128) -> Option<PendingStatus> {
        let sm = &self.ledger.sm;
        if sm.lookup_transfer(id).is_some() {
            return sm.pending_status(id);
        }
        self.stored().find(|c| c.transfer.id == id).and_then(|c| c.pending)
    }

    /// One account's transfers: the store's part then the held part, as an engine merges them.
    fn account_transfers(&self, id: u128) -> Vec<u128> {
        let sm = &self.ledger.sm;
        let mut stored: Vec<Transfer> = self
            .store
            .values()
            .map(|c| c.transfer)
            .filter(|t| t.timestamp <= sm.horizon())
            .filter(|t| t.debit_account_id == id || t.credit_account_id == id)
            .collect();
        stored.sort_by_key(|t| t.timestamp);
        let mut held = Vec::new();
        sm.get_account_transfers(&AccountFilter::all(id, u32::MAX), &mut held);
        stored.iter().chain(held.iter()).map(|t| t.id).collect()
    }
}

/// The tiered ledger shows everything the plain one holds.
fn check_tiers_agree(tiered: &Tiered, plain: &StateMachine) -> Result<(), TestCaseError> {
    let sm = &tiered.ledger.sm;
    prop_assert_eq!(sm.accounts(), plain.accounts());
    prop_assert_eq!(sm.totals(), plain.totals());
    prop_assert_eq!(sm.transfers().len(), plain.transfers().len(), "count");
    prop_assert_eq!(tiered.transfers(), plain.transfers().to_vec());
    prop_assert_eq!(sm.expiry_next(), plain.expiry_next());
    prop_assert_eq!(sm.expiry_waiting(), plain.expiry_waiting(), "expiry waiting");
    for id in (0..=TRANSFERS + 1).chain(HOLD_IDS..HOLD_IDS + 40) {
        prop_assert_eq!(tiered.lookup(id), plain.lookup_transfer(id).copied());
        prop_assert_eq!(tiered.status(id), plain.pending_status(id));
    }
    for id in 0..=ACCOUNTS + 1 {
        let mut out = Vec::new();
        plain.get_account_transfers(&AccountFilter::all(id, u32::MAX), &mut out);
        let expected: Vec<u128> = out.iter().map(|t| t.id).collect();
        prop_assert_eq!(tiered.account_transfers(id), expected, "account {}", id);
    }
    Ok(())
}

fn start(accounts: &[Account]) -> Ledger {
    let mut ledger = Ledger::new();
    ledger.create_accounts_ok(accounts);
    ledger
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn conservation((accounts, ops) in history()) {
        let mut ledger = start(&accounts);
        for op in &ops {
            apply(&mut ledger, op);
            check_invariants(&ledger.sm)?;
        }
    }

    #[test]
    fn agrees_with_the_model((accounts, ops) in history()) {
        let mut ledger = start(&accounts);
        let mut model = Model::default();
        model.execute(ledger.last_timestamp, &accounts);
        check_agrees(&ledger.sm, &model)?;
        for op in &ops {
            let expected = match op {
                Op::Accounts(batch) => Some(Results::Accounts(model.execute(ledger.next_timestamp(batch.len()), batch))),
                Op::Transfers(batch) => Some(Results::Transfers(model.execute(ledger.next_timestamp(batch.len()), batch))),
                Op::Resubmit(_) | Op::Advance(_) | Op::Expire => None,
            };
            let actual = apply(&mut ledger, op);
            match op {
                Op::Expire => prop_assert_eq!(actual, Some(Results::Expired(model.expire(ledger.last_timestamp)))),
                _ => prop_assert_eq!(actual, expected, "{:?}", op),
            }
            check_agrees(&ledger.sm, &model)?;
        }
    }

    #[test]
    fn snapshots_restore_the_same_ledger((accounts, ops) in history(), later in prop::collection::vec(op_strategy(), 1..20)) {
        let later = resolve(&[ops.clone(), later].concat()).split_off(ops.len());
        let mut ledger = start(&accounts);
        for op in &ops {
            apply(&mut ledger, op);
        }
        let mut bytes = Vec::new();
        ledger.sm.write_snapshot(&mut bytes).unwrap();
        let restored = StateMachine::read_snapshot(&mut bytes.as_slice()).unwrap();
        let mut again = Vec::new();
        restored.write_snapshot(&mut again).unwrap();
        prop_assert!(bytes == again, "a restored ledger writes different bytes");

        let mut restored = ledger.with_state(restored);
        prop_assert_eq!(restored.fingerprint(), ledger.fingerprint());
        prop_assert_eq!(restored.sm.commit_timestamp(), ledger.sm.commit_timestamp());
        prop_assert_eq!(restored.sm.timestamp_min(1), ledger.sm.timestamp_min(1));
        for op in &later {
            prop_assert_eq!(apply(&mut restored, op), apply(&mut ledger, op), "{:?}", op);
            prop_assert_eq!(restored.fingerprint(), ledger.fingerprint());
        }
        for id in 0..=ACCOUNTS + 1 {
            let filter = AccountFilter { reversed: true, ..AccountFilter::all(id, 5) };
            prop_assert_eq!(restored.query(&filter), ledger.query(&filter));
        }
    }

    #[test]
    fn moving_transfers_to_the_store_changes_no_result(
        (accounts, ops) in history(),
        held_max in 0usize..6,
        restart_at in any::<prop::sample::Index>(),
    ) {
        let mut plain = start(&accounts);
        let mut tiered = Tiered::new(&accounts, held_max);
        let restart_at = restart_at.index(ops.len() + 1);
        let mut snapshot = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if i == restart_at {
                tiered.ledger.sm.write_snapshot(&mut snapshot).unwrap();
            }
            prop_assert_eq!(tiered.apply(op), apply(&mut plain, op), "{:?}", op);
            check_tiers_agree(&tiered, &plain.sm)?;
        }
        if restart_at == ops.len() {
            tiered.ledger.sm.write_snapshot(&mut snapshot).unwrap();
        }
        // A restart from the snapshot, with a store that already holds what came after it, as
        // after a crash: replaying the same operations gives the same results.
        let mut again = start(&accounts);
        for op in &ops[..restart_at] {
            apply(&mut again, op);
        }
        let restored = StateMachine::read_snapshot(&mut snapshot.as_slice()).unwrap();
        let mut restarted = Tiered {
            ledger: again.with_state(restored),
            store: tiered.store.clone(),
            held_max,
        };
        for op in &ops[restart_at..] {
            prop_assert_eq!(restarted.apply(op), apply(&mut again, op), "{:?}", op);
            check_tiers_agree(&restarted, &again.sm)?;
        }
    }

    #[test]
    fn replaying_the_same_batches_gives_the_same_bytes((accounts, ops) in history()) {
        let mut first = start(&accounts);
        let mut second = start(&accounts);
        for op in &ops {
            prop_assert_eq!(apply(&mut first, op), apply(&mut second, op));
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        first.sm.write_snapshot(&mut a).unwrap();
        second.sm.write_snapshot(&mut b).unwrap();
        prop_assert!(a == b);
    }
}

#[test]
fn a_corrupt_snapshot_is_refused() {
    let mut ledger = start(&[account(1), account(2)]);
    ledger.create_transfers_ok(&[transfer(1, 1, 2, 5)]);
    let mut bytes = Vec::new();
    ledger.sm.write_snapshot(&mut bytes).unwrap();
    assert!(StateMachine::read_snapshot(&mut bytes.as_slice()).is_ok());
    // A truncated snapshot.
    assert!(StateMachine::read_snapshot(&mut &bytes[..bytes.len() - 1]).is_err());
    // A wrong magic.
    let mut bad = bytes.clone();
    bad[0] ^= 1;
    assert!(StateMachine::read_snapshot(&mut bad.as_slice()).is_err());
}
