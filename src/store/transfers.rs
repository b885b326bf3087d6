//! ERC20 transfers into deposit addresses. (chain_id, tx_hash, log_index) is the primary key:
//! inserting a transfer twice is a no-op, which makes replaying a block range harmless.

use alloy::primitives::{Address, B256, U256};
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::{AnyExecutor, AnyRow};

use super::columns::address_text;
use super::columns::parsed;
use super::{StoreError, StoreResult, unix_now};
use crate::money::parse_base_units;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub chain_id: u64,
    pub tx_hash: B256,
    pub log_index: u64,
    pub block_number: u64,
    pub block_hash: B256,
    pub token: Address,
    pub from: Address,
    pub to: Address,
    pub amount_base: U256,
    pub order_id: Option<String>,
    /// The block's timestamp: the chain's clock for this payment (None in rows older than it).
    pub block_time: Option<i64>,
}

/// Records a transfer as `seen`; false when it was already there.
pub async fn insert_seen<'e>(db: impl AnyExecutor<'e>, t: &Transfer) -> StoreResult<bool> {
    let done = sqlx::query(
        "INSERT INTO chain_transfers (chain_id, tx_hash, log_index, block_number, block_hash, token_address, \
         from_address, to_address, amount_base, order_id, state, created_at, block_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'seen', $11, $12) \
         ON CONFLICT (chain_id, tx_hash, log_index) DO NOTHING",
    )
    .bind(t.chain_id as i64)
    .bind(format!("{:#x}", t.tx_hash))
    .bind(t.log_index as i64)
    .bind(t.block_number as i64)
    .bind(format!("{:#x}", t.block_hash))
    .bind(address_text(&t.token))
    .bind(address_text(&t.from))
    .bind(address_text(&t.to))
    .bind(t.amount_base.to_string())
    .bind(t.order_id.as_deref())
    .bind(unix_now())
    .bind(t.block_time)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The transfers recorded for an order, oldest first.
/// The columns `from_row` reads.
pub(crate) const COLUMNS: &str = "chain_id, tx_hash, log_index, block_number, block_hash, token_address, \
    from_address, to_address, amount_base, order_id, state, block_time";

pub async fn for_order<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Vec<(Transfer, String)>> {
    // In the order they happened: by block time across chains (block numbers of two chains say
    // nothing of which came first), then within a chain by block and log.
    let sql = format!(
        "SELECT {COLUMNS} FROM chain_transfers WHERE order_id = $1 \
         ORDER BY COALESCE(block_time, 0), chain_id, block_number, log_index"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(order_id).fetch_all(db).await?;
    rows.iter().map(|r| from_row(r, "")).collect()
}

/// A transfer and its state from a row whose transfer columns are named with `prefix` (a
/// join names them apart from the order's).
pub(crate) fn from_row(r: &AnyRow, prefix: &str) -> StoreResult<(Transfer, String)> {
    let col = |c: &str| format!("{prefix}{c}");
    let hash = |c: &str| parsed::<B256>(r, "chain_transfers", &col(c));
    let address = |c: &str| parsed::<Address>(r, "chain_transfers", &col(c));
    let int = |c: &str| -> StoreResult<u64> { Ok(r.try_get::<i64, _>(col(c).as_str())? as u64) };
    let amount: String = r.try_get(col("amount_base").as_str())?;
    Ok((
        Transfer {
            chain_id: int("chain_id")?,
            tx_hash: hash("tx_hash")?,
            log_index: int("log_index")?,
            block_number: int("block_number")?,
            block_hash: hash("block_hash")?,
            token: address("token_address")?,
            from: address("from_address")?,
            to: address("to_address")?,
            amount_base: parse_base_units(&amount)
                .ok_or_else(|| StoreError::Corrupt(format!("chain_transfers.amount_base {amount:?}")))?,
            order_id: r.try_get(col("order_id").as_str())?,
            block_time: r.try_get(col("block_time").as_str())?,
        },
        r.try_get::<String, _>(col("state").as_str())?,
    ))
}

/// Marks seen transfers at or below `block` confirmed; returns the orders they belong to.
/// With `large`, orders worth at least its USD threshold only count transfers at or below its
/// block (None: no block is deep enough for them yet).
pub async fn confirm_up_to(
    db: &mut AnyConnection,
    chain_id: u64,
    block: u64,
    large: Option<(rust_decimal::Decimal, Option<u64>)>,
) -> StoreResult<Vec<String>> {
    if large.is_none() {
        // One depth for every order: one statement.
        let orders = orders_seen_up_to(&mut *db, chain_id, block).await?;
        sqlx::query(
            "UPDATE chain_transfers SET state = 'confirmed' WHERE chain_id = $1 AND state = 'seen' AND block_number <= $2",
        )
        .bind(chain_id as i64)
        .bind(block as i64)
        .execute(&mut *db)
        .await?;
        return Ok(orders);
    }
    let candidates = sqlx::query(
        "SELECT DISTINCT t.order_id, o.usd FROM chain_transfers t JOIN orders o ON o.order_id = t.order_id \
         WHERE t.chain_id = $1 AND t.state = 'seen' AND t.block_number <= $2",
    )
    .bind(chain_id as i64)
    .bind(block as i64)
    .fetch_all(&mut *db)
    .await?;
    let mut touched = Vec::new();
    for row in candidates {
        let order_id: String = row.try_get("order_id")?;
        let usd: String = row.try_get("usd")?;
        let usd: rust_decimal::Decimal = usd.parse().map_err(|_| StoreError::Corrupt(format!("orders.usd {usd:?}")))?;
        let depth = match large {
            Some((threshold, large_block)) if usd >= threshold => large_block.map(|b| b.min(block)),
            _ => Some(block),
        };
        let Some(depth) = depth else { continue };
        let done = sqlx::query(
            "UPDATE chain_transfers SET state = 'confirmed' \
             WHERE chain_id = $1 AND order_id = $2 AND state = 'seen' AND block_number <= $3",
        )
        .bind(chain_id as i64)
        .bind(&order_id)
        .bind(depth as i64)
        .execute(&mut *db)
        .await?;
        if done.rows_affected() > 0 {
            touched.push(order_id);
        }
    }
    Ok(touched)
}

/// The orders with transfers still only seen at or below `block`: those a confirmation up to
/// it may touch.
pub async fn orders_seen_up_to(db: &mut AnyConnection, chain_id: u64, block: u64) -> StoreResult<Vec<String>> {
    let orders: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT DISTINCT order_id FROM chain_transfers WHERE chain_id = $1 AND state = 'seen' AND block_number <= $2",
    )
    .bind(chain_id as i64)
    .bind(block as i64)
    .fetch_all(&mut *db)
    .await?;
    Ok(orders.into_iter().flatten().collect())
}

/// A stored transfer a later answer for its block range no longer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub tx_hash: String,
    pub log_index: i64,
    pub order_id: Option<String>,
    pub confirmed: bool,
}

/// The transfers stored in `from..=to` that are not among `kept` (tx hash, log index, block
/// hash): read again, that range no longer holds them there. Only rows an older version
/// recorded above its cursor (windows, before issue 34) are ever there for a later answer to
/// judge; without such rows this is one empty index range scan.
pub async fn stale_in(
    db: &mut AnyConnection,
    chain_id: u64,
    (from, to): (u64, u64),
    kept: &[(B256, u64, B256)],
) -> StoreResult<Vec<Stale>> {
    let rows = sqlx::query(
        "SELECT tx_hash, log_index, block_hash, order_id, state FROM chain_transfers \
         WHERE chain_id = $1 AND block_number >= $2 AND block_number <= $3",
    )
    .bind(chain_id as i64)
    .bind(from as i64)
    .bind(to as i64)
    .fetch_all(&mut *db)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let kept: std::collections::HashSet<&(B256, u64, B256)> = kept.iter().collect();
    let mut stale = Vec::new();
    for r in rows {
        let (tx_hash, log_index): (String, i64) = (r.try_get("tx_hash")?, r.try_get("log_index")?);
        let key =
            (parsed(&r, "chain_transfers", "tx_hash")?, log_index as u64, parsed(&r, "chain_transfers", "block_hash")?);
        if !kept.contains(&key) {
            let state: String = r.try_get("state")?;
            stale.push(Stale { tx_hash, log_index, order_id: r.try_get("order_id")?, confirmed: state == "confirmed" });
        }
    }
    Ok(stale)
}

/// Of `found`, the transfers stored under the same (chain, tx hash, log index) in another
/// block: the row is stale, the transfer is where it was found now.
pub async fn stored_elsewhere(db: &mut AnyConnection, found: &[Transfer]) -> StoreResult<Vec<Stale>> {
    let mut stale = Vec::new();
    for t in found {
        let row = sqlx::query(
            "SELECT tx_hash, log_index, order_id, state FROM chain_transfers \
             WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3 AND block_hash <> $4",
        )
        .bind(t.chain_id as i64)
        .bind(format!("{:#x}", t.tx_hash))
        .bind(t.log_index as i64)
        .bind(format!("{:#x}", t.block_hash))
        .fetch_optional(&mut *db)
        .await?;
        if let Some(r) = row {
            let state: String = r.try_get("state")?;
            stale.push(Stale {
                tx_hash: r.try_get("tx_hash")?,
                log_index: r.try_get("log_index")?,
                order_id: r.try_get("order_id")?,
                confirmed: state == "confirmed",
            });
        }
    }
    Ok(stale)
}

/// Deletes the stale transfers (their orders are recomputed by the caller).
pub async fn remove(db: &mut AnyConnection, chain_id: u64, stale: &[Stale]) -> StoreResult<()> {
    for s in stale {
        sqlx::query("DELETE FROM chain_transfers WHERE chain_id = $1 AND tx_hash = $2 AND log_index = $3")
            .bind(chain_id as i64)
            .bind(&s.tx_hash)
            .bind(s.log_index)
            .execute(&mut *db)
            .await?;
    }
    Ok(())
}

/// After a reorg: every transfer above `block` left the canonical chain, seen or confirmed,
/// and is deleted (what stays on the new chain is read again). Returns the orders they
/// belonged to and, of those, the (order id, tx hash) of confirmed ones: payments that may
/// have been credited and must be recomputed.
pub async fn remove_above(
    db: &mut AnyConnection,
    chain_id: u64,
    block: u64,
) -> StoreResult<(Vec<String>, Vec<(Option<String>, String)>)> {
    let touched: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT order_id FROM chain_transfers WHERE chain_id = $1 AND block_number > $2")
            .bind(chain_id as i64)
            .bind(block as i64)
            .fetch_all(&mut *db)
            .await?;
    let deep = sqlx::query(
        "SELECT order_id, tx_hash FROM chain_transfers WHERE chain_id = $1 AND state = 'confirmed' AND block_number > $2",
    )
    .bind(chain_id as i64)
    .bind(block as i64)
    .fetch_all(&mut *db)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("order_id")?, r.try_get("tx_hash")?)))
    .collect::<StoreResult<Vec<_>>>()?;
    sqlx::query("DELETE FROM chain_transfers WHERE chain_id = $1 AND block_number > $2")
        .bind(chain_id as i64)
        .bind(block as i64)
        .execute(&mut *db)
        .await?;
    Ok((touched.into_iter().flatten().collect(), deep))
}
