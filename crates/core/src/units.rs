//! Amounts between tokens of one asset with different decimals.

use alloy_primitives::U256;

/// Base units of a token with `from` decimals → base units of one with `to` decimals (tokens of
/// one asset on several chains). Exact towards more decimals; towards fewer, what is finer than
/// the target can hold is dropped (never rounded up in the payer's favour).
pub fn convert_units(units: U256, from: u8, to: u8) -> U256 {
    let ten = U256::from(10u8);
    match from.cmp(&to) {
        std::cmp::Ordering::Equal => units,
        std::cmp::Ordering::Less => units.saturating_mul(ten.pow(U256::from(to - from))),
        std::cmp::Ordering::Greater => units / ten.pow(U256::from(from - to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_between_decimals_without_rounding_up() {
        let usdt6 = U256::from(1_500_000u64); // 1.5 at 6 decimals
        assert_eq!(convert_units(usdt6, 6, 18), U256::from(15u64) * U256::from(10u64).pow(U256::from(17)));
        assert_eq!(convert_units(convert_units(usdt6, 6, 18), 18, 6), usdt6);
        assert_eq!(convert_units(U256::from(1_999_999u64), 7, 6), U256::from(199_999u64));
        assert_eq!(convert_units(U256::MAX, 6, 18), U256::MAX);
    }
}
