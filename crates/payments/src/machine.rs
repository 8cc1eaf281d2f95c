//! The payment state machine: turns each operation into one linked chain of ledger transfers.
//!
//! Pure like the ledger: the engine passes the time; nothing here reads a clock or a file.

use std::collections::BTreeSet;

use hashbrown::HashMap;

use crate::tier::{Tier, Tiered};
use huifu_ledger::constants::{
    AMOUNT_MAX as LEDGER_AMOUNT_MAX, BATCH_EVENTS_MAX, EXPIRE_EVENTS_MAX,
};
use huifu_ledger::{
    Account, AccountFilter, CreateTransferResult, PendingStatus, StateMachine, Transfer,
    TransferFlags,
};

use crate::chart::{self, account_id, Kind, OpTag, Reason};
use crate::command::{
    CouponRule, Done, Funder, Op, Outcome, PaymentError, PaymentStatus, SettlementLine, Statement,
};
use crate::constants::{
    ALLOCATED_ID_MIN, AMOUNT_MAX, BATCH_OPS_MAX, ENTITY_ID_MAX, OP_EVENTS_MAX, TIMEOUT_S_DEFAULT,
    TIMEOUT_S_MAX,
};
use crate::money::{self, Legs};
use crate::webhooks::WebhookError;

type E = PaymentError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merchant {
    pub currency: u32,
    pub commission_bps: u32,
    pub channel: u64,
    /// Since the last settlement run.
    pub period: Statement,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Campaign {
    pub currency: u32,
    pub funder: Funder,
    pub budget: u64,
    pub rule: CouponRule,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coupon {
    pub campaign: u64,
    pub user: u64,
    /// The payment that redeemed it, or 0.
    pub redeemed_by: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub user: u64,
    pub merchant: u64,
    pub rider: u64,
    pub currency: u32,
    pub food: u64,
    pub delivery: u64,
    pub coupon: u64,
    pub campaign: u64,
    /// 0 for a wallet payment.
    pub channel: u64,
    pub legs: Legs,
    pub refunded: Legs,
    pub status: PaymentStatus,
    pub refunds: Vec<u64>,
    /// When it was made (nanoseconds since the Unix epoch).
    pub timestamp: u64,
    /// The hold timeout the operation that made it asked for. With the fields above it is
    /// that operation (`made_by`): a payment holds the operation's first outcome
    /// (`first_outcome`), so a retry is answered, and compared, without a record of its own.
    pub timeout_s: u32,
}

impl Payment {
    /// The operation that made this payment, whose id is `id`.
    pub fn made_by(&self, id: u64) -> Op {
        Op::Pay {
            id,
            user: self.user,
            merchant: self.merchant,
            rider: self.rider,
            food: self.food,
            delivery: self.delivery,
            coupon: self.coupon,
            channel: self.channel,
            timeout_s: self.timeout_s,
        }
    }

    /// The outcome the operation that made this payment returned.
    pub fn first_outcome(&self) -> Outcome {
        let status =
            if self.channel == 0 { PaymentStatus::Succeeded } else { PaymentStatus::Authorized };
        self.outcome(status)
    }

    /// The outcome of an operation that left this payment in `status`.
    pub fn outcome(&self, status: PaymentStatus) -> Outcome {
        Ok(Done::Payment {
            status,
            total: self.legs.total(),
            legs: self.legs,
            currency: self.currency,
        })
    }
    pub fn total(&self) -> u64 {
        self.legs.total()
    }
    pub fn refunded_total(&self) -> u64 {
        self.refunded.total()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldKind {
    TopUp,
    Withdrawal,
}

/// A top-up or withdrawal waiting for (or answered by) its bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub kind: HoldKind,
    pub user: u64,
    pub channel: u64,
    pub currency: u32,
    pub amount: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payout {
    pub merchant: u64,
    pub channel: u64,
    pub currency: u32,
    pub amount: u64,
}

/// The whole payment domain, with the ledger inside it.
#[derive(Debug, Default)]
pub struct PaymentsMachine {
    pub(crate) ledger: StateMachine,
    pub(crate) channels: HashMap<u64, u32>,
    pub(crate) users: HashMap<u64, u32>,
    pub(crate) riders: HashMap<u64, u32>,
    pub(crate) merchants: HashMap<u64, Merchant>,
    /// Merchant ids in order, so settlement runs visit them deterministically.
    pub(crate) merchant_ids: BTreeSet<u64>,
    pub(crate) campaigns: HashMap<u64, Campaign>,
    pub(crate) coupons: Tiered<Coupon>,
    /// Redemptions per (campaign, user), for the per-user limit.
    pub(crate) redemptions: HashMap<(u64, u64), u32>,
    pub(crate) payments: Tiered<Payment>,
    /// Authorized payments by the deadline of their last hold: (expires at, payment id). Derived
    /// from `payments` and the ledger (rebuilt when a snapshot is read).
    pub(crate) authorized: BTreeSet<(u64, u64)>,
    /// Refund id → (payment id, amount).
    pub(crate) refunds: Tiered<(u64, u64)>,
    pub(crate) holds: Tiered<Hold>,
    /// By the ledger id of the payout's pending transfer.
    pub(crate) payouts: Tiered<Payout>,
    pub(crate) settlements: HashMap<u64, Vec<SettlementLine>>,
    /// First outcome of every operation, with a fingerprint of its fields: (kind, id) → ...
    pub(crate) outcomes: Tiered<(u64, Outcome)>,
    /// Keyed operations: idempotency key → (fingerprint, id given, first outcome).
    pub(crate) keys: Tiered<(u64, u64, Outcome)>,
    /// The last id given to a keyed operation (0 before the first).
    pub(crate) last_id: u64,
    /// Payments of each merchant and of each user as (timestamp, id), oldest first, for
    /// listing: those made since the lists last moved to the history store.
    pub(crate) by_merchant: HashMap<u64, Vec<(u64, u64)>>,
    pub(crate) by_user: HashMap<u64, Vec<(u64, u64)>>,
    /// Entries in `by_merchant` and `by_user`.
    pub(crate) listed: usize,
    /// Journal records applied: the position of the state, which the history store's records
    /// are written and read at.
    pub(crate) applied: u64,
    /// The journal position of the last write of payment records to the history store (0:
    /// none), so that a state that depends on its store refuses to start without it.
    pub(crate) moved: u64,
    /// Transfers created through the ledger endpoints with ids in the domain's range: kept in
    /// memory, so that a domain transfer that collides with one is caught without the store.
    pub(crate) foreign: BTreeSet<u128>,
    /// Where ledger transfers go once they leave memory; `None` keeps everything in memory.
    /// Only the engine hooks and the queries use it, never `apply`.
    pub(crate) history: Option<Box<dyn crate::store::HistoryStore>>,
    /// Where the payment tables' records go once they leave memory, with the same rule.
    pub(crate) tier: Option<Tier>,
    /// The webhook endpoints and their delivery positions.
    pub(crate) webhooks: crate::webhooks::Webhooks,
}

/// One ledger transfer of a chain, with the role that names the error if it fails.
struct Leg {
    transfer: Transfer,
    /// The error when this leg fails for lack of balance.
    short: PaymentError,
}

impl PaymentsMachine {
    pub fn new() -> PaymentsMachine {
        PaymentsMachine::default()
    }

    /// Writes the whole state as a snapshot (see `snapshot.rs` for the format).
    pub fn write_snapshot(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        crate::snapshot::write(self, w)
    }

    /// Reads a state back from a snapshot `write_snapshot` wrote.
    pub fn read_snapshot(r: &mut dyn std::io::Read) -> std::io::Result<PaymentsMachine> {
        crate::snapshot::read(r)
    }

    pub fn ledger(&self) -> &StateMachine {
        &self.ledger
    }

    /// The webhook endpoints and their delivery positions.
    pub fn webhooks(&self) -> &crate::webhooks::Webhooks {
        &self.webhooks
    }

    /// How many ledger events `op` may use: the engine reserves that many timestamps.
    pub fn events(&self, op: &Op) -> usize {
        match op {
            Op::Batch(ops) => ops.iter().map(|op| self.events(op)).sum(),
            Op::SettlementRun { .. } => self.merchant_ids.len().max(1),
            Op::Expire => EXPIRE_EVENTS_MAX,
            Op::Keyed { op, .. } => self.events(op),
            Op::LedgerAccounts(a) => a.len(),
            Op::LedgerTransfers(t) => t.len(),
            _ => OP_EVENTS_MAX,
        }
    }

    /// Applies one operation (one journal record) at time `now`.
    pub fn apply(&mut self, now: u64, op: &Op) -> Outcome {
        self.applied += 1;
        self.apply_op(now, op)
    }

    fn apply_op(&mut self, now: u64, op: &Op) -> Outcome {
        match op {
            Op::Batch(ops) => {
                if ops.len() > BATCH_OPS_MAX {
                    return Err(E::BatchTooLarge);
                }
                let outcomes = ops
                    .iter()
                    .map(|op| match op {
                        Op::Batch(_) | Op::Expire => Err(E::NestedBatch),
                        op => self.apply_op(now, op),
                    })
                    .collect();
                Ok(Done::Batch(outcomes))
            }
            Op::Expire => {
                let timestamp = self.ledger.expire_timestamp(now);
                let expired = self.ledger.expire_pending_transfers(timestamp);
                self.expire_payments(timestamp);
                Ok(Done::Expired(expired))
            }
            Op::Keyed { key, op } => self.apply_keyed(now, *key, op),
            Op::LedgerAccounts(accounts) => {
                if accounts.len() > BATCH_EVENTS_MAX {
                    return Err(E::BatchTooLarge);
                }
                let mut results = Vec::new();
                let timestamp = now.max(self.ledger.timestamp_min(accounts.len()));
                self.ledger.create_accounts(timestamp, accounts, &mut results);
                Ok(Done::LedgerAccounts(results))
            }
            Op::LedgerTransfers(transfers) => {
                if transfers.len() > BATCH_EVENTS_MAX {
                    return Err(E::BatchTooLarge);
                }
                let mut results = Vec::new();
                let timestamp = now.max(self.ledger.timestamp_min(transfers.len()));
                self.ledger.create_transfers(timestamp, transfers, &mut results);
                for (t, r) in transfers.iter().zip(&results) {
                    if *r == CreateTransferResult::Created && crate::history::in_domain_range(t.id)
                    {
                        self.foreign.insert(t.id);
                    }
                }
                Ok(Done::LedgerTransfers(results))
            }
            Op::Webhook(op) => {
                let head = crate::webhooks::head(self);
                let merchants = &self.merchants;
                self.webhooks
                    .apply(now, head, |id| merchants.contains_key(&id), op)
                    .map(Done::Webhook)
                    .map_err(|e| match e {
                        WebhookError::UnknownEndpoint => E::UnknownWebhookEndpoint,
                        WebhookError::UnknownMerchant => E::UnknownMerchant,
                        WebhookError::IdempotencyConflict => E::IdempotencyConflict,
                        WebhookError::TooManyEndpoints => E::TooManyWebhookEndpoints,
                    })
            }
            op => self.apply_once(now, op),
        }
    }

    /// An operation under an idempotency key; see `Op::Keyed`.
    fn apply_keyed(&mut self, now: u64, key: u128, op: &Op) -> Outcome {
        if matches!(
            op,
            Op::Batch(_)
                | Op::Expire
                | Op::Keyed { .. }
                | Op::LedgerAccounts(_)
                | Op::LedgerTransfers(_)
                | Op::Webhook(_)
        ) {
            return Err(E::NestedBatch);
        }
        let print = fingerprint(op);
        if let Some((first_print, id, outcome)) = self.keys.get(&key) {
            if *first_print != print {
                return Err(E::IdempotencyConflict);
            }
            return Ok(Done::Allocated { id: *id, outcome: Box::new(outcome.clone()) });
        }
        let mut op = op.clone();
        let id = match id_field(&mut op) {
            Some(field) if *field != 0 => return Err(E::InvalidId),
            Some(field) => {
                self.last_id = self.last_id.max(ALLOCATED_ID_MIN - 1) + 1;
                *field = self.last_id;
                self.last_id
            }
            None => 0,
        };
        let outcome = self.apply_once(now, &op);
        self.keys.insert(key, (print, id, outcome.clone()));
        Ok(Done::Allocated { id, outcome: Box::new(outcome) })
    }

    /// Idempotency: the first outcome of an id is kept and returned for every retry.
    fn apply_once(&mut self, now: u64, op: &Op) -> Outcome {
        let key = op_key(op);
        let print = fingerprint(op);
        if let Some((first_print, outcome)) = self.first_outcome(key) {
            return if first_print == print { outcome } else { Err(E::IdempotencyConflict) };
        }
        let outcome = self.execute(now, op);
        // An answer for a payment, hold or payout that does not exist (yet) is not that
        // object's first outcome: keeping it would block the real answer later.
        let resolves = matches!(
            op,
            Op::Capture { .. }
                | Op::Release { .. }
                | Op::BankResult { .. }
                | Op::PayoutResult { .. }
        );
        let unknown =
            matches!(outcome, Err(E::UnknownPayment | E::UnknownOperation | E::UnknownPayout));
        // A payment made holds its own first outcome, and a payment captured or released
        // the outcome of the operation that did it (`first_outcome`).
        let made = matches!(op, Op::Pay { .. } | Op::Capture { .. } | Op::Release { .. })
            && outcome.is_ok();
        if !(made || resolves && unknown) {
            self.outcomes.insert(key, (print, outcome.clone()));
        }
        outcome
    }

    /// The first outcome of the operation with `key` (`op_key`), with its fingerprint: kept as
    /// an outcome record, or by the payment for the payment made, captured or released.
    fn first_outcome(&self, key: (u8, u128)) -> Option<(u64, Outcome)> {
        if let Some((print, outcome)) = self.outcomes.get(&key) {
            return Some((*print, outcome.clone()));
        }
        if key.0 != PAY_KIND && key.0 != RESOLVE_KIND {
            return None;
        }
        let id = u64::try_from(key.1).ok()?;
        let payment = self.payments.get(&id)?;
        if key.0 == PAY_KIND {
            return Some((fingerprint(&payment.made_by(id)), payment.first_outcome()));
        }
        // A bank-channel payment leaves `Authorized` once, and becomes `Succeeded` only by a
        // capture and `Released` only by a release; a failed capture or release keeps its own
        // record (found above), so no later one can succeed under the same key.
        let op = match payment.status {
            PaymentStatus::Succeeded if payment.channel != 0 => Op::Capture { id },
            PaymentStatus::Released => Op::Release { id },
            _ => return None,
        };
        Some((fingerprint(&op), payment.outcome(payment.status)))
    }

    fn execute(&mut self, now: u64, op: &Op) -> Outcome {
        match *op {
            Op::CreateChannel { id, currency } => {
                check_id(id)?;
                self.ensure_platform_accounts(currency)?;
                self.create_accounts(&[chart::new_account(Kind::Channel, currency, id)])?;
                self.channels.insert(id, currency);
                Ok(Done::Created)
            }
            Op::CreateUser { id, currency } => {
                check_id(id)?;
                self.create_accounts(&[chart::new_account(Kind::Wallet, currency, id)])?;
                self.users.insert(id, currency);
                Ok(Done::Created)
            }
            Op::CreateRider { id, currency } => {
                check_id(id)?;
                self.create_accounts(&[chart::new_account(Kind::Rider, currency, id)])?;
                self.riders.insert(id, currency);
                Ok(Done::Created)
            }
            Op::CreateMerchant { id, currency, commission_bps, channel } => {
                check_id(id)?;
                if u64::from(commission_bps) > money::BPS_ONE {
                    return Err(E::InvalidCommission);
                }
                if *self.channels.get(&channel).ok_or(E::UnknownChannel)? != currency {
                    return Err(E::CurrencyMismatch);
                }
                self.create_accounts(&[chart::new_account(Kind::Merchant, currency, id)])?;
                self.merchants.insert(
                    id,
                    Merchant { currency, commission_bps, channel, period: Statement::default() },
                );
                self.merchant_ids.insert(id);
                Ok(Done::Created)
            }
            Op::CreateCampaign { id, currency, funder, budget, rule } => {
                self.create_campaign(now, id, currency, funder, budget, rule)
            }
            Op::GrantCoupon { id, campaign, user } => {
                check_id(id)?;
                let c = self.campaigns.get(&campaign).ok_or(E::UnknownCampaign)?;
                if *self.users.get(&user).ok_or(E::UnknownUser)? != c.currency {
                    return Err(E::CurrencyMismatch);
                }
                self.coupons.insert(id, Coupon { campaign, user, redeemed_by: 0 });
                Ok(Done::Created)
            }
            Op::TopUp { id, user, channel, amount, timeout_s } => {
                self.hold(now, HoldKind::TopUp, id, user, channel, amount, timeout_s)
            }
            Op::Withdraw { id, user, channel, amount, timeout_s } => {
                self.hold(now, HoldKind::Withdrawal, id, user, channel, amount, timeout_s)
            }
            Op::BankResult { id, ok } => self.bank_result(now, id, ok),
            Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s } => {
                self.pay(now, id, user, merchant, rider, food, delivery, coupon, channel, timeout_s)
            }
            Op::Capture { id } => self.capture(now, id),
            Op::Release { id } => self.release(now, id),
            Op::Refund { id, payment, amount } => self.refund(now, id, payment, amount),
            Op::Payout { id, merchant, amount } => self.payout(now, id, merchant, amount),
            Op::SettlementRun { id } => self.settlement_run(now, id),
            Op::PayoutResult { payout, ok } => self.payout_result(now, payout, ok),
            Op::Batch(_)
            | Op::Expire
            | Op::Keyed { .. }
            | Op::LedgerAccounts(_)
            | Op::LedgerTransfers(_)
            | Op::Webhook(_) => unreachable!("handled by apply"),
        }
    }

    /// Creates accounts that may already exist (platform accounts, re-created parties). An
    /// account made through the ledger endpoints with one of these ids and other fields is a
    /// conflict, not a crash.
    fn create_accounts(&mut self, accounts: &[Account]) -> Result<(), PaymentError> {
        let mut results = Vec::new();
        let timestamp = self.ledger.timestamp_min(accounts.len());
        self.ledger.create_accounts(timestamp, accounts, &mut results);
        let created_or_exists = |r: &huifu_ledger::CreateAccountResult| {
            matches!(
                r,
                huifu_ledger::CreateAccountResult::Created
                    | huifu_ledger::CreateAccountResult::Exists
            )
        };
        if results.iter().all(created_or_exists) {
            Ok(())
        } else {
            Err(E::AccountConflict)
        }
    }

    fn ensure_platform_accounts(&mut self, currency: u32) -> Result<(), PaymentError> {
        if self.ledger.lookup_account(account_id(Kind::PlatformRevenue, currency, 0)).is_none() {
            self.create_accounts(&[
                chart::new_account(Kind::PlatformRevenue, currency, 0),
                chart::new_account(Kind::PayoutsInTransit, currency, 0),
                chart::new_account(Kind::PlatformMarketing, currency, 0),
            ])?;
        }
        Ok(())
    }

    /// `chain` for the legs of a payment, whose transfer ids derive from the payment's id: the
    /// outcome kept under that id answers every retry, so those ids never reach the ledger
    /// again, and a rejected payment (a wallet short of money) leaves nothing in the ledger's
    /// memory of failed ids (`StateMachine::forget_failed`).
    fn chain_once(&mut self, now: u64, legs: &mut [Leg]) -> Result<(), PaymentError> {
        let result = self.chain(now, legs);
        if result.is_err() {
            for leg in legs.iter() {
                self.ledger.forget_failed(leg.transfer.id);
            }
        }
        result
    }

    /// Runs the legs as one linked chain: all succeed or none does.
    fn chain(&mut self, now: u64, legs: &mut [Leg]) -> Result<(), PaymentError> {
        assert!(!legs.is_empty() && legs.len() <= BATCH_EVENTS_MAX);
        let last = legs.len() - 1;
        let transfers: Vec<Transfer> = legs
            .iter_mut()
            .enumerate()
            .map(|(i, leg)| {
                leg.transfer.flags.set(TransferFlags::LINKED, i < last);
                leg.transfer
            })
            .collect();
        let mut results = Vec::with_capacity(transfers.len());
        let timestamp = now.max(self.ledger.timestamp_min(transfers.len()));
        self.ledger.create_transfers(timestamp, &transfers, &mut results);
        let failed = results.iter().position(|r| {
            *r != CreateTransferResult::Created && *r != CreateTransferResult::LinkedEventFailed
        });
        let Some(index) = failed else { return Ok(()) };
        Err(match results[index] {
            CreateTransferResult::ExceedsCredits => legs[index].short,
            CreateTransferResult::PendingTransferExpired => E::HoldExpired,
            CreateTransferResult::PendingTransferAlreadyPosted
            | CreateTransferResult::PendingTransferAlreadyVoided => E::InvalidState,
            // Only possible after operators changed the ledger directly (closed an account,
            // created one with a party's id): refuse, never crash the machine.
            CreateTransferResult::DebitAccountAlreadyClosed
            | CreateTransferResult::CreditAccountAlreadyClosed => E::AccountClosed,
            _ => E::LedgerRejected,
        })
    }

    fn create_campaign(
        &mut self,
        now: u64,
        id: u64,
        currency: u32,
        funder: Funder,
        budget: u64,
        rule: CouponRule,
    ) -> Outcome {
        check_id(id)?;
        check_amount(budget)?;
        if rule.amount_off == 0 || rule.amount_off > AMOUNT_MAX {
            return Err(E::InvalidAmount);
        }
        self.ensure_platform_accounts(currency)?;
        let (source, short) = match funder {
            Funder::Platform => (account_id(Kind::PlatformMarketing, currency, 0), E::InvalidState),
            Funder::Merchant(m) => {
                let merchant = self.merchants.get(&m).ok_or(E::UnknownMerchant)?;
                if merchant.currency != currency {
                    return Err(E::CurrencyMismatch);
                }
                (account_id(Kind::Merchant, currency, m), E::MerchantBalanceInsufficient)
            }
        };
        self.create_accounts(&[chart::new_account(Kind::CampaignBudget, currency, id)])?;
        let mut legs = [Leg {
            transfer: transfer(
                OpTag::Campaign,
                id,
                0,
                source,
                account_id(Kind::CampaignBudget, currency, id),
                budget,
                currency,
                Reason::CampaignFunding,
            ),
            short,
        }];
        self.chain(now, &mut legs)?;
        self.campaigns.insert(id, Campaign { currency, funder, budget, rule });
        Ok(Done::Created)
    }

    #[allow(clippy::too_many_arguments)]
    fn hold(
        &mut self,
        now: u64,
        kind: HoldKind,
        id: u64,
        user: u64,
        channel: u64,
        amount: u64,
        timeout_s: u32,
    ) -> Outcome {
        check_id(id)?;
        check_amount(amount)?;
        let currency = *self.users.get(&user).ok_or(E::UnknownUser)?;
        if *self.channels.get(&channel).ok_or(E::UnknownChannel)? != currency {
            return Err(E::CurrencyMismatch);
        }
        let wallet = account_id(Kind::Wallet, currency, user);
        let bank = account_id(Kind::Channel, currency, channel);
        let (debit, credit, reason) = match kind {
            HoldKind::TopUp => (bank, wallet, Reason::TopUp),
            HoldKind::Withdrawal => (wallet, bank, Reason::Withdrawal),
        };
        let tag = match kind {
            HoldKind::TopUp => OpTag::TopUp,
            HoldKind::Withdrawal => OpTag::Withdrawal,
        };
        let mut t = transfer(tag, id, 0, debit, credit, amount, currency, reason);
        t.flags = TransferFlags::PENDING;
        t.timeout = timeout(timeout_s);
        self.chain(now, &mut [Leg { transfer: t, short: E::InsufficientFunds }])?;
        self.holds.insert(id, Hold { kind, user, channel, currency, amount });
        Ok(Done::Hold { amount })
    }

    fn bank_result(&mut self, now: u64, id: u64, ok: bool) -> Outcome {
        let hold = *self.holds.get(&id).ok_or(E::UnknownOperation)?;
        let pending = chart::transfer_id(hold_tag(hold.kind), id, 0);
        let mut legs = [Leg {
            transfer: resolve(OpTag::BankResult, id, 0, pending, ok),
            short: E::InvalidState,
        }];
        self.chain(now, &mut legs)?;
        Ok(Done::Hold { amount: hold.amount })
    }

    #[allow(clippy::too_many_arguments)]
    fn pay(
        &mut self,
        now: u64,
        id: u64,
        user: u64,
        merchant_id: u64,
        rider: u64,
        food: u64,
        delivery: u64,
        coupon_id: u64,
        channel: u64,
        timeout_s: u32,
    ) -> Outcome {
        check_id(id)?;
        check_amount(food)?;
        if delivery > AMOUNT_MAX {
            return Err(E::InvalidAmount);
        }
        let currency = *self.users.get(&user).ok_or(E::UnknownUser)?;
        let merchant = self.merchants.get(&merchant_id).ok_or(E::UnknownMerchant)?;
        let rider_currency = *self.riders.get(&rider).ok_or(E::UnknownRider)?;
        if merchant.currency != currency || rider_currency != currency {
            return Err(E::CurrencyMismatch);
        }
        if channel != 0 && *self.channels.get(&channel).ok_or(E::UnknownChannel)? != currency {
            return Err(E::CurrencyMismatch);
        }
        let bps = merchant.commission_bps;
        let (discount, campaign_id, merchant_funded) = if coupon_id == 0 {
            (0, 0, false)
        } else {
            let coupon = *self.coupons.get(&coupon_id).ok_or(E::UnknownCoupon)?;
            let campaign = &self.campaigns[&coupon.campaign];
            if coupon.user != user {
                return Err(E::CouponNotOwned);
            }
            if coupon.redeemed_by != 0 {
                return Err(E::CouponUsed);
            }
            if campaign.currency != currency {
                return Err(E::CurrencyMismatch);
            }
            let rule = campaign.rule;
            if now < rule.valid_from || (rule.valid_until != 0 && now >= rule.valid_until) {
                return Err(E::CouponNotValidNow);
            }
            if food < rule.min_order {
                return Err(E::CouponMinimumNotMet);
            }
            let used = self.redemptions.get(&(coupon.campaign, user)).copied().unwrap_or(0);
            if rule.per_user_limit != 0 && used >= rule.per_user_limit {
                return Err(E::CouponLimitReached);
            }
            let merchant_funded = matches!(campaign.funder, Funder::Merchant(_));
            (rule.amount_off.min(food), coupon.campaign, merchant_funded)
        };
        let legs = money::payment_legs(food, delivery, discount, bps, merchant_funded);
        let total = legs.total();
        let wallet = account_id(Kind::Wallet, currency, user);
        let budget = account_id(Kind::CampaignBudget, currency, campaign_id);

        let status = if channel == 0 {
            let mut chain = Vec::with_capacity(4);
            if discount > 0 {
                chain.push(Leg {
                    transfer: transfer(
                        OpTag::Payment,
                        id,
                        0,
                        budget,
                        wallet,
                        discount,
                        currency,
                        Reason::Coupon,
                    ),
                    short: E::BudgetExhausted,
                });
            }
            self.payment_legs(
                &mut chain,
                OpTag::Payment,
                id,
                wallet,
                currency,
                merchant_id,
                rider,
                &legs,
            );
            self.chain_once(now, &mut chain)?;
            PaymentStatus::Succeeded
        } else {
            // Held at the bank: the wallet shows the money as pending until capture.
            let bank = account_id(Kind::Channel, currency, channel);
            let mut hold = transfer(
                OpTag::Payment,
                id,
                0,
                bank,
                wallet,
                total,
                currency,
                Reason::ChannelPayment,
            );
            hold.flags = TransferFlags::PENDING;
            hold.timeout = timeout(timeout_s);
            let mut chain = vec![Leg { transfer: hold, short: E::InvalidState }];
            if discount > 0 {
                let mut reserve = transfer(
                    OpTag::Payment,
                    id,
                    1,
                    budget,
                    wallet,
                    discount,
                    currency,
                    Reason::Coupon,
                );
                reserve.flags = TransferFlags::PENDING;
                reserve.timeout = hold.timeout;
                chain.push(Leg { transfer: reserve, short: E::BudgetExhausted });
            }
            self.chain_once(now, &mut chain)?;
            PaymentStatus::Authorized
        };

        if coupon_id != 0 {
            self.coupons.get_mut(&coupon_id).expect("coupon").redeemed_by = id;
            *self.redemptions.entry((campaign_id, user)).or_insert(0) += 1;
        }
        if status == PaymentStatus::Succeeded {
            self.account_payment(merchant_id, &legs, food, merchant_funded);
        } else {
            self.authorized.insert((self.hold_deadline(id, &legs), id));
        }
        list(self.by_merchant.entry(merchant_id).or_default(), (now, id));
        list(self.by_user.entry(user).or_default(), (now, id));
        self.listed += 2;
        self.payments.insert(
            id,
            Payment {
                user,
                merchant: merchant_id,
                rider,
                currency,
                food,
                delivery,
                coupon: coupon_id,
                campaign: campaign_id,
                channel,
                legs,
                refunded: Legs::default(),
                status,
                refunds: Vec::new(),
                timestamp: now,
                timeout_s,
            },
        );
        Ok(Done::Payment { status, total, legs, currency })
    }

    /// The wallet's legs of a payment: merchant share, delivery fee, commission.
    #[allow(clippy::too_many_arguments)]
    fn payment_legs(
        &self,
        chain: &mut Vec<Leg>,
        tag: OpTag,
        id: u64,
        wallet: u128,
        currency: u32,
        merchant: u64,
        rider: u64,
        legs: &Legs,
    ) {
        let parts = [
            (2, Kind::Merchant, merchant, legs.merchant, Reason::MerchantShare),
            (3, Kind::Rider, rider, legs.rider, Reason::DeliveryFee),
            (4, Kind::PlatformRevenue, 0, legs.platform, Reason::Commission),
        ];
        for (leg, kind, entity, amount, reason) in parts {
            if amount > 0 {
                let to = account_id(kind, currency, entity);
                chain.push(Leg {
                    transfer: transfer(tag, id, leg, wallet, to, amount, currency, reason),
                    short: E::InsufficientFunds,
                });
            }
        }
    }

    fn account_payment(&mut self, merchant: u64, legs: &Legs, food: u64, merchant_funded: bool) {
        let period = &mut self.merchants.get_mut(&merchant).expect("merchant").period;
        period.payments += 1;
        period.gross += food;
        period.commission += legs.platform;
        if merchant_funded {
            period.discounts += legs.coupon;
        }
    }

    /// The ledger id of an authorized payment's last hold: the coupon's reservation if it has
    /// one (it is made after the hold, with the same timeout, so it expires last), else the hold.
    fn last_hold(id: u64, legs: &Legs) -> u128 {
        chart::transfer_id(OpTag::Payment, id, holds(legs) - 1)
    }

    /// When the last hold of an authorized payment expires.
    pub(crate) fn hold_deadline(&self, id: u64, legs: &Legs) -> u64 {
        self.hold_deadline_checked(id, legs).expect("an authorized payment's hold")
    }

    /// When the payment's last hold times out; `None` if the ledger does not hold it (or its
    /// deadline overflows), which only a damaged snapshot can show.
    pub(crate) fn hold_deadline_checked(&self, id: u64, legs: &Legs) -> Option<u64> {
        let t = self.ledger.lookup_transfer(Self::last_hold(id, legs))?;
        t.timestamp.checked_add(t.timeout_ns())
    }

    /// The payment's current status, with the ledger's word on holds that expired (once all of
    /// them did, so an expired payment holds nothing).
    pub fn payment_status(&self, id: u64, payment: &Payment) -> PaymentStatus {
        if payment.status == PaymentStatus::Authorized
            && self.ledger.pending_status(Self::last_hold(id, &payment.legs))
                == Some(PendingStatus::Expired)
        {
            return PaymentStatus::Expired;
        }
        payment.status
    }

    /// Marks the authorized payments whose holds the ledger expired by `timestamp` as expired,
    /// and gives their coupons back, as a release does.
    fn expire_payments(&mut self, timestamp: u64) {
        let due: Vec<(u64, u64)> =
            self.authorized.range(..=(timestamp, u64::MAX)).copied().collect();
        for (deadline, id) in due {
            let p = &self.payments[&id];
            if self.payment_status(id, p) != PaymentStatus::Expired {
                continue;
            }
            let p = p.clone();
            self.authorized.remove(&(deadline, id));
            self.restore_coupon(timestamp, &p, id);
            self.payments.get_mut(&id).expect("payment").status = PaymentStatus::Expired;
        }
    }

    fn authorized(&self, id: u64) -> Result<&Payment, PaymentError> {
        let payment = self.payments.get(&id).ok_or(E::UnknownPayment)?;
        match self.payment_status(id, payment) {
            PaymentStatus::Authorized => Ok(payment),
            PaymentStatus::Expired => Err(E::HoldExpired),
            _ => Err(E::InvalidState),
        }
    }

    fn capture(&mut self, now: u64, id: u64) -> Outcome {
        let p = self.authorized(id)?.clone();
        let wallet = account_id(Kind::Wallet, p.currency, p.user);
        let mut chain = resolve_holds(OpTag::Capture, id, &p, true);
        self.payment_legs(
            &mut chain,
            OpTag::Capture,
            id,
            wallet,
            p.currency,
            p.merchant,
            p.rider,
            &p.legs,
        );
        // A hold past its deadline stays in the ledger until the next expiry, which then marks
        // the payment expired: until then the money is still held.
        self.chain(now, &mut chain)?;
        self.authorized.remove(&(self.hold_deadline(id, &p.legs), id));
        let merchant_funded =
            p.campaign != 0 && matches!(self.campaigns[&p.campaign].funder, Funder::Merchant(_));
        self.account_payment(p.merchant, &p.legs, p.food, merchant_funded);
        self.payments.get_mut(&id).expect("payment").status = PaymentStatus::Succeeded;
        p.outcome(PaymentStatus::Succeeded)
    }

    fn release(&mut self, now: u64, id: u64) -> Outcome {
        let p = self.authorized(id)?.clone();
        let mut chain = resolve_holds(OpTag::Release, id, &p, false);
        self.chain(now, &mut chain)?;
        self.authorized.remove(&(self.hold_deadline(id, &p.legs), id));
        self.restore_coupon(now, &p, id);
        self.payments.get_mut(&id).expect("payment").status = PaymentStatus::Released;
        p.outcome(PaymentStatus::Released)
    }

    /// A coupon whose payment was undone comes back to its user if its campaign is still valid.
    fn restore_coupon(&mut self, now: u64, p: &Payment, payment_id: u64) {
        if p.coupon == 0 {
            return;
        }
        let rule = self.campaigns[&p.campaign].rule;
        let coupon = self.coupons.get_mut(&p.coupon).expect("coupon");
        if coupon.redeemed_by == payment_id && (rule.valid_until == 0 || now < rule.valid_until) {
            coupon.redeemed_by = 0;
            if let Some(n) = self.redemptions.get_mut(&(p.campaign, p.user)) {
                *n -= 1;
            }
        }
    }

    fn refund(&mut self, now: u64, id: u64, payment_id: u64, amount: u64) -> Outcome {
        check_id(id)?;
        check_amount(amount)?;
        let p = self.payments.get(&payment_id).ok_or(E::UnknownPayment)?;
        if p.status != PaymentStatus::Succeeded {
            return Err(E::InvalidState);
        }
        let remaining = money::remaining_legs(&p.legs, &p.refunded);
        if amount > remaining.total() {
            return Err(E::RefundExceedsPayment);
        }
        let legs = money::refund_legs(&remaining, amount);
        let full = amount == remaining.total();
        let (currency, user, merchant, rider, campaign) =
            (p.currency, p.user, p.merchant, p.rider, p.campaign);
        let wallet = account_id(Kind::Wallet, currency, user);
        let parts = [
            (
                0,
                account_id(Kind::Merchant, currency, merchant),
                legs.merchant,
                E::MerchantBalanceInsufficient,
            ),
            (1, account_id(Kind::Rider, currency, rider), legs.rider, E::RiderBalanceInsufficient),
            (2, account_id(Kind::PlatformRevenue, currency, 0), legs.platform, E::InvalidState),
        ];
        let mut chain = Vec::with_capacity(4);
        for (leg, from, value, short) in parts {
            if value > 0 {
                chain.push(Leg {
                    transfer: transfer(
                        OpTag::Refund,
                        id,
                        leg,
                        from,
                        wallet,
                        value,
                        currency,
                        Reason::Refund,
                    ),
                    short,
                });
            }
        }
        if legs.coupon > 0 {
            let budget = account_id(Kind::CampaignBudget, currency, campaign);
            chain.push(Leg {
                transfer: transfer(
                    OpTag::Refund,
                    id,
                    3,
                    wallet,
                    budget,
                    legs.coupon,
                    currency,
                    Reason::CouponReturn,
                ),
                short: E::InvalidState,
            });
        }
        self.chain(now, &mut chain)?;
        let p = self.payments.get_mut(&payment_id).expect("payment");
        p.refunded = p.refunded.plus(&legs);
        p.refunds.push(id);
        let p = p.clone();
        if full {
            self.restore_coupon(now, &p, payment_id);
        }
        let period = &mut self.merchants.get_mut(&merchant).expect("merchant").period;
        period.refunds += legs.merchant;
        period.commission_returned += legs.platform;
        self.refunds.insert(id, (payment_id, amount));
        Ok(Done::Refund { amount, legs, full })
    }

    /// What a merchant can be paid out now: posted credits less posted and held debits.
    pub fn merchant_available(&self, currency: u32, merchant: u64) -> u64 {
        let a = self
            .ledger
            .lookup_account(account_id(Kind::Merchant, currency, merchant))
            .expect("merchant account");
        let available = a.credits_posted - a.debits_posted - a.debits_pending;
        // Only balances inflated through the ledger endpoints can exceed this: pay them out in
        // payouts of at most AMOUNT_MAX.
        u64::try_from(available).unwrap_or(u64::MAX).min(AMOUNT_MAX)
    }

    fn payout(&mut self, now: u64, id: u64, merchant_id: u64, amount: u64) -> Outcome {
        check_id(id)?;
        if amount > AMOUNT_MAX {
            return Err(E::InvalidAmount);
        }
        let m = self.merchants.get(&merchant_id).ok_or(E::UnknownMerchant)?;
        let (currency, channel) = (m.currency, m.channel);
        let available = self.merchant_available(currency, merchant_id);
        let amount = if amount == 0 { available } else { amount };
        if amount == 0 {
            return Err(E::InvalidAmount);
        }
        let payout = chart::transfer_id(OpTag::Payout, id, 0);
        let mut t = transfer(
            OpTag::Payout,
            id,
            0,
            account_id(Kind::Merchant, currency, merchant_id),
            account_id(Kind::PayoutsInTransit, currency, 0),
            amount,
            currency,
            Reason::Payout,
        );
        t.flags = TransferFlags::PENDING;
        self.chain(now, &mut [Leg { transfer: t, short: E::MerchantBalanceInsufficient }])?;
        self.payouts.insert(payout, Payout { merchant: merchant_id, channel, currency, amount });
        Ok(Done::Payout { payout, amount })
    }

    fn settlement_run(&mut self, now: u64, id: u64) -> Outcome {
        check_id(id)?;
        let mut lines = Vec::new();
        let mut transfers = Vec::new();
        for &merchant in &self.merchant_ids {
            let m = &self.merchants[&merchant];
            let net = self.merchant_available(m.currency, merchant);
            if net == 0 && m.period == Statement::default() {
                continue;
            }
            let payout = if net > 0 { settlement_payout_id(id, merchant) } else { 0 };
            if net > 0 {
                let mut t = transfer(
                    OpTag::Payout,
                    0,
                    0,
                    account_id(Kind::Merchant, m.currency, merchant),
                    account_id(Kind::PayoutsInTransit, m.currency, 0),
                    net,
                    m.currency,
                    Reason::Payout,
                );
                t.id = payout;
                t.user_data_64 = id;
                t.flags = TransferFlags::PENDING;
                transfers.push(t);
            }
            lines.push(SettlementLine {
                merchant,
                channel: m.channel,
                currency: m.currency,
                payout,
                statement: m.period,
                net,
            });
        }
        // Each payout stands alone (not linked), taking what its merchant has available, so
        // none fails, unless operators closed a merchant's account through the ledger
        // endpoints: that merchant is then paid nothing this run, and nothing else changes.
        let mut results = Vec::new();
        let mut failed = Vec::new();
        for chunk in transfers.chunks(BATCH_EVENTS_MAX) {
            let timestamp = now.max(self.ledger.timestamp_min(chunk.len()));
            self.ledger.create_transfers(timestamp, chunk, &mut results);
            for (t, r) in chunk.iter().zip(&results) {
                if *r != CreateTransferResult::Created {
                    failed.push(t.id);
                }
            }
        }
        for line in lines.iter_mut().filter(|l| l.payout != 0 && failed.contains(&l.payout)) {
            line.payout = 0;
            line.net = 0;
        }
        for line in &lines {
            self.merchants.get_mut(&line.merchant).expect("merchant").period = Statement::default();
            if line.net > 0 {
                self.payouts.insert(
                    line.payout,
                    Payout {
                        merchant: line.merchant,
                        channel: line.channel,
                        currency: line.currency,
                        amount: line.net,
                    },
                );
            }
        }
        self.settlements.insert(id, lines.clone());
        Ok(Done::Settlement { lines })
    }

    fn payout_result(&mut self, now: u64, payout: u128, ok: bool) -> Outcome {
        let p = *self.payouts.get(&payout).ok_or(E::UnknownPayout)?;
        // Ids of the answer's transfers: derived from the payout's, in the payout-result space.
        let op = u64::try_from(payout >> 8 & u128::from(u64::MAX)).expect("masked");
        let mut post = resolve(OpTag::PayoutResult, op, 0, payout, ok);
        post.id = payout_result_id(payout, 0);
        let mut chain = vec![Leg { transfer: post, short: E::InvalidState }];
        if ok {
            let mut out = transfer(
                OpTag::PayoutResult,
                op,
                1,
                account_id(Kind::PayoutsInTransit, p.currency, 0),
                account_id(Kind::Channel, p.currency, p.channel),
                p.amount,
                p.currency,
                Reason::PayoutSettled,
            );
            out.id = payout_result_id(payout, 1);
            chain.push(Leg { transfer: out, short: E::InvalidState });
        }
        self.chain(now, &mut chain)?;
        Ok(Done::Payout { payout, amount: p.amount })
    }

    // Queries.

    /// A payment and its current status, from memory or the history store.
    pub fn payment(&self, id: u64) -> Option<(Payment, PaymentStatus)> {
        let p = self.stored(&self.payments, id)?;
        let status = self.payment_status(id, &p);
        Some((p, status))
    }

    /// A page of a merchant's (`merchant`) or a user's payment ids, newest first, after the
    /// payment `starting_after` (from the top when `None`); `None` if that payment is not in
    /// the list.
    pub fn payments_page(
        &self,
        merchant: bool,
        party: u64,
        starting_after: Option<u64>,
        limit: usize,
    ) -> Option<Vec<u64>> {
        let before = match starting_after {
            None => None,
            Some(after) => {
                let (p, _) = self.payment(after)?;
                if party != if merchant { p.merchant } else { p.user } {
                    return None;
                }
                Some((p.timestamp, after))
            }
        };
        let lists = if merchant { &self.by_merchant } else { &self.by_user };
        let list = lists.get(&party).map(Vec::as_slice).unwrap_or_default();
        // Memory holds the newest entries, the store the ones before them.
        let mut page: Vec<(u64, u64)> = list
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| **e < b))
            .take(limit)
            .copied()
            .collect();
        // The store's part ends where memory's begins: after a restart from an older checkpoint
        // the store may also hold entries that memory holds again.
        let store_before = match (before, list.first()) {
            (Some(b), Some(&first)) => Some(b.min(first)),
            (b, first) => b.or(first.copied()),
        };
        self.listed_before(merchant, party, store_before, limit, &mut page);
        Some(page.into_iter().map(|(_, id)| id).collect())
    }

    /// A refund's payment and amount.
    pub fn refund_of(&self, id: u64) -> Option<(u64, u64)> {
        self.stored(&self.refunds, id)
    }

    pub fn account(&self, kind: Kind, currency: u32, entity: u64) -> Option<&Account> {
        self.ledger.lookup_account(account_id(kind, currency, entity))
    }

    /// An account's entries per `filter`, from memory and the history store. A store that
    /// cannot be read is a broken disk: stopping beats a statement with entries missing.
    pub fn statement(&self, filter: &AccountFilter) -> Vec<Transfer> {
        self.account_transfers(filter).expect("history store read")
    }

    pub fn campaign(&self, id: u64) -> Option<(&Campaign, u64)> {
        let c = self.campaigns.get(&id)?;
        let a = self.account(Kind::CampaignBudget, c.currency, id).expect("budget account");
        let left = u64::try_from(a.credits_posted - a.debits_posted - a.debits_pending)
            .unwrap_or(u64::MAX);
        Some((c, left))
    }

    pub fn settlement(&self, id: u64) -> Option<&[SettlementLine]> {
        self.settlements.get(&id).map(Vec::as_slice)
    }

    /// The currency of a user's wallet.
    pub fn user_currency(&self, id: u64) -> Option<u32> {
        self.users.get(&id).copied()
    }

    pub fn rider_currency(&self, id: u64) -> Option<u32> {
        self.riders.get(&id).copied()
    }

    pub fn channel_currency(&self, id: u64) -> Option<u32> {
        self.channels.get(&id).copied()
    }

    pub fn merchant(&self, id: u64) -> Option<&Merchant> {
        self.merchants.get(&id)
    }

    pub fn payout_of(&self, id: u128) -> Option<Payout> {
        self.stored(&self.payouts, id)
    }

    pub fn hold_of(&self, id: u64) -> Option<(Hold, Option<PendingStatus>)> {
        let hold = self.stored(&self.holds, id)?;
        let tag = match hold.kind {
            HoldKind::TopUp => OpTag::TopUp,
            HoldKind::Withdrawal => OpTag::Withdrawal,
        };
        let status = self.pending_status(chart::transfer_id(tag, id, 0));
        Some((hold, status.expect("history store read")))
    }

    /// The first outcome of the operation `op` stands for (by kind and id), if it ran.
    pub fn outcome_of(&self, op: &Op) -> Option<Outcome> {
        let key = op_key(op);
        if let Some((_, outcome)) = self.stored(&self.outcomes, key) {
            return Some(outcome);
        }
        match *op {
            Op::Pay { id, .. } => self.stored(&self.payments, id).map(|p| p.first_outcome()),
            _ => None,
        }
    }

    /// How many payments are held in memory (the rest are in the history store).
    pub fn payments_in_memory(&self) -> usize {
        self.payments.len()
    }

    /// Every payment, by id. Holds them all in memory: for tests and small states.
    pub fn payments_all(&self) -> Vec<(u64, Payment)> {
        let mut all = Vec::new();
        self.for_each_payment(|id, p| all.push((id, p.clone())));
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Calls `f` with every payment, from the history store and memory, in no particular
    /// order. For audits and exports, not for hot paths.
    pub fn for_each_payment(&self, mut f: impl FnMut(u64, &Payment)) {
        self.for_each_stored(&self.payments, |id, p| f(id, p));
    }

    pub fn campaigns(&self) -> impl Iterator<Item = (u64, &Campaign)> {
        self.campaigns.iter().map(|(&id, c)| (id, c))
    }

    pub fn settlements_all(&self) -> impl Iterator<Item = (u64, &[SettlementLine])> {
        self.settlements.iter().map(|(&id, lines)| (id, lines.as_slice()))
    }

    /// Every payout, by id, from the history store and memory. Not for hot paths.
    pub fn payouts(&self) -> Vec<(u128, Payout)> {
        let mut all = Vec::new();
        self.for_each_stored(&self.payouts, |id, p| all.push((id, *p)));
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Every top-up and withdrawal, for exports. Not for hot paths.
    pub fn holds(&self) -> Vec<(u64, Hold)> {
        let mut all = Vec::new();
        self.for_each_stored(&self.holds, |id, h| all.push((id, *h)));
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }
}

/// The ledger id of a settlement run's payout to one merchant.
pub fn settlement_payout_id(run: u64, merchant: u64) -> u128 {
    debug_assert!(merchant <= ENTITY_ID_MAX && run <= ENTITY_ID_MAX);
    (u128::from(OpTag::Settlement as u8) << 120) | (u128::from(run) << 56) | u128::from(merchant)
}

/// The ids of a payout result's transfers: the payout's id with its tag byte replaced, and that
/// tag kept in the byte below (free in both kinds of payout id), so the answers to an instant
/// payout and to a settlement payout whose other bits match still have different ids.
fn payout_result_id(payout: u128, leg: u8) -> u128 {
    let tag = if leg == 0 { OpTag::PayoutResult } else { OpTag::PayoutSettled };
    debug_assert_eq!(payout >> 112 & 0xFF, 0, "byte 14 of a payout id is free");
    let payout_tag = payout >> 120;
    (payout & !(0xFF << 120)) | ((tag as u128) << 120) | (payout_tag << 112)
}

/// Adds a payment to a list kept in (timestamp, id) order: the payments of one batch share a
/// timestamp.
fn list(list: &mut Vec<(u64, u64)>, entry: (u64, u64)) {
    let at = list.iter().rposition(|e| *e < entry).map_or(0, |i| i + 1);
    list.insert(at, entry);
}

fn check_id(id: u64) -> Result<(), PaymentError> {
    if id == 0 || id > ENTITY_ID_MAX {
        return Err(E::InvalidId);
    }
    Ok(())
}

fn check_amount(amount: u64) -> Result<(), PaymentError> {
    if amount == 0 || amount > AMOUNT_MAX {
        return Err(E::InvalidAmount);
    }
    Ok(())
}

fn timeout(timeout_s: u32) -> u32 {
    if timeout_s == 0 {
        TIMEOUT_S_DEFAULT
    } else {
        timeout_s.min(TIMEOUT_S_MAX)
    }
}

#[allow(clippy::too_many_arguments)]
fn transfer(
    tag: OpTag,
    op: u64,
    leg: u8,
    debit: u128,
    credit: u128,
    amount: u64,
    currency: u32,
    reason: Reason,
) -> Transfer {
    Transfer {
        id: chart::transfer_id(tag, op, leg),
        debit_account_id: debit,
        credit_account_id: credit,
        amount: u128::from(amount),
        user_data_64: op,
        user_data_32: tag as u32,
        ledger: currency,
        code: reason as u16,
        ..Transfer::default()
    }
}

/// How many holds a payment made through a bank channel has: the money (leg 0), and the
/// coupon's reservation (leg 1) when it has one.
pub(crate) fn holds(legs: &Legs) -> u8 {
    1 + u8::from(legs.coupon > 0)
}

/// The tag of the ledger transfers of a top-up's or a withdrawal's hold.
pub(crate) fn hold_tag(kind: HoldKind) -> OpTag {
    match kind {
        HoldKind::TopUp => OpTag::TopUp,
        HoldKind::Withdrawal => OpTag::Withdrawal,
    }
}

/// Posts (`post`) or voids the holds of an authorized payment: the money, and the coupon's
/// discount when it has one.
fn resolve_holds(tag: OpTag, id: u64, p: &Payment, post: bool) -> Vec<Leg> {
    (0..holds(&p.legs))
        .map(|leg| Leg {
            transfer: resolve(tag, id, leg, chart::transfer_id(OpTag::Payment, id, leg), post),
            short: E::InvalidState,
        })
        .collect()
}

/// Posts (whole) or voids a pending transfer.
fn resolve(tag: OpTag, op: u64, leg: u8, pending: u128, post: bool) -> Transfer {
    Transfer {
        id: chart::transfer_id(tag, op, leg),
        pending_id: pending,
        amount: if post { LEDGER_AMOUNT_MAX } else { 0 },
        flags: if post {
            TransferFlags::POST_PENDING_TRANSFER
        } else {
            TransferFlags::VOID_PENDING_TRANSFER
        },
        user_data_64: op,
        user_data_32: tag as u32,
        ..Transfer::default()
    }
}

/// The kind of a payment's key (`op_key`).
const PAY_KIND: u8 = 10;
/// The kind of the key of a payment's capture or release.
const RESOLVE_KIND: u8 = 11;

/// The idempotency key of an operation: its kind and its id.
pub(crate) fn op_key(op: &Op) -> (u8, u128) {
    match *op {
        Op::CreateChannel { id, .. } => (1, id.into()),
        Op::CreateUser { id, .. } => (2, id.into()),
        Op::CreateMerchant { id, .. } => (3, id.into()),
        Op::CreateRider { id, .. } => (4, id.into()),
        Op::CreateCampaign { id, .. } => (5, id.into()),
        Op::GrantCoupon { id, .. } => (6, id.into()),
        // Top-ups and withdrawals share one id space, so a bank answer names one hold.
        Op::TopUp { id, .. } | Op::Withdraw { id, .. } => (7, id.into()),
        Op::BankResult { id, .. } => (9, id.into()),
        Op::Pay { id, .. } => (PAY_KIND, id.into()),
        // Capture and release share a key: a payment is resolved once, either way.
        Op::Capture { id } | Op::Release { id } => (RESOLVE_KIND, id.into()),
        Op::Refund { id, .. } => (13, id.into()),
        Op::Payout { id, .. } => (14, id.into()),
        Op::SettlementRun { id } => (15, id.into()),
        Op::PayoutResult { payout, .. } => (16, payout),
        Op::Batch(_)
        | Op::Expire
        | Op::Keyed { .. }
        | Op::LedgerAccounts(_)
        | Op::LedgerTransfers(_)
        | Op::Webhook(_) => (0, 0),
    }
}

/// The id field of an operation that creates something (and names itself by that id).
fn id_field(op: &mut Op) -> Option<&mut u64> {
    match op {
        Op::CreateChannel { id, .. }
        | Op::CreateUser { id, .. }
        | Op::CreateMerchant { id, .. }
        | Op::CreateRider { id, .. }
        | Op::CreateCampaign { id, .. }
        | Op::GrantCoupon { id, .. }
        | Op::TopUp { id, .. }
        | Op::Withdraw { id, .. }
        | Op::Pay { id, .. }
        | Op::Refund { id, .. }
        | Op::Payout { id, .. }
        | Op::SettlementRun { id } => Some(id),
        _ => None,
    }
}

/// FNV-1a over the operation's encoding: tells a retry from a different operation with the
/// same id.
fn fingerprint(op: &Op) -> u64 {
    let mut bytes = Vec::with_capacity(96);
    crate::command::codec::encode(op, &mut bytes);
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
