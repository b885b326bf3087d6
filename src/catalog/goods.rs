//! Goods specifications: a matrix of (main × second specification) cells with purchasing
//! costs, and a picture per main specification. Display prices: original = purchasing ×
//! markup, after discount = original × discount, each computed exactly from the purchasing
//! cost and rounded half-up to cents once.

use std::collections::HashSet;

use rust_decimal::Decimal;

use crate::money::round_cents;
use crate::store::catalog::GoodsSpecification;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct GoodsError {
    pub field: String,
    pub problem: String,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> GoodsError {
    GoodsError { field: field.into(), problem: problem.into() }
}

pub fn validate(g: &GoodsSpecification) -> Result<(), GoodsError> {
    if g.goods_id <= 0 {
        return Err(invalid("goods_id", "must be a positive integer"));
    }
    for (field, name) in [
        ("main_specification_name", &g.main_specification_name),
        ("second_specification_name", &g.second_specification_name),
    ] {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(invalid(field, "must be 1 to 100 characters"));
        }
    }
    if g.cells.is_empty() || g.cells.len() > 1000 {
        return Err(invalid("specification", "must have 1 to 1000 cells"));
    }
    let mut seen = HashSet::new();
    for (i, c) in g.cells.iter().enumerate() {
        if c.main_specification.trim().is_empty() || c.second_specification.trim().is_empty() {
            return Err(invalid(
                format!("specification[{i}]"),
                "main_specification and second_specification are required",
            ));
        }
        if c.purchasing_cost.is_sign_negative() && !c.purchasing_cost.is_zero() {
            return Err(invalid(format!("specification[{i}].purchasing_cost"), "must not be negative"));
        }
        if !seen.insert((&c.main_specification, &c.second_specification)) {
            return Err(invalid(
                format!("specification[{i}]"),
                format!("duplicate cell {} / {}", c.main_specification, c.second_specification),
            ));
        }
    }
    let mut pictured = HashSet::new();
    for (i, p) in g.pics.iter().enumerate() {
        if !pictured.insert(&p.main_specification) {
            return Err(invalid(format!("pics[{i}]"), format!("a second picture for {}", p.main_specification)));
        }
    }
    if !g.pics.is_empty()
        && let Some((i, c)) = g.cells.iter().enumerate().find(|(_, c)| !pictured.contains(&c.main_specification))
    {
        return Err(invalid(format!("specification[{i}]"), format!("{} has no picture in pics", c.main_specification)));
    }
    Ok(())
}

/// (original, after discount) display prices for a purchasing cost.
pub fn display_prices(purchasing: Decimal, markup: Decimal, discount: Decimal) -> (Decimal, Decimal) {
    let original = purchasing * markup;
    (round_cents(original), round_cents(original * discount))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn the_seed_prices_come_out() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        // The seed shows 30.51 for 21; 21 × 1.4526 = 30.5046, which rounds half-up to 30.50
        // (its after-discount 23.79 agrees: 30.5046 × 0.78 = 23.7936).
        for (purchasing, original, after) in
            [("23", "33.41", "26.06"), ("24", "34.86", "27.19"), ("21", "30.50", "23.79")]
        {
            let (o, a) = display_prices(d(purchasing), d("1.4526"), d("0.78"));
            assert_eq!(
                (crate::money::cents_text(o), crate::money::cents_text(a)),
                (original.to_string(), after.to_string()),
                "{purchasing}"
            );
        }
    }
}
