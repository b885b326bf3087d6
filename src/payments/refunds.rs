//! Refund claims (issue 29): an operator refunds a stray fund (all of it or part, in its own
//! token and chain); the payer opens the claim link and gives the address to receive it; the
//! operator approves (or it is approved at once under `[refunds] auto_approve_usd`), within the
//! per-refund and per-day limits; `jobs::refunds` sends it. The fund is taken when the refund is
//! created, so it cannot also be applied to an order; a refund that fails gives it back.

use std::str::FromStr;

use alloy::primitives::{Address, U256};
use rust_decimal::Decimal;
use serde_json::json;

use crate::config::Config;
use crate::money::{format_base_units, to_base_units};
use crate::payments::prices::PriceBook;
use crate::store::refunds::{self, NewRefund, Refund};
use crate::store::{Store, StoreError, outbox, stray_funds, unix_now};

#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {problem}")]
    Invalid { field: &'static str, problem: String },
    /// A configured limit refuses it.
    #[error("{0}")]
    Limit(String),
    #[error("no price to value the refund: {0}")]
    Price(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RefundError {
    fn from(e: sqlx::Error) -> Self {
        RefundError::Store(e.into())
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> RefundError {
    RefundError::Invalid { field, problem: problem.into() }
}

/// What a refund is worth in USD now (the limits count it), from the token's price.
async fn usd_value(
    config: &Config,
    prices: &PriceBook,
    chain_id: u64,
    token: Address,
    units: U256,
) -> Result<Decimal, RefundError> {
    let entry =
        config.token_book().at(chain_id, token).ok_or_else(|| invalid("fund", "its token is no longer configured"))?;
    let price =
        prices.usd_price(config, entry.token, unix_now()).await.map_err(|e| RefundError::Price(e.to_string()))?;
    let amount =
        Decimal::from_str(&format_base_units(units, entry.decimals)).map_err(|_| invalid("amount", "too large"))?;
    Ok((amount * price).round_dp(6))
}

/// A refund of `amount` (token units; the whole fund when None) of an unattributed fund.
pub async fn create(
    store: &Store,
    config: &Config,
    prices: &PriceBook,
    fund_id: &str,
    amount: Option<&str>,
) -> Result<Refund, RefundError> {
    let fund = stray_funds::get(store.pool(), fund_id).await?.ok_or(RefundError::NotFound("fund"))?;
    if fund.status != "unattributed" {
        return Err(RefundError::Conflict(format!("these funds are already {}", fund.status)));
    }
    let token: Address = fund.token.parse().map_err(|_| StoreError::Corrupt("fund token".into()))?;
    let chain_id = fund.chain_id as u64;
    let decimals = config
        .token_book()
        .at(chain_id, token)
        .map(|e| e.decimals)
        .ok_or_else(|| invalid("fund", "its token is no longer configured"))?;
    let held: U256 = fund.amount_base.parse().map_err(|_| StoreError::Corrupt("fund amount".into()))?;
    let units = match amount {
        None => held,
        Some(text) => {
            let d = Decimal::from_str(text.trim())
                .map_err(|_| invalid("amount", "must be a decimal number of token units"))?;
            to_base_units(d, decimals).map_err(|e| invalid("amount", e.to_string()))?
        }
    };
    if units.is_zero() || units > held {
        return Err(invalid(
            "amount",
            format!("must be more than 0 and at most what the fund holds ({})", format_base_units(held, decimals)),
        ));
    }
    let usd = usd_value(config, prices, chain_id, token, units).await?;
    let max = config.refunds.max_per_refund_usd.0;
    if usd > max {
        return Err(RefundError::Limit(format!("{usd} USD is over the per-refund limit of {max} USD")));
    }
    let mut tx = store.begin().await?;
    // The fund is taken now: split when only part is refunded (the rest stays open).
    if !stray_funds::take_for_refund(&mut tx, fund_id, units, held).await? {
        return Err(RefundError::Conflict("these funds were taken meanwhile".into()));
    }
    let new = NewRefund {
        fund_id,
        team_id: &fund.team_id,
        chain_id,
        token: &fund.token,
        amount_base: &units.to_string(),
        usd: &usd.to_string(),
    };
    let refund_id = refunds::insert(&mut *tx, &new).await?;
    tx.commit().await?;
    reread(store.pool(), &refund_id).await
}

async fn reread<'e>(db: impl sqlx::any::AnyExecutor<'e>, refund_id: &str) -> Result<Refund, RefundError> {
    refunds::get(db, refund_id).await?.ok_or(RefundError::NotFound("refund"))
}

/// Where a refund may not go: nowhere (zero), back to a deposit address, to a token contract,
/// the deposit factory or its treasury.
async fn check_destination(store: &Store, config: &Config, text: &str) -> Result<Address, RefundError> {
    let text = text.trim();
    let hex = text.strip_prefix("0x").unwrap_or_default();
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid("address", "must be 0x and 40 hex digits"));
    }
    let mixed = hex.chars().any(|c| c.is_ascii_lowercase()) && hex.chars().any(|c| c.is_ascii_uppercase());
    let address = if mixed {
        Address::parse_checksummed(text, None).map_err(|_| invalid("address", "its checksum is wrong (a typo?)"))?
    } else {
        text.parse().map_err(|_| invalid("address", "is not an address"))?
    };
    if address.is_zero() {
        return Err(invalid("address", "is the zero address"));
    }
    if config.token_book().entries().iter().any(|e| e.address == address) {
        return Err(invalid("address", "is a token contract, which cannot send the refund on"));
    }
    if let Some(d) = &config.deposits
        && (d.factory == address || d.treasury == address)
    {
        return Err(invalid("address", "is this service's own contract or treasury"));
    }
    if crate::store::orders::find_by_deposit_address(store.pool(), &address).await?.is_some() {
        return Err(invalid("address", "is a deposit address of an order: give the wallet the refund should reach"));
    }
    Ok(address)
}

/// The payer's claim: where to send it. Approved at once when worth at most
/// `auto_approve_usd` (and within the day's limit).
pub async fn claim(store: &Store, config: &Config, refund_id: &str, address: &str) -> Result<Refund, RefundError> {
    let refund = reread(store.pool(), refund_id).await?;
    match (refund.status.as_str(), &refund.error) {
        ("open", _) => {}
        ("failed", Some(why)) => return Err(RefundError::Conflict(format!("this refund was cancelled: {why}"))),
        _ => return Err(RefundError::Conflict("this refund was claimed already".into())),
    }
    let to = check_destination(store, config, address).await?;
    let mut tx = store.begin().await?;
    if !refunds::claim(&mut *tx, refund_id, &crate::store::orders::address_text(&to)).await? {
        return Err(RefundError::Conflict("this refund was claimed already".into()));
    }
    let now = reread(&mut *tx, refund_id).await?;
    announce(&mut tx, "refund.claimed", &now).await?;
    tx.commit().await?;
    let usd = Decimal::from_str(&refund.usd).unwrap_or(Decimal::MAX);
    if usd <= config.refunds.auto_approve_usd.0 {
        match approve(store, config, refund_id).await {
            // Over the day's limit: it waits for an operator, claimed.
            Ok(_) | Err(RefundError::Limit(_)) => {}
            Err(e) => return Err(e),
        }
    }
    reread(store.pool(), refund_id).await
}

/// The operator's approval, within the per-day limit (refunds approved in the last 24 hours).
pub async fn approve(store: &Store, config: &Config, refund_id: &str) -> Result<Refund, RefundError> {
    let mut tx = store.begin().await?;
    let refund = reread(&mut *tx, refund_id).await?;
    match refund.status.as_str() {
        "claimed" => {}
        "open" => return Err(RefundError::Conflict("the payer has not claimed this refund yet".into())),
        other => return Err(RefundError::Conflict(format!("this refund is {other} already"))),
    }
    let usd = Decimal::from_str(&refund.usd).map_err(|_| StoreError::Corrupt("refund usd".into()))?;
    let day: Decimal = refunds::approved_usd_since(&mut *tx, unix_now() - 86_400)
        .await?
        .iter()
        .filter_map(|u| Decimal::from_str(u).ok())
        .sum();
    let max = config.refunds.max_per_day_usd.0;
    if day + usd > max {
        return Err(RefundError::Limit(format!(
            "approving {usd} USD would pass the per-day limit of {max} USD ({day} USD approved in the last 24 hours)"
        )));
    }
    if !refunds::approve(&mut *tx, refund_id).await? {
        return Err(RefundError::Conflict("this refund was approved already".into()));
    }
    tx.commit().await?;
    reread(store.pool(), refund_id).await
}

/// The hash of a transaction an external signer sent for an approved refund (no refund key).
pub async fn record_external(
    store: &Store,
    config: &Config,
    refund_id: &str,
    tx_hash: &str,
) -> Result<Refund, RefundError> {
    if config.refunds.private_key.is_some() {
        return Err(RefundError::Conflict("refunds are sent by the configured refund key".into()));
    }
    let hash: alloy::primitives::B256 =
        tx_hash.trim().parse().map_err(|_| invalid("tx_hash", "must be 0x and 64 hex digits"))?;
    let hash = format!("{hash:#x}");
    let intent = refunds::Intent { from: "external", nonce: None, raw_tx: None, tx_hash: &hash };
    let mut tx = store.begin().await?;
    if !refunds::record_sent(&mut *tx, refund_id, &intent).await? {
        let status = reread(&mut *tx, refund_id).await?.status;
        return Err(RefundError::Conflict(format!(
            "only an approved refund takes a transaction (this one is {status})"
        )));
    }
    let now = reread(&mut *tx, refund_id).await?;
    announce(&mut tx, "refund.sent", &now).await?;
    tx.commit().await?;
    reread(store.pool(), refund_id).await
}

/// The transaction an external signer sends for `refund`: the token's `transfer`.
pub fn prepared(refund: &Refund) -> Option<serde_json::Value> {
    use alloy::sol_types::SolCall;
    let to: Address = refund.to_address.as_deref()?.parse().ok()?;
    let amount: U256 = refund.amount_base.parse().ok()?;
    let data = crate::chain::contracts::IERC20::transferCall { to, value: amount }.abi_encode();
    let data = format!("0x{}", hex::encode(data));
    Some(json!({
        "chain_id": refund.chain_id, "to": refund.token, "value": "0", "data": data,
        // Safe's Transaction Builder imports this file as a batch of one.
        "safe_transaction_builder": {
            "version": "1.0", "chainId": refund.chain_id.to_string(),
            "meta": {"name": format!("paywatch refund {}", refund.refund_id)},
            "transactions": [{"to": refund.token, "value": "0", "data": data}]
        }
    }))
}

/// A `refund.*` event with what an integration needs.
pub async fn announce(tx: &mut crate::store::Tx, event: &str, r: &Refund) -> Result<(), StoreError> {
    let data = json!({
        "refund_id": r.refund_id, "fund_id": r.fund_id, "team_id": r.team_id, "chain_id": r.chain_id,
        "token": r.token, "amount_base": r.amount_base, "usd": r.usd, "to": r.to_address,
        "transaction_hash": r.tx_hash, "error": r.error,
    });
    outbox::emit(&mut **tx, event, None, data).await?;
    Ok(())
}
