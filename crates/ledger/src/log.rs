//! Storage for the ledger's transfers and id index that never moves or rehashes everything at
//! once: growth happens one chunk or one shard at a time, so no batch waits for a copy of the
//! whole history (a single `Vec` of 10 million transfers would copy 1.3 GB when it grows).
//!
//! The id index is on the hot path of every transfer (is the id new? then add it), and with
//! millions of random ids it is far larger than any cache, so it is built for few cache misses:
//! 8-byte slots that keep a hash and the transfer's index but not the id (read from the log when
//! the hash matches), a probe that starts at a cache line and usually ends in it, and `prefetch`
//! so that the state machine can load the lines of the next events while it applies these.

use std::hash::BuildHasher;

use crate::types::Transfer;

/// Transfers per chunk (as a power of two): 8 MiB of transfers. Chunks are also the unit in which
/// old transfers leave memory for the history store.
pub const CHUNK_SHIFT_DEFAULT: u32 = 16;

/// An append-only list of transfers in chunks, whose oldest chunks can be dropped once the
/// history store holds them. A transfer keeps its position (its index since the first transfer
/// ever) for life; positions below `base` are no longer held.
#[derive(Debug)]
pub struct TransferLog {
    chunks: std::collections::VecDeque<Vec<Transfer>>,
    chunk_shift: u32,
    /// Transfers dropped from the front (a whole number of chunks).
    base: usize,
    len: usize,
}

impl Default for TransferLog {
    fn default() -> Self {
        TransferLog::with_chunk_shift(CHUNK_SHIFT_DEFAULT)
    }
}

impl TransferLog {
    pub fn with_chunk_shift(chunk_shift: u32) -> TransferLog {
        assert!((1..=24).contains(&chunk_shift), "chunk shift {chunk_shift}");
        TransferLog { chunks: Default::default(), chunk_shift, base: 0, len: 0 }
    }

    /// An empty log whose first transfer will have position `base` (a whole number of chunks):
    /// the transfers before it are in the history store.
    pub(crate) fn starting_at(chunk_shift: u32, base: usize) -> TransferLog {
        let mut log = TransferLog::with_chunk_shift(chunk_shift);
        assert!(base.is_multiple_of(log.chunk_len()));
        log.base = base;
        log.len = base;
        log
    }

    /// Transfers per chunk.
    pub fn chunk_len(&self) -> usize {
        1 << self.chunk_shift
    }

    /// The position the next transfer will have: all transfers ever appended.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The position of the oldest transfer still held.
    pub fn base(&self) -> usize {
        self.base
    }

    /// How many transfers are held in memory.
    pub fn held(&self) -> usize {
        self.len - self.base
    }

    #[inline]
    pub fn get(&self, position: usize) -> Option<&Transfer> {
        let offset = position.checked_sub(self.base)?;
        self.chunks.get(offset >> self.chunk_shift)?.get(offset & (self.chunk_len() - 1))
    }

    pub fn last(&self) -> Option<&Transfer> {
        self.chunks.back()?.last()
    }

    pub(crate) fn push(&mut self, t: Transfer) {
        if (self.len - self.base).trailing_zeros() >= self.chunk_shift {
            self.chunks.push_back(Vec::with_capacity(self.chunk_len()));
        }
        self.chunks.back_mut().expect("chunk").push(t);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<Transfer> {
        let t = self.chunks.back_mut()?.pop()?;
        if self.chunks.back().is_some_and(Vec::is_empty) {
            self.chunks.pop_back();
        }
        self.len -= 1;
        Some(t)
    }

    /// The oldest chunk, if it is full and not the only one: what `drop_front` would drop.
    pub(crate) fn front_full(&self) -> Option<&[Transfer]> {
        (self.chunks.len() > 1).then(|| self.chunks[0].as_slice())
    }

    /// Drops the oldest chunk (see `front_full`).
    pub(crate) fn drop_front(&mut self) {
        assert!(self.chunks.len() > 1);
        let chunk = self.chunks.pop_front().expect("chunk");
        debug_assert_eq!(chunk.len(), self.chunk_len());
        self.base += chunk.len();
    }

    /// The transfers held, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Transfer> + '_ {
        self.chunks.iter().flatten()
    }

    pub fn to_vec(&self) -> Vec<Transfer> {
        self.iter().copied().collect()
    }

    /// The first position for which `before` is false among the transfers held (`before` must
    /// be true, then false); `base()` if it is false for all of them.
    pub fn partition_point(&self, mut before: impl FnMut(&Transfer) -> bool) -> usize {
        let (mut low, mut high) = (self.base, self.len);
        while low < high {
            let mid = low + (high - low) / 2;
            if before(&self[mid]) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }
}

impl std::ops::Index<usize> for TransferLog {
    type Output = Transfer;
    #[inline]
    fn index(&self, position: usize) -> &Transfer {
        let offset = position - self.base;
        &self.chunks[offset >> self.chunk_shift][offset & (self.chunk_len() - 1)]
    }
}

/// Asks the processor to start loading the cache lines of the value at `value` (which need not
/// be valid: nothing is read), so that a later read finds them in cache. Only a hint: it changes
/// nothing the program can observe.
#[inline(always)]
pub(crate) fn prefetch<T>(value: *const T) {
    prefetch_lines::<false>(value.cast(), size_of::<T>());
}

/// As `prefetch`, for a value about to be written: the lines are fetched ready for writing.
#[inline(always)]
pub(crate) fn prefetch_write<T>(value: *const T) {
    prefetch_lines::<true>(value.cast(), size_of::<T>());
}

/// Prefetches each cache line that `size` bytes from `first` span.
#[inline(always)]
fn prefetch_lines<const WRITE: bool>(first: *const u8, size: usize) {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse"))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        let misalignment = first as usize % 64;
        let start = first.wrapping_sub(misalignment);
        for line in 0..(misalignment + size.max(1)).div_ceil(64) {
            let line = start.wrapping_add(line * 64).cast::<i8>();
            // SAFETY: `_mm_prefetch` requires only the `sse` target feature, and this is
            // compiled only when it is enabled (it is part of the x86_64 baseline). A prefetch
            // neither reads nor writes memory as the program sees it, and never faults whatever
            // the address.
            unsafe {
                if WRITE {
                    _mm_prefetch::<_MM_HINT_ET0>(line);
                } else {
                    _mm_prefetch::<_MM_HINT_T0>(line);
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse")))]
    let _ = (first, size);
}

/// Shards of the id index. Each grows on its own, and at a load that differs from shard to shard
/// (see `load_of_shard`), so growth is spread evenly over time: one shard, 1/1024 of the index,
/// is rehashed at a time, never the whole index.
const SHARD_BITS: u32 = 10;
const SHARDS: usize = 1 << SHARD_BITS;

/// Slots per bucket: one 64-byte cache line.
const BUCKET_SLOTS: usize = 8;

/// The highest load (entries per slot) of a shard, in 1/65536. Shards grow at loads between half
/// of it and all of it, so their loads average about 0.72 of it (0.5: 16 bytes per id). A lookup
/// of an absent id reads one cache line, and a second one (the next) in about 9% of lookups at
/// this load; 43% at a load of 0.8.
const LOAD_MAX: u32 = 45_875; // 0.7

/// The load at which shard `shard` grows, in 1/65536: from `LOAD_MAX` down to half of it, evenly
/// spaced in log scale, so that as the index doubles the shards grow one after the other.
fn load_of_shard(shard: usize) -> u32 {
    let fraction = shard as f64 / SHARDS as f64;
    (f64::from(LOAD_MAX) * (-fraction).exp2()) as u32
}

/// One cache line of slots. A slot is `tag << 32 | index`, or zero when empty; the tag is 32 bits
/// of the id's hash with the lowest bit set, so an occupied slot is never zero.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket([u64; BUCKET_SLOTS]);

const BUCKET_EMPTY: Bucket = Bucket([0; BUCKET_SLOTS]);

/// The open-addressing table (linear probing) of one shard.
///
/// An entry's home is the first slot of the bucket given by the top bits of its tag, so a probe
/// starts at a cache line boundary and most probes end within that one line. An entry is placed
/// at the first empty slot from its home on and removed by shifting the entries after it back
/// (no tombstones), so a probe stops at the first empty slot. Homes depend only on the tag, so
/// growing never needs the ids themselves.
struct Shard {
    buckets: Box<[Bucket]>,
    /// Entries held.
    len: u32,
    /// The table grows before an insert when it holds this many entries. Always below the number
    /// of slots, so there is always an empty slot to end a probe.
    grow_at: u32,
    /// The load at which this shard grows, in 1/65536.
    load: u32,
}

impl Shard {
    fn new(load: u32) -> Shard {
        let mut shard = Shard { buckets: Box::new([]), len: 0, grow_at: 0, load };
        shard.rehash(1);
        shard
    }

    #[inline]
    fn slots(&self) -> usize {
        self.buckets.len() * BUCKET_SLOTS
    }

    /// The first slot of the home bucket of an entry with this tag.
    #[inline]
    fn home(&self, tag: u32) -> usize {
        // The top bits of the tag (the number of buckets is a power of two below 2^32).
        ((u64::from(tag) * self.buckets.len() as u64) >> 32) as usize * BUCKET_SLOTS
    }

    #[inline]
    fn slot(&self, position: usize) -> u64 {
        self.buckets[position / BUCKET_SLOTS].0[position % BUCKET_SLOTS]
    }

    #[inline]
    fn set(&mut self, position: usize, slot: u64) {
        self.buckets[position / BUCKET_SLOTS].0[position % BUCKET_SLOTS] = slot;
    }

    /// The position of the entry for `id`, or else the empty slot that ends its probe.
    #[inline]
    fn find(&self, id: u128, tag: u32, key_of: impl Fn(u32) -> u128) -> Result<usize, usize> {
        let mask = self.slots() - 1;
        let mut position = self.home(tag);
        loop {
            let slot = self.slot(position);
            if slot == 0 {
                return Err(position);
            }
            if (slot >> 32) as u32 == tag && key_of(slot as u32) == id {
                return Ok(position);
            }
            position = (position + 1) & mask;
        }
    }

    #[inline]
    fn insert(
        &mut self,
        id: u128,
        tag: u32,
        index: u32,
        key_of: impl Fn(u32) -> u128,
    ) -> Option<u32> {
        if self.len >= self.grow_at {
            self.grow();
        }
        let slot = u64::from(tag) << 32 | u64::from(index);
        match self.find(id, tag, key_of) {
            Ok(position) => {
                let old = self.slot(position) as u32;
                self.set(position, slot);
                Some(old)
            }
            Err(position) => {
                self.set(position, slot);
                self.len += 1;
                None
            }
        }
    }

    fn remove(&mut self, id: u128, tag: u32, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let position = self.find(id, tag, key_of).ok()?;
        let index = self.slot(position) as u32;
        self.delete(position);
        Some(index)
    }

    /// Puts `slot` in the first empty slot from its home on, without looking for its id.
    fn place(&mut self, slot: u64) {
        let mask = self.slots() - 1;
        let mut position = self.home((slot >> 32) as u32);
        while self.slot(position) != 0 {
            position = (position + 1) & mask;
        }
        self.set(position, slot);
    }

    /// Empties `hole` and shifts back each later entry of its run whose probe passes the hole.
    fn delete(&mut self, mut hole: usize) {
        let mask = self.slots() - 1;
        let mut position = hole;
        loop {
            position = (position + 1) & mask;
            let slot = self.slot(position);
            if slot == 0 {
                break;
            }
            let home = self.home((slot >> 32) as u32);
            // Distances along the probe, wrapping at the end of the table.
            if position.wrapping_sub(home) & mask >= position.wrapping_sub(hole) & mask {
                self.set(hole, slot);
                hole = position;
            }
        }
        self.set(hole, 0);
        self.len -= 1;
    }

    /// Moves every entry into a new table of `buckets` buckets (a power of two).
    fn rehash(&mut self, buckets: usize) {
        assert!(buckets.is_power_of_two() && (buckets as u64) < 1 << 32, "{buckets} buckets");
        let old = std::mem::replace(&mut self.buckets, vec![BUCKET_EMPTY; buckets].into());
        let grow_at = (self.slots() as u64 * u64::from(self.load)) >> 16;
        self.grow_at = u32::try_from(grow_at.min(self.slots() as u64 - 1)).unwrap_or(u32::MAX);
        assert!(self.len < self.grow_at, "{} entries in {} slots", self.len, self.slots());
        for bucket in old.iter() {
            for &slot in &bucket.0 {
                if slot != 0 {
                    self.place(slot);
                }
            }
        }
    }

    fn grow(&mut self) {
        self.rehash(self.buckets.len() * 2);
    }
}

/// A map from transfer id to the transfer's index in the log.
///
/// It keeps no ids: a slot holds 32 bits of the id's hash and the index (8 bytes, a quarter of a
/// `HashMap<u128, u32>` entry), and a candidate whose hash bits match is confirmed by reading its
/// id through `key_of` (in the ledger: the transfer at that index in the log). An id that is not
/// present, the common case, is settled by one cache line, which `prefetch` can load ahead.
/// Every method that compares ids takes `key_of`, which must give the id of each index held.
pub struct IdIndex {
    shards: Box<[Shard]>,
    seeds: [u64; 2],
    len: usize,
}

impl Default for IdIndex {
    fn default() -> Self {
        // Random seeds, as a `HashMap` has, so that ids cannot be chosen to collide.
        let random = hashbrown::DefaultHashBuilder::default();
        IdIndex::with_seeds([random.hash_one(1u64), random.hash_one(2u64)])
    }
}

impl std::fmt::Debug for IdIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let slots: usize = self.shards.iter().map(Shard::slots).sum();
        f.debug_struct("IdIndex").field("len", &self.len).field("slots", &slots).finish()
    }
}

impl IdIndex {
    fn with_seeds(seeds: [u64; 2]) -> IdIndex {
        IdIndex {
            shards: (0..SHARDS).map(|s| Shard::new(load_of_shard(s))).collect(),
            seeds,
            len: 0,
        }
    }

    /// The shard of `id` and its tag.
    #[inline]
    fn locate(&self, id: u128) -> (usize, u32) {
        // A folded multiply (as in foldhash): the 128-bit product of the halves, each mixed with
        // a seed, folded to 64 bits. The top bits pick the shard, the low 32 bits are the tag.
        let product =
            u128::from(id as u64 ^ self.seeds[0]) * u128::from((id >> 64) as u64 ^ self.seeds[1]);
        let hash = product as u64 ^ (product >> 64) as u64;
        ((hash >> (64 - SHARD_BITS)) as usize, hash as u32 | 1)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn get(&self, id: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let (shard, tag) = self.locate(id);
        let shard = &self.shards[shard];
        shard.find(id, tag, key_of).ok().map(|position| shard.slot(position) as u32)
    }

    /// Maps `id` to `index`; returns the index it replaced, if `id` was present.
    #[inline]
    pub fn insert(&mut self, id: u128, index: u32, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let (shard, tag) = self.locate(id);
        let old = self.shards[shard].insert(id, tag, index, key_of);
        self.len += usize::from(old.is_none());
        old
    }

    /// Removes `id`; returns its index, if it was present.
    pub fn remove(&mut self, id: u128, key_of: impl Fn(u32) -> u128) -> Option<u32> {
        let (shard, tag) = self.locate(id);
        let index = self.shards[shard].remove(id, tag, key_of)?;
        self.len -= 1;
        Some(index)
    }

    /// Starts loading the cache line where a lookup of `id` begins.
    #[inline]
    pub fn prefetch(&self, id: u128) {
        let (shard, tag) = self.locate(id);
        let shard = &self.shards[shard];
        prefetch(&shard.buckets[shard.home(tag) / BUCKET_SLOTS]);
    }

    /// Makes room for `additional` more ids (spread evenly over the shards) without growing.
    pub fn reserve(&mut self, additional: usize) {
        let per_shard = (self.len + additional) / SHARDS;
        // Room for the uneven spread of ids over shards: six standard deviations.
        let per_shard = per_shard + 6 * per_shard.isqrt() + 16;
        for shard in self.shards.iter_mut() {
            let needed = per_shard as u64 * 65_536 / u64::from(shard.load) + 1;
            let buckets = (needed as usize).div_ceil(BUCKET_SLOTS).next_power_of_two();
            if buckets > shard.buckets.len() {
                shard.rehash(buckets);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_spans_chunks_and_pops_back() {
        let mut log = TransferLog::with_chunk_shift(3);
        let chunk = log.chunk_len();
        for i in 0..(chunk * 2 + 5) {
            log.push(Transfer { id: i as u128, timestamp: i as u64 * 2, ..Transfer::default() });
        }
        assert_eq!(log.len(), chunk * 2 + 5);
        assert_eq!(log[chunk + 1].id, (chunk + 1) as u128);
        assert_eq!(log.partition_point(|t| t.timestamp < 2 * chunk as u64 + 1), chunk + 1);
        for _ in 0..6 {
            log.pop();
        }
        assert_eq!(log.len(), chunk * 2 - 1);
        assert_eq!(log.last().unwrap().id, (chunk * 2 - 2) as u128);
        assert_eq!(log.iter().count(), log.len());
    }

    #[test]
    fn log_drops_whole_chunks_from_the_front_and_keeps_positions() {
        let mut log = TransferLog::with_chunk_shift(2);
        for i in 0..10u64 {
            log.push(Transfer { id: u128::from(i) + 1, timestamp: i + 1, ..Transfer::default() });
        }
        assert_eq!(log.front_full().map(<[Transfer]>::len), Some(4));
        log.drop_front();
        log.drop_front();
        assert_eq!((log.base(), log.len(), log.held()), (8, 10, 2));
        // The last chunk is never dropped.
        assert!(log.front_full().is_none());
        assert!(log.get(7).is_none());
        assert_eq!(log[8].id, 9);
        assert_eq!(log.partition_point(|t| t.timestamp < 10), 9);
        assert_eq!(log.partition_point(|t| t.timestamp < 1), 8);
        for i in 10..13u64 {
            log.push(Transfer { id: u128::from(i) + 1, timestamp: i + 1, ..Transfer::default() });
        }
        assert_eq!(log[12].id, 13);
        assert_eq!(log.iter().map(|t| t.id).collect::<Vec<_>>(), [9, 10, 11, 12, 13]);
    }

    /// Ids and the "log" they are read from: index `i` holds `ids[i]`.
    #[derive(Default)]
    struct Ids {
        index: IdIndex,
        ids: Vec<u128>,
    }

    impl Ids {
        fn with_seeds(seeds: [u64; 2]) -> Ids {
            Ids { index: IdIndex::with_seeds(seeds), ids: Vec::new() }
        }
        fn get(&self, id: u128) -> Option<u32> {
            self.index.get(id, |i| self.ids[i as usize])
        }
        /// Appends `id` to the log and maps it to its index there.
        fn insert(&mut self, id: u128) -> Option<u32> {
            self.ids.push(id);
            let index = u32::try_from(self.ids.len() - 1).unwrap();
            self.index.insert(id, index, |i| self.ids[i as usize])
        }
        fn remove(&mut self, id: u128) -> Option<u32> {
            self.index.remove(id, |i| self.ids[i as usize])
        }
    }

    /// xorshift64*: the tests draw from a fixed sequence.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn id(&mut self) -> u128 {
            (u128::from(self.next()) << 64 | u128::from(self.next())).clamp(1, u128::MAX - 1)
        }
    }

    fn slots(index: &IdIndex) -> usize {
        index.shards.iter().map(Shard::slots).sum()
    }

    #[test]
    fn prefetch_is_only_a_hint() {
        // Any address, valid or not, aligned or not: nothing is read, nothing faults.
        let values = [7u64; 40];
        let before = values;
        prefetch(&values);
        prefetch_write(&values);
        for i in 0..values.len() {
            prefetch(&values[i]);
            prefetch_write(values.as_ptr().wrapping_add(i + 1));
        }
        prefetch(std::ptr::null::<[u8; 200]>());
        prefetch_write(std::ptr::null::<u32>());
        prefetch((usize::MAX - 200) as *const [u8; 300]);
        prefetch_write((usize::MAX - 10) as *const u64);
        prefetch(std::ptr::dangling::<()>());
        assert_eq!(values, before);
    }

    #[test]
    fn index_finds_what_it_holds() {
        let mut ids = Ids::default();
        for id in [1u128, 2, u128::MAX - 1, 1 << 64, 12345 << 70] {
            let index = ids.ids.len() as u32;
            assert_eq!(ids.insert(id), None);
            assert_eq!(ids.get(id), Some(index));
        }
        assert_eq!(ids.remove(2), Some(1));
        assert_eq!(ids.get(2), None);
        assert_eq!(ids.remove(2), None);
        assert_eq!(ids.get(1), Some(0));
        assert_eq!(ids.index.len(), 4);
        // Inserting a present id replaces its index, as in a map.
        assert_eq!(ids.insert(1), Some(0));
        assert_eq!(ids.get(1), Some(5));
        assert_eq!(ids.index.len(), 4);
    }

    #[test]
    fn index_grows_one_shard_at_a_time_and_keeps_everything() {
        let mut ids = Ids::default();
        let mut rng = Rng(7);
        let mut slots_before = slots(&ids.index);
        for n in 0..300_000u32 {
            // Half sequential, half random ids.
            let id = if n % 2 == 0 { u128::from(n) + 1 } else { rng.id() };
            assert_eq!(ids.insert(id), None);
            let slots_now = slots(&ids.index);
            if slots_now != slots_before {
                // One shard doubled, and it is a small part of the index (shards differ in size
                // by up to about twice, as their loads do).
                assert!(slots_now - slots_before <= 3 * slots_before / SHARDS + 64);
                slots_before = slots_now;
            }
        }
        assert_eq!(ids.index.len(), 300_000);
        for (index, &id) in ids.ids.iter().enumerate() {
            assert_eq!(ids.get(id), Some(index as u32));
        }
        let mut rng = Rng(8);
        for _ in 0..10_000 {
            assert_eq!(ids.get(rng.id()), None);
        }
        // Loads stay within bounds: the index is neither too full nor too sparse.
        let load = 300_000.0 / slots(&ids.index) as f64;
        assert!((0.3..0.8).contains(&load), "load {load}");
        for shard in ids.index.shards.iter() {
            assert!(shard.len <= shard.grow_at && (shard.grow_at as usize) < shard.slots());
        }
    }

    #[test]
    fn growth_is_spread_over_time() {
        // While the index doubles, each shard grows once, one at a time, not all at once.
        let mut ids = Ids::default();
        let mut rng = Rng(9);
        for _ in 0..100_000 {
            ids.insert(rng.id());
        }
        let buckets = |ids: &Ids| ids.index.shards.iter().map(|s| s.buckets.len()).sum::<usize>();
        let mut growths_per_8190 = Vec::new();
        let mut before = buckets(&ids);
        for _ in 0..(100_000 / 8190 + 1) {
            for _ in 0..8190 {
                ids.insert(rng.id());
            }
            let now = buckets(&ids);
            growths_per_8190.push(now - before);
            before = now;
        }
        let total: usize = growths_per_8190.iter().sum();
        let most = *growths_per_8190.iter().max().unwrap();
        assert!(most <= total / 4, "growth by batch {growths_per_8190:?}");
    }

    #[test]
    fn removing_the_newest_ids_undoes_their_inserts() {
        // As a broken linked chain does: insert, then remove newest first.
        let mut ids = Ids::default();
        let mut rng = Rng(10);
        for _ in 0..50_000 {
            ids.insert(rng.id());
        }
        for round in 0..200 {
            let kept = ids.ids.len();
            for _ in 0..(round % 40 + 1) {
                assert_eq!(ids.insert(rng.id()), None);
            }
            while ids.ids.len() > kept {
                let id = *ids.ids.last().unwrap();
                assert_eq!(ids.remove(id), Some(ids.ids.len() as u32 - 1));
                ids.ids.pop();
                assert_eq!(ids.get(id), None);
            }
            assert_eq!(ids.index.len(), kept);
        }
        for (index, &id) in ids.ids.iter().enumerate() {
            assert_eq!(ids.get(id), Some(index as u32));
        }
    }

    /// Ids of shard 0 whose home is the last bucket of any table of up to 16 buckets, so their
    /// probes run past the end of the table and wrap around.
    fn colliding_ids(index: &IdIndex, count: usize) -> Vec<u128> {
        let mut rng = Rng(11);
        let mut out = Vec::new();
        while out.len() < count {
            let id = rng.id();
            let (shard, tag) = index.locate(id);
            if shard == 0 && tag >= 0xF000_0000 {
                out.push(id);
            }
        }
        out
    }

    #[test]
    fn collisions_wrap_around_and_survive_removal() {
        let mut ids = Ids::with_seeds([3, 4]);
        let colliding = colliding_ids(&ids.index, 60);
        for &id in &colliding {
            assert_eq!(ids.insert(id), None);
        }
        assert_eq!(ids.index.shards[0].len, 60);
        assert!(ids.index.shards[0].buckets.len() <= 16);
        for (index, &id) in colliding.iter().enumerate() {
            assert_eq!(ids.get(id), Some(index as u32));
        }
        // Remove in an order that shifts entries back across the end of the table.
        let mut present: Vec<(u128, u32)> =
            colliding.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        let mut rng = Rng(12);
        while !present.is_empty() {
            let (id, index) = present.swap_remove(rng.next() as usize % present.len());
            assert_eq!(ids.remove(id), Some(index));
            assert_eq!(ids.get(id), None);
            for &(id, index) in &present {
                assert_eq!(ids.get(id), Some(index));
            }
        }
        assert_eq!(ids.index.len(), 0);
    }

    #[test]
    fn equal_tags_are_told_apart_by_their_ids() {
        // Every entry has the same tag: only the ids (read through `key_of`) tell them apart.
        let keys: Vec<u128> = (0..40).map(|i| 1000 + i).collect();
        let key_of = |i: u32| keys[i as usize];
        let mut shard = Shard::new(LOAD_MAX);
        let tag = u32::MAX;
        for (i, &id) in keys.iter().enumerate() {
            assert_eq!(shard.find(id, tag, key_of), Err(shard.find(id, tag, key_of).unwrap_err()));
            assert_eq!(shard.insert(id, tag, i as u32, key_of), None);
        }
        for (i, &id) in keys.iter().enumerate() {
            assert_eq!(shard.find(id, tag, key_of).map(|p| shard.slot(p) as u32), Ok(i as u32));
        }
        assert_eq!(shard.remove(1010, tag, key_of), Some(10));
        assert!(shard.find(1010, tag, key_of).is_err());
        assert!(shard.find(5000, tag, key_of).is_err());
        for (i, &id) in keys.iter().enumerate().filter(|&(i, _)| i != 10) {
            assert_eq!(shard.find(id, tag, key_of).map(|p| shard.slot(p) as u32), Ok(i as u32));
        }
        assert_eq!(shard.len, 39);
    }

    #[test]
    fn reserve_makes_room_without_growing() {
        let mut ids = Ids::default();
        ids.index.reserve(200_000);
        let slots_reserved = slots(&ids.index);
        let mut rng = Rng(13);
        for _ in 0..200_000 {
            ids.insert(rng.id());
        }
        assert_eq!(slots(&ids.index), slots_reserved);
        for (index, &id) in ids.ids.iter().enumerate() {
            assert_eq!(ids.get(id), Some(index as u32));
        }
    }

    #[test]
    fn index_behaves_as_a_hash_map() {
        // Random inserts, replacements, removals and lookups from a small pool of ids (so that
        // ids come back), some of them crowded into one shard, against std's HashMap.
        for seed in 1..=4u64 {
            let mut ids = Ids::with_seeds([seed, seed * 31]);
            let mut model: std::collections::HashMap<u128, u32> = Default::default();
            let mut rng = Rng(seed);
            let mut pool: Vec<u128> = (0..3_000).map(|_| rng.id()).collect();
            pool.extend(colliding_ids(&ids.index, 100));
            pool.extend(1..=1_000u128);
            for _ in 0..200_000 {
                let id = pool[rng.next() as usize % pool.len()];
                match rng.next() % 8 {
                    0..=2 => {
                        let index = ids.ids.len() as u32;
                        assert_eq!(ids.insert(id), model.insert(id, index));
                    }
                    3..=4 => assert_eq!(ids.remove(id), model.remove(&id)),
                    _ => assert_eq!(ids.get(id), model.get(&id).copied()),
                }
                assert_eq!(ids.index.len(), model.len());
            }
            for &id in &pool {
                assert_eq!(ids.get(id), model.get(&id).copied());
            }
        }
    }
}
