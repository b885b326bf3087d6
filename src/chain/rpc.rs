//! The RPC connection: built once, checked against the configured chain id at start.

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("rpc: {url:?} is not a valid URL")]
    BadUrl { url: String },
    #[error("rpc: cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("chain: the RPC at {url} serves chain id {actual}, but chain.chain_id is {expected}")]
    ChainIdMismatch { url: String, expected: u64, actual: u64 },
}

/// A read-only HTTP provider.
pub fn http_provider(url: &str) -> Result<DynProvider, RpcError> {
    let parsed = url.parse().map_err(|_| RpcError::BadUrl { url: url.to_string() })?;
    Ok(ProviderBuilder::new().connect_http(parsed).erased())
}

/// An HTTP provider that signs and sends transactions with `signer`.
pub fn signing_provider(url: &str, signer: PrivateKeySigner) -> Result<DynProvider, RpcError> {
    let parsed = url.parse().map_err(|_| RpcError::BadUrl { url: url.to_string() })?;
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(parsed).erased())
}

/// Reaches the node and refuses a chain other than the configured one.
pub async fn check_chain_id(provider: &DynProvider, url: &str, expected: u64) -> Result<(), RpcError> {
    let actual = provider
        .get_chain_id()
        .await
        .map_err(|e| RpcError::Unreachable { url: url.to_string(), reason: first_line(&e.to_string()) })?;
    if actual != expected {
        return Err(RpcError::ChainIdMismatch { url: url.to_string(), expected, actual });
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}
