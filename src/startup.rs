//! Builds the pieces from the configuration and runs the API, the watcher and the jobs as
//! sibling tasks under one shutdown token. Whichever task ends first (or a signal) stops all.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::chain::rpc;
use crate::chain::status::Chains;
use crate::config::{CardProcessorKind, Config};
use crate::jobs;
use crate::payments::cards::{CardProcessor, Sandbox};
use crate::store::Store;
use crate::watcher::Watcher;

/// Connects the store and migrates it.
pub async fn connect_store(config: &Config) -> anyhow::Result<Store> {
    let store =
        Store::connect_with(config.database_url(), config.database.max_connections).await.context("database")?;
    store.migrate().await.context("database")?;
    Ok(store)
}

/// For one-shot commands: the store and the RPC node, failing fast on an unreachable node or
/// a wrong chain id.
pub async fn connect(config: &Config) -> anyhow::Result<(Store, alloy::providers::DynProvider)> {
    let store = connect_store(config).await?;
    let provider = rpc::provider(config.chain.rpc_http.urls())?;
    rpc::check_chain_id(&provider, config.chain.rpc_http.urls(), config.chain.chain_id).await?;
    Ok((store, provider))
}

/// Serves until `shutdown` is cancelled or one of the tasks ends.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    crate::telemetry::handle(); // installed before the first counter moves
    // The API serves whatever the RPC does: the watcher waits for the node (and refuses a
    // wrong chain id, which ends the process); `/readyz` says what it waits for.
    let store = connect_store(&config).await?;
    let chains = Arc::new(Chains::from_config(&config)?);
    let provider = chains.first().rpc.clone();
    let config = Arc::new(config);
    let status = chains.first().status.clone();
    let prices = Arc::new(crate::payments::prices::PriceBook::new(provider.clone()));
    let cards: Arc<dyn CardProcessor> = match config.cards.processor {
        CardProcessorKind::Sandbox => Arc::new(Sandbox::new(store.clone())),
    };
    let hub = crate::live::hub::Hub::new();
    let state = AppState {
        config: config.clone(),
        store: store.clone(),
        rpc: provider.clone(),
        chain: status.clone(),
        chains: chains.clone(),
        cards: cards.clone(),
        prices,
        streams: api::stream_limits::StreamLimits::new(
            config.server.max_streams as usize,
            config.server.max_streams_per_order as usize,
            config.server.max_streams_per_client as usize,
        ),
        hub: hub.clone(),
        keys: Arc::default(),
        shutdown: shutdown.clone(),
        trusted_proxies: Arc::new(config.server.trusted_proxy_nets()),
        forwarded_header: config.server.forwarded_header,
        auth_throttle: Arc::default(),
    };
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving");

    let mut tasks = JoinSet::new();
    let token = shutdown.clone();
    let header_read_timeout = Duration::from_secs(config.server.header_read_timeout_s);
    tasks.spawn(async move {
        api::serve::serve(listener, api::router(state), header_read_timeout, token).await.context("api")
    });
    // A watcher per chain, each with its own lease: one chain's outage or reorg is its own.
    for (chain, watched) in config.chains().into_iter().zip(chains.iter()) {
        let poll = Duration::from_millis(chain.config.poll_interval_ms);
        let watcher = Watcher::for_chain(&config, chain, store.clone(), watched.rpc.clone(), watched.status.clone())
            .with_failover(watched.failover.clone());
        tasks.spawn(watcher.run(chain.config.rpc_ws.clone(), poll, shutdown.clone()));
        tasks.spawn(crate::chain::status::follow_watcher(
            store.clone(),
            watched.chain_id,
            watched.status.clone(),
            poll,
            shutdown.clone(),
        ));
    }
    tasks.spawn(jobs::run(store.clone(), config.clone(), chains.clone(), cards, shutdown.clone()));
    tasks.spawn(crate::webhooks::run(store.clone(), config.clone(), status.clone(), shutdown.clone()));
    tasks.spawn(jobs::refunds::run(store.clone(), config.clone(), status.clone(), shutdown.clone()));
    tasks.spawn(jobs::gasless::run(store.clone(), config.clone(), status.clone(), shutdown.clone()));
    tasks.spawn(crate::live::run(store.clone(), config.clone(), chains.clone(), hub.clone(), shutdown.clone()));
    // New events appear at most once per watcher poll; asking the database more often is waste.
    let every = Duration::from_millis(config.chain.poll_interval_ms.clamp(100, 2_000));
    tasks.spawn(crate::live::hub::run(hub, store.clone(), every, shutdown.clone()));

    // The first task to end, for whatever reason, brings the others down.
    let first = tasks.join_next().await;
    shutdown.cancel();
    let mut result = flatten(first);
    while let Some(next) = tasks.join_next().await {
        if let (Ok(()), Err(e)) = (&result, flatten(Some(next))) {
            result = Err(e);
        }
    }
    store.close().await;
    result
}

fn flatten(joined: Option<Result<anyhow::Result<()>, tokio::task::JoinError>>) -> anyhow::Result<()> {
    match joined {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => Err(anyhow::anyhow!("task failed: {e}")),
    }
}

/// Cancels `token` on SIGINT or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            _ = term => {},
        }
        tracing::info!("shutting down");
        token.cancel();
    });
}
