//! The order as payers and frontends see it: amounts in token units, each payment with its
//! confirmations. Shared by the order endpoint, the checkout page and the live event stream.

use alloy::primitives::U256;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::money::format_base_units;
use crate::payments::checkout::payment_uri;
use crate::store::orders::{self, Order};
use crate::store::{Store, StoreResult, transfers};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PaymentView {
    pub tx_hash: String,
    pub log_index: u64,
    pub block_number: u64,
    /// The block's timestamp (unix seconds): the time the payment counts as made.
    pub block_time: Option<i64>,
    pub from: String,
    pub token: String,
    pub amount: String,
    pub state: String,
    pub confirmations: u64,
    /// False for a transfer of another token: recorded and shown, never credited.
    pub counted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub app_id: Option<String>,
    pub kind: String,
    pub pay_method: String,
    pub status: String,
    pub period: i64,
    pub usd: String,
    pub expected: String,
    pub seen: String,
    pub confirmed: String,
    pub overpaid: String,
    /// What is still owed in confirmed payments ("0" once paid; card orders owe nothing).
    pub remaining: String,
    pub late: bool,
    pub address: Option<String>,
    pub token: Option<String>,
    pub chain_id: Option<u64>,
    pub confirmations_required: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub payment_uri: Option<String>,
    pub payments: Vec<PaymentView>,
}

/// The order as a frontend shows it, with each payment's depth below `head`. The order and its
/// transfers are read in one statement (one snapshot), so the sums and the payments agree. `team_id` scopes
/// the lookup to one team; the checkout page passes `None` (the order id is the capability).
pub async fn load(
    store: &Store,
    config: &Config,
    head: u64,
    team_id: Option<&str>,
    order_id: &str,
) -> StoreResult<Option<OrderView>> {
    let found = orders::with_transfers(store.pool(), team_id, order_id).await?;
    Ok(found.map(|(order, rows)| build(config, head, order, rows)))
}

pub fn build(config: &Config, head: u64, order: Order, rows: Vec<(transfers::Transfer, String)>) -> OrderView {
    let decimals = order.new.pay_method.token().and_then(|t| config.tokens.get(&t)).map(|t| t.decimals).unwrap_or(0);
    let crypto = order.new.crypto.as_ref();
    let payments = rows
        .into_iter()
        .map(|(t, st)| PaymentView {
            tx_hash: format!("{:#x}", t.tx_hash),
            log_index: t.log_index,
            block_number: t.block_number,
            block_time: t.block_time,
            from: orders::address_text(&t.from),
            token: orders::address_text(&t.token),
            amount: format_base_units(t.amount_base, decimals_of(config, &t.token).unwrap_or(decimals)),
            state: st,
            confirmations: (head + 1).saturating_sub(t.block_number),
            counted: crypto.is_some_and(|c| c.token_address == t.token),
        })
        .collect();
    // A large order waits for `[chain.finality] large`, and says so.
    let required = match &config.chain.finality {
        Some(f) if order.new.usd >= f.large_usd.0 => f.large,
        _ => config.chain.confirmations,
    };
    let confirmations_required = crypto.map(|_| match required {
        crate::config::Confirmations::Blocks(n) => n.to_string(),
        crate::config::Confirmations::Finalized => "finalized".to_string(),
        crate::config::Confirmations::Safe => "safe".to_string(),
    });
    OrderView {
        order_id: order.order_id.clone(),
        app_id: order.new.app_id.clone(),
        kind: order.new.kind.as_str().to_string(),
        pay_method: order.new.pay_method.as_str().to_string(),
        status: order.progress.status.as_str().to_string(),
        period: order.new.period_months,
        usd: order.new.usd.normalize().to_string(),
        expected: order.new.amount.normalize().to_string(),
        seen: format_base_units(order.progress.seen_base, decimals),
        confirmed: format_base_units(order.progress.confirmed_base, decimals),
        overpaid: format_base_units(order.progress.overpaid_base, decimals),
        remaining: format_base_units(
            match crypto {
                Some(c) if order.progress.status != orders::OrderStatus::Paid => {
                    c.amount_base.saturating_sub(order.progress.confirmed_base)
                }
                _ => U256::ZERO,
            },
            decimals,
        ),
        late: order.progress.late,
        address: crypto.map(|c| orders::address_text(&c.deposit_address)),
        token: crypto.map(|c| orders::address_text(&c.token_address)),
        chain_id: crypto.map(|c| c.chain_id),
        confirmations_required,
        expires_at: order.new.expires_at,
        paid_at: order.progress.paid_at,
        created_at: order.created_at,
        payment_uri: crypto.map(|c| payment_uri(c.token_address, c.chain_id, c.deposit_address, c.amount_base)),
        payments,
    }
}

fn decimals_of(config: &Config, token: &alloy::primitives::Address) -> Option<u8> {
    config.tokens.values().find(|t| &t.address == token).map(|t| t.decimals)
}
