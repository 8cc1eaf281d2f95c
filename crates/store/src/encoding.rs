//! The compact record of a transfer in the history store.
//!
//! The journal's fixed 128 bytes are mostly zeros for a real transfer: the key of a record
//! already holds the timestamp, most optional fields are zero, and amounts, ledgers and codes
//! are small. A record is therefore a 16-bit header (which fields are present, the pending
//! status) followed by the present fields only:
//!
//! - ids and account ids (`u128`) as a 16-bit mask of their non-zero bytes and those bytes, so
//!   a structured id (a kind or tag in the high bits, a small serial in the low ones, as the
//!   payment domain's `kind << 96 | currency << 64 | entity`) takes 4 to 8 bytes instead of 16;
//! - every other number as an unsigned LEB128 varint;
//! - `user_data_64` and `user_data_32` as one header bit each when they repeat what the id
//!   holds in the payment domain's layout (`tag << 120 | op << 8 | leg`, with the op and the
//!   tag in the user data), otherwise as varints.
//!
//! Decoding checks every length and refuses trailing bytes, so a damaged record is reported as
//! corrupt rather than read as another transfer.

use huifu_ledger::{ColdTransfer, PendingStatus, Transfer, TransferFlags};

/// The largest record: the header, five `u128` ids at 18 bytes, the amount as a 19-byte varint,
/// and the varints of a `u64`, three `u32` and two `u16` at their longest.
pub const RECORD_BYTES_MAX: usize = 2 + 5 * 18 + 19 + 10 + 3 * 5 + 2 * 3;

const AMOUNT: u16 = 1 << 0;
const PENDING_ID: u16 = 1 << 1;
const USER_DATA_128: u16 = 1 << 2;
const USER_DATA_64: u16 = 1 << 3;
const USER_DATA_32: u16 = 1 << 4;
const TIMEOUT: u16 = 1 << 5;
const LEDGER: u16 = 1 << 6;
const CODE: u16 = 1 << 7;
const FLAGS: u16 = 1 << 8;
/// `user_data_64` is the id's bits 8 to 71 (the operation of a payment-domain transfer).
const USER_DATA_64_FROM_ID: u16 = 1 << 9;
/// `user_data_32` is the id's top byte (the tag of a payment-domain transfer).
const USER_DATA_32_FROM_ID: u16 = 1 << 10;
/// The pending status (0 for none) in bits 12 to 14.
const STATUS_SHIFT: u32 = 12;
const STATUS_MASK: u16 = 0b111 << STATUS_SHIFT;
const KNOWN: u16 = ((1 << 11) - 1) | STATUS_MASK;

fn id_op(id: u128) -> u64 {
    // Bits 8 to 71: truncation is the point.
    (id >> 8) as u64
}

fn id_tag(id: u128) -> u32 {
    (id >> 120) as u32
}

/// Appends the record of `cold` (its timestamp aside, which is the key) to `out`.
pub fn encode(cold: &ColdTransfer, out: &mut Vec<u8>) {
    let t = &cold.transfer;
    let mut header = u16::from(cold.pending.map_or(0, |s| s as u8)) << STATUS_SHIFT;
    let mut set = |bit: u16, present: bool| {
        if present {
            header |= bit;
        }
    };
    set(AMOUNT, t.amount != 0);
    set(PENDING_ID, t.pending_id != 0);
    set(USER_DATA_128, t.user_data_128 != 0);
    let ud64_from_id = t.user_data_64 != 0 && t.user_data_64 == id_op(t.id);
    set(USER_DATA_64_FROM_ID, ud64_from_id);
    set(USER_DATA_64, t.user_data_64 != 0 && !ud64_from_id);
    let ud32_from_id = t.user_data_32 != 0 && t.user_data_32 == id_tag(t.id);
    set(USER_DATA_32_FROM_ID, ud32_from_id);
    set(USER_DATA_32, t.user_data_32 != 0 && !ud32_from_id);
    set(TIMEOUT, t.timeout != 0);
    set(LEDGER, t.ledger != 0);
    set(CODE, t.code != 0);
    set(FLAGS, t.flags.0 != 0);

    out.extend_from_slice(&header.to_le_bytes());
    put_id(out, t.id);
    put_id(out, t.debit_account_id);
    put_id(out, t.credit_account_id);
    if header & AMOUNT != 0 {
        put_varint(out, t.amount);
    }
    if header & PENDING_ID != 0 {
        put_id(out, t.pending_id);
    }
    if header & USER_DATA_128 != 0 {
        put_id(out, t.user_data_128);
    }
    if header & USER_DATA_64 != 0 {
        put_varint(out, u128::from(t.user_data_64));
    }
    if header & USER_DATA_32 != 0 {
        put_varint(out, u128::from(t.user_data_32));
    }
    if header & TIMEOUT != 0 {
        put_varint(out, u128::from(t.timeout));
    }
    if header & LEDGER != 0 {
        put_varint(out, u128::from(t.ledger));
    }
    if header & CODE != 0 {
        put_varint(out, u128::from(t.code));
    }
    if header & FLAGS != 0 {
        put_varint(out, u128::from(t.flags.0));
    }
}

/// Why a record could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends inside a field")]
    Truncated,
    #[error("record has bytes after its last field")]
    Trailing,
    #[error("record header has unknown bits")]
    Header,
    #[error("record has an unknown pending status")]
    Status,
    #[error("record field is out of range")]
    Range,
}

/// Reads back the record `encode` wrote, with `timestamp`, its key.
pub fn decode(bytes: &[u8], timestamp: u64) -> Result<ColdTransfer, DecodeError> {
    let mut r = Reader::new(bytes);
    let header = u16::from_le_bytes(r.take::<2>()?);
    if header & !KNOWN != 0 {
        return Err(DecodeError::Header);
    }
    let pending = match (header & STATUS_MASK) >> STATUS_SHIFT {
        0 => None,
        s => Some(PendingStatus::from_u8(s as u8).ok_or(DecodeError::Status)?),
    };
    let id = r.id()?;
    let mut t = Transfer {
        id,
        debit_account_id: r.id()?,
        credit_account_id: r.id()?,
        timestamp,
        ..Transfer::default()
    };
    if header & AMOUNT != 0 {
        t.amount = r.varint()?;
    }
    if header & PENDING_ID != 0 {
        t.pending_id = r.id()?;
    }
    if header & USER_DATA_128 != 0 {
        t.user_data_128 = r.id()?;
    }
    if header & USER_DATA_64_FROM_ID != 0 {
        t.user_data_64 = id_op(id);
    }
    if header & USER_DATA_64 != 0 {
        t.user_data_64 = r.narrow()?;
    }
    if header & USER_DATA_32_FROM_ID != 0 {
        t.user_data_32 = id_tag(id);
    }
    if header & USER_DATA_32 != 0 {
        t.user_data_32 = r.narrow()?;
    }
    if header & TIMEOUT != 0 {
        t.timeout = r.narrow()?;
    }
    if header & LEDGER != 0 {
        t.ledger = r.narrow()?;
    }
    if header & CODE != 0 {
        t.code = r.narrow()?;
    }
    if header & FLAGS != 0 {
        t.flags = TransferFlags(r.narrow()?);
    }
    if !r.is_done() {
        return Err(DecodeError::Trailing);
    }
    Ok(ColdTransfer { transfer: t, pending })
}

/// A `u128` as the mask of its non-zero bytes (little-endian order) and those bytes.
fn put_id(out: &mut Vec<u8>, value: u128) {
    let bytes = value.to_le_bytes();
    let mut mask = 0u16;
    for (i, b) in bytes.iter().enumerate() {
        if *b != 0 {
            mask |= 1 << i;
        }
    }
    out.extend_from_slice(&mask.to_le_bytes());
    out.extend(bytes.iter().filter(|b| **b != 0));
}

/// An unsigned LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads what `put_id` and `put_varint` wrote.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// What is left to read.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let end = self.at.checked_add(N).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice.try_into().expect("N bytes"))
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn id(&mut self) -> Result<u128, DecodeError> {
        let mask = u16::from_le_bytes(self.take::<2>()?);
        let mut bytes = [0u8; 16];
        for (i, b) in bytes.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *b = self.byte()?;
                if *b == 0 {
                    // Only non-zero bytes are written: one encoding per value.
                    return Err(DecodeError::Range);
                }
            }
        }
        Ok(u128::from_le_bytes(bytes))
    }

    fn varint(&mut self) -> Result<u128, DecodeError> {
        let mut value = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            let part = u128::from(b & 0x7f);
            if shift == 126 && part > 0b11 {
                return Err(DecodeError::Range);
            }
            value |= part << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Range)
    }

    pub(crate) fn narrow<T: TryFrom<u128>>(&mut self) -> Result<T, DecodeError> {
        T::try_from(self.varint()?).map_err(|_| DecodeError::Range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(cold: &ColdTransfer) -> usize {
        let mut out = Vec::new();
        encode(cold, &mut out);
        assert!(out.len() <= RECORD_BYTES_MAX, "{} bytes", out.len());
        assert_eq!(decode(&out, cold.transfer.timestamp), Ok(*cold));
        out.len()
    }

    /// A payment leg as the payment domain makes it: tag, operation and leg in the id, the
    /// operation and the tag again in the user data, accounts of the chart.
    fn payment_leg() -> ColdTransfer {
        let account = |kind: u128, entity: u128| kind << 96 | 156 << 64 | entity;
        let (tag, op, leg) = (3u128, 1_234_567u128, 2u128);
        ColdTransfer {
            transfer: Transfer {
                id: tag << 120 | op << 8 | leg,
                debit_account_id: account(1, 87_654),
                credit_account_id: account(2, 4_321),
                amount: 4_250,
                user_data_64: op as u64,
                user_data_32: tag as u32,
                ledger: 156,
                code: 10,
                flags: TransferFlags(1),
                timestamp: 1_790_000_000_000_000_123,
                ..Transfer::default()
            },
            pending: None,
        }
    }

    #[test]
    fn a_payment_leg_takes_under_a_quarter_of_its_fixed_size() {
        let size = roundtrip(&payment_leg());
        assert!(size * 4 <= huifu_ledger::constants::EVENT_SIZE, "{size} bytes");
    }

    #[test]
    fn extremes_and_every_status_come_back() {
        let max = Transfer {
            id: u128::MAX,
            debit_account_id: u128::MAX,
            credit_account_id: u128::MAX,
            amount: u128::MAX,
            pending_id: u128::MAX,
            user_data_128: u128::MAX,
            // Not the id's bits, so written out.
            user_data_64: u64::MAX - 1,
            user_data_32: u32::MAX - 1,
            timeout: u32::MAX,
            ledger: u32::MAX,
            code: u16::MAX,
            flags: TransferFlags(u16::MAX),
            timestamp: u64::MAX,
        };
        assert_eq!(roundtrip(&ColdTransfer { transfer: max, pending: None }), RECORD_BYTES_MAX);
        roundtrip(&ColdTransfer { transfer: Transfer::default(), pending: None });
        for s in [
            PendingStatus::Pending,
            PendingStatus::Posted,
            PendingStatus::Voided,
            PendingStatus::Expired,
        ] {
            roundtrip(&ColdTransfer { transfer: payment_leg().transfer, pending: Some(s) });
        }
    }

    #[test]
    fn user_data_that_only_looks_derived_is_kept_as_it_is() {
        let mut cold = payment_leg();
        cold.transfer.user_data_64 += 1;
        cold.transfer.user_data_32 = 0;
        roundtrip(&cold);
        cold.transfer.id = 0;
        cold.transfer.user_data_64 = 0;
        roundtrip(&cold);
    }

    #[test]
    fn damaged_records_are_refused() {
        let mut out = Vec::new();
        encode(&payment_leg(), &mut out);
        let ts = payment_leg().transfer.timestamp;
        for len in 0..out.len() {
            assert_eq!(decode(&out[..len], ts), Err(DecodeError::Truncated), "length {len}");
        }
        let mut longer = out.clone();
        longer.push(0);
        assert_eq!(decode(&longer, ts), Err(DecodeError::Trailing));
        let mut unknown = out.clone();
        unknown[1] |= 0x80;
        assert_eq!(decode(&unknown, ts), Err(DecodeError::Header));
        let mut status = out.clone();
        status[1] |= 0x70;
        assert_eq!(decode(&status, ts), Err(DecodeError::Status));
    }

    fn any_u128() -> impl Strategy<Value = u128> {
        prop_oneof![
            Just(0u128),
            any::<u8>().prop_map(u128::from),
            any::<u64>().prop_map(u128::from),
            any::<u128>()
        ]
    }

    proptest! {
        #[test]
        fn every_transfer_comes_back(
            ids in (any_u128(), any_u128(), any_u128(), any_u128(), any_u128(), any_u128()),
            small in (any::<u64>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()),
            derived in any::<bool>(),
            timestamp in any::<u64>(),
            status in 0u8..=4,
        ) {
            let (id, debit, credit, amount, pending_id, user_data_128) = ids;
            let (mut user_data_64, mut user_data_32, timeout, ledger, code, flags) = small;
            if derived {
                user_data_64 = id_op(id);
                user_data_32 = id_tag(id);
            }
            let cold = ColdTransfer {
                transfer: Transfer {
                    id,
                    debit_account_id: debit,
                    credit_account_id: credit,
                    amount,
                    pending_id,
                    user_data_128,
                    user_data_64,
                    user_data_32,
                    timeout,
                    ledger,
                    code,
                    flags: TransferFlags(flags),
                    timestamp,
                },
                pending: PendingStatus::from_u8(status),
            };
            roundtrip(&cold);
        }
    }
}
