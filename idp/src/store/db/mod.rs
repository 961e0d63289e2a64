//! Relational storage over SQLite (embedded default) and PostgreSQL from one codebase:
//! one `MultiConnection` enum, one schema, one migrations folder per backend, and an r2d2 pool
//! chosen by the URL scheme. Async callers go through [`Db::run`], which moves the blocking
//! diesel work onto the blocking thread pool.

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
}

/// Opens connections by URL scheme and prepares each one for its backend.
/// Its `Debug` shows the URL without its password.
#[derive(Debug, Clone)]
pub struct Manager {
    url: crate::config::SecretUrl,
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
            let conn = PgConnection::establish(self.url.expose()).map_err(r2d2::Error::ConnectionError)?;
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
}

impl Db {
    /// Connects (creating the SQLite file's folder if needed) without migrating.
    pub fn connect(url: &str, pool_size: u32) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| DbError::Connection(format!("{}: {e}", dir.display())))?;
                }
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .build(Manager { url: crate::config::SecretUrl::new(url) })
            .map_err(|e| DbError::Connection(e.to_string()))?;
        Ok(Self { pool })
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

    /// A pooled connection, for synchronous callers (the CLI).
    pub fn get(&self) -> Result<r2d2::PooledConnection<Manager>, DbError> {
        self.pool.get().map_err(|e| DbError::Connection(e.to_string()))
    }

    /// Runs blocking database work off the async executor.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| E::from(DbError::Connection(e.to_string())))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Connection(format!("database task failed: {e}"))))?
    }
}
