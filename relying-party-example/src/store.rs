//! A tiny in-memory key/value store with expiry.
//!
//! Pending sign-ins, signed-in sessions and outstanding logout states all
//! live here, keyed by unguessable random strings. Keeping them on the server
//! means the browser only ever holds an opaque cookie: no tokens, nonces or
//! PKCE verifiers leave this process. Everything is lost on restart, which is
//! fine for an example.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rand::RngCore;

/// An expiring map from random keys to values.
pub struct Store<T> {
    ttl: Duration,
    /// Upper bound on live entries: `/login` can be hit by anyone, and memory
    /// must not grow without limit.
    max_entries: usize,
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T> Store<T> {
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Store { ttl, max_entries: max_entries.max(1), entries: Mutex::new(HashMap::new()) }
    }

    /// How long entries live; also used as the cookie's `Max-Age`.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Stores `value` under a fresh random key and returns the key.
    pub fn insert(&self, value: T) -> String {
        let key = random_key();
        self.insert_at(key.clone(), value);
        key
    }

    /// Stores `value` under a key chosen by the caller (which must itself be
    /// unguessable, e.g. a CSRF token).
    pub fn insert_at(&self, key: String, value: T) {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.retain(|_, (expires, _)| *expires > now);
        while entries.len() >= self.max_entries {
            // Evict whatever expires first; O(n), but n is bounded and this
            // only happens under abuse.
            let oldest = entries.iter().min_by_key(|(_, (expires, _))| *expires).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        entries.insert(key, (now + self.ttl, value));
    }

    /// Removes and returns the value, making one-time values single-use.
    pub fn take(&self, key: &str) -> Option<T> {
        let (expires, value) = self.lock().remove(key)?;
        (expires > Instant::now()).then_some(value)
    }

    /// Locks the map. A poisoned lock only means another request panicked
    /// mid-update of a plain `HashMap`; the data is still usable.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Instant, T)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T: Clone> Store<T> {
    /// Returns a copy of the value if present and not expired.
    pub fn get(&self, key: &str) -> Option<T> {
        let entries = self.lock();
        let (expires, value) = entries.get(key)?;
        (*expires > Instant::now()).then(|| value.clone())
    }
}

/// 256 random bits, hex encoded: long enough that cookie values and keys
/// cannot be guessed. `thread_rng` is a CSPRNG seeded from the OS.
pub fn random_key() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_is_single_use() {
        let store = Store::new(Duration::from_secs(60), 10);
        let key = store.insert(7);
        assert_eq!(store.get(&key), Some(7));
        assert_eq!(store.take(&key), Some(7));
        assert_eq!(store.take(&key), None);
    }

    #[test]
    fn expired_entries_are_gone() {
        let store = Store::new(Duration::ZERO, 10);
        let key = store.insert("x");
        assert_eq!(store.get(&key), None);
        assert_eq!(store.take(&key), None);
    }

    #[test]
    fn size_is_bounded() {
        let store = Store::new(Duration::from_secs(60), 3);
        let keys: Vec<String> = (0..10).map(|i| store.insert(i)).collect();
        assert_eq!(store.lock().len(), 3);
        assert_eq!(store.get(&keys[9]), Some(9));
    }

    #[test]
    fn keys_are_random_hex() {
        let a = random_key();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_key());
    }
}
