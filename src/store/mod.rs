//! Storage through sqlx's `Any` driver: one set of queries for SQLite (the default) and
//! PostgreSQL, chosen by the URL scheme. Each concern has its own module; they all take an
//! executor, so callers can compose them inside one transaction.

pub mod apps;
pub mod card_charges;
pub mod catalog;
pub mod columns;
pub mod cursor;
pub mod deposit_filter;
pub mod deposits;
pub mod exports;
pub mod gasless;
pub mod idempotency;
pub mod job_leases;
pub mod order_events;
pub mod order_search;
pub mod orders;
pub mod outbox;
pub mod products;
pub mod refunds;
pub mod stray_funds;
pub mod sweeps;
pub mod teams;
pub mod transfers;
pub mod webhook_endpoint;

use std::path::Path;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database url: {0}")]
    Url(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// A conditional write found the row changed by another writer: recompute and retry.
    #[error("conflict: {0}")]
    Conflict(String),
}

impl StoreError {
    /// The database is busy right now (SQLite busy or locked past its busy timeout;
    /// PostgreSQL lock timeout, deadlock or serialization failure): worth retrying soon.
    pub fn is_busy(&self) -> bool {
        let StoreError::Sqlx(sqlx::Error::Database(e)) = self else { return false };
        let code = e.code();
        matches!(code.as_deref(), Some("5" | "6" | "261" | "262" | "517" | "55P03" | "40P01" | "40001"))
            || e.message().contains("database is locked")
            || e.message().contains("database table is locked")
    }

    /// A unique or primary-key constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Sqlx(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: show only the backend.
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Connects (creating a SQLite file and its folder when missing) and checks the connection.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, None).await
    }

    /// The same with a pool of `max_connections` (None: 4 on SQLite, 10 on PostgreSQL).
    pub async fn connect_with(url: &str, max_connections: Option<u32>) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            (Backend::Sqlite, sqlite_url(rest)?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url("must start with sqlite:, postgres:// or postgresql://".into()));
        };
        let options: AnyConnectOptions = url.parse()?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.unwrap_or(if backend == Backend::Sqlite { 4 } else { 10 }))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the API read while the watcher writes; foreign keys are off by
                        // default in SQLite; the busy timeout queues writers instead of failing them.
                        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&self.pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&self.pool).await?,
        }
        Ok(())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads first and writes later fails with "database is
    /// locked" when another writer got in between, instead of waiting its turn.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// A read-only snapshot, for answers built from several queries that must agree (an
    /// order and its transfers, say) while the watcher commits beside them.
    pub async fn begin_read(&self) -> StoreResult<Tx> {
        Ok(match self.backend {
            // A deferred transaction reads one snapshot from its first read (WAL mode).
            Backend::Sqlite => self.pool.begin_with("BEGIN DEFERRED").await?,
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
        })
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `sqlite://data/paywatch.db` → a URL sqlx opens read-write-create, after making the folder.
fn sqlite_url(rest: &str) -> StoreResult<String> {
    let path = rest.trim_start_matches("//");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() {
        return Err(StoreError::Url("sqlite: needs a file path".into()));
    }
    if path == ":memory:" {
        // One database per connection: only for a pool of one (the simulator's).
        return Ok("sqlite::memory:".to_string());
    }
    if path != ":memory:"
        && let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Url(format!("cannot create {}: {e}", dir.display())))?;
    }
    let query = if query.is_empty() { "mode=rwc".to_string() } else { format!("{query}&mode=rwc") };
    Ok(format!("sqlite://{path}?{query}"))
}

/// Seconds since the epoch, the time unit of every stored timestamp.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
