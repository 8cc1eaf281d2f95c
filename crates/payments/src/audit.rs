//! The audit: every invariant of the money, checked from independent sources at once.
//!
//! Each check compares what the domain tables say (payments, refunds, campaigns, payouts) with
//! what the ledger says (balances, transfers), or the ledger with itself (balances against the
//! sum of each account's transfers). Any disagreement is a violation.

use hashbrown::HashMap;
use huifu_ledger::{AccountFlags, PendingStatus, TransferFlags};

use crate::chart::{account_id, Kind};
use crate::command::{Funder, PaymentStatus};
use crate::machine::PaymentsMachine;

/// What the audit looked at, and every violation it found (empty when all is well).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: u64,
    pub transfers: u64,
    pub payments: u64,
    pub violations: Vec<String>,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Most violations listed; past that only the count grows.
const VIOLATIONS_LISTED_MAX: usize = 100;

pub fn audit(m: &PaymentsMachine) -> AuditReport {
    let mut report = AuditReport::default();
    let mut fail = |what: String| {
        if report.violations.len() < VIOLATIONS_LISTED_MAX {
            report.violations.push(what);
        }
    };
    let ledger = m.ledger();

    // 1. Debits equal credits, and every account's balances are the sum of its transfers.
    let totals = ledger.totals();
    if !totals.is_balanced() {
        fail(format!("debits and credits differ: {totals:?}"));
    }
    let mut sums: HashMap<u128, [u128; 4]> = HashMap::new();
    let mut transfers = 0u64;
    let scanned = m.for_each_transfer(|t, status| {
        transfers += 1;
        let (pending, posted) = if t.flags.contains(TransferFlags::PENDING) {
            // A hold counts as pending until resolved; its post is counted by the post itself.
            (if status == Some(PendingStatus::Pending) { t.amount } else { 0 }, 0)
        } else if t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
            (0, 0)
        } else {
            (0, t.amount)
        };
        let debit = sums.entry(t.debit_account_id).or_default();
        debit[0] += pending;
        debit[1] += posted;
        let credit = sums.entry(t.credit_account_id).or_default();
        credit[2] += pending;
        credit[3] += posted;
    });
    if let Err(e) = scanned {
        fail(format!("history store cannot be read: {e}"));
    }
    for a in ledger.accounts() {
        let s = sums.get(&a.id).copied().unwrap_or_default();
        let balances = [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted];
        if s != balances {
            fail(format!(
                "account {:#x}: balances {balances:?} but its transfers sum to {s:?}",
                a.id
            ));
        }
        if a.flags.contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && a.debits_pending + a.debits_posted > a.credits_posted
        {
            fail(format!("account {:#x} is below zero", a.id));
        }
    }
    report.accounts = ledger.accounts().len() as u64;
    report.transfers = transfers;

    // 2. No refund above its payment; what each merchant and campaign should hold.
    let mut merchant_expected: HashMap<u64, i128> = HashMap::new();
    let mut campaign_spent: HashMap<u64, u64> = HashMap::new();
    m.for_each_payment(|id, p| {
        report.payments += 1;
        if p.refunded.total() > p.legs.total() {
            fail(format!("payment {id}: refunded {} of {}", p.refunded.total(), p.legs.total()));
        }
        let counted = matches!(p.status, PaymentStatus::Succeeded);
        if counted {
            *merchant_expected.entry(p.merchant).or_default() +=
                i128::from(p.legs.merchant) - i128::from(p.refunded.merchant);
        }
        let holds_coupon = counted || m.payment_status(id, p) == PaymentStatus::Authorized;
        if p.campaign != 0 && holds_coupon {
            *campaign_spent.entry(p.campaign).or_default() += p.legs.coupon - p.refunded.coupon;
        }
    });
    for (id, c) in m.campaigns() {
        if let Funder::Merchant(merchant) = c.funder {
            *merchant_expected.entry(merchant).or_default() -= i128::from(c.budget);
        }
        let spent = campaign_spent.get(&id).copied().unwrap_or(0);
        if spent > c.budget {
            fail(format!("campaign {id}: spent {spent} of a budget of {}", c.budget));
        }
        // Left (net of coupons held by authorized payments) + spent or held = the budget.
        let left = m.campaign(id).map(|(_, left)| left).unwrap_or(0);
        if u128::from(left) + u128::from(spent) != u128::from(c.budget) {
            fail(format!("campaign {id}: {left} left + {spent} spent != budget {}", c.budget));
        }
    }

    // 3. Each merchant: paid out + in transit + unpaid = payments − refunds − commission −
    //    own campaign budgets, from the payout records on one side and the ledger on the other.
    let mut paid: HashMap<u64, i128> = HashMap::new();
    for (id, payout) in m.payouts() {
        let status = m.pending_status(id).unwrap_or_else(|e| {
            fail(format!("history store cannot be read: {e}"));
            None
        });
        if matches!(status, Some(PendingStatus::Pending) | Some(PendingStatus::Posted)) {
            *paid.entry(payout.merchant).or_default() += i128::from(payout.amount);
        }
        match m.lookup_transfer(id) {
            Ok(Some(t))
                if t.amount == u128::from(payout.amount)
                    && t.debit_account_id
                        == account_id(Kind::Merchant, payout.currency, payout.merchant) => {}
            other => fail(format!(
                "payout {id:#x} of {} does not match the ledger: {other:?}",
                payout.amount
            )),
        }
    }
    for (&merchant, &expected) in &merchant_expected {
        let Some(info) = m.merchant(merchant) else {
            continue;
        };
        let a = m.account(Kind::Merchant, info.currency, merchant).expect("merchant account");
        let unpaid = i128::try_from(a.credits_posted).expect("fits")
            - i128::try_from(a.debits_posted + a.debits_pending).expect("fits");
        let paid = paid.get(&merchant).copied().unwrap_or(0);
        if paid + unpaid != expected {
            fail(format!(
                "merchant {merchant}: paid out {paid} + unpaid {unpaid} != owed {expected}"
            ));
        }
    }

    // 4. Every settlement line's payout is in the ledger with its amount.
    for (run, lines) in m.settlements_all() {
        for line in lines.iter().filter(|l| l.net > 0) {
            match m.lookup_transfer(line.payout) {
                Ok(Some(t)) if t.amount == u128::from(line.net) => {}
                other => fail(format!("settlement {run}, merchant {}: {other:?}", line.merchant)),
            }
        }
    }

    // 5. Platform accounts agree with the payments: commission kept = commission − returned.
    let mut revenue: HashMap<u32, i128> = HashMap::new();
    m.for_each_payment(|_, p| {
        if p.status == PaymentStatus::Succeeded {
            *revenue.entry(p.currency).or_default() +=
                i128::from(p.legs.platform) - i128::from(p.refunded.platform);
        }
    });
    for (currency, expected) in revenue {
        let a = ledger.lookup_account(account_id(Kind::PlatformRevenue, currency, 0));
        let actual = a.map(|a| {
            i128::try_from(a.credits_posted).expect("fits")
                - i128::try_from(a.debits_posted).expect("fits")
        });
        if actual != Some(expected) {
            fail(format!("platform revenue in {currency}: {actual:?}, payments say {expected}"));
        }
    }
    report
}
