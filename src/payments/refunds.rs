//! Refund claims (issue 29): an operator refunds a stray fund (all of it or part, in its own
//! token and chain); the payer opens the claim link and gives the address to receive it; the
//! operator approves (or it is approved at once under `[refunds] auto_approve_usd`), within the
//! per-refund and per-day limits; `jobs::refunds` sends it. The fund is taken when the refund is
//! created, so it cannot also be applied to an order; a refund that fails gives it back.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use rust_decimal::Decimal;
use serde_json::json;

use super::{LedgerError, invalid};
use crate::config::Config;
use crate::money::{format_base_units, to_base_units};
use crate::payments::prices::PriceBook;
use crate::store::refunds::{self, NewRefund, Refund};
use crate::store::{Store, StoreError, orders, outbox, stray_funds, unix_now};

/// The token's USD price now (the limits count a refund's worth by it).
pub(super) async fn usd_price(
    config: &Config,
    prices: &PriceBook,
    chain_id: u64,
    token: Address,
) -> Result<Decimal, LedgerError> {
    let entry =
        config.token_book().at(chain_id, token).ok_or_else(|| invalid("fund", "its token is no longer configured"))?;
    prices.usd_price(config, entry.token, unix_now()).await.map_err(|e| LedgerError::Price(e.to_string()))
}

/// What `units` of a token of `decimals` are worth at `price` USD, to the micro-dollar.
pub(super) fn worth(units: U256, decimals: u8, price: Decimal) -> Result<Decimal, LedgerError> {
    let amount = Decimal::from_str(&format_base_units(units, decimals)).map_err(|_| invalid("amount", "too large"))?;
    Ok((amount * price).round_dp(6))
}

/// A refund of `amount` (token units; the whole fund when None) of an unattributed fund.
pub async fn create(
    store: &Store,
    config: &Config,
    prices: &PriceBook,
    fund_id: &str,
    amount: Option<&str>,
) -> Result<Refund, LedgerError> {
    // The fund's order is locked before the fund is read: a settle of that order (a payment
    // arriving) rewrites its open rows, and must not read them half taken.
    // The price is asked first, so no lock waits on a price source.
    let first = stray_funds::get(store.pool(), fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    let token: Address = first.token.parse().map_err(|_| StoreError::Corrupt("fund token".into()))?;
    let chain_id = first.chain_id as u64;
    let price = usd_price(config, prices, chain_id, token).await?;
    let mut tx = store.begin().await?;
    let order_id = first.order_id;
    orders::lock(&mut tx, &order_id).await?;
    let fund = stray_funds::get(&mut *tx, fund_id).await?.ok_or(LedgerError::NotFound("fund"))?;
    if fund.status != "unattributed" {
        return Err(LedgerError::Conflict(format!("these funds are already {}", fund.status)));
    }
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
    let usd = worth(units, decimals, price)?;
    let max = config.refunds.max_per_refund_usd.0;
    if usd > max {
        return Err(LedgerError::Limit(format!("{usd} USD is over the per-refund limit of {max} USD")));
    }
    // The fund is taken now: split when only part is refunded (the rest stays open).
    if !stray_funds::take_for_refund(&mut tx, fund_id, units, held).await? {
        return Err(LedgerError::Conflict("these funds were taken meanwhile".into()));
    }
    let new = NewRefund {
        fund_id,
        team_id: &fund.team_id,
        chain_id,
        token: &fund.token,
        amount_base: &units.to_string(),
        usd: &usd.to_string(),
        chain_time: match crate::store::cursor::chain_time(&mut *tx, &config.chain_ids()).await? {
            0 => unix_now(),
            t => t,
        },
    };
    let refund_id = refunds::insert(&mut *tx, &new).await?;
    tx.commit().await?;
    reread(store.pool(), &refund_id).await
}

async fn reread<'e>(db: impl sqlx::any::AnyExecutor<'e>, refund_id: &str) -> Result<Refund, LedgerError> {
    refunds::get(db, refund_id).await?.ok_or(LedgerError::NotFound("refund"))
}

/// Where a refund may not go: nowhere (zero), back to a deposit address, to a token contract,
/// the deposit factory or its treasury.
async fn check_destination(store: &Store, config: &Config, text: &str) -> Result<Address, LedgerError> {
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
pub async fn claim(store: &Store, config: &Config, refund_id: &str, address: &str) -> Result<Refund, LedgerError> {
    let refund = reread(store.pool(), refund_id).await?;
    if refund.status == "open" && claim_expired(store, config, &refund).await? {
        end_unsent(store, refund_id, CLAIM_EXPIRED).await?;
        return Err(LedgerError::Conflict(format!("this refund was cancelled: {CLAIM_EXPIRED}")));
    }
    match (refund.status.as_str(), &refund.error) {
        ("open", _) => {}
        ("failed", Some(why)) => return Err(LedgerError::Conflict(format!("this refund was cancelled: {why}"))),
        _ => return Err(LedgerError::Conflict("this refund was claimed already".into())),
    }
    let to = check_destination(store, config, address).await?;
    let mut tx = store.begin().await?;
    if !refunds::claim(&mut *tx, refund_id, &crate::store::columns::address_text(&to)).await? {
        return Err(LedgerError::Conflict("this refund was claimed already".into()));
    }
    let now = reread(&mut *tx, refund_id).await?;
    announce(&mut tx, "refund.claimed", &now).await?;
    tx.commit().await?;
    let usd = Decimal::from_str(&refund.usd).unwrap_or(Decimal::MAX);
    if usd <= config.refunds.auto_approve_usd.0 {
        match approve(store, config, refund_id).await {
            // Over the day's limit: it waits for an operator, claimed.
            Ok(_) | Err(LedgerError::Limit(_)) => {}
            Err(e) => return Err(e),
        }
    }
    reread(store.pool(), refund_id).await
}

const CLAIM_EXPIRED: &str = "the claim link expired";

/// Whether `refund`'s claim link is past `[refunds] claim_ttl_days` by the chain's clock (the
/// newest block the watchers processed; no verdict before any).
async fn claim_expired(store: &Store, config: &Config, refund: &Refund) -> Result<bool, StoreError> {
    let now = crate::store::cursor::chain_time(store.pool(), &config.chain_ids()).await?;
    let made = refund.link_chain_time.unwrap_or(refund.created_at);
    Ok(now > 0 && now - made > i64::from(config.refunds.claim_ttl_days) * 86_400)
}

/// Ends every open refund whose claim link expired (the refund job's pass); how many.
pub async fn expire_claims(store: &Store, config: &Config) -> Result<usize, LedgerError> {
    let mut ended = 0;
    for refund in refunds::list(store.pool(), Some("open"), 1000).await? {
        if claim_expired(store, config, &refund).await? {
            match end_unsent(store, &refund.refund_id, CLAIM_EXPIRED).await {
                Ok(_) => ended += 1,
                Err(LedgerError::Conflict(_)) => {} // claimed or ended meanwhile
                Err(e) => return Err(e),
            }
        }
    }
    Ok(ended)
}

/// Ends a refund not sent yet (open, claimed or approved) with `why`: `failed`, its money open
/// again in its fund's order, announced as `refund.failed`. The operator's cancel and reject,
/// and an expired claim link. Conflict when it was sent or settled already.
pub async fn end_unsent(store: &Store, refund_id: &str, why: &str) -> Result<Refund, LedgerError> {
    let refund = reread(store.pool(), refund_id).await?;
    let fund = stray_funds::get(store.pool(), &refund.fund_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("refund {refund_id} names no fund")))?;
    let mut tx = store.begin().await?;
    orders::lock(&mut tx, &fund.order_id).await?;
    if !refunds::cancel_unsent(&mut *tx, refund_id, why).await? {
        let status = reread(&mut *tx, refund_id).await?.status;
        return Err(LedgerError::Conflict(format!("this refund is {status}: only one not sent yet can be ended")));
    }
    stray_funds::refund_failed(&mut tx, &refund.fund_id).await?;
    let ended = reread(&mut *tx, refund_id).await?;
    announce(&mut tx, "refund.failed", &ended).await?;
    tx.commit().await?;
    Ok(ended)
}

/// The operator's approval, within the per-day limit (refunds approved in the last 24 hours).
pub async fn approve(store: &Store, config: &Config, refund_id: &str) -> Result<Refund, LedgerError> {
    let mut tx = store.begin().await?;
    // The day's sum is read and added to under one lock, whichever process approves.
    refunds::lock_the_day(&mut tx).await?;
    let refund = reread(&mut *tx, refund_id).await?;
    match refund.status.as_str() {
        "claimed" => {}
        "open" => return Err(LedgerError::Conflict("the payer has not claimed this refund yet".into())),
        other => return Err(LedgerError::Conflict(format!("this refund is {other} already"))),
    }
    let usd = Decimal::from_str(&refund.usd).map_err(|_| StoreError::Corrupt("refund usd".into()))?;
    let day: Decimal = refunds::approved_usd_since(&mut *tx, unix_now() - 86_400)
        .await?
        .iter()
        .filter_map(|u| Decimal::from_str(u).ok())
        .sum();
    let max = config.refunds.max_per_day_usd.0;
    if day + usd > max {
        return Err(LedgerError::Limit(format!(
            "approving {usd} USD would pass the per-day limit of {max} USD ({day} USD approved in the last 24 hours)"
        )));
    }
    if !refunds::approve(&mut *tx, refund_id).await? {
        return Err(LedgerError::Conflict("this refund was approved already".into()));
    }
    tx.commit().await?;
    reread(store.pool(), refund_id).await
}

/// The hash of a transaction an external signer sent for an approved refund (no refund key).
/// Believed only when its chain knows it (a Safe's `safeTxHash` is not a transaction hash), no
/// other refund names it, and, once mined, it moved the refund (its token, amount and
/// destination, from `[refunds] external_sender` when set): an unrelated hash would otherwise
/// fail the refund and reopen a fund the Safe did pay.
pub async fn record_external(
    store: &Store,
    config: &Config,
    refund_id: &str,
    tx_hash: &str,
) -> Result<Refund, LedgerError> {
    if config.refunds.private_key.is_some() {
        return Err(LedgerError::Conflict("refunds are sent by the configured refund key".into()));
    }
    let hash: B256 = tx_hash.trim().parse().map_err(|_| invalid("tx_hash", "must be 0x and 64 hex digits"))?;
    let refund = reread(store.pool(), refund_id).await?;
    if refund.status != "approved" {
        let status = refund.status;
        return Err(LedgerError::Conflict(format!(
            "only an approved refund takes a transaction (this one is {status})"
        )));
    }
    let text = format!("{hash:#x}");
    if let Some(other) = refunds::naming_hash(store.pool(), &text).await? {
        return Err(LedgerError::Conflict(format!("transaction {text} is recorded for refund {other} already")));
    }
    check_on_chain(config, &refund, hash).await?;
    let intent = refunds::Intent { from: "external", nonce: None, raw_tx: None, tx_hash: &text };
    if !record_sent(store, refund_id, &intent).await? {
        let status = reread(store.pool(), refund_id).await?.status;
        return Err(LedgerError::Conflict(format!(
            "only an approved refund takes a transaction (this one is {status})"
        )));
    }
    reread(store.pool(), refund_id).await
}

/// The external transaction as the refund's chain has it: known, and if mined, moving the refund.
async fn check_on_chain(config: &Config, refund: &Refund, hash: B256) -> Result<(), LedgerError> {
    use alloy::providers::Provider;
    let chain = config
        .chain_by_id(refund.chain_id as u64)
        .ok_or_else(|| invalid("tx_hash", "the refund's chain is no longer configured"))?;
    let unavailable = |e: &dyn std::fmt::Display| {
        LedgerError::Unavailable(format!("the chain cannot be asked now: {}", crate::redact::error(e)))
    };
    let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls()).map_err(|e| unavailable(&e))?;
    if let Some(receipt) = provider.get_transaction_receipt(hash).await.map_err(|e| unavailable(&e))? {
        if !moves_the_refund(config, refund, &receipt) {
            return Err(invalid(
                "tx_hash",
                format!(
                    "transaction {hash:#x} did not transfer this refund (its token, amount and address{})",
                    match config.refunds.external_sender {
                        Some(from) => format!(", from {from:#x}"),
                        None => String::new(),
                    }
                ),
            ));
        }
        return Ok(());
    }
    match provider.get_transaction_by_hash(hash).await.map_err(|e| unavailable(&e))? {
        Some(_) => Ok(()), // pending: the job checks its receipt at depth
        None => Err(invalid(
            "tx_hash",
            format!(
                "chain {} knows no transaction {hash:#x} (a Safe's safeTxHash is not one: give the executed transaction's hash)",
                refund.chain_id
            ),
        )),
    }
}

/// Whether a receipt moved `refund`: succeeded, with a Transfer of its token and amount to its
/// address, from its sender (the refund wallet's address, or `[refunds] external_sender`).
pub fn moves_the_refund(config: &Config, refund: &Refund, receipt: &alloy::rpc::types::TransactionReceipt) -> bool {
    use alloy::sol_types::SolEvent;
    let (Ok(token), Some(Ok(to)), Ok(amount)) = (
        refund.token.parse::<Address>(),
        refund.to_address.as_deref().map(str::parse::<Address>),
        refund.amount_base.parse::<U256>(),
    ) else {
        return false;
    };
    let sender = match refund.from_address.as_deref() {
        Some("external") | None => config.refunds.external_sender,
        Some(wallet) => wallet.parse().ok(),
    };
    receipt.status()
        && receipt.inner.logs().iter().any(|log| {
            log.address() == token
                && crate::chain::contracts::IERC20::Transfer::decode_log(&log.inner)
                    .is_ok_and(|t| t.to == to && t.value == amount && sender.is_none_or(|s| t.from == s))
        })
}

/// approved → sent with its transaction (the refund wallet's, before broadcasting it, or an
/// external signer's), announced; false when it was not approved.
pub async fn record_sent(store: &Store, refund_id: &str, intent: &refunds::Intent<'_>) -> Result<bool, StoreError> {
    let mut tx = store.begin().await?;
    if !refunds::record_sent(&mut *tx, refund_id, intent).await? {
        return Ok(false);
    }
    let sent = refunds::get(&mut *tx, refund_id).await?.ok_or_else(|| StoreError::Corrupt("refund gone".into()))?;
    announce(&mut tx, "refund.sent", &sent).await?;
    tx.commit().await?;
    Ok(true)
}

/// Why an approved refund is not sent yet, shown to the operator (cleared once it is sent).
pub async fn note_problem(store: &Store, refund_id: &str, problem: &str) -> Result<(), StoreError> {
    refunds::note_problem(store.pool(), refund_id, problem).await
}

/// Where a sent refund's transaction is mined now (None: not on the chain, e.g. reorged out).
pub async fn mined_at(store: &Store, refund_id: &str, block: Option<(i64, &str)>) -> Result<(), StoreError> {
    refunds::set_block(store.pool(), refund_id, block).await
}

/// A sent refund's transaction replaced by a fee bump (same nonce); false when it changed
/// meanwhile. The caller broadcasts the new bytes only after this.
pub async fn record_bump(
    store: &Store,
    refund_id: &str,
    old_hash: &str,
    raw_tx: &str,
    tx_hash: &str,
) -> Result<bool, StoreError> {
    refunds::record_bump(store.pool(), refund_id, old_hash, raw_tx, tx_hash).await
}

/// A replaced transaction of a sent refund is the one mined: the refund follows it.
pub async fn mined_instead(store: &Store, refund_id: &str, tx_hash: &str) -> Result<(), StoreError> {
    refunds::mined_instead(store.pool(), refund_id, tx_hash).await
}

/// A confirmed refund whose block a deeper reorg took is followed again, `sent`.
pub async fn unconfirm(store: &Store, refund_id: &str) -> Result<bool, StoreError> {
    refunds::unconfirm(store.pool(), refund_id).await
}

/// A sent refund's transaction at depth: it moved the tokens (`refunded`) or not (`failed`,
/// its money open again), announced. Under the fund's order lock: a failed refund's money
/// goes back into the order's open row, which an apply or a settle may be changing.
pub async fn settle_sent(store: &Store, refund: &Refund, hash: &str, moved: bool) -> Result<(), StoreError> {
    let fund = stray_funds::get(store.pool(), &refund.fund_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("refund {} names no fund", refund.refund_id)))?;
    let mut tx = store.begin().await?;
    orders::lock(&mut tx, &fund.order_id).await?;
    let error = (!moved).then_some("the transaction did not transfer the refund (reverted, or another transfer)");
    if !refunds::settle(&mut *tx, &refund.refund_id, moved, error).await? {
        return Ok(());
    }
    if moved {
        stray_funds::refund_confirmed(&mut *tx, &refund.fund_id, hash).await?;
    } else {
        stray_funds::refund_failed(&mut tx, &refund.fund_id).await?;
        tracing::error!(refund_id = refund.refund_id, hash, "a refund failed; its funds are open again");
    }
    let settled =
        refunds::get(&mut *tx, &refund.refund_id).await?.ok_or_else(|| StoreError::Corrupt("refund gone".into()))?;
    announce(&mut tx, if moved { "refund.confirmed" } else { "refund.failed" }, &settled).await?;
    tx.commit().await?;
    Ok(())
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
