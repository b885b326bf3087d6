//! WebSocket new-head subscription: it only wakes the watcher early. HTTP polling is the
//! truth; a dropped socket is reconnected with backoff and never stops anything.

use std::sync::Arc;
use std::time::Duration;

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub async fn run(url: String, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let session = async {
            let provider = ProviderBuilder::new().connect_ws(WsConnect::new(url.clone())).await?;
            let mut heads = provider.subscribe_blocks().await?.into_stream();
            tracing::info!("new-head subscription open");
            while heads.next().await.is_some() {
                wake.notify_one();
            }
            anyhow::Ok(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = session => {
                if let Err(e) = result {
                    // The WebSocket URL usually carries the provider's key.
                    let error = super::rpc::describe(&format!("{e:#}"));
                    tracing::warn!(%error, "new-head subscription failed; polling continues");
                } else {
                    backoff = Duration::from_millis(500);
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
