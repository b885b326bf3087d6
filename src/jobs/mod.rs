//! Scheduled jobs on tokio-cron-scheduler. Each job is idempotent, so running it twice (or on
//! two processes) does no harm.

use std::time::Duration;

use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::store::{Store, idempotency, unix_now};

/// Idempotency keys are promised for 24 hours; keep them two days.
const IDEMPOTENCY_KEEP_SECS: i64 = 2 * 24 * 3600;

pub async fn run(store: Store, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_repeated_async(Duration::from_secs(3600), move |_id, _sched| {
            let store = store.clone();
            Box::pin(async move {
                match idempotency::purge_older_than(store.pool(), unix_now() - IDEMPOTENCY_KEEP_SECS).await {
                    Ok(n) if n > 0 => tracing::info!(purged = n, "old idempotency keys purged"),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "idempotency purge failed; next run retries")
                    }
                }
            })
        })?)
        .await?;
    scheduler.start().await?;
    shutdown.cancelled().await;
    scheduler.shutdown().await?;
    Ok(())
}
