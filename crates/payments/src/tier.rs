//! The payment tables that grow with every payment (payments, coupons, refunds, outcomes,
//! idempotency keys, top-ups and withdrawals, payouts), with a bound on what stays in memory: the rest is in the history store
//! (`crate::store::HistoryStore`), read back before an operation that needs it.
//!
//! Rules that keep a restart from an older checkpoint exact (each store record carries the
//! journal position it was written at, and reads ignore positions beyond the machine's own):
//! - an entry created in memory is written when it leaves memory;
//! - an entry read back from the store and left unchanged is dropped without a write;
//! - an entry read back and changed is written only once two checkpoints have been taken since
//!   it was read (a restart starts from the newest checkpoint, or from the one before it when
//!   the newest is damaged: both then hold it in memory, so no restart can need the record it
//!   overwrites); until then it stays in memory;
//! - what the machine needs to keep (an authorized payment, a coupon held by one) never leaves.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::io;

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::sharded::ShardedMap;

/// A record kind that can live in the store.
pub(crate) trait Stored: Sized {
    type Key: Copy + Hash + Eq + std::fmt::Debug;
    /// Its table in the store.
    const TABLE: u8;
    /// The table of the record with this key: `TABLE` unless the kind spreads over two.
    fn table(_key: &Self::Key) -> u8 {
        Self::TABLE
    }
    fn key_bytes(key: &Self::Key, out: &mut Vec<u8>);
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> io::Result<Self>;
}

/// The bound on each table and the count of checkpoints taken, while the tables have a store.
#[derive(Debug)]
pub(crate) struct Tier {
    /// At most this many entries of each table (and list entries) in memory; `None`: no bound
    /// (a state that moved records out before, reopened without one, still reads them).
    pub held_max: Option<usize>,
    pub epoch: u64,
}

/// Records leaving memory, written one after another into one buffer (not two vectors each:
/// a hundred thousand records leave at a time, and allocating and freeing them one by one cost
/// the writer thread a tenth of its time in the allocator).
#[derive(Debug, Default)]
pub(crate) struct Leaving {
    bytes: Vec<u8>,
    /// Table, end of the key and end of the payload in `bytes` (each starts where the one
    /// before ends).
    items: Vec<(u8, usize, usize)>,
}

impl Leaving {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each record as (table, key, payload).
    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8], &[u8])> {
        let mut start = 0;
        self.items.iter().map(move |&(table, key_end, end)| {
            let item = (table, &self.bytes[start..key_end], &self.bytes[key_end..end]);
            start = end;
            item
        })
    }
}

/// One table: what is in memory, in the order it came in.
#[derive(Debug)]
pub(crate) struct Tiered<V: Stored> {
    map: ShardedMap<V::Key, V>,
    /// Keys in the order they came into memory (one that left is skipped).
    order: VecDeque<V::Key>,
    /// Entries read back from the store: the checkpoint epoch they were read in and a hash of
    /// the bytes read.
    fetched: HashMap<V::Key, (u64, u64)>,
    /// Entries read back and changed, out of `order` until the next checkpoint.
    waiting: Vec<V::Key>,
}

impl<V: Stored> Default for Tiered<V> {
    fn default() -> Self {
        Tiered {
            map: ShardedMap::default(),
            order: VecDeque::new(),
            fetched: HashMap::new(),
            waiting: Vec::new(),
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    // Fixed keys: the same bytes give the same hash in every run.
    DefaultHashBuilder::default().hash_one(bytes)
}

impl<V: Stored> Tiered<V> {
    #[inline]
    pub fn get(&self, key: &V::Key) -> Option<&V> {
        self.map.get(key)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &V::Key) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub fn contains_key(&self, key: &V::Key) -> bool {
        self.map.contains_key(key)
    }

    /// Inserts or replaces an entry.
    pub fn insert(&mut self, key: V::Key, value: V) {
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
        }
    }

    /// Puts an entry read back from the store (`bytes`, decoded as `value`) in memory.
    pub fn insert_fetched(&mut self, key: V::Key, value: V, bytes: &[u8], epoch: u64) {
        debug_assert!(!self.map.contains_key(&key));
        self.fetched.insert(key, (epoch, hash(bytes)));
        self.insert(key, value);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries that can leave memory only after the next checkpoint.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// A checkpoint was taken: the entries waiting for one go first next time.
    pub fn checkpointed(&mut self) {
        for key in self.waiting.drain(..).rev() {
            self.order.push_front(key);
        }
    }

    /// Every entry in memory, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&V::Key, &V)> + '_ {
        self.map.iter()
    }

    /// Once more than `held_max` entries are in memory, moves the oldest out in a chunk, until
    /// seven eighths of the bound are left (see the module comment for which may leave and
    /// which are written), appending the records to write to `out` as (table, key, payload).
    /// `epoch` counts the checkpoints taken so far.
    pub fn evict(
        &mut self,
        held_max: usize,
        epoch: u64,
        pinned: impl Fn(&V::Key, &V) -> bool,
        out: &mut Leaving,
    ) {
        let mut len = self.map.len();
        if len <= held_max {
            return;
        }
        let keep = held_max - held_max / 8;
        let mut budget = self.order.len();
        while len > keep && budget > 0 {
            budget -= 1;
            let key = self.order.pop_front().expect("budget counts the queue");
            let Some(value) = self.map.get(&key) else { continue };
            if pinned(&key, value) {
                self.order.push_back(key);
                continue;
            }
            let start = out.bytes.len();
            V::key_bytes(&key, &mut out.bytes);
            let key_end = out.bytes.len();
            value.encode(&mut out.bytes);
            let payload = &out.bytes[key_end..];
            match self.fetched.get(&key) {
                Some(&(_, read)) if read == hash(payload) => out.bytes.truncate(start),
                // Read in epoch `at`: the checkpoint that ends epoch `at + 1` is the first
                // that every restart starts from or after.
                Some(&(at, _)) if at + 1 >= epoch => {
                    out.bytes.truncate(start);
                    self.waiting.push(key);
                    continue;
                }
                _ => out.items.push((V::table(&key), key_end, out.bytes.len())),
            }
            self.fetched.remove(&key);
            self.map.remove(&key);
            len -= 1;
        }
    }
}

impl<V: Stored> std::ops::Index<&V::Key> for Tiered<V> {
    type Output = V;
    fn index(&self, key: &V::Key) -> &V {
        self.map.get(key).expect("no entry for key")
    }
}

/// A table key read back from its big-endian bytes (`Stored::key_bytes`).
pub(crate) trait KeyBytes {
    fn from_bytes(bytes: &[u8]) -> Self;
}

impl KeyBytes for u64 {
    fn from_bytes(bytes: &[u8]) -> u64 {
        u64::from_be_bytes(bytes.try_into().expect("8-byte key"))
    }
}

impl KeyBytes for u128 {
    fn from_bytes(bytes: &[u8]) -> u128 {
        u128::from_be_bytes(bytes.try_into().expect("16-byte key"))
    }
}
