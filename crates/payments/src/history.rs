//! The payment machine's history store: the ledger transfers that left memory.
//!
//! The engine drives it through the `Machine` hooks (see `engine.rs`): before an operation is
//! applied, `prefetch` loads from the store every transfer the operation may find there (the
//! ledger events of an operator's batch; the holds a capture, release, bank answer or payout
//! answer settles); after a group, `evict` moves old transfers out. `apply` never reads the
//! store, so it stays a pure function of the state in memory.
//!
//! Transfers the domain creates get ids derived from the operation (`chart::transfer_id`),
//! which the idempotency tables already prove new, so they need no lookup in the store; the
//! only transfers they could collide with are ones an operator created through the ledger
//! endpoints with an id in the domain's range, and those stay in memory (`foreign`).

use std::io;

use huifu_ledger::{cold, AccountFilter, PendingStatus, StateMachine, Transfer};
use std::collections::HashSet;

use crate::command::PaymentStatus;
use crate::constants::{CHECKPOINT_WAITING_DIVISOR, TRANSFERS_PER_RECORD};
use crate::machine::{hold_tag, holds, op_key, Hold, Payment};
use crate::store::{HistoryStore, ListEntry, Record};
use crate::tier::{KeyBytes, Leaving, Stored, Tier, Tiered};

/// The tables of records in the store: payments, coupons, refunds, outcomes, idempotency keys,
/// top-ups and withdrawals, payouts, and the outcomes of operations with wide ids.
pub const RECORD_TABLES: [u8; 8] = [
    <Payment as Stored>::TABLE,
    <crate::machine::Coupon as Stored>::TABLE,
    <(u64, u64) as Stored>::TABLE,
    <(u64, crate::command::Outcome) as Stored>::TABLE,
    <(u64, u64, crate::command::Outcome) as Stored>::TABLE,
    <crate::machine::Hold as Stored>::TABLE,
    <crate::machine::Payout as Stored>::TABLE,
    crate::snapshot::WIDE_OUTCOMES_TABLE,
];

/// The store's lists of payments: by merchant and by user.
const LIST_MERCHANT: u8 = 0;
const LIST_USER: u8 = 1;

use crate::chart::{self, OpTag};
use crate::command::Op;
use crate::machine::PaymentsMachine;

/// Whether an id is in the range of ids the domain derives (`chart::transfer_id` and friends:
/// the top byte is an `OpTag`).
pub(crate) fn in_domain_range(id: u128) -> bool {
    let tag = (id >> 120) as u8;
    (OpTag::TopUp as u8..=OpTag::PayoutSettled as u8).contains(&tag)
}

/// The records `cold_needs` reads to know which transfers an operation settles (read back
/// from the store before it, by `prefetch_records`).
struct Known<'a> {
    payments: &'a Tiered<Payment>,
    holds: &'a Tiered<Hold>,
}

/// What applying `op` may look up in the ledger beyond memory (see the module comment):
/// ids of transfers not held, and timestamps of imported accounts. Only the holds that exist:
/// a payment without a coupon has no reservation, and a bank result settles a top-up's or a
/// withdrawal's hold, not both (an id that was never made is not in memory, so asking for it
/// cost a lookup in the store's id index for every capture).
fn cold_needs(
    ledger: &StateMachine,
    known: &Known<'_>,
    op: &Op,
    ids: &mut Vec<u128>,
    timestamps: &mut Vec<u64>,
) {
    let mut settles = |id: u128| {
        if ledger.lookup_transfer(id).is_none() {
            ids.push(id);
        }
    };
    match op {
        Op::LedgerTransfers(events) => ledger.cold_ids(events, ids),
        Op::LedgerAccounts(events) => ledger.cold_timestamps(events, timestamps),
        Op::Capture { id } | Op::Release { id } => {
            // An unknown payment is refused before any hold is read.
            if let Some(p) = known.payments.get(id) {
                (0..holds(&p.legs))
                    .for_each(|leg| settles(chart::transfer_id(OpTag::Payment, *id, leg)));
            }
        }
        Op::BankResult { id, .. } => {
            if let Some(hold) = known.holds.get(id) {
                settles(chart::transfer_id(hold_tag(hold.kind), *id, 0));
            }
        }
        Op::PayoutResult { payout, .. } => settles(*payout),
        Op::Keyed { op, .. } => cold_needs(ledger, known, op, ids, timestamps),
        Op::Batch(ops) => {
            ops.iter().for_each(|op| cold_needs(ledger, known, op, ids, timestamps));
        }
        _ => {}
    }
}

/// Reads `key` of `table` back from the store into memory (in checkpoint `epoch`), if the
/// store has it.
fn fetch<V: Stored>(
    table: &mut Tiered<V>,
    store: &dyn HistoryStore,
    epoch: u64,
    key: V::Key,
    horizon: u64,
) -> io::Result<Option<()>> {
    if table.contains_key(&key) {
        return Ok(Some(()));
    }
    let mut k = Vec::with_capacity(17);
    V::key_bytes(&key, &mut k);
    let Some(bytes) = store.get(V::table(&key), &k, horizon)? else {
        return Ok(None);
    };
    let value = V::decode(&bytes)?;
    table.insert_fetched(key, value, &bytes, epoch);
    Ok(Some(()))
}

impl PaymentsMachine {
    /// Puts the machine's history behind a store that `open` opens, given the ledger and the
    /// journal position of the last write of payment records (0: none). `open` decides, from
    /// those, whether the state depends on a store (and refuses to go on without one) and
    /// whether one is wanted (`held_max`: at most this many ledger transfers in memory); it
    /// answers `None` when everything stays in memory.
    pub fn open_history(
        &mut self,
        held_max: Option<usize>,
        open: impl FnOnce(&mut StateMachine, u64) -> io::Result<Option<Box<dyn HistoryStore>>>,
    ) -> io::Result<()> {
        self.history = open(&mut self.ledger, self.moved)?;
        if self.history.is_some() {
            let held_max = held_max.map(|n| n / TRANSFERS_PER_RECORD);
            self.tier = Some(Tier { held_max, epoch: 0 });
        }
        Ok(())
    }

    /// Reads back from the store the payment records `op` may touch (see `tier.rs`).
    fn prefetch_records(&mut self, op: &Op) -> io::Result<()> {
        let (Some(store), Some(tier)) = (self.history.as_deref(), &self.tier) else {
            return Ok(());
        };
        let epoch = tier.epoch;
        if self.moved == 0 {
            // Nothing left memory yet.
            return Ok(());
        }
        let horizon = self.applied;
        match *op {
            Op::Batch(ref ops) => return ops.iter().try_for_each(|op| self.prefetch_records(op)),
            Op::Keyed { key, ref op } => {
                fetch(&mut self.keys, store, epoch, key, horizon)?;
                return self.prefetch_records(op);
            }
            Op::Expire | Op::LedgerAccounts(_) | Op::LedgerTransfers(_) | Op::Webhook(_) => {
                return Ok(())
            }
            _ => {}
        }
        fetch(&mut self.outcomes, store, epoch, op_key(op), horizon)?;
        let payment = match *op {
            Op::Pay { id, coupon, .. } => {
                // A payment made holds its operation's first outcome.
                fetch(&mut self.payments, store, epoch, id, horizon)?;
                if coupon != 0 {
                    fetch(&mut self.coupons, store, epoch, coupon, horizon)?;
                }
                None
            }
            Op::Refund { payment, .. } => Some(payment),
            Op::Capture { id } | Op::Release { id } => Some(id),
            Op::BankResult { id, .. } => {
                fetch(&mut self.holds, store, epoch, id, horizon)?;
                None
            }
            Op::PayoutResult { payout, .. } => {
                fetch(&mut self.payouts, store, epoch, payout, horizon)?;
                None
            }
            _ => None,
        };
        // A refund or release may give the payment's coupon back.
        if let Some(id) = payment {
            if fetch(&mut self.payments, store, epoch, id, horizon)?.is_some() {
                let coupon = self.payments[&id].coupon;
                if coupon != 0 {
                    fetch(&mut self.coupons, store, epoch, coupon, horizon)?;
                }
            }
        }
        Ok(())
    }

    /// Moves the oldest payment records beyond the bound to the store (see `tier.rs`).
    fn evict_records(&mut self) -> io::Result<()> {
        let (Some(store), Some(tier)) = (self.history.as_deref(), &self.tier) else {
            return Ok(());
        };
        let Some(held_max) = tier.held_max else { return Ok(()) };
        let epoch = tier.epoch;
        let mut out = Leaving::default();
        let pinned = |_: &u64, p: &Payment| p.status == PaymentStatus::Authorized;
        self.payments.evict(held_max, epoch, pinned, &mut out);
        if self.coupons.len() > held_max {
            // An authorized payment's coupon comes back if its holds expire.
            let held: HashSet<u64> = self
                .authorized
                .iter()
                .filter_map(|(_, id)| self.payments.get(id).map(|p| p.coupon))
                .collect();
            self.coupons.evict(held_max, epoch, |id, _| held.contains(id), &mut out);
        }
        self.refunds.evict(held_max, epoch, |_, _| false, &mut out);
        self.outcomes.evict(held_max, epoch, |_, _| false, &mut out);
        self.keys.evict(held_max, epoch, |_, _| false, &mut out);
        self.holds.evict(held_max, epoch, |_, _| false, &mut out);
        self.payouts.evict(held_max, epoch, |_, _| false, &mut out);
        let mut entries = Vec::new();
        if self.listed > held_max {
            for (list, lists) in
                [(LIST_MERCHANT, &mut self.by_merchant), (LIST_USER, &mut self.by_user)]
            {
                for (owner, payments) in lists.drain() {
                    entries.extend(payments.into_iter().map(|(timestamp, id)| {
                        (ListEntry { list, owner, timestamp, id }, self.applied)
                    }));
                }
            }
            self.listed = 0;
        }
        if out.is_empty() && entries.is_empty() {
            return Ok(());
        }
        let records: Vec<Record<'_>> = out
            .iter()
            .map(|(table, key, payload)| Record { table, key, as_of: self.applied, payload })
            .collect();
        store.put(&records, &entries)?;
        self.moved = self.applied;
        Ok(())
    }

    /// A checkpoint holding the whole state was written: records read back before it may now
    /// be written over (see `tier.rs`).
    pub fn checkpointed(&mut self) {
        if let Some(tier) = &mut self.tier {
            tier.epoch += 1;
            self.payments.checkpointed();
            self.coupons.checkpointed();
            self.refunds.checkpointed();
            self.outcomes.checkpointed();
            self.keys.checkpointed();
            self.holds.checkpointed();
            self.payouts.checkpointed();
        }
    }

    /// Whether records read back and changed (a refunded payment, a redeemed coupon) wait in
    /// memory for a checkpoint in such numbers that one should be taken now.
    pub fn checkpoint_wanted(&self) -> bool {
        let Some(held_max) = self.tier.as_ref().and_then(|t| t.held_max) else { return false };
        let waiting = self.payments.waiting()
            + self.coupons.waiting()
            + self.refunds.waiting()
            + self.outcomes.waiting()
            + self.keys.waiting()
            + self.holds.waiting()
            + self.payouts.waiting();
        waiting > held_max / CHECKPOINT_WAITING_DIVISOR
    }

    /// A record from memory, else from the store. A store that cannot be read is a broken
    /// disk: stopping beats answering "not found" for what exists.
    pub(crate) fn stored<V: Stored + Clone>(&self, table: &Tiered<V>, key: V::Key) -> Option<V> {
        if let Some(v) = table.get(&key) {
            return Some(v.clone());
        }
        let store = self.history.as_deref().filter(|_| self.moved > 0)?;
        let mut k = Vec::with_capacity(17);
        V::key_bytes(&key, &mut k);
        let bytes = store.get(V::table(&key), &k, self.applied).expect("history store read")?;
        Some(V::decode(&bytes).expect("history store record"))
    }

    /// Calls `f` with every record of `table`: the store's not in memory, then memory's.
    pub(crate) fn for_each_stored<V: Stored>(
        &self,
        table: &Tiered<V>,
        mut f: impl FnMut(V::Key, &V),
    ) where
        V::Key: KeyBytes,
    {
        if let Some(store) = self.history.as_deref() {
            store
                .scan_records(V::TABLE, self.applied, &mut |key, bytes| {
                    let key = V::Key::from_bytes(key);
                    if !table.contains_key(&key) {
                        f(key, &V::decode(bytes).expect("history store record"));
                    }
                })
                .expect("history store read");
        }
        for (key, value) in table.iter() {
            f(*key, value);
        }
    }

    /// Appends to `page`, newest first, the store's entries of a list from before `before`.
    pub(crate) fn listed_before(
        &self,
        merchant: bool,
        party: u64,
        before: Option<(u64, u64)>,
        limit: usize,
        page: &mut Vec<(u64, u64)>,
    ) {
        let Some(store) = self.history.as_deref() else { return };
        let list = if merchant { LIST_MERCHANT } else { LIST_USER };
        store.list(list, party, before, self.applied, limit, page).expect("history store read");
    }

    /// Fetches from the store what applying `op` may need beyond memory: payment records and
    /// ledger transfers. Called before `apply`, which never reads the store.
    pub fn prefetch(&mut self, op: &Op) -> io::Result<()> {
        self.prefetch_records(op)?;
        let Some(history) = &mut self.history else { return Ok(()) };
        let known = Known { payments: &self.payments, holds: &self.holds };
        history.prefetch(&mut self.ledger, &mut |ledger, ids, timestamps| {
            cold_needs(ledger, &known, op, ids, timestamps)
        })
    }

    /// Moves what is beyond the memory bound to the store: payment records, list entries and
    /// ledger transfers. Called after a group of operations.
    pub fn evict(&mut self) -> io::Result<()> {
        self.evict_records()?;
        let Some(history) = &mut self.history else { return Ok(()) };
        let foreign = &self.foreign;
        history.evict(&mut self.ledger, &|t| foreign.contains(&t.id))
    }

    /// Makes every write to the store durable (before a checkpoint drops the journal that
    /// could rebuild it).
    pub fn persist_history(&self) -> io::Result<()> {
        self.history.as_ref().map_or(Ok(()), |h| h.persist())
    }

    /// A transfer, in memory or in the history store.
    pub fn lookup_transfer(&self, id: u128) -> io::Result<Option<Transfer>> {
        Ok(cold::lookup(&self.ledger, self.history.as_deref(), id)?.map(|c| c.transfer))
    }

    /// What became of a pending transfer, in memory or in the history store.
    pub fn pending_status(&self, id: u128) -> io::Result<Option<PendingStatus>> {
        Ok(cold::lookup(&self.ledger, self.history.as_deref(), id)?.and_then(|c| c.pending))
    }

    /// An account's transfers per `filter` (limit capped at `QUERY_LIMIT_MAX`), from the
    /// history store and memory together.
    pub fn account_transfers(&self, filter: &AccountFilter) -> io::Result<Vec<Transfer>> {
        cold::account_transfers(&self.ledger, self.history.as_deref(), filter)
    }

    /// Every transfer with its pending status, oldest first: the store's, then memory's.
    pub fn for_each_transfer(
        &self,
        f: impl FnMut(&Transfer, Option<PendingStatus>),
    ) -> io::Result<()> {
        cold::for_each_transfer(&self.ledger, self.history.as_deref(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::HoldKind;
    use crate::money::Legs;

    fn authorized(coupon: u64) -> Payment {
        Payment {
            user: 1,
            merchant: 2,
            rider: 3,
            currency: 156,
            food: 1_000,
            delivery: 200,
            coupon: u64::from(coupon > 0),
            campaign: u64::from(coupon > 0),
            channel: 1,
            legs: Legs { merchant: 900, rider: 200, platform: 100, coupon },
            refunded: Legs::default(),
            status: PaymentStatus::Authorized,
            refunds: Vec::new(),
            timestamp: 1,
            timeout_s: 60,
        }
    }

    #[test]
    fn outcomes_of_wide_ids_have_a_table_of_their_own() {
        type Outcomes = (u64, crate::command::Outcome);
        let narrow = u128::from(u64::MAX);
        assert_eq!(Outcomes::table(&(16, narrow)), Outcomes::TABLE);
        assert_eq!(Outcomes::table(&(16, narrow + 1)), crate::snapshot::WIDE_OUTCOMES_TABLE);
        assert_eq!(Outcomes::table(&(1, 7)), Outcomes::TABLE);
        assert_ne!(Outcomes::TABLE, crate::snapshot::WIDE_OUTCOMES_TABLE);
        for table in [Outcomes::TABLE, crate::snapshot::WIDE_OUTCOMES_TABLE] {
            assert_eq!(RECORD_TABLES.iter().filter(|&&t| t == table).count(), 1, "table {table}");
        }
    }

    #[test]
    fn an_operation_asks_the_store_only_for_the_holds_it_settles() {
        // An empty ledger: every id asked for would be looked up in the store.
        let ledger = StateMachine::new();
        let mut payments = Tiered::<Payment>::default();
        payments.insert(7, authorized(0));
        payments.insert(8, authorized(150));
        let mut holds = Tiered::<Hold>::default();
        let withdrawal =
            Hold { kind: HoldKind::Withdrawal, user: 1, channel: 1, currency: 156, amount: 5 };
        holds.insert(9, withdrawal);
        let known = Known { payments: &payments, holds: &holds };
        let asks = |op: Op| {
            let mut ids = Vec::new();
            cold_needs(&ledger, &known, &op, &mut ids, &mut Vec::new());
            ids
        };
        let payment = |id, leg| chart::transfer_id(OpTag::Payment, id, leg);
        assert_eq!(asks(Op::Capture { id: 7 }), [payment(7, 0)], "no coupon, no reservation");
        assert_eq!(asks(Op::Release { id: 8 }), [payment(8, 0), payment(8, 1)]);
        assert_eq!(asks(Op::Capture { id: 99 }), [], "an unknown payment settles nothing");
        let withdrawn = chart::transfer_id(OpTag::Withdrawal, 9, 0);
        assert_eq!(asks(Op::BankResult { id: 9, ok: true }), [withdrawn]);
        assert_eq!(asks(Op::BankResult { id: 10, ok: false }), []);
        let batch = Op::Batch(vec![Op::Capture { id: 7 }, Op::BankResult { id: 9, ok: true }]);
        assert_eq!(asks(batch), [payment(7, 0), withdrawn]);
    }
}
