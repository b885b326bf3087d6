//! The log of order changes behind the live status streams.

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    pub seq: i64,
    pub event: String,
    pub data: String,
}

pub async fn append<'e>(db: impl AnyExecutor<'e>, order_id: &str, event: &str, data: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO order_events (order_id, event, data, created_at) VALUES ($1, $2, $3, $4)")
        .bind(order_id)
        .bind(event)
        .bind(data)
        .bind(unix_now())
        .execute(db)
        .await?;
    Ok(())
}

/// The order's events after `after_seq`, oldest first, at most `limit`.
pub async fn after<'e>(
    db: impl AnyExecutor<'e>,
    order_id: &str,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<OrderEvent>> {
    let rows =
        sqlx::query("SELECT seq, event, data FROM order_events WHERE order_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")
            .bind(order_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(db)
            .await?;
    rows.iter()
        .map(|r| Ok(OrderEvent { seq: r.try_get("seq")?, event: r.try_get("event")?, data: r.try_get("data")? }))
        .collect()
}

/// The data of the order's newest event, if it has one.
pub async fn latest_data<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT data FROM order_events WHERE order_id = $1 ORDER BY seq DESC LIMIT 1")
        .bind(order_id)
        .fetch_optional(db)
        .await?)
}

/// Orders whose view may have changed: open ones (confirmations grow with the chain), expired
/// ones still inside the late-payment window, and any order changed since `changed_since`.
pub async fn candidates<'e>(
    db: impl AnyExecutor<'e>,
    late_window_start: i64,
    changed_since: i64,
) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE status IN ('awaiting_payment', 'partially_paid') \
         OR (status = 'expired' AND expires_at > $1) OR updated_at >= $2",
    )
    .bind(late_window_start)
    .bind(changed_since)
    .fetch_all(db)
    .await?)
}

/// When the newest event was recorded: where a restarted recorder picks up.
pub async fn last_recorded_at<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MAX(created_at) FROM order_events").fetch_one(db).await?)
}
