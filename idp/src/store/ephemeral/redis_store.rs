//! The Redis store, shared by every node.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{EphemeralError, EphemeralStore};

/// A multiplexed, self-reconnecting connection to Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
}

fn err(e: redis::RedisError) -> EphemeralError {
    EphemeralError(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

impl RedisStore {
    /// Connects and checks the server answers.
    pub async fn connect(url: &str) -> Result<Self, EphemeralError> {
        let client = redis::Client::open(url).map_err(err)?;
        let mut conn = tokio::time::timeout(Duration::from_secs(10), ConnectionManager::new(client))
            .await
            .map_err(|_| EphemeralError(format!("no answer from {}", redact(url))))?
            .map_err(err)?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.map_err(err)?;
        Ok(Self { conn })
    }
}

/// The URL without any password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "redis".into(),
    }
}

impl EphemeralStore for RedisStore {
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let mut c = self.conn.clone();
        redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)).query_async(&mut c).await.map_err(err)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut c = self.conn.clone();
        redis::cmd("GET").arg(key).query_async(&mut c).await.map_err(err)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut c = self.conn.clone();
        redis::cmd("GETDEL").arg(key).query_async(&mut c).await.map_err(err)
    }

    async fn swap(&self, key: &str, value: &[u8], ttl: Duration) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut c = self.conn.clone();
        let (old,): (Option<Vec<u8>>,) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg(key)
            .cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(old)
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        let mut c = self.conn.clone();
        redis::cmd("DEL").arg(key).query_async(&mut c).await.map_err(err)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        let mut c = self.conn.clone();
        // The window starts at the first increment: create with expiry if absent, then count.
        let (_, n): ((), u64) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(key)
            .arg(0)
            .arg("PX")
            .arg(millis(ttl))
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(key)
            .query_async(&mut c)
            .await
            .map(|(n,): (u64,)| ((), n))
            .map_err(err)?;
        Ok(n)
    }

    async fn incr_refresh(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        let mut c = self.conn.clone();
        let (n,): (u64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(millis(ttl))
            .ignore()
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(n)
    }

    async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        let mut c = self.conn.clone();
        // DECR on a missing key would create one without expiry; only existing positive counts.
        let script = redis::Script::new(
            "local v = tonumber(redis.call('GET', KEYS[1])) \
             if v and v > 0 then return redis.call('DECR', KEYS[1]) end return 0",
        );
        let _: i64 = script.key(key).invoke_async(&mut c).await.map_err(err)?;
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, EphemeralError> {
        let mut c = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis(ttl))
            .arg("NX")
            .query_async(&mut c)
            .await
            .map_err(err)?;
        Ok(set.is_some())
    }

    async fn remaining(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        let mut c = self.conn.clone();
        let ms: i64 = redis::cmd("PTTL").arg(key).query_async(&mut c).await.map_err(err)?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }
}
