//! A map with a fixed capacity that, when full, evicts its oldest entry: one entry at a time, in
//! O(1), so a cache sized below the working set degrades gradually instead of emptying itself
//! (clearing everything when full made every client cold at once).

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

pub struct BoundedMap<K, V> {
    capacity: usize,
    /// Each value with the sequence number of its insertion.
    entries: HashMap<K, (V, u64)>,
    /// Keys in insertion order. A key inserted again leaves its earlier place behind (its
    /// sequence no longer matches); those are skipped on eviction and compacted away.
    order: VecDeque<(K, u64)>,
    next: u64,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, entries: HashMap::new(), order: VecDeque::new(), next: 0 }
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// Inserts or replaces `key`, evicting the oldest entry if the map is full. Capacity zero
    /// keeps nothing.
    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        let seq = self.next;
        self.next += 1;
        self.entries.insert(key.clone(), (value, seq));
        self.order.push_back((key, seq));
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|(key, seq)| entries.get(key).is_some_and(|(_, current)| current == seq));
        }
    }

    pub fn remove<Q: Hash + Eq + ?Sized>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
    {
        self.entries.remove(key);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn evict_oldest(&mut self) {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|(_, current)| *current == seq) {
                self.entries.remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_evicts_one_entry_the_oldest() {
        let mut map = BoundedMap::new(3);
        for key in 1..=3 {
            map.insert(key, key * 10);
        }
        map.insert(1, 11); // re-inserted: now the newest
        map.insert(4, 40);
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&2), None, "the oldest went");
        assert_eq!((map.get(&1), map.get(&3), map.get(&4)), (Some(&11), Some(&30), Some(&40)));
    }

    #[test]
    fn order_stays_bounded_under_reinsertion() {
        let mut map = BoundedMap::new(10);
        for round in 0..10_000 {
            map.insert(round % 5, round);
        }
        assert_eq!(map.len(), 5);
        assert!(map.order.len() <= 20, "stale places are compacted: {}", map.order.len());
        map.remove(&0);
        for key in 100..110 {
            map.insert(key, 0);
        }
        assert_eq!(map.len(), 10);
        assert!((100..110).all(|key| map.get(&key).is_some()));
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let mut map = BoundedMap::new(0);
        map.insert("a", 1);
        assert!(map.is_empty());
    }
}
