//! What of an order's money is stray: received at its deposit address but crediting nothing.
//! Recomputed from its confirmed transfers whenever the order is settled (and by the expiry job
//! once an order's late window has closed), so a reorg or a later payment keeps it true.
//! New or grown stray money is announced by a `funds.unattributed` event.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use serde_json::json;

use super::credit::Rules;
use super::order_state::paid_threshold;
use crate::money::{convert_units, format_base_units};
use crate::store::orders::{self, OrderStatus};
use crate::store::stray_funds::{self, StrayAt};
use crate::store::{StoreResult, Tx, outbox, transfers};

/// Brings the order's unattributed rows up to date, judged at chain time `at`. Money is kept
/// per (chain, token): each row stays where the money is, to be swept or refunded there.
pub async fn recompute(tx: &mut Tx, rules: &Rules, order_id: &str, at: i64) -> StoreResult<()> {
    let Some(order) = orders::get_any(&mut **tx, order_id).await? else { return Ok(()) };
    let Some(crypto) = &order.new.crypto else { return Ok(()) };
    // (chain, token) → (received in its units, the same in the order's units if it counts).
    let mut received: BTreeMap<(u64, Address), (U256, Option<U256>)> = BTreeMap::new();
    for (t, state) in transfers::for_order(&mut **tx, order_id).await? {
        if state == "confirmed" {
            let counted = rules.counted_units(crypto, &t);
            let entry = received.entry((t.chain_id, t.token)).or_default();
            entry.0 = entry.0.saturating_add(t.amount_base);
            entry.1 = counted.map(|c| entry.1.unwrap_or_default().saturating_add(c));
        }
    }
    let closed_for_good =
        order.progress.status == OrderStatus::Expired && at > order.new.expires_at + rules.late_window_secs;
    let threshold = paid_threshold(crypto.amount_base, rules.tolerance);
    let counted_total: U256 = received.values().filter_map(|(_, c)| *c).fold(U256::ZERO, U256::saturating_add);
    // An overpayment is stray where it landed: the order's own token first, then the others.
    let own = (crypto.chain_id, crypto.token_address);
    let mut order_of_buckets: Vec<(u64, Address)> = received.keys().copied().collect();
    order_of_buckets.sort_by_key(|k| *k != own);
    let mut overpaid_left = order.progress.overpaid_base;
    let order_decimals = rules.decimals(crypto.chain_id, crypto.token_address);
    for key @ (chain_id, token) in order_of_buckets {
        let (amount, counted) = received[&key];
        let (stray, reason) = match counted {
            None => (amount, "wrong_token"),
            Some(units) if order.progress.status == OrderStatus::Paid => {
                let taken = units.min(overpaid_left);
                overpaid_left -= taken;
                let sent_decimals = rules.decimals(chain_id, token);
                (convert_units(taken, order_decimals, sent_decimals).min(amount), "overpaid")
            }
            Some(_) if closed_for_good && counted_total >= threshold => (amount, "after_late_window"),
            Some(_) if closed_for_good => (amount, "partial_on_expired_order"),
            Some(_) => (U256::ZERO, ""),
        };
        let open = stray.saturating_sub(stray_funds::settled_from(&mut **tx, order_id, chain_id, &token).await?);
        let at_address = StrayAt { order: &order, chain_id, token, reason, amount: open };
        if let Some(fund_id) = stray_funds::set_unattributed(tx, &at_address).await? {
            let decimals = rules.decimals(chain_id, token);
            let data = json!({
                "fund_id": fund_id, "team_id": order.new.team_id, "order_id": order_id, "chain_id": chain_id,
                "token": orders::address_text(&token), "deposit_address": orders::address_text(&crypto.deposit_address),
                "reason": reason, "amount": format_base_units(open, decimals), "amount_base": open.to_string(),
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
        recompute(&mut tx, rules, order_id, clock).await?;
        tx.commit().await?;
    }
    Ok(ids.len())
}
