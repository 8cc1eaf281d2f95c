//! One test per rule of the payment domain and per rejection: exact balances after each
//! success, and no money moved by any rejection.

mod support;

use huifu_ledger::PendingStatus;
use huifu_payments::chart::{transfer_id, Kind, OpTag};
use huifu_payments::constants::{AMOUNT_MAX, BATCH_OPS_MAX, ENTITY_ID_MAX};
use huifu_payments::money::Legs;
use huifu_payments::PaymentError as E;
use huifu_payments::{
    settlement_payout_id, CouponRule, Done, Funder, Op, PaymentStatus, Payout, SettlementLine,
    Statement,
};
use support::*;

fn legs(merchant: u64, rider: u64, platform: u64, coupon: u64) -> Legs {
    Legs { merchant, rider, platform, coupon }
}

fn paid(total: u64, legs: Legs) -> Done {
    Done::Payment { status: PaymentStatus::Succeeded, total, legs, currency: 156 }
}

fn status(w: &World, payment: u64) -> PaymentStatus {
    w.m.payment(payment).expect("payment").1
}

fn payout_id(op: u64) -> u128 {
    transfer_id(OpTag::Payout, op, 0)
}

// Creating parties.

#[test]
fn ids_must_be_nonzero_and_at_most_the_largest() {
    let mut w = World::new();
    let too_big = ENTITY_ID_MAX + 1;
    for id in [0, too_big] {
        w.rejects(Op::CreateChannel { id, currency: CNY }, E::InvalidId);
        w.rejects(Op::CreateUser { id, currency: CNY }, E::InvalidId);
        w.rejects(Op::CreateRider { id, currency: CNY }, E::InvalidId);
        w.rejects(
            Op::CreateMerchant { id, currency: CNY, commission_bps: 0, channel: 1 },
            E::InvalidId,
        );
        w.rejects(
            Op::CreateCampaign {
                id,
                currency: CNY,
                funder: Funder::Platform,
                budget: 100,
                rule: rule(10),
            },
            E::InvalidId,
        );
        w.rejects(Op::GrantCoupon { id, campaign: 40, user: 10 }, E::InvalidId);
        w.rejects(Op::TopUp { id, user: 10, channel: 1, amount: 1, timeout_s: 0 }, E::InvalidId);
        w.rejects(pay(id, 10, 20, 100, 0, 0), E::InvalidId);
        w.rejects(Op::Refund { id, payment: 1, amount: 1 }, E::InvalidId);
        w.rejects(Op::Payout { id, merchant: 20, amount: 0 }, E::InvalidId);
        w.rejects(Op::SettlementRun { id }, E::InvalidId);
    }
    // Withdrawals share the id space of top-ups: checked on their own.
    let mut w = World::new();
    w.rejects(Op::Withdraw { id: 0, user: 10, channel: 1, amount: 1, timeout_s: 0 }, E::InvalidId);
    // The largest id is fine.
    assert_eq!(w.ok(Op::CreateUser { id: ENTITY_ID_MAX, currency: CNY }), Done::Created);
}

#[test]
fn a_merchant_needs_a_known_channel_of_its_currency_and_a_rate_up_to_one() {
    let mut w = World::new();
    let merchant = |id, commission_bps, channel, currency| Op::CreateMerchant {
        id,
        currency,
        commission_bps,
        channel,
    };
    w.rejects(merchant(23, 10_001, 1, CNY), E::InvalidCommission);
    w.rejects(merchant(24, 1_000, 9, CNY), E::UnknownChannel);
    w.rejects(merchant(25, 1_000, 2, CNY), E::CurrencyMismatch);
    // Each rejection took its id (a retry returns it); a new id with a full rate works.
    assert_eq!(
        w.ok(Op::CreateMerchant { id: 26, currency: CNY, commission_bps: 10_000, channel: 1 }),
        Done::Created
    );
    w.ok(pay(50, 10, 26, 1_000, 0, 0));
    assert_eq!(merchant_of(&w, 26), 0);
    assert_eq!(revenue(&w.m), 1_000);
}

fn merchant_of(w: &World, id: u64) -> i128 {
    merchant(&w.m, id)
}

#[test]
fn a_platform_campaign_is_funded_by_platform_marketing() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    assert_eq!(budget_left(&w.m, 40), 5_000);
    assert_eq!(posted(&w.m, Kind::PlatformMarketing, CNY, 0), -5_000);
    let (campaign, left) = w.m.campaign(40).unwrap();
    assert_eq!((campaign.budget, campaign.funder, left), (5_000, Funder::Platform, 5_000));
}

#[test]
fn campaign_rejections() {
    let mut w = World::new();
    let campaign = |id, funder, budget, amount_off| Op::CreateCampaign {
        id,
        currency: CNY,
        funder,
        budget,
        rule: rule(amount_off),
    };
    w.rejects(campaign(40, Funder::Platform, 0, 10), E::InvalidAmount);
    w.rejects(campaign(41, Funder::Platform, AMOUNT_MAX + 1, 10), E::InvalidAmount);
    w.rejects(campaign(42, Funder::Platform, 100, 0), E::InvalidAmount);
    w.rejects(campaign(43, Funder::Platform, 100, AMOUNT_MAX + 1), E::InvalidAmount);
    w.rejects(campaign(44, Funder::Merchant(99), 100, 10), E::UnknownMerchant);
    w.rejects(campaign(45, Funder::Merchant(22), 100, 10), E::CurrencyMismatch);
    // Merchant 21 has earned nothing: it cannot fund a budget.
    w.rejects(campaign(46, Funder::Merchant(21), 1, 1), E::MerchantBalanceInsufficient);
    assert!(w.m.campaign(46).is_none());
}

#[test]
fn coupon_grants_need_a_campaign_and_a_user_of_its_currency() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    w.rejects(Op::GrantCoupon { id: 100, campaign: 49, user: 10 }, E::UnknownCampaign);
    w.rejects(Op::GrantCoupon { id: 101, campaign: 40, user: 99 }, E::UnknownUser);
    w.rejects(Op::GrantCoupon { id: 102, campaign: 40, user: 12 }, E::CurrencyMismatch);
    w.grant(103, 40, 10);
}

// Wallet top-ups and withdrawals.

#[test]
fn a_top_up_is_held_until_the_bank_confirms() {
    let mut w = World::new();
    let before = channel_out(&w.m, 1);
    let top_up = Op::TopUp { id: 60, user: 10, channel: 1, amount: 2_000, timeout_s: 0 };
    assert_eq!(w.ok(top_up), Done::Hold { amount: 2_000 });
    // Held: the wallet shows it as pending, not as money to spend.
    assert_eq!(wallet(&w.m, 10), 10_000);
    assert_eq!(credits_pending(&w.m, Kind::Wallet, CNY, 10), 2_000);
    assert_eq!(w.m.hold_of(60).unwrap().1, Some(PendingStatus::Pending));
    w.rejects(pay(61, 10, 20, 11_000, 0, 0), E::InsufficientFunds);
    assert_eq!(w.ok(Op::BankResult { id: 60, ok: true }), Done::Hold { amount: 2_000 });
    assert_eq!(wallet(&w.m, 10), 12_000);
    assert_eq!(credits_pending(&w.m, Kind::Wallet, CNY, 10), 0);
    assert_eq!(channel_out(&w.m, 1), before + 2_000);
    assert_eq!(w.m.hold_of(60).unwrap().1, Some(PendingStatus::Posted));
    // The bank answered once: a different answer is a conflict, the same one a retry.
    w.rejects(Op::BankResult { id: 60, ok: false }, E::IdempotencyConflict);
    assert_eq!(w.ok(Op::BankResult { id: 60, ok: true }), Done::Hold { amount: 2_000 });
}

#[test]
fn a_failed_top_up_credits_nothing() {
    let mut w = World::new();
    let before = money(&w.m);
    w.ok(Op::TopUp { id: 60, user: 10, channel: 1, amount: 2_000, timeout_s: 0 });
    w.ok(Op::BankResult { id: 60, ok: false });
    assert_eq!(wallet(&w.m, 10), 10_000);
    assert_eq!(w.m.hold_of(60).unwrap().1, Some(PendingStatus::Voided));
    assert_eq!(money(&w.m).balances, before.balances);
}

#[test]
fn top_up_and_withdrawal_rejections() {
    let mut w = World::new();
    let top_up = |id, user, channel, amount| Op::TopUp { id, user, channel, amount, timeout_s: 0 };
    w.rejects(top_up(60, 10, 1, 0), E::InvalidAmount);
    w.rejects(top_up(61, 10, 1, AMOUNT_MAX + 1), E::InvalidAmount);
    w.rejects(top_up(62, 99, 1, 100), E::UnknownUser);
    w.rejects(top_up(63, 10, 9, 100), E::UnknownChannel);
    w.rejects(top_up(64, 10, 2, 100), E::CurrencyMismatch);
    w.rejects(top_up(65, 12, 1, 100), E::CurrencyMismatch);
    w.rejects(
        Op::Withdraw { id: 70, user: 10, channel: 1, amount: 10_001, timeout_s: 0 },
        E::InsufficientFunds,
    );
    w.rejects(Op::BankResult { id: 999, ok: true }, E::UnknownOperation);
    // A rejected top-up holds nothing the bank could answer.
    w.rejects(Op::BankResult { id: 60, ok: true }, E::UnknownOperation);
}

#[test]
fn a_withdrawal_holds_the_money_until_the_bank_answers() {
    let mut w = World::new();
    let before = channel_out(&w.m, 1);
    let withdraw = |id, amount| Op::Withdraw { id, user: 10, channel: 1, amount, timeout_s: 0 };
    assert_eq!(w.ok(withdraw(65, 4_000)), Done::Hold { amount: 4_000 });
    assert_eq!(wallet(&w.m, 10), 6_000);
    w.rejects(pay(66, 10, 20, 6_001, 0, 0), E::InsufficientFunds);
    w.ok(Op::BankResult { id: 65, ok: true });
    assert_eq!(wallet(&w.m, 10), 6_000);
    assert_eq!(posted(&w.m, Kind::Wallet, CNY, 10), 6_000);
    assert_eq!(channel_out(&w.m, 1), before - 4_000);
    // A failed withdrawal gives the money back.
    w.ok(withdraw(67, 3_000));
    assert_eq!(wallet(&w.m, 10), 3_000);
    w.ok(Op::BankResult { id: 67, ok: false });
    assert_eq!(wallet(&w.m, 10), 6_000);
    assert_eq!(channel_out(&w.m, 1), before - 4_000);
    // Top-ups and withdrawals share one id space.
    w.rejects(
        Op::TopUp { id: 65, user: 10, channel: 1, amount: 4_000, timeout_s: 0 },
        E::IdempotencyConflict,
    );
}

#[test]
fn a_top_up_whose_timeout_passed_expires() {
    let mut w = World::new();
    let start = w.now;
    w.ok(Op::TopUp { id: 60, user: 10, channel: 1, amount: 2_000, timeout_s: 60 });
    w.now = start + 59 * S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(0));
    w.now = start + 61 * S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    assert_eq!(w.m.hold_of(60).unwrap().1, Some(PendingStatus::Expired));
    assert_eq!(credits_pending(&w.m, Kind::Wallet, CNY, 10), 0);
    w.rejects(Op::BankResult { id: 60, ok: true }, E::HoldExpired);
    assert_eq!(wallet(&w.m, 10), 10_000);

    // A bank answer after the deadline is too late even before the expiry ran.
    let start = w.now;
    w.ok(Op::Withdraw { id: 61, user: 10, channel: 1, amount: 1_000, timeout_s: 60 });
    w.now = start + 61 * S;
    w.rejects(Op::BankResult { id: 61, ok: true }, E::HoldExpired);
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    assert_eq!(wallet(&w.m, 10), 10_000);
}

#[test]
fn holds_default_to_fifteen_minutes_and_last_at_most_a_week() {
    let mut w = World::new();
    let start = w.now;
    let top_up = |id, timeout_s| Op::TopUp { id, user: 10, channel: 1, amount: 100, timeout_s };
    w.ok(top_up(60, 0));
    w.ok(top_up(61, u32::MAX));
    w.now = start + 15 * 60 * S - S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(0));
    w.now = start + 15 * 60 * S + S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    assert_eq!(w.m.hold_of(60).unwrap().1, Some(PendingStatus::Expired));
    w.now = start + 7 * 24 * 3600 * S - S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(0));
    w.now = start + 7 * 24 * 3600 * S + S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
}

// Payments from the wallet.

#[test]
fn a_wallet_payment_with_a_platform_coupon_pays_every_party_exactly() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    w.grant(100, 40, 10);
    // Food 30.00 + delivery 5.00, 10% commission, 10.00 off by the platform.
    assert_eq!(w.ok(pay(50, 10, 20, 3_000, 500, 100)), paid(2_500, legs(2_700, 500, 300, 1_000)));
    assert_eq!(wallet(&w.m, 10), 7_500);
    assert_eq!(merchant(&w.m, 20), 2_700);
    assert_eq!(rider(&w.m, 30), 500);
    assert_eq!(revenue(&w.m), 300);
    assert_eq!(budget_left(&w.m, 40), 4_000);
    assert_eq!(posted(&w.m, Kind::PlatformMarketing, CNY, 0), -5_000);
    assert_eq!(
        w.m.merchant(20).unwrap().period,
        Statement { payments: 1, gross: 3_000, commission: 300, ..Statement::default() }
    );
    let (p, status) = w.m.payment(50).unwrap();
    assert_eq!(status, PaymentStatus::Succeeded);
    assert_eq!((p.coupon, p.campaign, p.total()), (100, 40, 2_500));
    w.rejects(pay(51, 10, 20, 3_000, 500, 100), E::CouponUsed);
}

#[test]
fn a_merchant_funded_coupon_is_paid_from_the_merchants_balance() {
    let mut w = World::new();
    // Merchant 20 earns 54.00 first.
    w.ok(pay(50, 10, 20, 6_000, 0, 0));
    assert_eq!(merchant(&w.m, 20), 5_400);
    assert_eq!(
        w.ok(Op::CreateCampaign {
            id: 41,
            currency: CNY,
            funder: Funder::Merchant(20),
            budget: 2_000,
            rule: rule(1_000),
        }),
        Done::Created
    );
    assert_eq!(merchant(&w.m, 20), 3_400);
    assert_eq!(budget_left(&w.m, 41), 2_000);
    w.grant(101, 41, 11);
    // Commission is charged on what the merchant sells for: 30.00 less 10.00.
    assert_eq!(w.ok(pay(51, 11, 20, 3_000, 500, 101)), paid(2_500, legs(2_800, 500, 200, 1_000)));
    assert_eq!(wallet(&w.m, 11), 2_500);
    assert_eq!(merchant(&w.m, 20), 3_400 + 2_800);
    assert_eq!(rider(&w.m, 30), 500);
    assert_eq!(revenue(&w.m), 600 + 200);
    assert_eq!(budget_left(&w.m, 41), 1_000);
    assert_eq!(posted(&w.m, Kind::PlatformMarketing, CNY, 0), 0);
    assert_eq!(
        w.m.merchant(20).unwrap().period,
        Statement {
            payments: 2,
            gross: 9_000,
            commission: 800,
            discounts: 1_000,
            ..Statement::default()
        }
    );
}

#[test]
fn a_discount_is_capped_at_the_food_amount() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(5_000));
    w.grant(100, 40, 10);
    assert_eq!(w.ok(pay(50, 10, 20, 3_000, 500, 100)), paid(500, legs(2_700, 500, 300, 3_000)));
    assert_eq!(wallet(&w.m, 10), 9_500);
    assert_eq!(budget_left(&w.m, 40), 2_000);
}

#[test]
fn payment_rejections_for_unknown_parties_and_currencies() {
    let mut w = World::new();
    let op = |user, merchant, rider, coupon, channel| Op::Pay {
        id: 50,
        user,
        merchant,
        rider,
        food: 1_000,
        delivery: 100,
        coupon,
        channel,
        timeout_s: 0,
    };
    let mut id = 50;
    let mut fresh = |op: Op| {
        id += 1;
        match op {
            Op::Pay {
                user, merchant, rider, food, delivery, coupon, channel, timeout_s, ..
            } => Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s },
            op => op,
        }
    };
    w.rejects(fresh(op(99, 20, 30, 0, 0)), E::UnknownUser);
    w.rejects(fresh(op(10, 99, 30, 0, 0)), E::UnknownMerchant);
    w.rejects(fresh(op(10, 20, 99, 0, 0)), E::UnknownRider);
    w.rejects(fresh(op(10, 20, 30, 0, 9)), E::UnknownChannel);
    w.rejects(fresh(op(10, 20, 30, 999, 0)), E::UnknownCoupon);
    w.rejects(fresh(op(12, 20, 30, 0, 0)), E::CurrencyMismatch);
    w.rejects(fresh(op(10, 22, 30, 0, 0)), E::CurrencyMismatch);
    w.rejects(fresh(op(10, 20, 31, 0, 0)), E::CurrencyMismatch);
    w.rejects(fresh(op(10, 20, 30, 0, 2)), E::CurrencyMismatch);
    w.rejects(pay(70, 10, 20, 0, 100, 0), E::InvalidAmount);
    w.rejects(pay(71, 10, 20, AMOUNT_MAX + 1, 0, 0), E::InvalidAmount);
    w.rejects(pay(72, 10, 20, 100, AMOUNT_MAX + 1, 0), E::InvalidAmount);
    // The largest amounts are valid; the wallet cannot cover them.
    w.rejects(pay(73, 10, 20, AMOUNT_MAX, AMOUNT_MAX, 0), E::InsufficientFunds);
    w.rejects(pay(74, 11, 20, 5_000, 1, 0), E::InsufficientFunds);
    assert_eq!(wallet(&w.m, 11), 5_000);
    // A delivery fee of zero is fine, and so is spending the whole wallet.
    assert_eq!(w.ok(pay(75, 11, 20, 5_000, 0, 0)), paid(5_000, legs(4_500, 0, 500, 0)));
    assert_eq!(wallet(&w.m, 11), 0);
}

#[test]
fn a_coupon_of_another_user_is_refused() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    w.grant(100, 40, 11);
    w.rejects(pay(50, 10, 20, 3_000, 500, 100), E::CouponNotOwned);
    assert_eq!(budget_left(&w.m, 40), 5_000);
}

#[test]
fn a_coupon_is_valid_from_its_start_until_before_its_end() {
    let mut w = World::new();
    let from = w.now + 100 * S;
    let until = w.now + 200 * S;
    w.platform_campaign(
        40,
        5_000,
        CouponRule { valid_from: from, valid_until: until, ..rule(1_000) },
    );
    w.grant(100, 40, 10);
    w.grant(101, 40, 10);
    w.now = from - 1;
    w.rejects(pay(50, 10, 20, 3_000, 500, 100), E::CouponNotValidNow);
    w.now = from;
    assert_eq!(w.ok(pay(51, 10, 20, 3_000, 500, 100)), paid(2_500, legs(2_700, 500, 300, 1_000)));
    w.now = until;
    w.rejects(pay(52, 10, 20, 3_000, 500, 101), E::CouponNotValidNow);
    w.now = until - 1;
    w.ok(pay(53, 10, 20, 3_000, 500, 101));
    assert_eq!(budget_left(&w.m, 40), 3_000);
}

#[test]
fn a_coupon_needs_its_minimum_order() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, CouponRule { min_order: 2_000, ..rule(500) });
    w.grant(100, 40, 10);
    // The minimum is on the food amount: the delivery fee does not count.
    w.rejects(pay(50, 10, 20, 1_999, 1_000, 100), E::CouponMinimumNotMet);
    w.ok(pay(51, 10, 20, 2_000, 0, 100));
    assert_eq!(budget_left(&w.m, 40), 4_500);
}

#[test]
fn a_user_may_redeem_a_campaign_only_up_to_its_limit() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, CouponRule { per_user_limit: 1, ..rule(1_000) });
    w.grant(100, 40, 10);
    w.grant(101, 40, 10);
    w.grant(102, 40, 11);
    w.ok(pay(50, 10, 20, 3_000, 500, 100));
    w.rejects(pay(51, 10, 20, 3_000, 500, 101), E::CouponLimitReached);
    // The limit is per user.
    w.ok(pay(52, 11, 20, 3_000, 500, 102));
    // A full refund gives the redemption back.
    w.ok(Op::Refund { id: 53, payment: 50, amount: 2_500 });
    w.ok(pay(54, 10, 20, 3_000, 500, 101));
    assert_eq!(budget_left(&w.m, 40), 3_000);
}

#[test]
fn a_campaign_never_spends_more_than_its_budget() {
    let mut w = World::new();
    w.platform_campaign(40, 1_500, rule(1_000));
    w.grant(100, 40, 10);
    w.grant(101, 40, 11);
    w.ok(pay(50, 10, 20, 3_000, 500, 100));
    assert_eq!(budget_left(&w.m, 40), 500);
    w.rejects(pay(51, 11, 20, 3_000, 500, 101), E::BudgetExhausted);
    w.rejects(pay_by_bank(52, 11, 20, 3_000, 500, 101, 0), E::BudgetExhausted);
    assert_eq!(budget_left(&w.m, 40), 500);
    // The coupon was not used up by the rejections: once the budget has room, it works.
    w.ok(Op::Refund { id: 54, payment: 50, amount: 2_500 });
    w.ok(pay(55, 11, 20, 3_000, 500, 101));
    assert_eq!(budget_left(&w.m, 40), 500);
}

// Payments through a bank channel.

fn channel_world() -> World {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    w.grant(100, 40, 11);
    w
}

#[test]
fn a_channel_payment_is_authorized_then_captured() {
    let mut w = channel_world();
    let channel_before = channel_out(&w.m, 1);
    let authorized = Done::Payment {
        status: PaymentStatus::Authorized,
        total: 2_500,
        legs: legs(2_700, 500, 300, 1_000),
        currency: 156,
    };
    assert_eq!(w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 0)), authorized);
    // Nothing is spent yet: the money and the discount are held.
    assert_eq!(wallet(&w.m, 11), 5_000);
    assert_eq!(credits_pending(&w.m, Kind::Wallet, CNY, 11), 3_500);
    assert_eq!(debits_pending(&w.m, Kind::Channel, CNY, 1), 2_500);
    assert_eq!(budget_left(&w.m, 40), 4_000);
    assert_eq!(merchant(&w.m, 20), 0);
    assert_eq!(status(&w, 50), PaymentStatus::Authorized);
    assert_eq!(w.m.merchant(20).unwrap().period, Statement::default());

    assert_eq!(w.ok(Op::Capture { id: 50 }), paid(2_500, legs(2_700, 500, 300, 1_000)));
    assert_eq!(wallet(&w.m, 11), 5_000);
    assert_eq!(credits_pending(&w.m, Kind::Wallet, CNY, 11), 0);
    assert_eq!(channel_out(&w.m, 1), channel_before + 2_500);
    assert_eq!(merchant(&w.m, 20), 2_700);
    assert_eq!(rider(&w.m, 30), 500);
    assert_eq!(revenue(&w.m), 300);
    assert_eq!(budget_left(&w.m, 40), 4_000);
    assert_eq!(status(&w, 50), PaymentStatus::Succeeded);
    assert_eq!(w.m.merchant(20).unwrap().period.gross, 3_000);
    // A retry of the capture returns its outcome.
    assert_eq!(w.ok(Op::Capture { id: 50 }), paid(2_500, legs(2_700, 500, 300, 1_000)));
}

#[test]
fn a_released_channel_payment_gives_the_coupon_back() {
    let mut w = channel_world();
    let before = money(&w.m);
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 0));
    assert_eq!(
        w.ok(Op::Release { id: 50 }),
        Done::Payment {
            status: PaymentStatus::Released,
            total: 2_500,
            legs: legs(2_700, 500, 300, 1_000),
            currency: 156,
        }
    );
    assert_eq!(status(&w, 50), PaymentStatus::Released);
    assert_eq!(money(&w.m).balances, before.balances);
    assert_eq!(budget_left(&w.m, 40), 5_000);
    // The coupon can be used again.
    w.ok(pay(51, 11, 20, 3_000, 500, 100));
    assert_eq!(wallet(&w.m, 11), 2_500);
}

#[test]
fn only_an_authorized_payment_is_captured_or_released_and_only_a_succeeded_one_refunded() {
    let mut w = channel_world();
    w.rejects(Op::Capture { id: 99 }, E::UnknownPayment);
    w.rejects(Op::Release { id: 98 }, E::UnknownPayment);
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 0));
    w.rejects(Op::Refund { id: 51, payment: 50, amount: 100 }, E::InvalidState);
    w.ok(Op::Release { id: 50 });
    w.rejects(Op::Refund { id: 52, payment: 50, amount: 100 }, E::InvalidState);
    // A payment is resolved once: capture and release share its id, so a capture after a
    // release is a different operation under a used id.
    w.rejects(Op::Capture { id: 50 }, E::IdempotencyConflict);
    // A wallet payment is never authorized.
    w.ok(pay(53, 10, 20, 1_000, 0, 0));
    w.ok(pay(54, 10, 20, 1_000, 0, 0));
    w.rejects(Op::Capture { id: 53 }, E::InvalidState);
    w.rejects(Op::Release { id: 54 }, E::InvalidState);
    assert_eq!(status(&w, 53), PaymentStatus::Succeeded);
}

#[test]
fn an_unanswered_channel_payment_expires_and_gives_everything_back() {
    let mut w = channel_world();
    let before = money(&w.m);
    let start = w.now;
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 60));
    w.now = start + 59 * S;
    assert_eq!(w.ok(Op::Expire), Done::Expired(0));
    assert_eq!(status(&w, 50), PaymentStatus::Authorized);
    w.now = start + 61 * S;
    // The hold and the coupon's reservation.
    assert_eq!(w.ok(Op::Expire), Done::Expired(2));
    assert_eq!(status(&w, 50), PaymentStatus::Expired);
    assert_eq!(money(&w.m).balances, before.balances);
    assert_eq!(budget_left(&w.m, 40), 5_000);
    w.rejects(Op::Capture { id: 50 }, E::HoldExpired);
    w.rejects(Op::Refund { id: 51, payment: 50, amount: 100 }, E::InvalidState);
    // Like a release, the expiry gives the coupon back while its campaign runs.
    w.ok(pay(52, 11, 20, 3_000, 500, 100));
    assert_eq!(budget_left(&w.m, 40), 4_000);
}

#[test]
fn a_payment_expires_once_its_coupons_reservation_expired_too() {
    let mut w = channel_world();
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 60));
    // The reservation is made just after the hold, so it expires a moment later: an expiry
    // whose window ends exactly at the hold's deadline takes the hold alone.
    let hold = w.m.ledger().lookup_transfer(transfer_id(OpTag::Payment, 50, 0)).unwrap();
    let deadline = hold.timestamp + 60 * S;
    w.now = deadline + huifu_ledger::constants::EXPIRE_EVENTS_MAX as u64 - 1;
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    // The discount is still held, so the payment is not expired yet; it cannot be captured.
    assert_eq!(budget_left(&w.m, 40), 4_000);
    assert_eq!(status(&w, 50), PaymentStatus::Authorized);
    w.rejects(Op::Capture { id: 50 }, E::HoldExpired);
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    assert_eq!(status(&w, 50), PaymentStatus::Expired);
    assert_eq!(budget_left(&w.m, 40), 5_000);
    w.ok(pay(51, 11, 20, 3_000, 500, 100));
}

#[test]
fn a_capture_after_the_deadline_is_refused_even_before_the_expiry_runs() {
    let mut w = channel_world();
    let before = money(&w.m);
    let start = w.now;
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 60));
    let held = money(&w.m);
    w.now = start + 61 * S;
    w.rejects(Op::Capture { id: 50 }, E::HoldExpired);
    assert_eq!(money(&w.m), held);
    assert_eq!(w.ok(Op::Expire), Done::Expired(2));
    assert_eq!(status(&w, 50), PaymentStatus::Expired);
    assert_eq!(money(&w.m).balances, before.balances);

    // The same for a release.
    let start = w.now;
    w.ok(pay_by_bank(53, 11, 20, 3_000, 500, 0, 60));
    w.now = start + 61 * S;
    w.rejects(Op::Release { id: 53 }, E::HoldExpired);
    assert_eq!(w.ok(Op::Expire), Done::Expired(1));
    assert_eq!(status(&w, 53), PaymentStatus::Expired);
}

#[test]
fn a_captured_channel_payment_is_refunded_to_the_wallet() {
    let mut w = channel_world();
    w.ok(pay_by_bank(50, 11, 20, 3_000, 500, 100, 0));
    w.ok(Op::Capture { id: 50 });
    assert_eq!(
        w.ok(Op::Refund { id: 51, payment: 50, amount: 2_500 }),
        Done::Refund { amount: 2_500, legs: legs(2_700, 500, 300, 1_000), full: true }
    );
    assert_eq!(wallet(&w.m, 11), 7_500);
    assert_eq!(merchant(&w.m, 20), 0);
    assert_eq!(budget_left(&w.m, 40), 5_000);
}

// Refunds.

#[test]
fn partial_refunds_then_the_last_reverse_exactly_every_leg() {
    let mut w = World::new();
    w.platform_campaign(40, 5_000, rule(1_000));
    w.grant(100, 40, 10);
    w.ok(pay(70, 10, 20, 3_000, 500, 100));
    let before = (wallet(&w.m, 10), merchant(&w.m, 20), rider(&w.m, 30), revenue(&w.m));
    assert_eq!(before, (7_500, 2_700, 500, 300));
    let refund = |id, amount| Op::Refund { id, payment: 70, amount };
    // 40% of what remains: every leg gives back 40%, the merchant's takes the rounding.
    assert_eq!(
        w.ok(refund(71, 1_000)),
        Done::Refund { amount: 1_000, legs: legs(1_080, 200, 120, 400), full: false }
    );
    assert_eq!(wallet(&w.m, 10), 8_500);
    assert_eq!(merchant(&w.m, 20), 1_620);
    assert_eq!(rider(&w.m, 30), 300);
    assert_eq!(revenue(&w.m), 180);
    assert_eq!(budget_left(&w.m, 40), 4_400);
    assert_eq!(
        w.ok(refund(72, 1_000)),
        Done::Refund { amount: 1_000, legs: legs(1_080, 200, 120, 400), full: false }
    );
    w.rejects(refund(73, 501), E::RefundExceedsPayment);
    // The last refund reverses exactly what remains.
    assert_eq!(
        w.ok(refund(74, 500)),
        Done::Refund { amount: 500, legs: legs(540, 100, 60, 200), full: true }
    );
    assert_eq!(wallet(&w.m, 10), 10_000);
    assert_eq!(merchant(&w.m, 20), 0);
    assert_eq!(rider(&w.m, 30), 0);
    assert_eq!(revenue(&w.m), 0);
    assert_eq!(budget_left(&w.m, 40), 5_000);
    let (p, status) = w.m.payment(70).unwrap();
    assert_eq!(status, PaymentStatus::Succeeded);
    assert_eq!(p.refunded, p.legs);
    assert_eq!(p.refunds, vec![71, 72, 74]);
    assert_eq!(w.m.refund_of(71), Some((70, 1_000)));
    assert_eq!(w.m.refund_of(73), None);
    assert_eq!(
        w.m.merchant(20).unwrap().period,
        Statement {
            payments: 1,
            gross: 3_000,
            refunds: 2_700,
            commission: 300,
            commission_returned: 300,
            discounts: 0
        }
    );
    w.rejects(refund(75, 1), E::RefundExceedsPayment);
    // The coupon came back: its campaign still runs.
    w.ok(pay(76, 10, 20, 3_000, 500, 100));
    assert_eq!(budget_left(&w.m, 40), 4_000);
}

#[test]
fn a_refund_after_the_campaign_ended_keeps_the_coupon_used() {
    let mut w = World::new();
    let until = w.now + 10 * S;
    w.platform_campaign(40, 5_000, CouponRule { valid_until: until, ..rule(1_000) });
    w.grant(100, 40, 10);
    w.ok(pay(50, 10, 20, 3_000, 500, 100));
    w.now = until;
    w.ok(Op::Refund { id: 51, payment: 50, amount: 2_500 });
    // The discount went back to the budget; the coupon itself is spent.
    assert_eq!(budget_left(&w.m, 40), 5_000);
    assert_eq!(wallet(&w.m, 10), 10_000);
    w.rejects(pay(52, 10, 20, 3_000, 500, 100), E::CouponUsed);
}

#[test]
fn refund_rejections() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    w.rejects(Op::Refund { id: 51, payment: 50, amount: 0 }, E::InvalidAmount);
    w.rejects(Op::Refund { id: 52, payment: 50, amount: AMOUNT_MAX + 1 }, E::InvalidAmount);
    w.rejects(Op::Refund { id: 53, payment: 99, amount: 1 }, E::UnknownPayment);
    w.rejects(Op::Refund { id: 54, payment: 50, amount: 3_501 }, E::RefundExceedsPayment);
    // A rejected payment is no payment.
    w.rejects(pay(55, 11, 20, 9_000, 0, 0), E::InsufficientFunds);
    w.rejects(Op::Refund { id: 56, payment: 55, amount: 1 }, E::UnknownPayment);
}

#[test]
fn a_refund_cannot_take_back_what_the_merchant_was_paid_out() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    w.ok(Op::Payout { id: 51, merchant: 20, amount: 0 });
    assert_eq!(merchant(&w.m, 20), 0);
    w.rejects(Op::Refund { id: 52, payment: 50, amount: 3_500 }, E::MerchantBalanceInsufficient);
    w.rejects(Op::Refund { id: 53, payment: 50, amount: 100 }, E::MerchantBalanceInsufficient);
    // A failed payout gives the balance back, and the refund goes through.
    w.ok(Op::PayoutResult { payout: payout_id(51), ok: false });
    w.ok(Op::Refund { id: 54, payment: 50, amount: 3_500 });
    assert_eq!(wallet(&w.m, 10), 10_000);
}

// Payouts.

#[test]
fn a_confirmed_instant_payout_leaves_through_the_merchants_channel() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    let channel_before = channel_out(&w.m, 1);
    let payout = payout_id(51);
    assert_eq!(
        w.ok(Op::Payout { id: 51, merchant: 20, amount: 0 }),
        Done::Payout { payout, amount: 2_700 }
    );
    assert_eq!(
        w.m.payout_of(payout),
        Some(Payout { merchant: 20, channel: 1, currency: CNY, amount: 2_700 })
    );
    assert_eq!(merchant(&w.m, 20), 0);
    assert_eq!(posted(&w.m, Kind::Merchant, CNY, 20), 2_700);
    assert_eq!(in_transit(&w.m), 0);
    assert_eq!(credits_pending(&w.m, Kind::PayoutsInTransit, CNY, 0), 2_700);
    assert_eq!(w.ok(Op::PayoutResult { payout, ok: true }), Done::Payout { payout, amount: 2_700 });
    assert_eq!(posted(&w.m, Kind::Merchant, CNY, 20), 0);
    assert_eq!(in_transit(&w.m), 0);
    assert_eq!(credits_pending(&w.m, Kind::PayoutsInTransit, CNY, 0), 0);
    // The money left through the channel.
    assert_eq!(channel_out(&w.m, 1), channel_before - 2_700);
    // The answer is given once.
    w.rejects(Op::PayoutResult { payout, ok: false }, E::IdempotencyConflict);
    assert_eq!(w.ok(Op::PayoutResult { payout, ok: true }), Done::Payout { payout, amount: 2_700 });
}

#[test]
fn a_failed_instant_payout_returns_the_money_to_the_merchant() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    let channel_before = channel_out(&w.m, 1);
    let payout = payout_id(51);
    w.ok(Op::Payout { id: 51, merchant: 20, amount: 1_000 });
    assert_eq!(merchant(&w.m, 20), 1_700);
    w.ok(Op::PayoutResult { payout, ok: false });
    assert_eq!(merchant(&w.m, 20), 2_700);
    assert_eq!(channel_out(&w.m, 1), channel_before);
    assert_eq!(credits_pending(&w.m, Kind::PayoutsInTransit, CNY, 0), 0);
}

#[test]
fn payout_rejections() {
    let mut w = World::new();
    w.rejects(Op::Payout { id: 50, merchant: 99, amount: 0 }, E::UnknownMerchant);
    // Nothing to pay out.
    w.rejects(Op::Payout { id: 51, merchant: 20, amount: 0 }, E::InvalidAmount);
    w.ok(pay(52, 10, 20, 3_000, 500, 0));
    w.rejects(Op::Payout { id: 53, merchant: 20, amount: 2_701 }, E::MerchantBalanceInsufficient);
    w.rejects(Op::Payout { id: 54, merchant: 20, amount: AMOUNT_MAX + 1 }, E::InvalidAmount);
    w.rejects(Op::PayoutResult { payout: 12_345, ok: true }, E::UnknownPayout);
    // A rejected payout is no payout.
    w.rejects(Op::PayoutResult { payout: payout_id(53), ok: true }, E::UnknownPayout);
    assert_eq!(
        w.ok(Op::Payout { id: 55, merchant: 20, amount: 2_700 }),
        Done::Payout { payout: payout_id(55), amount: 2_700 }
    );
}

// Settlement runs.

fn line(merchant: u64, run: u64, net: u64, statement: Statement) -> SettlementLine {
    SettlementLine {
        merchant,
        channel: 1,
        currency: CNY,
        payout: if net > 0 { settlement_payout_id(run, merchant) } else { 0 },
        statement,
        net,
    }
}

#[test]
fn a_settlement_run_pays_each_merchant_what_it_is_owed() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    w.ok(pay(51, 11, 21, 2_000, 300, 0));
    // A tenth back: merchant 20 gives back 2.70 of its 27.00.
    assert_eq!(
        w.ok(Op::Refund { id: 52, payment: 50, amount: 350 }),
        Done::Refund { amount: 350, legs: legs(270, 50, 30, 0), full: false }
    );
    assert_eq!((merchant(&w.m, 20), merchant(&w.m, 21)), (2_430, 1_700));
    let channel_before = channel_out(&w.m, 1);

    let first = vec![
        line(
            20,
            95,
            2_430,
            Statement {
                payments: 1,
                gross: 3_000,
                refunds: 270,
                commission: 300,
                commission_returned: 30,
                discounts: 0,
            },
        ),
        line(
            21,
            95,
            1_700,
            Statement { payments: 1, gross: 2_000, commission: 300, ..Statement::default() },
        ),
    ];
    assert_eq!(w.ok(Op::SettlementRun { id: 95 }), Done::Settlement { lines: first.clone() });
    assert_eq!(w.m.settlement(95), Some(&first[..]));
    assert_eq!((merchant(&w.m, 20), merchant(&w.m, 21)), (0, 0));
    assert_eq!(credits_pending(&w.m, Kind::PayoutsInTransit, CNY, 0), 2_430 + 1_700);
    assert_eq!(
        w.m.payout_of(settlement_payout_id(95, 20)),
        Some(Payout { merchant: 20, channel: 1, currency: CNY, amount: 2_430 })
    );

    // The next run pays only what accrued since; a merchant with nothing new has no line.
    w.ok(pay(53, 10, 20, 1_000, 0, 0));
    let second = vec![line(
        20,
        96,
        900,
        Statement { payments: 1, gross: 1_000, commission: 100, ..Statement::default() },
    )];
    assert_eq!(w.ok(Op::SettlementRun { id: 96 }), Done::Settlement { lines: second.clone() });
    // The same run again returns its lines and pays nothing more.
    let held = money(&w.m);
    assert_eq!(w.ok(Op::SettlementRun { id: 95 }), Done::Settlement { lines: first });
    assert_eq!(money(&w.m), held);

    // The bank confirms one payout and fails the other: that money comes back and the next
    // run pays it again.
    let ok = settlement_payout_id(95, 20);
    let failed = settlement_payout_id(95, 21);
    assert_eq!(
        w.ok(Op::PayoutResult { payout: ok, ok: true }),
        Done::Payout { payout: ok, amount: 2_430 }
    );
    assert_eq!(channel_out(&w.m, 1), channel_before - 2_430);
    w.ok(Op::PayoutResult { payout: failed, ok: false });
    assert_eq!(merchant(&w.m, 21), 1_700);
    assert_eq!(
        w.ok(Op::SettlementRun { id: 97 }),
        Done::Settlement { lines: vec![line(21, 97, 1_700, Statement::default())] }
    );
    assert_eq!(credits_pending(&w.m, Kind::PayoutsInTransit, CNY, 0), 900 + 1_700);
}

#[test]
fn a_settlement_run_pays_only_what_instant_payouts_left() {
    let mut w = World::new();
    w.ok(pay(50, 10, 20, 3_000, 500, 0));
    w.ok(Op::Payout { id: 51, merchant: 20, amount: 2_000 });
    let statement =
        Statement { payments: 1, gross: 3_000, commission: 300, ..Statement::default() };
    assert_eq!(
        w.ok(Op::SettlementRun { id: 95 }),
        Done::Settlement { lines: vec![line(20, 95, 700, statement)] }
    );
    // A merchant with activity but nothing left gets its statement and no payout.
    w.ok(pay(52, 10, 20, 1_000, 0, 0));
    w.ok(Op::Payout { id: 53, merchant: 20, amount: 0 });
    assert_eq!(
        w.ok(Op::SettlementRun { id: 96 }),
        Done::Settlement {
            lines: vec![line(
                20,
                96,
                0,
                Statement { payments: 1, gross: 1_000, commission: 100, ..Statement::default() }
            )]
        }
    );
    // With nothing at all, a run has no lines.
    assert_eq!(w.ok(Op::SettlementRun { id: 97 }), Done::Settlement { lines: vec![] });
}

#[test]
fn payout_answers_of_runs_and_instant_payouts_never_collide() {
    // Run 1's payout to merchant 256 and instant payout 2^48 + 1 have ids that differ only
    // in their tag byte and the position of their fields.
    let mut w = World::new();
    w.ok(Op::CreateMerchant { id: 256, currency: CNY, commission_bps: 0, channel: 1 });
    w.ok(pay(50, 10, 256, 1_000, 0, 0));
    w.ok(pay(51, 10, 20, 1_000, 0, 0));
    w.ok(Op::SettlementRun { id: 1 });
    let run_payout = settlement_payout_id(1, 256);
    w.ok(Op::PayoutResult { payout: run_payout, ok: true });
    w.ok(pay(52, 10, 20, 1_000, 0, 0));
    let instant = (1 << 48) | 1;
    w.ok(Op::Payout { id: instant, merchant: 20, amount: 0 });
    assert_eq!(
        w.ok(Op::PayoutResult { payout: payout_id(instant), ok: true }),
        Done::Payout { payout: payout_id(instant), amount: 900 }
    );
    // Run 1's payout to merchant 20 is still in transit.
    assert_eq!(channel_out(&w.m, 1), 15_000 - 1_000 - 900);
}

// Batches and retries.

#[test]
fn a_batch_gives_each_operation_its_own_outcome_and_refuses_nesting() {
    let mut w = World::new();
    let batch = Op::Batch(vec![
        Op::CreateUser { id: 15, currency: CNY },
        Op::Batch(vec![]),
        Op::Expire,
        pay(50, 10, 20, 1_000, 0, 0),
        pay(51, 11, 20, 9_000, 0, 0),
    ]);
    let outcomes = vec![
        Ok(Done::Created),
        Err(E::NestedBatch),
        Err(E::NestedBatch),
        Ok(paid(1_000, legs(900, 0, 100, 0))),
        Err(E::InsufficientFunds),
    ];
    assert_eq!(w.ok(batch.clone()), Done::Batch(outcomes.clone()));
    assert_eq!(merchant(&w.m, 20), 900);
    // Applied again, every operation is a retry.
    assert_eq!(w.ok(batch), Done::Batch(outcomes));
    assert_eq!(merchant(&w.m, 20), 900);

    let too_large = Op::Batch(vec![Op::Capture { id: 1 }; BATCH_OPS_MAX + 1]);
    w.rejects(too_large, E::BatchTooLarge);
    let largest = Op::Batch(vec![Op::Capture { id: 1 }; BATCH_OPS_MAX]);
    let Done::Batch(outcomes) = w.ok(largest) else { panic!() };
    assert_eq!(outcomes.len(), BATCH_OPS_MAX);
    assert!(outcomes.iter().all(|o| *o == Err(E::UnknownPayment)));
}

#[test]
fn the_same_id_with_other_fields_is_a_conflict() {
    let mut w = World::new();
    w.rejects(Op::CreateUser { id: 10, currency: EUR }, E::IdempotencyConflict);
    w.ok(pay(50, 10, 20, 1_000, 0, 0));
    w.rejects(pay(50, 10, 20, 1_001, 0, 0), E::IdempotencyConflict);
    w.rejects(pay(50, 11, 20, 1_000, 0, 0), E::IdempotencyConflict);
    // The conflicts did not replace the first outcome.
    assert_eq!(w.ok(pay(50, 10, 20, 1_000, 0, 0)), paid(1_000, legs(900, 0, 100, 0)));
    assert_eq!(wallet(&w.m, 10), 9_000);
}

#[test]
fn a_payment_retried_with_any_field_changed_is_a_conflict() {
    // A payment keeps no fingerprint of the operation that made it: its fields are that
    // operation, the hold timeout included, and each one is compared.
    let mut w = World::new();
    let first = pay_by_bank(50, 10, 20, 1_000, 0, 0, 60);
    let outcome = w.ok(first.clone());
    let Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s } = first
    else {
        unreachable!()
    };
    let changed = [
        Op::Pay { id, user: 11, merchant, rider, food, delivery, coupon, channel, timeout_s },
        Op::Pay { id, user, merchant: 21, rider, food, delivery, coupon, channel, timeout_s },
        Op::Pay { id, user, merchant, rider: 31, food, delivery, coupon, channel, timeout_s },
        Op::Pay { id, user, merchant, rider, food: 1_001, delivery, coupon, channel, timeout_s },
        Op::Pay { id, user, merchant, rider, food, delivery: 1, coupon, channel, timeout_s },
        Op::Pay { id, user, merchant, rider, food, delivery, coupon: 1, channel, timeout_s },
        Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel: 0, timeout_s },
        Op::Pay { id, user, merchant, rider, food, delivery, coupon, channel, timeout_s: 61 },
    ];
    for op in changed {
        w.rejects(op, E::IdempotencyConflict);
    }
    assert_eq!(w.ok(first), outcome);
}
