//! Relational storage over SQLite (embedded default) and PostgreSQL from one codebase:
//! one `MultiConnection` enum, one schema, one migrations folder per backend, and an r2d2 pool
//! chosen by the URL scheme. Async callers go through [`Db::run`], which moves the blocking
//! diesel work onto the blocking thread pool and bounds how long the caller waits for it.
//!
//! Time bounds, so that a PostgreSQL server that is down or does not answer costs a request at
//! most about `checkout_timeout + query_timeout`, never a hang:
//! - opening a connection: libpq's `connect_timeout` (added to the URL unless it names one);
//! - waiting for a pooled connection: r2d2's `connection_timeout` (`checkout_timeout`). r2d2 opens
//!   connections on its own threads, so a refused or silent server costs the caller this long and
//!   no more, and keeps trying in the background: once the server is back the next checkout works;
//! - the work itself: the caller stops waiting after `query_timeout` (see [`Db::run`]); a
//!   caller that gave up waiting for a connection never has its work started.
//!
//! A connection that broke while idle in the pool (a server restart, a firewall's idle timeout)
//! never reaches a caller: r2d2 pings each one as it is checked out (`test_on_check_out`) and
//! replaces a dead one before handing it over, which is the "reconnect, then run" step. The work
//! itself is not re-run after a failure: [`Db::run`] does not know whether a closure is idempotent,
//! and a COMMIT may have reached the server before its connection dropped.

pub mod models;
pub mod schema;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgresql");
/// The PostgreSQL advisory lock key held while migrations run ("idpmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x0069_6470_6d69_6772;

/// A connection to either backend; diesel queries written once run on both.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("database connection: {0}")]
    Connection(String),
    #[error("database migrations: {0}")]
    Migration(String),
    /// The server could not be reached, or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl DbError {
    /// Whether the database is down or not answering (rather than refusing a query): the
    /// request may succeed later, and the person is told so.
    pub fn is_unavailable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            DbError::Unavailable(_)
                | DbError::Query(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _,
                ))
        )
    }
}

/// The time bounds of the pool (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub checkout: Duration,
    pub query: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let d = crate::config::DatabaseConfig::default();
        Self { connect: d.connect_timeout, checkout: d.checkout_timeout, query: d.query_timeout }
    }
}

impl Timeouts {
    pub fn from_config(c: &crate::config::DatabaseConfig) -> Self {
        Self { connect: c.connect_timeout, checkout: c.checkout_timeout, query: c.query_timeout }
    }
}

/// Start-up and the command line wait longer for a connection than a request does: a server
/// that is still starting is worth waiting for there, and nobody else is kept waiting.
const PATIENT_CHECKOUT: Duration = Duration::from_secs(10);

/// The PostgreSQL URL with the connection bounds added, unless the operator set them:
/// `connect_timeout` bounds opening; `tcp_user_timeout` and the keepalives drop a connection
/// whose peer vanished (sent data unacknowledged, or an idle link dead) so a blocked call ends
/// and its pool slot comes back instead of waiting for the kernel's two-hour default.
fn with_bounds(url: &str, connect: Duration) -> String {
    let Ok(mut u) = url::Url::parse(url) else { return url.to_string() };
    let present: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
    let secs = connect.as_secs_f64().ceil().max(2.0) as u64;
    let wanted = [
        ("connect_timeout", secs.to_string()),
        ("tcp_user_timeout", "10000".to_string()),
        ("keepalives", "1".to_string()),
        ("keepalives_idle", "30".to_string()),
        ("keepalives_interval", "10".to_string()),
        ("keepalives_count", "3".to_string()),
    ];
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in wanted {
            if !present.iter().any(|p| p == k) {
                q.append_pair(k, &v);
            }
        }
    }
    u.to_string()
}

/// Opens connections by URL scheme and prepares each one for its backend.
/// Its `Debug` shows the URL without its password.
#[derive(Debug, Clone)]
pub struct Manager {
    url: crate::config::SecretUrl,
    connect_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        if let Some(path) = self.url.expose().strip_prefix("sqlite://") {
            let mut conn = SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
            // WAL lets readers proceed during writes; the busy timeout makes writers queue
            // instead of failing; foreign keys are off by default in SQLite.
            conn.batch_execute(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(r2d2::Error::QueryError)?;
            Ok(DbConn::Sqlite(conn))
        } else {
            let url = with_bounds(self.url.expose(), self.connect_timeout);
            let conn = PgConnection::establish(&url).map_err(r2d2::Error::ConnectionError)?;
            Ok(DbConn::Postgresql(conn))
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.ping().map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// A snapshot of the pool's use (for `/metrics`).
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub connections: u32,
    pub idle: u32,
    pub max: u32,
}

/// The connection pool, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<Manager>,
    timeouts: Timeouts,
    /// SQLite is a local file: it cannot be unreachable, its waits are bounded by its busy
    /// timeout, and abandoning a write that is merely queued would answer 503 for work that then
    /// happens. Only PostgreSQL work gets the caller-side deadline.
    remote: bool,
}

impl Db {
    /// Connects (creating the SQLite file's folder if needed) without migrating, with the
    /// default time bounds.
    pub fn connect(url: &str, pool_size: u32) -> Result<Self, DbError> {
        Self::connect_with(url, pool_size, Timeouts::default())
    }

    /// Connects with the given time bounds.
    pub fn connect_with(url: &str, pool_size: u32, timeouts: Timeouts) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| DbError::Connection(format!("{}: {e}", dir.display())))?;
                }
            }
        }
        // Not `build`: it waits for the whole pool to fill within the (short) checkout
        // timeout. The first real checkout below (migrations) waits patiently instead.
        // `min_idle(0)`: connections are opened when asked for, never in the background. A
        // filling pool would have r2d2's threads inside libpq's connect while a short command
        // (the CLI) exits, and libpq torn down under them crashes the process at exit.
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(timeouts.checkout)
            .test_on_check_out(true)
            .build_unchecked(Manager { url: crate::config::SecretUrl::new(url), connect_timeout: timeouts.connect });
        Ok(Self { pool, timeouts, remote: !url.starts_with("sqlite://") })
    }

    /// Applies every pending migration of the backend in use; returns how many ran.
    pub fn migrate(&self) -> Result<usize, DbError> {
        let mut conn = self.get()?;
        let ran = match &mut *conn {
            DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            DbConn::Postgresql(c) => {
                // Several nodes starting at once would otherwise all see the same migrations
                // pending and run them concurrently (the loser fails on a table that now exists).
                // The session lock serialises them: the others wait, then find nothing to do.
                c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                    .map_err(|e| DbError::Migration(format!("migration lock: {e}")))?;
                let ran = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len());
                if let Err(e) = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")) {
                    // Only a broken connection fails here, and PostgreSQL frees the lock with it.
                    tracing::warn!(error = %e, "migration lock not released");
                }
                ran
            }
        };
        ran.map_err(|e| DbError::Migration(e.to_string()))
    }

    /// How many connections the pool holds, how many of them are idle, and its maximum.
    pub fn pool_state(&self) -> PoolState {
        let s = self.pool.state();
        PoolState { connections: s.connections, idle: s.idle_connections, max: self.pool.max_size() }
    }

    /// A pooled connection, for synchronous callers (the CLI, start-up).
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        self.pool.get_timeout(PATIENT_CHECKOUT).map_err(|e| DbError::Unavailable(e.to_string()))
    }

    /// Runs blocking database work off the async executor, within time bounds (PostgreSQL):
    /// - the caller waits at most `checkout_timeout` for a healthy connection — the pool's
    ///   wait and r2d2's check of the connection it picked included, since a server that
    ///   accepts but never answers leaves that check waiting. If the caller gives up first, the
    ///   work never starts: nothing half done, nothing done after the person was told 503;
    /// - once the work has started, the caller waits at most `query_timeout` for it. The work
    ///   cannot be interrupted from here (libpq blocks its thread) and goes on until the server
    ///   answers or the connection drops (see `tcp_user_timeout`). Work cut off this way may
    ///   still complete — as with any timeout — but each unit that writes is one transaction, so
    ///   it lands whole or not at all.
    ///
    /// The second bound covers time in the closure, CPU included; work whose length is the size
    /// of its input goes through [`Db::run_long`].
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        self.run_bounded(f, Some(self.timeouts.query)).await
    }

    /// As [`Db::run`], with the wait for a connection bounded but not the work: for start-up
    /// (generating signing keys) and operators' imports, which take as long as they take.
    pub async fn run_long<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        self.run_bounded(f, None).await
    }

    async fn run_bounded<T, E, F>(&self, f: F, work: Option<Duration>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        use std::sync::atomic::{AtomicU8, Ordering};
        const WAITING: u8 = 0;
        const STARTED: u8 = 1;
        const ABANDONED: u8 = 2;
        let failed = |e: tokio::task::JoinError| E::from(DbError::Connection(format!("database task failed: {e}")));
        let pool = self.pool.clone();
        let phase = std::sync::Arc::new(AtomicU8::new(WAITING));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let worker_phase = phase.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| E::from(DbError::Unavailable(e.to_string())))?;
            // Whoever moves the phase first decides: the caller giving up, or the work starting.
            if worker_phase.compare_exchange(WAITING, STARTED, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return Err(E::from(DbError::Unavailable("the caller stopped waiting".into())));
            }
            let _ = started_tx.send(());
            f(&mut conn)
        });
        if !self.remote {
            return task.await.map_err(failed)?;
        }
        let unavailable = |what: &str, d: Duration| {
            crate::metrics::dependency_timeout("database");
            E::from(DbError::Unavailable(format!("{what} within {} ms", d.as_millis())))
        };
        let checkout = self.timeouts.checkout;
        tokio::select! {
            biased;
            joined = &mut task => return joined.map_err(failed)?,
            started = tokio::time::timeout(checkout, started_rx) => {
                if started.is_err()
                    && phase.compare_exchange(WAITING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok()
                {
                    return Err(unavailable("no healthy connection", checkout));
                }
                // Started (or starting just now): wait for the work.
            }
        }
        match work {
            None => task.await.map_err(failed)?,
            Some(limit) => match tokio::time::timeout(limit, task).await {
                Ok(joined) => joined.map_err(failed)?,
                Err(_) => Err(unavailable("no answer", limit)),
            },
        }
    }

    /// Whether the database answers a trivial query within `within` (readiness).
    pub async fn ping(&self, within: Duration) -> Result<(), DbError> {
        let pool = self.pool.clone();
        let checkout = within.min(self.timeouts.checkout);
        let task = tokio::task::spawn_blocking(move || -> Result<(), DbError> {
            let mut conn = pool.get_timeout(checkout).map_err(|e| DbError::Unavailable(e.to_string()))?;
            conn.batch_execute("SELECT 1").map_err(DbError::Query)
        });
        match tokio::time::timeout(within, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(DbError::Connection(format!("database task failed: {e}"))),
            Err(_) => Err(DbError::Unavailable("no answer in time".into())),
        }
    }
}
