//! The in-process store of the embedded mode.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{EphemeralError, EphemeralStore};

/// A map with per-entry expiry behind one mutex; expired entries are swept as the map grows.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, (Vec<u8>, Instant)>,
    writes_since_sweep: usize,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written, so go on.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut (Vec<u8>, Instant)> {
        if self.map.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn note_write(&mut self, now: Instant) {
        self.writes_since_sweep += 1;
        if self.writes_since_sweep > 1024 && self.writes_since_sweep > self.map.len() {
            self.map.retain(|_, (_, exp)| *exp > now);
            self.writes_since_sweep = 0;
        }
    }
}

impl EphemeralStore for MemoryStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.map.insert(key.to_string(), (value.to_vec(), now + ttl));
        inner.note_write(now);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        Ok(self.lock().live(key, Instant::now()).map(|(v, _)| v.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut inner = self.lock();
        let found = inner.live(key, Instant::now()).is_some();
        Ok(if found { inner.map.remove(key).map(|(v, _)| v) } else { None })
    }

    async fn swap(&self, key: &str, value: &[u8], ttl: Duration) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let old = inner.live(key, now).map(|(v, _)| v.clone());
        inner.map.insert(key.to_string(), (value.to_vec(), now + ttl));
        inner.note_write(now);
        Ok(old)
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        self.lock().map.remove(key);
        Ok(())
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let count = match inner.live(key, now) {
            Some((v, _)) => {
                let n = parse_count(v) + 1;
                *v = n.to_string().into_bytes();
                n
            }
            None => {
                inner.map.insert(key.to_string(), (b"1".to_vec(), now + ttl));
                inner.note_write(now);
                1
            }
        };
        Ok(count)
    }

    async fn incr_refresh(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        let count = match inner.live(key, now) {
            Some((v, exp)) => {
                let n = parse_count(v) + 1;
                *v = n.to_string().into_bytes();
                *exp = now + ttl;
                n
            }
            None => {
                inner.map.insert(key.to_string(), (b"1".to_vec(), now + ttl));
                inner.note_write(now);
                1
            }
        };
        Ok(count)
    }

    async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        let mut inner = self.lock();
        if let Some((v, _)) = inner.live(key, Instant::now()) {
            *v = parse_count(v).saturating_sub(1).to_string().into_bytes();
        }
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, EphemeralError> {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.live(key, now).is_some() {
            return Ok(false);
        }
        inner.map.insert(key.to_string(), (value.to_vec(), now + ttl));
        inner.note_write(now);
        Ok(true)
    }

    async fn remaining(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).map(|(_, exp)| exp.saturating_duration_since(now)))
    }
}

fn parse_count(v: &[u8]) -> u64 {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes, login transactions, challenges and revocations live exactly their TTL here: the
    /// entry is there up to the last instant before its deadline and gone at the deadline.
    #[test]
    fn an_entry_lives_until_its_deadline_and_not_at_it() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        let mut inner = Inner::default();
        inner.map.insert("code".into(), (b"grant".to_vec(), t0 + ttl));
        let just_before = t0 + ttl - Duration::from_nanos(1);
        assert_eq!(inner.live("code", just_before).map(|(v, _)| v.clone()), Some(b"grant".to_vec()));
        assert!(inner.live("code", t0 + ttl).is_none(), "gone at its deadline");
        assert!(!inner.map.contains_key("code"), "and removed, not only hidden");
        assert!(inner.live("code", just_before).is_none(), "an expired entry does not come back");
    }
}
