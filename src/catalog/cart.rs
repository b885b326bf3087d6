//! Pricing a selection of a product: the cycle's price (or its sale price), each option's
//! price, the setup fee, all per unit, times the quantity; rounded half-up to cents once, at
//! the end. A pure function of the product, its stock and the selection.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::{cents_text, round_cents};

use super::products::{BillingCycle, CatalogError, ConfigOption, FieldType, OptionKind, Product, SubOption};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct OptionChoice {
    /// The option's id.
    pub id: i64,
    /// The chosen sub-option (choices, OS versions) or area (locations).
    #[serde(default)]
    pub sub_id: Option<i64>,
    /// The quantity (quantity and stage types).
    #[serde(default)]
    pub qty: Option<i64>,
    /// Yes/No options.
    #[serde(default)]
    pub yes: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct FieldValue {
    pub id: i64,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Selection {
    pub product_id: i64,
    pub billingcycle: BillingCycle,
    /// How many of the product (more than 1 only when the product allows it).
    #[serde(default = "one")]
    pub qty: i64,
    #[serde(default)]
    pub configoptions: Vec<OptionChoice>,
    #[serde(default)]
    pub custom_fields: Vec<FieldValue>,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LineItem {
    /// product, option or setup_fee.
    pub kind: &'static str,
    pub name: String,
    /// What was chosen ("2 cores", "CentOS-8", "yes").
    pub choice: String,
    /// Per unit of the product, exact.
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PricedSelection {
    pub product_id: i64,
    pub product_name: String,
    pub billingcycle: BillingCycle,
    pub qty: i64,
    pub items: Vec<LineItem>,
    /// Recurring price of one unit (cycle + options), exact.
    pub recurring: String,
    /// Setup fee of one unit, exact.
    pub setup_fee: String,
    /// (recurring + setup fee) × qty, rounded half-up to cents.
    pub total: String,
    #[serde(skip)]
    pub total_exact: Decimal,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> CatalogError {
    CatalogError { field: field.into(), problem: problem.into() }
}

pub fn text(d: Decimal) -> String {
    d.normalize().to_string()
}

/// Prices `sel` of `product` with `stock` units on hand.
pub fn price(product: &Product, stock: i64, sel: &Selection) -> Result<PricedSelection, CatalogError> {
    let cycle = product
        .cycle
        .iter()
        .find(|c| c.billingcycle == sel.billingcycle)
        .ok_or_else(|| bad("billingcycle", "is not offered for this product"))?;
    if cycle.product_price == Decimal::NEGATIVE_ONE {
        return Err(bad("billingcycle", "is disabled for this product"));
    }
    if sel.qty < 1 {
        return Err(bad("qty", "must be at least 1"));
    }
    if sel.qty > 1 && !product.allow_qty {
        return Err(bad("qty", "this product is sold one at a time"));
    }
    if product.stock_control && sel.qty > stock {
        return Err(bad("qty", format!("only {stock} in stock")));
    }
    for choice in &sel.configoptions {
        match product.configoptions.iter().find(|o| o.id == choice.id) {
            Some(o) if !o.hidden => {}
            _ => return Err(bad(format!("configoptions[{}]", choice.id), "no such option on this product")),
        }
        if sel.configoptions.iter().filter(|c| c.id == choice.id).count() > 1 {
            return Err(bad(format!("configoptions[{}]", choice.id), "is chosen twice"));
        }
    }
    let base = cycle.saleprice.unwrap_or(cycle.product_price);
    let mut items = vec![LineItem {
        kind: "product",
        name: product.name.clone(),
        choice: format!("{:?}", cycle.billingcycle).to_lowercase(),
        amount: text(base),
    }];
    let mut recurring = base;
    for option in product.configoptions.iter().filter(|o| !o.hidden) {
        let choice = sel.configoptions.iter().find(|c| c.id == option.id);
        let (what, amount) = option_price(option, choice)?;
        recurring += amount;
        items.push(LineItem { kind: "option", name: option.name.clone(), choice: what, amount: text(amount) });
    }
    if cycle.setup_fee > Decimal::ZERO {
        items.push(LineItem {
            kind: "setup_fee",
            name: "Setup fee".into(),
            choice: String::new(),
            amount: text(cycle.setup_fee),
        });
    }
    check_fields(product, sel)?;
    let total_exact = (recurring + cycle.setup_fee) * Decimal::from(sel.qty);
    Ok(PricedSelection {
        product_id: product.id,
        product_name: product.name.clone(),
        billingcycle: cycle.billingcycle,
        qty: sel.qty,
        items,
        recurring: text(recurring),
        setup_fee: text(cycle.setup_fee),
        total: cents_text(total_exact),
        total_exact: round_cents(total_exact),
    })
}

/// What the option costs per unit of the product, and a description of the choice. An option
/// left out takes its default: the first sub-option, the minimum quantity, or "no".
fn option_price(o: &ConfigOption, choice: Option<&OptionChoice>) -> Result<(String, Decimal), CatalogError> {
    let field = format!("configoptions[{}]", o.id);
    match o.kind() {
        OptionKind::Choice | OptionKind::OperatingSystem => {
            let sub = match choice.and_then(|c| c.sub_id) {
                Some(id) => o.sub.iter().find(|s| s.id == id).ok_or_else(|| {
                    bad(format!("{field}.sub_id"), format!("{id} is not a sub-option of option {}", o.id))
                })?,
                None => &o.sub[0],
            };
            Ok((sub.name.clone(), sub.pricing))
        }
        OptionKind::Location => {
            let areas = o.sub.iter().flat_map(|s| s.areas.iter().map(move |a| (s, a)));
            let (sub, area) = match choice.and_then(|c| c.sub_id) {
                Some(id) => areas
                    .clone()
                    .find(|(_, a)| a.id == id)
                    .ok_or_else(|| bad(format!("{field}.sub_id"), format!("{id} is not an area of option {}", o.id)))?,
                None => areas.clone().next().expect("validated: a location has areas"),
            };
            let name = if area.area.is_empty() { sub.name.clone() } else { format!("{} {}", sub.name, area.area) };
            Ok((name, area.pricing))
        }
        OptionKind::YesNo => {
            let yes = choice.and_then(|c| c.yes).unwrap_or(false);
            Ok((if yes { "yes" } else { "no" }.into(), if yes { o.sub[0].pricing } else { Decimal::ZERO }))
        }
        OptionKind::Quantity | OptionKind::Stage => {
            let qty = choice.and_then(|c| c.qty).unwrap_or(o.qty_minimum);
            if qty < o.qty_minimum || qty > o.qty_maximum {
                return Err(bad(
                    format!("{field}.qty"),
                    format!("must be between {} and {}", o.qty_minimum, o.qty_maximum),
                ));
            }
            let amount =
                if o.kind() == OptionKind::Quantity { volume_price(&o.sub, qty) } else { graduated_price(&o.sub, qty) };
            Ok((format!("{qty} {}", o.unit).trim().to_string(), amount))
        }
    }
}

/// Volume: every unit at the price of the tier the quantity falls in.
pub fn volume_price(tiers: &[SubOption], qty: i64) -> Decimal {
    let tier = tiers.iter().find(|t| (t.qty_minimum..=t.qty_maximum).contains(&qty)).expect("validated: tiers cover");
    tier.pricing * Decimal::from(qty)
}

/// Graduated: unit n (counting from 1) at the price of the tier that holds n.
pub fn graduated_price(tiers: &[SubOption], qty: i64) -> Decimal {
    tiers
        .iter()
        .map(|t| {
            let units = (t.qty_maximum.min(qty) - t.qty_minimum.max(1) + 1).max(0);
            t.pricing * Decimal::from(units)
        })
        .sum()
}

fn check_fields(product: &Product, sel: &Selection) -> Result<(), CatalogError> {
    for v in &sel.custom_fields {
        if !product.custom_fields.iter().any(|f| f.id == v.id) {
            return Err(bad(format!("custom_fields[{}]", v.id), "no such field on this product"));
        }
    }
    for f in &product.custom_fields {
        let field = format!("custom_fields[{}]", f.id);
        let value = sel.custom_fields.iter().find(|v| v.id == f.id).map(|v| v.value.trim()).unwrap_or("");
        if value.is_empty() {
            if f.required {
                return Err(bad(field, format!("{} is required", f.fieldname)));
            }
            continue;
        }
        match f.fieldtype {
            FieldType::Dropdown if !f.choices().contains(&value) => {
                return Err(bad(field, format!("must be one of {}", f.choices().join(", "))));
            }
            FieldType::Tickbox if !["0", "1", "on", "off", "yes", "no"].contains(&value) => {
                return Err(bad(field, "must be on or off"));
            }
            _ => {}
        }
        if !f.regexpr.is_empty() {
            let whole =
                f.pattern().map_err(|e| bad(field.clone(), format!("the saved pattern does not compile: {e}")))?;
            if !whole.is_match(value) {
                return Err(bad(field, format!("{} does not match {}", f.fieldname, f.regexpr)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use serde_json::json;

    use super::*;
    use crate::catalog::products::validate_product;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// A product with one option of `option_type` over `tiers` (min, max, price).
    fn tiered(option_type: u8, tiers: &[(i64, i64, &str)]) -> Product {
        let subs: Vec<_> = tiers
            .iter()
            .enumerate()
            .map(|(i, (a, b, p))| json!({"id": 10 + i, "name": format!("{a}-{b}"), "pricing": p, "qty_minimum": a, "qty_maximum": b}))
            .collect();
        let p: Product = serde_json::from_value(json!({
            "id": 1, "group_id": 1, "name": "box",
            "host": {"show": false, "rule": {"upper": false, "lower": true, "num": true, "len_num": 8}},
            "password": {"show": false, "rule": {"upper": true, "lower": true, "num": true, "len_num": 12}},
            "allow_qty": true, "cycle": [{"billingcycle": "monthly", "product_price": "0"}],
            "configoptions": [{"id": 7, "name": "units", "type": option_type,
                "qty_minimum": tiers[0].0, "qty_maximum": tiers.last().unwrap().1, "sub": subs}]
        }))
        .unwrap();
        validate_product(&p).unwrap();
        p
    }

    fn sel(value: serde_json::Value) -> Selection {
        serde_json::from_value(value).unwrap()
    }

    fn units(p: &Product, qty: i64) -> Result<PricedSelection, CatalogError> {
        price(p, 0, &sel(json!({"product_id": 1, "billingcycle": "monthly", "configoptions": [{"id": 7, "qty": qty}]})))
    }

    #[test]
    fn volume_prices_every_unit_at_the_tier_the_quantity_falls_in() {
        let p = tiered(4, &[(1, 10, "2"), (11, 20, "1.5")]);
        assert_eq!(units(&p, 10).unwrap().total, "20.00", "tier max: 10 × 2");
        assert_eq!(units(&p, 11).unwrap().total, "16.50", "max + 1: all 11 units at the next tier");
        assert_eq!(units(&p, 20).unwrap().total, "30.00");
        assert_eq!(units(&p, 21).unwrap_err().field, "configoptions[7].qty");
        assert_eq!(units(&p, 0).unwrap_err().field, "configoptions[7].qty");
    }

    #[test]
    fn graduated_prices_each_unit_at_its_own_tier() {
        let p = tiered(15, &[(1, 10, "2"), (11, 20, "1.5")]);
        assert_eq!(units(&p, 10).unwrap().total, "20.00", "tier max");
        assert_eq!(units(&p, 11).unwrap().total, "21.50", "max + 1: 10 × 2 + 1 × 1.5");
        assert_eq!(units(&p, 20).unwrap().total, "35.00");
    }

    #[test]
    fn a_tier_starting_at_zero() {
        let stage = tiered(16, &[(0, 4, "0"), (5, 8, "3")]);
        assert_eq!(units(&stage, 0).unwrap().total, "0.00", "zero units cost nothing");
        assert_eq!(units(&stage, 4).unwrap().total, "0.00", "the free tier's max");
        assert_eq!(units(&stage, 5).unwrap().total, "3.00", "the first paid unit");
        let volume = tiered(7, &[(0, 4, "1"), (5, 8, "0.5")]);
        assert_eq!(units(&volume, 0).unwrap().total, "0.00");
        assert_eq!(units(&volume, 4).unwrap().total, "4.00");
        assert_eq!(units(&volume, 5).unwrap().total, "2.50");
    }

    #[test]
    fn rounding_is_half_up_once_at_the_total() {
        let p = tiered(4, &[(1, 10, "0.0025")]);
        // 2 × 0.0025 = 0.005 → 0.01 (half up), not 0.00 (banker's).
        assert_eq!(units(&p, 2).unwrap().total, "0.01");
        // 6 × 0.0025 = 0.015 → 0.02.
        assert_eq!(units(&p, 6).unwrap().total, "0.02");
        assert_eq!(round_cents(d("10.005")), d("10.01"));
        assert_eq!(round_cents(d("10.004")), d("10.00"));
    }

    fn demo() -> Product {
        crate::devnet::demo_catalog().products.into_iter().find(|p| p.id == 1).unwrap()
    }

    fn vps(extra: serde_json::Value) -> Selection {
        let mut body = json!({"product_id": 1, "billingcycle": "monthly",
            "custom_fields": [{"id": 1, "value": "abcd1234"}, {"id": 6, "value": "on"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        sel(body)
    }

    #[test]
    fn setup_fee_once_per_line_then_times_the_quantity() {
        let p = demo();
        let one = price(&p, 50, &vps(json!({}))).unwrap();
        // Defaults: sale price 18, every option at its first sub-option or minimum.
        // Minimums: 1 core × 2, 1 GB × 1, 1 Mbps × 0.1, 20 GB × 0.05 = 4.1; so 18 + 4.1 = 22.1.
        assert_eq!(one.recurring, "22.1");
        assert_eq!(one.setup_fee, "5");
        assert_eq!(one.items.iter().filter(|i| i.kind == "setup_fee").count(), 1, "one setup line");
        assert_eq!(one.total, "27.10", "22.1 + 5 once");
        let three = price(&p, 50, &vps(json!({"qty": 3}))).unwrap();
        assert_eq!(three.items.iter().filter(|i| i.kind == "setup_fee").count(), 1, "still one setup line");
        assert_eq!(three.total, "81.30", "(22.1 + 5) × 3");
    }

    #[test]
    fn a_disabled_cycle_is_refused_and_a_free_one_is_fine() {
        let p = demo();
        let disabled = price(&p, 50, &vps(json!({"billingcycle": "annually"}))).unwrap_err();
        assert_eq!(
            (disabled.field.as_str(), disabled.problem.as_str()),
            ("billingcycle", "is disabled for this product")
        );
        let trial = price(&p, 50, &vps(json!({"billingcycle": "ontrial"}))).unwrap();
        assert_eq!(trial.items[0].amount, "0", "the trial itself is free");
        let absent = price(&p, 50, &vps(json!({"billingcycle": "biennially"}))).unwrap_err();
        assert_eq!(absent.field, "billingcycle");
    }

    #[test]
    fn choices_are_priced_and_checked() {
        let p = demo();
        let chosen = price(
            &p,
            50,
            &vps(json!({"configoptions": [
                {"id": 101, "sub_id": 1002}, {"id": 103, "yes": true}, {"id": 105, "sub_id": 1011},
                {"id": 112, "sub_id": 1203}, {"id": 120, "sub_id": 1040}
            ]})),
        )
        .unwrap();
        let item = |name: &str| chosen.items.iter().find(|i| i.name == name).unwrap().clone();
        assert_eq!((item("Plan").choice, item("Plan").amount), ("Plus".to_string(), "3".to_string()));
        assert_eq!(item("Dedicated IP").amount, "4");
        assert_eq!(item("Operating system").amount, "10", "Windows");
        assert_eq!((item("Data center").choice, item("Data center").amount), ("Germany Frankfurt".into(), "2".into()));
        assert!(chosen.items.iter().all(|i| i.name != "Internal flag"), "hidden options are not priced");

        let err = |extra| price(&p, 50, &vps(extra)).unwrap_err().field;
        assert_eq!(
            err(json!({"configoptions": [{"id": 101, "sub_id": 1003}]})),
            "configoptions[101].sub_id",
            "another option's sub"
        );
        assert_eq!(err(json!({"configoptions": [{"id": 121, "sub_id": 1042}]})), "configoptions[121]", "hidden");
        assert_eq!(err(json!({"configoptions": [{"id": 999}]})), "configoptions[999]");
        assert_eq!(err(json!({"configoptions": [{"id": 107, "qty": 33}]})), "configoptions[107].qty");
    }

    #[test]
    fn quantity_stock_and_custom_fields_are_checked() {
        let p = demo();
        assert_eq!(price(&p, 2, &vps(json!({"qty": 3}))).unwrap_err().field, "qty", "only 2 in stock");
        let mut single = p.clone();
        single.allow_qty = false;
        assert_eq!(price(&single, 50, &vps(json!({"qty": 2}))).unwrap_err().field, "qty");
        let fields = |values| {
            price(&p, 50, &sel(json!({"product_id": 1, "billingcycle": "monthly", "custom_fields": values})))
                .map(|_| ())
        };
        assert_eq!(fields(json!([{"id": 6, "value": "on"}])).unwrap_err().field, "custom_fields[1]", "required");
        assert_eq!(
            fields(json!([{"id": 1, "value": "short"}, {"id": 6, "value": "on"}])).unwrap_err().field,
            "custom_fields[1]",
            "the regex must match the whole value"
        );
        assert_eq!(
            fields(json!([{"id": 1, "value": "abcd1234"}, {"id": 6, "value": "on"}, {"id": 5, "value": "fax"}]))
                .unwrap_err()
                .field,
            "custom_fields[5]",
            "a dropdown value must be one of its options"
        );
        assert!(
            fields(json!([{"id": 1, "value": "abcd1234"}, {"id": 6, "value": "on"}, {"id": 5, "value": "phone"}]))
                .is_ok()
        );
    }

    #[test]
    fn tier_tables_with_gaps_or_overlaps_and_bad_patterns_are_refused_at_save() {
        let mut gap = tiered(4, &[(1, 10, "1"), (11, 20, "1")]);
        gap.configoptions[0].sub[1].qty_minimum = 12;
        assert_eq!(validate_product(&gap).unwrap_err().field, "configoptions[0].sub[1].qty_minimum");
        let mut overlap = tiered(15, &[(1, 10, "1"), (11, 20, "1")]);
        overlap.configoptions[0].sub[1].qty_minimum = 10;
        assert!(validate_product(&overlap).unwrap_err().problem.contains("overlaps"));
        let mut short = tiered(4, &[(1, 10, "1")]);
        short.configoptions[0].qty_maximum = 12;
        assert!(validate_product(&short).unwrap_err().problem.contains("not at qty_maximum"));
        let mut pattern = demo();
        pattern.custom_fields[0].regexpr = "([a-z".into();
        assert_eq!(validate_product(&pattern).unwrap_err().field, "custom_fields[0].regexpr");
        // Valid alone, broken once anchored (the comment swallows the closing group): refused too.
        pattern.custom_fields[0].regexpr = "(?x)[a-z]+ # letters".into();
        assert_eq!(validate_product(&pattern).unwrap_err().field, "custom_fields[0].regexpr");
        validate_product(&demo()).expect("the demo product is valid");
    }
}
