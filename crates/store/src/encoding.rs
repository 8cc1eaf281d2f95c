//! The compact record of a group of transfers in the history store.
//!
//! A record holds a *group*: transfers one after another in time whose ids differ only in
//! their lowest byte (the legs of one operation in the payment domain, whose ids are
//! `tag << 120 | op << 8 | leg`), under the first one's timestamp. An operation's legs mostly
//! move money between a few accounts and share their ledger and operation, so one record per
//! operation says those once instead of once a leg, and the store keeps one key, not one per
//! leg.
//!
//! The journal's fixed 128 bytes are mostly zeros for a real transfer: most optional fields are
//! zero, and amounts, ledgers and codes are small. Each leg is therefore a 16-bit header (which
//! fields are present, the pending status, and the two bits below) followed by the present
//! fields only:
//!
//! - ids (`u128`) as a 16-bit mask of their non-zero bytes and those bytes, so a structured id
//!   (a tag in the high bits, a small serial in the low ones) takes 4 to 8 bytes instead of 16;
//! - account ids laid out as the payment domain's chart makes them, `kind << 96 | ledger << 64
//!   | entity` with the transfer's own ledger, a kind below `KIND_ESCAPE` and an entity below
//!   2^56, as one byte (the kind, and how many bytes the entity takes) and the entity's non-zero
//!   low bytes: a wallet takes 4 bytes, a platform account 1. Any other account id is that
//!   byte's escape and the id as above. The ledger is therefore written before the accounts;
//! - every other number as an unsigned LEB128 varint;
//! - `user_data_64` and `user_data_32` as one header bit each when they repeat what the id
//!   holds in the payment domain's layout (`tag << 120 | op << 8 | leg`, with the op and the
//!   tag in the user data), otherwise as varints.
//!
//! A leg after the first starts with how far its timestamp is after the one before (a varint,
//! at least one); its id, when it is the one before plus one, is a header bit (`ID_NEXT`); and
//! its accounts, when the group wrote them already, are their places among the accounts the
//! group wrote out (`REFS`: a byte after the header, a nibble for each account, 0 for one
//! written out; the first `REFERABLE` accounts can be named).
//!
//! Decoding checks every length and refuses trailing bytes, so a damaged record is reported as
//! corrupt rather than read as other transfers.

use huifu_ledger::{varint, ColdTransfer, PendingStatus, Transfer, TransferFlags};

/// The longest leg: the varint of a timestamp's distance, the header and the byte of account
/// places, five `u128` ids at 18 bytes (the two accounts with their escape byte), the amount
/// as a 19-byte varint, and the varints of a `u64`, three `u32` and two `u16` at their longest.
pub const LEG_BYTES_MAX: usize = 10 + 2 + 1 + 5 * 18 + 2 + 19 + 10 + 3 * 5 + 2 * 3;

/// The first byte of an account id not in the chart's layout (see the module comment): a kind
/// the compact byte cannot hold. The compact byte is the kind (below this, in the low five bits)
/// and the entity's length in bytes (0 to 7, in the high three).
const KIND_ESCAPE: u8 = 31;

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
/// The id is the one of the leg before plus one (never on a group's first leg).
const ID_NEXT: u16 = 1 << 11;
/// The pending status (0 for none) in bits 12 to 14.
const STATUS_SHIFT: u32 = 12;
const STATUS_MASK: u16 = 0b111 << STATUS_SHIFT;
/// A byte of account places follows the header.
const REFS: u16 = 1 << 15;

/// Accounts of a group that a leg can name by their place (a nibble, 0 is taken).
const REFERABLE: usize = 15;

fn id_op(id: u128) -> u64 {
    // Bits 8 to 71: truncation is the point.
    (id >> 8) as u64
}

fn id_tag(id: u128) -> u32 {
    (id >> 120) as u32
}

/// Whether `b` may follow `a` in one group (see the module comment).
pub fn same_group(a: &Transfer, b: &Transfer) -> bool {
    a.id >> 8 == b.id >> 8 && a.timestamp < b.timestamp
}

/// The accounts a group wrote out so far, the first `REFERABLE` of them.
#[derive(Default)]
struct Accounts {
    ids: [u128; REFERABLE],
    len: usize,
}

impl Accounts {
    /// The nibble that names `id`: its place plus one, or 0 if it is not here.
    fn nibble(&self, id: u128) -> u8 {
        // At most 15: the place fits in a nibble.
        self.ids[..self.len].iter().position(|a| *a == id).map_or(0, |i| i as u8 + 1)
    }

    fn add(&mut self, id: u128) {
        if self.len < REFERABLE {
            self.ids[self.len] = id;
            self.len += 1;
        }
    }

    fn get(&self, nibble: u8) -> Result<u128, DecodeError> {
        self.ids[..self.len].get(usize::from(nibble) - 1).copied().ok_or(DecodeError::Range)
    }
}

/// Appends the record of `legs` (one group, in timestamp order, at least one; see
/// `same_group`) to `out`. The first leg's timestamp is the record's key and is not written.
pub fn encode(legs: &[ColdTransfer], out: &mut Vec<u8>) {
    debug_assert!(!legs.is_empty());
    debug_assert!(legs.windows(2).all(|w| same_group(&w[0].transfer, &w[1].transfer)));
    let mut accounts = Accounts::default();
    let mut before: Option<&Transfer> = None;
    for cold in legs {
        let t = &cold.transfer;
        if let Some(b) = before {
            varint::put(out, u128::from(t.timestamp - b.timestamp));
        }
        let id_next = before.is_some_and(|b| b.id.checked_add(1) == Some(t.id));
        // Both places are taken before either account is added, as `decode` reads them.
        let debit = accounts.nibble(t.debit_account_id);
        let credit = accounts.nibble(t.credit_account_id);
        let mut header = u16::from(cold.pending.map_or(0, |s| s as u8)) << STATUS_SHIFT;
        let mut set = |bit: u16, present: bool| {
            if present {
                header |= bit;
            }
        };
        set(ID_NEXT, id_next);
        set(REFS, debit != 0 || credit != 0);
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
        if header & REFS != 0 {
            out.push(debit << 4 | credit);
        }
        if !id_next {
            put_id(out, t.id);
        }
        if header & LEDGER != 0 {
            varint::put(out, u128::from(t.ledger));
        }
        for (account, nibble) in [(t.debit_account_id, debit), (t.credit_account_id, credit)] {
            if nibble == 0 {
                put_account(out, account, t.ledger);
                accounts.add(account);
            }
        }
        if header & AMOUNT != 0 {
            varint::put(out, t.amount);
        }
        if header & PENDING_ID != 0 {
            put_id(out, t.pending_id);
        }
        if header & USER_DATA_128 != 0 {
            put_id(out, t.user_data_128);
        }
        if header & USER_DATA_64 != 0 {
            varint::put(out, u128::from(t.user_data_64));
        }
        if header & USER_DATA_32 != 0 {
            varint::put(out, u128::from(t.user_data_32));
        }
        if header & TIMEOUT != 0 {
            varint::put(out, u128::from(t.timeout));
        }
        if header & CODE != 0 {
            varint::put(out, u128::from(t.code));
        }
        if header & FLAGS != 0 {
            varint::put(out, u128::from(t.flags.0));
        }
        before = Some(t);
    }
}

/// Why a record could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record ends inside a field")]
    Truncated,
    #[error("record has an unknown pending status")]
    Status,
    #[error("record field is out of range")]
    Range,
}

/// The legs of the record `encode` wrote, whose key is `timestamp`, in order. After an error
/// it ends. Bytes after a leg are read as another leg (the store's blocks carry checksums).
pub fn decode(bytes: &[u8], timestamp: u64) -> Legs<'_> {
    Legs {
        r: Reader::new(bytes),
        timestamp,
        before: None,
        accounts: Accounts::default(),
        done: false,
    }
}

/// Reads the legs of a record one by one (see `decode`).
pub struct Legs<'a> {
    r: Reader<'a>,
    /// The key: the first leg's timestamp.
    timestamp: u64,
    /// The leg read before, `None` before the first.
    before: Option<Transfer>,
    accounts: Accounts,
    /// Set after an error.
    done: bool,
}

impl Legs<'_> {
    fn leg(&mut self) -> Result<ColdTransfer, DecodeError> {
        let before = self.before;
        let timestamp = match &before {
            None => self.timestamp,
            Some(b) => {
                let after = self.r.narrow::<u64>()?;
                if after == 0 {
                    return Err(DecodeError::Range);
                }
                b.timestamp.checked_add(after).ok_or(DecodeError::Range)?
            }
        };
        // Every bit of the header means something.
        let header = u16::from_le_bytes(self.r.take::<2>()?);
        let pending = match (header & STATUS_MASK) >> STATUS_SHIFT {
            0 => None,
            s => Some(PendingStatus::from_u8(s as u8).ok_or(DecodeError::Status)?),
        };
        let refs = if header & REFS != 0 { self.r.byte()? } else { 0 };
        let id = if header & ID_NEXT != 0 {
            let b = before.as_ref().ok_or(DecodeError::Range)?;
            b.id.checked_add(1).ok_or(DecodeError::Range)?
        } else {
            self.r.id()?
        };
        let ledger = if header & LEDGER != 0 { self.r.narrow()? } else { 0 };
        let mut account = |nibble: u8| -> Result<u128, DecodeError> {
            if nibble == 0 {
                let id = self.r.account(ledger)?;
                self.accounts.add(id);
                Ok(id)
            } else {
                self.accounts.get(nibble)
            }
        };
        let debit_account_id = account(refs >> 4)?;
        let credit_account_id = account(refs & 0xf)?;
        let r = &mut self.r;
        let mut t = Transfer {
            id,
            debit_account_id,
            credit_account_id,
            ledger,
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
        if header & CODE != 0 {
            t.code = r.narrow()?;
        }
        if header & FLAGS != 0 {
            t.flags = TransferFlags(r.narrow()?);
        }
        self.before = Some(t);
        Ok(ColdTransfer { transfer: t, pending })
    }
}

impl Iterator for Legs<'_> {
    type Item = Result<ColdTransfer, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        // An empty record is not done before its first leg: reading it fails as truncated.
        if self.done || (self.before.is_some() && self.r.is_done()) {
            return None;
        }
        let leg = self.leg();
        self.done = leg.is_err();
        Some(leg)
    }
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

/// The kind and entity of an account id of a transfer in `ledger`, if the id has the chart's
/// layout that the compact byte can hold (see the module comment).
fn chart_parts(id: u128, ledger: u32) -> Option<(u8, u64)> {
    // Truncation is the point: the parts are these bits.
    let (kind, in_ledger, entity) = ((id >> 96) as u32, (id >> 64) as u32, id as u64);
    (kind < u32::from(KIND_ESCAPE) && in_ledger == ledger && entity < 1 << 56)
        .then_some((kind as u8, entity))
}

/// An account id of a transfer in `ledger` (see the module comment).
fn put_account(out: &mut Vec<u8>, id: u128, ledger: u32) {
    match chart_parts(id, ledger) {
        Some((kind, entity)) => {
            // At most 7: the entity is below 2^56.
            let len = 8 - entity.leading_zeros() as usize / 8;
            out.push((len as u8) << 5 | kind);
            out.extend_from_slice(&entity.to_le_bytes()[..len]);
        }
        None => {
            out.push(KIND_ESCAPE);
            put_id(out, id);
        }
    }
}

/// How far `to` is from `from`, as a zigzag number (small for small distances either way),
/// for `varint::put`.
pub(crate) fn zigzag(from: u64, to: u64) -> u128 {
    let d = i128::from(to) - i128::from(from);
    ((d << 1) ^ (d >> 127)) as u128
}

/// The number `zigzag(from, _)` was given, if `z` is the distance to one.
pub(crate) fn unzigzag(from: u64, z: u128) -> Option<u64> {
    let d = (z >> 1) as i128 ^ -((z & 1) as i128);
    // A damaged distance can be near 2^127 either way: past the end of an i128 is none too.
    u64::try_from(i128::from(from).checked_add(d)?).ok()
}

/// Reads what `put_id` and `varint::put` wrote.
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

    /// Eight bytes, big-endian.
    pub(crate) fn be_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.take::<8>()?))
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

    /// An account id of a transfer in `ledger` (`put_account`).
    fn account(&mut self, ledger: u32) -> Result<u128, DecodeError> {
        let first = self.byte()?;
        if first == KIND_ESCAPE {
            let id = self.id()?;
            // One encoding per value.
            return match chart_parts(id, ledger) {
                Some(_) => Err(DecodeError::Range),
                None => Ok(id),
            };
        }
        let (kind, len) = (first & 0x1f, usize::from(first >> 5));
        if kind == KIND_ESCAPE {
            return Err(DecodeError::Range);
        }
        let mut entity = [0u8; 8];
        for b in &mut entity[..len] {
            *b = self.byte()?;
        }
        if len > 0 && entity[len - 1] == 0 {
            // The entity in as few bytes as it takes: one encoding per value.
            return Err(DecodeError::Range);
        }
        let entity = u64::from_le_bytes(entity);
        Ok(u128::from(kind) << 96 | u128::from(ledger) << 64 | u128::from(entity))
    }

    #[inline]
    fn varint(&mut self) -> Result<u128, DecodeError> {
        varint::read(128, || self.byte(), || DecodeError::Range)
    }

    pub(crate) fn narrow<T: TryFrom<u128>>(&mut self) -> Result<T, DecodeError> {
        T::try_from(self.varint()?).map_err(|_| DecodeError::Range)
    }
}

/// Runs every decoder of the store's values over `bytes` (after its first eight bytes, a
/// timestamp, the key of a record and of a run) and checks what each promises: it returns
/// rather than panics, and what it reads encodes to bytes that read back to the same. The fuzz
/// targets run this, and so do the tests that replay their corpora.
#[doc(hidden)]
pub fn check_decoders(bytes: &[u8]) {
    use crate::epochs::{decode_run, encode_run, Epoch, Layout};
    use crate::ids;

    let Some((timestamp, value)) = bytes.split_first_chunk::<8>() else {
        return;
    };
    let timestamp = u64::from_be_bytes(*timestamp);

    // A record of transfers.
    let legs: Result<Vec<ColdTransfer>, DecodeError> = decode(value, timestamp).collect();
    if let Ok(legs) = legs {
        let grouped = legs.windows(2).all(|w| same_group(&w[0].transfer, &w[1].transfer));
        if !legs.is_empty() && grouped {
            let mut encoded = Vec::new();
            encode(&legs, &mut encoded);
            let again: Result<Vec<ColdTransfer>, DecodeError> =
                decode(&encoded, timestamp).collect();
            assert_eq!(again, Ok(legs), "a record re-encoded reads as other legs");
        }
    }

    // An entry of the id index: written one way only.
    let mut members = Vec::new();
    ids::merge(value, &mut members);
    if ids::valid(value) {
        let mut encoded = Vec::new();
        ids::encode(&members, &mut encoded);
        assert_eq!(encoded, value, "an id index entry read is written otherwise");
        // Some of them: a group has up to 65,536.
        for &(member, timestamp) in members.iter().step_by(members.len().div_ceil(64)) {
            assert_eq!(ids::find(value, member), Some(timestamp), "a member not found");
        }
        for member in [0, 1, u16::MAX] {
            let expected = members.iter().find(|&&(m, _)| m == member).map(|&(_, t)| t);
            assert_eq!(ids::find(value, member), expected, "a member found that is not there");
        }
    }

    // A run of either index's layout, and an epoch's mark.
    let mut key = [0u8; 28];
    key[20..].copy_from_slice(&timestamp.to_be_bytes());
    for layout in [Layout::Timestamps, Layout::Listed] {
        let mut items = Vec::new();
        if decode_run(layout, &key, value, &mut items).is_some() {
            items.reverse();
            let mut encoded = Vec::new();
            encode_run(layout, &items, &mut encoded);
            let mut again = Vec::new();
            decode_run(layout, &key, &encoded, &mut again).expect("a run written reads back");
            again.reverse();
            assert_eq!(again, items, "a run re-encoded reads as other items");
        }
    }
    if let Some(epoch) = Epoch::decode(7, value) {
        let mut encoded = Vec::new();
        epoch.encode(&mut encoded);
        assert_eq!(Epoch::decode(7, &encoded), Some(epoch), "a mark re-encoded reads otherwise");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(legs: &[ColdTransfer]) -> usize {
        let mut out = Vec::new();
        encode(legs, &mut out);
        assert!(out.len() <= legs.len() * LEG_BYTES_MAX, "{} bytes", out.len());
        let back: Result<Vec<_>, _> = decode(&out, legs[0].transfer.timestamp).collect();
        assert_eq!(back.as_deref(), Ok(legs));
        out.len()
    }

    /// A distance read from a damaged id index entry (a varint of up to 128 bits) once
    /// overflowed the sum in `unzigzag`, a panic in builds with overflow checks.
    #[test]
    fn unzigzag_overflow_on_a_distance_near_2_pow_127() {
        assert_eq!(unzigzag(u64::MAX, u128::MAX - 1), None);
        assert_eq!(unzigzag(u64::MAX, u128::MAX), None);
        assert_eq!(unzigzag(0, u128::MAX), None);
        assert_eq!(unzigzag(u64::MAX, zigzag(u64::MAX, 0)), Some(0));
        assert_eq!(unzigzag(0, zigzag(0, u64::MAX)), Some(u64::MAX));
        // The id index entry it was found in: one run at the last timestamp, then a run whose
        // timestamp is that distance away.
        let mut entry = vec![0, 0];
        entry.extend_from_slice(&u64::MAX.to_be_bytes());
        entry.extend_from_slice(&[5, 0]);
        varint::put(&mut entry, u128::MAX - 1);
        assert!(!crate::ids::valid(&entry));
        let mut input = 1u64.to_be_bytes().to_vec();
        input.extend_from_slice(&entry);
        check_decoders(&input);
    }

    fn size(legs: &[ColdTransfer]) -> usize {
        let mut out = Vec::new();
        encode(legs, &mut out);
        out.len()
    }

    fn account(kind: u128, entity: u128) -> u128 {
        kind << 96 | 156 << 64 | entity
    }

    /// A payment's legs as the payment domain makes them: tag, operation and leg in the id,
    /// the operation and the tag again in the user data, accounts of the chart; the user pays
    /// the merchant and the rider, the merchant pays the platform its commission.
    fn payment() -> Vec<ColdTransfer> {
        let (tag, op) = (3u128, 1_234_567u128);
        let (user, merchant, rider, platform) =
            (account(1, 87_654), account(2, 4_321), account(3, 765), account(4, 1));
        [(user, merchant, 4_250), (user, rider, 500), (merchant, platform, 340)]
            .into_iter()
            .enumerate()
            .map(|(leg, (debit, credit, amount))| ColdTransfer {
                transfer: Transfer {
                    id: tag << 120 | op << 8 | leg as u128,
                    debit_account_id: debit,
                    credit_account_id: credit,
                    amount,
                    user_data_64: op as u64,
                    user_data_32: tag as u32,
                    ledger: 156,
                    code: 10,
                    flags: TransferFlags(u16::from(leg < 2)),
                    timestamp: 1_790_000_000_000_000_123 + leg as u64,
                    ..Transfer::default()
                },
                pending: None,
            })
            .collect()
    }

    #[test]
    fn a_payment_leg_takes_under_a_quarter_of_its_fixed_size() {
        let size = roundtrip(&payment()[..1]);
        assert!(size * 4 <= huifu_ledger::constants::EVENT_SIZE, "{size} bytes");
    }

    #[test]
    fn later_legs_name_their_id_and_known_accounts_instead_of_writing_them() {
        let legs = payment();
        let alone: usize = legs.iter().map(|l| size(std::slice::from_ref(l))).sum();
        let together = roundtrip(&legs);
        // The second leg's id (7 bytes) and user (4), the third's id (7) and merchant (3), less
        // a byte of places and one of distance each.
        assert_eq!(alone - together, 7 + 4 + 7 + 3 - 2 - 2, "{alone} alone, {together} together");
    }

    #[test]
    fn extremes_and_every_status_come_back() {
        let max = Transfer {
            id: u128::MAX,
            debit_account_id: u128::MAX,
            credit_account_id: u128::MAX - 1,
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
            timestamp: 0,
        };
        let first = ColdTransfer { transfer: max, pending: None };
        // The largest distance, and an id one below the first's (not the next one).
        let last = ColdTransfer {
            transfer: Transfer { id: u128::MAX - 1, timestamp: u64::MAX, ..max },
            pending: None,
        };
        assert_eq!(roundtrip(&[first]), LEG_BYTES_MAX - 10 - 1);
        // The second leg names both accounts: a byte instead of 38.
        assert_eq!(roundtrip(&[first, last]), 2 * LEG_BYTES_MAX - 10 - 1 - 2 * 19);
        roundtrip(&[ColdTransfer { transfer: Transfer::default(), pending: None }]);
        for s in [
            PendingStatus::Pending,
            PendingStatus::Posted,
            PendingStatus::Voided,
            PendingStatus::Expired,
        ] {
            let mut legs = payment();
            legs[1].pending = Some(s);
            roundtrip(&legs);
        }
    }

    #[test]
    fn chart_accounts_take_a_byte_and_their_entity() {
        // The bytes of a first leg's debit account, in the payment's ledger (156).
        let one = |debit: u128| {
            let mut cold = payment()[0];
            cold.transfer.debit_account_id = debit;
            size(&[cold]) + 4 - size(&payment()[..1])
        };
        // The user of `payment` (entity 87,654) is a byte and three.
        assert_eq!(one(account(1, 87_654)), 4);
        assert_eq!(one(account(4, 0)), 1);
        assert_eq!(one(account(30, (1 << 56) - 1)), 8);
        // Out of the layout: the escape, a mask of two bytes and the non-zero bytes.
        assert_eq!(one(account(31, 1)), 1 + 2 + 3);
        assert_eq!(one(account(1, 1 << 56)), 1 + 2 + 3);
        let elsewhere = 1 << 96 | 840 << 64 | 87_654;
        assert_eq!(one(elsewhere), 1 + 2 + 6);
        for id in [account(4, 0), account(31, 1), account(1, 1 << 56), elsewhere] {
            let mut cold = payment()[0];
            cold.transfer.debit_account_id = id;
            roundtrip(&[cold]);
        }
    }

    #[test]
    fn an_account_in_another_encoding_than_its_own_is_refused() {
        let read = |bytes: &[u8]| Reader::new(bytes).account(156);
        assert_eq!(read(&[2 << 5 | 1, 0xe1, 0x10]), Ok(account(1, 0x10e1)));
        // Its entity with a zero byte on top, or a kind of 31 with a length.
        assert_eq!(read(&[3 << 5 | 1, 0xe1, 0x10, 0]), Err(DecodeError::Range));
        assert_eq!(read(&[1 << 5 | 31, 1]), Err(DecodeError::Range));
        // An id of the layout written out after the escape.
        let mut escaped = vec![KIND_ESCAPE];
        put_id(&mut escaped, account(1, 0x10e1));
        assert_eq!(read(&escaped), Err(DecodeError::Range));
        assert_eq!(read(&[2 << 5 | 1, 0xe1]), Err(DecodeError::Truncated));
    }

    #[test]
    fn user_data_that_only_looks_derived_is_kept_as_it_is() {
        let mut cold = payment()[0];
        cold.transfer.user_data_64 += 1;
        cold.transfer.user_data_32 = 0;
        roundtrip(&[cold]);
        cold.transfer.id = 0;
        cold.transfer.user_data_64 = 0;
        roundtrip(&[cold]);
    }

    #[test]
    fn damaged_records_are_refused() {
        let legs = payment();
        let mut out = Vec::new();
        encode(&legs, &mut out);
        let ts = legs[0].transfer.timestamp;
        let read = |bytes: &[u8]| decode(bytes, ts).collect::<Result<Vec<_>, _>>();
        let ends: Vec<usize> = (1..=legs.len()).map(|n| size(&legs[..n])).collect();
        for len in 0..out.len() {
            match ends.iter().position(|&end| end == len) {
                // Cut between two legs: the legs before.
                Some(n) => assert_eq!(read(&out[..len]).as_deref(), Ok(&legs[..=n]), "{len}"),
                None => assert_eq!(read(&out[..len]), Err(DecodeError::Truncated), "{len}"),
            }
        }
        let mut status = out.clone();
        status[1] |= 0x70;
        assert_eq!(read(&status), Err(DecodeError::Status));
        // A second leg at the first one's timestamp.
        let mut again = out.clone();
        again[ends[0]] = 0;
        assert_eq!(read(&again), Err(DecodeError::Range));
        // The first leg's id as the one before plus one.
        let mut next = out.clone();
        next[1] |= (ID_NEXT >> 8) as u8;
        assert_eq!(read(&next), Err(DecodeError::Range));
        // The third leg names a fourth account, and the group wrote out three.
        let mut place = out.clone();
        let refs = ends[1] + 1 + 2;
        assert_eq!(place[refs], 2 << 4, "the merchant, and the platform written out");
        place[refs] = 2 << 4 | 4;
        assert_eq!(read(&place), Err(DecodeError::Range));
    }

    fn any_u128() -> impl Strategy<Value = u128> {
        prop_oneof![
            Just(0u128),
            any::<u8>().prop_map(u128::from),
            any::<u64>().prop_map(u128::from),
            any::<u128>()
        ]
    }

    /// Ledgers that `any_account` uses, and any other.
    fn any_ledger() -> impl Strategy<Value = u32> {
        prop_oneof![Just(156u32), Just(840), any::<u32>()]
    }

    /// Accounts of the chart's layout in the ledgers of `any_ledger` (with kinds and entities
    /// on both sides of what the compact byte holds), or any `u128`.
    fn any_account() -> impl Strategy<Value = u128> {
        let entity = prop_oneof![Just(0u64), any::<u16>().prop_map(u64::from), any::<u64>()];
        prop_oneof![
            (0u128..40, prop_oneof![Just(156u128), Just(840)], entity)
                .prop_map(|(kind, ledger, entity)| kind << 96 | ledger << 64 | u128::from(entity)),
            any_u128(),
        ]
    }

    proptest! {
        #[test]
        fn every_group_comes_back(
            legs in proptest::collection::vec((
                (any_u128(), any_u128(), any_u128(), any_u128()),
                (0usize..20, 0usize..20, any::<bool>(), 1u64..1_000, any::<u8>()),
                (any::<u64>(), any::<u32>(), any::<u32>(), any_ledger(), any::<u16>(), any::<u16>()),
                0u8..=4,
            ), 1..24),
            pool in proptest::collection::vec(any_account(), 20),
            group in any::<u128>(),
            start in any::<u64>(),
        ) {
            let mut out: Vec<ColdTransfer> = Vec::new();
            for (big, (debit, credit, derived, after, member), small, status) in legs {
                let (amount, pending_id, user_data_128, _) = big;
                let (mut user_data_64, mut user_data_32, timeout, ledger, code, flags) = small;
                let before = out.last().map(|c| c.transfer);
                let timestamp = match before {
                    None => start,
                    Some(b) => match b.timestamp.checked_add(after) {
                        Some(ts) => ts,
                        None => break,
                    },
                };
                // Mostly the next id, as an operation's legs; sometimes another of the group.
                let id = match before {
                    Some(b) if member % 4 != 0 && b.id & 0xff != 0xff => b.id + 1,
                    _ => group & !0xff | u128::from(member),
                };
                if derived {
                    user_data_64 = id_op(id);
                    user_data_32 = id_tag(id);
                }
                out.push(ColdTransfer {
                    transfer: Transfer {
                        id,
                        debit_account_id: pool[debit],
                        credit_account_id: pool[credit],
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
                });
            }
            roundtrip(&out);
        }
    }
}
