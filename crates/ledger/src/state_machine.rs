//! The ledger state machine: applies batches of accounts and transfers to in-memory state.
//!
//! Pure: no I/O, no clock, no randomness. The caller (the engine) passes the batch timestamp;
//! event `i` of a batch of `n` gets `timestamp - n + i + 1`, so timestamps are unique and
//! increasing and replaying the same batches with the same timestamps gives the same state.

use std::collections::BTreeSet;

use hashbrown::{HashMap, HashSet};

use crate::constants::{
    AMOUNT_MAX, BATCH_EVENTS_MAX, EXPIRE_EVENTS_MAX, QUERY_LIMIT_MAX, TIMESTAMP_MAX,
};
use crate::log::{prefetch_write, IdIndex, TransferLog};
use crate::results::{CreateAccountResult, CreateTransferResult};
use crate::types::{
    Account, AccountFilter, AccountFlags, ColdTransfer, PendingStatus, Transfer, TransferFlags,
};

mod snapshot;

/// Sums of the balances of all accounts. Double entry means debits equal credits, posted and
/// pending separately; the state machine asserts it after every batch. The running sums follow
/// each account's own change (`account_changed`), and each checkpoint adds the balances up
/// afresh and compares (`write_snapshot`), which catches a balance changed without being
/// counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl Totals {
    // The sums wrap: balances of different accounts may add up past u128 (each account's own
    // balances are checked for overflow). Equality modulo 2^128 still catches a one-sided entry.

    /// Moves the sums by how one account's balances changed (`old` to `new`), each side by its
    /// own fields only: the debit sums by the account's debits, the credit sums by its credits.
    /// The code that applies a transfer moves both accounts; the sums are not told the amount,
    /// so an entry made on one side only leaves them apart and the check after the batch fails.
    #[inline]
    fn account_changed(&mut self, old: &Account, new: &Account) {
        let moved = |sum: u128, old: u128, new: u128| sum.wrapping_add(new.wrapping_sub(old));
        self.debits_pending = moved(self.debits_pending, old.debits_pending, new.debits_pending);
        self.debits_posted = moved(self.debits_posted, old.debits_posted, new.debits_posted);
        self.credits_pending =
            moved(self.credits_pending, old.credits_pending, new.credits_pending);
        self.credits_posted = moved(self.credits_posted, old.credits_posted, new.credits_posted);
    }

    /// The sums of the balances of `accounts`, added up afresh.
    fn of(accounts: &[Account]) -> Totals {
        let mut t = Totals::default();
        for a in accounts {
            t.account_changed(&Account::default(), a);
        }
        t
    }

    /// Sums of all debits equal sums of all credits, pending and posted separately.
    pub fn is_balanced(&self) -> bool {
        self.debits_pending == self.credits_pending && self.debits_posted == self.credits_posted
    }
}

/// One change made inside an open linked chain, kept so the chain can be rolled back.
#[derive(Debug)]
enum Undo {
    AccountInserted,
    AccountUpdated { index: u32, old: Account },
    TransferInserted,
    PendingChanged { index: u32, old: PendingStatus, expires_at: Option<u64> },
}

/// State saved when a linked chain opens, restored when it breaks.
#[derive(Debug)]
struct Scope {
    commit_timestamp: u64,
    totals: Totals,
    undo_len: usize,
}

/// The ledger: accounts, transfers, pending holds.
#[derive(Debug, Default)]
pub struct StateMachine {
    accounts: Vec<Account>,
    account_index: HashMap<u128, u32>,
    /// Per account (same index as `accounts`): its transfers, oldest first; positions below
    /// the log's base left memory and are dropped on the account's next transfer.
    account_transfers: Vec<Vec<u32>>,
    /// The transfers held in memory, in timestamp order; older ones are in the history store.
    transfers: TransferLog,
    /// Ids of the transfers held (in `transfers` or `pinned`) → position.
    transfer_index: IdIndex,
    /// Pending transfers that left the log while still pending, by position: they stay until
    /// posted, voided or expired, so that settling one never needs the history store.
    pinned: HashMap<u32, Transfer>,
    /// What the history store gave back for the batch about to be applied (see `cold_ids`).
    fetched: HashMap<u128, ColdTransfer>,
    /// Timestamps of transfers that left memory, found for imported accounts of the next batch.
    fetched_timestamps: HashSet<u64>,
    /// The timestamp of the newest transfer that left memory (zero while none has). Everything
    /// at or before it is in the history store; everything after it is held.
    horizon: u64,
    /// Ids of transfers that failed with a transient result: they can never be created.
    orphaned: HashSet<u128>,
    /// What became of each pending transfer, by transfer index.
    pending: HashMap<u32, PendingStatus>,
    /// Pending transfers with a timeout that are still pending: (expires_at, transfer index).
    expiry: BTreeSet<(u64, u32)>,
    totals: Totals,
    /// The timestamp of the last event applied (imports may set it into the past).
    commit_timestamp: u64,
    /// The largest batch timestamp seen: the next batch must start above it.
    prepare_timestamp: u64,
    undo: Vec<Undo>,
    scope: Option<Scope>,
}

/// The id of the transfer at `position`, held in the log or pinned.
#[inline]
fn id_at(transfers: &TransferLog, pinned: &HashMap<u32, Transfer>, position: u32) -> u128 {
    match transfers.get(position as usize) {
        Some(t) => t.id,
        None => pinned[&position].id,
    }
}

/// What `StateMachine::evict` appended: `settled` entries, then `moved` ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub settled: usize,
    pub moved: usize,
}

impl Evicted {
    pub fn total(self) -> usize {
        self.settled + self.moved
    }
}

/// Ids must not be zero or the all-ones value, which are reserved as sentinels.
#[inline]
fn id_reserved(id: u128) -> bool {
    id == 0 || id == u128::MAX
}

impl StateMachine {
    pub fn new() -> StateMachine {
        StateMachine::default()
    }

    /// A ledger whose transfers leave memory in chunks of `1 << chunk_shift` (see `evict`); the
    /// default is `CHUNK_SHIFT_DEFAULT`. Small chunks are for tests.
    pub fn with_chunk_shift(chunk_shift: u32) -> StateMachine {
        StateMachine { transfers: TransferLog::with_chunk_shift(chunk_shift), ..Default::default() }
    }

    /// The timestamp of the last event applied (zero when empty).
    pub fn commit_timestamp(&self) -> u64 {
        self.commit_timestamp
    }

    /// The smallest batch timestamp valid for a batch of `events` events now: every event's
    /// timestamp must be above every timestamp handed out before.
    pub fn timestamp_min(&self, events: usize) -> u64 {
        self.prepare_timestamp.max(self.commit_timestamp)
            + u64::try_from(events.max(1)).expect("events fit u64")
    }

    /// Running sums of all balances.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// All accounts, in creation order.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// Sets the size of the chunks in which transfers leave memory, on a ledger that has no
    /// transfer yet (see `with_chunk_shift`).
    pub fn set_chunk_shift(&mut self, chunk_shift: u32) {
        assert_eq!(self.transfers.len(), 0, "the chunk size is set before the first transfer");
        self.transfers = TransferLog::with_chunk_shift(chunk_shift);
    }

    /// The chunk size (as a power of two) that suits keeping about `held_max` transfers in
    /// memory: a quarter of it, within `1..=CHUNK_SHIFT_DEFAULT`.
    pub fn chunk_shift_for(held_max: usize) -> u32 {
        let quarter = (held_max / 4).max(2);
        quarter.ilog2().clamp(1, crate::log::CHUNK_SHIFT_DEFAULT)
    }

    /// The transfers held in memory, in timestamp order (all of them until `evict` is used).
    pub fn transfers(&self) -> &TransferLog {
        &self.transfers
    }

    /// The timestamp of the newest transfer that left memory, zero if none has: the history
    /// store is read as of this time (a record after it belongs to a future this state has not
    /// reached, as after a restart from an older checkpoint).
    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    pub fn lookup_account(&self, id: u128) -> Option<&Account> {
        self.account_index.get(&id).map(|&i| &self.accounts[i as usize])
    }

    /// A transfer held in memory (all of them until `evict` is used; then the history store
    /// has the others).
    pub fn lookup_transfer(&self, id: u128) -> Option<&Transfer> {
        self.transfer_find(id).map(|i| self.transfer(i))
    }

    /// What became of a pending transfer held in memory; `None` if `id` is not one.
    pub fn pending_status(&self, id: u128) -> Option<PendingStatus> {
        let index = self.transfer_find(id)?;
        self.pending.get(&index).copied()
    }

    /// The transfer at `position`, which must be held (in the log or pinned).
    #[inline]
    fn transfer(&self, position: u32) -> &Transfer {
        match self.transfers.get(position as usize) {
            Some(t) => t,
            None => &self.pinned[&position],
        }
    }

    /// The position of the held transfer with this id.
    #[inline]
    fn transfer_find(&self, id: u128) -> Option<u32> {
        let (transfers, pinned) = (&self.transfers, &self.pinned);
        self.transfer_index.get(id, |i| id_at(transfers, pinned, i))
    }

    /// The transfer with this id, held or fetched from the history store for this batch, with
    /// its position if held and its pending status if it is a pending transfer.
    fn transfer_any(&self, id: u128) -> Option<(Transfer, Option<u32>, Option<PendingStatus>)> {
        if let Some(i) = self.transfer_find(id) {
            return Some((*self.transfer(i), Some(i), self.pending.get(&i).copied()));
        }
        self.fetched.get(&id).map(|cold| (cold.transfer, None, cold.pending))
    }

    /// Appends a transfer whose id is not yet in the log, and indexes it.
    #[inline]
    fn transfer_push(&mut self, t: Transfer) -> u32 {
        let index = u32::try_from(self.transfers.len()).expect("transfer count fits u32");
        self.transfers.push(t);
        let (transfers, pinned) = (&self.transfers, &self.pinned);
        let replaced = self.transfer_index.insert(t.id, index, |i| id_at(transfers, pinned, i));
        debug_assert_eq!(replaced, None);
        index
    }

    /// Appends transfer `index` to account `a`'s list, first dropping the positions that left
    /// memory since (`evict` leaves them: finding each moved transfer's accounts cost two
    /// lookups in the account index, most of eviction's time; here the list is at hand).
    /// Readers skip what is still left (`get_account_transfers`).
    #[inline]
    fn account_transfer_push(&mut self, a: u32, index: u32) {
        let base = self.transfers.base();
        let list = &mut self.account_transfers[a as usize];
        if list.first().is_some_and(|&i| (i as usize) < base) {
            let gone = list.partition_point(|&i| (i as usize) < base);
            list.drain(..gone);
        }
        list.push(index);
    }

    /// The ids that applying `events` may look up and that are not held in memory: the caller
    /// looks each up in the history store and hands back what it finds with `fetched_insert`
    /// before applying the batch (prefetch, then execute). Empty while nothing has left memory.
    pub fn cold_ids(&self, events: &[Transfer], out: &mut Vec<u128>) {
        if self.horizon == 0 {
            return;
        }
        for t in events {
            for id in [t.id, t.pending_id] {
                if !id_reserved(id) && self.transfer_find(id).is_none() {
                    out.push(id);
                }
            }
        }
    }

    /// The timestamps of imported accounts in `events` that may collide with a transfer no longer
    /// held: the caller hands back those the history store has with `fetched_timestamp_insert`.
    pub fn cold_timestamps(&self, events: &[Account], out: &mut Vec<u64>) {
        out.extend(
            events
                .iter()
                .filter(|a| a.flags.contains(AccountFlags::IMPORTED))
                .map(|a| a.timestamp)
                .filter(|&ts| ts != 0 && ts <= self.horizon),
        );
    }

    /// A transfer the history store holds, for the next batch. Ignored if it is after the
    /// horizon: the store may hold a future this state has not reached.
    pub fn fetched_insert(&mut self, cold: ColdTransfer) {
        if cold.transfer.timestamp <= self.horizon && self.transfer_find(cold.transfer.id).is_none()
        {
            self.fetched.insert(cold.transfer.id, cold);
        }
    }

    /// The timestamp of a transfer the history store holds, for the next batch.
    pub fn fetched_timestamp_insert(&mut self, timestamp: u64) {
        if timestamp <= self.horizon {
            self.fetched_timestamps.insert(timestamp);
        }
    }

    /// Forgets what was fetched for the last batch.
    pub fn fetched_clear(&mut self) {
        self.fetched.clear();
        self.fetched_timestamps.clear();
    }

    /// Moves transfers out of memory, oldest chunk first, while more than `held_max` are held
    /// (the newest chunk always stays), and lets go of pinned pending transfers that have been
    /// settled since. Each transfer that leaves is appended to `out`: the caller must put them
    /// in the history store before the next batch (a transfer pinned because it was still
    /// pending appears twice: when it leaves the log, and with its final status when it leaves
    /// memory). Changes no result of any operation, given the fetches `cold_ids` asks for.
    /// Transfers for which `keep` is true stay in memory like pending ones (a caller that
    /// creates transfers whose ids it knows to be new without asking the store uses it for the
    /// few transfers that could collide with those ids). Appends to `out` first the settled
    /// transfers (already in the store once), then those leaving the log (in timestamp order,
    /// never in the store before unless a crash replays their eviction); says how many of each.
    pub fn evict(
        &mut self,
        held_max: usize,
        keep: impl Fn(&Transfer) -> bool,
        out: &mut Vec<ColdTransfer>,
    ) -> Evicted {
        assert!(self.scope.is_none(), "evict inside a batch");
        let before = out.len();
        let StateMachine { transfers, transfer_index, pinned, pending, .. } = self;
        let mut settled: Vec<u32> = pinned
            .keys()
            .filter(|&&i| pending.get(&i) != Some(&PendingStatus::Pending) && !keep(&pinned[&i]))
            .copied()
            .collect();
        settled.sort_unstable();
        for position in settled {
            let t = pinned[&position];
            let removed = transfer_index.remove(t.id, |i| id_at(transfers, pinned, i));
            debug_assert_eq!(removed, Some(position));
            pinned.remove(&position);
            let status = pending.remove(&position);
            out.push(ColdTransfer { transfer: t, pending: status });
        }
        let settled = out.len() - before;
        while transfers.held() > held_max {
            let Some(chunk) = transfers.front_full() else { break };
            let base = transfers.base();
            let mut pins = Vec::new();
            for (offset, t) in chunk.iter().enumerate() {
                // The index slot of a transfer further on: its cache miss overlaps the
                // removals before it instead of stalling its own.
                if let Some(ahead) = chunk.get(offset + EVICT_PREFETCH_AHEAD) {
                    transfer_index.prefetch(ahead.id);
                }
                let position = u32::try_from(base + offset).expect("position fits u32");
                let status = pending.get(&position).copied();
                if status == Some(PendingStatus::Pending) || keep(t) {
                    pins.push((position, *t));
                } else {
                    let removed = transfer_index.remove(t.id, |i| id_at(transfers, pinned, i));
                    debug_assert_eq!(removed, Some(position));
                    pending.remove(&position);
                }
                self.horizon = self.horizon.max(t.timestamp);
                out.push(ColdTransfer { transfer: *t, pending: status });
            }
            pinned.extend(pins);
            transfers.drop_front();
        }
        Evicted { settled, moved: out.len() - before - settled }
    }

    /// Forgets that transfer `id` failed with a transient result (after which it could never be
    /// created: `id_already_failed`). For a caller that never submits an id twice, because it
    /// keeps the outcome of each of its operations and derives transfer ids from the operation:
    /// remembering every failed id would hold memory, and checkpoint bytes, for every rejected
    /// operation forever. Every id this is not called for keeps TigerBeetle's behaviour.
    pub fn forget_failed(&mut self, id: u128) {
        assert!(self.scope.is_none(), "forget_failed inside a batch");
        self.orphaned.remove(&id);
    }

    /// The earliest time at which a pending transfer expires, if any is waiting.
    pub fn expiry_next(&self) -> Option<u64> {
        self.expiry.first().map(|&(at, _)| at)
    }

    /// The timestamp to give `expire_pending_transfers` at time `now`.
    pub fn expire_timestamp(&self, now: u64) -> u64 {
        now.max(self.timestamp_min(EXPIRE_EVENTS_MAX))
    }

    /// Whether `expire_pending_transfers(self.expire_timestamp(now))` would expire anything:
    /// the engine asks this before journaling an expiry.
    pub fn expiry_due(&self, now: u64) -> bool {
        let window = u64::try_from(EXPIRE_EVENTS_MAX).expect("fits u64");
        self.expiry_next().is_some_and(|next| next <= self.expire_timestamp(now) - window + 1)
    }

    /// Pending transfers waiting to expire.
    pub fn expiry_waiting(&self) -> usize {
        self.expiry.len()
    }

    /// Creates a batch of accounts. One result per event, in order, in `results`.
    pub fn create_accounts(
        &mut self,
        timestamp: u64,
        events: &[Account],
        results: &mut Vec<CreateAccountResult>,
    ) {
        self.execute(timestamp, events, results);
    }

    /// Creates a batch of transfers. One result per event, in order, in `results`.
    pub fn create_transfers(
        &mut self,
        timestamp: u64,
        events: &[Transfer],
        results: &mut Vec<CreateTransferResult>,
    ) {
        self.execute(timestamp, events, results);
        debug_assert_eq!(self.transfer_index.len(), self.transfers.held() + self.pinned.len());
    }

    /// Starts loading what applying the transfers of `group` will touch that is likely not in
    /// cache: the slots of the id index where their ids (and the pending ids of posts and voids)
    /// would be, their accounts, and the ends of the accounts' lists of transfers. Called a group
    /// ahead (see `PREFETCH_GROUP`), so that the loads of many events overlap and each is done
    /// before its event is applied. Only a hint: it changes nothing.
    #[inline]
    fn prefetch(&self, group: &[Transfer]) {
        // The index first, in a loop of few instructions, so that all its misses are in flight
        // at once; then the accounts, whose lookups take more instructions.
        for t in group {
            self.transfer_index.prefetch(t.id);
            if t.pending_id != 0 {
                self.transfer_index.prefetch(t.pending_id);
            }
        }
        for t in group {
            for account_id in [t.debit_account_id, t.credit_account_id] {
                if let Some(&a) = self.account_index.get(&account_id) {
                    prefetch_write(&self.accounts[a as usize]);
                    let list = &self.account_transfers[a as usize];
                    prefetch_write(list.as_ptr().wrapping_add(list.len()));
                }
            }
        }
    }

    /// The batch loop shared by accounts and transfers: timestamps, linked chains, imports.
    fn execute<E: Event>(&mut self, timestamp: u64, events: &[E], results: &mut Vec<E::Result>) {
        assert!(events.len() <= BATCH_EVENTS_MAX, "batch of {} events", events.len());
        let len = u64::try_from(events.len()).expect("batch length fits u64");
        assert!(timestamp <= TIMESTAMP_MAX);
        assert!(
            timestamp >= self.timestamp_min(events.len()),
            "batch timestamp {timestamp} does not advance past {}",
            self.prepare_timestamp
        );
        self.prepare_timestamp = timestamp;
        results.clear();
        results.reserve(events.len());

        let batch_imported = events.first().is_some_and(|e| e.imported());
        let mut chain: Option<usize> = None;
        let mut chain_broken = false;
        // Prefetching a group of events at a time, one group ahead, overlaps their cache and
        // TLB misses better than one event at a time.
        E::prefetch(self, &events[..events.len().min(PREFETCH_GROUP)]);
        for (index, event) in events.iter().enumerate() {
            if index % PREFETCH_GROUP == 0 {
                let start = events.len().min(index + PREFETCH_GROUP);
                E::prefetch(self, &events[start..events.len().min(start + PREFETCH_GROUP)]);
            }
            let timestamp_event = timestamp - len + index as u64 + 1;
            let linked = event.linked();
            let result = 'result: {
                if linked {
                    if chain.is_none() {
                        chain = Some(index);
                        debug_assert!(!chain_broken);
                        self.scope_open();
                    }
                    if index == events.len() - 1 {
                        break 'result E::LINKED_EVENT_CHAIN_OPEN;
                    }
                }
                if chain_broken {
                    break 'result E::LINKED_EVENT_FAILED;
                }
                let imported = event.imported();
                if batch_imported != imported {
                    break 'result if imported {
                        E::IMPORTED_EVENT_NOT_EXPECTED
                    } else {
                        E::IMPORTED_EVENT_EXPECTED
                    };
                }
                let event_ts = event.timestamp();
                if imported {
                    if event_ts == 0 || event_ts > TIMESTAMP_MAX {
                        break 'result E::IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE;
                    }
                    if event_ts >= timestamp {
                        break 'result E::IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE;
                    }
                } else if event_ts != 0 {
                    break 'result E::TIMESTAMP_MUST_BE_ZERO;
                }
                E::create(self, timestamp_event, event)
            };

            if result != E::CREATED {
                if let Some(chain_start) = chain {
                    if !chain_broken {
                        chain_broken = true;
                        self.scope_discard();
                        for r in &mut results[chain_start..index] {
                            *r = E::LINKED_EVENT_FAILED;
                        }
                    }
                }
                // Outside any scope, so a rolled-back chain still burns the id.
                if E::is_transient(result) {
                    self.orphaned.insert(event.id());
                }
            }
            results.push(result);

            if chain.is_some() && (!linked || result == E::LINKED_EVENT_CHAIN_OPEN) {
                if !chain_broken {
                    self.scope_persist();
                }
                chain = None;
                chain_broken = false;
            }
        }
        debug_assert!(chain.is_none() && self.scope.is_none());
        assert!(self.totals.is_balanced(), "debits and credits diverged: {:?}", self.totals);
    }

    fn scope_open(&mut self) {
        debug_assert!(self.scope.is_none());
        debug_assert!(self.undo.is_empty());
        self.scope = Some(Scope {
            commit_timestamp: self.commit_timestamp,
            totals: self.totals,
            undo_len: self.undo.len(),
        });
    }

    fn scope_persist(&mut self) {
        self.scope = None;
        self.undo.clear();
    }

    /// Rolls back every change since the scope opened, newest first.
    fn scope_discard(&mut self) {
        let scope = self.scope.take().expect("scope open");
        while self.undo.len() > scope.undo_len {
            match self.undo.pop().expect("undo entry") {
                Undo::AccountInserted => {
                    let a = self.accounts.pop().expect("inserted account");
                    self.account_index.remove(&a.id);
                    self.account_transfers.pop();
                }
                Undo::AccountUpdated { index, old } => self.accounts[index as usize] = old,
                Undo::TransferInserted => {
                    let t = *self.transfers.last().expect("inserted transfer");
                    // Removed from the index while the log still holds it (the index reads ids
                    // from the log).
                    let (transfers, pinned) = (&self.transfers, &self.pinned);
                    let removed = self.transfer_index.remove(t.id, |i| id_at(transfers, pinned, i));
                    self.transfers.pop();
                    let index = u32::try_from(self.transfers.len()).expect("transfer index");
                    debug_assert_eq!(removed, Some(index));
                    for account_id in [t.debit_account_id, t.credit_account_id] {
                        let a = self.account_index[&account_id];
                        let popped = self.account_transfers[a as usize].pop();
                        debug_assert_eq!(popped, Some(index));
                    }
                    if t.flags.contains(TransferFlags::PENDING) {
                        self.pending.remove(&index);
                        if t.timeout > 0 {
                            self.expiry.remove(&(t.timestamp + t.timeout_ns(), index));
                        }
                    }
                }
                Undo::PendingChanged { index, old, expires_at } => {
                    self.pending.insert(index, old);
                    if let Some(at) = expires_at {
                        self.expiry.insert((at, index));
                    }
                }
            }
        }
        self.commit_timestamp = scope.commit_timestamp;
        self.totals = scope.totals;
    }

    #[inline]
    fn record(&mut self, undo: Undo) {
        if self.scope.is_some() {
            self.undo.push(undo);
        }
    }

    #[inline]
    fn update_account(&mut self, index: u32, new: Account) {
        let slot = &mut self.accounts[index as usize];
        let old = *slot;
        *slot = new;
        self.totals.account_changed(&old, &new);
        self.record(Undo::AccountUpdated { index, old });
    }

    fn create_account(&mut self, timestamp_event: u64, a: &Account) -> CreateAccountResult {
        use CreateAccountResult as R;
        if a.reserved != 0 {
            return R::ReservedField;
        }
        if a.flags.has_reserved() {
            return R::ReservedFlag;
        }
        if id_reserved(a.id) {
            return if a.id == 0 { R::IdMustNotBeZero } else { R::IdMustNotBeIntMax };
        }
        if let Some(e) = self.lookup_account(a.id) {
            return account_exists(a, e);
        }
        if a.flags.contains(
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ) {
            return R::FlagsAreMutuallyExclusive;
        }
        if a.debits_pending != 0 {
            return R::DebitsPendingMustBeZero;
        }
        if a.debits_posted != 0 {
            return R::DebitsPostedMustBeZero;
        }
        if a.credits_pending != 0 {
            return R::CreditsPendingMustBeZero;
        }
        if a.credits_posted != 0 {
            return R::CreditsPostedMustBeZero;
        }
        if a.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return R::CodeMustNotBeZero;
        }
        let timestamp_actual = if a.flags.contains(AccountFlags::IMPORTED) {
            // Checked after the idempotency checks, so an import can be retried and see `exists`.
            if self.accounts.last().is_some_and(|last| a.timestamp <= last.timestamp)
                || self.transfer_at(a.timestamp)
            {
                return R::ImportedEventTimestampMustNotRegress;
            }
            a.timestamp
        } else {
            timestamp_event
        };

        let index = u32::try_from(self.accounts.len()).expect("account count fits u32");
        self.accounts.push(Account {
            debits_pending: 0,
            debits_posted: 0,
            credits_pending: 0,
            credits_posted: 0,
            reserved: 0,
            timestamp: timestamp_actual,
            ..*a
        });
        self.account_index.insert(a.id, index);
        self.account_transfers.push(Vec::new());
        self.record(Undo::AccountInserted);
        self.commit_timestamp = timestamp_actual;
        R::Created
    }

    /// Whether a transfer has exactly this timestamp (transfers are kept in timestamp order;
    /// those no longer held were fetched by `cold_timestamps`).
    fn transfer_at(&self, timestamp: u64) -> bool {
        let i = self.transfers.partition_point(|t| t.timestamp < timestamp);
        self.transfers.get(i).is_some_and(|t| t.timestamp == timestamp)
            || self.fetched_timestamps.contains(&timestamp)
    }

    /// The account with exactly this timestamp (accounts are kept in timestamp order).
    fn account_at(&self, timestamp: u64) -> Option<&Account> {
        self.accounts
            .binary_search_by_key(&timestamp, |a| a.timestamp)
            .ok()
            .map(|i| &self.accounts[i])
    }

    /// The checks shared by imported transfers and imported posts or voids.
    fn imported_timestamp_regresses(&self, timestamp: u64) -> bool {
        self.transfers.last().is_some_and(|last| timestamp <= last.timestamp)
            || self.account_at(timestamp).is_some()
    }

    fn create_transfer(&mut self, timestamp_event: u64, t: &Transfer) -> CreateTransferResult {
        use CreateTransferResult as R;
        use TransferFlags as F;
        if t.flags.has_reserved() {
            return R::ReservedFlag;
        }
        if id_reserved(t.id) {
            return if t.id == 0 { R::IdMustNotBeZero } else { R::IdMustNotBeIntMax };
        }
        if let Some(index) = self.transfer_find(t.id) {
            return self.transfer_exists(t, self.transfer(index));
        }
        if let Some(cold) = self.fetched.get(&t.id) {
            return self.transfer_exists(t, &cold.transfer);
        }
        if self.orphaned.contains(&t.id) {
            return R::IdAlreadyFailed;
        }
        if t.flags.contains(F::POST_PENDING_TRANSFER) || t.flags.contains(F::VOID_PENDING_TRANSFER)
        {
            return self.post_or_void_pending_transfer(timestamp_event, t);
        }

        if t.debit_account_id == 0 {
            return R::DebitAccountIdMustNotBeZero;
        }
        if t.debit_account_id == u128::MAX {
            return R::DebitAccountIdMustNotBeIntMax;
        }
        if t.credit_account_id == 0 {
            return R::CreditAccountIdMustNotBeZero;
        }
        if t.credit_account_id == u128::MAX {
            return R::CreditAccountIdMustNotBeIntMax;
        }
        if t.credit_account_id == t.debit_account_id {
            return R::AccountsMustBeDifferent;
        }
        if t.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        let pending = t.flags.contains(F::PENDING);
        if !pending {
            if t.timeout != 0 {
                return R::TimeoutReservedForPendingTransfer;
            }
            if t.flags.contains(F::CLOSING_DEBIT) || t.flags.contains(F::CLOSING_CREDIT) {
                return R::ClosingTransferMustBePending;
            }
        }
        if t.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if t.code == 0 {
            return R::CodeMustNotBeZero;
        }
        let Some(&dr_index) = self.account_index.get(&t.debit_account_id) else {
            return R::DebitAccountNotFound;
        };
        let Some(&cr_index) = self.account_index.get(&t.credit_account_id) else {
            return R::CreditAccountNotFound;
        };
        let dr = self.accounts[dr_index as usize];
        let cr = self.accounts[cr_index as usize];
        if dr.ledger != cr.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != dr.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }

        let timestamp_actual = if t.flags.contains(F::IMPORTED) {
            if self.imported_timestamp_regresses(t.timestamp) {
                return R::ImportedEventTimestampMustNotRegress;
            }
            if t.timestamp <= dr.timestamp {
                return R::ImportedEventTimestampMustPostdateDebitAccount;
            }
            if t.timestamp <= cr.timestamp {
                return R::ImportedEventTimestampMustPostdateCreditAccount;
            }
            if t.timeout != 0 {
                return R::ImportedEventTimeoutMustBeZero;
            }
            t.timestamp
        } else {
            timestamp_event
        };
        debug_assert!(timestamp_actual > dr.timestamp && timestamp_actual > cr.timestamp);

        if dr.flags.contains(AccountFlags::CLOSED) {
            return R::DebitAccountAlreadyClosed;
        }
        if cr.flags.contains(AccountFlags::CLOSED) {
            return R::CreditAccountAlreadyClosed;
        }

        let mut amount = t.amount;
        if t.flags.contains(F::BALANCING_DEBIT) {
            let dr_balance = dr.debits_posted + dr.debits_pending;
            amount = amount.min(dr.credits_posted.saturating_sub(dr_balance));
        }
        if t.flags.contains(F::BALANCING_CREDIT) {
            let cr_balance = cr.credits_posted + cr.credits_pending;
            amount = amount.min(cr.debits_posted.saturating_sub(cr_balance));
        }

        if pending {
            if amount.checked_add(dr.debits_pending).is_none() {
                return R::OverflowsDebitsPending;
            }
            if amount.checked_add(cr.credits_pending).is_none() {
                return R::OverflowsCreditsPending;
            }
        }
        if amount.checked_add(dr.debits_posted).is_none() {
            return R::OverflowsDebitsPosted;
        }
        if amount.checked_add(cr.credits_posted).is_none() {
            return R::OverflowsCreditsPosted;
        }
        if amount.checked_add(dr.debits_pending + dr.debits_posted).is_none() {
            return R::OverflowsDebits;
        }
        if amount.checked_add(cr.credits_pending + cr.credits_posted).is_none() {
            return R::OverflowsCredits;
        }
        if timestamp_actual.checked_add(t.timeout_ns()).is_none_or(|at| at > TIMESTAMP_MAX) {
            return R::OverflowsTimeout;
        }
        if dr.debits_exceed_credits(amount) {
            return R::ExceedsCredits;
        }
        if cr.credits_exceed_debits(amount) {
            return R::ExceedsDebits;
        }
        // From here on the transfer succeeds.
        let index = self.transfer_push(Transfer { amount, timestamp: timestamp_actual, ..*t });
        self.account_transfer_push(dr_index, index);
        self.account_transfer_push(cr_index, index);
        self.record(Undo::TransferInserted);

        let mut dr_new = dr;
        let mut cr_new = cr;
        if pending {
            dr_new.debits_pending += amount;
            cr_new.credits_pending += amount;
            self.pending.insert(index, PendingStatus::Pending);
            if t.timeout > 0 {
                self.expiry.insert((timestamp_actual + t.timeout_ns(), index));
            }
        } else {
            dr_new.debits_posted += amount;
            cr_new.credits_posted += amount;
        }
        if t.flags.contains(F::CLOSING_DEBIT) {
            dr_new.flags.set(AccountFlags::CLOSED, true);
        }
        if t.flags.contains(F::CLOSING_CREDIT) {
            cr_new.flags.set(AccountFlags::CLOSED, true);
        }
        // Written back unconditionally: cheaper than comparing 128 bytes to skip it.
        self.update_account(dr_index, dr_new);
        self.update_account(cr_index, cr_new);
        self.commit_timestamp = timestamp_actual;
        R::Created
    }

    fn transfer_exists(&self, t: &Transfer, e: &Transfer) -> CreateTransferResult {
        use CreateTransferResult as R;
        use TransferFlags as F;
        debug_assert_eq!(t.id, e.id);
        // The flags change the meaning of the other fields, so they are compared first.
        if t.flags != e.flags {
            return R::ExistsWithDifferentFlags;
        }
        if t.pending_id != e.pending_id {
            return R::ExistsWithDifferentPendingId;
        }
        if t.timeout != e.timeout {
            return R::ExistsWithDifferentTimeout;
        }
        if t.flags.contains(F::POST_PENDING_TRANSFER) || t.flags.contains(F::VOID_PENDING_TRANSFER)
        {
            let (p, _, _) =
                self.transfer_any(t.pending_id).expect("pending transfer of a post or void");
            return post_or_void_exists(t, e, &p);
        }
        if t.debit_account_id != e.debit_account_id {
            return R::ExistsWithDifferentDebitAccountId;
        }
        if t.credit_account_id != e.credit_account_id {
            return R::ExistsWithDifferentCreditAccountId;
        }
        // A balancing transfer's amount is an upper limit: any resubmission whose limit covers
        // what was moved is the same transfer.
        if t.flags.contains(F::BALANCING_DEBIT) || t.flags.contains(F::BALANCING_CREDIT) {
            if t.amount < e.amount {
                return R::ExistsWithDifferentAmount;
            }
        } else if t.amount != e.amount {
            return R::ExistsWithDifferentAmount;
        }
        if t.user_data_128 != e.user_data_128 {
            return R::ExistsWithDifferentUserData128;
        }
        if t.user_data_64 != e.user_data_64 {
            return R::ExistsWithDifferentUserData64;
        }
        if t.user_data_32 != e.user_data_32 {
            return R::ExistsWithDifferentUserData32;
        }
        if t.ledger != e.ledger {
            return R::ExistsWithDifferentLedger;
        }
        if t.code != e.code {
            return R::ExistsWithDifferentCode;
        }
        R::Exists
    }

    fn post_or_void_pending_transfer(
        &mut self,
        timestamp_event: u64,
        t: &Transfer,
    ) -> CreateTransferResult {
        use CreateTransferResult as R;
        use TransferFlags as F;
        let post = t.flags.contains(F::POST_PENDING_TRANSFER);
        let void = t.flags.contains(F::VOID_PENDING_TRANSFER);
        if post && void {
            return R::FlagsAreMutuallyExclusive;
        }
        for flag in [
            F::PENDING,
            F::BALANCING_DEBIT,
            F::BALANCING_CREDIT,
            F::CLOSING_DEBIT,
            F::CLOSING_CREDIT,
        ] {
            if t.flags.contains(flag) {
                return R::FlagsAreMutuallyExclusive;
            }
        }
        if t.pending_id == 0 {
            return R::PendingIdMustNotBeZero;
        }
        if t.pending_id == u128::MAX {
            return R::PendingIdMustNotBeIntMax;
        }
        if t.pending_id == t.id {
            return R::PendingIdMustBeDifferent;
        }
        if t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        let Some((p, p_index, p_status)) = self.transfer_any(t.pending_id) else {
            return R::PendingTransferNotFound;
        };
        if !p.flags.contains(F::PENDING) {
            return R::PendingTransferNotPending;
        }
        let dr_index = self.account_index[&p.debit_account_id];
        let cr_index = self.account_index[&p.credit_account_id];
        let dr = self.accounts[dr_index as usize];
        let cr = self.accounts[cr_index as usize];

        if t.debit_account_id > 0 && t.debit_account_id != p.debit_account_id {
            return R::PendingTransferHasDifferentDebitAccountId;
        }
        if t.credit_account_id > 0 && t.credit_account_id != p.credit_account_id {
            return R::PendingTransferHasDifferentCreditAccountId;
        }
        // user_data may differ between a pending transfer and its post or void.
        if t.ledger > 0 && t.ledger != p.ledger {
            return R::PendingTransferHasDifferentLedger;
        }
        if t.code > 0 && t.code != p.code {
            return R::PendingTransferHasDifferentCode;
        }
        let amount = if void {
            if t.amount == 0 {
                p.amount
            } else {
                t.amount
            }
        } else if t.amount == AMOUNT_MAX {
            p.amount
        } else {
            t.amount
        };
        if amount > p.amount {
            return R::ExceedsPendingTransferAmount;
        }
        if void && amount < p.amount {
            return R::PendingTransferHasDifferentAmount;
        }
        match p_status.expect("a pending transfer has a status") {
            PendingStatus::Pending => {}
            PendingStatus::Posted => return R::PendingTransferAlreadyPosted,
            PendingStatus::Voided => return R::PendingTransferAlreadyVoided,
            PendingStatus::Expired => return R::PendingTransferExpired,
        }
        let expires_at = if p.timeout == 0 {
            None
        } else {
            let at = p.timestamp + p.timeout_ns();
            if at <= timestamp_event {
                return R::PendingTransferExpired;
            }
            Some(at)
        };
        let timestamp_actual = if t.flags.contains(F::IMPORTED) {
            if self.imported_timestamp_regresses(t.timestamp) {
                return R::ImportedEventTimestampMustNotRegress;
            }
            t.timestamp
        } else {
            timestamp_event
        };
        // The only movement allowed in a closed account is voiding a pending transfer.
        if dr.flags.contains(AccountFlags::CLOSED) && !void {
            return R::DebitAccountAlreadyClosed;
        }
        if cr.flags.contains(AccountFlags::CLOSED) && !void {
            return R::CreditAccountAlreadyClosed;
        }
        // A transfer still pending is always held: only settled ones leave memory.
        let p_index = p_index.expect("a pending transfer is held until settled");
        // From here on the post or void succeeds.
        let index = self.transfer_push(Transfer {
            id: t.id,
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            amount,
            pending_id: t.pending_id,
            user_data_128: if t.user_data_128 > 0 { t.user_data_128 } else { p.user_data_128 },
            user_data_64: if t.user_data_64 > 0 { t.user_data_64 } else { p.user_data_64 },
            user_data_32: if t.user_data_32 > 0 { t.user_data_32 } else { p.user_data_32 },
            timeout: 0,
            ledger: p.ledger,
            code: p.code,
            flags: t.flags,
            timestamp: timestamp_actual,
        });
        self.account_transfer_push(dr_index, index);
        self.account_transfer_push(cr_index, index);
        self.record(Undo::TransferInserted);

        if let Some(at) = expires_at {
            let removed = self.expiry.remove(&(at, p_index));
            debug_assert!(removed);
        }
        self.pending
            .insert(p_index, if post { PendingStatus::Posted } else { PendingStatus::Voided });
        self.record(Undo::PendingChanged {
            index: p_index,
            old: PendingStatus::Pending,
            expires_at,
        });

        let mut dr_new = dr;
        let mut cr_new = cr;
        dr_new.debits_pending -= p.amount;
        cr_new.credits_pending -= p.amount;
        if post {
            // Cannot overflow: the pending amount was already counted in the sum of both.
            dr_new.debits_posted += amount;
            cr_new.credits_posted += amount;
        } else {
            // Voiding a closing transfer reopens the account.
            if p.flags.contains(F::CLOSING_DEBIT) {
                dr_new.flags.set(AccountFlags::CLOSED, false);
            }
            if p.flags.contains(F::CLOSING_CREDIT) {
                cr_new.flags.set(AccountFlags::CLOSED, false);
            }
        }
        // Written back unconditionally: cheaper than comparing 128 bytes to skip it.
        self.update_account(dr_index, dr_new);
        self.update_account(cr_index, cr_new);
        self.commit_timestamp = timestamp_actual;
        R::Created
    }

    /// Expires pending transfers whose timeout has passed at `timestamp`, oldest deadline first,
    /// at most `EXPIRE_EVENTS_MAX`. Expiry `i` of `n` happens at `timestamp - n + i + 1`; only
    /// transfers with a deadline at or before that are taken. Returns how many expired.
    pub fn expire_pending_transfers(&mut self, timestamp: u64) -> usize {
        assert!(self.scope.is_none());
        assert!(timestamp <= TIMESTAMP_MAX);
        let window = u64::try_from(EXPIRE_EVENTS_MAX).expect("fits u64");
        assert!(
            timestamp >= self.timestamp_min(EXPIRE_EVENTS_MAX),
            "expiry timestamp {timestamp} does not advance past {}",
            self.prepare_timestamp
        );
        self.prepare_timestamp = timestamp;
        // A deadline at or before the first possible event time qualifies whatever `n` is.
        let due: Vec<(u64, u32)> = self
            .expiry
            .iter()
            .take_while(|&&(at, _)| at <= timestamp - window + 1)
            .take(EXPIRE_EVENTS_MAX)
            .copied()
            .collect();
        let n = u64::try_from(due.len()).expect("fits u64");
        for (i, &(at, p_index)) in due.iter().enumerate() {
            let timestamp_event = timestamp - n + i as u64 + 1;
            debug_assert!(at <= timestamp_event);
            self.expiry.remove(&(at, p_index));
            let p = *self.transfer(p_index);
            let status = self.pending.insert(p_index, PendingStatus::Expired);
            assert_eq!(status, Some(PendingStatus::Pending));
            let dr_index = self.account_index[&p.debit_account_id];
            let cr_index = self.account_index[&p.credit_account_id];
            let mut dr = self.accounts[dr_index as usize];
            let mut cr = self.accounts[cr_index as usize];
            dr.debits_pending -= p.amount;
            cr.credits_pending -= p.amount;
            if p.flags.contains(TransferFlags::CLOSING_DEBIT) {
                dr.flags.set(AccountFlags::CLOSED, false);
            }
            if p.flags.contains(TransferFlags::CLOSING_CREDIT) {
                cr.flags.set(AccountFlags::CLOSED, false);
            }
            self.update_account(dr_index, dr);
            self.update_account(cr_index, cr);
            self.commit_timestamp = timestamp_event;
        }
        assert!(self.totals.is_balanced(), "debits and credits diverged: {:?}", self.totals);
        due.len()
    }

    /// The transfers of one account that match `filter`, oldest first (newest first when
    /// `reversed`), at most `filter.limit` (capped at `QUERY_LIMIT_MAX`).
    pub fn get_account_transfers(&self, filter: &AccountFilter, out: &mut Vec<Transfer>) {
        out.clear();
        let limit = filter.limit.min(QUERY_LIMIT_MAX) as usize;
        if !filter.is_valid() {
            return;
        }
        let Some(&account_index) = self.account_index.get(&filter.account_id) else {
            return;
        };
        let list = &self.account_transfers[account_index as usize];
        // Positions that left memory may still lead the list (see `account_transfer_push`).
        let base = self.transfers.base();
        let list = &list[list.partition_point(|&i| (i as usize) < base)..];
        // Transfer indexes are in timestamp order, so the bounds are found by binary search.
        let ts = |i: &u32| self.transfers[*i as usize].timestamp;
        let start = list.partition_point(|i| ts(i) < filter.timestamp_min);
        let end = if filter.timestamp_max == 0 {
            list.len()
        } else {
            list.partition_point(|i| ts(i) <= filter.timestamp_max)
        };
        let matches = |t: &Transfer| filter.matches(t);
        let range = list[start..end.max(start)].iter().map(|&i| &self.transfers[i as usize]);
        if filter.reversed {
            out.extend(range.rev().filter(|t| matches(t)).take(limit).copied());
        } else {
            out.extend(range.filter(|t| matches(t)).take(limit).copied());
        }
    }
}

/// `execute` prefetches what the events of the next group of this many will need while it applies
/// a group: enough for the loads of several events to be in flight, few enough that what they
/// load is still in cache when their events are applied.
const PREFETCH_GROUP: usize = 16;

/// How many transfers ahead `evict` starts loading the id index slot of a transfer it will
/// remove.
const EVICT_PREFETCH_AHEAD: usize = 16;

fn account_exists(a: &Account, e: &Account) -> CreateAccountResult {
    use CreateAccountResult as R;
    if a.flags != e.flags {
        return R::ExistsWithDifferentFlags;
    }
    if a.user_data_128 != e.user_data_128 {
        return R::ExistsWithDifferentUserData128;
    }
    if a.user_data_64 != e.user_data_64 {
        return R::ExistsWithDifferentUserData64;
    }
    if a.user_data_32 != e.user_data_32 {
        return R::ExistsWithDifferentUserData32;
    }
    if a.ledger != e.ledger {
        return R::ExistsWithDifferentLedger;
    }
    if a.code != e.code {
        return R::ExistsWithDifferentCode;
    }
    R::Exists
}

fn post_or_void_exists(t: &Transfer, e: &Transfer, p: &Transfer) -> CreateTransferResult {
    use CreateTransferResult as R;
    if t.debit_account_id != 0 && t.debit_account_id != e.debit_account_id {
        return R::ExistsWithDifferentDebitAccountId;
    }
    if t.credit_account_id != 0 && t.credit_account_id != e.credit_account_id {
        return R::ExistsWithDifferentCreditAccountId;
    }
    let amount_same = if t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
        if t.amount == 0 {
            e.amount == p.amount
        } else {
            t.amount == e.amount
        }
    } else if t.amount == AMOUNT_MAX {
        e.amount == p.amount
    } else {
        t.amount == e.amount
    };
    if !amount_same {
        return R::ExistsWithDifferentAmount;
    }
    // A zero user_data field in the post or void means "inherit the pending transfer's".
    let user_data_same = |given: u128, stored: u128, inherited: u128| {
        if given == 0 {
            stored == inherited
        } else {
            given == stored
        }
    };
    if !user_data_same(t.user_data_128, e.user_data_128, p.user_data_128) {
        return R::ExistsWithDifferentUserData128;
    }
    if !user_data_same(t.user_data_64.into(), e.user_data_64.into(), p.user_data_64.into()) {
        return R::ExistsWithDifferentUserData64;
    }
    if !user_data_same(t.user_data_32.into(), e.user_data_32.into(), p.user_data_32.into()) {
        return R::ExistsWithDifferentUserData32;
    }
    if t.ledger != 0 && t.ledger != e.ledger {
        return R::ExistsWithDifferentLedger;
    }
    if t.code != 0 && t.code != e.code {
        return R::ExistsWithDifferentCode;
    }
    R::Exists
}

/// What `execute` needs of one kind of event: the parts that differ between accounts and
/// transfers.
trait Event {
    type Result: Copy + PartialEq;
    const CREATED: Self::Result;
    const LINKED_EVENT_FAILED: Self::Result;
    const LINKED_EVENT_CHAIN_OPEN: Self::Result;
    const IMPORTED_EVENT_EXPECTED: Self::Result;
    const IMPORTED_EVENT_NOT_EXPECTED: Self::Result;
    const TIMESTAMP_MUST_BE_ZERO: Self::Result;
    const IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE: Self::Result;
    const IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE: Self::Result;
    fn id(&self) -> u128;
    fn linked(&self) -> bool;
    fn imported(&self) -> bool;
    fn timestamp(&self) -> u64;
    fn create(sm: &mut StateMachine, timestamp_event: u64, event: &Self) -> Self::Result;
    /// Starts loading what `create` will need for these events (see `StateMachine::prefetch`).
    fn prefetch(_sm: &StateMachine, _events: &[Self])
    where
        Self: Sized,
    {
    }
    fn is_transient(result: Self::Result) -> bool;
}

macro_rules! event_results {
    ($r:ident) => {
        type Result = $r;
        const CREATED: $r = $r::Created;
        const LINKED_EVENT_FAILED: $r = $r::LinkedEventFailed;
        const LINKED_EVENT_CHAIN_OPEN: $r = $r::LinkedEventChainOpen;
        const IMPORTED_EVENT_EXPECTED: $r = $r::ImportedEventExpected;
        const IMPORTED_EVENT_NOT_EXPECTED: $r = $r::ImportedEventNotExpected;
        const TIMESTAMP_MUST_BE_ZERO: $r = $r::TimestampMustBeZero;
        const IMPORTED_EVENT_TIMESTAMP_OUT_OF_RANGE: $r = $r::ImportedEventTimestampOutOfRange;
        const IMPORTED_EVENT_TIMESTAMP_MUST_NOT_ADVANCE: $r =
            $r::ImportedEventTimestampMustNotAdvance;
    };
}

impl Event for Account {
    event_results!(CreateAccountResult);
    fn id(&self) -> u128 {
        self.id
    }
    fn linked(&self) -> bool {
        self.flags.contains(AccountFlags::LINKED)
    }
    fn imported(&self) -> bool {
        self.flags.contains(AccountFlags::IMPORTED)
    }
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
    fn create(sm: &mut StateMachine, timestamp_event: u64, a: &Account) -> CreateAccountResult {
        sm.create_account(timestamp_event, a)
    }
    fn is_transient(_: CreateAccountResult) -> bool {
        // No account result depends on state that can change, so no account id is burned.
        false
    }
}

impl Event for Transfer {
    event_results!(CreateTransferResult);
    fn id(&self) -> u128 {
        self.id
    }
    fn linked(&self) -> bool {
        self.flags.contains(TransferFlags::LINKED)
    }
    fn imported(&self) -> bool {
        self.flags.contains(TransferFlags::IMPORTED)
    }
    fn timestamp(&self) -> u64 {
        self.timestamp
    }
    fn create(sm: &mut StateMachine, timestamp_event: u64, t: &Transfer) -> CreateTransferResult {
        sm.create_transfer(timestamp_event, t)
    }
    #[inline]
    fn prefetch(sm: &StateMachine, group: &[Transfer]) {
        sm.prefetch(group);
    }
    fn is_transient(result: CreateTransferResult) -> bool {
        result.is_transient()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two accounts and a transfer of 5 between them, posted, and a pending one of 3 that
    /// expires after a second.
    pub(super) fn ledger() -> StateMachine {
        let mut sm = StateMachine::new();
        let account = |id| Account { id, ledger: 1, code: 1, ..Account::default() };
        let mut results = Vec::new();
        sm.create_accounts(sm.timestamp_min(2), &[account(1), account(2)], &mut results);
        assert!(results.iter().all(|&r| r == CreateAccountResult::Created));
        let transfer = |id, amount, flags, timeout| Transfer {
            id,
            debit_account_id: 1,
            credit_account_id: 2,
            amount,
            ledger: 1,
            code: 1,
            flags,
            timeout,
            ..Transfer::default()
        };
        let transfers = [
            transfer(10, 5, TransferFlags::default(), 0),
            transfer(11, 3, TransferFlags::PENDING, 1),
        ];
        let mut results = Vec::new();
        sm.create_transfers(sm.timestamp_min(2), &transfers, &mut results);
        assert!(results.iter().all(|&r| r == CreateTransferResult::Created));
        sm
    }

    /// Credits account `id` with `amount` more posted credits and no matching debit, as a
    /// faulty change of the balances would: through the path every change takes, so the
    /// running sums see it.
    fn credit_one_side(sm: &mut StateMachine, id: u128, amount: u128) {
        let index = sm.account_index[&id];
        let mut a = sm.accounts[index as usize];
        a.credits_posted += amount;
        sm.update_account(index, a);
    }

    pub(super) fn empty_batch(sm: &mut StateMachine) {
        let mut results = Vec::new();
        sm.create_transfers(sm.timestamp_min(1), &[], &mut results);
    }

    #[test]
    fn a_balanced_ledger_passes_every_check() {
        let mut sm = ledger();
        empty_batch(&mut sm);
        assert_eq!(sm.expire_pending_transfers(sm.timestamp_min(EXPIRE_EVENTS_MAX) + NS), 1);
        let mut bytes = Vec::new();
        sm.write_snapshot(&mut bytes).unwrap();
        let back = StateMachine::read_snapshot(&mut &bytes[..]).unwrap();
        assert_eq!(back.totals(), sm.totals());
        assert_eq!(sm.totals().debits_posted, 5);
        assert_eq!(sm.totals().debits_pending, 0);
    }

    const NS: u64 = crate::constants::NS_PER_S;

    #[test]
    #[should_panic(expected = "debits and credits diverged")]
    fn a_one_sided_entry_stops_the_next_batch() {
        let mut sm = ledger();
        credit_one_side(&mut sm, 2, 1);
        empty_batch(&mut sm);
    }

    #[test]
    #[should_panic(expected = "debits and credits diverged")]
    fn a_one_sided_entry_stops_the_next_expiry() {
        let mut sm = ledger();
        credit_one_side(&mut sm, 2, 1);
        sm.expire_pending_transfers(sm.timestamp_min(EXPIRE_EVENTS_MAX) + NS);
    }
}
