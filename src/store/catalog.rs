//! Goods specifications (seed 000): a goods item's two specification names, its matrix of
//! cells with purchasing costs, and a picture per main specification.

use std::str::FromStr;

use rust_decimal::Decimal;
use sqlx::Row;

use super::{StoreError, StoreResult, Tx, unix_now};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecCell {
    pub main_specification: String,
    pub second_specification: String,
    pub purchasing_cost: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecPicture {
    pub main_specification: String,
    pub image_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodsSpecification {
    pub goods_id: i64,
    pub main_specification_name: String,
    pub second_specification_name: String,
    pub cells: Vec<SpecCell>,
    pub pics: Vec<SpecPicture>,
}

/// Replaces everything stored for the goods item, inside the caller's transaction.
pub async fn replace_goods_specification(tx: &mut Tx, g: &GoodsSpecification) -> StoreResult<()> {
    let now = unix_now();
    sqlx::query(
        "INSERT INTO goods_specifications (goods_id, main_specification_name, second_specification_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (goods_id) DO UPDATE SET \
         main_specification_name = excluded.main_specification_name, \
         second_specification_name = excluded.second_specification_name, updated_at = excluded.updated_at",
    )
    .bind(g.goods_id)
    .bind(&g.main_specification_name)
    .bind(&g.second_specification_name)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM goods_specification_cells WHERE goods_id = $1")
        .bind(g.goods_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM goods_specification_pics WHERE goods_id = $1").bind(g.goods_id).execute(&mut **tx).await?;
    for (position, cell) in g.cells.iter().enumerate() {
        sqlx::query(
            "INSERT INTO goods_specification_cells (goods_id, position, main_specification, second_specification, purchasing_cost) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(g.goods_id)
        .bind(position as i64)
        .bind(&cell.main_specification)
        .bind(&cell.second_specification)
        .bind(cell.purchasing_cost.to_string())
        .execute(&mut **tx)
        .await?;
    }
    for (position, pic) in g.pics.iter().enumerate() {
        sqlx::query(
            "INSERT INTO goods_specification_pics (goods_id, main_specification, image_url, position) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(g.goods_id)
        .bind(&pic.main_specification)
        .bind(&pic.image_url)
        .bind(position as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub async fn get_goods_specification(tx: &mut Tx, goods_id: i64) -> StoreResult<Option<GoodsSpecification>> {
    let Some(head) = sqlx::query(
        "SELECT main_specification_name, second_specification_name FROM goods_specifications WHERE goods_id = $1",
    )
    .bind(goods_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let cells = sqlx::query(
        "SELECT main_specification, second_specification, purchasing_cost FROM goods_specification_cells \
         WHERE goods_id = $1 ORDER BY position",
    )
    .bind(goods_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        let cost: String = r.try_get("purchasing_cost")?;
        Ok(SpecCell {
            main_specification: r.try_get("main_specification")?,
            second_specification: r.try_get("second_specification")?,
            purchasing_cost: Decimal::from_str(&cost)
                .map_err(|_| StoreError::Corrupt(format!("purchasing_cost {cost:?}")))?,
        })
    })
    .collect::<StoreResult<Vec<_>>>()?;
    let pics = sqlx::query(
        "SELECT main_specification, image_url FROM goods_specification_pics WHERE goods_id = $1 ORDER BY position, main_specification",
    )
    .bind(goods_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok(SpecPicture { main_specification: r.try_get("main_specification")?, image_url: r.try_get("image_url")? }))
    .collect::<StoreResult<Vec<_>>>()?;
    Ok(Some(GoodsSpecification {
        goods_id,
        main_specification_name: head.try_get("main_specification_name")?,
        second_specification_name: head.try_get("second_specification_name")?,
        cells,
        pics,
    }))
}
