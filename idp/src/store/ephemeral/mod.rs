//! Short-lived state: authorization codes, login transactions, access tokens, throttling
//! counters. One interface, two real implementations: in-process for the embedded mode and
//! Redis for several nodes. Single-use values are consumed atomically (`take`), so two nodes
//! can never both redeem one code.

mod keys;
mod memory;
mod redis_store;

use std::future::Future;
use std::time::Duration;

pub use keys::{Key, Scope};
pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// Errors of the ephemeral store.
#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The store cannot be reached, or did not answer in time.
    #[error("ephemeral store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with an error, or a value could not be encoded.
    #[error("ephemeral store: {0}")]
    Other(String),
}

impl EphemeralError {
    /// Whether the store is down or not answering: the request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, EphemeralError::Unavailable(_))
    }
}

/// What every ephemeral store offers.
pub trait EphemeralStore {
    /// Stores `value` under `key` for `ttl`, replacing what was there.
    fn put(&self, key: &str, value: &[u8], ttl: Duration) -> impl Future<Output = Result<(), EphemeralError>> + Send;
    /// Reads a value that has not expired.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, EphemeralError>> + Send;
    /// Reads and removes a value in one atomic step; only one caller ever gets it.
    fn take(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, EphemeralError>> + Send;
    /// Replaces a value and returns the one it replaced, in one atomic step: of two callers, the
    /// second always sees the first one's value.
    fn swap(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, EphemeralError>> + Send;
    /// Removes a value.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), EphemeralError>> + Send;
    /// Adds one to a counter whose window of `ttl` starts at its first increment; returns the
    /// new count.
    fn incr(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<u64, EphemeralError>> + Send;
    /// Adds one to a counter and restarts its lifetime of `ttl`, in one atomic step; returns
    /// the new count. A counter of this kind lives as long as it keeps being used.
    fn incr_refresh(&self, key: &str, ttl: Duration) -> impl Future<Output = Result<u64, EphemeralError>> + Send;
    /// Takes one back from a counter that still exists (never below zero, expiry unchanged).
    fn decr(&self, key: &str) -> impl Future<Output = Result<(), EphemeralError>> + Send;
    /// Stores `value` for `ttl` only if `key` holds nothing; whether it did. Of several
    /// concurrent callers exactly one gets `true`.
    fn put_new(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, EphemeralError>> + Send;
    /// How long a value has left, `None` when there is none.
    fn remaining(&self, key: &str) -> impl Future<Output = Result<Option<Duration>, EphemeralError>> + Send;
}

/// The store chosen by configuration (`cache.url`), with every key prefixed.
#[derive(Clone)]
pub struct Ephemeral {
    prefix: String,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(MemoryStore),
    Redis(Box<RedisStore>),
}

impl Ephemeral {
    /// Opens `memory://` or `redis://…` with the default `cache.timeout`.
    pub async fn open(url: &str, prefix: &str) -> Result<Self, EphemeralError> {
        Self::open_with(url, prefix, crate::config::CacheConfig::default().timeout).await
    }

    /// Opens `memory://` or `redis://…`; `timeout` bounds each attempt to reach Redis.
    pub async fn open_with(url: &str, prefix: &str, timeout: Duration) -> Result<Self, EphemeralError> {
        let backend = if url == "memory://" {
            Backend::Memory(MemoryStore::default())
        } else {
            Backend::Redis(Box::new(RedisStore::connect(url, timeout).await?))
        };
        Ok(Self { prefix: prefix.to_string(), backend })
    }

    /// The same store with every key further prefixed by `scope`, so one feature's counters
    /// (e.g. 忘記密碼's throttle) never share a name with another's.
    pub fn scoped(&self, scope: Scope) -> Ephemeral {
        Ephemeral { prefix: format!("{}{}", self.prefix, scope.prefix()), backend: self.backend.clone() }
    }

    /// Whether values survive this process (false for the in-process store).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    fn key(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.as_str())
    }

    pub async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.put(&key, value, ttl).await,
            Backend::Redis(s) => s.put(&key, value, ttl).await,
        }
    }

    pub async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.get(&key).await,
            Backend::Redis(s) => s.get(&key).await,
        }
    }

    pub async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.take(&key).await,
            Backend::Redis(s) => s.take(&key).await,
        }
    }

    pub async fn swap(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<Option<Vec<u8>>, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.swap(&key, value, ttl).await,
            Backend::Redis(s) => s.swap(&key, value, ttl).await,
        }
    }

    pub async fn delete(&self, key: &Key) -> Result<(), EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.delete(&key).await,
            Backend::Redis(s) => s.delete(&key).await,
        }
    }

    pub async fn incr(&self, key: &Key, ttl: Duration) -> Result<u64, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.incr(&key, ttl).await,
            Backend::Redis(s) => s.incr(&key, ttl).await,
        }
    }

    pub async fn incr_refresh(&self, key: &Key, ttl: Duration) -> Result<u64, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.incr_refresh(&key, ttl).await,
            Backend::Redis(s) => s.incr_refresh(&key, ttl).await,
        }
    }

    pub async fn decr(&self, key: &Key) -> Result<(), EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.decr(&key).await,
            Backend::Redis(s) => s.decr(&key).await,
        }
    }

    pub async fn put_new(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<bool, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.put_new(&key, value, ttl).await,
            Backend::Redis(s) => s.put_new(&key, value, ttl).await,
        }
    }

    pub async fn remaining(&self, key: &Key) -> Result<Option<Duration>, EphemeralError> {
        let key = self.key(key);
        match &self.backend {
            Backend::Memory(s) => s.remaining(&key).await,
            Backend::Redis(s) => s.remaining(&key).await,
        }
    }

    /// Stores a value as JSON.
    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &Key,
        value: &T,
        ttl: Duration,
    ) -> Result<(), EphemeralError> {
        let bytes = serde_json::to_vec(value).map_err(|e| EphemeralError::Other(e.to_string()))?;
        self.put(key, &bytes, ttl).await
    }

    /// Reads a JSON value; a value that no longer parses counts as absent.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, EphemeralError> {
        Ok(self.get(key).await?.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Takes a JSON value atomically.
    pub async fn take_json<T: serde::de::DeserializeOwned>(&self, key: &Key) -> Result<Option<T>, EphemeralError> {
        Ok(self.take(key).await?.and_then(|b| serde_json::from_slice(&b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exercise(store: Ephemeral) {
        store.put(&Key::named("a"), b"1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.get(&Key::named("a")).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.take(&Key::named("a")).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.take(&Key::named("a")).await.unwrap(), None, "a value is taken once only");
        assert_eq!(store.incr(&Key::named("n"), Duration::from_secs(60)).await.unwrap(), 1);
        assert_eq!(store.incr(&Key::named("n"), Duration::from_secs(60)).await.unwrap(), 2);
        store.delete(&Key::named("n")).await.unwrap();
        assert_eq!(store.incr(&Key::named("n"), Duration::from_secs(60)).await.unwrap(), 1);
        // A refreshed counter lives on while used; a fixed one expires from its first use.
        assert_eq!(store.incr_refresh(&Key::named("r"), Duration::from_millis(300)).await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.incr_refresh(&Key::named("r"), Duration::from_millis(300)).await.unwrap(), 2);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            store.incr_refresh(&Key::named("r"), Duration::from_millis(300)).await.unwrap(),
            3,
            "the lifetime restarted"
        );
        store.decr(&Key::named("r")).await.unwrap();
        assert_eq!(
            store.incr_refresh(&Key::named("r"), Duration::from_millis(300)).await.unwrap(),
            3,
            "one taken back"
        );
        for _ in 0..5 {
            store.decr(&Key::named("r")).await.unwrap();
        }
        assert_eq!(store.get(&Key::named("r")).await.unwrap().as_deref(), Some(&b"0"[..]), "never below zero");
        store.decr(&Key::named("absent")).await.unwrap();
        assert_eq!(store.get(&Key::named("absent")).await.unwrap(), None, "taking back creates nothing");
        assert!(store.put_new(&Key::named("once"), b"1", Duration::from_secs(60)).await.unwrap());
        assert!(!store.put_new(&Key::named("once"), b"2", Duration::from_secs(60)).await.unwrap());
        assert_eq!(store.get(&Key::named("once")).await.unwrap().as_deref(), Some(&b"1"[..]));
        let left = store.remaining(&Key::named("once")).await.unwrap().unwrap();
        assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60), "{left:?}");
        assert_eq!(store.remaining(&Key::named("nothing")).await.unwrap(), None);
        // Concurrent callers: every increment counted once, one winner of put_new.
        let (counts, wins): (Vec<u64>, Vec<bool>) = futures_join(&store).await;
        let mut counts = counts;
        counts.sort_unstable();
        assert_eq!(counts, (1..=30).collect::<Vec<u64>>());
        assert_eq!(wins.iter().filter(|w| **w).count(), 1);
        store.put(&Key::named("gone"), b"x", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(store.get(&Key::named("gone")).await.unwrap(), None, "expired values are not returned");
        // Of many concurrent swaps on one key, exactly one sees the original value.
        store.put(&Key::named("code"), b"grant", Duration::from_secs(60)).await.unwrap();
        let swaps = (0..8).map(|i| {
            let s = store.clone();
            tokio::spawn(async move {
                s.swap(&Key::named("code"), format!("marker{i}").as_bytes(), Duration::from_secs(60)).await
            })
        });
        let mut saw_grant = 0;
        for h in swaps.collect::<Vec<_>>() {
            let old = h.await.unwrap().unwrap().unwrap();
            saw_grant += usize::from(old == b"grant");
        }
        assert_eq!(saw_grant, 1);
        assert!(store.get(&Key::named("code")).await.unwrap().unwrap().starts_with(b"marker"));
        assert_eq!(store.swap(&Key::named("new"), b"v", Duration::from_secs(60)).await.unwrap(), None);
    }

    async fn futures_join(store: &Ephemeral) -> (Vec<u64>, Vec<bool>) {
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                let n = s.incr_refresh(&Key::named("par"), Duration::from_secs(60)).await.unwrap();
                let w = s.put_new(&Key::named("par-gate"), b"1", Duration::from_secs(60)).await.unwrap();
                (n, w)
            }));
        }
        let mut out = (Vec::new(), Vec::new());
        for t in tasks {
            let (n, w) = t.await.unwrap();
            out.0.push(n);
            out.1.push(w);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_store_behaves() {
        exercise(Ephemeral::open("memory://", "t:").await.unwrap()).await;
    }

    /// Redis runs on every development and CI machine: this test always talks to a real one
    /// (`IDP_TEST_CACHE_URL`, or the local default) and fails if there is none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_store_behaves() {
        let url = std::env::var("IDP_TEST_CACHE_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("test:{}:", crate::crypto::random_token(8));
        exercise(Ephemeral::open(&url, &prefix).await.unwrap()).await;
    }
}
