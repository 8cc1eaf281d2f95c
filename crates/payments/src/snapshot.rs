//! The payment machine's checkpoint: the ledger's snapshot, then every domain table.
//! Tables are written in key order, so the same state always gives the same bytes.

use std::io::{self, Read, Write};

use huifu_ledger::{varint, StateMachine};

use crate::command::{
    CouponRule, Done, Funder, Outcome, PaymentError, PaymentStatus, SettlementLine, Statement,
};
use crate::machine::{
    Campaign, Coupon, Hold, HoldKind, Merchant, Payment, PaymentsMachine, Payout,
};
use crate::money::Legs;
use crate::tier::Stored;

const MAGIC: &[u8; 8] = b"HFPAY008";

pub fn write(m: &PaymentsMachine, w: &mut dyn Write) -> io::Result<()> {
    let mut w = W(w);
    w.0.write_all(MAGIC)?;
    m.ledger.write_snapshot(&mut w.0)?;
    w.map(&m.channels, |w, k, v| {
        w.u64(*k)?;
        w.u32(*v)
    })?;
    w.map(&m.users, |w, k, v| {
        w.u64(*k)?;
        w.u32(*v)
    })?;
    w.map(&m.riders, |w, k, v| {
        w.u64(*k)?;
        w.u32(*v)
    })?;
    w.map(&m.merchants, |w, k, v| {
        w.u64(*k)?;
        w.u32(v.currency)?;
        w.u32(v.commission_bps)?;
        w.u64(v.channel)?;
        w.statement(&v.period)
    })?;
    w.map(&m.campaigns, |w, k, v| {
        w.u64(*k)?;
        w.u32(v.currency)?;
        w.u64(match v.funder {
            Funder::Platform => 0,
            Funder::Merchant(m) => m,
        })?;
        w.u64(v.budget)?;
        w.u64(v.rule.amount_off)?;
        w.u64(v.rule.min_order)?;
        w.u64(v.rule.valid_from)?;
        w.u64(v.rule.valid_until)?;
        w.u32(v.rule.per_user_limit)
    })?;
    w.map(m.coupons.iter(), |w, k, v| {
        w.u64(*k)?;
        w.coupon(v)
    })?;
    w.map(&m.redemptions, |w, k, v| {
        w.u64(k.0)?;
        w.u64(k.1)?;
        w.u32(*v)
    })?;
    w.map(m.payments.iter(), |w, k, p| {
        w.u64(*k)?;
        w.payment(p)
    })?;
    w.map(m.refunds.iter(), |w, k, v| {
        w.u64(*k)?;
        w.u64(v.0)?;
        w.u64(v.1)
    })?;
    w.map(m.holds.iter(), |w, k, h| {
        w.u64(*k)?;
        w.hold(h)
    })?;
    w.map(m.payouts.iter(), |w, k, p| {
        w.u128(*k)?;
        w.payout(p)
    })?;
    w.map(&m.settlements, |w, k, lines| {
        w.u64(*k)?;
        w.lines(lines)
    })?;
    w.map(m.outcomes.iter(), |w, k, (print, outcome)| {
        w.u8(k.0)?;
        w.u128(k.1)?;
        w.fixed64(*print)?;
        w.outcome(outcome)
    })?;
    w.map(m.keys.iter(), |w, k, (print, id, outcome)| {
        w.u128(*k)?;
        w.fixed64(*print)?;
        w.u64(*id)?;
        w.outcome(outcome)
    })?;
    w.u64(m.last_id)?;
    for lists in [&m.by_merchant, &m.by_user] {
        w.map(lists, |w, k, ids| {
            w.u64(*k)?;
            w.u64(ids.len() as u64)?;
            ids.iter().try_for_each(|(ts, id)| {
                w.u64(*ts)?;
                w.u64(*id)
            })
        })?;
    }
    w.u64(m.foreign.len() as u64)?;
    m.foreign.iter().try_for_each(|id| w.u128(*id))?;
    let mut webhooks = Vec::new();
    crate::webhooks::codec::encode_state(&m.webhooks, &mut webhooks);
    w.u64(webhooks.len() as u64)?;
    w.0.write_all(&webhooks)?;
    // Last: the journal position, which every record moves.
    w.u64(m.applied)?;
    w.u64(m.moved)?;
    Ok(())
}

pub fn read(r: &mut dyn Read) -> io::Result<PaymentsMachine> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("bad magic"));
    }
    let ledger = StateMachine::read_snapshot(&mut &mut *r)?;
    let mut r = R::new(r);
    tables(&mut r, ledger).map_err(|e| r.cut_short(e))
}

/// The domain tables, after the ledger.
///
/// No count read here is trusted for memory: tables grow entry by entry as entries are read
/// (a count is only ever a loop's bound), so a corrupt count ends at the end of the file, in
/// `R::cut_short`'s error, not in an allocation.
fn tables(r: &mut R<'_>, ledger: StateMachine) -> io::Result<PaymentsMachine> {
    let mut m = PaymentsMachine { ledger, ..PaymentsMachine::default() };
    for _ in 0..r.len("channels")? {
        m.channels.insert(r.u64()?, r.u32()?);
    }
    for _ in 0..r.len("users")? {
        m.users.insert(r.u64()?, r.u32()?);
    }
    for _ in 0..r.len("riders")? {
        m.riders.insert(r.u64()?, r.u32()?);
    }
    for _ in 0..r.len("merchants")? {
        let id = r.u64()?;
        let merchant = Merchant {
            currency: r.u32()?,
            commission_bps: r.u32()?,
            channel: r.u64()?,
            period: r.statement()?,
        };
        m.merchants.insert(id, merchant);
        m.merchant_ids.insert(id);
    }
    for _ in 0..r.len("campaigns")? {
        let id = r.u64()?;
        let currency = r.u32()?;
        let funder = match r.u64()? {
            0 => Funder::Platform,
            m => Funder::Merchant(m),
        };
        let budget = r.u64()?;
        let rule = CouponRule {
            amount_off: r.u64()?,
            min_order: r.u64()?,
            valid_from: r.u64()?,
            valid_until: r.u64()?,
            per_user_limit: r.u32()?,
        };
        m.campaigns.insert(id, Campaign { currency, funder, budget, rule });
    }
    for _ in 0..r.len("coupons")? {
        let id = r.u64()?;
        m.coupons.insert(id, r.coupon()?);
    }
    for _ in 0..r.len("redemptions")? {
        m.redemptions.insert((r.u64()?, r.u64()?), r.u32()?);
    }
    for _ in 0..r.len("payments")? {
        let id = r.u64()?;
        let payment = r.payment()?;
        if payment.status == PaymentStatus::Authorized {
            let deadline = m
                .hold_deadline_checked(id, &payment.legs)
                .ok_or_else(|| bad("an authorized payment without its hold in the ledger"))?;
            m.authorized.insert((deadline, id));
        }
        m.payments.insert(id, payment);
    }
    for _ in 0..r.len("refunds")? {
        m.refunds.insert(r.u64()?, (r.u64()?, r.u64()?));
    }
    for _ in 0..r.len("holds")? {
        let id = r.u64()?;
        m.holds.insert(id, r.hold()?);
    }
    for _ in 0..r.len("payouts")? {
        let id = r.u128()?;
        m.payouts.insert(id, r.payout()?);
    }
    for _ in 0..r.len("settlements")? {
        let id = r.u64()?;
        let lines = r.lines()?;
        m.settlements.insert(id, lines);
    }
    for _ in 0..r.len("outcomes")? {
        let key = (r.u8()?, r.u128()?);
        let print = r.fixed64()?;
        let outcome = r.outcome()?;
        m.outcomes.insert(key, (print, outcome));
    }
    for _ in 0..r.len("idempotency keys")? {
        let key = r.u128()?;
        let (print, id) = (r.fixed64()?, r.u64()?);
        let outcome = r.outcome()?;
        m.keys.insert(key, (print, id, outcome));
    }
    m.last_id = r.u64()?;
    for (merchants, what) in [(true, "merchants' payment lists"), (false, "users' payment lists")] {
        for _ in 0..r.len(what)? {
            let party = r.u64()?;
            let ids = r.list("payments of a list", |r| Ok((r.u64()?, r.u64()?)))?;
            m.listed += ids.len();
            if merchants {
                m.by_merchant.insert(party, ids);
            } else {
                m.by_user.insert(party, ids);
            }
        }
    }
    for _ in 0..r.len("foreign transfer ids")? {
        m.foreign.insert(r.u128()?);
    }
    let len = r.len("webhook bytes")?;
    let mut webhooks = Vec::new();
    (&mut *r.r).take(len).read_to_end(&mut webhooks)?;
    if webhooks.len() as u64 != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let (state, rest) = crate::webhooks::codec::decode_state(&webhooks).map_err(|e| bad(&e))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the webhook endpoints"));
    }
    m.webhooks = state;
    m.applied = r.u64()?;
    m.moved = r.u64()?;
    Ok(m)
}

fn status_of(byte: u8) -> io::Result<PaymentStatus> {
    Ok(match byte {
        0 => PaymentStatus::Authorized,
        1 => PaymentStatus::Succeeded,
        2 => PaymentStatus::Released,
        3 => PaymentStatus::Expired,
        _ => return Err(bad("payment status")),
    })
}

/// A payment's first byte: its status (bits 0 and 1), and which of its fields that are mostly
/// zero are written (a payment with no coupon, by wallet, never refunded writes none of them).
const PAYMENT_STATUS: u8 = 0b11;
const PAYMENT_COUPON: u8 = 1 << 2;
const PAYMENT_CAMPAIGN: u8 = 1 << 3;
const PAYMENT_CHANNEL: u8 = 1 << 4;
/// The refunded legs.
const PAYMENT_REFUNDED: u8 = 1 << 5;
/// The ids of its refunds.
const PAYMENT_REFUNDS: u8 = 1 << 6;
const PAYMENT_KNOWN: u8 = (1 << 7) - 1;

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("payments snapshot: {what}"))
}

struct W<'a>(&'a mut dyn Write);

impl W<'_> {
    fn u8(&mut self, v: u8) -> io::Result<()> {
        self.0.write_all(&[v])
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.u64(u64::from(v))
    }
    /// A varint: most values here (ids, amounts) are small.
    #[inline]
    fn u64(&mut self, v: u64) -> io::Result<()> {
        let mut buf = [0; varint::BYTES_MAX];
        self.0.write_all(varint::encode(u128::from(v), &mut buf))
    }
    /// A hash: as many bytes as it has.
    fn fixed64(&mut self, v: u64) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    fn u128(&mut self, v: u128) -> io::Result<()> {
        self.0.write_all(&v.to_le_bytes())
    }
    /// A table in key order.
    fn map<'a, K: Ord + 'a, V: 'a>(
        &mut self,
        map: impl IntoIterator<Item = (&'a K, &'a V)>,
        mut f: impl FnMut(&mut Self, &K, &V) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut entries: Vec<(&K, &V)> = map.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.u64(entries.len() as u64)?;
        entries.into_iter().try_for_each(|(k, v)| f(self, k, v))
    }
    fn coupon(&mut self, c: &Coupon) -> io::Result<()> {
        self.u64(c.campaign)?;
        self.u64(c.user)?;
        self.u64(c.redeemed_by)
    }
    fn hold(&mut self, h: &Hold) -> io::Result<()> {
        self.u8(match h.kind {
            HoldKind::TopUp => 0,
            HoldKind::Withdrawal => 1,
        })?;
        self.u64(h.user)?;
        self.u64(h.channel)?;
        self.u32(h.currency)?;
        self.u64(h.amount)
    }
    fn payout(&mut self, p: &Payout) -> io::Result<()> {
        self.u64(p.merchant)?;
        self.u64(p.channel)?;
        self.u32(p.currency)?;
        self.u64(p.amount)
    }
    fn payment(&mut self, p: &Payment) -> io::Result<()> {
        // Written only when not zero, each with its bit in the head.
        let optional = [
            (PAYMENT_COUPON, p.coupon),
            (PAYMENT_CAMPAIGN, p.campaign),
            (PAYMENT_CHANNEL, p.channel),
        ];
        let mut head = p.status as u8;
        for (bit, v) in optional {
            if v != 0 {
                head |= bit;
            }
        }
        if p.refunded != Legs::default() {
            head |= PAYMENT_REFUNDED;
        }
        if !p.refunds.is_empty() {
            head |= PAYMENT_REFUNDS;
        }
        self.u8(head)?;
        for v in [p.user, p.merchant, p.rider] {
            self.u64(v)?;
        }
        self.u32(p.currency)?;
        self.u64(p.food)?;
        self.u64(p.delivery)?;
        for (_, v) in optional.into_iter().filter(|&(_, v)| v != 0) {
            self.u64(v)?;
        }
        self.legs(&p.legs)?;
        if head & PAYMENT_REFUNDED != 0 {
            self.legs(&p.refunded)?;
        }
        self.u64(p.timestamp)?;
        self.u32(p.timeout_s)?;
        if head & PAYMENT_REFUNDS != 0 {
            self.u64(p.refunds.len() as u64)?;
            p.refunds.iter().try_for_each(|r| self.u64(*r))?;
        }
        Ok(())
    }
    fn legs(&mut self, l: &Legs) -> io::Result<()> {
        [l.merchant, l.rider, l.platform, l.coupon].into_iter().try_for_each(|v| self.u64(v))
    }
    fn statement(&mut self, s: &Statement) -> io::Result<()> {
        [s.payments, s.gross, s.refunds, s.commission, s.commission_returned, s.discounts]
            .into_iter()
            .try_for_each(|v| self.u64(v))
    }
    fn status(&mut self, s: PaymentStatus) -> io::Result<()> {
        self.u8(s as u8)
    }
    fn lines(&mut self, lines: &[SettlementLine]) -> io::Result<()> {
        self.u64(lines.len() as u64)?;
        for l in lines {
            self.u64(l.merchant)?;
            self.u64(l.channel)?;
            self.u32(l.currency)?;
            self.u128(l.payout)?;
            self.statement(&l.statement)?;
            self.u64(l.net)?;
        }
        Ok(())
    }
    fn outcome(&mut self, o: &Outcome) -> io::Result<()> {
        match o {
            Err(e) => {
                self.u8(0)?;
                let index = PaymentError::ALL.iter().position(|x| x == e).expect("listed");
                self.u8(u8::try_from(index).expect("fewer than 256 errors"))
            }
            Ok(Done::Created) => self.u8(1),
            Ok(Done::Payment { status, total, legs, currency }) => {
                self.u8(2)?;
                self.status(*status)?;
                self.u64(*total)?;
                self.legs(legs)?;
                self.u32(*currency)
            }
            Ok(Done::Refund { amount, legs, full }) => {
                self.u8(3)?;
                self.u64(*amount)?;
                self.legs(legs)?;
                self.u8(u8::from(*full))
            }
            Ok(Done::Hold { amount }) => {
                self.u8(4)?;
                self.u64(*amount)
            }
            Ok(Done::Payout { payout, amount }) => {
                self.u8(5)?;
                self.u128(*payout)?;
                self.u64(*amount)
            }
            Ok(Done::Settlement { lines }) => {
                self.u8(6)?;
                self.lines(lines)
            }
            Ok(Done::Expired(n)) => {
                self.u8(7)?;
                self.u64(*n as u64)
            }
            Ok(Done::Allocated { id, outcome }) => {
                self.u8(8)?;
                self.u64(*id)?;
                self.outcome(outcome)
            }
            Ok(
                Done::Batch(_)
                | Done::LedgerAccounts(_)
                | Done::LedgerTransfers(_)
                | Done::Webhook(_),
            ) => {
                unreachable!("batch and ledger outcomes are not kept")
            }
        }
    }
}

struct R<'a> {
    r: &'a mut dyn Read,
    /// The last count read and what it counts, for the error of a file that ends early.
    counted: Option<(&'static str, u64)>,
}

impl<'a> R<'a> {
    fn new(r: &'a mut dyn Read) -> R<'a> {
        R { r, counted: None }
    }
    /// `e`, or if the file ended early, an `InvalidData` error that says where.
    fn cut_short(&self, e: io::Error) -> io::Error {
        match (e.kind(), self.counted) {
            (io::ErrorKind::UnexpectedEof, Some((what, count))) => bad(&format!(
                "the file ends early (the last count read was {count} {what}): a count larger \
                 than the entries there are, or a file cut short"
            )),
            (io::ErrorKind::UnexpectedEof, None) => bad("the file ends early"),
            _ => e,
        }
    }

    fn take<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        u32::try_from(self.u64()?).map_err(|_| bad("u32 out of range"))
    }
    #[inline]
    fn u64(&mut self) -> io::Result<u64> {
        let v = varint::read(64, || self.u8(), || bad("u64 out of range"))?;
        // Below 2^64: `read` refuses more.
        Ok(v as u64)
    }
    fn fixed64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }
    fn u128(&mut self) -> io::Result<u128> {
        Ok(u128::from_le_bytes(self.take()?))
    }
    /// A count of `what`: only ever a loop's bound, never room made in advance.
    fn len(&mut self, what: &'static str) -> io::Result<u64> {
        let count = self.u64()?;
        self.counted = Some((what, count));
        Ok(count)
    }
    /// A count of `what`, then that many entries, each read by `f`. The vector grows as
    /// entries are read (doubling), never to the count announced.
    fn list<T>(
        &mut self,
        what: &'static str,
        mut f: impl FnMut(&mut Self) -> io::Result<T>,
    ) -> io::Result<Vec<T>> {
        let mut out = Vec::new();
        for _ in 0..self.len(what)? {
            out.push(f(self)?);
        }
        Ok(out)
    }
    fn coupon(&mut self) -> io::Result<Coupon> {
        Ok(Coupon { campaign: self.u64()?, user: self.u64()?, redeemed_by: self.u64()? })
    }
    fn hold(&mut self) -> io::Result<Hold> {
        let kind = match self.u8()? {
            0 => HoldKind::TopUp,
            1 => HoldKind::Withdrawal,
            _ => return Err(bad("hold kind")),
        };
        Ok(Hold {
            kind,
            user: self.u64()?,
            channel: self.u64()?,
            currency: self.u32()?,
            amount: self.u64()?,
        })
    }
    fn payout(&mut self) -> io::Result<Payout> {
        Ok(Payout {
            merchant: self.u64()?,
            channel: self.u64()?,
            currency: self.u32()?,
            amount: self.u64()?,
        })
    }
    fn payment(&mut self) -> io::Result<Payment> {
        let head = self.u8()?;
        if head & !PAYMENT_KNOWN != 0 {
            return Err(bad("payment head"));
        }
        let status = status_of(head & PAYMENT_STATUS)?;
        let (user, merchant, rider) = (self.u64()?, self.u64()?, self.u64()?);
        let currency = self.u32()?;
        let (food, delivery) = (self.u64()?, self.u64()?);
        // A field the head says is written is not zero: one encoding per payment.
        let mut present = |bit: u8| -> io::Result<u64> {
            if head & bit == 0 {
                return Ok(0);
            }
            match self.u64()? {
                0 => Err(bad("payment field written as zero")),
                v => Ok(v),
            }
        };
        let (coupon, campaign, channel) =
            (present(PAYMENT_COUPON)?, present(PAYMENT_CAMPAIGN)?, present(PAYMENT_CHANNEL)?);
        let legs = self.legs()?;
        let refunded = if head & PAYMENT_REFUNDED != 0 {
            Some(self.legs()?)
                .filter(|l| *l != Legs::default())
                .ok_or_else(|| bad("refunded zero"))?
        } else {
            Legs::default()
        };
        let timestamp = self.u64()?;
        let timeout_s = self.u32()?;
        let refunds = if head & PAYMENT_REFUNDS != 0 {
            let refunds = self.list("refunds of a payment", |r| r.u64())?;
            Some(refunds).filter(|r| !r.is_empty()).ok_or_else(|| bad("no refunds"))?
        } else {
            Vec::new()
        };
        Ok(Payment {
            user,
            merchant,
            rider,
            currency,
            food,
            delivery,
            coupon,
            campaign,
            channel,
            legs,
            refunded,
            status,
            refunds,
            timestamp,
            timeout_s,
        })
    }
    fn legs(&mut self) -> io::Result<Legs> {
        Ok(Legs {
            merchant: self.u64()?,
            rider: self.u64()?,
            platform: self.u64()?,
            coupon: self.u64()?,
        })
    }
    fn statement(&mut self) -> io::Result<Statement> {
        Ok(Statement {
            payments: self.u64()?,
            gross: self.u64()?,
            refunds: self.u64()?,
            commission: self.u64()?,
            commission_returned: self.u64()?,
            discounts: self.u64()?,
        })
    }
    fn status(&mut self) -> io::Result<PaymentStatus> {
        status_of(self.u8()?)
    }
    fn lines(&mut self) -> io::Result<Vec<SettlementLine>> {
        self.list("settlement lines", |r| {
            Ok(SettlementLine {
                merchant: r.u64()?,
                channel: r.u64()?,
                currency: r.u32()?,
                payout: r.u128()?,
                statement: r.statement()?,
                net: r.u64()?,
            })
        })
    }
    fn outcome(&mut self) -> io::Result<Outcome> {
        Ok(match self.u8()? {
            0 => {
                Err(*PaymentError::ALL.get(usize::from(self.u8()?)).ok_or_else(|| bad("error"))?)
            }
            1 => Ok(Done::Created),
            2 => Ok(Done::Payment {
                status: self.status()?,
                total: self.u64()?,
                legs: self.legs()?,
                currency: self.u32()?,
            }),
            3 => {
                Ok(Done::Refund { amount: self.u64()?, legs: self.legs()?, full: self.u8()? != 0 })
            }
            4 => Ok(Done::Hold { amount: self.u64()? }),
            5 => Ok(Done::Payout { payout: self.u128()?, amount: self.u64()? }),
            6 => Ok(Done::Settlement { lines: self.lines()? }),
            7 => Ok(Done::Expired(usize::try_from(self.u64()?).map_err(|_| bad("count"))?)),
            8 => Ok(Done::Allocated { id: self.u64()?, outcome: Box::new(self.outcome()?) }),
            _ => return Err(bad("outcome")),
        })
    }
}

// The same encodings for the records the history store keeps (see `tier.rs`).

fn done(bytes: &[u8], read: usize) -> io::Result<()> {
    if read != bytes.len() {
        return Err(bad("trailing bytes in a stored record"));
    }
    Ok(())
}

/// Decodes one stored record, all of it.
fn decode<T>(bytes: &[u8], f: impl FnOnce(&mut R) -> io::Result<T>) -> io::Result<T> {
    let mut rest = bytes;
    let value = {
        let mut r = R::new(&mut rest);
        f(&mut r).map_err(|e| r.cut_short(e))?
    };
    done(bytes, bytes.len() - rest.len())?;
    Ok(value)
}

fn encode(out: &mut Vec<u8>, f: impl FnOnce(&mut W) -> io::Result<()>) {
    f(&mut W(out)).expect("writing to memory cannot fail");
}

impl Stored for Payment {
    type Key = u64;
    const TABLE: u8 = 1;
    fn key_bytes(key: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| w.payment(self));
    }
    fn decode(bytes: &[u8]) -> io::Result<Payment> {
        decode(bytes, |r| r.payment())
    }
}

impl Stored for Coupon {
    type Key = u64;
    const TABLE: u8 = 2;
    fn key_bytes(key: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| w.coupon(self));
    }
    fn decode(bytes: &[u8]) -> io::Result<Coupon> {
        decode(bytes, |r| r.coupon())
    }
}

/// A top-up or withdrawal.
impl Stored for Hold {
    type Key = u64;
    const TABLE: u8 = 6;
    fn key_bytes(key: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| w.hold(self));
    }
    fn decode(bytes: &[u8]) -> io::Result<Hold> {
        decode(bytes, |r| r.hold())
    }
}

/// A payout, by the ledger id of its pending transfer.
impl Stored for Payout {
    type Key = u128;
    const TABLE: u8 = 7;
    fn key_bytes(key: &u128, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| w.payout(self));
    }
    fn decode(bytes: &[u8]) -> io::Result<Payout> {
        decode(bytes, |r| r.payout())
    }
}

/// A refund: its payment and amount.
impl Stored for (u64, u64) {
    type Key = u64;
    const TABLE: u8 = 3;
    fn key_bytes(key: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| {
            w.u64(self.0)?;
            w.u64(self.1)
        });
    }
    fn decode(bytes: &[u8]) -> io::Result<(u64, u64)> {
        decode(bytes, |r| Ok((r.u64()?, r.u64()?)))
    }
}

/// The table of the outcomes of operations whose id does not fit 64 bits (a payout's result,
/// named by the payout's 128-bit id).
pub(crate) const WIDE_OUTCOMES_TABLE: u8 = 8;

/// An operation's first outcome, with its fingerprint, by (kind, id), stored as id then kind:
/// ids that grow with time then make keys that do. The outcomes of operations with wide ids
/// (above `u64::MAX`) are kept in a table of their own: in one table with the others, every
/// table holding one would have a key range up to it, so a lookup of a new id (which is how
/// every operation starts) would read the bloom filter of each such table instead of finding
/// its key above all of them.
impl Stored for (u64, Outcome) {
    type Key = (u8, u128);
    const TABLE: u8 = 4;
    fn table(key: &(u8, u128)) -> u8 {
        if key.1 > u128::from(u64::MAX) {
            WIDE_OUTCOMES_TABLE
        } else {
            Self::TABLE
        }
    }
    fn key_bytes(key: &(u8, u128), out: &mut Vec<u8>) {
        out.extend_from_slice(&key.1.to_be_bytes());
        out.push(key.0);
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| {
            w.fixed64(self.0)?;
            w.outcome(&self.1)
        });
    }
    fn decode(bytes: &[u8]) -> io::Result<(u64, Outcome)> {
        decode(bytes, |r| Ok((r.fixed64()?, r.outcome()?)))
    }
}

/// A keyed operation's fingerprint, the id it was given and its first outcome, by key.
impl Stored for (u64, u64, Outcome) {
    type Key = u128;
    const TABLE: u8 = 5;
    fn key_bytes(key: &u128, out: &mut Vec<u8>) {
        out.extend_from_slice(&key.to_be_bytes());
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode(out, |w| {
            w.fixed64(self.0)?;
            w.u64(self.1)?;
            w.outcome(&self.2)
        });
    }
    fn decode(bytes: &[u8]) -> io::Result<(u64, u64, Outcome)> {
        decode(bytes, |r| Ok((r.fixed64()?, r.u64()?, r.outcome()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip_in_as_few_bytes_as_they_need() {
        for (v, size) in [(0u64, 1), (127, 1), (128, 2), (16_383, 2), (1 << 56, 9), (u64::MAX, 10)]
        {
            let mut bytes = Vec::new();
            W(&mut bytes).u64(v).unwrap();
            assert_eq!(bytes.len(), size, "{v}");
            let mut rest = bytes.as_slice();
            assert_eq!(R::new(&mut rest).u64().unwrap(), v);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn integers_out_of_range_or_cut_short_are_refused() {
        let too_big = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(R::new(&mut &too_big[..]).u64().is_err());
        assert!(R::new(&mut &[0x80u8][..]).u64().is_err());
        let mut bytes = Vec::new();
        W(&mut bytes).u64(u64::from(u32::MAX) + 1).unwrap();
        assert!(R::new(&mut bytes.as_slice()).u32().is_err());
    }

    fn a_payment() -> Payment {
        Payment {
            user: 700_001,
            merchant: 4_321,
            rider: 765,
            currency: 156,
            food: 4_250,
            delivery: 500,
            coupon: 0,
            campaign: 0,
            channel: 0,
            legs: Legs { merchant: 3_910, rider: 500, platform: 340, coupon: 0 },
            refunded: Legs::default(),
            status: PaymentStatus::Succeeded,
            refunds: Vec::new(),
            timestamp: 1_790_000_000_000_000_123,
            timeout_s: 60,
        }
    }

    #[test]
    fn a_payment_writes_only_the_fields_it_has() {
        let plain = a_payment();
        let mut bytes = Vec::new();
        plain.encode(&mut bytes);
        assert_eq!(Payment::decode(&bytes).unwrap(), plain);
        // Head 1, user 3, merchant 2, rider 2, currency 2, food 2, delivery 2, legs 2+2+2+1,
        // timestamp 9, timeout 1.
        assert_eq!(bytes.len(), 1 + 3 + 2 + 2 + 2 + 2 + 2 + 7 + 9 + 1);
        let full = Payment {
            coupon: 300,
            campaign: 9,
            channel: 2,
            refunded: Legs { merchant: 1, rider: 2, platform: 3, coupon: 4 },
            status: PaymentStatus::Expired,
            refunds: vec![11, 12],
            ..a_payment()
        };
        let mut bytes = Vec::new();
        full.encode(&mut bytes);
        assert_eq!(Payment::decode(&bytes).unwrap(), full);
    }

    #[test]
    fn a_payment_with_a_field_written_as_zero_or_an_unknown_head_is_refused() {
        let mut bytes = Vec::new();
        a_payment().encode(&mut bytes);
        let mut unknown = bytes.clone();
        unknown[0] |= 1 << 7;
        assert!(Payment::decode(&unknown).is_err());
        // Says it has a coupon, and writes it as zero.
        let mut zero = bytes.clone();
        zero[0] |= PAYMENT_COUPON;
        zero.insert(1 + 3 + 2 + 2 + 2 + 2 + 2, 0);
        assert!(Payment::decode(&zero).is_err());
        zero[1 + 3 + 2 + 2 + 2 + 2 + 2] = 7;
        assert_eq!(Payment::decode(&zero).unwrap().coupon, 7);
        // Says it was refunded, and writes refunded legs of zero, after its legs.
        let mut refunded = bytes.clone();
        refunded[0] |= PAYMENT_REFUNDED;
        let after_legs = 1 + 3 + 2 + 2 + 2 + 2 + 2 + 7;
        refunded.splice(after_legs..after_legs, [0, 0, 0, 0]);
        let err = Payment::decode(&refunded).unwrap_err().to_string();
        assert!(err.contains("refunded zero"), "{err}");
        refunded[after_legs] = 1;
        assert_eq!(Payment::decode(&refunded).unwrap().refunded.merchant, 1);
        // Says it has refunds, and writes none, at the end.
        let mut refunds = bytes.clone();
        refunds[0] |= PAYMENT_REFUNDS;
        refunds.push(0);
        let err = Payment::decode(&refunds).unwrap_err().to_string();
        assert!(err.contains("no refunds"), "{err}");
        *refunds.last_mut().unwrap() = 1;
        refunds.push(42);
        assert_eq!(Payment::decode(&refunds).unwrap().refunds, [42]);
    }

    #[test]
    fn a_stored_record_with_bytes_left_over_is_refused() {
        let mut bytes = Vec::new();
        (7u64, 9u64).encode(&mut bytes);
        assert_eq!(<(u64, u64)>::decode(&bytes).unwrap(), (7, 9));
        bytes.push(0);
        assert!(<(u64, u64)>::decode(&bytes).is_err());
    }

    #[test]
    fn a_count_larger_than_the_bytes_there_are_is_refused() {
        let m = PaymentsMachine::default();
        let mut bytes = Vec::new();
        write(&m, &mut bytes).unwrap();
        let mut ledger = Vec::new();
        m.ledger.write_snapshot(&mut ledger).unwrap();
        // The channels' count, the first after the ledger's part: zero, one byte.
        let channels = MAGIC.len() + ledger.len();
        assert_eq!(bytes[channels], 0);
        let mut huge = Vec::new();
        W(&mut huge).u64(u64::MAX).unwrap();
        bytes.splice(channels..=channels, huge);
        let error = read(&mut &bytes[..]).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        let message = error.to_string();
        assert!(message.contains(&format!("{} channels", u64::MAX)), "{message}");
        // A stored payment whose count of refunds is far more than its bytes.
        let mut p = a_payment();
        p.refunds = vec![5];
        let mut record = Vec::new();
        p.encode(&mut record);
        let at = record.len() - 2;
        assert_eq!(record[at..], [1, 5]);
        record.truncate(at);
        W(&mut record).u64(u64::MAX >> 1).unwrap();
        record.push(5);
        let error = Payment::decode(&record).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        assert!(error.to_string().contains("refunds of a payment"), "{error}");
    }

    #[test]
    fn webhook_endpoints_round_trip_and_their_bytes_are_checked() {
        use crate::command::Op;
        use crate::webhooks::{DisabledReason, WebhookOp, EVENTS_ALL};
        let mut m = PaymentsMachine::default();
        let now = 1_700_000_000_000_000_000;
        let create = |key, merchant| WebhookOp::Create {
            key,
            merchant,
            url: format!("https://{merchant}.example/hooks"),
            description: "orders".into(),
            events: EVENTS_ALL,
            secret: vec![7; 24],
        };
        for op in [
            Op::CreateChannel { id: 1, currency: 156 },
            Op::CreateMerchant { id: 20, currency: 156, commission_bps: 1_000, channel: 1 },
            Op::Webhook(create(5, 20)),
            Op::Webhook(create(0, 0)),
            Op::Webhook(create(6, 20)),
            Op::Webhook(WebhookOp::RotateSecret {
                key: 7,
                id: 1,
                secret: vec![8; 24],
                overlap_s: 60,
            }),
            Op::Webhook(WebhookOp::Delivered(vec![(1, 99, 3)])),
            Op::Webhook(WebhookOp::Disable { id: 2, reason: DisabledReason::Gone }),
            Op::Webhook(WebhookOp::Delete { id: 3 }),
        ] {
            m.apply(now, &op).unwrap();
        }
        assert_eq!(m.webhooks().endpoints().count(), 2);
        let mut bytes = Vec::new();
        write(&m, &mut bytes).unwrap();
        let back = read(&mut &bytes[..]).unwrap();
        assert_eq!(back.webhooks(), m.webhooks());
        // The same state, the same bytes.
        let mut again = Vec::new();
        write(&back, &mut again).unwrap();
        assert_eq!(again, bytes);
        // The endpoints come before the journal position: their length, then their encoding.
        let mut state = Vec::new();
        crate::webhooks::codec::encode_state(m.webhooks(), &mut state);
        let mut len = Vec::new();
        W(&mut len).u64(state.len() as u64).unwrap();
        let mut tail = Vec::new();
        W(&mut tail).u64(m.applied).unwrap();
        W(&mut tail).u64(m.moved).unwrap();
        let at = bytes.len() - tail.len() - state.len() - len.len();
        assert_eq!(bytes[at..], [len.as_slice(), state.as_slice(), tail.as_slice()].concat()[..]);
        let with = |len: u64, state: &[u8]| {
            let mut b = bytes[..at].to_vec();
            W(&mut b).u64(len).unwrap();
            b.extend_from_slice(state);
            b.extend_from_slice(&tail);
            b
        };
        // Cut short: refused.
        for cut in [1, tail.len() + state.len()] {
            assert!(read(&mut &bytes[..bytes.len() - cut]).is_err(), "cut {cut}");
        }
        let cut = read(&mut &with(state.len() as u64 + 1, &state)[..]).expect_err("refused");
        assert_eq!(cut.kind(), io::ErrorKind::InvalidData, "{cut}");
        // Bytes after the endpoints, inside their length: refused.
        let longer = [state.as_slice(), &[0]].concat();
        let error = read(&mut &with(longer.len() as u64, &longer)[..]).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        assert!(error.to_string().contains("after the webhook endpoints"), "{error}");
        // Endpoints that do not decode: refused.
        let error = read(&mut &with(0, &[])[..]).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    }
}
