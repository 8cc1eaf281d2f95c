//! The operations of the payment domain, their outcomes and errors, and the binary encoding of
//! operations for the journal.

use huifu_ledger::{Account, CreateAccountResult, CreateTransferResult, Transfer};

use crate::money::Legs;
use crate::webhooks::{WebhookDone, WebhookOp};

/// Who pays for a coupon campaign's discounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Funder {
    Platform,
    Merchant(u64),
}

/// A coupon rule: amount off an order, above a minimum, within a window, a few times per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CouponRule {
    /// Discount in minor units (capped at the order's food amount).
    pub amount_off: u64,
    /// Smallest food amount the coupon applies to.
    pub min_order: u64,
    /// Valid from this time (nanoseconds since the Unix epoch, inclusive).
    pub valid_from: u64,
    /// Valid until this time (exclusive); zero for no end.
    pub valid_until: u64,
    /// Redemptions of this campaign per user; zero for no limit.
    pub per_user_limit: u32,
}

/// One operation. Every operation carries an id chosen by the client: applying the same
/// operation again returns the first outcome; the same id with different fields is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    CreateChannel {
        id: u64,
        currency: u32,
    },
    CreateUser {
        id: u64,
        currency: u32,
    },
    /// `channel`: the bank channel payouts go through.
    CreateMerchant {
        id: u64,
        currency: u32,
        commission_bps: u32,
        channel: u64,
    },
    CreateRider {
        id: u64,
        currency: u32,
    },
    /// Moves `budget` from the funder into the campaign's budget account.
    CreateCampaign {
        id: u64,
        currency: u32,
        funder: Funder,
        budget: u64,
        rule: CouponRule,
    },
    GrantCoupon {
        id: u64,
        campaign: u64,
        user: u64,
    },
    /// Money into a wallet through a bank channel: held until the bank confirms.
    TopUp {
        id: u64,
        user: u64,
        channel: u64,
        amount: u64,
        timeout_s: u32,
    },
    /// Money out of a wallet through a bank channel: held until the bank confirms.
    Withdraw {
        id: u64,
        user: u64,
        channel: u64,
        amount: u64,
        timeout_s: u32,
    },
    /// The bank's answer to a top-up or withdrawal: `ok` posts it, otherwise it is voided.
    BankResult {
        id: u64,
        ok: bool,
    },
    /// A user pays an order. `coupon` 0 for none; `channel` 0 to pay from the wallet, otherwise
    /// the bank channel that holds the money until `Capture` (or `Release`, or the timeout).
    Pay {
        id: u64,
        user: u64,
        merchant: u64,
        rider: u64,
        food: u64,
        delivery: u64,
        coupon: u64,
        channel: u64,
        timeout_s: u32,
    },
    Capture {
        id: u64,
    },
    Release {
        id: u64,
    },
    Refund {
        id: u64,
        payment: u64,
        amount: u64,
    },
    /// An instant payout of `amount` (0: all that is available) to the merchant's bank.
    Payout {
        id: u64,
        merchant: u64,
        amount: u64,
    },
    /// Pays every merchant what it is owed now, one payout each.
    SettlementRun {
        id: u64,
    },
    /// The bank's answer to a payout: `ok` completes it, otherwise the money returns to the
    /// merchant's balance.
    PayoutResult {
        payout: u128,
        ok: bool,
    },
    /// Several independent operations in one journal record, each with its own outcome.
    Batch(Vec<Op>),
    /// `op` under a client's idempotency key: the first time, the machine gives `op` a fresh id
    /// (its `id` field must be 0) and keeps the outcome under the key; a retry with the same key
    /// and the same `op` returns that outcome, with a different `op` it is rejected.
    Keyed {
        key: u128,
        op: Box<Op>,
    },
    /// Accounts straight into the ledger (operators' adjustments and tools).
    LedgerAccounts(Vec<Account>),
    /// Transfers straight into the ledger (operators' adjustments and tools).
    LedgerTransfers(Vec<Transfer>),
    /// Expires holds whose timeout passed (issued by the engine's clock, never by clients).
    Expire,
    /// A change to the webhook endpoints or their delivery positions.
    Webhook(WebhookOp),
}

/// What a successful operation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    Created,
    Payment {
        status: PaymentStatus,
        total: u64,
        legs: Legs,
        /// The payment's currency: its user's.
        currency: u32,
    },
    Refund {
        amount: u64,
        legs: Legs,
        full: bool,
    },
    Hold {
        amount: u64,
    },
    Payout {
        payout: u128,
        amount: u64,
    },
    Settlement {
        lines: Vec<SettlementLine>,
    },
    Batch(Vec<Outcome>),
    Expired(usize),
    /// The outcome of a keyed operation, with the id it was given.
    Allocated {
        id: u64,
        outcome: Box<Outcome>,
    },
    LedgerAccounts(Vec<CreateAccountResult>),
    LedgerTransfers(Vec<CreateTransferResult>),
    Webhook(WebhookDone),
}

pub type Outcome = Result<Done, PaymentError>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// Held at the bank channel, waiting for capture.
    Authorized,
    Succeeded,
    /// The hold was released (by request or by the bank's failure).
    Released,
    /// The hold timed out.
    Expired,
}

impl PaymentStatus {
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Released => "released",
            PaymentStatus::Expired => "expired",
        }
    }
}

/// One merchant's part of a settlement run: its statement since the previous run and its payout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SettlementLine {
    pub merchant: u64,
    pub channel: u64,
    pub currency: u32,
    /// Ledger id of the payout's pending transfer (zero when nothing was paid out).
    pub payout: u128,
    pub statement: Statement,
    /// Paid out: the merchant's whole available balance at the run.
    pub net: u64,
}

/// A merchant's figures over a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Statement {
    pub payments: u64,
    /// Food amounts of the payments.
    pub gross: u64,
    /// Merchant legs given back by refunds.
    pub refunds: u64,
    /// Commission charged.
    pub commission: u64,
    /// Commission given back by refunds.
    pub commission_returned: u64,
    /// Discounts of the merchant's own campaigns.
    pub discounts: u64,
}

/// Why an operation was rejected. It changed nothing (but the id is now taken by the rejection:
/// a retry returns it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum PaymentError {
    #[error("the id is already used by a different operation")]
    IdempotencyConflict,
    #[error("the id is zero or above the largest id")]
    InvalidId,
    #[error("the amount is zero or too large")]
    InvalidAmount,
    #[error("the commission rate is above 10,000 basis points")]
    InvalidCommission,
    #[error("the currencies of the parties differ")]
    CurrencyMismatch,
    #[error("unknown user")]
    UnknownUser,
    #[error("unknown merchant")]
    UnknownMerchant,
    #[error("unknown rider")]
    UnknownRider,
    #[error("unknown bank channel")]
    UnknownChannel,
    #[error("unknown campaign")]
    UnknownCampaign,
    #[error("unknown coupon")]
    UnknownCoupon,
    #[error("unknown payment")]
    UnknownPayment,
    #[error("unknown operation")]
    UnknownOperation,
    #[error("unknown payout")]
    UnknownPayout,
    #[error("the coupon belongs to another user")]
    CouponNotOwned,
    #[error("the coupon was already used")]
    CouponUsed,
    #[error("the coupon is not valid at this time")]
    CouponNotValidNow,
    #[error("the order is below the coupon's minimum")]
    CouponMinimumNotMet,
    #[error("the user reached the campaign's limit of redemptions")]
    CouponLimitReached,
    #[error("the campaign's budget is spent")]
    BudgetExhausted,
    #[error("the wallet balance is insufficient")]
    InsufficientFunds,
    #[error("the merchant's balance cannot cover it (already paid out)")]
    MerchantBalanceInsufficient,
    #[error("the rider's balance cannot cover the delivery fee's refund")]
    RiderBalanceInsufficient,
    #[error("the refund is above what remains of the payment")]
    RefundExceedsPayment,
    #[error("the payment cannot be refunded or changed in its state")]
    InvalidState,
    #[error("the hold timed out")]
    HoldExpired,
    #[error("nested batches are not allowed")]
    NestedBatch,
    #[error("an account with this party's id exists in the ledger with other fields")]
    AccountConflict,
    #[error("an account of the operation is closed")]
    AccountClosed,
    #[error("the ledger rejected the operation")]
    LedgerRejected,
    #[error("the batch is too large")]
    BatchTooLarge,
    #[error("unknown webhook endpoint")]
    UnknownWebhookEndpoint,
    #[error("too many webhook endpoints")]
    TooManyWebhookEndpoints,
}

impl PaymentError {
    /// Every error, in a fixed order (their index is their number in snapshots).
    pub const ALL: &'static [PaymentError] = &[
        PaymentError::IdempotencyConflict,
        PaymentError::InvalidId,
        PaymentError::InvalidAmount,
        PaymentError::InvalidCommission,
        PaymentError::CurrencyMismatch,
        PaymentError::UnknownUser,
        PaymentError::UnknownMerchant,
        PaymentError::UnknownRider,
        PaymentError::UnknownChannel,
        PaymentError::UnknownCampaign,
        PaymentError::UnknownCoupon,
        PaymentError::UnknownPayment,
        PaymentError::UnknownOperation,
        PaymentError::UnknownPayout,
        PaymentError::CouponNotOwned,
        PaymentError::CouponUsed,
        PaymentError::CouponNotValidNow,
        PaymentError::CouponMinimumNotMet,
        PaymentError::CouponLimitReached,
        PaymentError::BudgetExhausted,
        PaymentError::InsufficientFunds,
        PaymentError::MerchantBalanceInsufficient,
        PaymentError::RiderBalanceInsufficient,
        PaymentError::RefundExceedsPayment,
        PaymentError::InvalidState,
        PaymentError::HoldExpired,
        PaymentError::NestedBatch,
        PaymentError::AccountConflict,
        PaymentError::AccountClosed,
        PaymentError::LedgerRejected,
        PaymentError::BatchTooLarge,
        PaymentError::UnknownWebhookEndpoint,
        PaymentError::TooManyWebhookEndpoints,
    ];

    /// A stable snake_case code for clients.
    pub fn code(self) -> &'static str {
        use PaymentError as E;
        match self {
            E::IdempotencyConflict => "idempotency_conflict",
            E::InvalidId => "invalid_id",
            E::InvalidAmount => "invalid_amount",
            E::InvalidCommission => "invalid_commission",
            E::CurrencyMismatch => "currency_mismatch",
            E::UnknownUser => "unknown_user",
            E::UnknownMerchant => "unknown_merchant",
            E::UnknownRider => "unknown_rider",
            E::UnknownChannel => "unknown_channel",
            E::UnknownCampaign => "unknown_campaign",
            E::UnknownCoupon => "unknown_coupon",
            E::UnknownPayment => "unknown_payment",
            E::UnknownOperation => "unknown_operation",
            E::UnknownPayout => "unknown_payout",
            E::CouponNotOwned => "coupon_not_owned",
            E::CouponUsed => "coupon_used",
            E::CouponNotValidNow => "coupon_not_valid_now",
            E::CouponMinimumNotMet => "coupon_minimum_not_met",
            E::CouponLimitReached => "coupon_limit_reached",
            E::BudgetExhausted => "budget_exhausted",
            E::InsufficientFunds => "insufficient_funds",
            E::MerchantBalanceInsufficient => "merchant_balance_insufficient",
            E::RiderBalanceInsufficient => "rider_balance_insufficient",
            E::RefundExceedsPayment => "refund_exceeds_payment",
            E::InvalidState => "invalid_state",
            E::HoldExpired => "hold_expired",
            E::NestedBatch => "nested_batch",
            E::AccountConflict => "account_conflict",
            E::AccountClosed => "account_closed",
            E::LedgerRejected => "ledger_rejected",
            E::BatchTooLarge => "batch_too_large",
            E::UnknownWebhookEndpoint => "unknown_webhook_endpoint",
            E::TooManyWebhookEndpoints => "too_many_webhook_endpoints",
        }
    }
}

/// Little-endian encoding of operations: a tag byte, then the fields in order.
pub mod codec {
    use super::{CouponRule, Funder, Op};

    pub fn encode(op: &Op, out: &mut Vec<u8>) {
        let mut w = W(out);
        match op {
            Op::CreateChannel { id, currency } => {
                w.u8(1);
                w.u64(*id);
                w.u32(*currency);
            }
            Op::CreateUser { id, currency } => {
                w.u8(2);
                w.u64(*id);
                w.u32(*currency);
            }
            Op::CreateMerchant { id, currency, commission_bps, channel } => {
                w.u8(3);
                w.u64(*id);
                w.u32(*currency);
                w.u32(*commission_bps);
                w.u64(*channel);
            }
            Op::CreateRider { id, currency } => {
                w.u8(4);
                w.u64(*id);
                w.u32(*currency);
            }
            Op::CreateCampaign { id, currency, funder, budget, rule } => {
                w.u8(5);
                w.u64(*id);
                w.u32(*currency);
                // A kind byte: `Merchant(0)` must not read back as `Platform`.
                match funder {
                    Funder::Platform => w.u8(0),
                    Funder::Merchant(m) => {
                        w.u8(1);
                        w.u64(*m);
                    }
                }
                w.u64(*budget);
                w.u64(rule.amount_off);
                w.u64(rule.min_order);
                w.u64(rule.valid_from);
                w.u64(rule.valid_until);
                w.u32(rule.per_user_limit);
            }
            Op::GrantCoupon { id, campaign, user } => {
                w.u8(6);
                w.u64(*id);
                w.u64(*campaign);
                w.u64(*user);
            }
            Op::TopUp { id, user, channel, amount, timeout_s } => {
                w.u8(7);
                w.u64(*id);
                w.u64(*user);
                w.u64(*channel);
                w.u64(*amount);
                w.u32(*timeout_s);
            }
            Op::Withdraw { id, user, channel, amount, timeout_s } => {
                w.u8(8);
                w.u64(*id);
                w.u64(*user);
                w.u64(*channel);
                w.u64(*amount);
                w.u32(*timeout_s);
            }
            Op::BankResult { id, ok } => {
                w.u8(9);
                w.u64(*id);
                w.u8(u8::from(*ok));
            }
            Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s } => {
                w.u8(10);
                for v in [id, user, merchant, rider, food, delivery, coupon, channel] {
                    w.u64(*v);
                }
                w.u32(*timeout_s);
            }
            Op::Capture { id } => {
                w.u8(11);
                w.u64(*id);
            }
            Op::Release { id } => {
                w.u8(12);
                w.u64(*id);
            }
            Op::Refund { id, payment, amount } => {
                w.u8(13);
                w.u64(*id);
                w.u64(*payment);
                w.u64(*amount);
            }
            Op::Payout { id, merchant, amount } => {
                w.u8(14);
                w.u64(*id);
                w.u64(*merchant);
                w.u64(*amount);
            }
            Op::SettlementRun { id } => {
                w.u8(15);
                w.u64(*id);
            }
            Op::PayoutResult { payout, ok } => {
                w.u8(16);
                w.u128(*payout);
                w.u8(u8::from(*ok));
            }
            Op::Batch(ops) => {
                w.u8(17);
                w.u32(u32::try_from(ops.len()).expect("batch length fits u32"));
                for op in ops {
                    encode(op, w.0);
                }
            }
            Op::Expire => w.u8(18),
            Op::Keyed { .. } | Op::LedgerAccounts(_) | Op::LedgerTransfers(_) | Op::Webhook(_) => {
                encode_more(op, &mut w)
            }
        }
    }

    /// `Keyed` and the ledger operations, after the per-kind tags above.
    fn encode_more(op: &Op, w: &mut W<'_>) {
        match op {
            Op::Keyed { key, op } => {
                w.u8(19);
                w.0.extend_from_slice(&key.to_le_bytes());
                encode(op, w.0);
            }
            Op::LedgerAccounts(accounts) => {
                w.u8(20);
                w.u32(u32::try_from(accounts.len()).expect("batch length fits u32"));
                huifu_ledger::codec::encode_accounts(accounts, w.0);
            }
            Op::LedgerTransfers(transfers) => {
                w.u8(21);
                w.u32(u32::try_from(transfers.len()).expect("batch length fits u32"));
                huifu_ledger::codec::encode_transfers(transfers, w.0);
            }
            Op::Webhook(op) => {
                w.u8(22);
                let mut bytes = Vec::new();
                crate::webhooks::codec::encode_op(op, &mut bytes);
                w.u32(u32::try_from(bytes.len()).expect("a webhook operation fits u32"));
                w.0.extend_from_slice(&bytes);
            }
            _ => unreachable!("encoded by encode"),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Op, String> {
        let mut r = R(bytes, 0);
        let op = decode_one(&mut r)?;
        if !r.0.is_empty() {
            return Err(format!("{} trailing bytes", r.0.len()));
        }
        Ok(op)
    }

    /// Reads one operation. Whatever `encode` writes reads back, nested batches and batches
    /// above the limits included: the machine rejects those, but they are journaled before they
    /// are applied, so a restart must read them again.
    fn decode_one(r: &mut R<'_>) -> Result<Op, String> {
        let tag = r.u8()?;
        r.1 = tag;
        Ok(match tag {
            1 => Op::CreateChannel { id: r.u64()?, currency: r.u32()? },
            2 => Op::CreateUser { id: r.u64()?, currency: r.u32()? },
            3 => Op::CreateMerchant {
                id: r.u64()?,
                currency: r.u32()?,
                commission_bps: r.u32()?,
                channel: r.u64()?,
            },
            4 => Op::CreateRider { id: r.u64()?, currency: r.u32()? },
            5 => Op::CreateCampaign {
                id: r.u64()?,
                currency: r.u32()?,
                funder: match r.u8()? {
                    0 => Funder::Platform,
                    1 => Funder::Merchant(r.u64()?),
                    kind => return Err(format!("unknown funder kind {kind}")),
                },
                budget: r.u64()?,
                rule: CouponRule {
                    amount_off: r.u64()?,
                    min_order: r.u64()?,
                    valid_from: r.u64()?,
                    valid_until: r.u64()?,
                    per_user_limit: r.u32()?,
                },
            },
            6 => Op::GrantCoupon { id: r.u64()?, campaign: r.u64()?, user: r.u64()? },
            7 => Op::TopUp {
                id: r.u64()?,
                user: r.u64()?,
                channel: r.u64()?,
                amount: r.u64()?,
                timeout_s: r.u32()?,
            },
            8 => Op::Withdraw {
                id: r.u64()?,
                user: r.u64()?,
                channel: r.u64()?,
                amount: r.u64()?,
                timeout_s: r.u32()?,
            },
            9 => Op::BankResult { id: r.u64()?, ok: r.bool()? },
            10 => Op::Pay {
                id: r.u64()?,
                user: r.u64()?,
                merchant: r.u64()?,
                rider: r.u64()?,
                food: r.u64()?,
                delivery: r.u64()?,
                coupon: r.u64()?,
                channel: r.u64()?,
                timeout_s: r.u32()?,
            },
            11 => Op::Capture { id: r.u64()? },
            12 => Op::Release { id: r.u64()? },
            13 => Op::Refund { id: r.u64()?, payment: r.u64()?, amount: r.u64()? },
            14 => Op::Payout { id: r.u64()?, merchant: r.u64()?, amount: r.u64()? },
            15 => Op::SettlementRun { id: r.u64()? },
            16 => Op::PayoutResult { payout: r.u128()?, ok: r.bool()? },
            17 => {
                let n = usize::try_from(r.u32()?).map_err(|_| "batch too long")?;
                // An operation takes at least one byte: allocate no more than the input allows.
                let mut ops = Vec::with_capacity(n.min(r.0.len()));
                for _ in 0..n {
                    ops.push(decode_one(r)?);
                }
                Op::Batch(ops)
            }
            18 => Op::Expire,
            19 => {
                let key = r.u128()?;
                let op = decode_one(r)?;
                Op::Keyed { key, op: Box::new(op) }
            }
            20 | 21 => {
                let tag = r.1;
                let n = usize::try_from(r.u32()?).map_err(|_| "batch too long")?;
                let bytes = r.bytes(n * huifu_ledger::constants::EVENT_SIZE)?;
                if tag == 20 {
                    Op::LedgerAccounts(
                        huifu_ledger::codec::decode_accounts(bytes).ok_or("accounts")?,
                    )
                } else {
                    Op::LedgerTransfers(
                        huifu_ledger::codec::decode_transfers(bytes).ok_or("transfers")?,
                    )
                }
            }
            22 => {
                let n = usize::try_from(r.u32()?).map_err(|_| "webhook operation too long")?;
                Op::Webhook(crate::webhooks::codec::decode_op(r.bytes(n)?)?)
            }
            tag => return Err(format!("unknown operation tag {tag}")),
        })
    }

    /// Little-endian writes, shared with the webhook records (webhooks.rs adds length-prefixed
    /// fields and options).
    pub(crate) struct W<'a>(pub(crate) &'a mut Vec<u8>);
    impl W<'_> {
        pub(crate) fn u8(&mut self, v: u8) {
            self.0.push(v);
        }
        pub(crate) fn u32(&mut self, v: u32) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        pub(crate) fn u64(&mut self, v: u64) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
        pub(crate) fn u128(&mut self, v: u128) {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The bytes left, and the tag of the operation being read (0 outside an operation).
    pub(crate) struct R<'a>(pub(crate) &'a [u8], pub(crate) u8);
    impl<'a> R<'a> {
        pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err("truncated operation".into());
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], String> {
            let (head, rest) = self.0.split_first_chunk::<N>().ok_or("truncated operation")?;
            self.0 = rest;
            Ok(*head)
        }
        pub(crate) fn u8(&mut self) -> Result<u8, String> {
            Ok(self.take::<1>()?[0])
        }
        pub(crate) fn bool(&mut self) -> Result<bool, String> {
            match self.u8()? {
                0 => Ok(false),
                1 => Ok(true),
                b => Err(format!("bad bool {b}")),
            }
        }
        pub(crate) fn u32(&mut self) -> Result<u32, String> {
            Ok(u32::from_le_bytes(self.take()?))
        }
        pub(crate) fn u64(&mut self) -> Result<u64, String> {
            Ok(u64::from_le_bytes(self.take()?))
        }
        pub(crate) fn u128(&mut self) -> Result<u128, String> {
            Ok(u128::from_le_bytes(self.take()?))
        }
    }
}
