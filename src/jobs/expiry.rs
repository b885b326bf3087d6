//! Time-driven state changes, each a function of the store and "now" (so tests move the
//! clock by passing another now). Every change is a conditional update in its own
//! transaction with its event: running twice, or on two processes, changes nothing more.
//! Orders expire by the chain's clock (`order_clock`): never while the watcher is behind.

use serde_json::json;
use sqlx::Row;

use crate::store::{Store, StoreResult, cursor, outbox};

/// The time unpaid orders are judged by: the timestamp of the last block the watcher
/// processed, the least over the chains (an order can be paid on any of them), so a payment
/// mined before expiry but not yet read still counts. Only when every watcher is caught up
/// (nothing unread could pay them) does the wall clock move it further, for a quiet chain
/// whose last block is old.
pub async fn order_clock(store: &Store, chain_ids: &[u64], watcher_caught_up: bool, now: i64) -> StoreResult<i64> {
    let chain = cursor::chain_time(store.pool(), chain_ids).await?;
    Ok(if watcher_caught_up { chain.max(now) } else { chain })
}

/// Unpaid orders past their expiry at `now` (the chain's clock, see `order_clock`) become
/// `expired`; an app that never activated becomes `cancelled`, and a catalog order's reserved
/// stock goes back on sale. An order with a transfer mined before its expiry and still
/// confirming waits for it. A payment within the late window still credits them later.
pub async fn expire_orders(store: &Store, now: i64) -> StoreResult<usize> {
    let due = sqlx::query(
        "SELECT order_id, team_id, app_id, kind FROM orders o \
         WHERE status IN ('awaiting_payment', 'partially_paid') AND expires_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM chain_transfers t WHERE t.order_id = o.order_id AND t.state = 'seen' \
             AND COALESCE(t.block_time, 0) <= o.expires_at)",
    )
    .bind(now)
    .fetch_all(store.pool())
    .await?;
    let mut expired = 0;
    for row in due {
        let due = crate::payments::expiry::Due {
            order_id: row.try_get("order_id")?,
            team_id: row.try_get("team_id")?,
            app_id: row.try_get("app_id")?,
            kind: row.try_get("kind")?,
        };
        if crate::payments::expiry::expire(store, &due, now).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Active apps whose paid time is over become `expired`.
pub async fn expire_apps(store: &Store, now: i64) -> StoreResult<usize> {
    let due: Vec<(String, String)> =
        sqlx::query_as("SELECT app_id, team_id FROM apps WHERE status = 'active' AND end_time <= $1")
            .bind(now)
            .fetch_all(store.pool())
            .await?;
    let mut expired = 0;
    for (app_id, team_id) in due {
        let mut tx = store.begin().await?;
        let done = sqlx::query(
            "UPDATE apps SET status = 'expired', updated_at = $1 WHERE app_id = $2 AND status = 'active' AND end_time <= $1",
        )
        .bind(now)
        .bind(&app_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            outbox::emit(&mut *tx, "app.expired", Some(&app_id), json!({"team_id": team_id, "app_id": app_id})).await?;
            expired += 1;
        }
        tx.commit().await?;
    }
    Ok(expired)
}

/// One `app.expiring` event per app and end time, `notice_days` before the end.
pub async fn notify_expiring(store: &Store, now: i64, notice_days: u64) -> StoreResult<usize> {
    let horizon = now + (notice_days * 86_400) as i64;
    let due: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT app_id, team_id, end_time FROM apps WHERE status = 'active' AND end_time > $1 AND end_time <= $2 \
         AND (expiring_notice_for IS NULL OR expiring_notice_for <> end_time)",
    )
    .bind(now)
    .bind(horizon)
    .fetch_all(store.pool())
    .await?;
    let mut sent = 0;
    for (app_id, team_id, end_time) in due {
        let mut tx = store.begin().await?;
        let done = sqlx::query(
            "UPDATE apps SET expiring_notice_for = $1 WHERE app_id = $2 AND end_time = $1 \
             AND (expiring_notice_for IS NULL OR expiring_notice_for <> $1)",
        )
        .bind(end_time)
        .bind(&app_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            let data = json!({"team_id": team_id, "app_id": app_id, "app_end_time": end_time});
            outbox::emit(&mut *tx, "app.expiring", Some(&app_id), data).await?;
            sent += 1;
        }
        tx.commit().await?;
    }
    Ok(sent)
}
