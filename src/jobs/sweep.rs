//! Sweeping: confirmed deposits move from their deposit addresses to the treasury through
//! the factory, many addresses per transaction. A transaction that fails leaves its deposits
//! unswept for the next run; sweeping an address twice on chain moves nothing the second time,
//! and the record is written once. Money confirmed at an address after its sweep (a late
//! top-up, say) makes the address sweepable again.

use std::collections::BTreeMap;

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use anyhow::Context;
use serde::Serialize;

use crate::chain::sweep::sweep_batch;
use crate::config::Config;
use crate::store::{Store, deposits, unix_now};

/// Deposits looked at per run; the rest wait for the next.
const PER_RUN: i64 = 5_000;

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    pub swept: usize,
    pub transactions: Vec<String>,
    pub failed_batches: usize,
}

pub async fn sweep_once(store: &Store, config: &Config, signer: &DynProvider) -> anyhow::Result<SweepReport> {
    let factory = config.deposits.as_ref().context("[deposits] factory is needed to sweep")?.factory;
    let batch = config.jobs.sweep_batch as usize;
    let mut by_token: BTreeMap<Address, Vec<deposits::Sweepable>> = BTreeMap::new();
    for d in deposits::sweepable(store.pool(), PER_RUN).await? {
        by_token.entry(d.token).or_default().push(d);
    }
    let mut report = SweepReport::default();
    for (token, items) in by_token {
        for chunk in items.chunks(batch) {
            let salts = chunk.iter().map(|d| d.salt).collect();
            match sweep_batch(signer, factory, token, salts).await {
                Ok(receipt) => {
                    let tx_hash = format!("{:#x}", receipt.tx_hash);
                    for d in chunk {
                        let block = receipt.block_number;
                        if deposits::mark_swept(store.pool(), &d.order_id, &tx_hash, block, unix_now()).await? {
                            report.swept += 1;
                        }
                    }
                    report.transactions.push(tx_hash);
                }
                Err(e) => {
                    tracing::warn!(error = %e, %token, deposits = chunk.len(), "sweep transaction failed; the next run retries");
                    report.failed_batches += 1;
                }
            }
        }
    }
    Ok(report)
}
