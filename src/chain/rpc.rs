//! The RPC connection: one or several HTTP endpoints. `failover::Failover` sends each call
//! (a batch whole) to the first endpoint that is up, in the configured order, and moves on at
//! once when one fails; alloy's `RetryBackoffLayer` above it waits out rate limits (HTTP 429,
//! `Retry-After`, provider texts) before giving up. Neither proves an answer complete: the
//! watcher does that itself (a getLogs answer is tied to a node that has the range's last
//! block). URLs usually carry an API key, so only scheme and host are ever printed (`redact`).

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::Http;
use alloy::transports::layers::{RateLimitRetryPolicy, RetryBackoffLayer, RetryPolicy};
use alloy::transports::{TransportError, TransportErrorKind};
use tower::ServiceBuilder;

use super::failover::Failover;

/// Retries of a rate-limited (or dropped) call inside the transport; past them the caller's own backoff
/// takes over (the watcher doubles its wait up to 30 s).
const RATE_LIMIT_RETRIES: u32 = 3;
/// The wait between those retries when the provider gives no `Retry-After`.
const RATE_LIMIT_BACKOFF_MS: u64 = 500;
/// A compute-unit budget per second, so bursts (header batches) queue instead of tripping
/// the provider's limiter.
const COMPUTE_UNITS_PER_SECOND: u64 = 660;
/// No call waits longer than this on a silent endpoint.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("rpc: {url} is not a valid URL")]
    BadUrl { url: String },
    #[error("rpc: cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("chain: the RPC at {url} serves chain id {actual}, but chain.chain_id is {expected}")]
    ChainIdMismatch { url: String, expected: u64, actual: u64 },
}

impl RpcError {
    /// Only a wrong chain is final for a daemon; everything else may pass.
    pub fn is_wrong_chain(&self) -> bool {
        matches!(self, RpcError::ChainIdMismatch { .. })
    }
}

pub use crate::redact::{redact, redact_all};

fn client_over(urls: &[String], chain_id: Option<u64>) -> Result<(RpcClient, Failover), RpcError> {
    let http = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .map_err(|e| RpcError::Unreachable { url: redact_all(urls), reason: e.to_string() })?;
    let mut transports = Vec::with_capacity(urls.len());
    for url in urls {
        let parsed = url.parse().map_err(|_| RpcError::BadUrl { url: redact(url) })?;
        transports.push((Http::with_client(http.clone(), parsed), redact(url)));
    }
    if transports.is_empty() {
        return Err(RpcError::BadUrl { url: "(none configured)".into() });
    }
    let is_local = transports.iter().all(|(t, _)| t.guess_local());
    let retry = RetryBackoffLayer::new_with_policy(
        RATE_LIMIT_RETRIES,
        RATE_LIMIT_BACKOFF_MS,
        COMPUTE_UNITS_PER_SECOND,
        ReadRetry,
    );
    let failover = Failover::new(transports, chain_id);
    let service = ServiceBuilder::new().layer(retry).service(failover.clone());
    Ok((RpcClient::new(service, is_local), failover))
}

/// alloy's rate-limit policy, plus dropped connections and timeouts (reads are safe to
/// repeat), minus size complaints: some providers answer "query returned more than 10000
/// results" with the rate-limit code -32005, and repeating that query cannot help.
#[derive(Debug, Clone, Copy)]
struct ReadRetry;

impl RetryPolicy for ReadRetry {
    fn should_retry(&self, error: &TransportError) -> bool {
        if matches!(super::range::classify(&error.to_string()), super::range::Failure::TooLarge { .. }) {
            return false;
        }
        RateLimitRetryPolicy::default().should_retry(error)
            || matches!(
                error,
                TransportError::Transport(TransportErrorKind::Custom(_) | TransportErrorKind::BackendGone)
            )
    }

    fn backoff_hint(&self, error: &TransportError) -> Option<Duration> {
        RateLimitRetryPolicy::default().backoff_hint(error)
    }
}

/// A read-only provider over one or several endpoints (their chain ids unchecked).
pub fn provider(urls: &[String]) -> Result<DynProvider, RpcError> {
    Ok(ProviderBuilder::new().connect_client(client_over(urls, None)?.0).erased())
}

/// What one endpoint answered for its chain id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointCheck {
    Serves,
    WrongChain(u64),
    Unreachable(String),
}

/// Asks each endpoint alone for its chain id (a fallback would hide all but the one that
/// answered).
pub async fn check_endpoints(urls: &[String], expected: u64) -> Result<Vec<EndpointCheck>, RpcError> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let one = ProviderBuilder::new().connect_client(client_over(std::slice::from_ref(url), None)?.0);
        out.push(match tokio::time::timeout(Duration::from_secs(10), one.get_chain_id()).await {
            Ok(Ok(id)) if id == expected => EndpointCheck::Serves,
            Ok(Ok(id)) => EndpointCheck::WrongChain(id),
            Ok(Err(e)) => EndpointCheck::Unreachable(describe(&e.to_string())),
            Err(_) => EndpointCheck::Unreachable("no answer within 10 s".into()),
        });
    }
    Ok(out)
}

/// The read-only provider of a chain, and its endpoints' failover (which checks a rested
/// endpoint's chain id before using it again).
pub fn chain_provider(urls: &[String], chain_id: u64) -> Result<(DynProvider, Failover), RpcError> {
    let (client, failover) = client_over(urls, Some(chain_id))?;
    Ok((ProviderBuilder::new().connect_client(client).erased(), failover))
}

/// Each endpoint's chain id, asked alone: one that serves another chain is named and left out
/// of `failover` for good. Errors when every endpoint serves another chain (final), or when
/// none answered (wait and ask again); one that does not answer yet is kept and checked when
/// it first comes back.
pub async fn verify_endpoints(failover: &Failover, urls: &[String], expected: u64) -> Result<(), RpcError> {
    let checks = check_endpoints(urls, expected).await?;
    for (i, (url, check)) in urls.iter().zip(&checks).enumerate() {
        if let EndpointCheck::WrongChain(actual) = check {
            tracing::error!(
                endpoint = redact(url),
                expected,
                actual,
                "rpc endpoint serves another chain; it is not used"
            );
            failover.exclude(i, *actual);
        }
    }
    if checks.contains(&EndpointCheck::Serves) {
        return Ok(());
    }
    if let Some(reason) = checks.iter().find_map(|c| match c {
        EndpointCheck::Unreachable(reason) => Some(reason.clone()),
        _ => None,
    }) {
        return Err(RpcError::Unreachable { url: redact_all(urls), reason });
    }
    let actual = checks.iter().find_map(|c| match c {
        EndpointCheck::WrongChain(actual) => Some(*actual),
        _ => None,
    });
    Err(RpcError::ChainIdMismatch { url: redact_all(urls), expected, actual: actual.unwrap_or_default() })
}

/// A read-only provider over one endpoint (devnet, tests).
pub fn http_provider(url: &str) -> Result<DynProvider, RpcError> {
    provider(&[url.to_string()])
}

/// A provider that signs and sends transactions with `signer`. Transactions go to the first
/// endpoint only: a fallback could submit one transaction to several nodes.
pub fn signing_provider(url: &str, signer: PrivateKeySigner) -> Result<DynProvider, RpcError> {
    let parsed = url.parse().map_err(|_| RpcError::BadUrl { url: redact(url) })?;
    Ok(ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(parsed).erased())
}

/// Reaches the node and refuses a chain other than the configured one. `urls` name the
/// endpoints in messages (redacted here).
pub async fn check_chain_id(provider: &DynProvider, urls: &[String], expected: u64) -> Result<(), RpcError> {
    let url = redact_all(urls);
    let actual = provider
        .get_chain_id()
        .await
        .map_err(|e| RpcError::Unreachable { url: url.clone(), reason: describe(&e.to_string()) })?;
    if actual != expected {
        return Err(RpcError::ChainIdMismatch { url, expected, actual });
    }
    Ok(())
}

/// When the confirmations are a tag (`safe`, `finalized`), the node must answer it.
pub async fn check_finality_tag(
    provider: &DynProvider,
    confirmations: crate::config::Confirmations,
) -> anyhow::Result<()> {
    use alloy::eips::BlockNumberOrTag;
    let tag = match confirmations {
        crate::config::Confirmations::Blocks(_) => return Ok(()),
        crate::config::Confirmations::Safe => BlockNumberOrTag::Safe,
        crate::config::Confirmations::Finalized => BlockNumberOrTag::Finalized,
    };
    match provider.get_block_by_number(tag).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => anyhow::bail!("chain.confirmations: the node has no {tag} block"),
        Err(e) => {
            anyhow::bail!("chain.confirmations: the node does not answer the {tag} tag: {}", describe(&e.to_string()))
        }
    }
}

pub use crate::redact::describe;

/// The deepest block that counts as confirmed under `confirmations` with the chain at `head`.
pub async fn confirmed_block(
    provider: &DynProvider,
    confirmations: crate::config::Confirmations,
    head: u64,
) -> anyhow::Result<Option<u64>> {
    use crate::config::Confirmations;
    use alloy::eips::BlockNumberOrTag;
    use anyhow::Context;
    let tag = match confirmations {
        Confirmations::Blocks(n) => return Ok((head + 1).checked_sub(n)),
        Confirmations::Finalized => BlockNumberOrTag::Finalized,
        Confirmations::Safe => BlockNumberOrTag::Safe,
    };
    let block = provider.get_block_by_number(tag).await.with_context(|| format!("the {tag} block"))?;
    Ok(block.map(|b| b.header.number))
}

/// The `[signer] private_key`, for the commands and jobs that send transactions.
pub fn signer_key(config: &crate::config::Config) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
    use anyhow::Context;
    use secrecy::ExposeSecret;
    let key = config.signer.as_ref().context("config: `signer.private_key` is needed")?.private_key.expose_secret();
    key.parse().context("config: `signer.private_key`")
}

/// A provider signing with `[signer] private_key`, on the first endpoint.
pub fn signing_provider_for(config: &crate::config::Config) -> anyhow::Result<DynProvider> {
    Ok(signing_provider(config.chain.rpc_http.primary(), signer_key(config)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_scheme_and_host_only() {
        assert_eq!(redact("https://eth-mainnet.g.alchemy.com/v2/SECRETKEY"), "https://eth-mainnet.g.alchemy.com");
        assert_eq!(redact("http://user:pw@127.0.0.1:8545/?key=abc"), "http://127.0.0.1:8545");
        let said = describe("error sending request for url (https://mainnet.infura.io/v3/SECRET) timed out");
        assert!(!said.contains("SECRET"), "{said}");
        assert!(said.contains("https://mainnet.infura.io"), "{said}");
        let ws = describe("WebSocket protocol error: wss://mainnet.infura.io/ws/v3/SECRET closed");
        assert!(!ws.contains("SECRET") && ws.contains("wss://mainnet.infura.io"), "{ws}");
    }
}
