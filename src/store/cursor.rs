//! Where the watcher stands: the last processed block per chain, and recent block hashes to
//! find the common ancestor after a reorg.

use alloy::primitives::B256;
use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreError, StoreResult, unix_now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub block_number: u64,
    pub block_hash: B256,
    /// The block's timestamp (0 for a cursor stored before it was kept).
    pub block_time: i64,
}

pub async fn get<'e>(db: impl AnyExecutor<'e>, chain_id: u64) -> StoreResult<Option<Cursor>> {
    let row = sqlx::query("SELECT block_number, block_hash, block_time FROM chain_cursor WHERE chain_id = $1")
        .bind(chain_id as i64)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let hash: String = r.try_get("block_hash")?;
        Ok(Cursor {
            block_number: r.try_get::<i64, _>("block_number")? as u64,
            block_hash: hash.parse().map_err(|_| StoreError::Corrupt(format!("cursor hash {hash:?}")))?,
            block_time: r.try_get::<Option<i64>, _>("block_time")?.unwrap_or(0),
        })
    })
    .transpose()
}

pub async fn set<'e>(db: impl AnyExecutor<'e>, chain_id: u64, cursor: Cursor) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chain_cursor (chain_id, block_number, block_hash, updated_at, block_time) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (chain_id) DO UPDATE SET block_number = excluded.block_number, \
         block_hash = excluded.block_hash, updated_at = excluded.updated_at, block_time = excluded.block_time",
    )
    .bind(chain_id as i64)
    .bind(cursor.block_number as i64)
    .bind(format!("{:#x}", cursor.block_hash))
    .bind(unix_now())
    .bind(cursor.block_time)
    .execute(db)
    .await?;
    Ok(())
}

/// Holds the chain's cursor row for the transaction if it is still `expected`; Conflict if
/// another process moved it since it was read. A step read from a cursor commits only onto that
/// cursor: a process that lost its lease mid-step cannot write over its successor's work.
pub async fn claim(tx: &mut super::Tx, chain_id: u64, expected: Cursor) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE chain_cursor SET updated_at = $1 WHERE chain_id = $2 AND block_number = $3 AND block_hash = $4",
    )
    .bind(unix_now())
    .bind(chain_id as i64)
    .bind(expected.block_number as i64)
    .bind(format!("{:#x}", expected.block_hash))
    .execute(&mut **tx)
    .await?;
    match done.rows_affected() {
        0 => Err(super::StoreError::Conflict(format!("the cursor of chain {chain_id} moved under the step"))),
        _ => Ok(()),
    }
}

/// Records the head the watcher just saw (on the cursor's row; nothing before a cursor exists).
pub async fn set_head<'e>(db: impl AnyExecutor<'e>, chain_id: u64, head: u64) -> StoreResult<()> {
    sqlx::query("UPDATE chain_cursor SET head_block = $1 WHERE chain_id = $2")
        .bind(head as i64)
        .bind(chain_id as i64)
        .execute(db)
        .await?;
    Ok(())
}

/// (head, processed block, its time) as the watching process last wrote them.
pub async fn watched<'e>(db: impl AnyExecutor<'e>, chain_id: u64) -> StoreResult<Option<(u64, u64, i64)>> {
    let row: Option<(Option<i64>, i64, Option<i64>)> =
        sqlx::query_as("SELECT head_block, block_number, block_time FROM chain_cursor WHERE chain_id = $1")
            .bind(chain_id as i64)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(head, processed, time)| {
        (head.unwrap_or(processed).max(0) as u64, processed.max(0) as u64, time.unwrap_or(0))
    }))
}

/// When the watcher last moved its cursor (unix seconds, the writing host's clock): how an
/// operator's tool tells a stalled watcher from a quiet chain.
pub async fn moved_at<'e>(db: impl AnyExecutor<'e>, chain_id: u64) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT updated_at FROM chain_cursor WHERE chain_id = $1")
        .bind(chain_id as i64)
        .fetch_optional(db)
        .await?)
}

/// The chains' clock as the watchers have seen it: the least timestamp of the cursors of
/// `chain_ids` (0 while one of them has processed nothing). Payment rules that depend on time
/// wait for it.
pub async fn chain_time<'e>(db: impl AnyExecutor<'e>, chain_ids: &[u64]) -> StoreResult<i64> {
    let rows: Vec<(i64, Option<i64>)> =
        sqlx::query_as("SELECT chain_id, block_time FROM chain_cursor").fetch_all(db).await?;
    let times =
        chain_ids.iter().map(|id| rows.iter().find(|(c, _)| *c as u64 == *id).and_then(|(_, t)| *t).unwrap_or(0));
    Ok(times.min().unwrap_or(0))
}

pub async fn record_block<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: u64,
    number: u64,
    hash: B256,
    parent: B256,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chain_blocks (chain_id, block_number, block_hash, parent_hash) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (chain_id, block_number) DO UPDATE SET block_hash = excluded.block_hash, parent_hash = excluded.parent_hash",
    )
    .bind(chain_id as i64)
    .bind(number as i64)
    .bind(format!("{hash:#x}"))
    .bind(format!("{parent:#x}"))
    .execute(db)
    .await?;
    Ok(())
}

pub async fn block_hash<'e>(db: impl AnyExecutor<'e>, chain_id: u64, number: u64) -> StoreResult<Option<B256>> {
    let row = sqlx::query("SELECT block_hash FROM chain_blocks WHERE chain_id = $1 AND block_number = $2")
        .bind(chain_id as i64)
        .bind(number as i64)
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        let hash: String = r.try_get("block_hash")?;
        hash.parse().map_err(|_| StoreError::Corrupt(format!("block hash {hash:?}")))
    })
    .transpose()
}

/// Stored block hashes below `below` down to `floor`, highest first (the walk back after a
/// reorg).
pub async fn blocks_below<'e>(
    db: impl AnyExecutor<'e>,
    chain_id: u64,
    below: u64,
    floor: u64,
) -> StoreResult<Vec<(u64, B256)>> {
    let rows = sqlx::query(
        "SELECT block_number, block_hash FROM chain_blocks WHERE chain_id = $1 AND block_number < $2 \
         AND block_number >= $3 ORDER BY block_number DESC",
    )
    .bind(chain_id as i64)
    .bind(below as i64)
    .bind(floor as i64)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            let hash: String = r.try_get("block_hash")?;
            Ok((
                r.try_get::<i64, _>("block_number")? as u64,
                hash.parse().map_err(|_| StoreError::Corrupt(format!("block hash {hash:?}")))?,
            ))
        })
        .collect()
}

/// Forgets blocks above `number` (after a reorg) and below `keep_from` (old history).
pub async fn prune_blocks<'e>(db: impl AnyExecutor<'e>, chain_id: u64, above: u64, below: u64) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND (block_number > $2 OR block_number < $3)")
        .bind(chain_id as i64)
        .bind(above as i64)
        .bind(below as i64)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}
