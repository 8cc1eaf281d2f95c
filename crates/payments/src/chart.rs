//! The chart of accounts: which ledger account holds whose money, and how ids are derived.
//!
//! A ledger account id is `kind << 96 | currency << 64 | entity`: one account per party, kind and
//! currency, found without any lookup table. The ledger of an account is its currency (ISO 4217
//! numeric code, e.g. 156 for CNY), so money never moves between currencies.

use huifu_ledger::{Account, AccountFlags};

/// The kinds of account. The discriminant is the account's `code` in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A user's wallet balance. Never below zero: `debits_must_not_exceed_credits`.
    Wallet = 1,
    /// What the platform owes a merchant. Never below zero.
    Merchant = 2,
    /// What the platform owes a rider (delivery fees). Never below zero.
    Rider = 3,
    /// Commission the platform earned (one per currency).
    PlatformRevenue = 4,
    /// What is left of a coupon campaign's budget. Never below zero, so a campaign can never
    /// spend more than its budget, whatever the concurrency.
    CampaignBudget = 5,
    /// Money at one bank channel: debited when money comes in, credited when it goes out.
    Channel = 6,
    /// Merchant payouts sent to the bank but not yet confirmed (one per currency).
    PayoutsInTransit = 7,
    /// The platform's marketing spend, which funds platform campaigns (one per currency).
    PlatformMarketing = 8,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Wallet,
        Kind::Merchant,
        Kind::Rider,
        Kind::PlatformRevenue,
        Kind::CampaignBudget,
        Kind::Channel,
        Kind::PayoutsInTransit,
        Kind::PlatformMarketing,
    ];

    pub fn code(self) -> u16 {
        self as u16
    }

    pub fn from_code(code: u16) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Accounts that hold someone's money may never go below zero.
    pub fn flags(self) -> AccountFlags {
        match self {
            Kind::Wallet | Kind::Merchant | Kind::Rider | Kind::CampaignBudget => {
                AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
            }
            Kind::PlatformRevenue
            | Kind::Channel
            | Kind::PayoutsInTransit
            | Kind::PlatformMarketing => AccountFlags::default(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Wallet => "wallet",
            Kind::Merchant => "merchant",
            Kind::Rider => "rider",
            Kind::PlatformRevenue => "platform_revenue",
            Kind::CampaignBudget => "campaign_budget",
            Kind::Channel => "channel",
            Kind::PayoutsInTransit => "payouts_in_transit",
            Kind::PlatformMarketing => "platform_marketing",
        }
    }
}

/// The ledger account id of `entity`'s account of `kind` in `currency`. Platform accounts use
/// entity 0.
pub fn account_id(kind: Kind, currency: u32, entity: u64) -> u128 {
    (u128::from(kind.code()) << 96) | (u128::from(currency) << 64) | u128::from(entity)
}

/// The parts of an account id made by `account_id`.
pub fn split_account_id(id: u128) -> Option<(Kind, u32, u64)> {
    let kind = Kind::from_code(u16::try_from(id >> 96).ok()?)?;
    let currency = u32::try_from((id >> 64) & u128::from(u32::MAX)).ok()?;
    let entity = u64::try_from(id & u128::from(u64::MAX)).ok()?;
    Some((kind, currency, entity))
}

/// The account to create for `entity`'s account of `kind`.
pub fn new_account(kind: Kind, currency: u32, entity: u64) -> Account {
    Account {
        id: account_id(kind, currency, entity),
        ledger: currency,
        code: kind.code(),
        flags: kind.flags(),
        user_data_64: entity,
        ..Account::default()
    }
}

/// Why money moved: the `code` of a ledger transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    TopUp = 1,
    Withdrawal = 2,
    /// From the bank channel into the wallet for a payment through a bank channel.
    ChannelPayment = 3,
    /// The coupon discount, from the campaign budget to the wallet.
    Coupon = 4,
    /// The merchant's share of a payment (food amount less commission).
    MerchantShare = 5,
    DeliveryFee = 6,
    Commission = 7,
    Refund = 8,
    /// A coupon discount returned to its campaign by a refund.
    CouponReturn = 9,
    CampaignFunding = 10,
    Payout = 11,
    /// A confirmed payout leaving for the merchant's bank.
    PayoutSettled = 12,
}

/// Which operation a ledger transfer belongs to: the top byte of its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpTag {
    TopUp = 1,
    Withdrawal = 2,
    Payment = 3,
    Capture = 4,
    Release = 5,
    Refund = 6,
    Campaign = 7,
    Payout = 8,
    PayoutResult = 9,
    BankResult = 10,
    /// A settlement run's payout (the run and merchant ids are in the transfer id).
    Settlement = 11,
    /// The transfer that sends a confirmed payout on to the bank.
    PayoutSettled = 12,
}

/// The id of leg `leg` of operation `op` of kind `tag`: unique, and tells where it came from.
pub fn transfer_id(tag: OpTag, op: u64, leg: u8) -> u128 {
    ((tag as u128) << 120) | (u128::from(op) << 8) | u128::from(leg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_roundtrip_and_never_collide_across_kinds() {
        let a = account_id(Kind::Wallet, 156, 42);
        let b = account_id(Kind::Merchant, 156, 42);
        let c = account_id(Kind::Wallet, 978, 42);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(split_account_id(a), Some((Kind::Wallet, 156, 42)));
        assert_eq!(
            split_account_id(account_id(Kind::Channel, 1, u64::MAX)),
            Some((Kind::Channel, 1, u64::MAX))
        );
        assert_eq!(split_account_id(0), None);
    }

    #[test]
    fn wallets_merchants_riders_and_budgets_cannot_overdraw() {
        for kind in [Kind::Wallet, Kind::Merchant, Kind::Rider, Kind::CampaignBudget] {
            assert!(kind.flags().contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS));
        }
        assert_eq!(Kind::from_code(Kind::Channel.code()), Some(Kind::Channel));
    }

    #[test]
    fn transfer_ids_are_distinct_per_leg_and_operation() {
        assert_ne!(transfer_id(OpTag::Payment, 1, 0), transfer_id(OpTag::Payment, 1, 1));
        assert_ne!(transfer_id(OpTag::Payment, 1, 0), transfer_id(OpTag::Refund, 1, 0));
        assert_ne!(transfer_id(OpTag::Payment, 1, 0), 0);
    }
}
