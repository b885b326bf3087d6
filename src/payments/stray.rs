//! What of an order's money is stray: received at its deposit address but crediting nothing.
//! Decided by the money model (`order_money::judge`) whenever the order is settled
//! (`credit::write_stray`), so a reorg or a later payment keeps it true; and here for orders
//! no step settles again: once an order's late window has closed (the expiry job).

use super::credit::Rules;
use crate::store::StoreResult;
use crate::store::stray_funds;

/// Orders whose late window closed by chain time `clock` with money at their address that no
/// step has judged since: each is recomputed now. Returns how many.
pub async fn collect_closed(store: &crate::store::Store, rules: &Rules, clock: i64) -> StoreResult<usize> {
    let ids = stray_funds::closed_orders_unchecked(store.pool(), clock - rules.late_window_secs).await?;
    for order_id in &ids {
        let mut tx = store.begin().await?;
        super::credit::settle(&mut tx, rules, order_id, clock).await?;
        tx.commit().await?;
    }
    Ok(ids.len())
}
