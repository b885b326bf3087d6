//! The chain watcher's task. This is the skeleton the payment-path work fills in: it runs
//! beside the API under the shared shutdown token and, for now, only follows the chain head.

use std::time::Duration;

use alloy::providers::{DynProvider, Provider};
use tokio_util::sync::CancellationToken;

pub async fn run(provider: DynProvider, poll_interval: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(poll_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {
                match provider.get_block_number().await {
                    Ok(head) => tracing::debug!(head, "chain head"),
                    // An RPC error never stops the daemon: the next tick tries again.
                    Err(e) => tracing::warn!(error = %e, "chain head unavailable"),
                }
            }
        }
    }
}
