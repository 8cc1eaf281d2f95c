//! How the simulated clients reach the payment engine: the `Transport` trait, and its
//! implementation on an embedded engine.
//!
//! The traffic model speaks in `Op`s and learns from `Reply`s. Parties (users, merchants,
//! riders, channels, campaigns) carry the model's own ids (`1..=users`, ...); objects made during
//! the day (payments, holds, coupons, payouts) carry the ids the replies gave them. A transport
//! that talks to a server translates the former and passes the latter through.

use std::sync::Arc;

use huifu_engine::{Engine, EngineError};
use huifu_payments::{Done, Op, Outcome, PaymentsMachine};

/// What the model learns from an acknowledged operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ack {
    /// The id of the object it created (a payment, refund, hold, coupon, ...), or of the object
    /// it acted on (a capture's payment); 0 when there is none.
    pub id: u64,
    /// The amount it moved: a payment's total after discount, a refund's or a hold's amount, a
    /// payout's amount, a settlement run's total payouts.
    pub amount: u64,
    /// Payouts it started, `(payout id, amount)`: one for an instant payout, one per merchant
    /// paid by a settlement run.
    pub payouts: Vec<(u128, u64)>,
}

/// The reply to one operation: acknowledged, or rejected with the error code.
pub type Reply = Result<Ack, String>;

/// A way to apply operations, in order, with one reply per operation.
pub trait Transport {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies `ops` in order (as one batch where the transport can) and returns one reply per
    /// operation. An error means the transport failed, not that an operation was rejected.
    fn submit(&mut self, ops: Vec<Op>) -> Result<Vec<Reply>, Self::Error>;

    /// Like `submit`, for operations that do not depend on each other: a transport may apply
    /// them in any order or concurrently. Used by the set-up.
    fn submit_independent(&mut self, ops: Vec<Op>) -> Result<Vec<Reply>, Self::Error> {
        self.submit(ops)
    }
}

/// The embedded engine as a transport: a list of operations is one `Op::Batch` (one journal
/// record), split at `BATCH_OPS_MAX`.
pub struct EngineTransport {
    engine: Arc<Engine<PaymentsMachine>>,
}

impl EngineTransport {
    pub fn new(engine: Arc<Engine<PaymentsMachine>>) -> EngineTransport {
        EngineTransport { engine }
    }
}

impl Transport for EngineTransport {
    type Error = EngineError;

    fn submit(&mut self, ops: Vec<Op>) -> Result<Vec<Reply>, EngineError> {
        let mut replies = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(huifu_payments::constants::BATCH_OPS_MAX) {
            let outcomes = match self.engine.execute(Op::Batch(chunk.to_vec()))? {
                Ok(Done::Batch(outcomes)) => outcomes,
                other => panic!("a batch got {other:?}"),
            };
            assert_eq!(outcomes.len(), chunk.len(), "one outcome per operation");
            replies.extend(chunk.iter().zip(outcomes).map(|(op, o)| reply(op, o)));
        }
        Ok(replies)
    }
}

/// The model's view of an engine outcome.
pub fn reply(op: &Op, outcome: Outcome) -> Reply {
    let done = outcome.map_err(|e| e.code().to_owned())?;
    let id = object_id(op);
    Ok(match done {
        Done::Payment { total, .. } => Ack { id, amount: total, payouts: Vec::new() },
        Done::Refund { amount, .. } | Done::Hold { amount } => {
            Ack { id, amount, payouts: Vec::new() }
        }
        Done::Payout { payout, amount } => Ack { id, amount, payouts: vec![(payout, amount)] },
        Done::Settlement { lines } => {
            let payouts: Vec<(u128, u64)> =
                lines.iter().filter(|l| l.net > 0).map(|l| (l.payout, l.net)).collect();
            let amount = payouts.iter().map(|(_, a)| a).sum();
            Ack { id, amount, payouts }
        }
        _ => match op {
            Op::TopUp { amount, .. } | Op::Withdraw { amount, .. } => {
                Ack { id, amount: *amount, payouts: Vec::new() }
            }
            Op::CreateCampaign { budget, .. } => Ack { id, amount: *budget, payouts: Vec::new() },
            _ => Ack { id, ..Ack::default() },
        },
    })
}

/// The id an operation names: the object it creates or acts on.
pub fn object_id(op: &Op) -> u64 {
    match *op {
        Op::CreateChannel { id, .. }
        | Op::CreateUser { id, .. }
        | Op::CreateMerchant { id, .. }
        | Op::CreateRider { id, .. }
        | Op::CreateCampaign { id, .. }
        | Op::GrantCoupon { id, .. }
        | Op::TopUp { id, .. }
        | Op::Withdraw { id, .. }
        | Op::BankResult { id, .. }
        | Op::Pay { id, .. }
        | Op::Capture { id }
        | Op::Release { id }
        | Op::Refund { id, .. }
        | Op::Payout { id, .. }
        | Op::SettlementRun { id } => id,
        _ => 0,
    }
}
