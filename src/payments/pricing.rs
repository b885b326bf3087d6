//! The quote formula: `(cores × cpu + GiB mem × mem + GiB storage × storage + chart fee)
//! × months × (1 − discount)`, rounded half-up to cents once, at the end. A token amount is
//! the USD divided by the token's USD price, rounded up at the token's decimals.

use rust_decimal::Decimal;

use crate::config::PricingConfig;
use crate::money::round_up_to_decimals;

/// Upper bounds that keep every product far inside Decimal's range and catch absurd input.
pub const MAX_CPU_MILLICORES: i64 = 1_000_000;
pub const MAX_MEM_MIB: i64 = 64 * 1024 * 1024;
pub const MAX_STORAGE_MIB: i64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources<'a> {
    pub cluster_id: &'a str,
    pub chart_name: &'a str,
    /// Millicores.
    pub cpu_limit: i64,
    /// MiB.
    pub mem_limit: i64,
    /// MiB.
    pub storage_limit: i64,
    /// Months, 1..=12.
    pub period: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("period must be a whole number of months from 1 to 12")]
    Period,
    #[error("{field} must be between {min} and {max}")]
    Limit { field: &'static str, min: i64, max: i64 },
}

impl PricingError {
    pub fn field(&self) -> &'static str {
        match self {
            PricingError::Period => "period",
            PricingError::Limit { field, .. } => field,
        }
    }
}

pub fn validate(r: &Resources) -> Result<(), PricingError> {
    if !(1..=12).contains(&r.period) {
        return Err(PricingError::Period);
    }
    for (field, value, max) in [
        ("cpu_limit", r.cpu_limit, MAX_CPU_MILLICORES),
        ("mem_limit", r.mem_limit, MAX_MEM_MIB),
        ("storage_limit", r.storage_limit, MAX_STORAGE_MIB),
    ] {
        if !(0..=max).contains(&value) {
            return Err(PricingError::Limit { field, min: 0, max });
        }
    }
    Ok(())
}

/// The USD price of `r` for its period, in cents.
pub fn quote_usd(pricing: &PricingConfig, r: &Resources) -> Result<Decimal, PricingError> {
    validate(r)?;
    let table = pricing.clusters.get(r.cluster_id).unwrap_or(&pricing.default);
    let thousand = Decimal::from(1000);
    let kibi = Decimal::from(1024);
    let chart_fee = pricing.charts.get(r.chart_name).map(|f| f.0).unwrap_or_default();
    let monthly = Decimal::from(r.cpu_limit) / thousand * table.cpu_per_core_month.0
        + Decimal::from(r.mem_limit) / kibi * table.mem_per_gib_month.0
        + Decimal::from(r.storage_limit) / kibi * table.storage_per_gib_month.0
        + chart_fee;
    let discount = pricing.discounts.get(&r.period.to_string()).map(|d| d.0).unwrap_or_default();
    let total = monthly * Decimal::from(r.period) * (Decimal::ONE - discount);
    Ok(crate::money::round_cents(total))
}

/// Tokens owed for `usd` at `price_usd` per token, rounded up at `decimals`.
pub fn token_amount(usd: Decimal, price_usd: Decimal, decimals: u8) -> Decimal {
    round_up_to_decimals(usd / price_usd, decimals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ExactDecimal, ResourcePrices};
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn pricing() -> PricingConfig {
        let mut p = PricingConfig {
            default: ResourcePrices {
                cpu_per_core_month: ExactDecimal(d("10")),
                mem_per_gib_month: ExactDecimal(d("4")),
                storage_per_gib_month: ExactDecimal(d("0.1")),
            },
            ..Default::default()
        };
        p.clusters.insert(
            "cls-special".into(),
            ResourcePrices {
                cpu_per_core_month: ExactDecimal(d("12")),
                mem_per_gib_month: ExactDecimal(d("5")),
                storage_per_gib_month: ExactDecimal(d("0.12")),
            },
        );
        p.charts.insert("boinc".into(), ExactDecimal(d("1")));
        p.discounts.insert("3".into(), ExactDecimal(d("0.05")));
        p.discounts.insert("12".into(), ExactDecimal(d("0.20")));
        p
    }

    fn res(cluster: &'static str, period: u32) -> Resources<'static> {
        Resources {
            cluster_id: cluster,
            chart_name: "boinc",
            cpu_limit: 1000,
            mem_limit: 2048,
            storage_limit: 20480,
            period,
        }
    }

    #[test]
    fn the_formula_with_chart_fee_and_discount() {
        // (1 × 10 + 2 × 4 + 20 × 0.1 + 1) × 3 × 0.95 = 21 × 2.85 = 59.85
        assert_eq!(quote_usd(&pricing(), &res("any", 3)).unwrap(), d("59.85"));
        // no discount for 1 month: 21
        assert_eq!(quote_usd(&pricing(), &res("any", 1)).unwrap(), d("21"));
        // per-cluster table: (12 + 10 + 2.4 + 1) × 12 × 0.8 = 25.4 × 9.6 = 243.84
        assert_eq!(quote_usd(&pricing(), &res("cls-special", 12)).unwrap(), d("243.84"));
    }

    #[test]
    fn rounding_happens_once_half_up_at_the_end() {
        // 100 millicores, 100 MiB, 100 MiB for 3 months: (0.1×10 + 100/1024×4 + 100/1024×0.1 + 1) × 3 × 0.95
        // = (1 + 0.390625 + 0.009765625 + 1) × 2.85 = 2.400390625 × 2.85 = 6.84111328125 → 6.84
        let r = Resources {
            cluster_id: "x",
            chart_name: "boinc",
            cpu_limit: 100,
            mem_limit: 100,
            storage_limit: 100,
            period: 3,
        };
        assert_eq!(quote_usd(&pricing(), &r).unwrap(), d("6.84"));
        // A half cent rounds up: 0.125 → 0.13 (cpu 12.5 millicores-months at 10/core: 0.0125 × 10 = 0.125)
        let mut p = pricing();
        p.charts.clear();
        let r =
            Resources { cluster_id: "x", chart_name: "none", cpu_limit: 25, mem_limit: 0, storage_limit: 0, period: 1 };
        // 25/1000 × 10 = 0.25; halve the price to get 0.125
        p.default.cpu_per_core_month = ExactDecimal(d("5"));
        assert_eq!(quote_usd(&p, &r).unwrap(), d("0.13"));
    }

    #[test]
    fn token_amounts_round_up_at_the_tokens_decimals() {
        assert_eq!(token_amount(d("59.85"), d("0.025"), 18), d("2394"));
        assert_eq!(token_amount(d("10"), d("3"), 6), d("3.333334"));
        assert_eq!(token_amount(d("59.85"), d("1"), 6), d("59.85"));
    }

    #[test]
    fn periods_and_limits_out_of_range_are_refused() {
        assert_eq!(quote_usd(&pricing(), &res("x", 0)), Err(PricingError::Period));
        assert_eq!(quote_usd(&pricing(), &res("x", 13)), Err(PricingError::Period));
        let mut r = res("x", 1);
        r.cpu_limit = -1;
        assert_eq!(quote_usd(&pricing(), &r).unwrap_err().field(), "cpu_limit");
        r.cpu_limit = MAX_CPU_MILLICORES + 1;
        assert!(quote_usd(&pricing(), &r).is_err());
    }
}
