//! Shared helpers of the payment tests: a small world, balance readers, a harness that checks
//! every rejection left the money untouched, and a generator of random operation mixes.

#![allow(dead_code)]

pub mod checked;

use std::collections::BTreeMap;

use huifu_ledger::{PendingStatus, Totals};
use huifu_payments::chart::{transfer_id, Kind, OpTag};
use huifu_payments::{
    audit, settlement_payout_id, CouponRule, Done, Funder, Op, Outcome, PaymentError,
    PaymentStatus, PaymentsMachine,
};

pub const CNY: u32 = 156;
pub const EUR: u32 = 978;
/// Nanoseconds in a second.
pub const S: u64 = 1_000_000_000;
/// The tests' epoch: 2023-11-14.
pub const T0: u64 = 1_700_000_000 * S;

/// Posted balance of an account that holds someone's money (credits less debits), zero when the
/// account does not exist.
pub fn posted(m: &PaymentsMachine, kind: Kind, currency: u32, entity: u64) -> i128 {
    m.account(kind, currency, entity).map_or(0, |a| {
        i128::try_from(a.credits_posted).unwrap() - i128::try_from(a.debits_posted).unwrap()
    })
}

/// Posted balance less held debits: what the owner can spend now.
pub fn available(m: &PaymentsMachine, kind: Kind, currency: u32, entity: u64) -> i128 {
    posted(m, kind, currency, entity)
        - m.account(kind, currency, entity).map_or(0, |a| i128::try_from(a.debits_pending).unwrap())
}

/// Credits held (pending) on an account.
pub fn credits_pending(m: &PaymentsMachine, kind: Kind, currency: u32, entity: u64) -> u128 {
    m.account(kind, currency, entity).map_or(0, |a| a.credits_pending)
}

/// Debits held (pending) on an account.
pub fn debits_pending(m: &PaymentsMachine, kind: Kind, currency: u32, entity: u64) -> u128 {
    m.account(kind, currency, entity).map_or(0, |a| a.debits_pending)
}

pub fn wallet(m: &PaymentsMachine, user: u64) -> i128 {
    available(m, Kind::Wallet, CNY, user)
}

pub fn merchant(m: &PaymentsMachine, id: u64) -> i128 {
    available(m, Kind::Merchant, CNY, id)
}

pub fn rider(m: &PaymentsMachine, id: u64) -> i128 {
    available(m, Kind::Rider, CNY, id)
}

pub fn revenue(m: &PaymentsMachine) -> i128 {
    posted(m, Kind::PlatformRevenue, CNY, 0)
}

/// The bank channel's balance as money that left it (debits less credits).
pub fn channel_out(m: &PaymentsMachine, id: u64) -> i128 {
    -posted(m, Kind::Channel, CNY, id)
}

pub fn in_transit(m: &PaymentsMachine) -> i128 {
    -posted(m, Kind::PayoutsInTransit, CNY, 0)
}

pub fn budget_left(m: &PaymentsMachine, campaign: u64) -> u64 {
    m.campaign(campaign).expect("campaign").1
}

/// Everything about the money: the ledger's totals, how many transfers it holds, and the four
/// balances of every account that has any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub totals: Totals,
    pub transfers: usize,
    pub balances: BTreeMap<u128, [u128; 4]>,
}

pub fn money(m: &PaymentsMachine) -> Money {
    let ledger = m.ledger();
    Money {
        totals: ledger.totals(),
        transfers: ledger.transfers().len(),
        balances: ledger
            .accounts()
            .iter()
            .map(|a| {
                (a.id, [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted])
            })
            .filter(|(_, b)| *b != [0; 4])
            .collect(),
    }
}

pub fn assert_audit_clean(m: &PaymentsMachine) {
    let report = audit(m);
    assert!(report.ok(), "audit: {:#?}", report.violations);
    assert!(m.ledger().totals().is_balanced());
}

/// The snapshot bytes of a machine, through the engine's trait.
pub fn snapshot(m: &PaymentsMachine) -> Vec<u8> {
    let mut bytes = Vec::new();
    m.write_snapshot(&mut bytes).expect("snapshot");
    bytes
}

pub fn restore(bytes: &[u8]) -> PaymentsMachine {
    PaymentsMachine::read_snapshot(&mut &bytes[..]).expect("snapshot reads back")
}

/// A machine with a clock that tests move by hand.
pub struct World {
    pub m: PaymentsMachine,
    pub now: u64,
}

impl World {
    pub fn empty() -> World {
        World { m: PaymentsMachine::new(), now: T0 }
    }

    /// Channels 1 (CNY) and 2 (EUR); users 10, 11 (CNY, with 100.00 and 50.00 in their
    /// wallets) and 12 (EUR); merchants 20 (10%), 21 (15%), both CNY paid out through channel 1,
    /// and 22 (EUR); riders 30 (CNY) and 31 (EUR).
    pub fn new() -> World {
        let mut w = World::empty();
        for op in [
            Op::CreateChannel { id: 1, currency: CNY },
            Op::CreateChannel { id: 2, currency: EUR },
            Op::CreateUser { id: 10, currency: CNY },
            Op::CreateUser { id: 11, currency: CNY },
            Op::CreateUser { id: 12, currency: EUR },
            Op::CreateMerchant { id: 20, currency: CNY, commission_bps: 1_000, channel: 1 },
            Op::CreateMerchant { id: 21, currency: CNY, commission_bps: 1_500, channel: 1 },
            Op::CreateMerchant { id: 22, currency: EUR, commission_bps: 1_000, channel: 2 },
            Op::CreateRider { id: 30, currency: CNY },
            Op::CreateRider { id: 31, currency: EUR },
        ] {
            assert_eq!(w.ok(op), Done::Created);
        }
        w.top_up(1_000, 10, 10_000);
        w.top_up(1_001, 11, 5_000);
        w
    }

    pub fn apply(&mut self, op: Op) -> Outcome {
        let outcome = self.m.apply(self.now, &op);
        // Every operation moves the clock on by a millisecond.
        self.now += 1_000_000;
        outcome
    }

    /// Applies `op`, which must succeed, and checks the audit.
    pub fn ok(&mut self, op: Op) -> Done {
        let outcome = self.apply(op.clone());
        let done = outcome.unwrap_or_else(|e| panic!("{op:?} failed: {e:?}"));
        assert_audit_clean(&self.m);
        done
    }

    /// Applies `op`, which must be rejected with `error` and change no money; a retry returns
    /// the same rejection.
    pub fn rejects(&mut self, op: Op, error: PaymentError) {
        let before = money(&self.m);
        assert_eq!(self.apply(op.clone()), Err(error), "{op:?}");
        assert_eq!(money(&self.m), before, "{op:?} changed the money");
        assert_eq!(self.apply(op.clone()), Err(error), "retry of {op:?}");
        assert_audit_clean(&self.m);
    }

    pub fn top_up(&mut self, id: u64, user: u64, amount: u64) {
        assert_eq!(
            self.ok(Op::TopUp { id, user, channel: 1, amount, timeout_s: 0 }),
            Done::Hold { amount }
        );
        assert_eq!(self.ok(Op::BankResult { id, ok: true }), Done::Hold { amount });
    }

    pub fn platform_campaign(&mut self, id: u64, budget: u64, rule: CouponRule) {
        assert_eq!(
            self.ok(Op::CreateCampaign {
                id,
                currency: CNY,
                funder: Funder::Platform,
                budget,
                rule,
            }),
            Done::Created
        );
    }

    pub fn grant(&mut self, id: u64, campaign: u64, user: u64) {
        assert_eq!(self.ok(Op::GrantCoupon { id, campaign, user }), Done::Created);
    }
}

/// A coupon of `amount_off` with no minimum, no end and no limit.
pub fn rule(amount_off: u64) -> CouponRule {
    CouponRule { amount_off, min_order: 0, valid_from: 0, valid_until: 0, per_user_limit: 0 }
}

/// A payment of `food` + `delivery` by `user` at merchant `merchant` with rider 30.
pub fn pay(id: u64, user: u64, merchant: u64, food: u64, delivery: u64, coupon: u64) -> Op {
    Op::Pay { id, user, merchant, rider: 30, food, delivery, coupon, channel: 0, timeout_s: 0 }
}

/// The same payment through bank channel 1, held for `timeout_s`.
pub fn pay_by_bank(
    id: u64,
    user: u64,
    merchant: u64,
    food: u64,
    delivery: u64,
    coupon: u64,
    timeout_s: u32,
) -> Op {
    Op::Pay { id, user, merchant, rider: 30, food, delivery, coupon, channel: 1, timeout_s }
}

// A world for random operation mixes (property and idempotency tests).

pub const USERS: [u64; 5] = [10, 11, 12, 13, 14];
pub const MERCHANTS: [u64; 3] = [20, 21, 22];
pub const RIDERS: [u64; 2] = [30, 31];
pub const CHANNELS: [u64; 2] = [1, 2];
/// Campaign 40 is the platform's, 41 merchant 20's; both have budgets below their demand.
pub const CAMPAIGNS: [u64; 2] = [40, 41];
/// Coupons granted at setup: `coupon_id(campaign, user, k)`, two per user per campaign.
pub const COUPONS: std::ops::Range<u64> = 100..120;

/// The `k`-th coupon (0 or 1) of the user at `user` in `USERS` in the campaign at `campaign`
/// in `CAMPAIGNS`.
pub fn coupon_id(campaign: usize, user: usize, k: usize) -> u64 {
    COUPONS.start + (campaign * USERS.len() * 2 + user * 2 + k) as u64
}

/// Operations that set up the random world (all succeed at `T0`).
pub fn mix_setup() -> Vec<Op> {
    let mut ops = Vec::new();
    for &id in &CHANNELS {
        ops.push(Op::CreateChannel { id, currency: CNY });
    }
    for &id in &USERS {
        ops.push(Op::CreateUser { id, currency: CNY });
    }
    for (i, &id) in MERCHANTS.iter().enumerate() {
        ops.push(Op::CreateMerchant {
            id,
            currency: CNY,
            commission_bps: [1_000, 0, 2_500][i],
            channel: CHANNELS[i % 2],
        });
    }
    for &id in &RIDERS {
        ops.push(Op::CreateRider { id, currency: CNY });
    }
    // Money in every wallet, and a payment that gives merchant 20 what its campaign needs.
    for (i, &user) in USERS.iter().enumerate() {
        let id = 90 + i as u64;
        ops.push(Op::TopUp { id, user, channel: CHANNELS[i % 2], amount: 20_000, timeout_s: 0 });
        ops.push(Op::BankResult { id, ok: true });
    }
    ops.push(Op::Pay {
        id: 89,
        user: 10,
        merchant: 20,
        rider: 30,
        food: 4_000,
        delivery: 0,
        coupon: 0,
        channel: 0,
        timeout_s: 0,
    });
    ops.push(Op::CreateCampaign {
        id: 40,
        currency: CNY,
        funder: Funder::Platform,
        budget: 2_500,
        rule: CouponRule {
            amount_off: 1_000,
            min_order: 1_500,
            valid_from: 0,
            valid_until: 0,
            per_user_limit: 2,
        },
    });
    ops.push(Op::CreateCampaign {
        id: 41,
        currency: CNY,
        funder: Funder::Merchant(20),
        budget: 1_200,
        rule: CouponRule {
            amount_off: 500,
            min_order: 0,
            valid_from: 0,
            // Ends while the mixes run, so late refunds and expiries keep the coupon used.
            valid_until: T0 + 3_000 * S,
            per_user_limit: 0,
        },
    });
    for (c, &campaign) in CAMPAIGNS.iter().enumerate() {
        for (u, &user) in USERS.iter().enumerate() {
            for k in 0..2 {
                ops.push(Op::GrantCoupon { id: coupon_id(c, u, k), campaign, user });
            }
        }
    }
    ops
}

/// One step of a random mix, with references as indexes into what exists when it runs.
#[derive(Clone, Debug)]
pub enum Action {
    TopUp {
        user: usize,
        channel: usize,
        amount: u64,
        timeout_s: u32,
    },
    Withdraw {
        user: usize,
        channel: usize,
        amount: u64,
    },
    BankResult {
        hold: usize,
        ok: bool,
    },
    Pay {
        user: usize,
        merchant: usize,
        rider: usize,
        food: u64,
        delivery: u64,
        coupon: Option<usize>,
        channel: Option<usize>,
        timeout_s: u32,
    },
    Capture {
        payment: usize,
    },
    Release {
        payment: usize,
    },
    /// `part` in per mille of what remains (above 1000: more than remains).
    Refund {
        payment: usize,
        part: u64,
    },
    Payout {
        merchant: usize,
        amount: u64,
    },
    PayoutResult {
        payout: usize,
        ok: bool,
    },
    SettlementRun,
    /// Moves the clock on by `seconds` and expires what timed out.
    Expire {
        seconds: u64,
    },
    /// Moves the clock on by `seconds` without expiring anything: no operation.
    Wait {
        seconds: u64,
    },
    /// Applies an earlier operation again.
    Retry {
        op: usize,
    },
    /// Two or three of the above (without expiries or retries) in one batch.
    Batch(Vec<Action>),
}

/// Turns actions into operations, tracking the ids they create. References mostly go to
/// something the operation can act on (a pending hold, an authorized payment...) and sometimes
/// to anything, so rejections happen too.
#[derive(Default)]
pub struct Mix {
    next_id: u64,
    holds: Vec<u64>,
    payments: Vec<u64>,
    payouts: Vec<u128>,
    /// Every operation made so far with its time, for retries.
    pub ops: Vec<(u64, Op)>,
}

impl Mix {
    pub fn new() -> Mix {
        Mix { next_id: 1_000, ..Mix::default() }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pick<T: Clone>(items: &[T], index: usize) -> Option<T> {
        (!items.is_empty()).then(|| items[index % items.len()].clone())
    }

    /// Mostly one of the items that `useful` accepts; sometimes (or when none is) any item.
    fn prefer<T: Copy>(items: &[T], index: usize, useful: impl Fn(T) -> bool) -> Option<T> {
        let good: Vec<T> = items.iter().copied().filter(|&i| useful(i)).collect();
        if !index.is_multiple_of(4) && !good.is_empty() {
            Self::pick(&good, index / 4)
        } else {
            Self::pick(items, index / 4)
        }
    }

    fn payment_is(m: &PaymentsMachine, id: u64, status: PaymentStatus) -> bool {
        m.payment(id).is_some_and(|(p, s)| s == status && p.refunded_total() < p.total())
    }

    /// The operation of `action` against `m` as it is now.
    pub fn op(&mut self, m: &PaymentsMachine, action: &Action) -> Op {
        match *action {
            Action::TopUp { user, channel, amount, timeout_s } => {
                let id = self.id();
                self.holds.push(id);
                Op::TopUp {
                    id,
                    user: USERS[user % USERS.len()],
                    channel: CHANNELS[channel % CHANNELS.len()],
                    amount,
                    timeout_s,
                }
            }
            Action::Withdraw { user, channel, amount } => {
                let id = self.id();
                self.holds.push(id);
                Op::Withdraw {
                    id,
                    user: USERS[user % USERS.len()],
                    channel: CHANNELS[channel % CHANNELS.len()],
                    amount,
                    timeout_s: 0,
                }
            }
            Action::BankResult { hold, ok } => Op::BankResult {
                // An unknown hold when none was made.
                id: Self::prefer(&self.holds, hold, |id| {
                    m.hold_of(id).is_some_and(|(_, s)| s == Some(PendingStatus::Pending))
                })
                .unwrap_or(999),
                ok,
            },
            Action::Pay { user, merchant, rider, food, delivery, coupon, channel, timeout_s } => {
                let id = self.id();
                self.payments.push(id);
                let user = user % USERS.len();
                let coupon = coupon.map_or(0, |c| {
                    if c.is_multiple_of(5) {
                        // Any coupon: often another user's.
                        COUPONS.start + (c / 5) as u64 % (COUPONS.end - COUPONS.start)
                    } else {
                        coupon_id(c / 5 % CAMPAIGNS.len(), user, c / 10 % 2)
                    }
                });
                Op::Pay {
                    id,
                    user: USERS[user],
                    merchant: MERCHANTS[merchant % MERCHANTS.len()],
                    rider: RIDERS[rider % RIDERS.len()],
                    food,
                    delivery,
                    coupon,
                    channel: channel.map_or(0, |c| CHANNELS[c % CHANNELS.len()]),
                    timeout_s,
                }
            }
            Action::Capture { payment } => Op::Capture {
                id: Self::prefer(&self.payments, payment, |id| {
                    Self::payment_is(m, id, PaymentStatus::Authorized)
                })
                .unwrap_or(999),
            },
            Action::Release { payment } => Op::Release {
                id: Self::prefer(&self.payments, payment, |id| {
                    Self::payment_is(m, id, PaymentStatus::Authorized)
                })
                .unwrap_or(999),
            },
            Action::Refund { payment, part } => {
                let id = self.id();
                let payment = Self::prefer(&self.payments, payment, |id| {
                    Self::payment_is(m, id, PaymentStatus::Succeeded)
                })
                .unwrap_or(999);
                let remaining =
                    m.payment(payment).map_or(1_000, |(p, _)| p.total() - p.refunded_total());
                Op::Refund { id, payment, amount: (remaining * part / 1_000).max(1) }
            }
            Action::Payout { merchant, amount } => {
                let id = self.id();
                self.payouts.push(transfer_id(OpTag::Payout, id, 0));
                Op::Payout { id, merchant: MERCHANTS[merchant % MERCHANTS.len()], amount }
            }
            Action::PayoutResult { payout, ok } => Op::PayoutResult {
                payout: Self::prefer(&self.payouts, payout, |id| {
                    m.ledger().pending_status(id) == Some(PendingStatus::Pending)
                })
                .unwrap_or(999),
                ok,
            },
            Action::SettlementRun => {
                let id = self.id();
                for &merchant in &MERCHANTS {
                    self.payouts.push(settlement_payout_id(id, merchant));
                }
                Op::SettlementRun { id }
            }
            Action::Expire { .. } => Op::Expire,
            Action::Wait { .. } => unreachable!("waiting is no operation"),
            Action::Retry { op } => match Self::pick(&self.ops, op) {
                Some((_, op)) if op != Op::Expire => op,
                _ => Op::Expire,
            },
            Action::Batch(ref actions) => {
                Op::Batch(actions.iter().map(|a| self.op(m, a)).collect())
            }
        }
    }
}

/// A small deterministic random source (xorshift), for mixes outside proptest.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn index(&mut self) -> usize {
        usize::try_from(self.below(1 << 16)).unwrap()
    }

    fn timeout(&mut self) -> u32 {
        [0, 60, 600][self.index() % 3]
    }

    /// A random action; `nested` for one inside a batch (no expiry, retry or batch).
    pub fn action(&mut self, nested: bool) -> Action {
        match self.below(if nested { 14 } else { 19 }) {
            0 | 1 => Action::TopUp {
                user: self.index(),
                channel: self.index(),
                amount: 1 + self.below(8_000),
                timeout_s: self.timeout(),
            },
            2 => Action::Withdraw {
                user: self.index(),
                channel: self.index(),
                amount: 1 + self.below(4_000),
            },
            3 | 4 => Action::BankResult { hold: self.index(), ok: self.below(4) != 0 },
            5..=7 => Action::Pay {
                user: self.index(),
                merchant: self.index(),
                rider: self.index(),
                food: self.below(4_000),
                delivery: self.below(600),
                coupon: (self.below(2) == 0).then(|| self.index()),
                channel: (self.below(3) == 0).then(|| self.index()),
                timeout_s: self.timeout(),
            },
            8 => Action::Capture { payment: self.index() },
            9 => Action::Release { payment: self.index() },
            10 => Action::Refund { payment: self.index(), part: self.below(1_100) },
            11 => Action::Payout {
                merchant: self.index(),
                amount: [0, 1 + self.below(3_000)][self.index() % 2],
            },
            12 => Action::PayoutResult { payout: self.index(), ok: self.below(3) != 0 },
            13 => Action::SettlementRun,
            14 | 15 => Action::Expire { seconds: self.below(400) },
            16 => Action::Retry { op: self.index() },
            17 => Action::Wait { seconds: self.below(200) },
            _ => Action::Batch((0..2 + self.below(2)).map(|_| self.action(true)).collect()),
        }
    }
}

/// `n` actions drawn from a generator seeded with `seed`.
pub fn actions(n: usize, seed: u64) -> Vec<Action> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.action(false)).collect()
}
