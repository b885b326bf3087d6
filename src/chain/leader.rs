//! One watcher per chain per database. On PostgreSQL several `serve` processes may share the database;
//! a session advisory lock, held on a connection kept out of the pool, picks the one that
//! watches. When that process dies its session ends, the lock is released, and another takes
//! over. SQLite is one process's file: the lease is always granted.

use std::time::Duration;

use sqlx::Acquire;
use sqlx::AnyConnection;
use tokio_util::sync::CancellationToken;

use crate::store::{Backend, Store, StoreResult};

/// An arbitrary constant naming paywatch's watcher locks ("paywatch" in ASCII); each chain's
/// lock is this plus its chain id, so processes may split the chains between them.
const LOCK_KEY: i64 = 0x7061_7977_6174_6368;

fn lock_key(chain_id: u64) -> i64 {
    LOCK_KEY.wrapping_add(chain_id as i64)
}
const RETRY: Duration = Duration::from_secs(1);

pub struct Lease {
    conn: Option<AnyConnection>,
    key: i64,
}

/// Waits until this process may watch; `None` when `shutdown` came first.
pub async fn acquire(store: &Store, chain_id: u64, shutdown: &CancellationToken) -> Option<Lease> {
    if shutdown.is_cancelled() {
        return None;
    }
    let key = lock_key(chain_id);
    if store.backend() == Backend::Sqlite {
        return Some(Lease { conn: None, key });
    }
    loop {
        match try_lock(store, key).await {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "watcher lock unavailable"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(RETRY) => {}
        }
    }
}

async fn try_lock(store: &Store, key: i64) -> StoreResult<Option<Lease>> {
    let mut conn = store.pool().acquire().await?.detach();
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
    Ok(got.then_some(Lease { conn: Some(conn), key }))
}

/// Who holds a chain's watcher lease on PostgreSQL: the holding session's pid, client address
/// and application name, from `pg_locks` (None when nobody holds it; SQLite has no such row).
pub async fn holder(store: &Store, chain_id: u64) -> StoreResult<Option<String>> {
    if store.backend() == Backend::Sqlite {
        return Ok(None);
    }
    let key = lock_key(chain_id);
    // A bigint advisory lock is kept as two 32-bit halves: classid (high) and objid (low).
    let row: Option<(i32, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.pid, host(a.client_addr), a.application_name FROM pg_locks l \
         JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2",
    )
    .bind(key >> 32)
    .bind(key & 0xffff_ffff)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|(pid, addr, app)| {
        let app = app.filter(|a| !a.is_empty()).map(|a| format!(" {a}")).unwrap_or_default();
        format!("pid {pid} at {}{app}", addr.unwrap_or_else(|| "local socket".into()))
    }))
}

impl Lease {
    /// Cancels `lost` when the lock's session is gone (so the watcher stops acting).
    pub async fn keep(mut self, lost: CancellationToken) {
        let Some(conn) = self.conn.as_mut() else {
            return lost.cancelled().await;
        };
        loop {
            tokio::select! {
                _ = lost.cancelled() => break,
                _ = tokio::time::sleep(RETRY) => {
                    let alive = match conn.acquire().await {
                        Ok(c) => sqlx::query("SELECT 1").execute(c).await.is_ok(),
                        Err(_) => false,
                    };
                    if !alive {
                        tracing::error!("watcher lock session lost; standing down");
                        lost.cancel();
                        break;
                    }
                }
            }
        }
        if let Some(conn) = self.conn.as_mut() {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut *conn).await;
        }
    }
}
