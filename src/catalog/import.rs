//! Saving catalog entries: one at a time (the admin API) or a whole document (`paywatch
//! catalog import`, the devnet's demo). Everything is validated before anything is written,
//! and a document is written in one transaction: it lands whole or not at all.

use super::products::{
    CatalogDocument, CatalogError, ConfigOption, CustomField, Cycle, FirstGroup, Group, Product, validate_product,
};
use crate::store::{Store, StoreError, products};

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error(transparent)]
    Invalid(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn bad(field: String, problem: &str) -> SaveError {
    SaveError::Invalid(CatalogError { field, problem: problem.to_string() })
}

fn named(field: &str, name: &str) -> Result<(), SaveError> {
    if name.trim().is_empty() { Err(bad(field.to_string(), "is required")) } else { Ok(()) }
}

pub async fn save_first_group(store: &Store, g: &FirstGroup) -> Result<(), SaveError> {
    named("name", &g.name)?;
    products::upsert_first_group(store.pool(), g).await?;
    Ok(())
}

pub async fn save_group(store: &Store, g: &Group) -> Result<(), SaveError> {
    named("name", &g.name)?;
    let mut tx = store.begin().await?;
    if !products::first_group_exists(&mut *tx, g.first_group_id).await? {
        return Err(bad("first_group_id".into(), "no such first group"));
    }
    products::upsert_group(&mut *tx, g).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

pub async fn save_product(store: &Store, p: &Product) -> Result<(), SaveError> {
    validate_product(p)?;
    let mut tx = store.begin().await?;
    if !products::group_exists(&mut *tx, p.group_id).await? {
        return Err(bad("group_id".into(), "no such group"));
    }
    products::upsert_product(&mut *tx, p).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// Validates the whole document (names, references within it or to saved entries, every
/// product), then writes it in one transaction. Returns (first groups, groups, products).
pub async fn import(store: &Store, doc: &CatalogDocument) -> Result<(usize, usize, usize), SaveError> {
    for (i, f) in doc.first_groups.iter().enumerate() {
        named(&format!("first_groups[{i}].name"), &f.name)?;
    }
    for (i, g) in doc.groups.iter().enumerate() {
        named(&format!("groups[{i}].name"), &g.name)?;
    }
    for (i, p) in doc.products.iter().enumerate() {
        validate_product(p).map_err(|e| bad(format!("products[{i}].{}", e.field), &e.problem))?;
    }
    let mut tx = store.begin().await?;
    for f in &doc.first_groups {
        products::upsert_first_group(&mut *tx, f).await?;
    }
    for (i, g) in doc.groups.iter().enumerate() {
        if !products::first_group_exists(&mut *tx, g.first_group_id).await? {
            return Err(bad(format!("groups[{i}].first_group_id"), "no such first group"));
        }
        products::upsert_group(&mut *tx, g).await?;
    }
    for (i, p) in doc.products.iter().enumerate() {
        if !products::group_exists(&mut *tx, p.group_id).await? {
            return Err(bad(format!("products[{i}].group_id"), "no such group"));
        }
        products::upsert_product(&mut *tx, p).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok((doc.first_groups.len(), doc.groups.len(), doc.products.len()))
}

/// One part of a product, saved on its own: replaces the part with the same key, or adds it.
pub enum ProductPart {
    Cycle(Cycle),
    Option(ConfigOption),
    Field(CustomField),
}

/// Saves `part` into product `product_id`, validating the product as a whole; `Ok(None)` when
/// there is no such product. The stock on hand is left as it is.
pub async fn save_product_part(
    store: &Store,
    product_id: i64,
    part: ProductPart,
) -> Result<Option<Product>, SaveError> {
    let mut tx = store.begin().await?;
    let Some(mut product) = products::get_product(&mut *tx, product_id).await? else {
        return Ok(None);
    };
    match part {
        ProductPart::Cycle(c) => match product.cycle.iter_mut().find(|x| x.billingcycle == c.billingcycle) {
            Some(slot) => *slot = c,
            None => product.cycle.push(c),
        },
        ProductPart::Option(o) => match product.configoptions.iter_mut().find(|x| x.id == o.id) {
            Some(slot) => *slot = o,
            None => product.configoptions.push(o),
        },
        ProductPart::Field(f) => match product.custom_fields.iter_mut().find(|x| x.id == f.id) {
            Some(slot) => *slot = f,
            None => product.custom_fields.push(f),
        },
    }
    validate_product(&product)?;
    products::update_product_doc(&mut *tx, &product).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Some(product))
}
