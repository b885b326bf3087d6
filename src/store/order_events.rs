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

/// Orders changed since the recorder last looked (written by the `order_changes` triggers in
/// the changing transaction), with the version each was at, at most `limit`.
pub async fn pending_changes<'e>(db: impl AnyExecutor<'e>, limit: i64) -> StoreResult<Vec<(String, i64)>> {
    let rows = sqlx::query("SELECT order_id, version FROM order_changes LIMIT $1").bind(limit).fetch_all(db).await?;
    rows.iter().map(|r| Ok((r.try_get("order_id")?, r.try_get("version")?))).collect()
}

/// The recorder has looked at `order_id` as of `version`; a change made since stays pending.
pub async fn change_recorded<'e>(db: impl AnyExecutor<'e>, order_id: &str, version: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM order_changes WHERE order_id = $1 AND version = $2")
        .bind(order_id)
        .bind(version)
        .execute(db)
        .await?;
    Ok(())
}

/// Orders with a transfer still confirming (read through the partial index of seen transfers):
/// their depth grows with the chain while no row changes. Read once when a recorder starts.
pub async fn confirming<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT order_id FROM chain_transfers WHERE state = 'seen' AND order_id IS NOT NULL",
    )
    .fetch_all(db)
    .await?)
}

/// Every order's events after `after_seq`, oldest first, at most `limit`: what the stream hub
/// fans out (one query per poll for all open streams).
pub async fn after_all<'e>(
    db: impl AnyExecutor<'e>,
    after_seq: i64,
    limit: i64,
) -> StoreResult<Vec<(String, OrderEvent)>> {
    let rows = sqlx::query("SELECT seq, order_id, event, data FROM order_events WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after_seq)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            let event = OrderEvent { seq: r.try_get("seq")?, event: r.try_get("event")?, data: r.try_get("data")? };
            Ok((r.try_get("order_id")?, event))
        })
        .collect()
}

/// The newest event's id (0 when there is none).
pub async fn max_seq<'e>(db: impl AnyExecutor<'e>) -> StoreResult<i64> {
    let max: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM order_events").fetch_one(db).await?;
    Ok(max.unwrap_or(0))
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

/// The order's timeline for operators: (seq, event, recorded at), oldest first, at most `limit`.
pub async fn timeline<'e>(
    db: impl AnyExecutor<'e>,
    order_id: &str,
    limit: i64,
) -> StoreResult<Vec<(i64, String, i64)>> {
    Ok(sqlx::query_as("SELECT seq, event, created_at FROM order_events WHERE order_id = $1 ORDER BY seq LIMIT $2")
        .bind(order_id)
        .bind(limit)
        .fetch_all(db)
        .await?)
}
