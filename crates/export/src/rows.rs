//! The rows of each table, read from a recovered `PaymentsMachine`. Pure: no I/O here.
//!
//! Each payment-domain object is dated by its first ledger transfer, so an object and the
//! transfers that made it always fall in the same range. Statuses and refunded amounts are
//! those at the end of the journal: a later export of an earlier range sees later refunds.

use huifu_ledger::{PendingStatus, Transfer};
use huifu_payments::chart::{split_account_id, transfer_id, Kind, OpTag, Reason};
use huifu_payments::{HoldKind, PaymentsMachine};

use crate::constants::DECIMAL_MAX;
use crate::error::ExportError;
use crate::table::{Cell, Table};
use crate::time::TimeRange;

/// One row of a table, or why it cannot be written.
pub type Row = Result<Vec<Cell>, ExportError>;

/// The rows of `table` in `range`: payment-domain tables oldest first (ties by id), ledger
/// transfers in ledger order.
pub fn rows<'a>(
    m: &'a PaymentsMachine,
    table: Table,
    range: TimeRange,
) -> Box<dyn Iterator<Item = Row> + 'a> {
    match table {
        Table::Payments => sorted(payments(m, range)),
        Table::Refunds => sorted(refunds(m, range)),
        Table::Payouts => sorted(payouts(m, range)),
        Table::TopupsWithdrawals => sorted(holds(m, range)),
        Table::Transfers => Box::new(transfers(m, range)),
    }
}

/// Rows keyed by (time, id), in that order.
type Keyed = Vec<((u64, u128), Vec<Cell>)>;

fn sorted<'a>(mut rows: Keyed) -> Box<dyn Iterator<Item = Row> + 'a> {
    rows.sort_unstable_by_key(|(key, _)| *key);
    Box::new(rows.into_iter().map(|(_, row)| Ok(row)))
}

fn payments(m: &PaymentsMachine, range: TimeRange) -> Keyed {
    let mut rows = Vec::new();
    m.for_each_payment(|id, p| {
        // A wallet payment's first leg is 0 (the coupon) or 2..4; a bank-channel one's is 0.
        let Some(created) = first_timestamp(m, OpTag::Payment, id, 0..=4) else { return };
        if !range.contains(created) {
            return;
        }
        let status = m.payment_status(id, p);
        let method = if p.channel == 0 { "wallet" } else { "bank_channel" };
        let row = vec![
            Cell::Text(prefixed("pay", id)),
            Cell::Time(created),
            int(created),
            Cell::Text(status.name().to_owned()),
            Cell::Text(method.to_owned()),
            Cell::Text(currency_code(p.currency)),
            int(p.total()),
            int(p.food),
            int(p.delivery),
            int(p.legs.coupon),
            int(p.legs.platform),
            int(p.legs.merchant),
            int(p.refunded_total()),
            Cell::Text(prefixed("usr", p.user)),
            Cell::Text(prefixed("mer", p.merchant)),
            Cell::Text(prefixed("rdr", p.rider)),
            Cell::text_or_null((p.coupon != 0).then(|| prefixed("cpn", p.coupon))),
            Cell::text_or_null((p.campaign != 0).then(|| prefixed("cmp", p.campaign))),
            Cell::text_or_null((p.channel != 0).then(|| prefixed("chn", p.channel))),
        ];
        rows.push(((created, u128::from(id)), row));
    });
    rows
}

fn refunds(m: &PaymentsMachine, range: TimeRange) -> Keyed {
    let mut rows = Vec::new();
    m.for_each_payment(|payment_id, p| {
        for &id in &p.refunds {
            let Some((_, amount)) = m.refund_of(id) else { continue };
            let Some(created) = first_timestamp(m, OpTag::Refund, id, 0..=3) else { continue };
            if !range.contains(created) {
                continue;
            }
            // The legs, as the refund made them: merchant, rider, platform, coupon.
            let leg = |leg: u8| {
                domain_transfer(m, OpTag::Refund, id, leg).map_or(0, |t| {
                    u64::try_from(t.amount).expect("a refund leg is at most AMOUNT_MAX")
                })
            };
            let row = vec![
                Cell::Text(prefixed("ref", id)),
                Cell::Time(created),
                int(created),
                Cell::Text(prefixed("pay", payment_id)),
                Cell::Text(currency_code(p.currency)),
                int(amount),
                int(leg(0)),
                int(leg(1)),
                int(leg(2)),
                int(leg(3)),
                Cell::Text(prefixed("usr", p.user)),
                Cell::Text(prefixed("mer", p.merchant)),
            ];
            rows.push(((created, u128::from(id)), row));
        }
    });
    rows
}

fn payouts(m: &PaymentsMachine, range: TimeRange) -> Keyed {
    let mut rows = Vec::new();
    for (id, p) in m.payouts() {
        let Some(t) = lookup(m, id) else { continue };
        if !range.contains(t.timestamp) {
            continue;
        }
        let status = match status_of(m, id) {
            Some(PendingStatus::Pending) => "pending",
            Some(PendingStatus::Posted) => "paid",
            Some(PendingStatus::Voided) => "failed",
            Some(PendingStatus::Expired) => "expired",
            None => unreachable!("a payout is a pending transfer"),
        };
        let run = (id >> 120 == OpTag::Settlement as u128)
            .then(|| prefixed("stl", low_u64(id >> 56) & huifu_payments::constants::ENTITY_ID_MAX));
        let row = vec![
            Cell::Text(payout_id(id)),
            Cell::Time(t.timestamp),
            int(t.timestamp),
            Cell::Text(status.to_owned()),
            Cell::Text(prefixed("mer", p.merchant)),
            Cell::Text(prefixed("chn", p.channel)),
            Cell::Text(currency_code(p.currency)),
            int(p.amount),
            Cell::text_or_null(run),
        ];
        rows.push(((t.timestamp, id), row));
    }
    rows
}

fn holds(m: &PaymentsMachine, range: TimeRange) -> Keyed {
    let mut rows = Vec::new();
    for (id, h) in m.holds() {
        let (tag, prefix, kind) = match h.kind {
            HoldKind::TopUp => (OpTag::TopUp, "top", "topup"),
            HoldKind::Withdrawal => (OpTag::Withdrawal, "wdr", "withdrawal"),
        };
        let Some(t) = domain_transfer(m, tag, id, 0) else { continue };
        if !range.contains(t.timestamp) {
            continue;
        }
        let status = match status_of(m, t.id) {
            Some(PendingStatus::Pending) => "pending",
            Some(PendingStatus::Posted) => "succeeded",
            Some(PendingStatus::Voided) => "failed",
            Some(PendingStatus::Expired) => "expired",
            None => unreachable!("a top-up or withdrawal is a pending transfer"),
        };
        let row = vec![
            Cell::Text(prefixed(prefix, id)),
            Cell::Text(kind.to_owned()),
            Cell::Time(t.timestamp),
            int(t.timestamp),
            Cell::Text(status.to_owned()),
            Cell::Text(prefixed("usr", h.user)),
            Cell::Text(prefixed("chn", h.channel)),
            Cell::Text(currency_code(h.currency)),
            int(h.amount),
        ];
        rows.push(((t.timestamp, u128::from(id)), row));
    }
    rows
}

/// A transfer, in memory or in the history store. A store that cannot be read is a broken disk:
/// the export stops rather than leave rows out.
fn lookup(m: &PaymentsMachine, id: u128) -> Option<Transfer> {
    m.lookup_transfer(id).expect("history store read")
}

fn status_of(m: &PaymentsMachine, id: u128) -> Option<PendingStatus> {
    m.pending_status(id).expect("history store read")
}

fn transfers(m: &PaymentsMachine, range: TimeRange) -> impl Iterator<Item = Row> + '_ {
    let mut selected = Vec::new();
    m.for_each_transfer(|t, _| {
        if range.contains(t.timestamp) {
            selected.push(*t);
        }
    })
    .expect("history store read");
    selected.into_iter().map(move |t| transfer_row(m, &t))
}

fn transfer_row(m: &PaymentsMachine, t: &Transfer) -> Row {
    if t.amount > DECIMAL_MAX {
        return Err(ExportError::AmountTooLarge { transfer: t.id, amount: t.amount });
    }
    let (debit_kind, debit_owner) = account_party(m, t.debit_account_id);
    let (credit_kind, credit_owner) = account_party(m, t.credit_account_id);
    let flags: Vec<&str> = t.flags.names().collect();
    let pending_status = status_of(m, t.id).map(|s| match s {
        PendingStatus::Pending => "pending",
        PendingStatus::Posted => "posted",
        PendingStatus::Voided => "voided",
        PendingStatus::Expired => "expired",
    });
    Ok(vec![
        Cell::Text(t.id.to_string()),
        Cell::Time(t.timestamp),
        int(t.timestamp),
        Cell::Text(t.debit_account_id.to_string()),
        Cell::text_or_null(debit_kind.map(str::to_owned)),
        Cell::text_or_null(debit_owner),
        Cell::Text(t.credit_account_id.to_string()),
        Cell::text_or_null(credit_kind.map(str::to_owned)),
        Cell::text_or_null(credit_owner),
        Cell::Decimal(t.amount),
        Cell::Text(currency_code(t.ledger)),
        int(t.ledger),
        int(t.code),
        Cell::text_or_null(reason_name(t.code).map(str::to_owned)),
        Cell::Text(flags.join(",")),
        Cell::text_or_null((t.pending_id != 0).then(|| t.pending_id.to_string())),
        Cell::text_or_null(pending_status.map(str::to_owned)),
        int(t.timeout),
        Cell::text_or_null(operation(m, t.id)),
        Cell::Text(t.user_data_128.to_string()),
        Cell::Text(t.user_data_64.to_string()),
        int(t.user_data_32),
    ])
}

/// The transfer with the id of leg `leg` of operation `op`, if that operation made it (and not
/// an operator through the ledger endpoints, who may choose any id).
fn domain_transfer(m: &PaymentsMachine, tag: OpTag, op: u64, leg: u8) -> Option<Transfer> {
    let t = lookup(m, transfer_id(tag, op, leg))?;
    (t.user_data_64 == op && t.user_data_32 == tag as u32).then_some(t)
}

/// The earliest timestamp of the legs an operation made.
fn first_timestamp(
    m: &PaymentsMachine,
    tag: OpTag,
    op: u64,
    legs: std::ops::RangeInclusive<u8>,
) -> Option<u64> {
    legs.filter_map(|leg| domain_transfer(m, tag, op, leg)).map(|t| t.timestamp).min()
}

/// The payment-domain object a ledger transfer belongs to, read from its id (see
/// `chart::transfer_id` and the payout ids of the payments machine), if that object exists.
fn operation(m: &PaymentsMachine, id: u128) -> Option<String> {
    let tag = id >> 120;
    let op = low_u64(id >> 8);
    let is = |t: OpTag| tag == t as u128;
    if is(OpTag::Payment) || is(OpTag::Capture) || is(OpTag::Release) {
        m.payment(op).map(|_| prefixed("pay", op))
    } else if is(OpTag::Refund) {
        m.refund_of(op).map(|_| prefixed("ref", op))
    } else if is(OpTag::TopUp) || is(OpTag::Withdrawal) || is(OpTag::BankResult) {
        m.hold_of(op).map(|(h, _)| match h.kind {
            HoldKind::TopUp => prefixed("top", op),
            HoldKind::Withdrawal => prefixed("wdr", op),
        })
    } else if is(OpTag::Campaign) {
        m.campaign(op).map(|_| prefixed("cmp", op))
    } else if is(OpTag::Payout) || is(OpTag::Settlement) {
        m.payout_of(id).map(|_| payout_id(id))
    } else if is(OpTag::PayoutResult) || is(OpTag::PayoutSettled) {
        // The answer's id is the payout's with its tag byte moved down to byte 14.
        let payout = (id & !(0xFFFF << 112)) | ((id >> 112 & 0xFF) << 120);
        m.payout_of(payout).map(|_| payout_id(payout))
    } else {
        None
    }
}

/// The kind of an account of the chart and its owner's id (none for the platform's accounts).
fn account_party(m: &PaymentsMachine, account: u128) -> (Option<&'static str>, Option<String>) {
    let Some((kind, _, entity)) = split_account_id(account) else { return (None, None) };
    let in_chart = m.ledger().lookup_account(account).is_some_and(|a| a.code == kind.code());
    if !in_chart {
        return (None, None);
    }
    let owner = match kind {
        Kind::Wallet => Some(prefixed("usr", entity)),
        Kind::Merchant => Some(prefixed("mer", entity)),
        Kind::Rider => Some(prefixed("rdr", entity)),
        Kind::CampaignBudget => Some(prefixed("cmp", entity)),
        Kind::Channel => Some(prefixed("chn", entity)),
        Kind::PlatformRevenue | Kind::PayoutsInTransit | Kind::PlatformMarketing => None,
    };
    (Some(kind.name()), owner)
}

/// The chart's name of a transfer code.
fn reason_name(code: u16) -> Option<&'static str> {
    const REASONS: [(Reason, &str); 12] = [
        (Reason::TopUp, "topup"),
        (Reason::Withdrawal, "withdrawal"),
        (Reason::ChannelPayment, "channel_payment"),
        (Reason::Coupon, "coupon"),
        (Reason::MerchantShare, "merchant_share"),
        (Reason::DeliveryFee, "delivery_fee"),
        (Reason::Commission, "commission"),
        (Reason::Refund, "refund"),
        (Reason::CouponReturn, "coupon_return"),
        (Reason::CampaignFunding, "campaign_funding"),
        (Reason::Payout, "payout"),
        (Reason::PayoutSettled, "payout_settled"),
    ];
    REASONS.iter().find(|(r, _)| *r as u16 == code).map(|(_, name)| *name)
}

/// An object id as the HTTP API writes it: `pay_42`.
pub fn prefixed(prefix: &str, id: u64) -> String {
    format!("{prefix}_{id}")
}

/// A payout id as the HTTP API writes it: its ledger transfer id in hex.
pub fn payout_id(id: u128) -> String {
    format!("po_{id:x}")
}

/// The ISO 4217 code of a currency number, or the number when it is not one of ours (a ledger
/// made through the operators' endpoints).
pub fn currency_code(number: u32) -> String {
    huifu_payments::currency::code(number)
}

fn low_u64(value: u128) -> u64 {
    u64::try_from(value & u128::from(u64::MAX)).expect("masked")
}

/// An integer cell. Everything exported as `Int64` is below 2^63: amounts are at most
/// `AMOUNT_MAX` (10^15), timestamps at most `TIMESTAMP_MAX`, the rest are u16 or u32.
fn int(value: impl Into<u64>) -> Cell {
    Cell::Int(i64::try_from(value.into()).expect("exported integers are below 2^63"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ledger amounts are u128; the decimal column holds 38 digits. An operator's transfer of
    /// more stops the export instead of being written wrong.
    #[test]
    fn a_ledger_amount_beyond_38_digits_is_refused_and_the_largest_that_fits_is_kept() {
        use huifu_ledger::{Account, Transfer};
        use huifu_payments::Op;

        let mut m = PaymentsMachine::new();
        let now = 1_700_000_000_000_000_000;
        let accounts = (1..=2).map(|id| Account { id, ledger: 1, code: 1, ..Account::default() });
        m.apply(now, &Op::LedgerAccounts(accounts.collect())).unwrap();
        let transfer = |id, amount| Transfer {
            id,
            debit_account_id: 1,
            credit_account_id: 2,
            amount,
            ledger: 1,
            code: 1,
            ..Transfer::default()
        };
        m.apply(now, &Op::LedgerTransfers(vec![transfer(10, DECIMAL_MAX)])).unwrap();
        let kept: Vec<Row> = rows(&m, Table::Transfers, TimeRange::ALL).collect();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].as_ref().unwrap().contains(&Cell::Decimal(DECIMAL_MAX)));

        m.apply(now, &Op::LedgerTransfers(vec![transfer(11, DECIMAL_MAX + 1)])).unwrap();
        let last = rows(&m, Table::Transfers, TimeRange::ALL).last().unwrap();
        assert!(matches!(
            last,
            Err(ExportError::AmountTooLarge { transfer: 11, amount }) if amount == DECIMAL_MAX + 1
        ));
    }

    #[test]
    fn every_reason_of_the_chart_has_a_name() {
        for code in 1..=12 {
            assert!(reason_name(code).is_some(), "{code}");
        }
        assert_eq!(reason_name(0), None);
        assert_eq!(reason_name(13), None);
    }

    #[test]
    fn ids_and_currencies_are_written_as_the_api_writes_them() {
        assert_eq!(prefixed("pay", 42), "pay_42");
        let id = huifu_payments::chart::transfer_id(OpTag::Payout, 42, 0);
        let text = payout_id(id);
        assert_eq!(u128::from_str_radix(text.strip_prefix("po_").unwrap(), 16), Ok(id));
        assert_eq!(currency_code(156), "CNY");
        assert_eq!(currency_code(999), "999");
        assert_eq!(huifu_payments::chart::account_id(Kind::Wallet, 156, 1) >> 96, 1);
    }
}
