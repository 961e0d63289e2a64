//! The Redis store, shared by every node.
//!
//! One multiplexed connection per process, kept here rather than in the crate's
//! `ConnectionManager`, because of what that manager does in an outage: it hands the error of a
//! dropped connection to the caller while it reconnects, has no time bound unless asked, and
//! after a failed reconnect keeps answering with that failure until another I/O error starts a
//! new attempt — the first request after Redis comes back still fails. Here:
//! - every attempt (getting a connection, sending, awaiting the answer) has one deadline,
//!   `cache.timeout`; a store call makes at most two attempts, so it costs at most twice that;
//! - a connection whose socket closed (a Redis restart, a firewall's idle timeout) is noticed by
//!   its driver task ending, and replaced before the next command is sent on it;
//! - a connection that fails mid-command is dropped, and the next call opens a new one: there is
//!   no cached failure and no back-off, so service resumes with the first call after Redis is back;
//! - a command that failed on a connection that had already served others (a connection that
//!   broke under us) is sent again once on a new connection, if sending it twice cannot change
//!   the outcome. Each operation below says whether it is retried, and why.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ErrorKind, RedisError, RedisResult};

use super::{EphemeralError, EphemeralStore};

/// A shared connection to Redis that reconnects on demand.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    timeout: Duration,
    /// The connection in use; the lock also makes concurrent callers wait for one reconnect
    /// instead of each opening their own.
    current: tokio::sync::Mutex<Option<Link>>,
}

/// One open connection and whether it still is.
#[derive(Clone)]
struct Link {
    conn: MultiplexedConnection,
    /// False once the driver task has ended (the socket closed or failed), or once a command
    /// on it failed: it is then never used again.
    open: Arc<AtomicBool>,
    _driver: Arc<Driver>,
}

impl Link {
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.open.store(false, Ordering::Release);
    }
}

/// Ends the connection's driver task (and closes its socket) once no one holds the link: a
/// connection left waiting on a server that does not answer would otherwise live on.
struct Driver(tokio::task::AbortHandle);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether sending an operation a second time is harmless.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Sending it twice leaves the same state and gives the same kind of answer.
    Once,
    /// If the first one did reach Redis and only its answer was lost, a second one would change
    /// the state again or answer differently: the caller gets "unavailable" instead.
    Never,
}

/// How one attempt ended.
enum Attempt<T> {
    Done(T),
    /// Redis answered with an error: not an outage (a bug, or a refused command).
    Refused(RedisError),
    /// No connection, no answer, or the connection broke. `stale` when it broke on a
    /// connection that had served earlier commands — the case a second attempt is for.
    Broken {
        error: String,
        stale: bool,
    },
}

fn err(e: RedisError) -> EphemeralError {
    EphemeralError::Other(e.to_string())
}

fn millis(ttl: Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)) as u64
}

/// Errors that say Redis cannot be used right now, rather than that it refused a command.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            ErrorKind::BusyLoadingError | ErrorKind::TryAgain | ErrorKind::MasterDown | ErrorKind::ReadOnly
        )
}

/// Errors that say the connection itself is gone (worth a new connection and a second try).
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped()
}

impl RedisStore {
    /// Connects and checks the server answers. Start-up waits up to ten seconds for that (a
    /// Redis still starting is worth waiting for there); requests later wait `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, EphemeralError> {
        let client = redis::Client::open(url).map_err(err)?;
        let inner = Arc::new(Inner { client, timeout, current: tokio::sync::Mutex::new(None) });
        let first = async {
            let link = inner.open().await?;
            let mut c = link.conn.clone();
            let _: String = redis::cmd("PING").query_async(&mut c).await?;
            *inner.current.lock().await = Some(link);
            Ok::<_, RedisError>(())
        };
        tokio::time::timeout(Duration::from_secs(10), first)
            .await
            .map_err(|_| EphemeralError::Unavailable(format!("no answer from {}", redact(url))))?
            .map_err(|e| EphemeralError::Unavailable(format!("{}: {e}", redact(url))))?;
        Ok(Self { inner })
    }

    /// Runs one operation: one attempt, and a second on a new connection when the first broke
    /// on an old connection and `retry` allows it.
    async fn exec<T, F, Fut>(&self, retry: Retry, op: F) -> Result<T, EphemeralError>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match self.inner.attempt(&op).await {
            Attempt::Done(v) => Ok(v),
            Attempt::Refused(e) => Err(err(e)),
            Attempt::Broken { stale: true, .. } if retry == Retry::Once => match self.inner.attempt(&op).await {
                Attempt::Done(v) => Ok(v),
                Attempt::Refused(e) => Err(err(e)),
                Attempt::Broken { error, .. } => Err(EphemeralError::Unavailable(error)),
            },
            Attempt::Broken { error, .. } => Err(EphemeralError::Unavailable(error)),
        }
    }
}

impl Inner {
    /// Opens a connection and starts its driver task.
    async fn open(&self) -> RedisResult<Link> {
        let info = self.client.get_connection_info();
        let config = AsyncConnectionConfig::new();
        match &info.addr {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                let _ = stream.set_nodelay(true);
                let (conn, driver) = MultiplexedConnection::new_with_config(&info.redis, stream, config).await?;
                Ok(Link::start(conn, driver))
            }
            ConnectionAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path).await?;
                let (conn, driver) = MultiplexedConnection::new_with_config(&info.redis, stream, config).await?;
                Ok(Link::start(conn, driver))
            }
            _ => Err(RedisError::from((ErrorKind::InvalidClientConfig, "TLS to Redis is not built in"))),
        }
    }

    /// The open connection, or a new one; whether it is new.
    async fn link(&self) -> RedisResult<(Link, bool)> {
        let mut current = self.current.lock().await;
        if let Some(link) = current.as_ref().filter(|l| l.is_open()) {
            return Ok((link.clone(), false));
        }
        *current = None;
        let link = self.open().await?;
        *current = Some(link.clone());
        Ok((link, true))
    }

    /// One attempt, connection included, within `timeout`.
    async fn attempt<T, F, Fut>(&self, op: &F) -> Attempt<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let mut used: Option<(Link, bool)> = None;
        let outcome = tokio::time::timeout(self.timeout, async {
            let (link, fresh) = self.link().await?;
            used = Some((link.clone(), fresh));
            op(link.conn.clone()).await
        })
        .await;
        let stale = used.as_ref().is_some_and(|(_, fresh)| !fresh);
        let close = || {
            if let Some((link, _)) = &used {
                link.close();
            }
        };
        match outcome {
            Ok(Ok(v)) => Attempt::Done(v),
            Ok(Err(e)) if !is_outage(&e) => Attempt::Refused(e),
            Ok(Err(e)) => {
                if e.is_timeout() {
                    crate::metrics::dependency_timeout("ephemeral");
                }
                close();
                Attempt::Broken { stale: stale && is_broken(&e), error: e.to_string() }
            }
            // No answer in time: the connection may be stuck behind a lost reply, so it is not
            // used again. Not worth a second attempt either: one that hangs costs the whole
            // deadline again, and the person is better served by a quick "try again".
            Err(_) => {
                crate::metrics::dependency_timeout("ephemeral");
                close();
                Attempt::Broken { error: format!("no answer within {} ms", self.timeout.as_millis()), stale: false }
            }
        }
    }
}

impl Link {
    fn start(conn: MultiplexedConnection, driver: impl Future<Output = ()> + Send + 'static) -> Self {
        let open = Arc::new(AtomicBool::new(true));
        let flag = open.clone();
        let task = tokio::spawn(async move {
            driver.await;
            flag.store(false, Ordering::Release);
        });
        Link { conn, open, _driver: Arc::new(Driver(task.abort_handle())) }
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
        // Retried: a second SET of the same value leaves the same value (its lifetime counted
        // from the later write, which is what the caller asked for).
        self.exec(Retry::Once, |mut c| async move {
            redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)).query_async(&mut c).await
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        // Retried: a read changes nothing.
        self.exec(Retry::Once, |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await }).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, EphemeralError> {
        // Not retried: if the first GETDEL removed the value and only its answer was lost, a
        // second one finds nothing and the caller would tell a person their (valid) code or
        // sign-in had expired. "Unavailable, try again" is the honest answer.
        self.exec(Retry::Never, |mut c| async move { redis::cmd("GETDEL").arg(key).query_async(&mut c).await }).await
    }

    async fn swap(&self, key: &str, value: &[u8], ttl: Duration) -> Result<Option<Vec<u8>>, EphemeralError> {
        // Not retried: code redemption swaps a marker in; a second swap after a lost answer
        // would find its own marker and take the redemption for a replay (revoking the tokens).
        let (old,): (Option<Vec<u8>>,) = self
            .exec(Retry::Never, |mut c| async move {
                redis::pipe()
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
            })
            .await?;
        Ok(old)
    }

    async fn delete(&self, key: &str) -> Result<(), EphemeralError> {
        // Retried: deleting twice leaves nothing either way.
        self.exec(Retry::Once, |mut c| async move { redis::cmd("DEL").arg(key).query_async(&mut c).await }).await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        // Not retried: an increment whose answer was lost would be counted twice (a person
        // charged two sign-in attempts for one).
        // The window starts at the first increment: create with expiry if absent, then count.
        let (n,): (u64,) = self
            .exec(Retry::Never, |mut c| async move {
                redis::pipe()
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
            })
            .await?;
        Ok(n)
    }

    async fn incr_refresh(&self, key: &str, ttl: Duration) -> Result<u64, EphemeralError> {
        // Not retried, as `incr`.
        let (n,): (u64,) = self
            .exec(Retry::Never, |mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(key)
                    .cmd("PEXPIRE")
                    .arg(key)
                    .arg(millis(ttl))
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(n)
    }

    async fn decr(&self, key: &str) -> Result<(), EphemeralError> {
        // Not retried: a lost answer then a second call would give back two attempts for one.
        // DECR on a missing key would create one without expiry; only existing positive counts.
        let script = redis::Script::new(
            "local v = tonumber(redis.call('GET', KEYS[1])) \
             if v and v > 0 then return redis.call('DECR', KEYS[1]) end return 0",
        );
        let _: i64 = self
            .exec(Retry::Never, |mut c| {
                let invocation = script.key(key);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await?;
        Ok(())
    }

    async fn put_new(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, EphemeralError> {
        // Not retried: if the first SET NX stored the value and its answer was lost, a second
        // one finds the key taken and reports that someone else holds it.
        let set: Option<String> = self
            .exec(Retry::Never, |mut c| async move {
                redis::cmd("SET").arg(key).arg(value).arg("PX").arg(millis(ttl)).arg("NX").query_async(&mut c).await
            })
            .await?;
        Ok(set.is_some())
    }

    async fn remaining(&self, key: &str) -> Result<Option<Duration>, EphemeralError> {
        // Retried: a read changes nothing.
        let ms: i64 = self
            .exec(Retry::Once, |mut c| async move { redis::cmd("PTTL").arg(key).query_async(&mut c).await })
            .await?;
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }
}
