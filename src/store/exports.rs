//! Pages of the books for the exports: credited payments, stray funds and their refunds, each
//! in time order within `[from, to)`. Keyset pages (after the last row's time and id), so an
//! export of a year reads a bounded page at a time and holds no transaction open between them.

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::StoreResult;

/// Where the previous page ended: (time, id).
pub type After = (i64, String);

/// A credited payment, as the books need it.
#[derive(Debug, Clone)]
pub struct PaymentLine {
    pub deposit_id: String,
    pub paid_at: i64,
    pub order_id: String,
    pub team_id: String,
    pub app_id: Option<String>,
    pub pay_method: String,
    /// The chain and token of the transfer that completed the order (none for a card).
    pub chain_id: Option<i64>,
    pub token: Option<String>,
    pub amount: String,
    pub expected_amount: Option<String>,
    pub usd: String,
    pub late: bool,
    pub transaction_hash: Option<String>,
    pub card_id: Option<String>,
}

pub async fn payments<'e>(
    db: impl AnyExecutor<'e>,
    from: i64,
    to: i64,
    after: Option<&After>,
    limit: i64,
) -> StoreResult<Vec<PaymentLine>> {
    let (after_time, after_id) = after.cloned().unwrap_or((i64::MIN, String::new()));
    let rows = sqlx::query(
        "SELECT d.deposit_id, d.deposit_time, d.order_id, d.team_id, d.app_id, d.pay_method, d.amount, \
         d.expected_amount, d.usd, d.transaction_hash, d.card_id, o.late, \
         COALESCE((SELECT t.chain_id FROM chain_transfers t WHERE t.order_id = d.order_id \
             AND t.tx_hash = d.transaction_hash ORDER BY t.log_index LIMIT 1), o.chain_id) AS chain_id, \
         COALESCE((SELECT t.token_address FROM chain_transfers t WHERE t.order_id = d.order_id \
             AND t.tx_hash = d.transaction_hash ORDER BY t.log_index LIMIT 1), o.token_address) AS token \
         FROM deposits d JOIN orders o ON o.order_id = d.order_id \
         WHERE d.deposit_time >= $1 AND d.deposit_time < $2 \
         AND (d.deposit_time, d.deposit_id) > ($3, $4) \
         ORDER BY d.deposit_time, d.deposit_id LIMIT $5",
    )
    .bind(from)
    .bind(to)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PaymentLine {
                deposit_id: r.try_get("deposit_id")?,
                paid_at: r.try_get("deposit_time")?,
                order_id: r.try_get("order_id")?,
                team_id: r.try_get("team_id")?,
                app_id: r.try_get("app_id")?,
                pay_method: r.try_get("pay_method")?,
                chain_id: r.try_get("chain_id")?,
                token: r.try_get("token")?,
                amount: r.try_get("amount")?,
                expected_amount: r.try_get("expected_amount")?,
                usd: r.try_get("usd")?,
                late: r.try_get::<i64, _>("late")? != 0,
                transaction_hash: r.try_get("transaction_hash")?,
                card_id: r.try_get("card_id")?,
            })
        })
        .collect()
}

/// Stray funds, by the time found (`created_at`, which never changes).
pub async fn funds<'e>(
    db: impl AnyExecutor<'e>,
    from: i64,
    to: i64,
    after: Option<&After>,
    limit: i64,
) -> StoreResult<Vec<super::stray_funds::Fund>> {
    let book = Created { table: "stray_funds", id: "fund_id", columns: super::stray_funds::COLUMNS };
    book.page(db, (from, to), after, limit, super::stray_funds::from_row).await
}

/// Refund records of every status, by the time each was created.
pub async fn refunds<'e>(
    db: impl AnyExecutor<'e>,
    from: i64,
    to: i64,
    after: Option<&After>,
    limit: i64,
) -> StoreResult<Vec<super::refunds::Refund>> {
    let book = Created { table: "refunds", id: "refund_id", columns: super::refunds::COLUMNS };
    book.page(db, (from, to), after, limit, super::refunds::from_row).await
}

/// A book paged by (`created_at`, its id): a column that never changes, so a download during a
/// change neither skips nor repeats a row.
struct Created {
    table: &'static str,
    id: &'static str,
    columns: &'static str,
}

impl Created {
    async fn page<'e, T>(
        &self,
        db: impl AnyExecutor<'e>,
        (from, to): (i64, i64),
        after: Option<&After>,
        limit: i64,
        from_row: fn(&sqlx::any::AnyRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let Created { table, id, columns } = self;
        let (after_time, after_id) = after.cloned().unwrap_or((i64::MIN, String::new()));
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE created_at >= $1 AND created_at < $2 \
             AND (created_at, {id}) > ($3, $4) ORDER BY created_at, {id} LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(from)
            .bind(to)
            .bind(after_time)
            .bind(after_id)
            .bind(limit)
            .fetch_all(db)
            .await?;
        rows.iter().map(from_row).collect()
    }
}
