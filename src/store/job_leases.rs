//! Leases that keep a job from running in two processes at once (the sweep), on SQLite and
//! PostgreSQL alike: one conditional upsert takes a free or lapsed lease.

use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

/// Takes the lease `name` for `secs` as `holder`; false when another holder has it.
pub async fn take<'e>(db: impl AnyExecutor<'e>, name: &str, holder: &str, secs: i64) -> StoreResult<bool> {
    let now = unix_now();
    let done = sqlx::query(
        "INSERT INTO job_leases (name, holder, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
         WHERE job_leases.lease_until < $4",
    )
    .bind(name)
    .bind(holder)
    .bind(now + secs)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release<'e>(db: impl AnyExecutor<'e>, name: &str, holder: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM job_leases WHERE name = $1 AND holder = $2").bind(name).bind(holder).execute(db).await?;
    Ok(())
}
