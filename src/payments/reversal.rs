//! Undoing a credited payment that a reorg deeper than the confirmations took off the chain.
//! The deposit row is taken back, the app gets back what the payment gave it (an activation:
//! `pending_payment` again, or `suspended` once the platform was told it is active; an
//! extension: its months), and `payment.reversed` goes out through the same outbox.

use serde_json::json;

use crate::store::apps::{self, AppStatus};
use crate::store::orders::{Order, OrderKind};
use crate::store::{StoreError, StoreResult, Tx, deposits, outbox};

pub async fn reverse(tx: &mut Tx, order: &Order, at: i64) -> StoreResult<()> {
    let Some(taken) = deposits::take_back(tx, &order.order_id).await? else {
        return Ok(()); // never credited (a catalog order without an app, say): nothing to undo
    };
    let mut app_after = None;
    if let (Some(app_id), Some(before), Some(credited_end)) = (&taken.app_id, &taken.app_before, taken.app_end_time) {
        let app = apps::get_app(&mut **tx, &order.new.team_id, app_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("deposit for missing app {app_id}")))?;
        // Later extensions stay: only this payment's share of the end time is taken back.
        let share = credited_end - before.end_time.unwrap_or(credited_end);
        let current_end = app.end_time.unwrap_or(credited_end);
        let (status, start, end) = match order.new.kind {
            OrderKind::Create | OrderKind::Catalog if current_end == credited_end => {
                if was_announced(tx, app_id).await? {
                    (AppStatus::Suspended, app.start_time, Some(at.min(current_end)))
                } else {
                    (AppStatus::parse(&before.status)?, before.start_time, before.end_time)
                }
            }
            OrderKind::Create | OrderKind::Catalog => (AppStatus::Suspended, app.start_time, Some(current_end - share)),
            OrderKind::Extend => (app.status, app.start_time, Some(current_end - share)),
        };
        apps::set_lifetime(&mut **tx, app_id, status, start, end).await?;
        app_after = Some(json!({"status": status.as_str(), "app_start_time": start, "app_end_time": end}));
    }
    let data = json!({
        "team_id": order.new.team_id, "app_id": order.new.app_id, "order_id": order.order_id,
        "pay_method": order.new.pay_method.as_str(), "amount": taken.amount,
        "transaction_hash": taken.transaction_hash, "app": app_after,
    });
    outbox::emit(&mut **tx, "payment.reversed", order.new.app_id.as_deref(), data).await?;
    metrics::counter!(crate::telemetry::PAYMENTS_REVERSED).increment(1);
    tracing::error!(
        order_id = order.order_id,
        app_id = order.new.app_id.as_deref().unwrap_or(""),
        tx_hash = taken.transaction_hash.as_deref().unwrap_or(""),
        "a credited payment left the canonical chain: reversed"
    );
    Ok(())
}

/// Whether the platform was told the app is active (its `app.activated` was delivered): then
/// it has run, and is suspended rather than quietly unpaid.
async fn was_announced(tx: &mut Tx, app_id: &str) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_outbox WHERE app_id = $1 AND event_type = 'app.activated' AND delivered_at IS NOT NULL",
    )
    .bind(app_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}
