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

/// Orders whose view may have changed: any order changed since `changed_since` (new, paid,
/// expired, a transfer seen), and orders with a transfer still confirming (its depth grows
/// with the chain while the order row stays as it is).
pub async fn candidates<'e>(db: impl AnyExecutor<'e>, changed_since: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT order_id FROM orders WHERE updated_at >= $1 \
         UNION SELECT order_id FROM chain_transfers WHERE state = 'seen' AND order_id IS NOT NULL",
    )
    .bind(changed_since)
    .fetch_all(db)
    .await?)
}

/// When the newest event was recorded: where a restarted recorder picks up.
pub async fn last_recorded_at<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MAX(created_at) FROM order_events").fetch_one(db).await?)
}

/// Retention: removes views older than `before` of orders that are settled (paid or expired),
/// keeping each order's last view (a stream opened later still starts from it). Returns how
/// many rows went.
pub async fn compact_settled<'e>(db: impl AnyExecutor<'e>, before: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM order_events WHERE created_at < $1 \
         AND order_id IN (SELECT order_id FROM orders WHERE status IN ('paid', 'expired')) \
         AND seq < (SELECT MAX(e.seq) FROM order_events e WHERE e.order_id = order_events.order_id)",
    )
    .bind(before)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
