//! The ledger side: the movements of a bank channel's clearing account, with the reference the
//! bank echoes for each.
//!
//! Money moves through a channel's clearing account (chart kind 6) when the bank confirms it:
//! the post of a top-up's or withdrawal's hold, the capture of a bank-channel payment's hold,
//! and the transfer that sends a confirmed payout on to the bank. Holds that are pending, voided
//! or expired moved no money and are not entries. The reference is the id of the operation as
//! the API shows it (`top_7`, `wdr_9`, `pay_12`, `po_…`), the one huifu sends the bank; a
//! settlement run's payouts also carry the run (`stl_3`), which banks book as one line.

use huifu_ledger::{AccountFilter, Transfer, TransferFlags};
use huifu_payments::chart::{account_id, Kind, OpTag};
use huifu_payments::constants::ENTITY_ID_MAX;
use huifu_payments::PaymentsMachine;

use crate::constants::LEDGER_PAGE_MAX;
use crate::statement::{day_of_ns, Day, Direction};

/// One movement of the clearing account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub transfer_id: u128,
    /// As the bank sees it: money into the bank account (the clearing account is debited) is a
    /// credit on the statement.
    pub direction: Direction,
    pub amount_minor: u64,
    pub timestamp_ns: u64,
    pub day: Day,
    /// What the bank echoes; empty for transfers made through the ledger endpoints.
    pub reference: String,
    /// The batch the bank may book the entry in (`stl_…`), or empty.
    pub batch: String,
}

/// The entries of channel `channel`'s clearing account in `currency` with timestamps in
/// `[from_ns, to_ns]` (both inclusive), oldest first.
pub fn channel_entries(
    m: &PaymentsMachine,
    currency: u32,
    channel: u64,
    from_ns: u64,
    to_ns: u64,
) -> Vec<Entry> {
    let account = account_id(Kind::Channel, currency, channel);
    let mut out = Vec::new();
    let mut page = Vec::new();
    let mut filter = AccountFilter::all(account, LEDGER_PAGE_MAX);
    filter.timestamp_min = from_ns.max(1);
    let to_ns = to_ns.min(huifu_ledger::constants::TIMESTAMP_MAX);
    filter.timestamp_max = to_ns;
    loop {
        page.clear();
        page.extend(m.statement(&filter));
        out.extend(page.iter().filter_map(|t| entry(account, t)));
        match page.last() {
            Some(last) if page.len() == LEDGER_PAGE_MAX as usize && last.timestamp < to_ns => {
                filter.timestamp_min = last.timestamp + 1;
            }
            _ => break,
        }
    }
    out
}

/// The entry a transfer of the clearing account `account` makes, if it moved money.
pub fn entry(account: u128, t: &Transfer) -> Option<Entry> {
    if t.flags.contains(TransferFlags::PENDING)
        || t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER)
    {
        return None;
    }
    let direction = if t.debit_account_id == account {
        Direction::Credit
    } else if t.credit_account_id == account {
        Direction::Debit
    } else {
        return None;
    };
    let (reference, batch) = reference(t);
    Some(Entry {
        transfer_id: t.id,
        direction,
        amount_minor: u64::try_from(t.amount).unwrap_or(u64::MAX),
        timestamp_ns: t.timestamp,
        day: day_of_ns(t.timestamp),
        reference,
        batch,
    })
}

/// The operation behind a transfer, as the API names it, and its batch.
fn reference(t: &Transfer) -> (String, String) {
    let tag = |id: u128| u8::try_from(id >> 120).unwrap_or(0);
    let op = |id: u128| u64::try_from((id >> 8) & u128::from(u64::MAX)).expect("masked");
    if t.flags.contains(TransferFlags::POST_PENDING_TRANSFER) {
        let p = t.pending_id;
        let reference = match tag(p) {
            x if x == OpTag::TopUp as u8 => format!("top_{}", op(p)),
            x if x == OpTag::Withdrawal as u8 => format!("wdr_{}", op(p)),
            x if x == OpTag::Payment as u8 => format!("pay_{}", op(p)),
            _ => String::new(),
        };
        return (reference, String::new());
    }
    if tag(t.id) == OpTag::PayoutSettled as u8 {
        // The payout's id with its tag byte moved down one byte (see the payments machine's
        // `payout_result_id`): put it back.
        let payout_tag = (t.id >> 112) & 0xFF;
        let payout = (t.id & !(0xFFFF << 112)) | (payout_tag << 120);
        let batch = if payout_tag == OpTag::Settlement as u128 {
            format!("stl_{}", (payout >> 56) & u128::from(ENTITY_ID_MAX))
        } else {
            String::new()
        };
        return (format!("po_{payout:x}"), batch);
    }
    (String::new(), String::new())
}
