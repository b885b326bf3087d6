//! Scheduled jobs on tokio-cron-scheduler: expiry (every 30 s), card payments left pending
//! (every `[cards] recover_after_s / 2`, at most 30 s), sweeping (every 10 min, when a signer
//! is configured), purging old idempotency keys and compacting delivered events and settled
//! orders' old views past `[jobs] retention_days` (hourly), reconciliation (daily). Each is idempotent and
//! runs only in the process that holds the watcher lease, so processes sharing PostgreSQL act
//! once. Token prices need no job: feeds are read on demand with a short cache.

pub mod expiry;
pub mod gasless;
pub mod reconcile;
pub mod refunds;
pub mod sweep;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::chain::status::{ChainStatus, Chains};
use crate::config::Config;
use crate::payments::card_payment;
use crate::payments::cards::CardProcessor;
use crate::store::{Store, idempotency, unix_now};

/// Idempotency keys are promised for 24 hours; keep them two days.
const IDEMPOTENCY_KEEP_SECS: i64 = 2 * 24 * 3600;
const EXPIRY_EVERY: Duration = Duration::from_secs(30);
const SWEEP_EVERY: Duration = Duration::from_secs(600);
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const RECONCILE_EVERY: Duration = Duration::from_secs(24 * 3600);

pub async fn run(
    store: Store,
    config: Arc<Config>,
    chains: Arc<Chains>,
    cards: Arc<dyn CardProcessor>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let status = chains.first().status.clone();
    let mut scheduler = JobScheduler::new().await?;
    let recover_after = config.cards.recover_after_s;
    let recover_every = Duration::from_secs((recover_after / 2).clamp(1, 30));
    let s = store.clone();
    add_leader_job(&mut scheduler, recover_every, &status, move || {
        let (store, cards) = (s.clone(), cards.clone());
        async move {
            let before = unix_now() - recover_after as i64;
            match card_payment::recover_pending(&store, cards.as_ref(), before).await {
                Ok(r) if r != card_payment::Recovery::default() => tracing::info!(
                    recorded = r.recorded,
                    not_charged = r.not_charged,
                    refunded = r.refunded,
                    unresolved = r.unresolved,
                    "card payments recovered"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = crate::redact::error(&e), "card recovery failed; next run retries"),
            }
        }
    })
    .await?;
    let (s, c) = (store.clone(), config.clone());
    let all = chains.clone();
    add_leader_job(&mut scheduler, EXPIRY_EVERY, &status, move || {
        let (store, config, chains) = (s.clone(), c.clone(), all.clone());
        async move {
            if let Err(e) = run_expiry(&store, &config, chains.all_caught_up(), chains.least_now()).await {
                tracing::warn!(error = crate::redact::error(&e), "expiry job failed; next run retries");
            }
        }
    })
    .await?;
    let s = store.clone();
    let retention_secs = (config.jobs.retention_days * 24 * 3600) as i64;
    add_leader_job(&mut scheduler, PURGE_EVERY, &status, move || {
        let store = s.clone();
        async move {
            match idempotency::purge_older_than(store.pool(), unix_now() - IDEMPOTENCY_KEEP_SECS).await {
                Ok(n) if n > 0 => tracing::info!(purged = n, "old idempotency keys purged"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = crate::redact::error(&e), "idempotency purge failed; next run retries")
                }
            }
            match compact(&store, unix_now() - retention_secs).await {
                Ok((events, views)) if events + views > 0 => {
                    tracing::info!(events, views, "delivered events and superseded order views compacted")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = crate::redact::error(&e), "retention failed; next run retries"),
            }
        }
    })
    .await?;
    let s = store.clone();
    let rpcs: Vec<(u64, alloy::providers::DynProvider)> = chains.iter().map(|c| (c.chain_id, c.rpc.clone())).collect();
    add_leader_job(&mut scheduler, RECONCILE_EVERY, &status, move || {
        let (store, rpcs) = (s.clone(), rpcs.clone());
        async move {
            match reconcile::reconcile_all(&store, &rpcs).await {
                Ok(r) if !r.differences.is_empty() => {
                    tracing::error!(
                        differences = r.differences.len(),
                        block = r.block,
                        "reconciliation found differences"
                    )
                }
                Ok(r) => tracing::info!(checked = r.checked, block = r.block, "reconciliation: ledger and chain agree"),
                Err(e) => tracing::warn!(error = crate::redact::error(&e), "reconciliation failed; next run retries"),
            }
        }
    })
    .await?;
    if config.signer.is_some() && config.deposits.is_some() {
        crate::chain::rpc::signer_key(&config)?;
        let (s, c) = (store.clone(), config.clone());
        add_leader_job(&mut scheduler, SWEEP_EVERY, &status, move || {
            let (store, config) = (s.clone(), c.clone());
            async move {
                // Each chain with its own gas; a failing chain is logged and the others go on.
                for (chain, run) in sweep::sweep_chains(&store, &config, &config.chains()).await {
                    if let Some(r) = run.report.filter(|r| r.swept > 0 || r.failed_batches > 0) {
                        tracing::info!(chain, swept = r.swept, failed_batches = r.failed_batches, "sweep");
                    }
                }
            }
        })
        .await?;
    }
    scheduler.start().await?;
    shutdown.cancelled().await;
    scheduler.shutdown().await?;
    Ok(())
}

/// Retention: delivered webhook events and superseded views of settled orders older than
/// `before` go; returns (events, views) removed.
pub async fn compact(store: &Store, before: i64) -> crate::store::StoreResult<(u64, u64)> {
    let mut tx = store.begin().await?;
    let events = crate::store::outbox::compact_delivered(&mut tx, before).await?;
    tx.commit().await?;
    let views = crate::store::order_events::compact_settled(store.pool(), before).await?;
    Ok((events, views))
}

/// A repeated job that does nothing unless this process holds the watcher lease.
async fn add_leader_job<F, Fut>(
    scheduler: &mut JobScheduler,
    every: Duration,
    status: &Arc<ChainStatus>,
    work: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let status = status.clone();
    let work = Arc::new(work);
    scheduler
        .add(Job::new_repeated_async(every, move |_id, _sched| {
            let (status, work) = (status.clone(), work.clone());
            Box::pin(async move {
                if status.is_leader() {
                    work().await;
                }
            })
        })?)
        .await?;
    Ok(())
}

/// Expires unpaid orders (by the chain's clock) and finished apps, lists the money of orders
/// whose late window closed as stray funds, and sends the expiring notices due at `now`.
pub async fn run_expiry(
    store: &Store,
    config: &Config,
    all_caught_up: bool,
    now: i64,
) -> crate::store::StoreResult<()> {
    let clock = expiry::order_clock(store, &config.chain_ids(), all_caught_up, now).await?;
    let orders = expiry::expire_orders(store, clock).await?;
    let strays =
        crate::payments::stray::collect_closed(store, &crate::payments::credit::Rules::from_config(config), clock)
            .await?;
    let apps = expiry::expire_apps(store, now).await?;
    let notices = expiry::notify_expiring(store, now, config.jobs.expiring_notice_days).await?;
    if orders + strays + apps + notices > 0 {
        tracing::info!(orders, strays, apps, notices, "expiry");
    }
    Ok(())
}

/// Runs `pass` once per chain poll (at most every 5 s) while this process holds the first
/// chain's lease, until shutdown: the refund and gasless jobs, which follow transactions.
pub async fn each_poll_as_leader<F, Fut>(
    config: &Config,
    status: &ChainStatus,
    shutdown: &CancellationToken,
    mut pass: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let tick = Duration::from_millis(config.chain.poll_interval_ms.clamp(100, 5_000));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
        if status.is_leader() {
            pass().await;
        }
    }
}
