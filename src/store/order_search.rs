//! The operator's order table: every team's orders newest first, filtered, paged by keyset
//! (`created_at`, `order_id`) so the millionth page costs what the first does; and a search by
//! order id, app id, deposit address or transaction hash.

use sqlx::Row;
use sqlx::any::{AnyExecutor, AnyRow};

use super::StoreResult;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub team_id: String,
    pub app_id: Option<String>,
    pub kind: String,
    pub pay_method: String,
    pub status: String,
    pub usd: String,
    pub amount: String,
    pub deposit_address: Option<String>,
    pub created_at: i64,
}

/// Where a page starts: just below this (created_at, order_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub created_at: i64,
    pub order_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub status: Option<String>,
    pub team_id: Option<String>,
    pub pay_method: Option<String>,
    /// Created at or after (unix seconds).
    pub created_from: Option<i64>,
    /// Created before (unix seconds).
    pub created_before: Option<i64>,
    pub after: Option<After>,
}

enum Bind {
    Text(String),
    Int(i64),
}

const COLUMNS: &str =
    "o.order_id, o.team_id, o.app_id, o.kind, o.pay_method, o.status, o.usd, o.amount, o.deposit_address, o.created_at";

/// A page of at most `limit` orders, newest first, and where the next one starts (None on the
/// last page). Only the conditions asked for are in the statement, so each filter can use its
/// index (a `$1 = '' OR` form would leave the planner guessing).
pub async fn page<'e>(
    db: impl AnyExecutor<'e>,
    f: &OrderFilter,
    limit: i64,
) -> StoreResult<(Vec<OrderRow>, Option<After>)> {
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut bind = |b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    for (column, value) in [("status", &f.status), ("team_id", &f.team_id), ("pay_method", &f.pay_method)] {
        if let Some(v) = value {
            conditions.push(format!("o.{column} = {}", bind(Bind::Text(v.clone()))));
        }
    }
    if let Some(from) = f.created_from {
        conditions.push(format!("o.created_at >= {}", bind(Bind::Int(from))));
    }
    if let Some(before) = f.created_before {
        conditions.push(format!("o.created_at < {}", bind(Bind::Int(before))));
    }
    if let Some(after) = &f.after {
        let at = bind(Bind::Int(after.created_at));
        let at_again = bind(Bind::Int(after.created_at));
        let id = bind(Bind::Text(after.order_id.clone()));
        conditions.push(format!("(o.created_at < {at} OR (o.created_at = {at_again} AND o.order_id < {id}))"));
    }
    let limit_at = bind(Bind::Int(limit + 1));
    let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
    let sql =
        format!("SELECT {COLUMNS} FROM orders o {filter} ORDER BY o.created_at DESC, o.order_id DESC LIMIT {limit_at}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(n) => query.bind(n),
        };
    }
    let mut rows = query.fetch_all(db).await?.iter().map(row).collect::<StoreResult<Vec<_>>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| After { created_at: r.created_at, order_id: r.order_id.clone() })
    } else {
        None
    };
    Ok((rows, next))
}

/// Orders whose id, app id or deposit address is `term`, or that a transfer with that
/// transaction hash paid (addresses and hashes are stored lower-case).
pub async fn search<'e>(db: impl AnyExecutor<'e>, term: &str, limit: i64) -> StoreResult<Vec<OrderRow>> {
    let term = term.trim();
    let lower = term.to_ascii_lowercase();
    let sql = format!(
        "SELECT {COLUMNS} FROM orders o WHERE o.order_id = $1 OR o.app_id = $1 OR o.deposit_address = $2 \
         OR o.order_id IN (SELECT t.order_id FROM chain_transfers t WHERE t.tx_hash = $2) \
         ORDER BY o.created_at DESC, o.order_id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(term).bind(&lower).bind(limit).fetch_all(db).await?;
    rows.iter().map(row).collect()
}

fn row(r: &AnyRow) -> StoreResult<OrderRow> {
    Ok(OrderRow {
        order_id: r.try_get("order_id")?,
        team_id: r.try_get("team_id")?,
        app_id: r.try_get("app_id")?,
        kind: r.try_get("kind")?,
        pay_method: r.try_get("pay_method")?,
        status: r.try_get("status")?,
        usd: r.try_get("usd")?,
        amount: r.try_get("amount")?,
        deposit_address: r.try_get("deposit_address")?,
        created_at: r.try_get("created_at")?,
    })
}
