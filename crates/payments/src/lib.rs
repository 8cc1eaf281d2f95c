//! The payment domain of huifu: wallets, payments with coupons and splits, refunds, bank
//! channels, payouts and settlement runs.
//!
//! Every operation becomes one linked chain of ledger transfers, so it happens entirely or not
//! at all, and overdrafts are made impossible by the ledger's balance limits rather than by
//! checks in this code. Like the ledger it is pure: time is an input, nothing here does I/O.
//! What leaves memory is read back through [`store::HistoryStore`], a trait this crate owns and
//! the engine implements over its fjall store; `apply` never reads it.
//!
//! ```
//! use huifu_payments::{Done, Op, PaymentsMachine, PaymentStatus};
//!
//! let mut m = PaymentsMachine::new();
//! let now = 1_700_000_000_000_000_000;
//! for op in [
//!     Op::CreateChannel { id: 1, currency: 156 },
//!     Op::CreateUser { id: 10, currency: 156 },
//!     Op::CreateMerchant { id: 20, currency: 156, commission_bps: 1_000, channel: 1 },
//!     Op::CreateRider { id: 30, currency: 156 },
//!     Op::TopUp { id: 40, user: 10, channel: 1, amount: 10_000, timeout_s: 0 },
//!     Op::BankResult { id: 40, ok: true },
//! ] {
//!     m.apply(now, &op).unwrap();
//! }
//! let pay = Op::Pay { id: 50, user: 10, merchant: 20, rider: 30, food: 3_000, delivery: 500,
//!     coupon: 0, channel: 0, timeout_s: 0 };
//! let Ok(Done::Payment { status, total, legs, .. }) = m.apply(now, &pay) else { panic!() };
//! assert_eq!((status, total), (PaymentStatus::Succeeded, 3_500));
//! assert_eq!((legs.merchant, legs.rider, legs.platform), (2_700, 500, 300));
//! // The merchant sees the money at once.
//! assert_eq!(m.merchant_available(156, 20), 2_700);
//! ```

pub mod audit;
pub mod bank;
pub mod chart;
pub mod command;
pub mod constants;
pub mod currency;
mod history;
mod machine;
pub mod money;
mod sharded;
mod snapshot;
pub mod store;
mod tier;
pub mod webhooks;

pub use audit::{audit, AuditReport};
pub use command::{
    CouponRule, Done, Funder, Op, Outcome, PaymentError, PaymentStatus, SettlementLine, Statement,
};
pub use machine::{
    settlement_payout_id, Campaign, Coupon, Hold, HoldKind, Merchant, Payment, PaymentsMachine,
    Payout,
};
