//! Moving deposit balances to the treasury through the factory, many addresses per transaction.

use alloy::primitives::{Address, B256, TxHash, U256};
use alloy::providers::DynProvider;

use super::contracts::{DepositFactory, IERC20};

#[derive(Debug, Clone)]
pub struct SweepReceipt {
    pub tx_hash: TxHash,
    pub gas_used: u64,
    /// Total moved: the token's Transfer events into the treasury in this transaction.
    pub total: U256,
    pub block_number: u64,
}

/// Sweeps `token` from the deposit addresses of `salts` in one transaction.
pub async fn sweep_batch(
    provider: &DynProvider,
    factory: Address,
    token: Address,
    salts: Vec<B256>,
) -> alloy::contract::Result<SweepReceipt> {
    let factory = DepositFactory::new(factory, provider.clone());
    let treasury = factory.treasury().call().await?;
    let receipt = factory.sweep(token, salts).send().await?.get_receipt().await?;
    let total = receipt
        .inner
        .logs()
        .iter()
        .filter(|log| log.address() == token)
        .filter_map(|log| log.log_decode::<IERC20::Transfer>().ok())
        .filter(|t| t.inner.data.to == treasury)
        .map(|t| t.inner.data.value)
        .fold(U256::ZERO, |acc, amount| acc + amount);
    if !receipt.status() {
        return Err(alloy::contract::Error::TransportError(alloy::transports::TransportErrorKind::custom_str(
            &format!("sweep transaction {} reverted", receipt.transaction_hash),
        )));
    }
    Ok(SweepReceipt {
        tx_hash: receipt.transaction_hash,
        gas_used: receipt.gas_used,
        total,
        block_number: receipt.block_number.unwrap_or_default(),
    })
}
