//! Idempotency-Key records. A key is claimed before the work (the primary key makes one claim
//! win under concurrency) and completed with the answer that later calls replay. A claim is
//! leased: when its request died without an answer, a retry after the lease takes it over and
//! finds in `done` what the first run created (written in the work's own transaction).

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreError, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This call owns the key: do the work, then `complete`. `done` is what an earlier run
    /// under this key created before its request died (a takeover after the lease).
    Fresh { done: Option<String> },
    /// The key was used with the same body and answered: replay the answer.
    Replay { status: u16, body: String },
    /// The key was used with the same body and is still being worked on.
    InFlight,
    /// The key was used with a different body.
    Mismatch,
}

pub async fn claim<'e>(
    db: impl AnyExecutor<'e> + Copy,
    team_id: &str,
    key: &str,
    request_hash: &str,
    now: i64,
    lease_secs: i64,
) -> StoreResult<Claim> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (team_id, idempotency_key, request_hash, created_at, lease_until) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id, idempotency_key) DO NOTHING",
    )
    .bind(team_id)
    .bind(key)
    .bind(request_hash)
    .bind(now)
    .bind(now + lease_secs)
    .execute(db)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::Fresh { done: None });
    }
    let row = sqlx::query(
        "SELECT request_hash, response_status, response_body, done FROM idempotency_keys \
         WHERE team_id = $1 AND idempotency_key = $2",
    )
    .bind(team_id)
    .bind(key)
    .fetch_one(db)
    .await?;
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != request_hash {
        return Ok(Claim::Mismatch);
    }
    if let (Some(status), Some(body)) =
        (row.try_get::<Option<i64>, _>("response_status")?, row.try_get::<Option<String>, _>("response_body")?)
    {
        return Ok(Claim::Replay {
            status: u16::try_from(status).map_err(|_| StoreError::Corrupt(format!("idempotency status {status}")))?,
            body,
        });
    }
    // In flight, or its request died: one retry takes over a lapsed lease.
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET lease_until = $1 WHERE team_id = $2 AND idempotency_key = $3 \
         AND response_status IS NULL AND (lease_until IS NULL OR lease_until < $4)",
    )
    .bind(now + lease_secs)
    .bind(team_id)
    .bind(key)
    .bind(now)
    .execute(db)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Claim::Fresh { done: row.try_get("done")? });
    }
    Ok(Claim::InFlight)
}

/// Saves what the work under a key created, inside the work's own transaction, so a retry
/// that takes the key over answers it instead of doing the work again.
pub async fn save_done<'e>(db: impl AnyExecutor<'e>, team_id: &str, key: &str, done: &str) -> StoreResult<()> {
    sqlx::query("UPDATE idempotency_keys SET done = $1 WHERE team_id = $2 AND idempotency_key = $3")
        .bind(done)
        .bind(team_id)
        .bind(key)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn complete<'e>(
    db: impl AnyExecutor<'e>,
    team_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_status = $1, response_body = $2 WHERE team_id = $3 AND idempotency_key = $4",
    )
    .bind(status as i64)
    .bind(body)
    .bind(team_id)
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

/// Gives up a claim whose call failed, so the client may retry with the same key. A claim
/// whose work already committed something (`save_done`, in the work's own transaction) keeps
/// it, with its lease lapsed: the retry takes it over and answers what was made instead of
/// making it again (a second order, stock reserved twice). Only a claim with nothing saved is
/// dropped.
pub async fn release<'e>(db: impl AnyExecutor<'e> + Copy, team_id: &str, key: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET lease_until = 0 WHERE team_id = $1 AND idempotency_key = $2 \
         AND response_status IS NULL AND done IS NOT NULL",
    )
    .bind(team_id)
    .bind(key)
    .execute(db)
    .await?;
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE team_id = $1 AND idempotency_key = $2 AND response_status IS NULL \
         AND done IS NULL",
    )
    .bind(team_id)
    .bind(key)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets keys older than `before` (unix seconds).
pub async fn purge_older_than<'e>(db: impl AnyExecutor<'e>, before: i64) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1").bind(before).execute(db).await?;
    Ok(done.rows_affected())
}
