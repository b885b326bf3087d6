//! Orders: what someone owes, with the quote locked in. Crypto orders carry their own deposit
//! address; received amounts are kept in base units as seen and confirmed sums.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use rust_decimal::Decimal;
use sqlx::Row;
use sqlx::any::{AnyExecutor, AnyRow};
use uuid::Uuid;

use super::columns::{address_text, parsed, parsed_opt};
use super::{StoreError, StoreResult, unix_now};
use crate::money::{PayMethod, parse_base_units};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    Create,
    Extend,
    Catalog,
}

pub use paywatch_core::order_state::OrderStatus;

macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> StoreResult<Self> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(StoreError::Corrupt(format!(concat!(stringify!($ty), " {:?}"), other))),
                }
            }
        }
    };
}

/// A stored order status, or the row is corrupt.
fn order_status(text: &str) -> StoreResult<OrderStatus> {
    OrderStatus::parse(text).ok_or_else(|| StoreError::Corrupt(format!("OrderStatus {text:?}")))
}

text_enum!(OrderKind { Create => "create", Extend => "extend", Catalog => "catalog" });

/// The on-chain side of a crypto order, fixed when the order is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoTerms {
    pub amount_base: U256,
    pub token_price_usd: Decimal,
    pub token_address: Address,
    pub chain_id: u64,
    pub salt: B256,
    pub deposit_address: Address,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub team_id: String,
    pub app_id: Option<String>,
    pub kind: OrderKind,
    pub pay_method: PayMethod,
    pub period_months: i64,
    pub usd: Decimal,
    /// Tokens for a crypto order, USD for a card order.
    pub amount: Decimal,
    pub crypto: Option<CryptoTerms>,
    pub card_id: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub order_id: String,
    pub new: NewOrder,
    pub progress: PaymentProgress,
    pub created_at: i64,
}

const COLUMNS: &str = "order_id, team_id, app_id, kind, pay_method, period_months, usd, amount, amount_base, \
    token_price_usd, token_address, chain_id, salt, deposit_address, status, seen_base, confirmed_base, \
    overpaid_base, late, card_id, paid_at, expires_at, created_at";

/// A fresh order id; crypto orders need it before insertion, as their salt derives from it.
pub fn new_order_id() -> String {
    Uuid::new_v4().to_string()
}

/// Holds the order's row until the transaction ends, so two settles of one order (a fund
/// applied while another is, or while the watcher confirms a transfer) run one after the other
/// and the second reads what the first wrote. PostgreSQL only: SQLite's write transactions
/// (`BEGIN IMMEDIATE`) are serialized already.
pub async fn lock(tx: &mut super::Tx, order_id: &str) -> StoreResult<()> {
    if tx.backend_name() == "PostgreSQL" {
        // NO KEY UPDATE: what the order's own UPDATE takes, and no conflict with the key-share lock a
        // stray fund's foreign key holds on the order (FOR UPDATE would deadlock two applies).
        sqlx::query("SELECT 1 FROM orders WHERE order_id = $1 FOR NO KEY UPDATE")
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Holds several orders' rows, in id order: a transaction that writes to more than one order
/// takes them all first, so it cannot hold one order's change note while waiting on another
/// (the deadlock of a watcher step against an apply).
pub async fn lock_all(tx: &mut super::Tx, order_ids: &std::collections::BTreeSet<String>) -> StoreResult<()> {
    for order_id in order_ids {
        lock(tx, order_id).await?;
    }
    Ok(())
}

pub async fn insert_order<'e>(db: impl AnyExecutor<'e>, order_id: &str, new: &NewOrder) -> StoreResult<Order> {
    let now = unix_now();
    let order_id = order_id.to_string();
    let c = new.crypto.as_ref();
    sqlx::query(
        "INSERT INTO orders (order_id, team_id, app_id, kind, pay_method, period_months, usd, amount, amount_base, \
         token_price_usd, token_address, chain_id, salt, deposit_address, status, card_id, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)",
    )
    .bind(&order_id)
    .bind(&new.team_id)
    .bind(new.app_id.as_deref())
    .bind(new.kind.as_str())
    .bind(new.pay_method.as_str())
    .bind(new.period_months)
    .bind(new.usd.to_string())
    .bind(new.amount.to_string())
    .bind(c.map(|c| c.amount_base.to_string()))
    .bind(c.map(|c| c.token_price_usd.to_string()))
    .bind(c.map(|c| address_text(&c.token_address)))
    .bind(c.map(|c| c.chain_id as i64))
    .bind(c.map(|c| format!("{:#x}", c.salt)))
    .bind(c.map(|c| address_text(&c.deposit_address)))
    .bind(OrderStatus::AwaitingPayment.as_str())
    .bind(new.card_id.as_deref())
    .bind(new.expires_at)
    .bind(now)
    .execute(db)
    .await?;
    Ok(Order { order_id, new: new.clone(), progress: PaymentProgress::awaiting(), created_at: now })
}

/// The order if it belongs to `team_id`.
pub async fn get_order<'e>(db: impl AnyExecutor<'e>, team_id: &str, order_id: &str) -> StoreResult<Option<Order>> {
    let row =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orders WHERE order_id = $1 AND team_id = $2")))
            .bind(order_id)
            .bind(team_id)
            .fetch_optional(db)
            .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// The order paying into `deposit_address`, whatever its team.
pub async fn find_by_deposit_address<'e>(
    db: impl AnyExecutor<'e>,
    deposit_address: &Address,
) -> StoreResult<Option<Order>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orders WHERE deposit_address = $1")))
        .bind(address_text(deposit_address))
        .fetch_optional(db)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

fn from_row(r: &AnyRow) -> StoreResult<Order> {
    let decimal = |col: &str| parsed::<Decimal>(r, "orders", col);
    let units = |col: &str| -> StoreResult<U256> {
        let s: String = r.try_get(col)?;
        parse_base_units(&s).ok_or_else(|| StoreError::Corrupt(format!("{col} {s:?}")))
    };
    let crypto = match parsed_opt::<Address>(r, "orders", "deposit_address")? {
        None => None,
        Some(deposit_address) => Some(CryptoTerms {
            amount_base: units("amount_base")?,
            token_price_usd: decimal("token_price_usd")?,
            token_address: parsed(r, "orders", "token_address")?,
            chain_id: r.try_get::<i64, _>("chain_id")? as u64,
            salt: parsed(r, "orders", "salt")?,
            deposit_address,
        }),
    };
    let pay_method: String = r.try_get("pay_method")?;
    Ok(Order {
        order_id: r.try_get("order_id")?,
        new: NewOrder {
            team_id: r.try_get("team_id")?,
            app_id: r.try_get("app_id")?,
            kind: OrderKind::parse(&r.try_get::<String, _>("kind")?)?,
            pay_method: PayMethod::from_str(&pay_method).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            period_months: r.try_get("period_months")?,
            usd: decimal("usd")?,
            amount: decimal("amount")?,
            crypto,
            card_id: r.try_get("card_id")?,
            expires_at: r.try_get("expires_at")?,
        },
        progress: PaymentProgress {
            status: order_status(&r.try_get::<String, _>("status")?)?,
            seen_base: units("seen_base")?,
            confirmed_base: units("confirmed_base")?,
            overpaid_base: units("overpaid_base")?,
            late: r.try_get::<i64, _>("late")? != 0,
            paid_at: r.try_get("paid_at")?,
        },
        created_at: r.try_get("created_at")?,
    })
}

/// The order of an app paid with `pay_method` that a payer should see: its open one (first
/// order or extension), else its newest.
pub async fn current_for_app<'e>(
    db: impl AnyExecutor<'e>,
    team_id: &str,
    app_id: &str,
    pay_method: PayMethod,
) -> StoreResult<Option<Order>> {
    // An open order first (an older one may still be open beside a newer closed one), then
    // the newest; `seq` is commit order, which a host's clock cannot reorder.
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE team_id = $1 AND app_id = $2 AND pay_method = $3 \
         ORDER BY CASE WHEN status IN ('awaiting_payment', 'partially_paid') THEN 0 ELSE 1 END, seq DESC LIMIT 1"
    )))
    .bind(team_id)
    .bind(app_id)
    .bind(pay_method.as_str())
    .fetch_optional(db)
    .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Any order by id, whatever its team (for the watcher and the public checkout page).
pub async fn get_any<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Option<Order>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orders WHERE order_id = $1")))
        .bind(order_id)
        .fetch_optional(db)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// An order and its transfers (oldest first) in one statement, so one snapshot holds both and
/// a hot read costs one round trip. `team_id` scopes it to a team (None: any team).
pub async fn with_transfers<'e>(
    db: impl AnyExecutor<'e>,
    team_id: Option<&str>,
    order_id: &str,
) -> StoreResult<Option<(Order, Vec<(super::transfers::Transfer, String)>)>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let order: Vec<String> = COLUMNS.split(',').map(|c| format!("o.{}", c.trim())).collect();
        let transfer: Vec<String> =
            super::transfers::COLUMNS.split(',').map(|c| format!("t.{c} AS t_{c}", c = c.trim())).collect();
        format!(
            "SELECT {}, {} FROM orders o LEFT JOIN chain_transfers t ON t.order_id = o.order_id \
             WHERE o.order_id = $1 AND ($2 IS NULL OR o.team_id = $2) ORDER BY t.block_number, t.log_index",
            order.join(", "),
            transfer.join(", ")
        )
    });
    let rows = sqlx::query(sqlx::AssertSqlSafe(SQL.as_str())).bind(order_id).bind(team_id).fetch_all(db).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let order = from_row(first)?;
    let mut transfers = Vec::new();
    for r in &rows {
        if r.try_get::<Option<String>, _>("t_tx_hash")?.is_some() {
            transfers.push(super::transfers::from_row(r, "t_")?);
        }
    }
    Ok(Some((order, transfers)))
}

/// How far an order's payment has come; written by the crediting transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentProgress {
    pub status: OrderStatus,
    pub seen_base: U256,
    pub confirmed_base: U256,
    pub overpaid_base: U256,
    pub late: bool,
    pub paid_at: Option<i64>,
}

impl PaymentProgress {
    /// A new order: nothing received yet.
    pub fn awaiting() -> Self {
        Self {
            status: OrderStatus::AwaitingPayment,
            seen_base: U256::ZERO,
            confirmed_base: U256::ZERO,
            overpaid_base: U256::ZERO,
            late: false,
            paid_at: None,
        }
    }
}

/// awaiting_payment or partially_paid → expired, unless a transfer mined before its expiry is
/// still confirming; false when it was not (paid, or expired elsewhere, since it was found).
pub async fn expire_unpaid<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE orders SET status = 'expired', updated_at = $1 \
         WHERE order_id = $2 AND status IN ('awaiting_payment', 'partially_paid') \
         AND NOT EXISTS (SELECT 1 FROM chain_transfers t WHERE t.order_id = orders.order_id AND t.state = 'seen' \
             AND COALESCE(t.block_time, 0) <= orders.expires_at)",
    )
    .bind(unix_now())
    .bind(order_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes an order's recomputed sums, only if its status is still `from` (the state they were
/// computed from): expiry and crediting never overwrite each other. `Conflict` when another
/// writer got there first; the caller rolls back and recomputes.
pub async fn update_progress<'e>(
    db: impl AnyExecutor<'e>,
    order_id: &str,
    from: OrderStatus,
    p: &PaymentProgress,
) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE orders SET status = $1, seen_base = $2, confirmed_base = $3, overpaid_base = $4, late = $5, \
         paid_at = $6, updated_at = $7 WHERE order_id = $8 AND status = $9",
    )
    .bind(p.status.as_str())
    .bind(p.seen_base.to_string())
    .bind(p.confirmed_base.to_string())
    .bind(p.overpaid_base.to_string())
    .bind(p.late as i64)
    .bind(p.paid_at)
    .bind(unix_now())
    .bind(order_id)
    .bind(from.as_str())
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("order {order_id} changed while it was being credited")));
    }
    Ok(())
}

/// A deposit address the watcher listens to, with its place in the order sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedAddress {
    pub seq: i64,
    /// None for card orders: read too, so their numbers are not taken for holes.
    pub deposit_address: Option<Address>,
    pub order_id: String,
    pub expires_at: i64,
}

/// Orders with `after < seq <= upto`, in sequence order, at most `limit`. The sequence
/// is the database's own (an identity column; SQLite's rowid), so no host clock is involved.
pub async fn watched_between<'e>(
    db: impl AnyExecutor<'e>,
    after: i64,
    upto: i64,
    limit: i64,
) -> StoreResult<Vec<WatchedAddress>> {
    let rows = sqlx::query(
        "SELECT seq, deposit_address, order_id, expires_at FROM orders \
         WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
    )
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let address: Option<String> = r.try_get("deposit_address")?;
            Ok(WatchedAddress {
                seq: r.try_get("seq")?,
                deposit_address: address
                    .map(|a| a.parse().map_err(|_| StoreError::Corrupt(format!("deposit_address {a:?}"))))
                    .transpose()?,
                order_id: r.try_get("order_id")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .collect()
}

/// The highest order sequence number taken so far (committed or not, on PostgreSQL).
pub async fn max_seq<'e>(db: impl AnyExecutor<'e>) -> StoreResult<i64> {
    let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM orders").fetch_one(db).await?;
    Ok(n.unwrap_or(0))
}

/// The order id paying into `address`, if any.
pub async fn order_for_address<'e>(db: impl AnyExecutor<'e>, address: &Address) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT order_id FROM orders WHERE deposit_address = $1")
        .bind(address_text(address))
        .fetch_optional(db)
        .await?)
}

/// How many orders are in each status (every status appears, with 0 when none is in it).
pub async fn count_by_status<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Vec<(&'static str, i64)>> {
    use sqlx::Row;
    let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM orders GROUP BY status").fetch_all(db).await?;
    let mut counts: Vec<(&'static str, i64)> =
        [OrderStatus::AwaitingPayment, OrderStatus::PartiallyPaid, OrderStatus::Paid, OrderStatus::Expired]
            .iter()
            .map(|s| (s.as_str(), 0))
            .collect();
    for r in rows {
        let status = order_status(&r.try_get::<String, _>("status")?)?;
        let n: i64 = r.try_get("n")?;
        if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == status.as_str()) {
            entry.1 = n;
        }
    }
    Ok(counts)
}
