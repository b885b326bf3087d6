//! The sweep ledger: one row per deposit address and token each sweep transaction moved (or
//! tried to). Written as pending when the transaction is sent, filled from its receipt, made
//! confirmed once deep enough, dropped if it left the chain. What a deposit address still holds
//! by the ledger is its confirmed transfers in minus what pending and confirmed sweeps moved.

use alloy::primitives::{Address, B256, U256};
use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::columns::address_text;
use super::columns::{base_units, parsed};
use super::{StoreError, StoreResult, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepState {
    Pending,
    Confirmed,
    Failed,
    Dropped,
}

impl SweepState {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepState::Pending => "pending",
            SweepState::Confirmed => "confirmed",
            SweepState::Failed => "failed",
            SweepState::Dropped => "dropped",
        }
    }
}

/// A deposit address holding confirmed money not yet swept.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub address: Address,
    pub token: Address,
    pub salt: B256,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("sweeps {what}"))
}

/// Addresses with a confirmed transfer in that no pending or confirmed sweep has covered yet.
/// One with a transfer still short of its confirmations waits; a transfer mined after this
/// read and before the sweep executes is still moved with the rest (a sweep takes the whole
/// balance), and the receipt's amounts, not this read, are what the ledger records.
pub async fn candidates<'e>(db: impl AnyExecutor<'e>, chain_id: u64, limit: i64) -> StoreResult<Vec<Candidate>> {
    let rows = sqlx::query(
        "SELECT DISTINCT t.to_address, t.token_address, o.salt FROM chain_transfers t \
         JOIN orders o ON o.order_id = t.order_id \
         WHERE t.chain_id = $2 AND t.state = 'confirmed' AND o.salt IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.chain_id = $2 AND s.deposit_address = t.to_address \
              AND s.token_address = t.token_address AND s.state IN ('pending', 'confirmed') \
              AND (s.block_number IS NULL OR s.block_number >= t.block_number)) \
         AND NOT EXISTS (SELECT 1 FROM chain_transfers u WHERE u.chain_id = $2 AND u.to_address = t.to_address \
              AND u.state = 'seen') \
         ORDER BY t.to_address, t.token_address LIMIT $1",
    )
    .bind(limit)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Candidate {
                address: parsed(r, "chain_transfers", "to_address")?,
                token: parsed(r, "chain_transfers", "token_address")?,
                salt: parsed(r, "orders", "salt")?,
            })
        })
        .collect()
}

/// (received, swept) by the ledger for one address and token, up to `block` (None: all):
/// confirmed transfers in, and what pending and confirmed sweeps moved (a sweep not yet mined
/// counts what it expects to move).
pub async fn ledger<'e>(
    db: impl AnyExecutor<'e> + Copy,
    chain_id: u64,
    address: &Address,
    token: &Address,
    block: Option<u64>,
) -> StoreResult<(U256, U256)> {
    let upto = block.map_or(i64::MAX, |b| b as i64);
    let received: Vec<String> = sqlx::query_scalar(
        "SELECT amount_base FROM chain_transfers WHERE to_address = $1 AND token_address = $2 \
         AND state = 'confirmed' AND block_number <= $3 AND chain_id = $4",
    )
    .bind(address_text(address))
    .bind(address_text(token))
    .bind(upto)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    let swept = sqlx::query(
        "SELECT expected_base, moved_base, block_number FROM sweeps WHERE deposit_address = $1 \
         AND token_address = $2 AND state IN ('pending', 'confirmed') AND COALESCE(block_number, 0) <= $3 \
         AND chain_id = $4",
    )
    .bind(address_text(address))
    .bind(address_text(token))
    .bind(upto)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    let mut total_in = U256::ZERO;
    for r in &received {
        total_in = total_in.saturating_add(base_units(r, "chain_transfers.amount_base")?);
    }
    let mut total_out = U256::ZERO;
    for r in &swept {
        let mined = r.try_get::<Option<i64>, _>("block_number")?.is_some();
        let column = if mined { "moved_base" } else { "expected_base" };
        total_out =
            total_out.saturating_add(base_units(&r.try_get::<String, _>(column)?, "sweeps moved or expected amount")?);
    }
    Ok((total_in, total_out))
}

/// Failed attempts for an address and token since its last sweep that moved money, and when
/// the latest of them was made.
pub async fn failures_since_success<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: u64,
    address: &Address,
    token: &Address,
) -> StoreResult<(i64, Option<i64>)> {
    Ok(sqlx::query_as(
        "SELECT COUNT(*), MAX(f.created_at) FROM sweeps f WHERE f.deposit_address = $1 AND f.token_address = $2 \
         AND f.chain_id = $3 AND f.state = 'failed' AND f.created_at >= COALESCE((SELECT MAX(s.created_at) FROM sweeps s \
              WHERE s.deposit_address = $1 AND s.token_address = $2 AND s.chain_id = $3 \
              AND s.state IN ('pending', 'confirmed')), 0)",
    )
    .bind(address_text(address))
    .bind(address_text(token))
    .bind(chain_id as i64)
    .fetch_one(db)
    .await?)
}

/// Records a sweep transaction as sent: one pending row per address, with what it should move.
pub async fn record_sent(
    tx: &mut super::Tx,
    chain_id: u64,
    tx_hash: &B256,
    token: &Address,
    expected: &[(Address, U256)],
) -> StoreResult<()> {
    let now = unix_now();
    // The same transaction sent again (a reorg dropped it, and the nonce, calldata and fees
    // came out the same): its dropped rows describe it too, and a receipt would fill both sets
    // and count it twice. The new rows replace them.
    sqlx::query("DELETE FROM sweeps WHERE chain_id = $1 AND tx_hash = $2 AND state = 'dropped'")
        .bind(chain_id as i64)
        .bind(format!("{tx_hash:#x}"))
        .execute(&mut **tx)
        .await?;
    for (address, amount) in expected {
        sqlx::query(
            "INSERT INTO sweeps (sweep_id, chain_id, tx_hash, token_address, deposit_address, expected_base, state, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(chain_id as i64)
        .bind(format!("{tx_hash:#x}"))
        .bind(address_text(token))
        .bind(address_text(address))
        .bind(amount.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// What a receipt says of one address in a sweep.
pub async fn record_outcome<'e>(
    db: impl AnyExecutor<'e>,
    tx_hash: &B256,
    address: &Address,
    state: SweepState,
    moved: U256,
    block: Option<(u64, B256)>,
    error: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sweeps SET state = $1, moved_base = $2, block_number = $3, block_hash = $4, error = $5, updated_at = $6 \
         WHERE tx_hash = $7 AND deposit_address = $8",
    )
    .bind(state.as_str())
    .bind(moved.to_string())
    .bind(block.map(|(n, _)| n as i64))
    .bind(block.map(|(_, h)| format!("{h:#x}")))
    .bind(error)
    .bind(unix_now())
    .bind(format!("{tx_hash:#x}"))
    .bind(address_text(address))
    .execute(db)
    .await?;
    Ok(())
}

/// A sweep transaction still to be checked: pending (maybe not yet deep, maybe reorged out),
/// or dropped recently (a reorg may bring it back).
#[derive(Debug, Clone)]
pub struct OpenSweep {
    pub tx_hash: B256,
    pub token: Address,
    pub mined: bool,
    pub created_at: i64,
}

pub async fn open<'e>(db: impl AnyExecutor<'e>, chain_id: u64, dropped_since: i64) -> StoreResult<Vec<OpenSweep>> {
    let rows = sqlx::query(
        "SELECT tx_hash, token_address, MAX(block_number) AS block_number, MIN(created_at) AS created_at FROM sweeps \
         WHERE chain_id = $2 AND (state = 'pending' OR (state = 'dropped' AND updated_at >= $1)) \
         GROUP BY tx_hash, token_address",
    )
    .bind(dropped_since)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OpenSweep {
                tx_hash: parsed(r, "sweeps", "tx_hash")?,
                token: parsed(r, "sweeps", "token_address")?,
                mined: r.try_get::<Option<i64>, _>("block_number")?.is_some(),
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Every row of a sweep transaction left the chain (or it never got there).
pub async fn drop_transaction<'e>(db: impl AnyExecutor<'e>, tx_hash: &B256) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE sweeps SET state = 'dropped', block_number = NULL, block_hash = NULL, updated_at = $1 \
         WHERE tx_hash = $2 AND state = 'pending'",
    )
    .bind(unix_now())
    .bind(format!("{tx_hash:#x}"))
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Rows of a sweep transaction (tests and the admin view).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct SweepRow {
    pub tx_hash: String,
    #[sqlx(rename = "token_address")]
    pub token: String,
    pub deposit_address: String,
    #[sqlx(rename = "expected_base")]
    pub expected: String,
    #[sqlx(rename = "moved_base")]
    pub moved: String,
    pub state: String,
    pub block_number: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
}

pub async fn list<'e>(db: impl AnyExecutor<'e>, state: Option<&str>, limit: i64) -> StoreResult<Vec<SweepRow>> {
    let rows = sqlx::query(
        "SELECT tx_hash, token_address, deposit_address, expected_base, moved_base, state, block_number, error, \
         created_at FROM sweeps WHERE ($1 = '' OR state = $1) ORDER BY created_at DESC, sweep_id LIMIT $2",
    )
    .bind(state.unwrap_or_default())
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok(<SweepRow as sqlx::FromRow<_>>::from_row(r)?)).collect()
}

/// The (address, expected amount) rows of one sweep transaction that are still open.
pub async fn list_for_transaction<'e>(db: impl AnyExecutor<'e>, tx_hash: &B256) -> StoreResult<Vec<(Address, U256)>> {
    let rows = sqlx::query(
        "SELECT deposit_address, expected_base FROM sweeps WHERE tx_hash = $1 AND state IN ('pending', 'dropped')",
    )
    .bind(format!("{tx_hash:#x}"))
    .fetch_all(db)
    .await?;
    rows.iter().map(|r| Ok((parsed(r, "sweeps", "deposit_address")?, parsed(r, "sweeps", "expected_base")?))).collect()
}

/// Every (deposit address, token) that ever received a transfer.
pub async fn ledger_pairs<'e>(db: impl AnyExecutor<'e>, chain_id: u64) -> StoreResult<Vec<(Address, Address)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT to_address, token_address FROM chain_transfers WHERE order_id IS NOT NULL AND chain_id = $1 \
         ORDER BY to_address, token_address",
    )
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|(a, t)| Ok((a.parse().map_err(|_| corrupt("address"))?, t.parse().map_err(|_| corrupt("token"))?)))
        .collect()
}

/// What the ledger says `address` holds of `token` at `block`: every transfer in mined at or
/// below it (confirmed or not: the chain has them there) minus what sweeps mined at or below it
/// moved.
pub async fn balance_at<'e>(
    db: impl AnyExecutor<'e> + Copy,
    chain_id: u64,
    address: &Address,
    token: &Address,
    block: u64,
) -> StoreResult<U256> {
    let received: Vec<String> = sqlx::query_scalar(
        "SELECT amount_base FROM chain_transfers WHERE to_address = $1 AND token_address = $2 AND block_number <= $3 \
         AND chain_id = $4",
    )
    .bind(address_text(address))
    .bind(address_text(token))
    .bind(block as i64)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    let moved: Vec<String> = sqlx::query_scalar(
        "SELECT moved_base FROM sweeps WHERE deposit_address = $1 AND token_address = $2 \
         AND state IN ('pending', 'confirmed') AND block_number <= $3 AND chain_id = $4",
    )
    .bind(address_text(address))
    .bind(address_text(token))
    .bind(block as i64)
    .bind(chain_id as i64)
    .fetch_all(db)
    .await?;
    let mut balance = U256::ZERO;
    for r in &received {
        balance = balance.saturating_add(base_units(r, "chain_transfers.amount_base")?);
    }
    for m in &moved {
        balance = balance.saturating_sub(base_units(m, "sweeps.moved_base")?);
    }
    Ok(balance)
}

/// Confirmed money at deposit addresses that no pending or confirmed sweep has covered, per
/// (chain id, token): (chain id, token, total base units, addresses holding some). The same
/// rule as `candidates`, summed per transfer (a sweep takes an address's whole balance, so a
/// transfer mined after the address's last sweep is what remains).
pub async fn unswept<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Vec<(u64, Address, U256, usize)>> {
    let rows = sqlx::query(
        "SELECT t.chain_id, t.token_address, t.to_address, t.amount_base FROM chain_transfers t \
         JOIN orders o ON o.order_id = t.order_id \
         WHERE t.state = 'confirmed' AND o.salt IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM sweeps s WHERE s.chain_id = t.chain_id AND s.deposit_address = t.to_address \
              AND s.token_address = t.token_address AND s.state IN ('pending', 'confirmed') \
              AND (s.block_number IS NULL OR s.block_number >= t.block_number)) \
         ORDER BY t.chain_id, t.token_address, t.to_address",
    )
    .fetch_all(db)
    .await?;
    let mut totals: Vec<(u64, Address, U256, usize)> = Vec::new();
    let mut last_address = None;
    for r in &rows {
        let chain_id = r.try_get::<i64, _>("chain_id")? as u64;
        let token: Address = parsed(r, "chain_transfers", "token_address")?;
        let address: Address = parsed(r, "chain_transfers", "to_address")?;
        let amount = base_units(&r.try_get::<String, _>("amount_base")?, "chain_transfers.amount_base")?;
        match totals.last_mut() {
            Some((c, t, sum, n)) if *c == chain_id && *t == token => {
                *sum = sum.saturating_add(amount);
                *n += (last_address != Some(address)) as usize;
            }
            _ => totals.push((chain_id, token, amount, 1)),
        }
        last_address = Some(address);
    }
    Ok(totals)
}

/// Confirmed sweep transactions created since `since`, with the block each was confirmed in:
/// a reorg deeper than the confirmations can still take one (its block no longer the chain's).
pub async fn confirmed_since<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: u64,
    since: i64,
) -> StoreResult<Vec<(B256, u64, B256)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT tx_hash, block_number, block_hash FROM sweeps WHERE chain_id = $1 AND state = 'confirmed' \
         AND created_at >= $2 AND block_number IS NOT NULL AND block_hash IS NOT NULL",
    )
    .bind(chain_id as i64)
    .bind(since)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                parsed(r, "sweeps", "tx_hash")?,
                r.try_get::<i64, _>("block_number")? as u64,
                parsed(r, "sweeps", "block_hash")?,
            ))
        })
        .collect()
}

/// A confirmed sweep whose block left the chain is pending again (still marked mined), so the
/// next check drops it, or finds it mined elsewhere.
pub async fn unconfirm_transaction<'e>(db: impl AnyExecutor<'e>, tx_hash: &B256) -> StoreResult<u64> {
    let done =
        sqlx::query("UPDATE sweeps SET state = 'pending', updated_at = $1 WHERE tx_hash = $2 AND state = 'confirmed'")
            .bind(unix_now())
            .bind(format!("{tx_hash:#x}"))
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
