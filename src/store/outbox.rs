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
