//! Whether the webhook endpoint may be sent to: a receiver that answered 410 Gone is disabled
//! until an operator re-enables it. Keyed by the URL's SHA-256 (see the migration).

use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

/// Why and since when the endpoint is disabled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Disabled {
    pub disabled_at: i64,
    pub reason: String,
}

fn key(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))
}

pub async fn disabled<'e>(db: impl AnyExecutor<'e>, url: &str) -> StoreResult<Option<Disabled>> {
    let row = sqlx::query(
        "SELECT disabled_at, reason FROM webhook_endpoints WHERE url_sha256 = $1 AND disabled_at IS NOT NULL",
    )
    .bind(key(url))
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(r) => Some(Disabled {
            disabled_at: r.try_get("disabled_at")?,
            reason: r.try_get::<Option<String>, _>("reason")?.unwrap_or_default(),
        }),
        None => None,
    })
}

pub async fn disable<'e>(db: impl AnyExecutor<'e>, url: &str, reason: &str) -> StoreResult<()> {
    let now = unix_now();
    sqlx::query(
        "INSERT INTO webhook_endpoints (url_sha256, disabled_at, reason, updated_at) VALUES ($1, $2, $3, $2) \
         ON CONFLICT (url_sha256) DO UPDATE SET disabled_at = $2, reason = $3, updated_at = $2",
    )
    .bind(key(url))
    .bind(now)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(())
}

/// True when it was disabled.
pub async fn enable<'e>(db: impl AnyExecutor<'e>, url: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET disabled_at = NULL, reason = NULL, updated_at = $2 \
         WHERE url_sha256 = $1 AND disabled_at IS NOT NULL",
    )
    .bind(key(url))
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
