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
            DbConn::Postgresql(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len()),
        };
        ran.map_err(|e| DbError::Migration(e.to_string()))
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
