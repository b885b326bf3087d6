//! Credited payments: one row per paid order (card charge or confirmed crypto order). The
//! unique order id makes a second credit of the same order impossible.

use sqlx::any::AnyExecutor;
use uuid::Uuid;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone)]
pub struct NewDeposit {
    pub team_id: String,
    pub app_id: Option<String>,
    pub order_id: String,
    pub pay_method: String,
    pub usd: String,
    /// What was received, in the pay method's unit.
    pub amount: String,
    /// What the order asked (differs on overpaid and tolerance-forgiven orders).
    pub expected_amount: String,
    pub address: Option<String>,
    pub transaction_hash: Option<String>,
    pub card_id: Option<String>,
    pub app_end_time: Option<i64>,
    pub deposit_time: i64,
    /// The app as it was before this payment, so a reorg can undo exactly what it did.
    pub app_before: Option<AppBefore>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBefore {
    pub status: String,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// A credited payment taken back by a reorg.
#[derive(Debug, Clone)]
pub struct Reversed {
    pub app_id: Option<String>,
    pub amount: String,
    pub transaction_hash: Option<String>,
    pub app_end_time: Option<i64>,
    pub app_before: Option<AppBefore>,
}

pub async fn insert<'e>(db: impl AnyExecutor<'e>, d: &NewDeposit) -> StoreResult<String> {
    let deposit_id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO deposits (deposit_id, team_id, app_id, order_id, pay_method, usd, amount, address, \
         transaction_hash, card_id, app_end_time, deposit_time, created_at, app_prev_status, app_prev_start, app_prev_end, \
         expected_amount) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&deposit_id)
    .bind(&d.team_id)
    .bind(d.app_id.as_deref())
    .bind(&d.order_id)
    .bind(&d.pay_method)
    .bind(&d.usd)
    .bind(&d.amount)
    .bind(d.address.as_deref())
    .bind(d.transaction_hash.as_deref())
    .bind(d.card_id.as_deref())
    .bind(d.app_end_time)
    .bind(d.deposit_time)
    .bind(unix_now())
    .bind(d.app_before.as_ref().map(|b| b.status.clone()))
    .bind(d.app_before.as_ref().and_then(|b| b.start_time))
    .bind(d.app_before.as_ref().and_then(|b| b.end_time))
    .bind(&d.expected_amount)
    .execute(db)
    .await?;
    Ok(deposit_id)
}

/// Deletes an order's deposit row (its payment left the chain) and returns what it recorded.
pub async fn take_back(db: &mut sqlx::AnyConnection, order_id: &str) -> StoreResult<Option<Reversed>> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT app_id, amount, transaction_hash, app_end_time, app_prev_status, app_prev_start, app_prev_end \
         FROM deposits WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut *db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    sqlx::query("DELETE FROM deposits WHERE order_id = $1").bind(order_id).execute(&mut *db).await?;
    let status: Option<String> = r.try_get("app_prev_status")?;
    Ok(Some(Reversed {
        app_id: r.try_get("app_id")?,
        amount: r.try_get("amount")?,
        transaction_hash: r.try_get("transaction_hash")?,
        app_end_time: r.try_get("app_end_time")?,
        app_before: status
            .map(|status| -> StoreResult<AppBefore> {
                Ok(AppBefore { status, start_time: r.try_get("app_prev_start")?, end_time: r.try_get("app_prev_end")? })
            })
            .transpose()?,
    }))
}

pub async fn count_for_team<'e>(db: impl AnyExecutor<'e>, team_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE team_id = $1").bind(team_id).fetch_one(db).await?)
}

/// A deposit with what the lists show of its app.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DepositRow {
    pub app_id: Option<String>,
    pub deposit_time: i64,
    pub app_end_time: Option<i64>,
    pub usd: String,
    pub amount: String,
    pub pay_method: String,
    pub address: Option<String>,
    pub transaction_hash: Option<String>,
    pub card_id: Option<String>,
    #[sqlx(rename = "name")]
    pub app_name: Option<String>,
    pub chart_name: Option<String>,
    #[sqlx(rename = "chart_icon_url")]
    pub icon_url: Option<String>,
    pub app_created_at: Option<i64>,
    #[sqlx(rename = "start_time")]
    pub app_start_time: Option<i64>,
    #[sqlx(rename = "end_time")]
    pub app_current_end: Option<i64>,
}

/// The team's deposits, newest first; `limit` None means all. Times are whole seconds, so
/// within one second an app's later deposit is the one that took its end further; the id
/// makes the order total, so both lists page the same way.
pub async fn list_for_team<'e>(
    db: impl AnyExecutor<'e>,
    team_id: &str,
    limit: Option<i64>,
    offset: i64,
) -> StoreResult<Vec<DepositRow>> {
    let rows = sqlx::query(
        "SELECT d.app_id, d.deposit_time, d.app_end_time, d.usd, d.amount, d.pay_method, d.address, \
         d.transaction_hash, d.card_id, a.name, a.chart_name, a.chart_icon_url, a.created_at AS app_created_at, \
         a.start_time, a.end_time FROM deposits d LEFT JOIN apps a ON a.app_id = d.app_id \
         WHERE d.team_id = $1 ORDER BY d.deposit_time DESC, d.app_end_time DESC, d.deposit_id DESC LIMIT $2 OFFSET $3",
    )
    .bind(team_id)
    .bind(limit.unwrap_or(i64::MAX))
    .bind(offset)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok(<DepositRow as sqlx::FromRow<_>>::from_row(r)?)).collect()
}

/// Records a sweep mined in `block`; a deposit is marked only by a sweep later than the one
/// it has, so a sweep is never recorded twice.
pub async fn mark_swept<'e>(
    db: impl AnyExecutor<'e>,
    order_id: &str,
    tx_hash: &str,
    block: u64,
    at: i64,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE deposits SET swept_tx = $1, swept_at = $2, swept_block = $3 \
         WHERE order_id = $4 AND (swept_tx IS NULL OR swept_block < $3)",
    )
    .bind(tx_hash)
    .bind(at)
    .bind(block as i64)
    .bind(order_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// (deposit time, pay method, usd) of every deposit since `from` (unix seconds): what the
/// revenue figures sum, by the payment list's rule (a deposit counts in its UTC month).
pub async fn revenue_since<'e>(db: impl AnyExecutor<'e>, from: i64) -> StoreResult<Vec<(i64, String, String)>> {
    Ok(sqlx::query_as("SELECT deposit_time, pay_method, usd FROM deposits WHERE deposit_time >= $1")
        .bind(from)
        .fetch_all(db)
        .await?)
}
