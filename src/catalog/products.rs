//! The hosting product catalog (seed 002): first groups → groups → products, each product with
//! its billing cycles, configurable options (types 1-20) and custom fields. Products are
//! validated as a whole when saved, so pricing can trust them: tier tables have no gaps or
//! overlaps, regexes compile, disabled cycles are marked -1.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The seed's option types, by number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// Pick one sub-option: 1 Dropdown, 2 Radio, 6 Cpu, 8 Mem, 10 Bw, 13 SystemDiskSize, 20 linked radio.
    Choice,
    /// 3 Yes/No: the single sub-option's price when "yes".
    YesNo,
    /// 5 OperationSystem: pick a version; sub-options are grouped by OS family.
    OperatingSystem,
    /// 12 LocationDropdown: pick an area; sub-options are countries with areas.
    Location,
    /// 4, 7, 9, 11, 14: every unit at the price of the tier the quantity falls in (volume).
    Quantity,
    /// 15-19: each unit at the price of the tier it falls in (graduated).
    Stage,
}

impl OptionKind {
    pub fn of(option_type: u8) -> Option<OptionKind> {
        Some(match option_type {
            1 | 2 | 6 | 8 | 10 | 13 | 20 => OptionKind::Choice,
            3 => OptionKind::YesNo,
            5 => OptionKind::OperatingSystem,
            12 => OptionKind::Location,
            4 | 7 | 9 | 11 | 14 => OptionKind::Quantity,
            15..=19 => OptionKind::Stage,
            _ => return None,
        })
    }

    pub fn is_quantity(self) -> bool {
        matches!(self, OptionKind::Quantity | OptionKind::Stage)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FirstGroup {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub custom_fields: Vec<NameValue>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Group {
    pub id: i64,
    pub first_group_id: i64,
    pub name: String,
    #[serde(default)]
    pub headline: String,
    #[serde(default)]
    pub tagline: String,
    #[serde(default)]
    pub custom_fields: Vec<NameValue>,
}

/// Which characters a generated hostname or password must contain, and how many.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CharRule {
    pub upper: bool,
    pub lower: bool,
    pub num: bool,
    #[serde(default)]
    pub special: bool,
    pub len_num: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HostRule {
    pub show: bool,
    #[serde(default)]
    pub prefix: String,
    pub rule: CharRule,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PasswordRule {
    pub show: bool,
    pub rule: CharRule,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BillingCycle {
    Ontrial,
    Hourly,
    Daily,
    Monthly,
    Quarterly,
    Semiannually,
    Annually,
    Biennially,
    Triennially,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Cycle {
    pub billingcycle: BillingCycle,
    /// -1 disables the cycle; 0 is free.
    #[schema(value_type = String)]
    pub product_price: Decimal,
    #[serde(default)]
    #[schema(value_type = String)]
    pub setup_fee: Decimal,
    /// The trial's length (only for `ontrial`).
    #[serde(default)]
    pub pay_ontrial_cycle: Option<u32>,
    /// A discounted price that replaces `product_price` when set.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub saleprice: Option<Decimal>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Area {
    pub id: i64,
    #[serde(default)]
    pub area: String,
    #[serde(default)]
    pub area_zh: String,
    #[schema(value_type = String)]
    pub pricing: Decimal,
}

/// One row under an option: a choice, an OS version, a country with areas, or a quantity tier.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SubOption {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    #[schema(value_type = String)]
    pub pricing: Decimal,
    /// Tier bounds (quantity and stage types).
    #[serde(default)]
    pub qty_minimum: i64,
    #[serde(default)]
    pub qty_maximum: i64,
    /// Location (12): the country and its areas (the areas carry the ids and prices).
    #[serde(default)]
    pub country_code: Option<String>,
    #[serde(default)]
    pub areas: Vec<Area>,
    /// Operating system (5): the family (`os_type`) and its icon.
    #[serde(default)]
    pub os_type: Option<String>,
    #[serde(default)]
    pub os_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConfigOption {
    pub id: i64,
    pub name: String,
    #[serde(rename = "type")]
    pub option_type: u8,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub qty_minimum: i64,
    #[serde(default)]
    pub qty_maximum: i64,
    #[serde(default)]
    pub is_discount: bool,
    #[serde(default)]
    pub unit: String,
    /// Hidden options are not listed and cannot be chosen.
    #[serde(default)]
    pub hidden: bool,
    pub sub: Vec<SubOption>,
}

impl ConfigOption {
    pub fn kind(&self) -> OptionKind {
        OptionKind::of(self.option_type).expect("validated when saved")
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Password,
    Text,
    Link,
    Textarea,
    Dropdown,
    Tickbox,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CustomField {
    pub id: i64,
    pub fieldname: String,
    #[serde(default)]
    pub description: String,
    pub fieldtype: FieldType,
    /// Dropdown choices, separated by `,` or `;`.
    #[serde(default)]
    pub fieldoptions: String,
    /// A regular expression the whole value must match (empty: any).
    #[serde(default)]
    pub regexpr: String,
    #[serde(default)]
    pub required: bool,
}

impl CustomField {
    /// The field's pattern, anchored: a value must match it whole.
    pub fn pattern(&self) -> Result<regex::Regex, regex::Error> {
        regex::Regex::new(&format!("^(?:{})$", self.regexpr))
    }

    pub fn choices(&self) -> Vec<&str> {
        self.fieldoptions.split([',', ';']).map(str::trim).filter(|s| !s.is_empty()).collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub group_id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub host: HostRule,
    pub password: PasswordRule,
    #[serde(default)]
    pub allow_qty: bool,
    #[serde(default)]
    pub stock_control: bool,
    /// Stock on hand when `stock_control` is on (kept in its own column, reserved atomically).
    #[serde(default)]
    pub qty: i64,
    pub cycle: Vec<Cycle>,
    #[serde(default)]
    pub configoptions: Vec<ConfigOption>,
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// A whole catalog, as `paywatch catalog import` and `POST /admin/catalog/import` take it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CatalogDocument {
    pub first_groups: Vec<FirstGroup>,
    pub groups: Vec<Group>,
    pub products: Vec<Product>,
}

/// What is wrong with a catalog entry: the field's path and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct CatalogError {
    pub field: String,
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> CatalogError {
    CatalogError { field: field.into(), problem: problem.into() }
}

pub const MAX_GENERATED_LEN: u32 = 64;

pub fn validate_rule(field: &str, rule: &CharRule, special_allowed: bool) -> Result<(), CatalogError> {
    let classes = [rule.upper, rule.lower, rule.num, rule.special && special_allowed].iter().filter(|c| **c).count();
    if rule.special && !special_allowed {
        return Err(bad(format!("{field}.special"), "hostnames cannot contain special characters"));
    }
    if classes == 0 {
        return Err(bad(field, "needs at least one of upper, lower, num"));
    }
    if (rule.len_num as usize) < classes || rule.len_num > MAX_GENERATED_LEN {
        return Err(bad(format!("{field}.len_num"), format!("must be between {classes} and {MAX_GENERATED_LEN}")));
    }
    Ok(())
}

fn nonblank(field: &str, value: &str) -> Result<(), CatalogError> {
    if value.trim().is_empty() { Err(bad(field, "is required")) } else { Ok(()) }
}

fn price(field: &str, value: Decimal) -> Result<(), CatalogError> {
    if value < Decimal::ZERO { Err(bad(field, "must not be negative")) } else { Ok(()) }
}

/// Checks a product as a whole; the error names the first bad field.
pub fn validate_product(p: &Product) -> Result<(), CatalogError> {
    nonblank("name", &p.name)?;
    if p.host.prefix.chars().any(|c| !c.is_ascii_alphanumeric() && c != '-') {
        return Err(bad("host.prefix", "may hold only letters, digits and '-'"));
    }
    validate_rule("host.rule", &p.host.rule, false)?;
    validate_rule("password.rule", &p.password.rule, true)?;
    if p.qty < 0 {
        return Err(bad("qty", "must not be negative"));
    }
    if p.cycle.is_empty() {
        return Err(bad("cycle", "needs at least one billing cycle"));
    }
    for (i, c) in p.cycle.iter().enumerate() {
        let f = |name: &str| format!("cycle[{i}].{name}");
        if c.product_price < Decimal::ZERO && c.product_price != Decimal::NEGATIVE_ONE {
            return Err(bad(f("product_price"), "must be -1 (disabled), 0 (free) or a price"));
        }
        price(&f("setup_fee"), c.setup_fee)?;
        if let Some(sale) = c.saleprice {
            price(&f("saleprice"), sale)?;
        }
        match (c.billingcycle, c.pay_ontrial_cycle) {
            (BillingCycle::Ontrial, None | Some(0)) => {
                return Err(bad(f("pay_ontrial_cycle"), "a trial needs its length"));
            }
            (BillingCycle::Ontrial, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(bad(f("pay_ontrial_cycle"), "only a trial (ontrial) has one")),
        }
        if p.cycle[..i].iter().any(|o| o.billingcycle == c.billingcycle) {
            return Err(bad(f("billingcycle"), "appears twice"));
        }
    }
    let mut sub_ids = std::collections::HashSet::new();
    for (i, o) in p.configoptions.iter().enumerate() {
        let f = |name: &str| format!("configoptions[{i}].{name}");
        nonblank(&f("name"), &o.name)?;
        let kind = OptionKind::of(o.option_type).ok_or_else(|| bad(f("type"), "must be 1 to 20"))?;
        if p.configoptions[..i].iter().any(|x| x.id == o.id) {
            return Err(bad(f("id"), "appears twice"));
        }
        if o.sub.is_empty() {
            return Err(bad(f("sub"), "needs at least one sub-option"));
        }
        for (j, s) in o.sub.iter().enumerate() {
            let sf = |name: &str| format!("configoptions[{i}].sub[{j}].{name}");
            nonblank(&sf("name"), &s.name)?;
            price(&sf("pricing"), s.pricing)?;
            let ids: Vec<i64> =
                if kind == OptionKind::Location { s.areas.iter().map(|a| a.id).collect() } else { vec![s.id] };
            for id in ids {
                if !sub_ids.insert(id) {
                    return Err(bad(sf("id"), format!("{id} is used twice in this product")));
                }
            }
            match kind {
                OptionKind::Location => {
                    if s.country_code.as_deref().is_none_or(|c| c.len() != 2) {
                        return Err(bad(sf("country_code"), "a location needs a two-letter country code"));
                    }
                    if s.areas.is_empty() {
                        return Err(bad(sf("areas"), "a location needs at least one area"));
                    }
                    for (k, a) in s.areas.iter().enumerate() {
                        price(&format!("configoptions[{i}].sub[{j}].areas[{k}].pricing"), a.pricing)?;
                    }
                }
                OptionKind::OperatingSystem => {
                    nonblank(&sf("os_type"), s.os_type.as_deref().unwrap_or(""))?;
                }
                _ => {}
            }
        }
        if kind == OptionKind::YesNo && o.sub.len() != 1 {
            return Err(bad(f("sub"), "a yes/no option has exactly one sub-option (its price)"));
        }
        if kind.is_quantity() {
            validate_tiers(&f(""), o)?;
        }
    }
    for (i, c) in p.custom_fields.iter().enumerate() {
        let f = |name: &str| format!("custom_fields[{i}].{name}");
        nonblank(&f("fieldname"), &c.fieldname)?;
        if !c.regexpr.is_empty() {
            // Checked as it is used (anchored), so a saved pattern always compiles when a value comes.
            c.pattern().map_err(|e| bad(f("regexpr"), format!("is not a valid pattern: {e}")))?;
        }
        if c.fieldtype == FieldType::Dropdown && c.choices().is_empty() {
            return Err(bad(f("fieldoptions"), "a dropdown needs its options"));
        }
    }
    Ok(())
}

/// Quantity tiers must cover [qty_minimum, qty_maximum] of the option exactly: in order,
/// each starting right after the previous one ends, no gaps, no overlaps.
fn validate_tiers(prefix: &str, o: &ConfigOption) -> Result<(), CatalogError> {
    if o.qty_minimum < 0 || o.qty_maximum < o.qty_minimum {
        return Err(bad(format!("{prefix}qty_maximum"), "must be at least qty_minimum, which is at least 0"));
    }
    let mut expected = o.qty_minimum;
    for (j, s) in o.sub.iter().enumerate() {
        let f = format!("{prefix}sub[{j}]");
        if s.qty_maximum < s.qty_minimum {
            return Err(bad(format!("{f}.qty_maximum"), "is below its qty_minimum"));
        }
        if s.qty_minimum > expected {
            return Err(bad(
                format!("{f}.qty_minimum"),
                format!("leaves a gap: {expected} to {} has no tier", s.qty_minimum - 1),
            ));
        }
        if s.qty_minimum < expected {
            return Err(bad(
                format!("{f}.qty_minimum"),
                format!("overlaps the tier before (which ends at {})", expected - 1),
            ));
        }
        expected = s.qty_maximum + 1;
    }
    if expected - 1 != o.qty_maximum {
        return Err(bad(
            format!("{prefix}sub"),
            format!("the tiers end at {}, not at qty_maximum {}", expected - 1, o.qty_maximum),
        ));
    }
    Ok(())
}
