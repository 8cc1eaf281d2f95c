//! Webhook endpoints, and the events the ledger owes them.
//!
//! The machine keeps each endpoint (its URL, the events it wants, its signing secrets, whether it
//! is enabled) and its delivery position: the last event it was delivered in order and that
//! event's sequence number. Both change only through [`WebhookOp`]s, so they are journaled,
//! checkpointed and, on a cluster, replicated like everything else: after a restart or a
//! failover, delivery resumes from the position the log holds.
//!
//! Events themselves are not stored: each is derived from a ledger transfer ([`derive`]), so an
//! event exists only once its transfer is durable, and its id is the same on every node. The id
//! number is the transfer's timestamp times [`EVENTS_PER_TRANSFER`] plus the event's index among
//! the transfer's events. Delivery (HTTP, signatures, retries) is the server's.

use std::collections::{BTreeMap, HashMap};

use huifu_ledger::{Transfer, TransferFlags};

use crate::chart::OpTag;
use crate::machine::PaymentsMachine;

/// Room in an event id for the events of one transfer (a refund makes two).
pub const EVENTS_PER_TRANSFER: u64 = 4;

/// The kinds of event. The discriminant is the event's bit in an endpoint's `events` mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    PaymentSucceeded = 0,
    PaymentRefunded = 1,
    RefundSucceeded = 2,
    TopUpSucceeded = 3,
    TopUpFailed = 4,
    WithdrawalSucceeded = 5,
    WithdrawalFailed = 6,
    PayoutPaid = 7,
    PayoutFailed = 8,
    SettlementRunCompleted = 9,
}

impl EventType {
    pub const ALL: [EventType; 10] = [
        EventType::PaymentSucceeded,
        EventType::PaymentRefunded,
        EventType::RefundSucceeded,
        EventType::TopUpSucceeded,
        EventType::TopUpFailed,
        EventType::WithdrawalSucceeded,
        EventType::WithdrawalFailed,
        EventType::PayoutPaid,
        EventType::PayoutFailed,
        EventType::SettlementRunCompleted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventType::PaymentSucceeded => "payment.succeeded",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::RefundSucceeded => "refund.succeeded",
            EventType::TopUpSucceeded => "topup.succeeded",
            EventType::TopUpFailed => "topup.failed",
            EventType::WithdrawalSucceeded => "withdrawal.succeeded",
            EventType::WithdrawalFailed => "withdrawal.failed",
            EventType::PayoutPaid => "payout.paid",
            EventType::PayoutFailed => "payout.failed",
            EventType::SettlementRunCompleted => "settlement_run.completed",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// An endpoint's `events` mask that takes every event, those added later included (`["*"]`).
pub const EVENTS_ALL: u32 = u32::MAX;

/// What an event is about: the object its delivery carries, as it stands then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Payment(u64),
    Refund(u64),
    TopUp(u64),
    Withdrawal(u64),
    /// By the ledger id of the payout's pending transfer.
    Payout(u128),
    SettlementRun(u64),
}

/// One event owed to endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The id's number: the transfer's timestamp times `EVENTS_PER_TRANSFER`, plus the index.
    pub number: u64,
    pub kind: EventType,
    /// The merchant it concerns (0: none, for the platform's endpoints only).
    pub merchant: u64,
    pub subject: Subject,
}

impl Event {
    /// When it happened: its transfer's timestamp (nanoseconds since the Unix epoch).
    pub fn timestamp(&self) -> u64 {
        self.number / EVENTS_PER_TRANSFER
    }
}

/// The events of one ledger transfer, in index order (none for most transfers: an event is
/// made by an operation's first transfer, or by the bank's answer).
pub fn derive(m: &PaymentsMachine, t: &Transfer) -> Vec<Event> {
    // Transfers made through the ledger endpoints may have ids in the domain's range: they are
    // no operation's, and make no event.
    if m.foreign.contains(&t.id) {
        return Vec::new();
    }
    let tag = (t.id >> 120) as u8;
    let leg = (t.id & 0xFF) as u8;
    let op = t.user_data_64;
    let number = |index: u64| t.timestamp * EVENTS_PER_TRANSFER + index;
    let event =
        |index, kind, merchant, subject| Event { number: number(index), kind, merchant, subject };
    let posted = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
    let pending = t.flags.contains(TransferFlags::PENDING);
    let payment_merchant = |id| m.payment(id).map_or(0, |(p, _)| p.merchant);
    match tag {
        // A wallet payment is done at once; a bank-channel payment's legs are holds.
        x if x == OpTag::Payment as u8 && !pending && is_first_leg(m, t, OpTag::Payment, leg) => {
            vec![event(0, EventType::PaymentSucceeded, payment_merchant(op), Subject::Payment(op))]
        }
        x if x == OpTag::Capture as u8 && leg == 0 => {
            vec![event(0, EventType::PaymentSucceeded, payment_merchant(op), Subject::Payment(op))]
        }
        x if x == OpTag::Refund as u8 && is_first_leg(m, t, OpTag::Refund, leg) => {
            let Some((payment, _)) = m.refund_of(op) else { return Vec::new() };
            let merchant = payment_merchant(payment);
            vec![
                event(0, EventType::RefundSucceeded, merchant, Subject::Refund(op)),
                event(1, EventType::PaymentRefunded, merchant, Subject::Payment(payment)),
            ]
        }
        x if x == OpTag::BankResult as u8 && leg == 0 => {
            let topup = (t.pending_id >> 120) as u8 == OpTag::TopUp as u8;
            let (kind, subject) = match (topup, posted) {
                (true, true) => (EventType::TopUpSucceeded, Subject::TopUp(op)),
                (true, false) => (EventType::TopUpFailed, Subject::TopUp(op)),
                (false, true) => (EventType::WithdrawalSucceeded, Subject::Withdrawal(op)),
                (false, false) => (EventType::WithdrawalFailed, Subject::Withdrawal(op)),
            };
            vec![event(0, kind, 0, subject)]
        }
        x if x == OpTag::PayoutResult as u8 => {
            let payout = t.pending_id;
            let merchant = m.payout_of(payout).map_or(0, |p| p.merchant);
            let kind = if posted { EventType::PayoutPaid } else { EventType::PayoutFailed };
            vec![event(0, kind, merchant, Subject::Payout(payout))]
        }
        // A settlement run's payouts are made together; the first one stands for the run.
        x if x == OpTag::Settlement as u8 && pending => {
            let first = m
                .settlement(op)
                .and_then(|lines| lines.iter().find(|l| l.payout != 0).map(|l| l.payout));
            if first != Some(t.id) {
                return Vec::new();
            }
            vec![event(0, EventType::SettlementRunCompleted, 0, Subject::SettlementRun(op))]
        }
        _ => Vec::new(),
    }
}

/// Whether `t`, leg `leg` of its operation, is its chain's first: legs without money are left
/// out of a chain, so the first may be any. A chain's legs have consecutive timestamps, so the
/// ones before `t` are at most `leg` transfers before it: in memory, unless the chain straddles
/// the horizon (transfers leave memory by whole chunks, wherever chains end), when the history
/// store is asked too.
fn is_first_leg(m: &PaymentsMachine, t: &Transfer, tag: OpTag, leg: u8) -> bool {
    let held = t.timestamp.saturating_sub(u64::from(leg)) > m.ledger().horizon();
    (0..leg).all(|earlier| {
        let id = crate::chart::transfer_id(tag, t.user_data_64, earlier);
        if held {
            m.ledger().lookup_transfer(id).is_none()
        } else {
            matches!(m.lookup_transfer(id), Ok(None))
        }
    })
}

/// The events of the transfers in memory after event number `after`, from at most `take`
/// transfers, and the event number the look reached (to start the next one after). `None` when
/// events after `after` have left memory (a position older than the memory bound).
pub fn events_after(m: &PaymentsMachine, after: u64, take: usize) -> Option<(Vec<Event>, u64)> {
    let ledger = m.ledger();
    let log = ledger.transfers();
    let after_timestamp = after / EVENTS_PER_TRANSFER;
    // The first transfer that may have events after `after`: the one at `after`'s timestamp
    // while some of its events are still owed, else the next one (starting at a transfer whose
    // events are all at or before `after` would never move past it with `take` 1).
    let from = if after % EVENTS_PER_TRANSFER == EVENTS_PER_TRANSFER - 1 {
        after_timestamp + 1
    } else {
        after_timestamp
    };
    // Transfers up to the horizon left memory (none while it is zero).
    if ledger.horizon() >= from.max(1) {
        return None;
    }
    let start = log.partition_point(|t| t.timestamp < from);
    let end = start.saturating_add(take).min(log.len());
    let mut events = Vec::new();
    let mut reached = after;
    for t in (start..end).filter_map(|p| log.get(p)) {
        events.extend(derive(m, t).into_iter().filter(|e| e.number > after));
        reached = reached.max(t.timestamp * EVENTS_PER_TRANSFER + EVENTS_PER_TRANSFER - 1);
    }
    Some((events, reached))
}

/// The event with id number `number`, if its transfer is in memory.
pub fn event(m: &PaymentsMachine, number: u64) -> Option<Event> {
    let log = m.ledger().transfers();
    let timestamp = number / EVENTS_PER_TRANSFER;
    let at = log.partition_point(|t| t.timestamp < timestamp);
    let t = log.get(at).filter(|t| t.timestamp == timestamp)?;
    derive(m, t).into_iter().find(|e| e.number == number)
}

/// The event number at the ledger's head: an endpoint made now is owed the events after it.
pub fn head(m: &PaymentsMachine) -> u64 {
    let ledger = m.ledger();
    let timestamp = ledger.transfers().last().map_or(0, |t| t.timestamp).max(ledger.horizon());
    timestamp * EVENTS_PER_TRANSFER + EVENTS_PER_TRANSFER - 1
}

/// Why an endpoint is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisabledReason {
    /// By an update.
    Requested = 1,
    /// The endpoint answered `410 Gone`.
    Gone = 2,
    /// Every attempt of the retry schedule failed.
    Failing = 3,
}

impl DisabledReason {
    pub fn name(self) -> &'static str {
        match self {
            DisabledReason::Requested => "requested",
            DisabledReason::Gone => "gone",
            DisabledReason::Failing => "failing",
        }
    }

    fn from_code(code: u8) -> Option<DisabledReason> {
        [DisabledReason::Requested, DisabledReason::Gone, DisabledReason::Failing]
            .into_iter()
            .find(|r| *r as u8 == code)
    }
}

/// A signing secret: its key bytes, its generation (1 for the first), and until when it signs
/// (0: for as long as it is the newest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    pub key: Vec<u8>,
    pub generation: u32,
    pub expires_at: u64,
}

/// One webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: u64,
    /// The merchant it is for (0: the platform's, owed every event).
    pub merchant: u64,
    pub url: String,
    pub description: String,
    /// `EventType` bits, or `EVENTS_ALL`.
    pub events: u32,
    /// Newest last; older ones only until they expire.
    pub secrets: Vec<Secret>,
    pub created: u64,
    /// `Some` while disabled: when and why.
    pub disabled: Option<(u64, DisabledReason)>,
    /// The last event delivered in order (its number), and its sequence number (0: none yet).
    pub delivered: u64,
    pub sequence: u64,
}

impl Endpoint {
    /// Whether this endpoint is owed `event`.
    pub fn wants(&self, event: &Event) -> bool {
        self.events & event.kind.bit() != 0
            && (self.merchant == 0 || self.merchant == event.merchant)
    }

    /// The secrets that sign at `now`.
    pub fn signing(&self, now: u64) -> impl Iterator<Item = &Secret> {
        let newest = self.secrets.len().saturating_sub(1);
        self.secrets
            .iter()
            .enumerate()
            .filter(move |(i, s)| *i == newest || s.expires_at > now)
            .map(|(_, s)| s)
    }
}

/// A change to the webhook endpoints, journaled as `Op::Webhook`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookOp {
    /// A new endpoint with its first secret. `key`: the client's idempotency key (0: none); a
    /// retry with the same key and fields gets the first endpoint (and its first secret).
    Create {
        key: u128,
        merchant: u64,
        url: String,
        description: String,
        events: u32,
        secret: Vec<u8>,
    },
    Update {
        id: u64,
        url: Option<String>,
        description: Option<String>,
        events: Option<u32>,
        /// `Some(true)` disables (`requested`), `Some(false)` enables again.
        disabled: Option<bool>,
    },
    Delete {
        id: u64,
    },
    /// A new secret; the ones before it sign until `overlap_s` seconds from now. `key` as for
    /// `Create`.
    RotateSecret {
        key: u128,
        id: u64,
        secret: Vec<u8>,
        overlap_s: u64,
    },
    /// Delivery positions: (endpoint, last event delivered in order, its sequence number). A
    /// position behind the one held is ignored, so positions only move forward.
    Delivered(Vec<(u64, u64, u64)>),
    /// The deliverer disables an endpoint (`Gone`, `Failing`).
    Disable {
        id: u64,
        reason: DisabledReason,
    },
}

/// What a `WebhookOp` did: the endpoint as it stands after it (none for `Delivered`), and for a
/// rotation the generation of the secret it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDone {
    pub endpoint: Option<Box<Endpoint>>,
    pub generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("unknown webhook endpoint")]
    UnknownEndpoint,
    #[error("unknown merchant")]
    UnknownMerchant,
    #[error("the idempotency key was used with other fields")]
    IdempotencyConflict,
    #[error("too many webhook endpoints")]
    TooManyEndpoints,
}

/// Endpoints one platform may have: each costs a delivery task and a queue.
pub const WEBHOOK_ENDPOINTS_MAX: usize = 10_000;

/// The endpoints and what delivery reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Webhooks {
    pub(crate) endpoints: BTreeMap<u64, Endpoint>,
    pub(crate) last_id: u64,
    /// Idempotency key → (fingerprint of the fields, endpoint, secret generation).
    pub(crate) keys: HashMap<u128, (u64, u64, u32)>,
    /// Bumped by every change but a position: the deliverer reloads endpoints when it moves.
    pub(crate) version: u64,
}

impl Webhooks {
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.values()
    }

    pub fn endpoint(&self, id: u64) -> Option<&Endpoint> {
        self.endpoints.get(&id)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Applies `op` at `now`; `head` is the event number at the ledger's head (where a new
    /// endpoint starts), `merchant_exists` tells whether a merchant is known.
    pub(crate) fn apply(
        &mut self,
        now: u64,
        head: u64,
        merchant_exists: impl Fn(u64) -> bool,
        op: &WebhookOp,
    ) -> Result<WebhookDone, WebhookError> {
        let done = |e: &Endpoint, generation| WebhookDone {
            endpoint: Some(Box::new(e.clone())),
            generation,
        };
        match op {
            WebhookOp::Create { key, merchant, url, description, events, secret } => {
                let print = fingerprint(&[
                    &merchant.to_le_bytes(),
                    url.as_bytes(),
                    description.as_bytes(),
                    &events.to_le_bytes(),
                ]);
                if let Some(&(first, id, generation)) = self.keys.get(key).filter(|_| *key != 0) {
                    if first != print {
                        return Err(WebhookError::IdempotencyConflict);
                    }
                    let e = self.endpoints.get(&id).ok_or(WebhookError::UnknownEndpoint)?;
                    return Ok(done(e, generation));
                }
                if *merchant != 0 && !merchant_exists(*merchant) {
                    return Err(WebhookError::UnknownMerchant);
                }
                if self.endpoints.len() >= WEBHOOK_ENDPOINTS_MAX {
                    return Err(WebhookError::TooManyEndpoints);
                }
                self.last_id += 1;
                let id = self.last_id;
                let endpoint = Endpoint {
                    id,
                    merchant: *merchant,
                    url: url.clone(),
                    description: description.clone(),
                    events: *events,
                    secrets: vec![Secret { key: secret.clone(), generation: 1, expires_at: 0 }],
                    created: now,
                    disabled: None,
                    delivered: head,
                    sequence: 0,
                };
                if *key != 0 {
                    self.keys.insert(*key, (print, id, 1));
                }
                self.version += 1;
                Ok(done(self.endpoints.entry(id).or_insert(endpoint), 1))
            }
            WebhookOp::Update { id, url, description, events, disabled } => {
                let e = self.endpoints.get_mut(id).ok_or(WebhookError::UnknownEndpoint)?;
                if let Some(url) = url {
                    e.url = url.clone();
                }
                if let Some(description) = description {
                    e.description = description.clone();
                }
                if let Some(events) = events {
                    e.events = *events;
                }
                match disabled {
                    Some(true) if e.disabled.is_none() => {
                        e.disabled = Some((now, DisabledReason::Requested))
                    }
                    Some(false) => e.disabled = None,
                    _ => {}
                }
                self.version += 1;
                Ok(done(e, 0))
            }
            WebhookOp::Delete { id } => {
                let e = self.endpoints.remove(id).ok_or(WebhookError::UnknownEndpoint)?;
                self.version += 1;
                Ok(WebhookDone { endpoint: Some(Box::new(e)), generation: 0 })
            }
            WebhookOp::RotateSecret { key, id, secret, overlap_s } => {
                let print = fingerprint(&[&id.to_le_bytes(), &overlap_s.to_le_bytes()]);
                if let Some(&(first, endpoint, generation)) =
                    self.keys.get(key).filter(|_| *key != 0)
                {
                    if first != print || endpoint != *id {
                        return Err(WebhookError::IdempotencyConflict);
                    }
                    let e = self.endpoints.get(id).ok_or(WebhookError::UnknownEndpoint)?;
                    return Ok(done(e, generation));
                }
                let e = self.endpoints.get_mut(id).ok_or(WebhookError::UnknownEndpoint)?;
                // Counted before older secrets go, so that generations only grow (with no
                // overlap, none is left to count from).
                let generation = e.secrets.iter().map(|s| s.generation).max().unwrap_or(0) + 1;
                let until = now.saturating_add(overlap_s.saturating_mul(1_000_000_000));
                // Secrets already expired go; the others sign until the overlap ends.
                e.secrets.retain(|s| s.expires_at == 0 || s.expires_at > now);
                for s in &mut e.secrets {
                    s.expires_at = if s.expires_at == 0 { until } else { s.expires_at.min(until) };
                }
                e.secrets.retain(|s| s.expires_at > now);
                e.secrets.push(Secret { key: secret.clone(), generation, expires_at: 0 });
                if *key != 0 {
                    self.keys.insert(*key, (print, *id, generation));
                }
                self.version += 1;
                Ok(done(e, generation))
            }
            WebhookOp::Delivered(positions) => {
                for &(id, delivered, sequence) in positions {
                    if let Some(e) = self.endpoints.get_mut(&id) {
                        if sequence > e.sequence {
                            e.delivered = delivered;
                            e.sequence = sequence;
                        }
                    }
                }
                Ok(WebhookDone { endpoint: None, generation: 0 })
            }
            WebhookOp::Disable { id, reason } => {
                let e = self.endpoints.get_mut(id).ok_or(WebhookError::UnknownEndpoint)?;
                if e.disabled.is_none() {
                    e.disabled = Some((now, *reason));
                }
                self.version += 1;
                Ok(done(e, 0))
            }
        }
    }
}

/// FNV-1a over the parts, each ended by its length.
fn fingerprint(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(&(part.len() as u64).to_le_bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The encoding of `WebhookOp`s in the journal and of `Webhooks` in checkpoints: little-endian
/// integers, strings and byte strings after their u32 length.
pub mod codec {
    use super::*;
    use crate::command::codec::{R, W};

    pub fn encode_op(op: &WebhookOp, out: &mut Vec<u8>) {
        let w = &mut W(out);
        match op {
            WebhookOp::Create { key, merchant, url, description, events, secret } => {
                w.u8(1);
                w.u128(*key);
                w.u64(*merchant);
                w.bytes(url.as_bytes());
                w.bytes(description.as_bytes());
                w.u32(*events);
                w.bytes(secret);
            }
            WebhookOp::Update { id, url, description, events, disabled } => {
                w.u8(2);
                w.u64(*id);
                w.option(url.as_ref(), |w, url| w.bytes(url.as_bytes()));
                w.option(description.as_ref(), |w, d| w.bytes(d.as_bytes()));
                w.option(events.as_ref(), |w, e| w.u32(*e));
                w.option(disabled.as_ref(), |w, d| w.u8(u8::from(*d)));
            }
            WebhookOp::Delete { id } => {
                w.u8(3);
                w.u64(*id);
            }
            WebhookOp::RotateSecret { key, id, secret, overlap_s } => {
                w.u8(4);
                w.u128(*key);
                w.u64(*id);
                w.bytes(secret);
                w.u64(*overlap_s);
            }
            WebhookOp::Delivered(positions) => {
                w.u8(5);
                w.u32(u32::try_from(positions.len()).expect("positions fit u32"));
                for &(id, delivered, sequence) in positions {
                    w.u64(id);
                    w.u64(delivered);
                    w.u64(sequence);
                }
            }
            WebhookOp::Disable { id, reason } => {
                w.u8(6);
                w.u64(*id);
                w.u8(*reason as u8);
            }
        }
    }

    pub fn decode_op(bytes: &[u8]) -> Result<WebhookOp, String> {
        let r = &mut R(bytes, 0);
        let op = match r.u8()? {
            1 => WebhookOp::Create {
                key: r.u128()?,
                merchant: r.u64()?,
                url: r.string()?,
                description: r.string()?,
                events: r.u32()?,
                secret: r.field()?.to_vec(),
            },
            2 => WebhookOp::Update {
                id: r.u64()?,
                url: r.option(|r| r.string())?,
                description: r.option(|r| r.string())?,
                events: r.option(|r| r.u32())?,
                disabled: r.option(|r| r.bool())?,
            },
            3 => WebhookOp::Delete { id: r.u64()? },
            4 => WebhookOp::RotateSecret {
                key: r.u128()?,
                id: r.u64()?,
                secret: r.field()?.to_vec(),
                overlap_s: r.u64()?,
            },
            5 => {
                let n = r.u32()? as usize;
                let mut positions = Vec::with_capacity(n.min(r.0.len() / 24));
                for _ in 0..n {
                    positions.push((r.u64()?, r.u64()?, r.u64()?));
                }
                WebhookOp::Delivered(positions)
            }
            6 => WebhookOp::Disable { id: r.u64()?, reason: r.reason()? },
            tag => return Err(format!("unknown webhook operation {tag}")),
        };
        r.end()?;
        Ok(op)
    }

    pub fn encode_state(s: &Webhooks, out: &mut Vec<u8>) {
        let w = &mut W(out);
        w.u64(s.last_id);
        w.u64(s.version);
        w.u32(u32::try_from(s.endpoints.len()).expect("endpoints fit u32"));
        for e in s.endpoints.values() {
            w.u64(e.id);
            w.u64(e.merchant);
            w.bytes(e.url.as_bytes());
            w.bytes(e.description.as_bytes());
            w.u32(e.events);
            w.u32(u32::try_from(e.secrets.len()).expect("secrets fit u32"));
            for s in &e.secrets {
                w.bytes(&s.key);
                w.u32(s.generation);
                w.u64(s.expires_at);
            }
            w.u64(e.created);
            w.option(e.disabled.as_ref(), |w, (at, reason)| {
                w.u64(*at);
                w.u8(*reason as u8);
            });
            w.u64(e.delivered);
            w.u64(e.sequence);
        }
        let mut keys: Vec<_> = s.keys.iter().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        w.u32(u32::try_from(keys.len()).expect("keys fit u32"));
        for (key, (print, id, generation)) in keys {
            w.u128(*key);
            w.u64(*print);
            w.u64(*id);
            w.u32(*generation);
        }
    }

    /// Reads what `encode_state` wrote at the start of `bytes`; returns the bytes after it.
    pub fn decode_state(bytes: &[u8]) -> Result<(Webhooks, &[u8]), String> {
        let r = &mut R(bytes, 0);
        let mut s = Webhooks { last_id: r.u64()?, version: r.u64()?, ..Webhooks::default() };
        for _ in 0..r.u32()? {
            let id = r.u64()?;
            let merchant = r.u64()?;
            let url = r.string()?;
            let description = r.string()?;
            let events = r.u32()?;
            let mut secrets = Vec::new();
            for _ in 0..r.u32()? {
                secrets.push(Secret {
                    key: r.field()?.to_vec(),
                    generation: r.u32()?,
                    expires_at: r.u64()?,
                });
            }
            let created = r.u64()?;
            let disabled = r.option(|r| Ok((r.u64()?, r.reason()?)))?;
            let e = Endpoint {
                id,
                merchant,
                url,
                description,
                events,
                secrets,
                created,
                disabled,
                delivered: r.u64()?,
                sequence: r.u64()?,
            };
            s.endpoints.insert(id, e);
        }
        for _ in 0..r.u32()? {
            let key = r.u128()?;
            s.keys.insert(key, (r.u64()?, r.u64()?, r.u32()?));
        }
        Ok((s, r.0))
    }

    /// Length-prefixed fields and options beside the operation codec's integers.
    impl W<'_> {
        fn bytes(&mut self, v: &[u8]) {
            self.u32(u32::try_from(v.len()).expect("a field fits u32"));
            self.0.extend_from_slice(v);
        }
        fn option<T>(&mut self, v: Option<&T>, f: impl FnOnce(&mut Self, &T)) {
            match v {
                None => self.u8(0),
                Some(v) => {
                    self.u8(1);
                    f(self, v);
                }
            }
        }
    }

    impl<'a> R<'a> {
        fn field(&mut self) -> Result<&'a [u8], String> {
            let n = self.u32()? as usize;
            self.bytes(n)
        }
        fn string(&mut self) -> Result<String, String> {
            String::from_utf8(self.field()?.to_vec()).map_err(|_| "a string is not UTF-8".into())
        }
        fn reason(&mut self) -> Result<DisabledReason, String> {
            let code = self.u8()?;
            DisabledReason::from_code(code).ok_or_else(|| format!("unknown reason {code}"))
        }
        fn option<T>(
            &mut self,
            f: impl FnOnce(&mut Self) -> Result<T, String>,
        ) -> Result<Option<T>, String> {
            match self.u8()? {
                0 => Ok(None),
                1 => Ok(Some(f(self)?)),
                b => Err(format!("bad option {b}")),
            }
        }
        fn end(&self) -> Result<(), String> {
            if self.0.is_empty() {
                Ok(())
            } else {
                Err(format!("{} trailing bytes", self.0.len()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{account_id, transfer_id, Kind};
    use crate::command::{CouponRule, Done, Funder, Op, PaymentError, PaymentStatus};
    use crate::machine::settlement_payout_id;

    const NOW: u64 = 1_700_000_000_000_000_000;
    const SECOND: u64 = 1_000_000_000;
    const CNY: u32 = 156;
    const USER: u64 = 10;
    const M1: u64 = 20;
    const M2: u64 = 21;
    /// Takes the whole food amount as commission: its share of every payment is zero.
    const M_ZERO: u64 = 22;
    const RIDER: u64 = 30;
    const CAMPAIGN: u64 = 60;
    const COUPON: u64 = 61;

    fn ok(m: &mut PaymentsMachine, op: Op) -> Done {
        m.apply(NOW, &op).unwrap_or_else(|e| panic!("{op:?}: {e}"))
    }

    /// The operations of a world: a channel, a user with 100,000 in the wallet, three merchants,
    /// a rider, and a platform campaign whose coupon the user holds.
    fn world_ops() -> Vec<Op> {
        let merchant = |id, commission_bps| Op::CreateMerchant {
            id,
            currency: CNY,
            commission_bps,
            channel: 1,
        };
        vec![
            Op::CreateChannel { id: 1, currency: CNY },
            Op::CreateUser { id: USER, currency: CNY },
            merchant(M1, 1_000),
            merchant(M2, 2_000),
            merchant(M_ZERO, 10_000),
            Op::CreateRider { id: RIDER, currency: CNY },
            Op::TopUp { id: 40, user: USER, channel: 1, amount: 100_000, timeout_s: 0 },
            Op::BankResult { id: 40, ok: true },
            Op::CreateCampaign {
                id: CAMPAIGN,
                currency: CNY,
                funder: Funder::Platform,
                budget: 10_000,
                rule: CouponRule {
                    amount_off: 300,
                    min_order: 0,
                    valid_from: 0,
                    valid_until: 0,
                    per_user_limit: 0,
                },
            },
            Op::GrantCoupon { id: COUPON, campaign: CAMPAIGN, user: USER },
        ]
    }

    fn world() -> PaymentsMachine {
        let mut m = PaymentsMachine::new();
        for op in world_ops() {
            ok(&mut m, op);
        }
        m
    }

    fn pay(id: u64, merchant: u64, food: u64, delivery: u64, coupon: u64, channel: u64) -> Op {
        Op::Pay {
            id,
            user: USER,
            merchant,
            rider: RIDER,
            food,
            delivery,
            coupon,
            channel,
            timeout_s: 0,
        }
    }

    fn ev(number: u64, kind: EventType, merchant: u64, subject: Subject) -> Event {
        Event { number, kind, merchant, subject }
    }

    /// The position the ledger's next transfer will have.
    fn mark(m: &PaymentsMachine) -> usize {
        m.ledger().transfers().len()
    }

    /// The timestamp of the transfer at `position`.
    fn timestamp_at(m: &PaymentsMachine, position: usize) -> u64 {
        m.ledger().transfers().get(position).expect("a transfer there").timestamp
    }

    /// The events of the transfers from `position` on.
    fn since(m: &PaymentsMachine, position: usize) -> Vec<Event> {
        let log = m.ledger().transfers();
        (position..log.len()).filter_map(|p| log.get(p)).flat_map(|t| derive(m, t)).collect()
    }

    fn all_events(m: &PaymentsMachine) -> Vec<Event> {
        since(m, m.ledger().transfers().base())
    }

    /// Applies `op`; returns its outcome, its events, and the timestamp of its first transfer.
    fn step(m: &mut PaymentsMachine, op: Op) -> (Done, Vec<Event>, u64) {
        let at = mark(m);
        let done = ok(m, op);
        let first = m.ledger().transfers().get(at).map_or(0, |t| t.timestamp);
        (done, since(m, at), first)
    }

    // Events.

    #[test]
    fn a_wallet_payment_makes_one_payment_succeeded_for_its_merchant() {
        let mut m = world();
        // Without a coupon, the chain starts at the merchant's share (leg 2): there is no leg 0.
        let (done, events, first) = step(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        assert!(matches!(done, Done::Payment { status: PaymentStatus::Succeeded, .. }));
        assert_eq!(m.ledger().lookup_transfer(transfer_id(OpTag::Payment, 50, 0)), None);
        let number = first * EVENTS_PER_TRANSFER;
        assert_eq!(events, [ev(number, EventType::PaymentSucceeded, M1, Subject::Payment(50))]);
        assert_eq!(events[0].timestamp(), first);
        // With a coupon: the discount is leg 0.
        let (_, events, first) = step(&mut m, pay(51, M2, 3_000, 500, COUPON, 0));
        assert!(m.ledger().lookup_transfer(transfer_id(OpTag::Payment, 51, 0)).is_some());
        let number = first * EVENTS_PER_TRANSFER;
        assert_eq!(events, [ev(number, EventType::PaymentSucceeded, M2, Subject::Payment(51))]);
        // A merchant whose share is zero: the chain starts at the delivery fee (leg 3), or at
        // the commission (leg 4) without one.
        for (id, delivery) in [(52, 500), (53, 0)] {
            let (done, events, first) = step(&mut m, pay(id, M_ZERO, 2_000, delivery, 0, 0));
            let Done::Payment { legs, .. } = done else { panic!("{done:?}") };
            assert_eq!((legs.merchant, legs.rider), (0, delivery));
            let number = first * EVENTS_PER_TRANSFER;
            let expected = ev(number, EventType::PaymentSucceeded, M_ZERO, Subject::Payment(id));
            assert_eq!(events, [expected], "payment {id}");
        }
        // A payment refused makes nothing.
        let at = mark(&m);
        let refused = m.apply(NOW, &pay(54, M1, 1_000_000, 0, 0, 0));
        assert_eq!(refused, Err(PaymentError::InsufficientFunds));
        assert_eq!(since(&m, at), []);
    }

    #[test]
    fn a_bank_channel_payment_makes_its_event_when_captured_and_none_when_released() {
        let mut m = world();
        for coupon in [0, COUPON] {
            let id = 50 + coupon;
            let (done, events, _) = step(&mut m, pay(id, M1, 3_000, 500, coupon, 1));
            assert!(matches!(done, Done::Payment { status: PaymentStatus::Authorized, .. }));
            assert_eq!(events, [], "the hold of payment {id}");
            let (_, events, first) = step(&mut m, Op::Capture { id });
            let number = first * EVENTS_PER_TRANSFER;
            let expected = ev(number, EventType::PaymentSucceeded, M1, Subject::Payment(id));
            assert_eq!(events, [expected], "the capture of payment {id}");
        }
        let (_, events, _) = step(&mut m, pay(70, M1, 3_000, 500, 0, 1));
        assert_eq!(events, []);
        let (done, events, _) = step(&mut m, Op::Release { id: 70 });
        assert!(matches!(done, Done::Payment { status: PaymentStatus::Released, .. }));
        assert_eq!(events, []);
        // A hold that times out makes no event either.
        let (_, events, _) = step(
            &mut m,
            Op::Pay {
                id: 71,
                user: USER,
                merchant: M1,
                rider: RIDER,
                food: 3_000,
                delivery: 0,
                coupon: 0,
                channel: 1,
                timeout_s: 1,
            },
        );
        assert_eq!(events, []);
        let at = mark(&m);
        assert_eq!(m.apply(NOW + 10 * SECOND, &Op::Expire), Ok(Done::Expired(1)));
        assert_eq!(m.payment(71).map(|(_, s)| s), Some(PaymentStatus::Expired));
        assert_eq!(since(&m, at), []);
        // Every payment event of the machine: the two captures.
        let payments: Vec<_> = all_events(&m)
            .iter()
            .filter(|e| e.kind == EventType::PaymentSucceeded)
            .map(|e| (e.merchant, e.subject))
            .collect();
        assert_eq!(payments, [(M1, Subject::Payment(50)), (M1, Subject::Payment(50 + COUPON))]);
    }

    #[test]
    fn a_refund_makes_refund_succeeded_then_payment_refunded_once() {
        let mut m = world();
        let refund = |m: &mut PaymentsMachine, id, payment, amount| {
            let (done, events, first) = step(m, Op::Refund { id, payment, amount });
            let Done::Refund { legs, .. } = done else { panic!("{done:?}") };
            let merchant = m.payment(payment).expect("payment").0.merchant;
            let number = first * EVENTS_PER_TRANSFER;
            assert_eq!(
                events,
                [
                    ev(number, EventType::RefundSucceeded, merchant, Subject::Refund(id)),
                    ev(number + 1, EventType::PaymentRefunded, merchant, Subject::Payment(payment)),
                ],
                "refund {id}"
            );
            legs
        };
        ok(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        // In parts: each refund has its own events.
        let legs = refund(&mut m, 70, 50, 1_000);
        assert!(legs.merchant > 0 && legs.rider > 0 && legs.platform > 0, "{legs:?}");
        refund(&mut m, 71, 50, 2_500);
        // A payment with a coupon: its refund also returns the discount (leg 3).
        ok(&mut m, pay(51, M2, 3_000, 500, COUPON, 0));
        let legs = refund(&mut m, 72, 51, 3_200);
        assert!(legs.coupon > 0, "{legs:?}");
        // The merchant's share is zero: the refund's chain starts at the rider's leg (1), or at
        // the platform's (2) when there is no delivery fee.
        ok(&mut m, pay(52, M_ZERO, 2_000, 500, 0, 0));
        let legs = refund(&mut m, 73, 52, 600);
        assert_eq!((legs.merchant, legs.rider, legs.platform), (0, 120, 480));
        assert_eq!(m.ledger().lookup_transfer(transfer_id(OpTag::Refund, 73, 0)), None);
        ok(&mut m, pay(53, M_ZERO, 2_000, 0, 0, 0));
        let legs = refund(&mut m, 74, 53, 2_000);
        assert_eq!((legs.merchant, legs.rider, legs.platform), (0, 0, 2_000));
        // A refund refused makes nothing.
        let at = mark(&m);
        let refused = m.apply(NOW, &Op::Refund { id: 75, payment: 50, amount: 1 });
        assert_eq!(refused, Err(PaymentError::RefundExceedsPayment));
        assert_eq!(since(&m, at), []);
        // Over the whole ledger: two events per refund, and one per payment.
        let count = |kind| all_events(&m).iter().filter(|e| e.kind == kind).count();
        assert_eq!(count(EventType::RefundSucceeded), 5);
        assert_eq!(count(EventType::PaymentRefunded), 5);
        assert_eq!(count(EventType::PaymentSucceeded), 4);
    }

    #[test]
    fn bank_answers_make_top_up_and_withdrawal_events_for_no_merchant() {
        let mut m = world();
        let cases = [
            (41, true, true, EventType::TopUpSucceeded, Subject::TopUp(41)),
            (42, true, false, EventType::TopUpFailed, Subject::TopUp(42)),
            (43, false, true, EventType::WithdrawalSucceeded, Subject::Withdrawal(43)),
            (44, false, false, EventType::WithdrawalFailed, Subject::Withdrawal(44)),
        ];
        for (id, topup, answer, kind, subject) in cases {
            let op = if topup {
                Op::TopUp { id, user: USER, channel: 1, amount: 500, timeout_s: 0 }
            } else {
                Op::Withdraw { id, user: USER, channel: 1, amount: 300, timeout_s: 0 }
            };
            let (_, events, _) = step(&mut m, op);
            assert_eq!(events, [], "the hold of {id}");
            let (_, events, first) = step(&mut m, Op::BankResult { id, ok: answer });
            assert_eq!(events, [ev(first * EVENTS_PER_TRANSFER, kind, 0, subject)], "{id}");
            assert_eq!(
                kind.name(),
                ["topup.succeeded", "topup.failed", "withdrawal.succeeded", "withdrawal.failed"]
                    [id as usize - 41]
            );
        }
        // A hold that times out makes none.
        let (_, events, _) =
            step(&mut m, Op::TopUp { id: 45, user: USER, channel: 1, amount: 500, timeout_s: 1 });
        assert_eq!(events, []);
        let at = mark(&m);
        assert_eq!(m.apply(NOW + 10 * SECOND, &Op::Expire), Ok(Done::Expired(1)));
        assert_eq!(since(&m, at), []);
        // The world's own top-up (40) made one.
        let first = all_events(&m)[0];
        assert_eq!((first.kind, first.subject), (EventType::TopUpSucceeded, Subject::TopUp(40)));
    }

    #[test]
    fn a_payout_answer_makes_payout_paid_or_payout_failed_for_its_merchant() {
        let mut m = world();
        ok(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        for (id, answer, kind) in
            [(80, true, EventType::PayoutPaid), (81, false, EventType::PayoutFailed)]
        {
            let (done, events, _) = step(&mut m, Op::Payout { id, merchant: M1, amount: 1_000 });
            let Done::Payout { payout, .. } = done else { panic!("{done:?}") };
            assert_eq!(payout, transfer_id(OpTag::Payout, id, 0));
            assert_eq!(events, [], "the payout {id} itself");
            // A confirmed payout has two transfers (the post, and the money leaving): one event.
            let (_, events, first) = step(&mut m, Op::PayoutResult { payout, ok: answer });
            let number = first * EVENTS_PER_TRANSFER;
            assert_eq!(events, [ev(number, kind, M1, Subject::Payout(payout))], "payout {id}");
        }
        assert_eq!(EventType::PayoutPaid.name(), "payout.paid");
        assert_eq!(EventType::PayoutFailed.name(), "payout.failed");
    }

    #[test]
    fn a_settlement_run_that_pays_merchants_makes_one_event() {
        let mut m = world();
        ok(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        ok(&mut m, pay(51, M2, 2_000, 0, 0, 0));
        let (done, events, first) = step(&mut m, Op::SettlementRun { id: 90 });
        let Done::Settlement { lines } = done else { panic!("{done:?}") };
        let paid: Vec<_> = lines.iter().filter(|l| l.payout != 0).map(|l| l.merchant).collect();
        assert_eq!(paid, [M1, M2]);
        let number = first * EVENTS_PER_TRANSFER;
        let completed =
            ev(number, EventType::SettlementRunCompleted, 0, Subject::SettlementRun(90));
        assert_eq!(events, [completed]);
        // Each of its payouts is answered on its own.
        for line in &lines {
            assert_eq!(line.payout, settlement_payout_id(90, line.merchant));
            let (_, events, first) =
                step(&mut m, Op::PayoutResult { payout: line.payout, ok: true });
            let number = first * EVENTS_PER_TRANSFER;
            let paid =
                ev(number, EventType::PayoutPaid, line.merchant, Subject::Payout(line.payout));
            assert_eq!(events, [paid]);
        }
        // A run whose first line pays nothing (M1 was paid out already): its first payout
        // stands for it.
        ok(&mut m, pay(52, M1, 3_000, 0, 0, 0));
        ok(&mut m, Op::Payout { id: 82, merchant: M1, amount: 0 });
        ok(&mut m, pay(53, M2, 1_000, 0, 0, 0));
        let (done, events, first) = step(&mut m, Op::SettlementRun { id: 91 });
        let Done::Settlement { lines } = done else { panic!("{done:?}") };
        let payouts: Vec<_> = lines.iter().map(|l| (l.merchant, l.payout != 0)).collect();
        assert_eq!(payouts, [(M1, false), (M2, true)]);
        let number = first * EVENTS_PER_TRANSFER;
        let completed =
            ev(number, EventType::SettlementRunCompleted, 0, Subject::SettlementRun(91));
        assert_eq!(events, [completed]);
        // A run that pays nobody makes none.
        let (done, events, _) = step(&mut m, Op::SettlementRun { id: 92 });
        assert_eq!(done, Done::Settlement { lines: Vec::new() });
        assert_eq!(events, []);
    }

    #[test]
    fn transfers_made_through_the_ledger_endpoints_make_no_event() {
        let mut m = world();
        // An operator's transfer whose id is in the domain's range, shaped like a bank's answer
        // to a withdrawal, and one like a payout's answer.
        let foreign = |id| huifu_ledger::Transfer {
            id,
            debit_account_id: account_id(Kind::Channel, CNY, 1),
            credit_account_id: account_id(Kind::PlatformRevenue, CNY, 0),
            amount: 5,
            ledger: CNY,
            code: 1,
            ..huifu_ledger::Transfer::default()
        };
        let transfers = vec![
            foreign(transfer_id(OpTag::BankResult, 999, 0)),
            foreign(transfer_id(OpTag::PayoutResult, 999, 0)),
        ];
        let at = mark(&m);
        let done = ok(&mut m, Op::LedgerTransfers(transfers));
        assert_eq!(
            done,
            Done::LedgerTransfers(vec![huifu_ledger::CreateTransferResult::Created; 2])
        );
        assert_eq!(mark(&m), at + 2);
        assert_eq!(since(&m, at), []);
    }

    /// A world where every kind of event happened, a refund's two among them.
    fn busy() -> PaymentsMachine {
        let mut m = world();
        for op in [
            pay(50, M1, 3_000, 500, 0, 0),
            pay(51, M2, 3_000, 500, COUPON, 0),
            pay(52, M1, 2_000, 500, 0, 1),
            Op::Capture { id: 52 },
            pay(53, M1, 2_000, 500, 0, 1),
            Op::Release { id: 53 },
            Op::Refund { id: 70, payment: 50, amount: 1_000 },
            Op::Refund { id: 71, payment: 51, amount: 3_200 },
            Op::TopUp { id: 41, user: USER, channel: 1, amount: 500, timeout_s: 0 },
            Op::BankResult { id: 41, ok: false },
            Op::Withdraw { id: 42, user: USER, channel: 1, amount: 500, timeout_s: 0 },
            Op::BankResult { id: 42, ok: true },
            Op::Withdraw { id: 43, user: USER, channel: 1, amount: 500, timeout_s: 0 },
            Op::BankResult { id: 43, ok: false },
            Op::Payout { id: 80, merchant: M1, amount: 100 },
            Op::PayoutResult { payout: transfer_id(OpTag::Payout, 80, 0), ok: true },
            Op::SettlementRun { id: 90 },
            Op::PayoutResult { payout: settlement_payout_id(90, M1), ok: false },
            pay(54, M2, 1_000, 0, 0, 0),
            Op::Refund { id: 72, payment: 54, amount: 1_000 },
        ] {
            ok(&mut m, op);
        }
        m
    }

    #[test]
    fn the_busy_world_has_every_kind_of_event_in_order() {
        let m = busy();
        let events = all_events(&m);
        for kind in EventType::ALL {
            assert!(events.iter().any(|e| e.kind == kind), "no {}", kind.name());
        }
        assert!(events.windows(2).all(|w| w[0].number < w[1].number), "{events:?}");
    }

    #[test]
    fn events_after_gives_every_event_once_whatever_the_step() {
        let m = busy();
        let all = all_events(&m);
        let top = head(&m);
        let transfers = m.ledger().transfers().len();
        for take in [1, 2, 3, 1_000] {
            let mut got = Vec::new();
            let (mut after, mut calls) = (0, 0);
            while after < top {
                calls += 1;
                assert!(calls <= transfers, "take {take}: stuck at {after}");
                let (events, reached) = events_after(&m, after, take).expect("in memory");
                assert!(reached > after, "take {take}: no progress from {after}");
                assert!(reached <= top, "take {take}: {reached} beyond the head {top}");
                for e in &events {
                    assert!(after < e.number && e.number <= reached, "take {take}: {e:?}");
                }
                got.extend(events);
                after = reached;
            }
            assert_eq!(got, all, "take {take}");
        }
        // At the head: nothing, and the position stays.
        assert_eq!(events_after(&m, top, 1_000), Some((Vec::new(), top)));
        assert_eq!(events_after(&m, top, 0), Some((Vec::new(), top)));
    }

    #[test]
    fn events_after_resumes_inside_a_transfer_with_two_events() {
        let m = busy();
        let all = all_events(&m);
        let at = all.iter().position(|e| e.subject == Subject::Refund(70)).expect("refund");
        let (refunded, paid_back) = (all[at], all[at + 1]);
        assert_eq!(paid_back.kind, EventType::PaymentRefunded);
        assert_eq!(paid_back.number, refunded.number + 1);
        // Delivered up to the first: the second comes next, once.
        for take in [1, 2, 1_000] {
            let (events, _) = events_after(&m, refunded.number, take).expect("in memory");
            assert_eq!(events.first(), Some(&paid_back), "take {take}");
            assert!(!events.contains(&refunded), "take {take}");
            let (events, _) = events_after(&m, refunded.number - 1, take).expect("in memory");
            assert_eq!(events[..2], [refunded, paid_back], "take {take}");
        }
        // From any position, the events after it, and only those.
        for e in &all {
            for after in [e.number - 1, e.number, e.number + 1] {
                let (events, _) = events_after(&m, after, 1_000).expect("in memory");
                let expected: Vec<_> = all.iter().filter(|x| x.number > after).copied().collect();
                assert_eq!(events, expected, "after {after}");
            }
        }
    }

    #[test]
    fn event_finds_each_event_by_its_number_and_head_is_past_them_all() {
        let m = busy();
        let all = all_events(&m);
        let top = head(&m);
        for e in &all {
            assert_eq!(event(&m, e.number), Some(*e));
            assert!(e.number <= top);
        }
        let last = m.ledger().transfers().last().expect("transfers").timestamp;
        assert_eq!(top, last * EVENTS_PER_TRANSFER + EVENTS_PER_TRANSFER - 1);
        // Numbers that are no event: an index a transfer does not have, a transfer without
        // events, a timestamp no transfer has.
        let payment = all.iter().find(|e| e.kind == EventType::PaymentSucceeded).expect("payment");
        assert_eq!(event(&m, payment.number + 1), None);
        let campaign = m.ledger().lookup_transfer(transfer_id(OpTag::Campaign, CAMPAIGN, 0));
        let campaign = campaign.expect("the campaign's funding").timestamp;
        assert_eq!(event(&m, campaign * EVENTS_PER_TRANSFER), None);
        assert_eq!(event(&m, 0), None);
        assert_eq!(event(&m, top + 1), None);
        assert_eq!(event(&m, u64::MAX), None);
        // An empty machine.
        let empty = PaymentsMachine::new();
        assert_eq!(head(&empty), EVENTS_PER_TRANSFER - 1);
        assert_eq!(events_after(&empty, 0, 10), Some((Vec::new(), 0)));
        assert_eq!(events_after(&empty, head(&empty), 10), Some((Vec::new(), head(&empty))));
    }

    /// A history store that keeps what leaves memory in a map: enough for the ledger's lookups.
    #[derive(Debug, Default)]
    struct Store(HashMap<u128, huifu_ledger::ColdTransfer>);

    impl huifu_ledger::ColdTransfers for Store {
        fn transfer(
            &self,
            id: u128,
            _: u64,
        ) -> std::io::Result<Option<huifu_ledger::ColdTransfer>> {
            Ok(self.0.get(&id).copied())
        }
        fn account_transfers(
            &self,
            _: &huifu_ledger::AccountFilter,
            _: u64,
            _: usize,
            _: &mut Vec<Transfer>,
        ) -> std::io::Result<()> {
            unimplemented!("not asked by these tests")
        }
        fn scan(
            &self,
            _: u64,
            _: &mut dyn FnMut(huifu_ledger::ColdTransfer),
        ) -> std::io::Result<()> {
            unimplemented!("not asked by these tests")
        }
    }

    impl crate::store::HistoryStore for Store {
        fn prefetch(
            &mut self,
            _: &mut huifu_ledger::StateMachine,
            _: &mut crate::store::Needs<'_>,
        ) -> std::io::Result<()> {
            Ok(())
        }
        /// Everything but the newest chunk leaves memory.
        fn evict(
            &mut self,
            ledger: &mut huifu_ledger::StateMachine,
            keep: &dyn Fn(&Transfer) -> bool,
        ) -> std::io::Result<()> {
            let mut out = Vec::new();
            ledger.evict(0, keep, &mut out);
            self.0.extend(out.into_iter().map(|c| (c.transfer.id, c)));
            Ok(())
        }
        fn persist(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn get(&self, _: u8, _: &[u8], _: u64) -> std::io::Result<Option<Vec<u8>>> {
            Ok(None)
        }
        fn put(
            &self,
            _: &[crate::store::Record<'_>],
            _: &[(crate::store::ListEntry, u64)],
        ) -> std::io::Result<()> {
            Ok(())
        }
        fn scan_records(
            &self,
            _: u8,
            _: u64,
            _: &mut dyn FnMut(&[u8], &[u8]),
        ) -> std::io::Result<()> {
            Ok(())
        }
        fn list(
            &self,
            _: u8,
            _: u64,
            _: Option<(u64, u64)>,
            _: u64,
            _: usize,
            _: &mut Vec<(u64, u64)>,
        ) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A world whose transfers leave memory in chunks of two, into a `Store`.
    fn world_with_store() -> PaymentsMachine {
        let mut m = PaymentsMachine::new();
        m.ledger.set_chunk_shift(1);
        m.history = Some(Box::new(Store::default()));
        for op in world_ops() {
            ok(&mut m, op);
        }
        m
    }

    /// Applies `op` so that its first transfer ends a chunk and the rest start the next, then
    /// moves everything but that chunk out of memory: the first transfer leaves, the others stay.
    /// Returns the events `op` made before, and the timestamp of its first transfer.
    fn straddle(m: &mut PaymentsMachine, op: Op) -> (Vec<Event>, u64) {
        if mark(m).is_multiple_of(2) {
            let pad = Op::TopUp { id: 49, user: USER, channel: 1, amount: 1, timeout_s: 0 };
            assert!(!matches!(op, Op::TopUp { id: 49, .. }));
            ok(m, pad);
        }
        let at = mark(m);
        let (_, events, first) = step(m, op);
        assert_eq!(mark(m) - at, 3, "a chain of three transfers");
        m.evict().unwrap();
        assert_eq!(m.ledger().horizon(), first);
        assert_eq!(m.ledger().transfers().base(), at + 1);
        (events, first)
    }

    #[test]
    fn a_chain_split_by_the_memory_bound_makes_its_events_once() {
        // A wallet payment: merchant's share, delivery fee, commission.
        let mut m = world_with_store();
        let (events, first) = straddle(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        let number = first * EVENTS_PER_TRANSFER;
        assert_eq!(events, [ev(number, EventType::PaymentSucceeded, M1, Subject::Payment(50))]);
        // The legs still held make no second event.
        let (events, reached) = events_after(&m, number + EVENTS_PER_TRANSFER - 1, 100).unwrap();
        assert_eq!((events, reached), (Vec::new(), head(&m)));
        // A refund: the merchant's leg, the rider's, the platform's.
        let (events, first) = straddle(&mut m, Op::Refund { id: 70, payment: 50, amount: 1_000 });
        let number = first * EVENTS_PER_TRANSFER;
        assert_eq!(
            events,
            [
                ev(number, EventType::RefundSucceeded, M1, Subject::Refund(70)),
                ev(number + 1, EventType::PaymentRefunded, M1, Subject::Payment(50)),
            ]
        );
        let (events, reached) = events_after(&m, number + EVENTS_PER_TRANSFER - 1, 100).unwrap();
        assert_eq!((events, reached), (Vec::new(), head(&m)));
    }

    #[test]
    fn events_after_a_position_whose_events_left_memory_is_none() {
        let mut m = world_with_store();
        ok(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        let (events, first) = straddle(&mut m, Op::Refund { id: 70, payment: 50, amount: 1_000 });
        assert_eq!(events.len(), 2);
        let refund = first * EVENTS_PER_TRANSFER;
        // The refund's two events left memory with its first transfer: from before them, or
        // between them, delivery cannot resume.
        assert_eq!(events_after(&m, 0, 10), None);
        assert_eq!(events_after(&m, refund - 1, 10), None);
        assert_eq!(events_after(&m, refund, 10), None);
        // After them, from what memory holds.
        let (events, reached) = events_after(&m, refund + EVENTS_PER_TRANSFER - 1, 1).unwrap();
        assert_eq!(events, []);
        assert_eq!(reached, timestamp_at(&m, mark(&m) - 2) * EVENTS_PER_TRANSFER + 3);
        // The head stays past the horizon, so an endpoint made now can be served.
        assert!(head(&m) >= refund + EVENTS_PER_TRANSFER - 1);
        assert!(events_after(&m, head(&m), 10).is_some());
    }

    // Endpoints.

    fn hook(m: &mut PaymentsMachine, now: u64, op: WebhookOp) -> Result<WebhookDone, PaymentError> {
        match m.apply(now, &Op::Webhook(op))? {
            Done::Webhook(done) => Ok(done),
            other => panic!("{other:?}"),
        }
    }

    fn endpoint(done: WebhookDone) -> Endpoint {
        *done.endpoint.expect("an endpoint")
    }

    fn create_with(
        key: u128,
        merchant: u64,
        url: &str,
        description: &str,
        events: u32,
        secret: u8,
    ) -> WebhookOp {
        WebhookOp::Create {
            key,
            merchant,
            url: url.into(),
            description: description.into(),
            events,
            secret: vec![secret; 24],
        }
    }

    fn create(key: u128, merchant: u64, url: &str) -> WebhookOp {
        create_with(key, merchant, url, "orders", EVENTS_ALL, 1)
    }

    fn update(id: u64) -> WebhookOp {
        WebhookOp::Update { id, url: None, description: None, events: None, disabled: None }
    }

    fn set_disabled(id: u64, disabled: bool) -> WebhookOp {
        WebhookOp::Update {
            id,
            url: None,
            description: None,
            events: None,
            disabled: Some(disabled),
        }
    }

    fn rotate(key: u128, id: u64, secret: u8, overlap_s: u64) -> WebhookOp {
        WebhookOp::RotateSecret { key, id, secret: vec![secret; 24], overlap_s }
    }

    fn signing(e: &Endpoint, now: u64) -> Vec<u32> {
        e.signing(now).map(|s| s.generation).collect()
    }

    #[test]
    fn created_endpoints_get_ids_in_order_and_are_owed_only_later_events() {
        let mut m = world();
        let start = head(&m);
        assert!(all_events(&m).iter().all(|e| e.number <= start));
        let done = hook(&mut m, NOW, create(0, M1, "https://a.example/hooks")).unwrap();
        assert_eq!(done.generation, 1);
        let first = endpoint(done);
        assert_eq!(
            first,
            Endpoint {
                id: 1,
                merchant: M1,
                url: "https://a.example/hooks".into(),
                description: "orders".into(),
                events: EVENTS_ALL,
                secrets: vec![Secret { key: vec![1; 24], generation: 1, expires_at: 0 }],
                created: NOW,
                disabled: None,
                delivered: start,
                sequence: 0,
            }
        );
        assert_eq!(m.webhooks().endpoint(1), Some(&first));
        // Events happen; a second endpoint (the platform's) starts after them.
        let (_, events, _) = step(&mut m, pay(50, M1, 3_000, 500, 0, 0));
        assert_eq!(events.len(), 1);
        let second = endpoint(hook(&mut m, NOW + 1, create(0, 0, "https://b.example")).unwrap());
        assert_eq!((second.id, second.merchant, second.created), (2, 0, NOW + 1));
        assert_eq!(second.delivered, head(&m));
        assert!(second.delivered > events[0].number);
        // The first is owed the payment, and only it; the second nothing yet.
        let (owed, _) = events_after(&m, first.delivered, 1_000).unwrap();
        assert_eq!(owed, events);
        let (owed, _) = events_after(&m, second.delivered, 1_000).unwrap();
        assert_eq!(owed, []);
        let ids: Vec<_> = m.webhooks().endpoints().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn a_create_retried_under_its_key_gets_the_first_endpoint() {
        let mut m = world();
        let key = 0xABCD_u128 << 64;
        let first = endpoint(hook(&mut m, NOW, create(key, M1, "https://a.example")).unwrap());
        let version = m.webhooks().version();
        // The same fields (the secret is the server's, new on each try): the same endpoint.
        let retry = create_with(key, M1, "https://a.example", "orders", EVENTS_ALL, 9);
        let done = hook(&mut m, NOW + SECOND, retry).unwrap();
        assert_eq!(done.generation, 1);
        assert_eq!(endpoint(done), first);
        assert_eq!(m.webhooks().endpoints().count(), 1);
        assert_eq!(m.webhooks().version(), version);
        // Other fields under the same key: refused, whichever field differs.
        let others = [
            create(key, M2, "https://a.example"),
            create(key, M1, "https://b.example"),
            create_with(key, M1, "https://a.example", "other", EVENTS_ALL, 1),
            create_with(key, M1, "https://a.example", "orders", 1, 1),
        ];
        for op in others {
            assert_eq!(
                hook(&mut m, NOW, op.clone()),
                Err(PaymentError::IdempotencyConflict),
                "{op:?}"
            );
        }
        assert_eq!(m.webhooks().endpoints().count(), 1);
        // Without a key (0), each create makes an endpoint.
        for id in [2, 3] {
            let e = endpoint(hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap());
            assert_eq!(e.id, id);
        }
        // Another key: another endpoint.
        let e = endpoint(hook(&mut m, NOW, create(key + 1, M1, "https://a.example")).unwrap());
        assert_eq!(e.id, 4);
    }

    #[test]
    fn an_endpoint_for_an_unknown_merchant_is_refused() {
        let mut m = world();
        assert_eq!(
            hook(&mut m, NOW, create(7, 999, "https://a.example")),
            Err(PaymentError::UnknownMerchant)
        );
        assert_eq!(m.webhooks().endpoints().count(), 0);
        // Nothing was kept: the id is not used up, and the key is free.
        let e = endpoint(hook(&mut m, NOW, create(7, M1, "https://a.example")).unwrap());
        assert_eq!(e.id, 1);
        // The platform (0) needs no merchant.
        let e = endpoint(hook(&mut m, NOW, create(0, 0, "https://a.example")).unwrap());
        assert_eq!((e.id, e.merchant), (2, 0));
    }

    #[test]
    fn the_number_of_endpoints_is_bounded() {
        let mut m = world();
        for _ in 0..WEBHOOK_ENDPOINTS_MAX {
            hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        }
        assert_eq!(
            hook(&mut m, NOW, create(0, M1, "https://a.example")),
            Err(PaymentError::TooManyWebhookEndpoints)
        );
        hook(&mut m, NOW, WebhookOp::Delete { id: 5 }).unwrap();
        let e = endpoint(hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap());
        assert_eq!(e.id, WEBHOOK_ENDPOINTS_MAX as u64 + 1);
    }

    #[test]
    fn an_update_changes_the_fields_it_names_and_disables_or_enables() {
        let mut m = world();
        let created = endpoint(hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap());
        let version = m.webhooks().version();
        // Nothing named: nothing changes (but the version).
        let same = endpoint(hook(&mut m, NOW, update(1)).unwrap());
        assert_eq!(same, created);
        assert!(m.webhooks().version() > version);
        let op = WebhookOp::Update {
            id: 1,
            url: Some("https://b.example/new".into()),
            description: Some(String::new()),
            events: Some(EventType::RefundSucceeded.bit()),
            disabled: None,
        };
        let updated = endpoint(hook(&mut m, NOW, op).unwrap());
        assert_eq!(
            updated,
            Endpoint {
                url: "https://b.example/new".into(),
                description: String::new(),
                events: EventType::RefundSucceeded.bit(),
                ..created.clone()
            }
        );
        assert_eq!(m.webhooks().endpoint(1), Some(&updated));
        // Disabled on request, from when it was asked; asking again keeps that time.
        let t = NOW + 5 * SECOND;
        let disable = set_disabled(1, true);
        let e = endpoint(hook(&mut m, t, disable.clone()).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Requested)));
        let e = endpoint(hook(&mut m, t + SECOND, disable).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Requested)));
        // Leaving `disabled` out keeps it disabled; `false` enables it again.
        let e = endpoint(hook(&mut m, t, update(1)).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Requested)));
        let e = endpoint(hook(&mut m, t, set_disabled(1, false)).unwrap());
        assert_eq!(e.disabled, None);
        assert_eq!(hook(&mut m, t, update(2)), Err(PaymentError::UnknownWebhookEndpoint));
    }

    #[test]
    fn a_deleted_endpoint_is_gone_for_every_operation() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        let kept = endpoint(hook(&mut m, NOW, create(0, M2, "https://b.example")).unwrap());
        let version = m.webhooks().version();
        let deleted = endpoint(hook(&mut m, NOW, WebhookOp::Delete { id: 1 }).unwrap());
        assert_eq!((deleted.id, deleted.merchant), (1, M1));
        assert!(m.webhooks().version() > version);
        assert_eq!(m.webhooks().endpoint(1), None);
        let gone = Err(PaymentError::UnknownWebhookEndpoint);
        assert_eq!(hook(&mut m, NOW, update(1)), gone);
        assert_eq!(hook(&mut m, NOW, WebhookOp::Delete { id: 1 }), gone);
        assert_eq!(hook(&mut m, NOW, rotate(0, 1, 2, 60)), gone);
        let disable = WebhookOp::Disable { id: 1, reason: DisabledReason::Gone };
        assert_eq!(hook(&mut m, NOW, disable), gone);
        // A position for it is ignored.
        hook(&mut m, NOW, WebhookOp::Delivered(vec![(1, u64::MAX, 5)])).unwrap();
        assert_eq!(m.webhooks().endpoint(1), None);
        // Its id is not given again; the other endpoint is untouched.
        let e = endpoint(hook(&mut m, NOW, create(0, M1, "https://c.example")).unwrap());
        assert_eq!(e.id, 3);
        assert_eq!(m.webhooks().endpoint(2), Some(&kept));
    }

    #[test]
    fn a_rotation_signs_with_both_secrets_until_the_overlap_ends() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        let t = NOW + 100 * SECOND;
        let done = hook(&mut m, t, rotate(0, 1, 2, 60)).unwrap();
        assert_eq!(done.generation, 2);
        let e = endpoint(done);
        assert_eq!(
            e.secrets,
            [
                Secret { key: vec![1; 24], generation: 1, expires_at: t + 60 * SECOND },
                Secret { key: vec![2; 24], generation: 2, expires_at: 0 },
            ]
        );
        assert_eq!(signing(&e, t), [1, 2]);
        assert_eq!(signing(&e, t + 60 * SECOND - 1), [1, 2]);
        assert_eq!(signing(&e, t + 60 * SECOND), [2]);
        assert_eq!(signing(&e, u64::MAX), [2]);
        let keys: Vec<_> = e.signing(t + 60 * SECOND).map(|s| s.key.clone()).collect();
        assert_eq!(keys, [vec![2; 24]]);
        // A second rotation during the overlap: the first secret keeps its earlier end, the
        // second signs until this overlap ends.
        let t2 = t + 10 * SECOND;
        let e = endpoint(hook(&mut m, t2, rotate(0, 1, 3, 3_600)).unwrap());
        let ends: Vec<_> = e.secrets.iter().map(|s| (s.generation, s.expires_at)).collect();
        assert_eq!(ends, [(1, t + 60 * SECOND), (2, t2 + 3_600 * SECOND), (3, 0)]);
        assert_eq!(signing(&e, t2), [1, 2, 3]);
        assert_eq!(signing(&e, t + 60 * SECOND), [2, 3]);
        assert_eq!(signing(&e, t2 + 3_600 * SECOND), [3]);
        // A third after the first expired: it is dropped.
        let t3 = t + 61 * SECOND;
        let e = endpoint(hook(&mut m, t3, rotate(0, 1, 4, 60)).unwrap());
        let ends: Vec<_> = e.secrets.iter().map(|s| (s.generation, s.expires_at)).collect();
        assert_eq!(ends, [(2, t3 + 60 * SECOND), (3, t3 + 60 * SECOND), (4, 0)]);
        assert_eq!(m.webhooks().endpoint(1), Some(&e));
    }

    #[test]
    fn a_rotation_without_overlap_leaves_only_the_new_secret_with_a_new_generation() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        let t = NOW + SECOND;
        let done = hook(&mut m, t, rotate(0, 1, 2, 0)).unwrap();
        assert_eq!(done.generation, 2);
        let e = endpoint(done);
        assert_eq!(e.secrets, [Secret { key: vec![2; 24], generation: 2, expires_at: 0 }]);
        assert_eq!(signing(&e, t), [2]);
        // While an earlier rotation overlaps, too: every older secret stops at once.
        hook(&mut m, t, rotate(0, 1, 3, 600)).unwrap();
        let done = hook(&mut m, t + SECOND, rotate(0, 1, 4, 0)).unwrap();
        assert_eq!(done.generation, 4);
        let e = endpoint(done);
        assert_eq!(e.secrets, [Secret { key: vec![4; 24], generation: 4, expires_at: 0 }]);
        assert_eq!(signing(&e, t + SECOND), [4]);
    }

    #[test]
    fn a_rotation_retried_under_its_key_makes_no_second_secret() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        hook(&mut m, NOW, create(0, M1, "https://b.example")).unwrap();
        let first = hook(&mut m, NOW, rotate(77, 1, 2, 60)).unwrap();
        assert_eq!(first.generation, 2);
        let version = m.webhooks().version();
        // The same rotation (the secret is the server's, new on each try).
        let retry = hook(&mut m, NOW + SECOND, rotate(77, 1, 3, 60)).unwrap();
        assert_eq!(retry, first);
        assert_eq!(m.webhooks().endpoint(1).unwrap().secrets.len(), 2);
        assert_eq!(m.webhooks().version(), version);
        // Another overlap or another endpoint under that key: refused.
        let conflict = Err(PaymentError::IdempotencyConflict);
        assert_eq!(hook(&mut m, NOW, rotate(77, 1, 2, 61)), conflict);
        assert_eq!(hook(&mut m, NOW, rotate(77, 2, 2, 60)), conflict);
        assert_eq!(m.webhooks().endpoint(2).unwrap().secrets.len(), 1);
        // A key of a create is not a rotation's.
        hook(&mut m, NOW, create(78, M1, "https://c.example")).unwrap();
        assert_eq!(hook(&mut m, NOW, rotate(78, 3, 2, 60)), conflict);
        // Without a key, each rotation makes a secret.
        let done = hook(&mut m, NOW, rotate(0, 2, 5, 60)).unwrap();
        assert_eq!(done.generation, 2);
        let done = hook(&mut m, NOW, rotate(0, 2, 6, 60)).unwrap();
        assert_eq!(done.generation, 3);
        assert_eq!(
            hook(&mut m, NOW, rotate(79, 9, 2, 60)),
            Err(PaymentError::UnknownWebhookEndpoint)
        );
    }

    #[test]
    fn delivery_positions_only_move_forward() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        hook(&mut m, NOW, create(0, 0, "https://b.example")).unwrap();
        let version = m.webhooks().version();
        let position = |m: &PaymentsMachine, id| {
            let e = m.webhooks().endpoint(id).expect("endpoint");
            (e.delivered, e.sequence)
        };
        let start = position(&m, 2);
        let done =
            hook(&mut m, NOW, WebhookOp::Delivered(vec![(1, 1_000, 5), (99, 7, 7)])).unwrap();
        assert_eq!(done, WebhookDone { endpoint: None, generation: 0 });
        assert_eq!(position(&m, 1), (1_000, 5));
        assert_eq!(position(&m, 2), start);
        // Behind or equal: ignored.
        hook(&mut m, NOW, WebhookOp::Delivered(vec![(1, 900, 4), (1, 2_000, 5)])).unwrap();
        assert_eq!(position(&m, 1), (1_000, 5));
        // Several in one operation, in any order: the furthest wins.
        let op = WebhookOp::Delivered(vec![(1, 3_000, 8), (2, 50, 1), (1, 2_000, 6)]);
        hook(&mut m, NOW, op).unwrap();
        assert_eq!(position(&m, 1), (3_000, 8));
        assert_eq!(position(&m, 2), (50, 1));
        // A position does not make the deliverer reload the endpoints.
        assert_eq!(m.webhooks().version(), version);
        hook(&mut m, NOW, WebhookOp::Delivered(Vec::new())).unwrap();
        assert_eq!(m.webhooks().version(), version);
    }

    #[test]
    fn the_deliverer_disables_once_and_the_first_reason_stays() {
        let mut m = world();
        hook(&mut m, NOW, create(0, M1, "https://a.example")).unwrap();
        let t = NOW + SECOND;
        let gone = WebhookOp::Disable { id: 1, reason: DisabledReason::Gone };
        let e = endpoint(hook(&mut m, t, gone).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Gone)));
        let failing = WebhookOp::Disable { id: 1, reason: DisabledReason::Failing };
        let e = endpoint(hook(&mut m, t + SECOND, failing.clone()).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Gone)));
        // An update asking to disable keeps the reason too.
        let disable = set_disabled(1, true);
        let e = endpoint(hook(&mut m, t + SECOND, disable).unwrap());
        assert_eq!(e.disabled, Some((t, DisabledReason::Gone)));
        // Enabled again, then failing.
        hook(&mut m, t, set_disabled(1, false)).unwrap();
        let e = endpoint(hook(&mut m, t + 2 * SECOND, failing).unwrap());
        assert_eq!(e.disabled, Some((t + 2 * SECOND, DisabledReason::Failing)));
        let names: Vec<_> =
            [DisabledReason::Requested, DisabledReason::Gone, DisabledReason::Failing]
                .into_iter()
                .map(|r| (DisabledReason::from_code(r as u8), r.name()))
                .collect();
        assert_eq!(
            names,
            [
                (Some(DisabledReason::Requested), "requested"),
                (Some(DisabledReason::Gone), "gone"),
                (Some(DisabledReason::Failing), "failing"),
            ]
        );
        assert_eq!(DisabledReason::from_code(0), None);
        assert_eq!(DisabledReason::from_code(4), None);
    }

    #[test]
    fn an_endpoint_wants_its_merchants_events_of_the_kinds_it_chose() {
        let endpoint = |merchant, events| Endpoint {
            id: 1,
            merchant,
            url: String::new(),
            description: String::new(),
            events,
            secrets: Vec::new(),
            created: 0,
            disabled: None,
            delivered: 0,
            sequence: 0,
        };
        let payment = ev(4, EventType::PaymentSucceeded, M1, Subject::Payment(1));
        let other = ev(8, EventType::PaymentSucceeded, M2, Subject::Payment(2));
        let refund = ev(12, EventType::RefundSucceeded, M1, Subject::Refund(3));
        let topup = ev(16, EventType::TopUpSucceeded, 0, Subject::TopUp(4));
        let run = ev(20, EventType::SettlementRunCompleted, 0, Subject::SettlementRun(5));
        let events = [payment, other, refund, topup, run];
        let wanted = |e: &Endpoint| -> Vec<u64> {
            events.iter().filter(|x| e.wants(x)).map(|x| x.number).collect()
        };
        // The platform's: every merchant's, and those of none.
        assert_eq!(wanted(&endpoint(0, EVENTS_ALL)), [4, 8, 12, 16, 20]);
        // A merchant's: its own only.
        assert_eq!(wanted(&endpoint(M1, EVENTS_ALL)), [4, 12]);
        assert_eq!(wanted(&endpoint(M2, EVENTS_ALL)), [8]);
        // By kind.
        let payments = EventType::PaymentSucceeded.bit();
        assert_eq!(wanted(&endpoint(M1, payments)), [4]);
        assert_eq!(wanted(&endpoint(0, payments)), [4, 8]);
        let both = payments | EventType::TopUpSucceeded.bit();
        assert_eq!(wanted(&endpoint(0, both)), [4, 8, 16]);
        assert_eq!(wanted(&endpoint(0, 0)), Vec::<u64>::new());
        // Each kind its own bit, found by its name.
        for kind in EventType::ALL {
            assert_eq!(EventType::from_name(kind.name()), Some(kind));
            let alone = endpoint(0, kind.bit());
            for other in EventType::ALL {
                let e = ev(4, other, 0, Subject::Payment(1));
                assert_eq!(alone.wants(&e), other == kind, "{kind:?} {other:?}");
            }
            assert!(endpoint(0, EVENTS_ALL).wants(&ev(4, kind, M2, Subject::Payment(1))));
        }
        assert_eq!(EventType::from_name("*"), None);
        assert_eq!(EventType::from_name("payment"), None);
    }

    // Codec.

    fn every_op() -> Vec<WebhookOp> {
        vec![
            WebhookOp::Create {
                key: u128::MAX - 5,
                merchant: M1,
                url: "https://example.com/hooks?a=1".into(),
                description: "orders 订单".into(),
                events: EventType::PaymentSucceeded.bit() | EventType::PayoutPaid.bit(),
                secret: vec![0, 1, 2, 255],
            },
            WebhookOp::Create {
                key: 0,
                merchant: 0,
                url: String::new(),
                description: String::new(),
                events: EVENTS_ALL,
                secret: Vec::new(),
            },
            WebhookOp::Update {
                id: 7,
                url: Some("https://b.example".into()),
                description: Some("d".into()),
                events: Some(0),
                disabled: Some(true),
            },
            update(7),
            WebhookOp::Update {
                id: u64::MAX,
                url: None,
                description: Some(String::new()),
                events: None,
                disabled: Some(false),
            },
            WebhookOp::Delete { id: 3 },
            WebhookOp::RotateSecret { key: 1, id: 2, secret: vec![9; 32], overlap_s: 86_400 },
            WebhookOp::RotateSecret { key: 0, id: 2, secret: Vec::new(), overlap_s: u64::MAX },
            WebhookOp::Delivered(Vec::new()),
            WebhookOp::Delivered(vec![(1, 2, 3), (u64::MAX, u64::MAX, u64::MAX)]),
            WebhookOp::Disable { id: 4, reason: DisabledReason::Requested },
            WebhookOp::Disable { id: 4, reason: DisabledReason::Gone },
            WebhookOp::Disable { id: 4, reason: DisabledReason::Failing },
        ]
    }

    #[test]
    fn every_webhook_operation_round_trips_through_the_journal_encoding() {
        let ops = every_op();
        let kinds: std::collections::HashSet<_> = ops.iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 6, "every variant");
        for op in ops {
            let op = Op::Webhook(op);
            let mut bytes = Vec::new();
            crate::command::codec::encode(&op, &mut bytes);
            assert_eq!(crate::command::codec::decode(&bytes), Ok(op.clone()));
            // Cut anywhere: an error, not a panic.
            for cut in 0..bytes.len() {
                assert!(
                    crate::command::codec::decode(&bytes[..cut]).is_err(),
                    "{op:?} cut at {cut}"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(crate::command::codec::decode(&longer).is_err(), "{op:?} with a byte more");
            // Inside a batch, too.
            let batch = Op::Batch(vec![op.clone(), Op::Expire, op]);
            let mut bytes = Vec::new();
            crate::command::codec::encode(&batch, &mut bytes);
            assert_eq!(crate::command::codec::decode(&bytes), Ok(batch));
        }
    }

    #[test]
    fn a_webhook_record_that_is_cut_or_malformed_is_refused() {
        for op in every_op() {
            let mut bytes = Vec::new();
            codec::encode_op(&op, &mut bytes);
            assert_eq!(codec::decode_op(&bytes), Ok(op.clone()));
            for cut in 0..bytes.len() {
                assert!(codec::decode_op(&bytes[..cut]).is_err(), "{op:?} cut at {cut}");
            }
            bytes.push(0);
            let error = codec::decode_op(&bytes).unwrap_err();
            assert!(error.contains("trailing"), "{error}");
        }
        let encoded = |op: &WebhookOp| {
            let mut bytes = Vec::new();
            codec::encode_op(op, &mut bytes);
            bytes
        };
        // Unknown operations.
        for tag in [0, 7, 255] {
            let error = codec::decode_op(&[tag]).unwrap_err();
            assert!(error.contains("unknown webhook operation"), "{error}");
        }
        // A bool, an option and a reason out of range.
        let mut bad = encoded(&set_disabled(1, true));
        *bad.last_mut().unwrap() = 2;
        assert!(codec::decode_op(&bad).unwrap_err().contains("bool"));
        let mut bad = encoded(&update(1));
        bad[9] = 2;
        assert!(codec::decode_op(&bad).unwrap_err().contains("option"));
        for reason in [0, 4] {
            let mut bad = encoded(&WebhookOp::Disable { id: 1, reason: DisabledReason::Gone });
            *bad.last_mut().unwrap() = reason;
            assert!(codec::decode_op(&bad).unwrap_err().contains("reason"));
        }
        // A URL that is not UTF-8.
        let mut bad = encoded(&create(0, 0, "ab"));
        let url = 1 + 16 + 8 + 4;
        assert_eq!(&bad[url..url + 2], b"ab");
        bad[url] = 0xFF;
        assert!(codec::decode_op(&bad).unwrap_err().contains("UTF-8"));
        // A delete without its id.
        assert!(codec::decode_op(&[3]).is_err());
        // Counts and lengths far beyond the bytes there are.
        let mut huge = vec![5];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(codec::decode_op(&huge).is_err());
        let mut long = encoded(&create(0, 0, "ab"));
        long[url - 4..url].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(codec::decode_op(&long).is_err());
    }

    /// Endpoints in every state: with keys, disabled, rotated, delivered to, one deleted.
    fn endpoints_in_every_state() -> PaymentsMachine {
        let mut m = world();
        hook(&mut m, NOW, create(11, M1, "https://a.example")).unwrap();
        hook(&mut m, NOW, create(0, 0, "https://b.example")).unwrap();
        hook(&mut m, NOW, create(12, M2, "https://c.example")).unwrap();
        hook(&mut m, NOW, create(0, M2, "https://d.example")).unwrap();
        hook(&mut m, NOW, rotate(13, 1, 2, 600)).unwrap();
        hook(&mut m, NOW, set_disabled(2, true)).unwrap();
        hook(&mut m, NOW, WebhookOp::Disable { id: 3, reason: DisabledReason::Failing }).unwrap();
        hook(&mut m, NOW, WebhookOp::Delete { id: 4 }).unwrap();
        hook(&mut m, NOW, WebhookOp::Delivered(vec![(1, 123_456, 9), (3, 7, 1)])).unwrap();
        m
    }

    #[test]
    fn the_endpoints_round_trip_through_the_checkpoint_encoding() {
        let m = endpoints_in_every_state();
        let state = m.webhooks();
        assert_eq!(state.endpoints().count(), 3);
        assert_eq!(state.keys.len(), 3);
        let mut bytes = Vec::new();
        codec::encode_state(state, &mut bytes);
        let (back, rest) = codec::decode_state(&bytes).unwrap();
        assert_eq!(&back, state);
        assert!(rest.is_empty());
        // The same state, the same bytes (keys are written in order).
        let mut again = Vec::new();
        codec::encode_state(&back, &mut again);
        assert_eq!(again, bytes);
        // What follows is handed back.
        let mut more = bytes.clone();
        more.extend_from_slice(&[1, 2, 3]);
        let (back, rest) = codec::decode_state(&more).unwrap();
        assert_eq!((&back, rest), (state, &[1u8, 2, 3][..]));
        // Cut anywhere: an error.
        for cut in 0..bytes.len() {
            assert!(codec::decode_state(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // No endpoints at all.
        let mut bytes = Vec::new();
        codec::encode_state(&Webhooks::default(), &mut bytes);
        assert_eq!(codec::decode_state(&bytes).unwrap(), (Webhooks::default(), &[][..]));
    }

    #[test]
    fn a_machine_with_endpoints_round_trips_through_a_snapshot() {
        let m = endpoints_in_every_state();
        let mut bytes = Vec::new();
        m.write_snapshot(&mut bytes).unwrap();
        let mut back = PaymentsMachine::read_snapshot(&mut &bytes[..]).unwrap();
        assert_eq!(back.webhooks(), m.webhooks());
        assert_eq!(events_after(&back, 0, 1_000), events_after(&m, 0, 1_000));
        assert_eq!(head(&back), head(&m));
        // Its ids and keys carry on.
        let retry = hook(&mut back, NOW, create(11, M1, "https://a.example")).unwrap();
        assert_eq!(endpoint(retry).id, 1);
        let e = endpoint(hook(&mut back, NOW, create(0, M1, "https://e.example")).unwrap());
        assert_eq!(e.id, 5);
    }
}
