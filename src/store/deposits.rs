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
    pub amount: String,
    pub address: Option<String>,
    pub transaction_hash: Option<String>,
    pub card_id: Option<String>,
    pub app_end_time: Option<i64>,
    pub deposit_time: i64,
}

pub async fn insert<'e>(db: impl AnyExecutor<'e>, d: &NewDeposit) -> StoreResult<String> {
    let deposit_id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO deposits (deposit_id, team_id, app_id, order_id, pay_method, usd, amount, address, \
         transaction_hash, card_id, app_end_time, deposit_time, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
    .execute(db)
    .await?;
    Ok(deposit_id)
}

pub async fn count_for_order<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE order_id = $1").bind(order_id).fetch_one(db).await?)
}
