//! A hash map split into independent tables, for the payment domain's tables that grow with every
//! payment. One `HashMap` of ten million entries grows by rehashing all of them at once, which
//! stops the writer thread for seconds; split in `SHARDS`, each part grows on its own, so a
//! growth moves one part at a time.

use std::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::constants::MAP_SHARDS;

#[derive(Clone, Debug)]
pub struct ShardedMap<K, V> {
    shards: Box<[HashMap<K, V>]>,
    hasher: DefaultHashBuilder,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            shards: (0..MAP_SHARDS).map(|_| HashMap::new()).collect(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    #[inline]
    fn shard(&self, key: &K) -> usize {
        // The top bits: the tables inside each shard use the low ones.
        (self.hasher.hash_one(key) >> 58) as usize % MAP_SHARDS
    }

    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let shard = self.shard(key);
        self.shards[shard].get_mut(key)
    }

    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, value)
    }

    #[inline]
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        self.shards.iter().flat_map(HashMap::iter)
    }
}

impl<K: Hash + Eq, V> std::ops::Index<&K> for ShardedMap<K, V> {
    type Output = V;
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("key present")
    }
}

impl<'a, K: Hash + Eq, V> IntoIterator for &'a ShardedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::FlatMap<
        std::slice::Iter<'a, HashMap<K, V>>,
        hashbrown::hash_map::Iter<'a, K, V>,
        fn(&'a HashMap<K, V>) -> hashbrown::hash_map::Iter<'a, K, V>,
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.shards.iter().flat_map(HashMap::iter as fn(_) -> _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_one_map() {
        let mut m: ShardedMap<u64, u64> = ShardedMap::default();
        let mut reference = std::collections::HashMap::new();
        for i in 0..10_000u64 {
            let k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 5_000;
            assert_eq!(m.insert(k, i), reference.insert(k, i));
        }
        assert_eq!(m.len(), reference.len());
        for (k, v) in &reference {
            assert_eq!(m.get(k), Some(v));
            assert_eq!(m[k], *v);
        }
        *m.get_mut(&0).unwrap() += 1;
        assert_eq!(m.get(&0), Some(&(reference[&0] + 1)));
        assert!(!m.contains_key(&5_000));
        assert_eq!(m.iter().count(), reference.len());
        assert_eq!((&m).into_iter().count(), reference.len());
        // The keys spread over the shards.
        assert!(m.shards.iter().all(|s| !s.is_empty()));
    }
}
