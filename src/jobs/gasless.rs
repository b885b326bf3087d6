//! Follows the relayer's gasless payments to their chain's depth (`payments::gasless::follow`):
//! one a crash or a reorg left unknown to the chain goes out again, the same bytes.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::chain::status::ChainStatus;
use crate::config::Config;
use crate::store::Store;

pub async fn run(
    store: Store,
    config: Arc<Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if config.relayer.is_none() {
        shutdown.cancelled().await;
        return Ok(());
    }
    // At start: a token configured for authorizations that does not take them (or under
    // another domain) is named; `paywatch check` fails on it, `serve` goes on without it.
    for chain in config.chains() {
        if let Err(e) = crate::payments::gasless::check_tokens(&config, chain).await {
            tracing::error!(
                error = crate::redact::error(&e),
                "a gasless token's check failed; its authorizations will be refused"
            );
        }
    }
    super::each_poll_as_leader(&config, &status, &shutdown, || async {
        if let Err(e) = crate::payments::gasless::follow(&store, &config).await {
            tracing::warn!(error = crate::redact::error(&e), "gasless pass failed; the next one retries");
        }
        if let Err(e) = crate::payments::gasless::look_at_relayer(&config).await {
            tracing::warn!(error = crate::redact::error(&e), "the relayer's balance could not be read");
        }
    })
    .await
}
