//! What of an order's money is stray: received at its deposit address but crediting nothing.
//! Decided by the money model (`order_money::judge`) whenever the order is settled (and by
//! the expiry job once an order's late window has closed), so a reorg or a later payment keeps
//! it true. New or grown stray money is announced by a `funds.unattributed` event.

use serde_json::json;

use super::credit::Rules;
use super::order_money::Stray;
use crate::money::format_base_units;
use crate::store::orders::{self, Order};
use crate::store::stray_funds::{self, StrayAt};
use crate::store::{StoreResult, Tx, outbox};

/// Writes the order's unattributed rows as the money model decided them (`Decision::stray`):
/// each row stays where the money is, to be swept or refunded there. A new or grown row is
/// announced.
pub async fn write(tx: &mut Tx, rules: &Rules, order: &Order, stray: &[Stray]) -> StoreResult<()> {
    let Some(crypto) = &order.new.crypto else { return Ok(()) };
    for s in stray {
        let (chain_id, token) = s.bucket;
        let at_address = StrayAt { order, chain_id, token, reason: s.reason, amount: s.open };
        if let Some(fund_id) = stray_funds::set_unattributed(tx, &at_address).await? {
            let decimals = rules.decimals(chain_id, token);
            let data = json!({
                "fund_id": fund_id, "team_id": order.new.team_id, "order_id": order.order_id, "chain_id": chain_id,
                "token": orders::address_text(&token), "deposit_address": orders::address_text(&crypto.deposit_address),
                "reason": s.reason, "amount": format_base_units(s.open, decimals), "amount_base": s.open.to_string(),
            });
            outbox::emit(&mut **tx, "funds.unattributed", None, data).await?;
        }
    }
    Ok(())
}

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
