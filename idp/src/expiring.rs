//! A node-local map whose entries are reused until a time fixed when they are stored: the client
//! and `jwks_uri` caches of the token endpoint and the OCSP answer cache of card sign-in.
//!
//! The caller passes the time on every call — an `Instant` for the client caches, epoch seconds
//! for OCSP answers, whose reuse ends at the responder's `nextUpdate` — so the expiry rule is
//! tested with made-up times instead of waiting for the real clock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// Entries by key, each with the time it stops being reused. At most `max` entries: a store
/// beyond that empties the map first, which bounds memory under a flood of distinct keys (the
/// next lookups simply ask again).
pub struct ExpiringMap<K, V, T> {
    entries: RwLock<HashMap<K, (V, T)>>,
    max: usize,
}

impl<K: Eq + Hash, V: Clone, T: Ord + Copy> ExpiringMap<K, V, T> {
    pub fn new(max: usize) -> Self {
        Self { entries: RwLock::new(HashMap::new()), max }
    }

    /// The value stored for `key`, while `now` is before its end.
    pub fn get(&self, key: &K, now: T) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(_, until)| now < *until).map(|(value, _)| value.clone())
    }

    /// Stores `value` for `key` until `until` (an `until` not after now stores nothing usable).
    pub fn put(&self, key: K, value: V, until: T) {
        let mut entries = self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.max && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, (value, until));
    }

    /// Forgets `key` (after a change this node made itself).
    pub fn forget(&self, key: &K) {
        self.entries.write().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn an_entry_is_reused_until_its_end_and_not_at_it() {
        let map: ExpiringMap<&str, u32, i64> = ExpiringMap::new(10);
        map.put("a", 1, 1_300);
        assert_eq!(map.get(&"a", 1_000), Some(1));
        assert_eq!(map.get(&"a", 1_299), Some(1), "one second before its end");
        assert_eq!(map.get(&"a", 1_300), None, "at its end");
        assert_eq!(map.get(&"b", 1_000), None);
        map.put("a", 2, 1_000);
        assert_eq!(map.get(&"a", 1_000), None, "stored until now: not reused at all");
    }

    #[test]
    fn with_instants_a_five_minute_entry_is_gone_after_five_minutes() {
        let map = ExpiringMap::new(10);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(300);
        map.put("uri", "keys", t0 + ttl);
        assert_eq!(map.get(&"uri", t0 + ttl - Duration::from_millis(1)), Some("keys"));
        assert_eq!(map.get(&"uri", t0 + ttl), None);
        map.forget(&"uri");
        assert_eq!(map.get(&"uri", t0), None, "forgotten");
    }

    #[test]
    fn a_full_map_starts_over_rather_than_grow() {
        let map = ExpiringMap::new(2);
        map.put(1, 'a', 10);
        map.put(2, 'b', 10);
        map.put(2, 'B', 10);
        assert_eq!((map.get(&1, 0), map.get(&2, 0)), (Some('a'), Some('B')), "replacing a key is no growth");
        map.put(3, 'c', 10);
        assert_eq!((map.get(&1, 0), map.get(&2, 0), map.get(&3, 0)), (None, None, Some('c')));
    }
}
