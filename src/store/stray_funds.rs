//! The unattributed-funds ledger: token amounts at deposit addresses that credit no order.
//! One unattributed row per (order, token) follows what is stray there; the operator applies a
//! row to another order of the team (it then counts in that order's sums) or records the
//! refund that sent it back. Applied and refunded rows are settled and never change again.

use alloy::primitives::{Address, U256};
use sqlx::any::AnyExecutor;

use super::columns::address_text;
use super::columns::base_units;
use super::{StoreError, StoreResult, unix_now};

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Fund {
    pub fund_id: String,
    pub order_id: String,
    pub team_id: String,
    pub chain_id: i64,
    #[sqlx(rename = "token_address")]
    pub token: String,
    pub deposit_address: String,
    /// wrong_token, overpaid, partial_on_expired_order or after_late_window.
    pub reason: String,
    /// Base units of the token (integer string).
    pub amount_base: String,
    /// unattributed, applied or refunded.
    pub status: String,
    pub applied_order_id: Option<String>,
    pub refund_tx: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(super) const COLUMNS: &str = "fund_id, order_id, team_id, chain_id, token_address, deposit_address, reason, amount_base, \
                       status, applied_order_id, refund_tx, created_at, updated_at";

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Fund> {
    Ok(<Fund as sqlx::FromRow<_>>::from_row(r)?)
}

/// The sum of base-unit amounts read from the ledger.
fn total(amounts: Vec<String>) -> StoreResult<U256> {
    amounts.iter().try_fold(U256::ZERO, |sum, a| Ok(sum.saturating_add(base_units(a, "stray_funds amount")?)))
}

/// What the operator applied to `order_id` from elsewhere (counted in its sums).
pub async fn applied_to<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<U256> {
    let rows =
        sqlx::query_scalar("SELECT amount_base FROM stray_funds WHERE applied_order_id = $1 AND status = 'applied'")
            .bind(order_id)
            .fetch_all(db)
            .await?;
    total(rows)
}

/// What of `order_id`'s stray `token` is already settled (applied elsewhere or refunded).
pub async fn settled_from<'e>(
    db: impl AnyExecutor<'e>,
    order_id: &str,
    chain_id: u64,
    token: &Address,
) -> StoreResult<U256> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT amount_base FROM stray_funds WHERE order_id = $1 AND chain_id = $2 AND token_address = $3 \
         AND status <> 'unattributed'",
    )
    .bind(order_id)
    .bind(chain_id as i64)
    .bind(address_text(token))
    .fetch_all(db)
    .await?;
    total(rows)
}

/// Where an order's stray amount of one token stands now (the order is a crypto order).
pub struct StrayAt<'a> {
    pub order: &'a super::orders::Order,
    pub chain_id: u64,
    pub token: Address,
    pub reason: &'a str,
    pub amount: U256,
}

/// Sets the unattributed amount of (order, token); returns the row's id when it is new or grew
/// (to be announced).
pub async fn set_unattributed(tx: &mut super::Tx, s: &StrayAt<'_>) -> StoreResult<Option<String>> {
    let Some(crypto) = &s.order.new.crypto else { return Ok(None) };
    let order_id = s.order.order_id.as_str();
    let token = address_text(&s.token);
    let existing: Option<(String, String)> = sqlx::query_as(
        "SELECT fund_id, amount_base FROM stray_funds WHERE order_id = $1 AND chain_id = $2 AND token_address = $3 \
         AND status = 'unattributed'",
    )
    .bind(order_id)
    .bind(s.chain_id as i64)
    .bind(&token)
    .fetch_optional(&mut **tx)
    .await?;
    let now = unix_now();
    match existing {
        None if s.amount.is_zero() => Ok(None),
        Some((fund_id, _)) if s.amount.is_zero() => {
            let done = sqlx::query("DELETE FROM stray_funds WHERE fund_id = $1 AND status = 'unattributed'")
                .bind(&fund_id)
                .execute(&mut **tx)
                .await?;
            still_unattributed(done.rows_affected(), &fund_id)?;
            Ok(None)
        }
        Some((fund_id, old)) => {
            let old = base_units(&old, "stray_funds amount")?;
            if old == s.amount {
                return Ok(None);
            }
            // Only while it is unattributed: one applied or refunded meanwhile is settled money.
            let done = sqlx::query(
                "UPDATE stray_funds SET amount_base = $1, reason = $2, updated_at = $3 \
                 WHERE fund_id = $4 AND status = 'unattributed'",
            )
            .bind(s.amount.to_string())
            .bind(s.reason)
            .bind(now)
            .bind(&fund_id)
            .execute(&mut **tx)
            .await?;
            still_unattributed(done.rows_affected(), &fund_id)?;
            Ok((s.amount > old).then_some(fund_id))
        }
        None => {
            let fund_id = uuid::Uuid::new_v4().to_string();
            sqlx::query(
                "INSERT INTO stray_funds (fund_id, order_id, team_id, chain_id, token_address, deposit_address, reason, \
                 amount_base, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unattributed', $9, $9)",
            )
            .bind(&fund_id)
            .bind(order_id)
            .bind(&s.order.new.team_id)
            .bind(s.chain_id as i64)
            .bind(&token)
            .bind(address_text(&crypto.deposit_address))
            .bind(s.reason)
            .bind(s.amount.to_string())
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(Some(fund_id))
        }
    }
}

/// A row read as unattributed was settled before this transaction could change it: the
/// caller's reading is stale (the step recomputes).
fn still_unattributed(rows: u64, fund_id: &str) -> StoreResult<()> {
    match rows {
        0 => Err(StoreError::Conflict(format!("stray funds {fund_id} were settled meanwhile"))),
        _ => Ok(()),
    }
}

/// The funds applied to `order_id` go back to being stray where they came from (the order
/// closed unpaid): the applied rows are removed, so the orders they came from count them as
/// unsettled again. Returns those orders, to be settled next.
pub async fn release_applied_to(tx: &mut super::Tx, order_id: &str) -> StoreResult<Vec<String>> {
    let sources: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT order_id FROM stray_funds WHERE applied_order_id = $1 AND status = 'applied' ORDER BY order_id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM stray_funds WHERE applied_order_id = $1 AND status = 'applied'")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(sources)
}

/// The (chain, token) of every stray row of `order_id`, whatever its status.
pub async fn buckets_of<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Vec<(u64, Address)>> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT DISTINCT chain_id, token_address FROM stray_funds WHERE order_id = $1")
            .bind(order_id)
            .fetch_all(db)
            .await?;
    rows.into_iter()
        .map(|(chain_id, token)| {
            let token =
                token.parse().map_err(|_| StoreError::Corrupt(format!("stray_funds.token_address {token:?}")))?;
            Ok((chain_id as u64, token))
        })
        .collect()
}

/// Takes back `excess` of `order_id`'s stray `token` applied to other orders (newest applies
/// first): the money left the chain with a reorg, so no order may keep it. A fund wholly taken
/// back is deleted, one partly taken shrinks. Refunded rows are not touched (the money was
/// sent). Returns the orders that lost applied funds, to be settled again.
pub async fn take_back_applied(
    tx: &mut super::Tx,
    order_id: &str,
    chain_id: u64,
    token: &Address,
    excess: U256,
) -> StoreResult<TakenBack> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT fund_id, amount_base, applied_order_id FROM stray_funds WHERE order_id = $1 AND chain_id = $2 \
         AND token_address = $3 AND status = 'applied' ORDER BY updated_at DESC, fund_id",
    )
    .bind(order_id)
    .bind(chain_id as i64)
    .bind(address_text(token))
    .fetch_all(&mut **tx)
    .await?;
    let mut left = excess;
    let mut targets = Vec::new();
    for (fund_id, amount, target) in rows {
        if left.is_zero() {
            break;
        }
        let amount = base_units(&amount, "stray_funds amount")?;
        let taken = amount.min(left);
        left -= taken;
        if taken == amount {
            sqlx::query("DELETE FROM stray_funds WHERE fund_id = $1").bind(&fund_id).execute(&mut **tx).await?;
        } else {
            sqlx::query("UPDATE stray_funds SET amount_base = $1, updated_at = $2 WHERE fund_id = $3")
                .bind((amount - taken).to_string())
                .bind(unix_now())
                .bind(&fund_id)
                .execute(&mut **tx)
                .await?;
        }
        targets.extend(target);
    }
    let cancelled_refunds = if left.is_zero() {
        Vec::new()
    } else {
        take_back_unsent_refunds(tx, order_id, chain_id, token, &mut left).await?
    };
    if !left.is_zero() {
        tracing::error!(order_id, chain_id, %left, "stray money refunded before a reorg took it off the chain: refunded twice");
    }
    targets.sort();
    targets.dedup();
    Ok(TakenBack { targets, cancelled_refunds })
}

/// What a reorg's take-back touched: orders that lose applied funds, refunds cancelled.
#[derive(Debug, Default)]
pub struct TakenBack {
    pub targets: Vec<String>,
    pub cancelled_refunds: Vec<String>,
}

/// Refunds of this money not sent yet are cancelled (failed, with why): the money is no longer
/// there to send. Their rows keep nothing; what a cancelled refund held beyond the money taken
/// is open again. A refund already sent cannot be taken back (the caller reports it).
async fn take_back_unsent_refunds(
    tx: &mut super::Tx,
    order_id: &str,
    chain_id: u64,
    token: &Address,
    left: &mut U256,
) -> StoreResult<Vec<String>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT f.fund_id, f.amount_base, r.refund_id FROM stray_funds f JOIN refunds r ON r.fund_id = f.fund_id \
         WHERE f.order_id = $1 AND f.chain_id = $2 AND f.token_address = $3 AND f.status = 'refunded' \
         AND r.status IN ('open', 'claimed', 'approved') ORDER BY f.updated_at DESC, f.fund_id",
    )
    .bind(order_id)
    .bind(chain_id as i64)
    .bind(address_text(token))
    .fetch_all(&mut **tx)
    .await?;
    let mut cancelled = Vec::new();
    for (fund_id, amount, refund_id) in rows {
        if left.is_zero() {
            break;
        }
        let why = "the money left the chain in a reorg before it was sent";
        if !super::refunds::cancel_unsent(&mut **tx, &refund_id, why).await? {
            continue;
        }
        let amount = base_units(&amount, "stray_funds amount")?;
        let taken = amount.min(*left);
        *left -= taken;
        reopen(tx, &fund_id, amount - taken).await?;
        cancelled.push(refund_id);
    }
    Ok(cancelled)
}

/// A refunded row gives up its money: `amount` of it is open again (in the order's open row of
/// that token, or a new one); the row itself stays, empty, for the refund that names it.
async fn reopen(tx: &mut super::Tx, fund_id: &str, amount: U256) -> StoreResult<()> {
    let now = unix_now();
    if !amount.is_zero() {
        let Some(fund) = get(&mut **tx, fund_id).await? else { return Ok(()) };
        let open: Option<(String, String)> = sqlx::query_as(
            "SELECT fund_id, amount_base FROM stray_funds WHERE order_id = $1 AND chain_id = $2 \
             AND token_address = $3 AND status = 'unattributed'",
        )
        .bind(&fund.order_id)
        .bind(fund.chain_id)
        .bind(&fund.token)
        .fetch_optional(&mut **tx)
        .await?;
        match open {
            Some((open_id, open_amount)) => {
                // Only while it is open: a row applied or refunded meanwhile is settled money, and
                // growing it would pay its order what the operator never applied.
                let sum = base_units(&open_amount, "stray_funds amount")? + amount;
                let grown = sqlx::query(
                    "UPDATE stray_funds SET amount_base = $2, updated_at = $3 WHERE fund_id = $1 AND status = 'unattributed'",
                )
                .bind(&open_id)
                .bind(sum.to_string())
                .bind(now)
                .execute(&mut **tx)
                .await?;
                still_unattributed(grown.rows_affected(), &open_id)?;
            }
            None => open_beside(tx, fund_id, amount).await?,
        }
    }
    sqlx::query("UPDATE stray_funds SET amount_base = '0', refund_tx = NULL, updated_at = $2 WHERE fund_id = $1")
        .bind(fund_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub async fn get<'e>(db: impl AnyExecutor<'e>, fund_id: &str) -> StoreResult<Option<Fund>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM stray_funds WHERE fund_id = $1")))
        .bind(fund_id)
        .fetch_optional(db)
        .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Filters of the admin list; each None matches all.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub token: Option<String>,
    pub team_id: Option<String>,
}

pub async fn list<'e>(db: impl AnyExecutor<'e>, f: &Filter, limit: i64) -> StoreResult<Vec<Fund>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM stray_funds WHERE ($1 = '' OR status = $1) AND ($2 = '' OR token_address = $2) \
         AND ($3 = '' OR team_id = $3) ORDER BY created_at DESC, fund_id LIMIT $4"
    )))
    .bind(f.status.clone().unwrap_or_default())
    .bind(f.token.clone().unwrap_or_default())
    .bind(f.team_id.clone().unwrap_or_default())
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(from_row).collect()
}

/// Moves an unattributed row to `applied` (to `order_id`) or `refunded` (by `refund_tx`);
/// false when it was no longer unattributed.
pub async fn settle<'e>(
    db: impl AnyExecutor<'e>,
    fund_id: &str,
    applied_order_id: Option<&str>,
    refund_tx: Option<&str>,
) -> StoreResult<bool> {
    let status = if applied_order_id.is_some() { "applied" } else { "refunded" };
    let done = sqlx::query(
        "UPDATE stray_funds SET status = $1, applied_order_id = $2, refund_tx = $3, updated_at = $4 \
         WHERE fund_id = $5 AND status = 'unattributed'",
    )
    .bind(status)
    .bind(applied_order_id)
    .bind(refund_tx)
    .bind(unix_now())
    .bind(fund_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Expired orders past their late window that hold confirmed money and were not judged since it
/// closed (no partial or after-window fund yet; a wrong-token fund from before says nothing).
pub async fn closed_orders_unchecked<'e>(db: impl AnyExecutor<'e>, closed_before: i64) -> StoreResult<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT order_id FROM orders o WHERE status = 'expired' AND expires_at < $1 AND confirmed_base <> '0' \
         AND NOT EXISTS (SELECT 1 FROM stray_funds s WHERE s.order_id = o.order_id \
             AND s.reason IN ('partial_on_expired_order', 'after_late_window')) LIMIT 500",
    )
    .bind(closed_before)
    .fetch_all(db)
    .await?)
}

/// Takes `units` of an unattributed fund holding `held` for a refund: the row becomes
/// `refunded` (its transaction recorded once confirmed); when only part is refunded, the rest
/// stays open as a new unattributed row. False when the fund was taken meanwhile.
pub async fn take_for_refund(tx: &mut super::Tx, fund_id: &str, units: U256, held: U256) -> StoreResult<bool> {
    let now = unix_now();
    let taken = sqlx::query(
        "UPDATE stray_funds SET status = 'refunded', amount_base = $2, refund_tx = NULL, updated_at = $3 \
         WHERE fund_id = $1 AND status = 'unattributed' AND amount_base = $4",
    )
    .bind(fund_id)
    .bind(units.to_string())
    .bind(now)
    .bind(held.to_string())
    .execute(&mut **tx)
    .await?;
    if taken.rows_affected() != 1 {
        return Ok(false);
    }
    if units < held {
        open_beside(tx, fund_id, held - units).await?;
    }
    Ok(true)
}

/// A new unattributed row of `amount` for the same order, chain, token and reason as `fund_id`.
async fn open_beside(tx: &mut super::Tx, fund_id: &str, amount: U256) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO stray_funds (fund_id, order_id, team_id, chain_id, token_address, deposit_address, reason, \
         amount_base, status, created_at, updated_at) SELECT $2, order_id, team_id, chain_id, token_address, \
         deposit_address, reason, $3, 'unattributed', created_at, $4 FROM stray_funds WHERE fund_id = $1",
    )
    .bind(fund_id)
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(amount.to_string())
    .bind(unix_now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The refund of this fund was confirmed by `tx_hash`.
pub async fn refund_confirmed<'e>(db: impl AnyExecutor<'e>, fund_id: &str, tx_hash: &str) -> StoreResult<()> {
    sqlx::query("UPDATE stray_funds SET refund_tx = $2, updated_at = $3 WHERE fund_id = $1 AND status = 'refunded'")
        .bind(fund_id)
        .bind(tx_hash)
        .bind(unix_now())
        .execute(db)
        .await?;
    Ok(())
}

/// A refund failed: its money is open again (in the order's open row of that token, or a new
/// one); the refunded row stays, empty, for the refund that names it (an open row may be
/// deleted when its money leaves, which a row a refund names must never be).
pub async fn refund_failed(tx: &mut super::Tx, fund_id: &str) -> StoreResult<()> {
    let Some(fund) = get(&mut **tx, fund_id).await? else { return Ok(()) };
    reopen(tx, fund_id, base_units(&fund.amount_base, "stray_funds amount")?).await
}
