//! The order as payers and frontends see it: amounts in token units, each payment with its
//! confirmations. Shared by the order endpoint, the checkout page and the live event stream.

use alloy::primitives::U256;
use serde::{Deserialize, Serialize};

use crate::chain::status::Heads;
use crate::config::payment_link::payment_uri;
use crate::config::payment_link::{LinkParts, PaymentLink};
use crate::config::{Config, Confirmations};
use crate::money::{convert_units, format_base_units};
use crate::store::orders::{self, Order};
use crate::store::{Store, StoreResult, transfers};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PaymentView {
    /// The chain the payment was made on.
    pub chain_id: u64,
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
    /// False for a transfer of another asset: recorded and shown, never credited.
    pub counted: bool,
}

/// One (chain, token) that can pay the order: the same deposit address on every chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PayOption {
    /// The chain's name in the configuration.
    pub chain: String,
    pub chain_id: u64,
    pub pay_method: String,
    pub token: String,
    /// What remains to pay, in this token's units (the whole amount before any payment;
    /// rounded up where this token has fewer decimals).
    pub value: String,
    /// EIP-681 with the chain id: `ethereum:<token>@<chain_id>/transfer?address=..&uint256=..`.
    pub payment_uri: String,
    /// The network's name as payers know it (`[chain] display_name`, else the config name).
    pub network: String,
    /// The network's picture, if configured (a path on this host or a data URI).
    pub icon: Option<String>,
    /// The token's symbol as payers know it (`USDT`).
    pub symbol: String,
    pub decimals: u8,
    /// What remains, in this token's base units: what a wallet is asked to transfer.
    pub amount_base: String,
    /// The link wallets open and the QR code holds, by the chain's `payment_link`.
    pub link: String,
    /// The chain's block explorer, for a transaction's link.
    pub explorer: Option<String>,
    /// A public RPC URL a wallet may add the network with, if configured.
    pub wallet_rpc: Option<String>,
    /// The network's native currency symbol (for adding it to a wallet).
    pub native_symbol: String,
    /// The token takes EIP-3009 authorizations: the payer may sign and pay no gas
    /// (`POST /pay/{order_id}/authorization`).
    pub gasless: bool,
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
    /// Every configured (chain, token) of the order's asset, while it can be paid.
    pub options: Vec<PayOption>,
    /// Where an x402 client pays this order (`GET`), while one of its options takes x402.
    pub x402_url: Option<String>,
    pub payments: Vec<PaymentView>,
    /// Payments the relayer sent for the payer's signed authorizations (sent, confirmed, or
    /// failed with why); their Transfers are in `payments` once mined.
    #[serde(default)]
    pub gasless: Vec<crate::store::gasless::GaslessPayment>,
}

/// The order as a frontend shows it, with each payment's depth below `head`. The order and its
/// transfers are read in one statement (one snapshot), so the sums and the payments agree. `team_id` scopes
/// the lookup to one team; the checkout page passes `None` (the order id is the capability).
pub async fn load(
    store: &Store,
    config: &Config,
    heads: &Heads,
    team_id: Option<&str>,
    order_id: &str,
) -> StoreResult<Option<OrderView>> {
    let Some((order, rows)) = orders::with_transfers(store.pool(), team_id, order_id).await? else { return Ok(None) };
    let mut view = build(config, heads, order, rows);
    view.gasless = crate::store::gasless::of_order(store.pool(), order_id).await?;
    Ok(Some(view))
}

pub fn build(config: &Config, heads: &Heads, order: Order, rows: Vec<(transfers::Transfer, String)>) -> OrderView {
    let book = config.token_book();
    let crypto = order.new.crypto.as_ref();
    let decimals = crypto.and_then(|c| book.at(c.chain_id, c.token_address)).map_or(0, |e| e.decimals);
    let payments = rows
        .into_iter()
        .map(|(t, st)| PaymentView {
            chain_id: t.chain_id,
            tx_hash: format!("{:#x}", t.tx_hash),
            log_index: t.log_index,
            block_number: t.block_number,
            block_time: t.block_time,
            from: crate::store::columns::address_text(&t.from),
            token: crate::store::columns::address_text(&t.token),
            amount: format_base_units(t.amount_base, book.at(t.chain_id, t.token).map_or(decimals, |e| e.decimals)),
            state: st,
            confirmations: (heads.get(&t.chain_id).copied().unwrap_or(0) + 1).saturating_sub(t.block_number),
            counted: crypto.is_some_and(|c| {
                book.counted_units((c.chain_id, c.token_address), (t.chain_id, t.token), U256::ZERO).is_some()
            }),
        })
        .collect();
    // A large order waits for its chain's `finality.large`, and says so.
    let confirmations_required = crypto.map(|c| match required_depth(config, c.chain_id, order.new.usd) {
        Confirmations::Blocks(n) => n.to_string(),
        Confirmations::Finalized => "finalized".to_string(),
        Confirmations::Safe => "safe".to_string(),
    });
    let remaining_base = match crypto {
        Some(c) if order.progress.status != orders::OrderStatus::Paid => {
            c.amount_base.saturating_sub(order.progress.confirmed_base)
        }
        _ => U256::ZERO,
    };
    let options = match crypto {
        Some(c) if order.progress.status.is_open() => pay_options(config, c, remaining_base),
        _ => Vec::new(),
    };
    let x402_url = options
        .iter()
        .any(|o| o.token.parse().is_ok_and(|t| config.x402_network(o.chain_id, t).is_some()))
        .then(|| format!("/pay/{}/x402", order.order_id));
    OrderView {
        x402_url,
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
        remaining: format_base_units(remaining_base, decimals),
        late: order.progress.late,
        address: crypto.map(|c| crate::store::columns::address_text(&c.deposit_address)),
        token: crypto.map(|c| crate::store::columns::address_text(&c.token_address)),
        chain_id: crypto.map(|c| c.chain_id),
        confirmations_required,
        expires_at: order.new.expires_at,
        paid_at: order.progress.paid_at,
        created_at: order.created_at,
        payment_uri: crypto
            .map(|c| payment_uri(c.token_address, c.chain_id, c.deposit_address, asked_base(c, remaining_base))),
        options,
        payments,
        gasless: Vec::new(),
    }
}

/// What a payment request asks for: what remains after partial payments, or the whole amount
/// when nothing remains (a paid or closed order's request is never shown as one to pay).
pub fn asked_base(c: &orders::CryptoTerms, remaining_base: U256) -> U256 {
    if remaining_base.is_zero() { c.amount_base } else { remaining_base }
}

/// The depth a payment on `chain_id` needs for an order worth `usd`.
pub fn required_depth(config: &Config, chain_id: u64, usd: rust_decimal::Decimal) -> Confirmations {
    let chain = config.chain_by_id(chain_id).unwrap_or_else(|| config.first_chain()).config;
    match &chain.finality {
        Some(f) if usd >= f.large_usd.0 => f.large,
        _ => chain.confirmations,
    }
}

/// Every (chain, token) of the order's asset, with what remains to pay in its units.
pub fn pay_options(config: &Config, c: &orders::CryptoTerms, remaining_base: U256) -> Vec<PayOption> {
    let book = config.token_book();
    let Some(own) = book.at(c.chain_id, c.token_address) else { return Vec::new() };
    book.payable_with(own.token)
        .filter_map(|e| {
            let units = units_rounded_up(remaining_base, own.decimals, e.decimals);
            let chain = config.chain_by_id(e.chain_id)?.config;
            // Checked when the config loaded; an option is left out rather than shown wrong.
            let link = PaymentLink::parse(&chain.payment_link).ok()?;
            let parts = LinkParts {
                token: e.address,
                chain_id: e.chain_id,
                to: c.deposit_address,
                amount_base: units,
                decimals: e.decimals,
            };
            Some(PayOption {
                chain: e.chain.clone(),
                chain_id: e.chain_id,
                pay_method: e.token.as_str().to_string(),
                token: crate::store::columns::address_text(&e.address),
                value: format_base_units(units, e.decimals),
                payment_uri: payment_uri(e.address, e.chain_id, c.deposit_address, units),
                network: chain.display_name.clone().unwrap_or_else(|| e.chain.clone()),
                icon: chain.icon.clone(),
                symbol: e.asset.clone(),
                decimals: e.decimals,
                amount_base: units.to_string(),
                link: link.render(&parts),
                explorer: chain.explorer.clone(),
                wallet_rpc: chain.wallet_rpc.clone(),
                native_symbol: chain.native_symbol.clone(),
                gasless: config.takes_authorizations(e.chain_id, e.address),
            })
        })
        .collect()
}

/// `units` at `from` decimals in a token of `to` decimals, never less than owed.
fn units_rounded_up(units: U256, from: u8, to: u8) -> U256 {
    let down = convert_units(units, from, to);
    if convert_units(down, to, from) < units { down + U256::from(1u8) } else { down }
}
