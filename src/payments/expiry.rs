//! An unpaid order past its expiry becomes `expired` (the job finds them by the chain's clock,
//! `jobs::expiry`): under the order's lock, only while it is still unpaid and no transfer mined
//! before its expiry is confirming, with its event, its app cancelled when it never activated
//! and a catalog order's stock back on sale.

use serde_json::json;

use crate::store::{Store, StoreResult, apps, orders, outbox, products};

/// An order the job found due.
pub struct Due {
    pub order_id: String,
    pub team_id: String,
    pub app_id: Option<String>,
    pub kind: String,
}

/// Expires `due` at `now`; false when it was paid (or expired elsewhere) since it was found.
pub async fn expire(store: &Store, due: &Due, now: i64) -> StoreResult<bool> {
    let mut tx = store.begin().await?;
    orders::lock(&mut tx, &due.order_id).await?;
    if !orders::expire_unpaid(&mut *tx, &due.order_id).await? {
        return Ok(false);
    }
    let data = json!({"team_id": due.team_id, "app_id": due.app_id, "order_id": due.order_id});
    outbox::emit(&mut *tx, "order.expired", due.app_id.as_deref(), data).await?;
    if due.kind == "catalog" {
        products::return_reserved(&mut tx, &due.order_id, now).await?;
    }
    if let (Some(app_id), "create") = (&due.app_id, due.kind.as_str()) {
        apps::cancel_pending(&mut *tx, app_id, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}
