//! The operator's order table: every team's orders newest first, filtered, paged by keyset
//! (`created_at`, `order_id`) so the millionth page costs what the first does; and a search by
//! order id, app id, deposit address or transaction hash.

use sqlx::any::{AnyExecutor, AnyRow};

use super::StoreResult;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
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

/// Where a page starts: just below this (created_at, order_id); ordered as the table is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// The equality filters with an index of their own, `(column, created_at, order_id)` (0010,
/// 0011): the first one asked for leads the page's range.
const INDEXED: [&str; 3] = ["status", "team_id", "pay_method"];

/// A page of at most `limit` orders, newest first, and where the next one starts (None on the
/// last page).
///
/// Each page is one contiguous range of one index, written as two row-value bounds:
/// `(lead, created_at, order_id) >= (v, from, '')` and `< (v, end, id)`, where `lead` is the
/// first equality filter asked for (none: the range is over `(created_at, order_id)`). Both
/// PostgreSQL and SQLite start an index scan at such a bound; the `a < x OR (a = x AND b < y)`
/// form, or an equality next to a row bound, made PostgreSQL read from the end of the index
/// and filter (2.7 s for a page half-way down a million orders).
pub async fn page<'e>(
    db: impl AnyExecutor<'e>,
    f: &OrderFilter,
    limit: i64,
) -> StoreResult<(Vec<OrderRow>, Option<After>)> {
    let mut binds = Vec::new();
    let mut bind = |b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    let equal = [&f.status, &f.team_id, &f.pay_method];
    let lead = INDEXED.iter().zip(equal).find_map(|(column, value)| value.as_ref().map(|v| (*column, v)));
    // The range's upper end: the page mark, or the start of `created_before`, whichever is lower
    // (`(t, '')` sorts before every order created at `t`).
    let before = f.created_before.map(|t| After { created_at: t, order_id: String::new() });
    let end = [f.after.clone(), before].into_iter().flatten().min();
    // With a lead column the range must end within its value, so it always has an upper end
    // (no order is created at i64::MAX seconds).
    let end = match lead {
        Some(_) => Some(end.unwrap_or(After { created_at: i64::MAX, order_id: String::new() })),
        None => end,
    };
    let mut key = Vec::new();
    let mut low = Vec::new();
    let mut high = Vec::new();
    if let Some((column, v)) = lead {
        let at = bind(Bind::Text(v.clone()));
        key.push(format!("o.{column}"));
        low.push(at.clone());
        high.push(at);
    }
    key.extend(["o.created_at".to_string(), "o.order_id".to_string()]);
    low.extend([bind(Bind::Int(f.created_from.unwrap_or(i64::MIN))), bind(Bind::Text(String::new()))]);
    let tuple = |values: &[String]| format!("({})", values.join(", "));
    let mut conditions = vec![format!("{} >= {}", tuple(&key), tuple(&low))];
    if let Some(end) = end {
        high.extend([bind(Bind::Int(end.created_at)), bind(Bind::Text(end.order_id))]);
        conditions.push(format!("{} < {}", tuple(&key), tuple(&high)));
    }
    // The other equality filters are checked on the rows of the range.
    for (column, value) in INDEXED.iter().zip(equal) {
        if let Some(v) = value
            && lead.map(|(c, _)| c) != Some(*column)
        {
            conditions.push(format!("o.{column} = {}", bind(Bind::Text(v.clone()))));
        }
    }
    let limit_at = bind(Bind::Int(limit + 1));
    let order: Vec<String> = key.iter().map(|k| format!("{k} DESC")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM orders o WHERE {} ORDER BY {} LIMIT {limit_at}",
        conditions.join(" AND "),
        order.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(n) => query.bind(n),
        };
    }
    let mut rows = query.fetch_all(db).await?.iter().map(row_of).collect::<StoreResult<Vec<_>>>()?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| After { created_at: r.created_at, order_id: r.order_id.clone() })
    } else {
        None
    };
    Ok((rows, next))
}

/// Orders whose id, app id or deposit address is `term`, or that a transfer with that
/// transaction hash paid (addresses and hashes are stored lower-case). One index lookup per
/// kind of key, joined by UNION: an `OR` across columns is planned as a scan of every order.
pub async fn search<'e>(db: impl AnyExecutor<'e>, term: &str, limit: i64) -> StoreResult<Vec<OrderRow>> {
    let term = term.trim();
    let lower = term.to_ascii_lowercase();
    let sql = format!(
        "SELECT {COLUMNS} FROM orders o WHERE o.order_id IN (\
         SELECT order_id FROM orders WHERE order_id = $1 \
         UNION SELECT order_id FROM orders WHERE app_id = $1 \
         UNION SELECT order_id FROM orders WHERE deposit_address = $2 \
         UNION SELECT order_id FROM chain_transfers WHERE tx_hash = $2) \
         ORDER BY o.created_at DESC, o.order_id DESC LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(term).bind(&lower).bind(limit).fetch_all(db).await?;
    rows.iter().map(row_of).collect()
}

fn row_of(r: &AnyRow) -> StoreResult<OrderRow> {
    Ok(<OrderRow as sqlx::FromRow<_>>::from_row(r)?)
}
