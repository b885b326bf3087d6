//! Sending approved refunds from the refund wallet (`[refunds] private_key`), and following
//! every sent one (the wallet's or an external signer's) to the chain's depth.
//!
//! Exactly once: a refund's nonce, signed transaction and hash are written (approved → sent)
//! before the transaction is broadcast. A process killed in between, a node that dropped it, or
//! a reorg that took it out all lead to the same bytes broadcast again: one nonce, one hash,
//! so the chain can hold it once at most. Only the watcher-lease holder sends.

use std::sync::Arc;

use alloy::eips::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::chain::contracts::IERC20;
use crate::chain::rpc;
use crate::chain::status::ChainStatus;
use crate::config::Config;
use crate::payments::refunds;
use crate::store::columns::address_text;
use crate::store::refunds::{Intent, Refund};
use crate::store::{Store, refunds as refund_rows};

pub async fn run(
    store: Store,
    config: Arc<Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    super::each_poll_as_leader(&config, &status, &shutdown, || async {
        if let Err(e) = pass(&store, &config).await {
            tracing::warn!(error = crate::redact::error(&e), "refund pass failed; the next one retries");
        }
    })
    .await
}

/// Sends what is approved (with a refund key) and follows what is sent. Each refund is its own
/// try: one whose chain is down (or gone from the config) is logged and left for the next pass,
/// and the others, on every other chain, go on. Errs with how many failed.
pub async fn pass(store: &Store, config: &Config) -> anyhow::Result<()> {
    let mut failed = 0;
    let mut each = |refund: &Refund, result: anyhow::Result<()>| {
        if let Err(e) = result {
            failed += 1;
            tracing::warn!(
                refund_id = refund.refund_id,
                chain_id = refund.chain_id,
                error = crate::redact::error(&e),
                "a refund's step failed; the next pass retries it"
            );
        }
    };
    let expired = refunds::expire_claims(store, config).await?;
    if expired > 0 {
        tracing::info!(expired, "claim links expired; their funds are open again");
    }
    if let Some(signer) = config.refunds.signer() {
        for refund in refund_rows::list(store.pool(), Some("approved"), 100).await? {
            each(&refund, send(store, config, &refund, signer.clone()).await);
        }
    }
    for refund in refund_rows::confirmed_since(store.pool(), crate::store::unix_now() - RECHECK_SECS).await? {
        each(&refund, recheck_confirmed(store, config, &refund).await);
    }
    for refund in refund_rows::list(store.pool(), Some("sent"), 100).await? {
        each(&refund, follow(store, config, &refund).await);
    }
    anyhow::ensure!(failed == 0, "{failed} refund steps failed");
    Ok(())
}

/// How long after its confirmation a refund's block is still compared with the chain's (one
/// header per such refund and pass: refunds are few, and deeper reorgs than an hour are not).
const RECHECK_SECS: i64 = 3_600;

/// A refund confirmed within `RECHECK_SECS` whose block a deeper reorg took is `sent` again: the
/// payer does not have it, and the same signed bytes go out again (an external signer's
/// transaction waits for the operator to send it again).
async fn recheck_confirmed(store: &Store, config: &Config, refund: &Refund) -> anyhow::Result<()> {
    let (Some(block), Some(hash)) = (refund.block_number, refund.block_hash.as_deref()) else { return Ok(()) };
    let (provider, _) = provider_for(config, refund.chain_id)?;
    let canonical = provider.get_block_by_number((block as u64).into()).await?.map(|b| format!("{:#x}", b.header.hash));
    if canonical.as_deref() != Some(hash) && refunds::unconfirm(store, &refund.refund_id).await? {
        tracing::error!(
            refund_id = refund.refund_id,
            block,
            "a confirmed refund's block left the chain; following it again"
        );
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
    let recorded = refund_rows::next_nonce(store.pool(), refund.chain_id as u64, &from_text).await?.unwrap_or(0);
    let nonce = on_chain.max(recorded as u64);
    let input = Bytes::from(IERC20::transferCall { to, value: amount }.abi_encode());
    // The gas is estimated without fees (a node would cap it by the wallet's coin and answer
    // only "out of gas"), then the wallet's coin is checked against gas × the fee cap: a
    // transaction it cannot pay for is never recorded as sent, so nothing queues behind it.
    let request = TransactionRequest::default().with_from(from).with_to(token).with_input(input);
    let waits = async |why: String| -> anyhow::Result<()> {
        // It waits, approved, with the reason on the refund for the operator; nothing is queued.
        tracing::error!(refund_id = refund.refund_id, error = why, "a refund waits");
        refunds::note_problem(store, &refund.refund_id, &why).await?;
        Ok(())
    };
    let float = IERC20::new(token, &provider).balanceOf(from).call().await?;
    if float < amount {
        return waits(format!(
            "the refund wallet {from:#x} holds {float} base units of the token; this refund is {amount}"
        ))
        .await;
    }
    let gas = match provider.estimate_gas(request.clone()).await {
        Ok(gas) => gas + gas / 5,
        // The float is there, so a revert is the token refusing this transfer (a blacklisted
        // destination, a paused token): waiting would hold the money forever. The refund ends
        // and its fund is open again for the operator to refund elsewhere or apply.
        Err(e) if e.as_error_resp().is_some_and(|r| r.message.to_lowercase().contains("revert")) => {
            let why = format!("the token refuses this transfer: {}", rpc::describe(&e.to_string()));
            tracing::error!(refund_id = refund.refund_id, error = why, "a refund failed before it was sent");
            refunds::end_unsent(store, &refund.refund_id, &why).await?;
            return Ok(());
        }
        Err(e) => return waits(format!("cannot be sent now: {}", rpc::describe(&e.to_string()))).await,
    };
    let fees = provider.estimate_eip1559_fees().await?;
    let needed = U256::from(gas) * U256::from(fees.max_fee_per_gas);
    let balance = provider.get_balance(from).await?;
    if balance < needed {
        let show = |wei: U256| crate::money::format_base_units(wei, 18);
        return waits(format!(
            "the refund wallet {from:#x} holds {} of the chain's coin for gas; this refund needs up to {}",
            show(balance),
            show(needed)
        ))
        .await;
    }
    let request = request
        .with_nonce(nonce)
        .with_chain_id(refund.chain_id as u64)
        .with_gas_limit(gas)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
    let envelope = request.build(&EthereumWallet::from(signer)).await?;
    let raw = format!("0x{}", hex::encode(envelope.encoded_2718()));
    let hash = format!("{:#x}", envelope.tx_hash());
    // The intent before the broadcast (its nonce unique per wallet and chain).
    let intent = Intent { from: &from_text, nonce: Some(nonce as i64), raw_tx: Some(&raw), tx_hash: &hash };
    if !refunds::record_sent(store, &refund.refund_id, &intent).await? {
        return Ok(());
    }
    tracing::info!(refund_id = refund.refund_id, tx_hash = hash, nonce, "refund sent");
    broadcast(&provider, &raw).await;
    Ok(())
}

/// The mined transaction of a refund and its receipt: its current one, else one a fee bump
/// replaced (one nonce: at most one of them can be mined).
async fn mined_of(
    provider: &DynProvider,
    refund: &Refund,
    current: B256,
) -> anyhow::Result<Option<(B256, alloy::rpc::types::TransactionReceipt)>> {
    let replaced = refund.replaced_hashes.as_deref().unwrap_or_default().split(',').filter_map(|h| h.parse().ok());
    for hash in std::iter::once(current).chain(replaced) {
        if let Some(receipt) = provider.get_transaction_receipt(hash).await? {
            return Ok(Some((hash, receipt)));
        }
    }
    Ok(None)
}

/// Signs a waiting refund's transaction again: the same nonce, gas and call, fees raised by at
/// least 1/8 (what nodes ask of a replacement) or to the current estimate. Recorded before it
/// is broadcast, the old hash kept: whichever the chain mines is the refund's.
async fn bump(
    store: &Store,
    provider: &DynProvider,
    refund: &Refund,
    old_hash: B256,
    signer: PrivateKeySigner,
) -> anyhow::Result<()> {
    use alloy::consensus::{Transaction, TxEnvelope};
    use alloy::eips::Decodable2718;
    let raw = refund.raw_tx.as_deref().context("a wallet's refund keeps its signed bytes")?;
    let bytes = hex::decode(raw.trim_start_matches("0x"))?;
    let old = TxEnvelope::decode_2718(&mut bytes.as_slice())?;
    let fees = provider.estimate_eip1559_fees().await?;
    let raise = |fee: u128| fee + fee / 8 + 1;
    let max_fee = raise(old.max_fee_per_gas()).max(fees.max_fee_per_gas);
    let priority =
        raise(old.max_priority_fee_per_gas().unwrap_or_default()).max(fees.max_priority_fee_per_gas).min(max_fee);
    let to = old.to().context("a refund calls its token")?;
    let from = signer.address();
    let needed = U256::from(old.gas_limit()) * U256::from(max_fee);
    if provider.get_balance(from).await? < needed {
        anyhow::bail!("the refund wallet {from:#x} cannot pay the raised fees of refund {}", refund.refund_id);
    }
    let request = TransactionRequest::default()
        .with_from(from)
        .with_to(to)
        .with_input(old.input().clone())
        .with_nonce(old.nonce())
        .with_chain_id(old.chain_id().context("a refund's transaction names its chain")?)
        .with_gas_limit(old.gas_limit())
        .with_max_fee_per_gas(max_fee)
        .with_max_priority_fee_per_gas(priority);
    let envelope = request.build(&EthereumWallet::from(signer)).await?;
    let raw = format!("0x{}", hex::encode(envelope.encoded_2718()));
    let hash = format!("{:#x}", envelope.tx_hash());
    if !refunds::record_bump(store, &refund.refund_id, &format!("{old_hash:#x}"), &raw, &hash).await? {
        return Ok(());
    }
    tracing::warn!(refund_id = refund.refund_id, %old_hash, tx_hash = hash, max_fee, "a refund's transaction waited too long; signed again with higher fees");
    broadcast(provider, &raw).await;
    Ok(())
}

/// Broadcasts signed bytes; a node that has them already (or has mined them) says so, which is
/// no error here: the receipt decides.
async fn broadcast(provider: &DynProvider, raw: &str) {
    let Ok(bytes) = hex::decode(raw.trim_start_matches("0x")) else { return };
    if let Err(e) = provider.send_raw_transaction(&bytes).await {
        tracing::warn!(error = crate::redact::error(&e), "refund broadcast refused; its receipt decides");
    }
}

async fn follow(store: &Store, config: &Config, refund: &Refund) -> anyhow::Result<()> {
    let (provider, confirmations) = provider_for(config, refund.chain_id)?;
    let current: B256 = refund.tx_hash.as_deref().context("a sent refund has a hash")?.parse()?;
    let Some((hash, receipt)) = mined_of(&provider, refund, current).await? else {
        if refund.block_number.is_some() {
            tracing::warn!(refund_id = refund.refund_id, %current, "a refund's transaction left the chain; sending the same one again");
            refunds::mined_at(store, &refund.refund_id, None).await?;
        }
        let waited =
            refund.sent_at.is_some_and(|t| crate::store::unix_now() - t >= config.refunds.bump_after_secs as i64);
        match config.refunds.signer() {
            Some(signer) if waited && refund.from_address == Some(address_text(&signer.address())) => {
                bump(store, &provider, refund, current, signer).await?
            }
            _ => {
                if let Some(raw) = &refund.raw_tx {
                    broadcast(&provider, raw).await;
                }
            }
        }
        return Ok(());
    };
    if hash != current {
        refunds::mined_instead(store, &refund.refund_id, &format!("{hash:#x}")).await?;
    }
    let block = receipt.block_number.context("a mined receipt has a block")?;
    let block_hash = format!("{:#x}", receipt.block_hash.context("a mined receipt has a block hash")?);
    if refund.block_number != Some(block as i64) || refund.block_hash.as_deref() != Some(block_hash.as_str()) {
        refunds::mined_at(store, &refund.refund_id, Some((block as i64, &block_hash))).await?;
    }
    let moved = refunds::moves_the_refund(config, refund, &receipt);
    let head = provider.get_block_number().await?;
    let deep = rpc::confirmed_block(&provider, confirmations, head).await?.is_some_and(|d| block <= d);
    if !deep {
        return Ok(());
    }
    refunds::settle_sent(store, refund, &format!("{hash:#x}"), moved).await?;
    Ok(())
}
