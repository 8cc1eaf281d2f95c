//! What an event's delivery carries: the records read from the machine (on the writer thread,
//! cheap copies) and their JSON (rendered afterwards, off it).

use std::sync::Arc;

use axum::body::Bytes;
use huifu_payments::webhooks::{Event, Subject};
use huifu_payments::{HoldKind, PaymentsMachine, Payout, SettlementLine};
use serde_json::{json, Value};

use super::deliver::Rendered;
use crate::api::payments::{view, PaymentView};
use crate::api::settlement::line_json;
use crate::wire::{self, Prefix};

/// The object of an event, as read from the machine.
pub(crate) enum Record {
    Payment(PaymentView),
    Refund {
        id: u64,
        payment: u64,
        amount: u64,
    },
    Hold {
        id: u64,
        kind: HoldKind,
        user: u64,
        channel: u64,
        currency: u32,
        amount: u64,
        ok: bool,
    },
    Payout {
        id: u128,
        payout: Payout,
        paid: bool,
    },
    Settlement {
        id: u64,
        lines: Vec<SettlementLine>,
    },
    /// Gone from the machine (it cannot be, for an event just derived; a safeguard).
    Missing,
}

/// Reads the object of `event` from the machine.
pub(crate) fn record(m: &PaymentsMachine, event: &Event) -> Record {
    use huifu_payments::webhooks::EventType as T;
    match event.subject {
        Subject::Payment(id) => m
            .payment(id)
            .map_or(Record::Missing, |(p, status)| Record::Payment(view(id, &p, status))),
        Subject::Refund(id) => m
            .refund_of(id)
            .map_or(Record::Missing, |(payment, amount)| Record::Refund { id, payment, amount }),
        Subject::TopUp(id) | Subject::Withdrawal(id) => match m.hold_of(id) {
            None => Record::Missing,
            Some((h, _)) => Record::Hold {
                id,
                kind: h.kind,
                user: h.user,
                channel: h.channel,
                currency: h.currency,
                amount: h.amount,
                ok: matches!(event.kind, T::TopUpSucceeded | T::WithdrawalSucceeded),
            },
        },
        Subject::Payout(id) => m.payout_of(id).map_or(Record::Missing, |payout| Record::Payout {
            id,
            payout,
            paid: event.kind == T::PayoutPaid,
        }),
        Subject::SettlementRun(id) => m
            .settlement(id)
            .map_or(Record::Missing, |lines| Record::Settlement { id, lines: lines.to_vec() }),
    }
}

/// The object's JSON, as the API writes it elsewhere.
pub(crate) fn object_json(record: &Record) -> Value {
    match record {
        Record::Payment(p) => serde_json::to_value(p.json()).unwrap_or(Value::Null),
        Record::Refund { id, payment, amount } => json!({
            "id": Prefix::Refund.id(*id),
            "object": "refund",
            "payment": Prefix::Payment.id(*payment),
            "amount": amount,
            "status": "succeeded",
        }),
        Record::Hold { id, kind, user, channel, currency, amount, ok } => {
            let (prefix, object) = match kind {
                HoldKind::TopUp => (Prefix::TopUp, "topup"),
                HoldKind::Withdrawal => (Prefix::Withdrawal, "withdrawal"),
            };
            json!({
                "id": prefix.id(*id),
                "object": object,
                "user": Prefix::User.id(*user),
                "channel": Prefix::Channel.id(*channel),
                "currency": wire::currency_code(*currency),
                "amount": amount,
                "status": if *ok { "succeeded" } else { "failed" },
            })
        }
        Record::Payout { id, payout, paid } => json!({
            "id": wire::payout_id(*id),
            "object": "payout",
            "merchant": Prefix::Merchant.id(payout.merchant),
            "channel": Prefix::Channel.id(payout.channel),
            "currency": wire::currency_code(payout.currency),
            "amount": payout.amount,
            "status": if *paid { "paid" } else { "failed" },
        }),
        Record::Settlement { id, lines } => json!({
            "id": Prefix::Settlement.id(*id),
            "object": "settlement_run",
            "lines": lines.iter().map(line_json).collect::<Vec<_>>(),
        }),
        Record::Missing => Value::Null,
    }
}

pub(crate) fn rendered(event: Event, record: &Record) -> Rendered {
    // A payment, the most frequent, straight from its typed form.
    let object = match record {
        Record::Payment(p) => serde_json::to_vec(&p.json()),
        other => serde_json::to_vec(&object_json(other)),
    };
    Rendered { event, object: Bytes::from(object.unwrap_or_else(|_| b"null".to_vec())) }
}

/// An event as `GET /v1/events/{id}` shows it: the delivery's body without the endpoint's
/// fields.
pub(crate) fn event_json(event: &Event, record: &Record) -> Value {
    json!({
        "id": format!("evt_{}", event.number),
        "object": "event",
        "type": event.kind.name(),
        "created": event.timestamp() / 1_000_000_000,
        "data": {"object": object_json(record)},
    })
}

/// The body of one delivery: the event, the endpoint, its sequence number (`null` for a
/// replay), and the object, written once per event and copied in here.
pub(crate) fn delivery_body(
    event: &Arc<Rendered>,
    endpoint: u64,
    sequence: Option<u64>,
) -> Vec<u8> {
    use std::io::Write as _;
    let e = &event.event;
    let mut body = Vec::with_capacity(192 + event.object.len());
    // Every part is a number or a fixed name: nothing to escape.
    let _ = write!(
        body,
        r#"{{"id":"evt_{}","object":"event","type":"{}","created":{},"endpoint":"we_{endpoint}","sequence":"#,
        e.number,
        e.kind.name(),
        e.timestamp() / 1_000_000_000,
    );
    match sequence {
        Some(s) => {
            let _ = write!(body, "{s}");
        }
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(br#","data":{"object":"#);
    body.extend_from_slice(&event.object);
    body.extend_from_slice(b"}}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use huifu_payments::webhooks::EventType;

    #[test]
    fn a_delivery_body_is_the_event_with_its_object() {
        let event = Event {
            number: 7_000_000_000_000_000_001,
            kind: EventType::RefundSucceeded,
            merchant: 3,
            subject: Subject::Refund(9),
        };
        let record = Record::Refund { id: 9, payment: 4, amount: 250 };
        let rendered = Arc::new(rendered(event, &record));
        let body: Value = serde_json::from_slice(&delivery_body(&rendered, 5, Some(17))).unwrap();
        assert_eq!(body["id"], "evt_7000000000000000001");
        assert_eq!(body["type"], "refund.succeeded");
        assert_eq!(body["endpoint"], "we_5");
        assert_eq!(body["sequence"], 17);
        assert_eq!(body["created"], 1_750_000_000);
        assert_eq!(body["data"]["object"], object_json(&record));
        assert_eq!(body["data"]["object"]["payment"], "pay_4");
        let replay: Value = serde_json::from_slice(&delivery_body(&rendered, 5, None)).unwrap();
        assert_eq!(replay["sequence"], Value::Null);
        let mut shown = event_json(&event, &record);
        assert_eq!(shown["data"], body["data"]);
        shown.as_object_mut().unwrap().retain(|k, _| k != "data");
        assert_eq!(shown["id"], body["id"]);
    }
}
