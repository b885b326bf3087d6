//! The deposit index's saved Bloom filter (one row), so a start reads a few bytes per order
//! ever taken instead of every order.

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreResult, unix_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFilter {
    /// Every order with a sequence number up to this is in `bits`.
    pub read_upto: i64,
    pub capacity: i64,
    pub items: i64,
    pub bits: Vec<u8>,
}

pub async fn load<'e>(db: impl AnyExecutor<'e>) -> StoreResult<Option<SavedFilter>> {
    let row = sqlx::query("SELECT read_upto, capacity, items, bits FROM deposit_filter WHERE id = 1")
        .fetch_optional(db)
        .await?;
    row.map(|r| {
        Ok(SavedFilter {
            read_upto: r.try_get("read_upto")?,
            capacity: r.try_get("capacity")?,
            items: r.try_get("items")?,
            bits: r.try_get("bits")?,
        })
    })
    .transpose()
}

pub async fn save<'e>(db: impl AnyExecutor<'e>, f: &SavedFilter) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO deposit_filter (id, read_upto, capacity, items, bits, saved_at) VALUES (1, $1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET read_upto = excluded.read_upto, capacity = excluded.capacity, \
         items = excluded.items, bits = excluded.bits, saved_at = excluded.saved_at",
    )
    .bind(f.read_upto)
    .bind(f.capacity)
    .bind(f.items)
    .bind(&f.bits)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(())
}
