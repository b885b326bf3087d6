//! Sending approved refunds from the refund wallet (`[refunds] private_key`), and following
//! every sent one (the wallet's or an external signer's) to the chain's depth.
//!
//! Exactly once: a refund's nonce, signed transaction and hash are written (approved → sent)
//! before the transaction is broadcast. A process killed in between, a node that dropped it, or
//! a reorg that took it out all lead to the same bytes broadcast again: one nonce, one hash,
//! so the chain can hold it once at most. Only the watcher-lease holder sends.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::chain::contracts::IERC20;
use crate::chain::rpc;
use crate::chain::status::ChainStatus;
use crate::config::Config;
use crate::payments::refunds::announce;
use crate::store::orders::address_text;
use crate::store::refunds::{self, Intent, Refund};
use crate::store::{Store, stray_funds};

pub async fn run(
    store: Store,
    config: Arc<Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tick = Duration::from_millis(config.chain.poll_interval_ms.clamp(100, 5_000));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
        if !status.is_leader() {
            continue;
        }
        if let Err(e) = pass(&store, &config).await {
            tracing::warn!(error = %format!("{e:#}"), "refund pass failed; the next one retries");
        }
    }
}

/// Sends what is approved (with a refund key) and follows what is sent.
pub async fn pass(store: &Store, config: &Config) -> anyhow::Result<()> {
    if let Some(signer) = config.refunds.signer() {
        for refund in refunds::list(store.pool(), Some("approved"), 100).await? {
            send(store, config, &refund, signer.clone()).await?;
        }
    }
    recheck_confirmed(store, config).await?;
    for refund in refunds::list(store.pool(), Some("sent"), 100).await? {
        follow(store, config, &refund).await?;
    }
    Ok(())
}

/// How long after its confirmation a refund's block is still compared with the chain's (one
/// header per such refund and pass: refunds are few, and deeper reorgs than an hour are not).
const RECHECK_SECS: i64 = 3_600;

/// A refund confirmed within `RECHECK_SECS` whose block a deeper reorg took is `sent` again: the
/// payer does not have it, and the same signed bytes go out again (an external signer's
/// transaction waits for the operator to send it again).
async fn recheck_confirmed(store: &Store, config: &Config) -> anyhow::Result<()> {
    for refund in refunds::confirmed_since(store.pool(), crate::store::unix_now() - RECHECK_SECS).await? {
        let (Some(block), Some(hash)) = (refund.block_number, refund.block_hash.as_deref()) else { continue };
        let (provider, _) = provider_for(config, refund.chain_id)?;
        let canonical =
            provider.get_block_by_number((block as u64).into()).await?.map(|b| format!("{:#x}", b.header.hash));
        if canonical.as_deref() != Some(hash) && refunds::unconfirm(store.pool(), &refund.refund_id).await? {
            tracing::error!(
                refund_id = refund.refund_id,
                block,
                "a confirmed refund's block left the chain; following it again"
            );
        }
    }
    Ok(())
}

fn provider_for(config: &Config, chain_id: i64) -> anyhow::Result<(DynProvider, crate::config::Confirmations)> {
    let chain = config.chain_by_id(chain_id as u64).context("the refund's chain is no longer configured")?;
    Ok((rpc::provider(chain.config.rpc_http.urls())?, chain.config.confirmations))
}

fn transfer_of(refund: &Refund) -> anyhow::Result<(Address, Address, U256)> {
    let token: Address = refund.token.parse().context("refund token")?;
    let to: Address = refund.to_address.as_deref().context("an approved refund has an address")?.parse()?;
    Ok((token, to, refund.amount_base.parse().context("refund amount")?))
}

async fn send(store: &Store, config: &Config, refund: &Refund, signer: PrivateKeySigner) -> anyhow::Result<()> {
    let (provider, _) = provider_for(config, refund.chain_id)?;
    let (token, to, amount) = transfer_of(refund)?;
    let from = signer.address();
    let from_text = address_text(&from);
    // The wallet's next nonce: the chain's, unless refunds recorded beyond it are still to land.
    let on_chain = provider.get_transaction_count(from).pending().await?;
    let recorded = refunds::next_nonce(store.pool(), refund.chain_id as u64, &from_text).await?.unwrap_or(0);
    let nonce = on_chain.max(recorded as u64);
    let input = Bytes::from(IERC20::transferCall { to, value: amount }.abi_encode());
    let request = TransactionRequest::default().with_from(from).with_to(token).with_input(input);
    let gas = match provider.estimate_gas(request.clone()).await {
        Ok(gas) => gas,
        Err(e) => {
            // Most often the wallet's float is short: it waits, approved, and is reported.
            let why = format!("cannot be sent now: {}", rpc::describe(&e.to_string()));
            tracing::error!(refund_id = refund.refund_id, error = why, "a refund waits");
            refunds::note_problem(store.pool(), &refund.refund_id, &why).await?;
            return Ok(());
        }
    };
    let fees = provider.estimate_eip1559_fees().await?;
    let request = request
        .with_nonce(nonce)
        .with_chain_id(refund.chain_id as u64)
        .with_gas_limit(gas + gas / 5)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
    let envelope = request.build(&EthereumWallet::from(signer)).await?;
    let raw = format!("0x{}", hex::encode(envelope.encoded_2718()));
    let hash = format!("{:#x}", envelope.tx_hash());
    // The intent before the broadcast (its nonce unique per wallet and chain).
    let mut tx = store.begin().await?;
    let intent = Intent { from: &from_text, nonce: Some(nonce as i64), raw_tx: Some(&raw), tx_hash: &hash };
    if !refunds::record_sent(&mut *tx, &refund.refund_id, &intent).await? {
        return Ok(());
    }
    let sent = refunds::get(&mut *tx, &refund.refund_id).await?.context("the refund")?;
    announce(&mut tx, "refund.sent", &sent).await?;
    tx.commit().await?;
    tracing::info!(refund_id = refund.refund_id, tx_hash = hash, nonce, "refund sent");
    broadcast(&provider, &raw).await;
    Ok(())
}

/// Broadcasts signed bytes; a node that has them already (or has mined them) says so, which is
/// no error here: the receipt decides.
async fn broadcast(provider: &DynProvider, raw: &str) {
    let Ok(bytes) = hex::decode(raw.trim_start_matches("0x")) else { return };
    if let Err(e) = provider.send_raw_transaction(&bytes).await {
        tracing::warn!(error = %rpc::describe(&e.to_string()), "refund broadcast refused; its receipt decides");
    }
}

async fn follow(store: &Store, config: &Config, refund: &Refund) -> anyhow::Result<()> {
    let (provider, confirmations) = provider_for(config, refund.chain_id)?;
    let hash: B256 = refund.tx_hash.as_deref().context("a sent refund has a hash")?.parse()?;
    let Some(receipt) = provider.get_transaction_receipt(hash).await? else {
        if refund.block_number.is_some() {
            tracing::warn!(refund_id = refund.refund_id, %hash, "a refund's transaction left the chain; sending the same one again");
            refunds::set_block(store.pool(), &refund.refund_id, None).await?;
        }
        if let Some(raw) = &refund.raw_tx {
            broadcast(&provider, raw).await;
        }
        return Ok(());
    };
    let block = receipt.block_number.context("a mined receipt has a block")?;
    let block_hash = format!("{:#x}", receipt.block_hash.context("a mined receipt has a block hash")?);
    if refund.block_number != Some(block as i64) || refund.block_hash.as_deref() != Some(block_hash.as_str()) {
        refunds::set_block(store.pool(), &refund.refund_id, Some((block as i64, &block_hash))).await?;
    }
    let (token, to, amount) = transfer_of(refund)?;
    let moved = receipt.status()
        && receipt.inner.logs().iter().any(|log| {
            log.address() == token
                && IERC20::Transfer::decode_log(&log.inner).is_ok_and(|t| t.to == to && t.value == amount)
        });
    let head = provider.get_block_number().await?;
    let deep = rpc::confirmed_block(&provider, confirmations, head).await?.is_some_and(|d| block <= d);
    if !deep {
        return Ok(());
    }
    let mut tx = store.begin().await?;
    let error = (!moved).then_some("the transaction did not transfer the refund (reverted, or another transfer)");
    if !refunds::settle(&mut *tx, &refund.refund_id, moved, error).await? {
        return Ok(());
    }
    if moved {
        stray_funds::refund_confirmed(&mut *tx, &refund.fund_id, &format!("{hash:#x}")).await?;
    } else {
        stray_funds::refund_failed(&mut tx, &refund.fund_id).await?;
        tracing::error!(refund_id = refund.refund_id, %hash, "a refund failed; its funds are open again");
    }
    let settled = refunds::get(&mut *tx, &refund.refund_id).await?.context("the refund")?;
    announce(&mut tx, if moved { "refund.confirmed" } else { "refund.failed" }, &settled).await?;
    tx.commit().await?;
    Ok(())
}
