//! Webhook events, written in the same transaction as the change that causes them.

use serde_json::{Value, json};
use sqlx::any::AnyExecutor;
use uuid::Uuid;

use super::{StoreResult, unix_now};

/// Adds an event `{"id", "type", "created_at", "data"}` to the outbox; returns its id.
pub async fn emit<'e>(
    db: impl AnyExecutor<'e>,
    event_type: &str,
    app_id: Option<&str>,
    data: Value,
) -> StoreResult<String> {
    let event_id = Uuid::new_v4().to_string();
    let now = unix_now();
    let payload = json!({"id": event_id, "type": event_type, "created_at": now, "data": data});
    sqlx::query(
        "INSERT INTO webhook_outbox (event_id, event_type, app_id, payload, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&event_id)
    .bind(event_type)
    .bind(app_id)
    .bind(payload.to_string())
    .bind(now)
    .execute(db)
    .await?;
    Ok(event_id)
}

/// Event types in the order they were written, for one app (tests and the admin API).
pub async fn types_for_app<'e>(db: impl AnyExecutor<'e>, app_id: &str) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT event_type FROM webhook_outbox WHERE app_id = $1 ORDER BY seq")
        .bind(app_id)
        .fetch_all(db)
        .await?)
}

/// An event waiting for delivery.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingEvent {
    pub event_id: String,
    pub payload: String,
    pub attempts: i64,
    /// Attempts made before the last redelivery (not counted against `max_attempts`).
    pub attempts_before_redelivery: i64,
}

/// Events due at `now`, oldest first, at most one per app: an app's later event waits until
/// its earlier ones are delivered (or given up), so a receiver sees each app's events in order.
pub async fn due<'e>(db: impl AnyExecutor<'e>, now: i64, limit: i64) -> StoreResult<Vec<PendingEvent>> {
    let rows = sqlx::query(
        "SELECT o.event_id, o.payload, o.attempts, o.attempts_before_redelivery FROM webhook_outbox o \
         WHERE o.delivered_at IS NULL AND o.failed_at IS NULL AND o.next_attempt_at <= $1 \
         AND NOT EXISTS (SELECT 1 FROM webhook_outbox e WHERE e.app_id = o.app_id AND e.seq < o.seq \
                         AND e.delivered_at IS NULL AND e.failed_at IS NULL) \
         ORDER BY o.seq LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok(<PendingEvent as sqlx::FromRow<_>>::from_row(r)?)).collect()
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

/// One delivery attempt as it happened.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub event_id: &'a str,
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<u16>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
}

/// Records an attempt and its consequence in one transaction.
pub async fn record_attempt(tx: &mut super::Tx, a: &Attempt<'_>, result: AttemptResult) -> StoreResult<()> {
    let Attempt { event_id, attempt, at, status_code, error, duration_ms } = *a;
    sqlx::query(
        "INSERT INTO webhook_attempts (event_id, attempt, attempted_at, status_code, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id, attempt) DO NOTHING",
    )
    .bind(event_id)
    .bind(attempt)
    .bind(at)
    .bind(status_code.map(i64::from))
    .bind(error)
    .bind(duration_ms)
    .execute(&mut **tx)
    .await?;
    let (delivered, failed, next) = match result {
        AttemptResult::Delivered => (Some(at), None, at),
        AttemptResult::RetryAt(next) => (None, None, next),
        AttemptResult::GiveUp => (None, Some(at), at),
    };
    sqlx::query(
        "UPDATE webhook_outbox SET attempts = $1, delivered_at = $2, failed_at = $3, next_attempt_at = $4, last_error = $5 \
         WHERE event_id = $6",
    )
    .bind(attempt)
    .bind(delivered)
    .bind(failed)
    .bind(next)
    .bind(error)
    .bind(event_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One row of the admin delivery list.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub app_id: Option<String>,
    pub state: &'static str,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
}

/// Which deliveries a list holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Which<'a> {
    #[default]
    All,
    /// Failed or still pending (the console's backlog).
    Undelivered,
    /// The events of one app.
    App(&'a str),
}

/// The newest `limit` events with their delivery state.
pub async fn list<'e>(db: impl AnyExecutor<'e>, which: Which<'_>, limit: i64) -> StoreResult<Vec<Delivery>> {
    use sqlx::Row;
    let filter = match which {
        Which::All => "$2 = ''",
        Which::Undelivered => "$2 = '' AND delivered_at IS NULL",
        Which::App(_) => "app_id = $2",
    };
    let sql = format!(
        "SELECT event_id, event_type, app_id, attempts, last_error, created_at, delivered_at, failed_at \
         FROM webhook_outbox WHERE {filter} ORDER BY seq DESC LIMIT $1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .bind(if let Which::App(app) = which { app } else { "" })
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            let delivered_at: Option<i64> = r.try_get("delivered_at")?;
            let failed_at: Option<i64> = r.try_get("failed_at")?;
            Ok(Delivery {
                event_id: r.try_get("event_id")?,
                event_type: r.try_get("event_type")?,
                app_id: r.try_get("app_id")?,
                state: match (delivered_at, failed_at) {
                    (Some(_), _) => "delivered",
                    (None, Some(_)) => "failed",
                    _ => "pending",
                },
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                created_at: r.try_get("created_at")?,
                delivered_at,
            })
        })
        .collect()
}

/// (pending, failed) events: the webhook backlog.
pub async fn backlog<'e>(db: impl AnyExecutor<'e>) -> StoreResult<(i64, i64)> {
    let (pending, failed): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN failed_at IS NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) \
         FROM webhook_outbox WHERE delivered_at IS NULL",
    )
    .fetch_one(db)
    .await?;
    Ok((pending, failed))
}

/// Queues an event again (after it failed, or to send it once more); false if unknown.
pub async fn redeliver<'e>(db: impl AnyExecutor<'e>, event_id: &str, now: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhook_outbox SET delivered_at = NULL, failed_at = NULL, next_attempt_at = $1, \
         attempts_before_redelivery = attempts WHERE event_id = $2",
    )
    .bind(now)
    .bind(event_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Attempts recorded for an event: (attempt, status code, error).
pub async fn attempts<'e>(
    db: impl AnyExecutor<'e>,
    event_id: &str,
) -> StoreResult<Vec<(i64, Option<i64>, Option<String>)>> {
    Ok(sqlx::query_as("SELECT attempt, status_code, error FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt")
        .bind(event_id)
        .fetch_all(db)
        .await?)
}

/// Retention: removes events delivered before `before`, with their attempts. Events given up
/// stay (the operator may redeliver them). Returns how many events went.
pub async fn compact_delivered(tx: &mut super::Tx, before: i64) -> StoreResult<u64> {
    sqlx::query(
        "DELETE FROM webhook_attempts WHERE event_id IN \
         (SELECT event_id FROM webhook_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1)",
    )
    .bind(before)
    .execute(&mut **tx)
    .await?;
    let done = sqlx::query("DELETE FROM webhook_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
        .bind(before)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected())
}
