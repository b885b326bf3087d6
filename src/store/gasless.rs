//! Gasless payments: a payer's signed authorization and the relayer's transaction that carries
//! it, written before the broadcast (`sent`), then `confirmed` (mined at depth; the watcher
//! credits its Transfer like any other) or `failed` (the chain refused it).

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct GaslessPayment {
    pub payment_id: String,
    pub order_id: String,
    pub chain_id: i64,
    #[sqlx(rename = "token_address")]
    pub token: String,
    /// Who signed the authorization (the tokens leave this address).
    pub payer: String,
    /// The authorization's nonce (EIP-3009: once per payer and token).
    pub auth_nonce: String,
    /// Base units of the token.
    pub amount_base: String,
    /// The relayer's address and nonce.
    pub relayer: String,
    pub relayer_nonce: i64,
    #[serde(skip)]
    pub raw_tx: String,
    pub tx_hash: String,
    /// sent, confirmed or failed.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The gas its transaction used, once mined.
    pub gas_used: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "payment_id, order_id, chain_id, token_address, payer, auth_nonce, amount_base, relayer, \
                       relayer_nonce, raw_tx, tx_hash, status, error, gas_used, created_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<GaslessPayment> {
    Ok(<GaslessPayment as sqlx::FromRow<_>>::from_row(r)?)
}

/// The intent before its broadcast. Fails with a unique violation when the authorization is
/// recorded already (`of_authorization` finds it) or the relayer's nonce is taken.
pub async fn insert<'e>(db: impl AnyExecutor<'e>, p: &GaslessPayment) -> StoreResult<()> {
    let now = unix_now();
    sqlx::query(
        "INSERT INTO gasless_payments (payment_id, order_id, chain_id, token_address, payer, auth_nonce, amount_base, \
         relayer, relayer_nonce, raw_tx, tx_hash, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'sent', $12, $12)",
    )
    .bind(&p.payment_id)
    .bind(&p.order_id)
    .bind(p.chain_id)
    .bind(&p.token)
    .bind(&p.payer)
    .bind(&p.auth_nonce)
    .bind(&p.amount_base)
    .bind(&p.relayer)
    .bind(p.relayer_nonce)
    .bind(&p.raw_tx)
    .bind(&p.tx_hash)
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}

/// The payment recorded for one authorization, if any.
pub async fn of_authorization<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: i64,
    token: &str,
    payer: &str,
    auth_nonce: &str,
) -> StoreResult<Option<GaslessPayment>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM gasless_payments \
         WHERE chain_id = $1 AND token_address = $2 AND payer = $3 AND auth_nonce = $4"
    )))
    .bind(chain_id)
    .bind(token)
    .bind(payer)
    .bind(auth_nonce)
    .fetch_optional(db)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The relayer's next nonce as recorded (one past its highest), if it sent any on the chain.
pub async fn next_relayer_nonce<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: i64,
    relayer: &str,
) -> StoreResult<Option<i64>> {
    let row = sqlx::query("SELECT MAX(relayer_nonce) AS n FROM gasless_payments WHERE chain_id = $1 AND relayer = $2")
        .bind(chain_id)
        .bind(relayer)
        .fetch_one(db)
        .await?;
    Ok(row.try_get::<Option<i64>, _>("n")?.map(|n| n + 1))
}

/// Payments still `sent`, oldest first.
pub async fn sent<'e>(db: impl AnyExecutor<'e>, limit: i64) -> StoreResult<Vec<GaslessPayment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM gasless_payments WHERE status = 'sent' ORDER BY created_at, payment_id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// An order's gasless payments, oldest first.
pub async fn of_order<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Vec<GaslessPayment>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM gasless_payments WHERE order_id = $1 ORDER BY created_at, payment_id"
    )))
    .bind(order_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// sent → confirmed or failed (with why); false when it was no longer sent.
pub async fn settle<'e>(
    db: impl AnyExecutor<'e>,
    payment_id: &str,
    status: &str,
    error: Option<&str>,
    gas_used: Option<i64>,
) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE gasless_payments SET status = $1, error = $2, gas_used = $3, updated_at = $4 \
         WHERE payment_id = $5 AND status = 'sent'",
    )
    .bind(status)
    .bind(error)
    .bind(gas_used)
    .bind(unix_now())
    .bind(payment_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
