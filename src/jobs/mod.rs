//! Scheduled jobs on tokio-cron-scheduler. Each job is a function of the store and "now",
//! idempotent, and run only by the process that holds the watcher lease, so several
//! processes sharing PostgreSQL act once.

pub mod expiry;

use std::sync::Arc;
use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::chain::status::ChainStatus;
use crate::config::Config;
use crate::store::{Store, idempotency, unix_now};

/// Idempotency keys are promised for 24 hours; keep them two days.
const IDEMPOTENCY_KEEP_SECS: i64 = 2 * 24 * 3600;
const EXPIRY_EVERY: Duration = Duration::from_secs(30);

pub async fn run(
    store: Store,
    config: Arc<Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut scheduler = JobScheduler::new().await?;
    let (s, st) = (store.clone(), status.clone());
    scheduler
        .add(Job::new_repeated_async(Duration::from_secs(3600), move |_id, _sched| {
            let (store, status) = (s.clone(), st.clone());
            Box::pin(async move {
                if !status.is_leader() {
                    return;
                }
                match idempotency::purge_older_than(store.pool(), unix_now() - IDEMPOTENCY_KEEP_SECS).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "old idempotency keys purged"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "idempotency purge failed; next run retries"),
                }
            })
        })?)
        .await?;
    scheduler
        .add(Job::new_repeated_async(EXPIRY_EVERY, move |_id, _sched| {
            let (store, config, status) = (store.clone(), config.clone(), status.clone());
            Box::pin(async move {
                if status.is_leader()
                    && let Err(e) = run_expiry(&store, &config, unix_now()).await
                {
                    tracing::warn!(error = %e, "expiry job failed; next run retries");
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    shutdown.cancelled().await;
    scheduler.shutdown().await?;
    Ok(())
}

/// Expires unpaid orders and finished apps, and sends the expiring notices due at `now`.
pub async fn run_expiry(store: &Store, config: &Config, now: i64) -> crate::store::StoreResult<()> {
    let orders = expiry::expire_orders(store, now).await?;
    let apps = expiry::expire_apps(store, now).await?;
    let notices = expiry::notify_expiring(store, now, config.jobs.expiring_notice_days).await?;
    if orders + apps + notices > 0 {
        tracing::info!(orders, apps, notices, "expiry");
    }
    Ok(())
}
