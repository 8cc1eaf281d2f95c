//! The traffic model: one simulated client, its users, its view of their wallets, and the
//! bank it talks to. It sends operations through a `Transport` and learns from the replies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use huifu_payments::bank::{
    BankAnswer, BankGateway, BankRequest, BankRequestKind, SimulatedBank, SimulatedBankConfig,
};
use huifu_payments::Op;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{
    histogram, Counts, Progress, Reply, SimConfig, Transport, Zipf, ACK_SAMPLE_EVERY, CHANNELS,
    COUPON_MIN_ORDER, DAY_PROFILE, DELIVERY_FEE_MAX, DELIVERY_FEE_MIN, FOOD_MAX, FOOD_MIN,
    HOLD_TIMEOUT_S, MERCHANT_CAMPAIGNS, PLATFORM_CAMPAIGNS, TOP_UP_BELOW, TOP_UP_MAX, TOP_UP_MIN,
};

/// The clients' operation ids start above this, clear of the set-up's (a user's id, a warm-up
/// order's number) and far below the ids a server gives (`ALLOCATED_ID_MIN`).
pub(crate) const OP_ID_BASE: u64 = crate::USERS_MAX + 1;

/// How far at least an order made to be refused for want of funds is above the wallet: 10,000
/// yuan, more than the refunds of a batch can give back to one user.
const PLANNED_SHORTFALL_MIN: u64 = 1_000_000;

/// What a client brings back: its counts, its latencies, the payment ids it sampled.
pub(crate) type ClientResult = (Counts, Histogram<u64>, Vec<u64>);

/// A recent wallet payment a client may refund, and whose user (index into `users`) the
/// refund goes back to.
#[derive(Clone, Copy)]
struct Recent {
    id: u64,
    user: u64,
    merchant: u64,
    total: u64,
    refunded: u64,
}

/// What a client expects back for each operation of the batch it sent.
#[derive(Clone, Copy)]
enum Sent {
    Pay {
        user: u64,
        channel: bool,
        /// What the wallet's estimate took for it (nothing for a channel payment, or one made
        /// to be refused for want of funds).
        held: u64,
        /// The coupon it redeems, or 0; given back to the user if the payment is refused.
        coupon: u64,
        /// A refusal the day planned (`RefusalPlan`): an order made to be refused.
        planned: bool,
        merchant: u64,
    },
    Refund {
        user: u64,
        amount: u64,
        full: bool,
    },
    TopUp {
        user: u64,
        amount: u64,
    },
    Withdraw {
        user: u64,
        amount: u64,
    },
    /// The bank's answer to a top-up (`topup`) or withdrawal of `amount` for `user`.
    BankResult {
        user: u64,
        amount: u64,
        topup: bool,
        ok: bool,
    },
    Capture,
    Release,
    Payout,
    PayoutResult,
    Settlement,
    Grant {
        user: u64,
        campaign: u64,
    },
}

pub(crate) struct Client<'a, T> {
    k: u64,
    transport: T,
    config: &'a SimConfig,
    rng: SmallRng,
    zipf: Arc<Zipf>,
    bank: SimulatedBank,
    started: Instant,
    /// This client's users: `k + 1 + i * clients`.
    users: Vec<u64>,
    /// Estimated wallet balance per user (index into `users`): what the wallet holds for
    /// certain, top-ups the bank has not confirmed left out.
    balance: Vec<u64>,
    /// Top-ups sent and not yet answered, per user: a user tops up once at a time.
    topping_up: Vec<u64>,
    /// An unused coupon per user, or 0, and its campaign.
    coupon: Vec<u64>,
    coupon_campaign: Vec<u64>,
    /// Campaigns whose budget this client saw run out: the app stops offering their coupons.
    exhausted: Vec<u64>,
    recent: Vec<Recent>,
    /// The day's count of operation ids, shared by all clients.
    ids: &'a AtomicU64,
    counts: Counts,
    latency: Histogram<u64>,
    acknowledged: Vec<u64>,
    answers: Vec<(BankRequest, BankAnswer)>,
    /// Top-ups and withdrawals waiting for the bank: id → (user index, amount).
    holds: std::collections::HashMap<u64, (u64, u64)>,
    /// Orders made to be refused (the day's `RefusalPlan`) that were refused.
    refused_planned: u64,
    /// Orders refused that were not made to be.
    refused_unplanned: u64,
}

impl<'a, T: Transport> Client<'a, T> {
    pub(crate) fn new(
        k: usize,
        config: &'a SimConfig,
        zipf: Arc<Zipf>,
        started: Instant,
        transport: T,
        balances: &[u64],
        ids: &'a AtomicU64,
    ) -> Client<'a, T> {
        let k = k as u64;
        let clients = config.clients as u64;
        let users: Vec<u64> =
            (0..).map(|i| k + 1 + i * clients).take_while(|u| *u <= config.users).collect();
        // Opening balances as set up (learned from the replies of the set-up).
        let balance: Vec<u64> = users
            .iter()
            .map(|u| balances.get(usize::try_from(*u - 1).expect("fits")).copied().unwrap_or(0))
            .collect();
        let n = users.len();
        let bank = SimulatedBank::new(SimulatedBankConfig {
            seed: config.bank.seed.wrapping_add(k).wrapping_mul(31).wrapping_add(config.seed),
            ..config.bank
        });
        Client {
            k,
            transport,
            config,
            rng: SmallRng::seed_from_u64(config.seed.wrapping_mul(1_000_003).wrapping_add(k)),
            zipf,
            bank,
            started,
            users,
            balance,
            topping_up: vec![0; n],
            coupon: vec![0; n],
            coupon_campaign: vec![0; n],
            exhausted: Vec::new(),
            recent: Vec::new(),
            ids,
            counts: Counts::default(),
            latency: histogram(),
            acknowledged: Vec::new(),
            answers: Vec::new(),
            holds: std::collections::HashMap::new(),
            refused_planned: 0,
            refused_unplanned: 0,
        }
    }

    /// A fresh id, above the set-up's ids, from one count shared by all clients, so that ids
    /// grow with time as a server's do. The history store's id-keyed tables are then appended
    /// to at their end: a new id is above every table's key range (no bloom filter is read to
    /// learn that it is new) and compaction mostly moves tables instead of rewriting them.
    /// (Each client counting on its own, `n * clients + k`, let the clients' counts drift
    /// apart over a long day, a million ids by 40 M payments, so new ids fell inside the
    /// ranges of stored tables.)
    fn op_id(&mut self) -> u64 {
        OP_ID_BASE + self.ids.fetch_add(1, Ordering::Relaxed)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// This client's share of the payments.
    fn quota(&self) -> u64 {
        let clients = self.config.clients as u64;
        self.config.payments / clients + u64::from(self.k < self.config.payments % clients)
    }

    pub(crate) fn run(mut self, progress: &Progress) -> Result<ClientResult, T::Error> {
        // A coupon of a platform campaign for some users.
        let mut grants = Vec::new();
        let mut sent = Vec::new();
        for i in 0..self.users.len() {
            if self.rng.gen_ratio(1, 3) {
                let campaign = if self.users[i].is_multiple_of(5) {
                    PLATFORM_CAMPAIGNS + 1 + self.users[i] % MERCHANT_CAMPAIGNS
                } else {
                    1 + self.users[i] % PLATFORM_CAMPAIGNS
                };
                grants.push(Op::GrantCoupon { id: self.op_id(), campaign, user: self.users[i] });
                sent.push(Sent::Grant { user: i as u64, campaign });
            }
        }
        let replies = self.transport.submit_independent(grants)?;
        self.learn(&sent, replies);

        // The day asks for `quota` payments: it ends when that many were made, or refused as
        // planned. An order refused otherwise (a coupon whose budget ran out, an estimate of a
        // wallet that was wrong) is not counted: the user orders again, as a user would. The
        // day gives up if such refusals outnumber the payments asked, a model gone wrong.
        let quota = self.quota();
        let mut paid = 0;
        let mut next_settlement = 1;
        while paid < quota
            && self.refused_unplanned <= quota
            && !progress.stop.load(Ordering::Relaxed)
        {
            let mut ops = Vec::with_capacity(self.config.batch_ops);
            let mut sent = Vec::with_capacity(self.config.batch_ops);
            self.bank_answers(&mut ops, &mut sent);
            // A settlement run at every tenth of the day, by the first client.
            if self.k == 0 && paid * 10 >= quota * next_settlement {
                ops.push(Op::SettlementRun { id: next_settlement });
                sent.push(Sent::Settlement);
                next_settlement += 1;
            }
            let mut payments = 0;
            while ops.len() < self.config.batch_ops && paid + payments < quota {
                if self.next_op(&mut ops, &mut sent) {
                    payments += 1;
                }
            }
            self.pace(paid);
            let submitted = Instant::now();
            let replies = self.transport.submit(ops)?;
            let us = u64::try_from(submitted.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
            self.latency.record(us).ok();
            progress.latency.lock().expect("lock").record(us).ok();
            let before = self.counts.payments;
            self.counts.ops += sent.len() as u64;
            progress.ops.fetch_add(sent.len() as u64, Ordering::Relaxed);
            self.learn(&sent, replies);
            progress.payments.fetch_add(self.counts.payments - before, Ordering::Relaxed);
            paid = self.counts.payments + self.refused_planned;
        }
        // Let the bank's last answers arrive, so the day ends with few holds open; the first
        // client closes the day with its last settlement run.
        let drain_until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < drain_until {
            let mut ops = Vec::new();
            let mut sent = Vec::new();
            if self.k == 0 && next_settlement <= 10 {
                ops.push(Op::SettlementRun { id: next_settlement });
                sent.push(Sent::Settlement);
                next_settlement = 11;
            }
            self.bank_answers(&mut ops, &mut sent);
            if !ops.is_empty() {
                let replies = self.transport.submit(ops)?;
                self.learn(&sent, replies);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((self.counts, self.latency, self.acknowledged))
    }

    /// With a target rate, wait until the day's clock says this payment is due.
    fn pace(&self, paid: u64) {
        let Some(rate) = self.config.rate else { return };
        let rate_per_client = (rate as f64 / self.config.clients as f64).max(1.0);
        // Time of day reached so far, weighted by the profile: busy hours take as long as
        // quiet ones but carry more payments.
        let quota = self.quota().max(1) as f64;
        let total: u32 = DAY_PROFILE.iter().sum();
        let mut due = 0.0;
        let mut left = paid as f64 / quota;
        for &weight in &DAY_PROFILE {
            let share = f64::from(weight) / f64::from(total);
            let hour_seconds = quota / rate_per_client / 24.0;
            if left <= share {
                due += hour_seconds * left / share;
                break;
            }
            due += hour_seconds;
            left -= share;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if due > elapsed {
            std::thread::sleep(Duration::from_secs_f64(due - elapsed));
        }
    }

    /// Turns the bank's answers into operations.
    fn bank_answers(&mut self, ops: &mut Vec<Op>, sent: &mut Vec<Sent>) {
        let now = self.now();
        self.bank.poll(now, &mut self.answers);
        // At most half a batch of answers; the rest wait for the next batch.
        let take = self.answers.len().min(self.config.batch_ops.div_ceil(2));
        let answers: Vec<_> = self.answers.drain(..take).collect();
        for (request, answer) in answers {
            let ok = answer == BankAnswer::Confirmed;
            let id = u64::try_from(request.reference).unwrap_or(0);
            match request.kind {
                BankRequestKind::TopUp | BankRequestKind::Withdrawal => {
                    let Some((user, amount)) = self.holds.remove(&id) else {
                        continue;
                    };
                    ops.push(Op::BankResult { id, ok });
                    let topup = request.kind == BankRequestKind::TopUp;
                    sent.push(Sent::BankResult { user, amount, topup, ok });
                }
                BankRequestKind::Payment if ok => {
                    ops.push(Op::Capture { id });
                    sent.push(Sent::Capture);
                }
                BankRequestKind::Payment => {
                    ops.push(Op::Release { id });
                    sent.push(Sent::Release);
                }
                BankRequestKind::Payout => {
                    ops.push(Op::PayoutResult { payout: request.reference, ok });
                    sent.push(Sent::PayoutResult);
                }
            }
        }
    }

    /// Adds one operation of the day's mix; true if it is a payment.
    fn next_op(&mut self, ops: &mut Vec<Op>, sent: &mut Vec<Sent>) -> bool {
        let roll = self.rng.gen_range(0..1_000);
        let i = self.rng.gen_range(0..self.users.len());
        let user = self.users[i];
        if roll < 30 && !self.recent.is_empty() {
            // A refund of a recent payment, back to its user's wallet: half of them full.
            let r = self.rng.gen_range(0..self.recent.len());
            let recent = self.recent[r];
            let left = recent.total - recent.refunded;
            if left > 0 {
                let full = self.rng.gen_bool(0.5);
                let amount = if full { left } else { self.rng.gen_range(1..=left) };
                self.recent[r].refunded += amount;
                let id = self.op_id();
                ops.push(Op::Refund { id, payment: recent.id, amount });
                sent.push(Sent::Refund { user: recent.user, amount, full: amount == left });
                return false;
            }
        }
        if roll < 33 && self.balance[i] > 20_000 {
            let id = self.op_id();
            let amount = self.rng.gen_range(1_000..self.balance[i] / 2);
            self.balance[i] -= amount;
            ops.push(Op::Withdraw {
                id,
                user,
                channel: 1 + user % CHANNELS,
                amount,
                timeout_s: HOLD_TIMEOUT_S,
            });
            sent.push(Sent::Withdraw { user: i as u64, amount });
            return false;
        }
        if roll < 35 {
            // An instant payout, asked by a merchant that has just been paid.
            let id = self.op_id();
            let merchant = match self.recent.len() {
                0 => self.zipf.sample(&mut self.rng),
                n => self.recent[self.rng.gen_range(0..n)].merchant,
            };
            ops.push(Op::Payout { id, merchant, amount: 0 });
            sent.push(Sent::Payout);
            return false;
        }
        self.order(i, ops, sent);
        true
    }

    /// An order of user `i`: food, delivery fee, maybe a coupon; from the wallet when it holds
    /// enough, else through the user's bank channel. A wallet that falls below what its user
    /// typically spends is topped up. A few orders are made to be refused, as the day's
    /// `RefusalPlan` says.
    fn order(&mut self, mut i: usize, ops: &mut Vec<Op>, sent: &mut Vec<Sent>) {
        let plan = self.config.refusals;
        let roll = self.rng.gen_range(0..1_000_000);
        let coupon_minimum = roll < plan.coupon_minimum_not_met_per_million;
        let insufficient = !coupon_minimum
            && roll - plan.coupon_minimum_not_met_per_million < plan.insufficient_funds_per_million;
        if coupon_minimum {
            // A user with a coupon (looked for among a few) uses it on an order below the
            // campaign's minimum.
            let n = self.users.len();
            let candidates: [usize; 8] = std::array::from_fn(|_| self.rng.gen_range(0..n));
            let holder = candidates.into_iter().chain([i]).find(|&j| self.coupon_usable(j));
            if let Some(j) = holder {
                i = j;
                let food = self.rng.gen_range(COUPON_MIN_ORDER / 2..COUPON_MIN_ORDER);
                *self
                    .counts
                    .refusals_planned
                    .entry("coupon_minimum_not_met".into())
                    .or_default() += 1;
                let coupon = std::mem::take(&mut self.coupon[i]);
                self.push_order(i, food, coupon, false, true, ops, sent);
                return;
            }
        }
        if insufficient {
            // An order from the wallet of more than it holds, top-ups under way included, and
            // by more than refunds sent in the same batch may bring back.
            let over = self.rng.gen_range(PLANNED_SHORTFALL_MIN..2 * PLANNED_SHORTFALL_MIN);
            let food = self.balance[i] + self.topping_up[i] + over;
            *self.counts.refusals_planned.entry("insufficient_funds".into()).or_default() += 1;
            self.push_order(i, food, 0, false, true, ops, sent);
            return;
        }
        let food = self.rng.gen_range(FOOD_MIN..FOOD_MAX);
        // A coupon only on an order that meets its minimum, as the app shows it.
        let coupon = if self.coupon_usable(i) && food >= COUPON_MIN_ORDER && self.rng.gen_bool(0.5)
        {
            std::mem::take(&mut self.coupon[i])
        } else {
            0
        };
        let channel = self.rng.gen_ratio(1, 4) || self.balance[i] < food + DELIVERY_FEE_MAX;
        self.push_order(i, food, coupon, channel, false, ops, sent);
        if self.balance[i] < TOP_UP_BELOW && self.topping_up[i] == 0 {
            let id = self.op_id();
            let amount = self.rng.gen_range(TOP_UP_MIN..TOP_UP_MAX);
            let user = self.users[i];
            self.topping_up[i] = amount;
            ops.push(Op::TopUp {
                id,
                user,
                channel: 1 + user % CHANNELS,
                amount,
                timeout_s: HOLD_TIMEOUT_S,
            });
            sent.push(Sent::TopUp { user: i as u64, amount });
        }
    }

    /// Whether user `i` holds a coupon of a campaign not known to be spent.
    fn coupon_usable(&self, i: usize) -> bool {
        self.coupon[i] != 0 && !self.exhausted.contains(&self.coupon_campaign[i])
    }

    /// Sends user `i`'s order of `food` (and a delivery fee), from the wallet unless `channel`.
    #[allow(clippy::too_many_arguments)]
    fn push_order(
        &mut self,
        i: usize,
        food: u64,
        coupon: u64,
        channel: bool,
        planned: bool,
        ops: &mut Vec<Op>,
        sent: &mut Vec<Sent>,
    ) {
        let user = self.users[i];
        let delivery = self.rng.gen_range(DELIVERY_FEE_MIN..DELIVERY_FEE_MAX);
        let total_max = food + delivery;
        let id = self.op_id();
        let merchant = self.zipf.sample(&mut self.rng);
        ops.push(Op::Pay {
            id,
            user,
            merchant,
            rider: self.rng.gen_range(1..=self.config.riders),
            food,
            delivery,
            coupon,
            channel: if channel { 1 + user % CHANNELS } else { 0 },
            timeout_s: HOLD_TIMEOUT_S,
        });
        // The estimate takes the most it can cost; a coupon's discount comes back with the reply.
        let held = if channel || total_max > self.balance[i] { 0 } else { total_max };
        self.balance[i] -= held;
        sent.push(Sent::Pay { user: i as u64, channel, held, coupon, planned, merchant });
    }

    /// Updates what the client knows from the replies to the operations it sent.
    fn learn(&mut self, sent: &[Sent], replies: Vec<Reply>) {
        assert_eq!(replies.len(), sent.len(), "one reply per operation");
        for (s, r) in sent.iter().zip(replies) {
            let ack = match r {
                Ok(ack) => ack,
                Err(code) => {
                    match *s {
                        Sent::Pay { user, held, coupon, planned, .. } => {
                            self.balance[user as usize] += held;
                            if coupon != 0 {
                                self.coupon[user as usize] = coupon;
                                let campaign = self.coupon_campaign[user as usize];
                                if code == "budget_exhausted" && !self.exhausted.contains(&campaign)
                                {
                                    self.exhausted.push(campaign);
                                }
                            }
                            if planned {
                                self.refused_planned += 1;
                            } else {
                                self.refused_unplanned += 1;
                            }
                        }
                        Sent::Withdraw { user, amount } => self.balance[user as usize] += amount,
                        Sent::TopUp { user, .. } | Sent::BankResult { user, topup: true, .. } => {
                            self.topping_up[user as usize] = 0
                        }
                        _ => {}
                    }
                    *self.counts.rejected.entry(code).or_default() += 1;
                    continue;
                }
            };
            match *s {
                Sent::Pay { user, channel, held, coupon, merchant, .. } => {
                    let (id, paid) = (ack.id, ack.amount);
                    self.counts.payments += 1;
                    if !channel {
                        let balance = &mut self.balance[user as usize];
                        *balance = (*balance + held).saturating_sub(paid);
                        self.counts.payments_wallet += 1;
                        self.remember(Recent { id, user, merchant, total: paid, refunded: 0 });
                    } else {
                        self.counts.payments_channel += 1;
                        self.bank.send(
                            BankRequest {
                                kind: BankRequestKind::Payment,
                                reference: id.into(),
                                amount: paid,
                            },
                            self.now(),
                        );
                    }
                    if coupon != 0 {
                        self.counts.coupons_redeemed += 1;
                    }
                    if self.counts.payments.is_multiple_of(ACK_SAMPLE_EVERY) {
                        self.acknowledged.push(id);
                    }
                }
                Sent::Refund { user, amount, full } => {
                    self.counts.refunds += 1;
                    self.counts.refunds_full += u64::from(full);
                    self.balance[user as usize] += amount;
                }
                Sent::TopUp { user, amount } => {
                    self.counts.topups += 1;
                    self.holds.insert(ack.id, (user, amount));
                    self.bank.send(
                        BankRequest {
                            kind: BankRequestKind::TopUp,
                            reference: ack.id.into(),
                            amount,
                        },
                        self.now(),
                    );
                }
                Sent::Withdraw { user, amount } => {
                    self.counts.withdrawals += 1;
                    self.holds.insert(ack.id, (user, amount));
                    self.bank.send(
                        BankRequest {
                            kind: BankRequestKind::Withdrawal,
                            reference: ack.id.into(),
                            amount,
                        },
                        self.now(),
                    );
                }
                // A confirmed top-up adds to the wallet; a failed withdrawal gives back.
                Sent::BankResult { user, amount, topup, ok } => {
                    if topup {
                        self.topping_up[user as usize] = 0;
                    }
                    if topup == ok {
                        self.balance[user as usize] += amount;
                    }
                }
                Sent::Capture => self.counts.captures += 1,
                Sent::Release => self.counts.releases += 1,
                Sent::Payout | Sent::Settlement => {
                    if matches!(s, Sent::Settlement) {
                        self.counts.settlement_runs += 1;
                    }
                    for (payout, amount) in ack.payouts {
                        self.counts.payouts += 1;
                        self.bank.send(
                            BankRequest {
                                kind: BankRequestKind::Payout,
                                reference: payout,
                                amount,
                            },
                            self.now(),
                        );
                    }
                }
                Sent::PayoutResult => {}
                Sent::Grant { user, campaign } => {
                    self.coupon[user as usize] = ack.id;
                    self.coupon_campaign[user as usize] = campaign;
                }
            }
        }
    }

    fn remember(&mut self, recent: Recent) {
        const RECENT_MAX: usize = 1_024;
        if self.recent.len() < RECENT_MAX {
            self.recent.push(recent);
        } else {
            let slot = self.rng.gen_range(0..RECENT_MAX);
            self.recent[slot] = recent;
        }
    }
}
