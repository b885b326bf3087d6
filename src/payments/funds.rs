//! The operator's writes to stray funds: apply one to another open order of the team, or
//! record the transaction that refunded one outside paywatch. Each holds the fund's order lock
//! (and the target's) before it reads what it changes, like `credit::settle`, which rewrites
//! that order's open rows when a payment arrives and must never read them half changed.

use alloy::primitives::{Address, B256, U256};

use super::credit::{self, Rules};
use super::prices::PriceBook;
use super::{LedgerError, invalid};
use crate::config::Config;
use crate::store::orders::{self, OrderStatus};
use crate::store::refunds::{self, NewRefund};
use crate::store::stray_funds::{self, Fund};
use crate::store::{Store, StoreError, cursor, unix_now};

/// Counts a stray fund in another open order of the same team, token and chain; the fund and
/// the order's status after it.
pub async fn apply(
    store: &Store,
    rules: &Rules,
    chain_ids: &[u64],
    fund_id: &str,
    order_id: &str,
) -> Result<(Fund, OrderStatus), LedgerError> {
    let source = stray_funds::get(store.pool(), fund_id).await?.ok_or(LedgerError::NotFound("fund"))?.order_id;
    if source == order_id {
        return Err(invalid("order_id", "is the order the funds are stray from"));
    }
    let mut tx = store.begin().await?;
    // Both orders' locks, in id order like the watcher's (no deadlock with another apply or a
    // watcher step), then everything read again under them.
    orders::lock_all(&mut tx, &[source.clone(), order_id.to_string()].into()).await?;
    let fund = stray_funds::get(&mut *tx, fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    let target = orders::get_any(&mut *tx, order_id).await?.ok_or(LedgerError::NotFound("order"))?;
    if target.new.team_id != fund.team_id {
        return Err(invalid("order_id", "belongs to another team than the funds"));
    }
    // The same token is the same contract on the same chain: one address can be two tokens of
    // different decimals on two chains, and funds count in their own token's base units.
    let same_token = target.new.crypto.as_ref().is_some_and(|c| {
        crate::store::columns::address_text(&c.token_address) == fund.token && c.chain_id as i64 == fund.chain_id
    });
    if !same_token {
        return Err(invalid("order_id", "is not paid in the funds' token on the funds' chain"));
    }
    if !target.progress.status.is_open() {
        return Err(LedgerError::Conflict(format!("order {} is {}", target.order_id, target.progress.status.as_str())));
    }
    if !stray_funds::settle(&mut *tx, fund_id, Some(&target.order_id), None).await? {
        return Err(LedgerError::Conflict(format!("these funds are already {}", fund.status)));
    }
    // Judged at the chain's clock, like any payment.
    let at = match cursor::chain_time(&mut *tx, chain_ids).await? {
        0 => unix_now(),
        t => t,
    };
    credit::settle_applied(&mut tx, rules, &target.order_id, at).await?;
    tx.commit().await?;
    let fund = stray_funds::get(store.pool(), fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    let order = orders::get_any(store.pool(), &target.order_id).await?.ok_or(LedgerError::NotFound("order"))?;
    Ok((fund, order.progress.status))
}

/// Records the transaction that sent a stray fund back outside paywatch: the fund is settled,
/// `refunded`, and a refund record says so (status `refunded`, from `external`, worth its
/// value now), so refunds.csv lists every refund one way.
pub async fn mark_refunded(
    store: &Store,
    config: &Config,
    prices: &PriceBook,
    fund_id: &str,
    tx_hash: &str,
) -> Result<Fund, LedgerError> {
    let hash: B256 = tx_hash.trim().parse().map_err(|_| invalid("tx_hash", "must be 0x and 64 hex digits"))?;
    let hash = format!("{hash:#x}");
    let first = stray_funds::get(store.pool(), fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    let token: Address = first.token.parse().map_err(|_| StoreError::Corrupt("fund token".into()))?;
    let chain_id = first.chain_id as u64;
    let decimals = config
        .token_book()
        .at(chain_id, token)
        .map(|e| e.decimals)
        .ok_or_else(|| invalid("fund", "its token is no longer configured"))?;
    let price = super::refunds::usd_price(config, prices, chain_id, token).await?;
    let mut tx = store.begin().await?;
    orders::lock(&mut tx, &first.order_id).await?;
    let fund = stray_funds::get(&mut *tx, fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    if !stray_funds::settle(&mut *tx, fund_id, None, Some(&hash)).await? {
        return Err(LedgerError::Conflict(format!("these funds are already {}", fund.status)));
    }
    let units: U256 = fund.amount_base.parse().map_err(|_| StoreError::Corrupt("fund amount".into()))?;
    let new = NewRefund {
        fund_id,
        team_id: &fund.team_id,
        chain_id,
        token: &fund.token,
        amount_base: &fund.amount_base,
        usd: &super::refunds::worth(units, decimals, price)?.to_string(),
        chain_time: cursor::chain_time(&mut *tx, &config.chain_ids()).await?,
    };
    refunds::insert_recorded(&mut *tx, &new, &hash).await?;
    tx.commit().await?;
    stray_funds::get(store.pool(), fund_id).await?.ok_or(LedgerError::NotFound("fund"))
}
