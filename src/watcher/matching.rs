//! From believed logs to transfers into deposit addresses, each stamped with its block's time
//! (the chain's clock for the payment rules) from the believed header of its block, or, where
//! the rule believed the range on its two end headers (`one_node`), from its block's header
//! read by number and taken only with the hash the log carries.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use anyhow::Context;

use super::reader::Reader;
use crate::chain::completeness::BlockHead;
use crate::chain::contracts::IERC20;
use crate::chain::deposit_index::DepositIndex;
use crate::store::Store;
use crate::store::transfers::Transfer;

/// The tokens' Transfers into deposit addresses among `logs`, ordered and without repeats;
/// `headers` are the believed headers of their blocks (every log's block is among them).
pub async fn transfers(
    chain_id: u64,
    tokens: &[Address],
    index: &DepositIndex,
    store: &Store,
    logs: &[Log],
    headers: &BTreeMap<u64, BlockHead>,
) -> anyhow::Result<Vec<Transfer>> {
    let mut out = Vec::new();
    for log in logs {
        // A node may answer logs nobody asked for: only the tokens' Transfers count.
        if !tokens.contains(&log.address()) || log.topics().first() != Some(&IERC20::Transfer::SIGNATURE_HASH) {
            continue;
        }
        // topics: [signature, from, to]; the recipient decides whether we care.
        let Some(to_topic) = log.topics().get(2) else { continue };
        let to = Address::from_word(*to_topic);
        let Some(order_id) = index.lookup(store, &to).await? else { continue };
        // Some tokens write Transfer logs of another shape (the value as a fourth topic, no
        // data): no ERC20 amount can be read from them, so they are recorded and skipped.
        let decoded = match log.log_decode::<IERC20::Transfer>() {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::warn!(token = %log.address(), tx_hash = ?log.transaction_hash, log_index = ?log.log_index,
                    error = %e, "a Transfer log without the ERC20 shape was skipped");
                metrics::counter!(crate::telemetry::MALFORMED_LOGS).increment(1);
                continue;
            }
        };
        let block_number = log.block_number.context("log without block number")?;
        out.push(Transfer {
            chain_id,
            tx_hash: log.transaction_hash.context("log without tx hash")?,
            log_index: log.log_index.context("log without index")?,
            block_number,
            block_hash: log.block_hash.context("log without block hash")?,
            token: log.address(),
            from: decoded.inner.data.from,
            to,
            amount_base: decoded.inner.data.value,
            order_id: Some(order_id),
            block_time: headers.get(&block_number).map(|h| h.time),
        });
    }
    // The same log can arrive twice (an answer completed from a block's receipts).
    out.sort_by_key(|t| (t.block_number, t.log_index));
    out.dedup_by_key(|t| (t.tx_hash, t.log_index));
    Ok(out)
}

/// Stamps the transfers whose block header the range's answer did not hold (a block between
/// a tied range's ends): each header read once, believed only when its hash is the one the
/// transfer's log names. Err: a node answered another block (or none); the step asks again.
pub async fn stamp_times(reader: &Reader, transfers: &mut [Transfer]) -> anyhow::Result<Result<(), String>> {
    let mut missing: Vec<u64> = transfers.iter().filter(|t| t.block_time.is_none()).map(|t| t.block_number).collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(Ok(()));
    }
    let heads = reader.headers(&missing).await?;
    for t in transfers.iter_mut().filter(|t| t.block_time.is_none()) {
        let head = missing.iter().position(|n| *n == t.block_number).and_then(|i| heads[i]);
        match head {
            Some(h) if h.hash == t.block_hash => t.block_time = Some(h.time),
            _ => return Ok(Err(format!("block {}'s header is not the block its transfer names", t.block_number))),
        }
    }
    Ok(Ok(()))
}
