//! A map of guesses and pure results that never grows past a bound: when it
//! is full and a new key arrives, it starts over. Shared by threads under a
//! mutex that tolerates poisoning, since what it holds stays valid (or is
//! checked elsewhere) whatever a panicking holder left half-done.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

pub struct BoundedMap<K, V> {
    entries: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    /// Keeps `value` under `key`; a full map is emptied first, unless
    /// `key` is already in it.
    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().remove(key);
    }

    /// Changes the value under `key` in place, if there is one.
    pub fn update<Q>(&self, key: &Q, change: impl FnOnce(&mut V))
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Some(value) = self.lock().get_mut(key) {
            change(value);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_never_holds_more_than_its_capacity_and_keeps_the_newest() {
        let map = BoundedMap::new(3);
        for i in 0..10 {
            map.insert(i, i * 10);
            assert!(map.len() <= 3);
        }
        assert_eq!(map.get(&9), Some(90));
    }

    #[test]
    fn a_full_map_keeps_its_entries_when_a_known_key_is_replaced() {
        let map = BoundedMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("a", 3);
        assert_eq!((map.get("a"), map.get("b")), (Some(3), Some(2)));
        map.update("b", |v| *v += 1);
        map.remove("a");
        assert_eq!((map.get("a"), map.get("b")), (None, Some(3)));
    }
}
