//! Reconciliation: at one block (the last the watcher processed, so the ledger is complete up
//! to it), every deposit address's token balance on chain against what the ledger says it
//! holds (transfers in, credited or stray, minus what sweeps moved). A difference means money
//! the ledger does not know of (sent outside the watcher's view) or a move it missed; each is
//! reported (the result is kept for `GET /admin/reconciliation`, a metric, a log line).

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::chain::contracts::IERC20;
use crate::config::Config;
use crate::store::{Store, cursor, sweeps, unix_now};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Difference {
    #[serde(default)]
    pub chain_id: u64,
    pub address: String,
    pub token: String,
    /// Base units the ledger says the address holds.
    pub ledger: String,
    /// Base units the token contract says it holds.
    pub on_chain: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reconciliation {
    pub block: u64,
    pub checked: usize,
    pub differences: Vec<Difference>,
    pub at: i64,
}

/// The first chain's reconciliation.
pub async fn reconcile(store: &Store, config: &Config, provider: &DynProvider) -> anyhow::Result<Reconciliation> {
    reconcile_all(store, &[(config.chain.chain_id, provider.clone())]).await
}

/// Every chain of `chains` (chain id, provider), each at its own last processed block; one
/// result kept (`block` is the first chain's).
pub async fn reconcile_all(store: &Store, chains: &[(u64, DynProvider)]) -> anyhow::Result<Reconciliation> {
    let mut differences = Vec::new();
    let mut checked = 0;
    let mut first_block = None;
    for (chain_id, provider) in chains {
        let block = cursor::get(store.pool(), *chain_id)
            .await?
            .with_context(|| {
                format!("the watcher has processed no block of chain {chain_id} yet; nothing to reconcile")
            })?
            .block_number;
        first_block.get_or_insert(block);
        let pairs = sweeps::ledger_pairs(store.pool(), *chain_id).await?;
        checked += pairs.len();
        differences.extend(chain_differences(store, *chain_id, provider, &pairs, block).await?);
    }
    metrics::gauge!(crate::telemetry::RECONCILIATION_DIFFERENCES).set(differences.len() as f64);
    let result = Reconciliation { block: first_block.unwrap_or(0), checked, differences, at: unix_now() };
    save(store, &result).await?;
    Ok(result)
}

async fn chain_differences(
    store: &Store,
    chain_id: u64,
    provider: &DynProvider,
    pairs: &[(Address, Address)],
    block: u64,
) -> anyhow::Result<Vec<Difference>> {
    let mut differences = Vec::new();
    for (address, token) in pairs {
        let ledger = sweeps::balance_at(store.pool(), chain_id, address, token, block).await?;
        let on_chain = balance_at(provider, *token, *address, block).await?;
        if ledger != on_chain {
            tracing::warn!(%address, %token, %ledger, %on_chain, block, "a deposit address holds another amount than the ledger says");
            differences.push(Difference {
                chain_id,
                address: crate::store::columns::address_text(address),
                token: crate::store::columns::address_text(token),
                ledger: ledger.to_string(),
                on_chain: on_chain.to_string(),
            });
        }
    }
    Ok(differences)
}

async fn balance_at(provider: &DynProvider, token: Address, owner: Address, block: u64) -> anyhow::Result<U256> {
    IERC20::new(token, provider.clone())
        .balanceOf(owner)
        .block(block.into())
        .call()
        .await
        .with_context(|| format!("balanceOf({owner}) on {token} at block {block}"))
}

async fn save(store: &Store, r: &Reconciliation) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO reconciliations (run_id, block_number, checked, differences, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(r.block as i64)
    .bind(r.checked as i64)
    .bind(serde_json::to_string(&r.differences)?)
    .bind(r.at)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The newest reconciliation, if any has run.
pub async fn latest(store: &Store) -> crate::store::StoreResult<Option<Reconciliation>> {
    let row: Option<(i64, i64, String, i64)> = sqlx::query_as(
        "SELECT block_number, checked, differences, created_at FROM reconciliations ORDER BY created_at DESC, run_id LIMIT 1",
    )
    .fetch_optional(store.pool())
    .await?;
    row.map(|(block, checked, differences, at)| {
        Ok(Reconciliation {
            block: block as u64,
            checked: checked as usize,
            differences: serde_json::from_str(&differences)
                .map_err(|_| crate::store::StoreError::Corrupt("reconciliation differences".into()))?,
            at,
        })
    })
    .transpose()
}
