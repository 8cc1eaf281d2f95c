//! Storage for the ledger's transfers and id index that never moves or rehashes everything at
//! once: growth happens one chunk or one shard at a time, so no batch waits for a copy of the
//! whole history (a single `Vec` of 10 million transfers would copy 1.3 GB when it grows).

use hashbrown::HashMap;

use crate::types::Transfer;

/// Transfers per chunk: 8 MiB of transfers.
const CHUNK: usize = 1 << 16;

/// An append-only list of transfers in chunks of `CHUNK`.
#[derive(Debug, Default)]
pub struct TransferLog {
    chunks: Vec<Vec<Transfer>>,
    len: usize,
}

impl TransferLog {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, index: usize) -> Option<&Transfer> {
        self.chunks.get(index / CHUNK)?.get(index % CHUNK)
    }

    pub fn last(&self) -> Option<&Transfer> {
        self.chunks.last()?.last()
    }

    pub(crate) fn push(&mut self, t: Transfer) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("chunk").push(t);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<Transfer> {
        let t = self.chunks.last_mut()?.pop()?;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        self.len -= 1;
        Some(t)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Transfer> + '_ {
        self.chunks.iter().flatten()
    }

    pub fn to_vec(&self) -> Vec<Transfer> {
        self.iter().copied().collect()
    }

    /// The first index for which `before` is false (`before` must be true, then false).
    pub fn partition_point(&self, mut before: impl FnMut(&Transfer) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len);
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
    fn index(&self, index: usize) -> &Transfer {
        &self.chunks[index / CHUNK][index % CHUNK]
    }
}

impl<'a> IntoIterator for &'a TransferLog {
    type Item = &'a Transfer;
    type IntoIter = std::iter::Flatten<std::slice::Iter<'a, Vec<Transfer>>>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.iter().flatten()
    }
}

/// Shards of the id index: each grows (and rehashes) on its own.
const SHARDS: usize = 256;

/// A map from transfer id to its index in the log, sharded by id.
#[derive(Debug)]
pub struct IdIndex {
    shards: Vec<HashMap<u128, u32>>,
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex { shards: (0..SHARDS).map(|_| HashMap::new()).collect() }
    }
}

impl IdIndex {
    #[inline]
    fn shard(id: u128) -> usize {
        // Ids may be sequential or random; the multiply spreads either over the shards.
        let folded = (id as u64) ^ ((id >> 64) as u64);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize
    }

    #[inline]
    pub fn get(&self, id: &u128) -> Option<&u32> {
        self.shards[Self::shard(*id)].get(id)
    }

    #[inline]
    pub fn insert(&mut self, id: u128, index: u32) -> Option<u32> {
        self.shards[Self::shard(id)].insert(id, index)
    }

    pub fn remove(&mut self, id: &u128) -> Option<u32> {
        self.shards[Self::shard(*id)].remove(id)
    }

    pub fn reserve(&mut self, additional: usize) {
        for shard in &mut self.shards {
            shard.reserve(additional / SHARDS + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_spans_chunks_and_pops_back() {
        let mut log = TransferLog::default();
        for i in 0..(CHUNK * 2 + 5) {
            log.push(Transfer { id: i as u128, timestamp: i as u64 * 2, ..Transfer::default() });
        }
        assert_eq!(log.len(), CHUNK * 2 + 5);
        assert_eq!(log[CHUNK + 1].id, (CHUNK + 1) as u128);
        assert_eq!(log.partition_point(|t| t.timestamp < 2 * CHUNK as u64 + 1), CHUNK + 1);
        for _ in 0..6 {
            log.pop();
        }
        assert_eq!(log.len(), CHUNK * 2 - 1);
        assert_eq!(log.last().unwrap().id, (CHUNK * 2 - 2) as u128);
        assert_eq!(log.iter().count(), log.len());
    }

    #[test]
    fn index_finds_what_it_holds() {
        let mut index = IdIndex::default();
        for id in [1u128, 2, u128::MAX - 1, 1 << 64, 12345 << 70] {
            assert_eq!(index.insert(id, 7), None);
            assert_eq!(index.get(&id), Some(&7));
        }
        assert_eq!(index.remove(&2), Some(7));
        assert_eq!(index.get(&2), None);
    }
}
