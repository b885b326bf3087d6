//! The hosting product catalog's tables: first groups, groups and products as validated JSON
//! documents, product stock in its own column, and the stock reservations of catalog orders.

use sqlx::Row;
use sqlx::any::AnyExecutor;

use super::{StoreError, StoreResult, unix_now};
use crate::catalog::products::{FirstGroup, Group, Product};

fn doc<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("catalog entries serialize")
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("catalog document: {e}")))
}

pub async fn upsert_first_group<'e>(db: impl AnyExecutor<'e>, g: &FirstGroup) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO catalog_first_groups (id, doc, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
    )
    .bind(g.id)
    .bind(doc(g))
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn upsert_group<'e>(db: impl AnyExecutor<'e>, g: &Group) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO catalog_groups (id, first_group_id, doc, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO UPDATE SET first_group_id = excluded.first_group_id, doc = excluded.doc, \
         updated_at = excluded.updated_at",
    )
    .bind(g.id)
    .bind(g.first_group_id)
    .bind(doc(g))
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(())
}

/// Creates or replaces a product; its `qty` becomes the stock on hand.
pub async fn upsert_product<'e>(db: impl AnyExecutor<'e>, p: &Product) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO catalog_products (id, group_id, doc, stock_control, qty, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, doc = excluded.doc, \
         stock_control = excluded.stock_control, qty = excluded.qty, updated_at = excluded.updated_at",
    )
    .bind(p.id)
    .bind(p.group_id)
    .bind(doc(p))
    .bind(i64::from(p.stock_control))
    .bind(p.qty)
    .bind(unix_now())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn first_group_exists<'e>(db: impl AnyExecutor<'e>, id: i64) -> StoreResult<bool> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM catalog_first_groups WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await?
        > 0)
}

pub async fn group_exists<'e>(db: impl AnyExecutor<'e>, id: i64) -> StoreResult<bool> {
    Ok(sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM catalog_groups WHERE id = $1").bind(id).fetch_one(db).await?
        > 0)
}

fn product_of(r: &sqlx::any::AnyRow) -> StoreResult<Product> {
    let mut p: Product = parse(&r.try_get::<String, _>("doc")?)?;
    p.qty = r.try_get("qty")?; // the live stock, not the figure last saved
    Ok(p)
}

pub async fn get_product<'e>(db: impl AnyExecutor<'e>, id: i64) -> StoreResult<Option<Product>> {
    let row = sqlx::query("SELECT doc, qty FROM catalog_products WHERE id = $1").bind(id).fetch_optional(db).await?;
    row.as_ref().map(product_of).transpose()
}

/// Which part of the catalog to read: one first group, one group or one product.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    FirstGroup(i64),
    Group(i64),
    Product(i64),
}

/// The first groups, groups and products in `scope`, each ordered by id.
pub async fn load(tx: &mut super::Tx, scope: Scope) -> StoreResult<(Vec<FirstGroup>, Vec<Group>, Vec<Product>)> {
    let (product_filter, id) = match scope {
        Scope::FirstGroup(id) => ("g.first_group_id = $1", id),
        Scope::Group(id) => ("p.group_id = $1", id),
        Scope::Product(id) => ("p.id = $1", id),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT p.doc, p.qty FROM catalog_products p JOIN catalog_groups g ON g.id = p.group_id \
         WHERE {product_filter} ORDER BY p.id"
    )))
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let products = rows.iter().map(product_of).collect::<StoreResult<Vec<_>>>()?;
    let group_ids: Vec<i64> = match scope {
        Scope::Group(id) => vec![id],
        _ => products.iter().map(|p| p.group_id).collect(),
    };
    let mut groups = Vec::new();
    let all_groups = sqlx::query("SELECT doc FROM catalog_groups ORDER BY id").fetch_all(&mut **tx).await?;
    for r in &all_groups {
        let g: Group = parse(&r.try_get::<String, _>("doc")?)?;
        let wanted = match scope {
            Scope::FirstGroup(id) => g.first_group_id == id,
            _ => group_ids.contains(&g.id),
        };
        if wanted {
            groups.push(g);
        }
    }
    let mut first_groups = Vec::new();
    for r in &sqlx::query("SELECT doc FROM catalog_first_groups ORDER BY id").fetch_all(&mut **tx).await? {
        let f: FirstGroup = parse(&r.try_get::<String, _>("doc")?)?;
        let wanted = match scope {
            Scope::FirstGroup(id) => f.id == id,
            _ => groups.iter().any(|g| g.first_group_id == f.id),
        };
        if wanted {
            first_groups.push(f);
        }
    }
    Ok((first_groups, groups, products))
}

/// Takes `qty` from the product's stock when stock control is on; false when there is not
/// enough. One conditional UPDATE: concurrent orders can never take more than there is.
pub async fn reserve<'e>(db: impl AnyExecutor<'e>, product_id: i64, qty: i64) -> StoreResult<bool> {
    let done = sqlx::query(
        "UPDATE catalog_products SET qty = CASE WHEN stock_control = 1 THEN qty - $1 ELSE qty END \
         WHERE id = $2 AND (stock_control = 0 OR qty >= $1)",
    )
    .bind(qty)
    .bind(product_id)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives `qty` back to the product's stock (a card charge that failed after the reservation).
pub async fn unreserve<'e>(db: impl AnyExecutor<'e>, product_id: i64, qty: i64) -> StoreResult<()> {
    sqlx::query("UPDATE catalog_products SET qty = qty + $1 WHERE id = $2 AND stock_control = 1")
        .bind(qty)
        .bind(product_id)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn record_reservation(
    tx: &mut super::Tx,
    order_id: &str,
    product_id: i64,
    qty: i64,
    selection: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO catalog_reservations (order_id, product_id, qty, selection) VALUES ($1, $2, $3, $4)")
        .bind(order_id)
        .bind(product_id)
        .bind(qty)
        .bind(selection)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The priced selection (JSON) a catalog order was made with.
pub async fn reservation_selection<'e>(db: impl AnyExecutor<'e>, order_id: &str) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar("SELECT selection FROM catalog_reservations WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(db)
        .await?)
}

/// Gives an expired order's reserved stock back, once; false when it had none to give.
pub async fn return_reserved(tx: &mut super::Tx, order_id: &str, now: i64) -> StoreResult<bool> {
    let done =
        sqlx::query("UPDATE catalog_reservations SET returned_at = $1 WHERE order_id = $2 AND returned_at IS NULL")
            .bind(now)
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let (product_id, qty): (i64, i64) =
        sqlx::query_as("SELECT product_id, qty FROM catalog_reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&mut **tx)
            .await?;
    unreserve(&mut **tx, product_id, qty).await?;
    Ok(true)
}

/// The product's stock on hand (tests and the admin API).
pub async fn stock<'e>(db: impl AnyExecutor<'e>, product_id: i64) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT qty FROM catalog_products WHERE id = $1").bind(product_id).fetch_optional(db).await?)
}

/// A catalog order paid after its expiry gave its stock back takes that stock again. False
/// when it has been sold meanwhile (the order stays paid; the caller tells the operator).
pub async fn retake_returned(tx: &mut super::Tx, order_id: &str) -> StoreResult<bool> {
    let row: Option<(i64, i64, Option<i64>)> =
        sqlx::query_as("SELECT product_id, qty, returned_at FROM catalog_reservations WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((product_id, qty, Some(_))) = row else {
        return Ok(true); // still held (or a card order, which holds nothing back)
    };
    if !reserve(&mut **tx, product_id, qty).await? {
        return Ok(false);
    }
    sqlx::query("UPDATE catalog_reservations SET returned_at = NULL WHERE order_id = $1")
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// Replaces a product's document (its cycles, options, fields) but not its stock on hand,
/// which concurrent orders may be changing.
pub async fn update_product_doc<'e>(db: impl AnyExecutor<'e>, p: &Product) -> StoreResult<bool> {
    let done = sqlx::query("UPDATE catalog_products SET doc = $1, stock_control = $2, updated_at = $3 WHERE id = $4")
        .bind(doc(p))
        .bind(i64::from(p.stock_control))
        .bind(unix_now())
        .bind(p.id)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}
