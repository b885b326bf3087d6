//! Moving deposit balances to the treasury through the factory, many addresses per
//! transaction, each in its own call frame (one address that cannot send does not stop the
//! others). The transaction is known by its hash as soon as it is sent, so the caller records
//! it before waiting; what moved is read from the receipt's Transfer logs.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::{Address, B256, TxHash, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;

use super::contracts::{DepositFactory, IERC20};

/// How long a sweep's receipt is awaited before the next check takes over.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// What a mined sweep did.
#[derive(Debug, Clone)]
pub struct SweepReceipt {
    pub tx_hash: TxHash,
    pub gas_used: u64,
    /// Total moved: the token's Transfer events into the treasury in this transaction.
    pub total: U256,
    /// Moved per deposit address.
    pub moved: HashMap<Address, U256>,
    /// Deposit addresses whose sweep reverted inside the batch.
    pub failed: Vec<Address>,
    pub block_number: u64,
    pub block_hash: B256,
    /// False when the whole transaction reverted.
    pub succeeded: bool,
}

/// Sends the sweep of `token` from the deposit addresses of `salts`; returns its hash at once.
pub async fn send_sweep(
    provider: &DynProvider,
    factory: Address,
    token: Address,
    salts: Vec<B256>,
) -> alloy::contract::Result<TxHash> {
    let factory = DepositFactory::new(factory, provider.clone());
    Ok(*factory.sweep(token, salts).send().await?.tx_hash())
}

/// Waits up to `timeout` for the sweep's receipt; None if it is not mined (yet, or any more).
pub async fn sweep_outcome(
    provider: &DynProvider,
    factory: Address,
    token: Address,
    tx_hash: TxHash,
    timeout: Duration,
) -> alloy::contract::Result<Option<SweepReceipt>> {
    let started = tokio::time::Instant::now();
    loop {
        if let Some(receipt) = provider.get_transaction_receipt(tx_hash).await? {
            let treasury = DepositFactory::new(factory, provider.clone()).treasury().call().await?;
            return Ok(Some(read_receipt(&receipt, token, treasury)));
        }
        if started.elapsed() >= timeout {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends and waits: the whole sweep in one call (benchmarks and tests).
pub async fn sweep_batch(
    provider: &DynProvider,
    factory: Address,
    token: Address,
    salts: Vec<B256>,
) -> anyhow::Result<SweepReceipt> {
    let tx_hash = send_sweep(provider, factory, token, salts).await?;
    let receipt = sweep_outcome(provider, factory, token, tx_hash, RECEIPT_TIMEOUT)
        .await?
        .ok_or_else(|| anyhow::anyhow!("sweep {tx_hash} not mined within {RECEIPT_TIMEOUT:?}"))?;
    anyhow::ensure!(receipt.succeeded, "sweep transaction {tx_hash} reverted");
    Ok(receipt)
}

fn read_receipt(receipt: &TransactionReceipt, token: Address, treasury: Address) -> SweepReceipt {
    let mut moved: HashMap<Address, U256> = HashMap::new();
    let mut failed = Vec::new();
    for log in receipt.inner.logs() {
        if log.address() == token
            && let Ok(t) = log.log_decode::<IERC20::Transfer>()
            && t.inner.data.to == treasury
        {
            *moved.entry(t.inner.data.from).or_default() += t.inner.data.value;
        } else if let Ok(f) = log.log_decode::<DepositFactory::SweepFailed>() {
            failed.push(f.inner.data.forwarder);
        }
    }
    SweepReceipt {
        tx_hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
        total: moved.values().fold(U256::ZERO, |a, b| a + b),
        moved,
        failed,
        block_number: receipt.block_number.unwrap_or_default(),
        block_hash: receipt.block_hash.unwrap_or_default(),
        succeeded: receipt.status(),
    }
}
