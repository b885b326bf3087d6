//! The productsconfig answer in seed 002's shape: currency, then first groups → groups →
//! products, each product with freshly generated host and password (when shown), cycles,
//! options with their sub-options in the per-type shapes, and custom fields. Booleans are
//! 1/0 as in the seed; prices are two-place strings.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::products::{ConfigOption, FirstGroup, Group, OptionKind, Product, SubOption};
use super::secrets;
use crate::money::cents_text;

pub struct Currency {
    pub code: String,
    pub prefix: &'static str,
    pub suffix: &'static str,
}

impl Currency {
    pub fn of(code: &str) -> Currency {
        let (prefix, suffix) = match code {
            "USD" => ("$", ""),
            "EUR" => ("€", ""),
            "CNY" => ("¥", "元"),
            _ => ("", ""),
        };
        Currency { code: code.to_string(), prefix, suffix }
    }

    fn show(&self, label: &str, price: Decimal) -> String {
        format!("{label} {}{}{}", self.prefix, cents_text(price), self.suffix).trim_start().to_string()
    }
}

fn flag(b: bool) -> Value {
    json!(i32::from(b))
}

pub fn render(currency: &Currency, first_groups: &[FirstGroup], groups: &[Group], products: &[Product]) -> Value {
    let first_group: Vec<Value> = first_groups
        .iter()
        .map(|f| {
            let group: Vec<Value> = groups
                .iter()
                .filter(|g| g.first_group_id == f.id)
                .map(|g| {
                    let products: Vec<Value> =
                        products.iter().filter(|p| p.group_id == g.id).map(|p| product(currency, p)).collect();
                    json!({"id": g.id, "name": g.name, "headline": g.headline, "tagline": g.tagline,
                           "custom_fields": g.custom_fields, "products": products})
                })
                .collect();
            json!({"id": f.id, "name": f.name, "custom_fields": f.custom_fields, "group": group})
        })
        .collect();
    json!({
        "currency": {"id": 1, "code": currency.code, "prefix": currency.prefix, "suffix": currency.suffix},
        "first_group": first_group,
    })
}

fn product(currency: &Currency, p: &Product) -> Value {
    let host = if p.host.show {
        let r = &p.host.rule;
        json!({"show": 1, "prefix": p.host.prefix, "host": secrets::generate_host(&p.host.prefix, r),
               "rule": {"upper": flag(r.upper), "lower": flag(r.lower), "num": flag(r.num), "len_num": r.len_num}})
    } else {
        json!({"show": 0})
    };
    let password = if p.password.show {
        let r = &p.password.rule;
        json!({"show": 1, "password": secrets::generate(r),
               "rule": {"upper": flag(r.upper), "lower": flag(r.lower), "num": flag(r.num), "len_num": r.len_num,
                        "special": flag(r.special)}})
    } else {
        json!({"show": 0})
    };
    let cycle: Vec<Value> = p
        .cycle
        .iter()
        .map(|c| {
            let mut v = json!({
                "product_price": cents_text(c.product_price),
                "setup_fee": cents_text(c.setup_fee),
                "billingcycle": c.billingcycle,
                "saleprice": cents_text(c.saleprice.unwrap_or(c.product_price)),
            });
            if let Some(trial) = c.pay_ontrial_cycle {
                v["pay_ontrial_cycle"] = json!(trial);
            }
            v
        })
        .collect();
    let options: Vec<Value> = p.configoptions.iter().filter(|o| !o.hidden).map(|o| option(currency, o)).collect();
    let fields: Vec<Value> = p
        .custom_fields
        .iter()
        .map(|f| {
            json!({"id": f.id, "fieldname": f.fieldname, "description": f.description, "fieldtype": f.fieldtype,
                   "fieldoptions": f.fieldoptions, "regexpr": f.regexpr, "required": flag(f.required)})
        })
        .collect();
    json!({
        "id": p.id, "name": p.name, "description": p.description,
        "host": host, "password": password,
        "allow_qty": flag(p.allow_qty), "stock_control": flag(p.stock_control), "qty": p.qty,
        "cycle": cycle, "configoptions": options, "custom_fields": fields,
    })
}

fn option(currency: &Currency, o: &ConfigOption) -> Value {
    let kind = o.kind();
    let mut v = json!({"id": o.id, "name": o.name, "type": o.option_type, "notes": o.notes,
                       "is_discount": flag(o.is_discount), "unit": o.unit});
    if kind.is_quantity() {
        v["qty_minimum"] = json!(o.qty_minimum);
        v["qty_maximum"] = json!(o.qty_maximum);
    }
    v["sub"] = match kind {
        OptionKind::OperatingSystem => os_families(currency, &o.sub),
        OptionKind::Location => Value::Array(o.sub.iter().map(|s| location(currency, s)).collect()),
        _ => Value::Array(o.sub.iter().map(|s| plain_sub(currency, o.id, kind, s)).collect()),
    };
    v
}

fn first_word(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

/// A sub-option as seed 002 shows it; `config_id` is the option it belongs to.
fn plain_sub(currency: &Currency, config_id: i64, kind: OptionKind, s: &SubOption) -> Value {
    let mut v = json!({"id": s.id, "config_id": config_id, "name": s.name, "option_name": s.name, "option_name_first": first_word(&s.name),
                       "pricing": cents_text(s.pricing), "qty_stage": flag(kind == OptionKind::Stage),
                       "show_pricing": currency.show(&s.name, s.pricing)});
    if kind.is_quantity() {
        v["qty_minimum"] = json!(s.qty_minimum);
        v["qty_maximum"] = json!(s.qty_maximum);
    }
    v
}

fn location(currency: &Currency, s: &SubOption) -> Value {
    let area: Vec<Value> = s
        .areas
        .iter()
        .map(|a| {
            json!({"id": a.id, "pricing": cents_text(a.pricing), "area": a.area, "area_zh": a.area_zh,
                   "show_pricing": currency.show(&a.area, a.pricing)})
        })
        .collect();
    json!({"id": s.id, "name": s.name, "option_name": s.name, "option_name_first": first_word(&s.name),
           "country_code": s.country_code, "area": area, "qty_stage": 0})
}

/// `{"CentOS": {"child": [versions], "ico_url", "qty_stage"}}`, families by name.
fn os_families(currency: &Currency, subs: &[SubOption]) -> Value {
    let mut families = Map::new();
    for s in subs {
        let family = s.os_type.clone().unwrap_or_default();
        let entry = families
            .entry(family.clone())
            .or_insert_with(|| json!({"child": [], "ico_url": s.os_url.clone().unwrap_or_default(), "qty_stage": 0}));
        entry["child"].as_array_mut().expect("child is an array").push(json!({
            "id": s.id, "version": s.name, "name": s.name, "pricing": cents_text(s.pricing),
            "show_pricing": currency.show(&s.name, s.pricing), "os_type": family, "os_url": s.os_url,
        }));
    }
    Value::Object(families)
}
