//! The fixed 128-byte little-endian encoding of accounts and transfers, used by the journal and
//! snapshots. The field order is the struct order, so the layout matches the reference model's.

use crate::constants::EVENT_SIZE;
use crate::types::{Account, AccountFlags, Transfer, TransferFlags};

struct Writer<'a> {
    buf: &'a mut [u8; EVENT_SIZE],
    at: usize,
}

impl Writer<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    buf: &'a [u8; EVENT_SIZE],
    at: usize,
}

impl Reader<'_> {
    #[inline]
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }
    #[inline]
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
    #[inline]
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    #[inline]
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    #[inline]
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
}

/// Encodes an account into its 128 bytes.
pub fn encode_account(a: &Account, buf: &mut [u8; EVENT_SIZE]) {
    let mut w = Writer { buf, at: 0 };
    w.put(&a.id.to_le_bytes());
    w.put(&a.debits_pending.to_le_bytes());
    w.put(&a.debits_posted.to_le_bytes());
    w.put(&a.credits_pending.to_le_bytes());
    w.put(&a.credits_posted.to_le_bytes());
    w.put(&a.user_data_128.to_le_bytes());
    w.put(&a.user_data_64.to_le_bytes());
    w.put(&a.user_data_32.to_le_bytes());
    w.put(&a.reserved.to_le_bytes());
    w.put(&a.ledger.to_le_bytes());
    w.put(&a.code.to_le_bytes());
    w.put(&a.flags.0.to_le_bytes());
    w.put(&a.timestamp.to_le_bytes());
    debug_assert_eq!(w.at, EVENT_SIZE);
}

/// Decodes an account from its 128 bytes.
pub fn decode_account(buf: &[u8; EVENT_SIZE]) -> Account {
    let mut r = Reader { buf, at: 0 };
    Account {
        id: r.u128(),
        debits_pending: r.u128(),
        debits_posted: r.u128(),
        credits_pending: r.u128(),
        credits_posted: r.u128(),
        user_data_128: r.u128(),
        user_data_64: r.u64(),
        user_data_32: r.u32(),
        reserved: r.u32(),
        ledger: r.u32(),
        code: r.u16(),
        flags: AccountFlags(r.u16()),
        timestamp: r.u64(),
    }
}

/// Encodes a transfer into its 128 bytes.
pub fn encode_transfer(t: &Transfer, buf: &mut [u8; EVENT_SIZE]) {
    let mut w = Writer { buf, at: 0 };
    w.put(&t.id.to_le_bytes());
    w.put(&t.debit_account_id.to_le_bytes());
    w.put(&t.credit_account_id.to_le_bytes());
    w.put(&t.amount.to_le_bytes());
    w.put(&t.pending_id.to_le_bytes());
    w.put(&t.user_data_128.to_le_bytes());
    w.put(&t.user_data_64.to_le_bytes());
    w.put(&t.user_data_32.to_le_bytes());
    w.put(&t.timeout.to_le_bytes());
    w.put(&t.ledger.to_le_bytes());
    w.put(&t.code.to_le_bytes());
    w.put(&t.flags.0.to_le_bytes());
    w.put(&t.timestamp.to_le_bytes());
    debug_assert_eq!(w.at, EVENT_SIZE);
}

/// Decodes a transfer from its 128 bytes.
pub fn decode_transfer(buf: &[u8; EVENT_SIZE]) -> Transfer {
    let mut r = Reader { buf, at: 0 };
    Transfer {
        id: r.u128(),
        debit_account_id: r.u128(),
        credit_account_id: r.u128(),
        amount: r.u128(),
        pending_id: r.u128(),
        user_data_128: r.u128(),
        user_data_64: r.u64(),
        user_data_32: r.u32(),
        timeout: r.u32(),
        ledger: r.u32(),
        code: r.u16(),
        flags: TransferFlags(r.u16()),
        timestamp: r.u64(),
    }
}

/// Appends the encodings of `accounts` to `out`.
pub fn encode_accounts(accounts: &[Account], out: &mut Vec<u8>) {
    let mut buf = [0u8; EVENT_SIZE];
    out.reserve(accounts.len() * EVENT_SIZE);
    for a in accounts {
        encode_account(a, &mut buf);
        out.extend_from_slice(&buf);
    }
}

/// Appends the encodings of `transfers` to `out`.
pub fn encode_transfers(transfers: &[Transfer], out: &mut Vec<u8>) {
    let mut buf = [0u8; EVENT_SIZE];
    out.reserve(transfers.len() * EVENT_SIZE);
    for t in transfers {
        encode_transfer(t, &mut buf);
        out.extend_from_slice(&buf);
    }
}

/// Decodes a whole number of accounts; `None` if the length is not a multiple of 128.
pub fn decode_accounts(bytes: &[u8]) -> Option<Vec<Account>> {
    if !bytes.len().is_multiple_of(EVENT_SIZE) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(EVENT_SIZE)
            .map(|c| decode_account(c.try_into().expect("chunk of EVENT_SIZE")))
            .collect(),
    )
}

/// Decodes a whole number of transfers; `None` if the length is not a multiple of 128.
pub fn decode_transfers(bytes: &[u8]) -> Option<Vec<Transfer>> {
    if !bytes.len().is_multiple_of(EVENT_SIZE) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(EVENT_SIZE)
            .map(|c| decode_transfer(c.try_into().expect("chunk of EVENT_SIZE")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_roundtrip_keeps_every_field() {
        let a = Account {
            id: u128::MAX - 1,
            debits_pending: 1,
            debits_posted: 2,
            credits_pending: 3,
            credits_posted: 4,
            user_data_128: 5,
            user_data_64: 6,
            user_data_32: 7,
            reserved: 8,
            ledger: 9,
            code: 10,
            flags: AccountFlags(0x3f),
            timestamp: 11,
        };
        let mut buf = [0u8; EVENT_SIZE];
        encode_account(&a, &mut buf);
        assert_eq!(decode_account(&buf), a);
        assert_eq!(&buf[0..16], &(u128::MAX - 1).to_le_bytes());
    }

    #[test]
    fn transfer_roundtrip_keeps_every_field() {
        let t = Transfer {
            id: 1,
            debit_account_id: 2,
            credit_account_id: 3,
            amount: 4,
            pending_id: 5,
            user_data_128: 6,
            user_data_64: 7,
            user_data_32: 8,
            timeout: 9,
            ledger: 10,
            code: 11,
            flags: TransferFlags(0x1ff),
            timestamp: 12,
        };
        let mut out = Vec::new();
        encode_transfers(&[t, t], &mut out);
        assert_eq!(out.len(), 2 * EVENT_SIZE);
        assert_eq!(decode_transfers(&out).unwrap(), vec![t, t]);
        assert!(decode_transfers(&out[1..]).is_none());
    }
}
