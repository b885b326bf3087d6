//! Names of what is paid with, and exact conversions between decimal token amounts and the
//! integer base units that travel on chain. No floats anywhere.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// An ERC20 token paywatch accepts. Serialized as the pay-method name (`ANKR_ERC20`); the
/// lowercase alias exists because environment overrides arrive lowercased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Token {
    #[serde(rename = "ANKR_ERC20", alias = "ankr_erc20")]
    AnkrErc20,
    #[serde(rename = "USDT_ERC20", alias = "usdt_erc20")]
    UsdtErc20,
}

impl Token {
    pub const ALL: [Token; 2] = [Token::AnkrErc20, Token::UsdtErc20];

    pub fn as_str(self) -> &'static str {
        match self {
            Token::AnkrErc20 => "ANKR_ERC20",
            Token::UsdtErc20 => "USDT_ERC20",
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Token {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Token::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// How an order is paid: by card, or with one of the tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayMethod {
    #[serde(rename = "CREDIT_CARD")]
    CreditCard,
    #[serde(rename = "ANKR_ERC20")]
    AnkrErc20,
    #[serde(rename = "USDT_ERC20")]
    UsdtErc20,
}

impl PayMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::CreditCard => "CREDIT_CARD",
            PayMethod::AnkrErc20 => "ANKR_ERC20",
            PayMethod::UsdtErc20 => "USDT_ERC20",
        }
    }

    pub fn token(self) -> Option<Token> {
        match self {
            PayMethod::CreditCard => None,
            PayMethod::AnkrErc20 => Some(Token::AnkrErc20),
            PayMethod::UsdtErc20 => Some(Token::UsdtErc20),
        }
    }
}

impl fmt::Display for PayMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PayMethod {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [PayMethod::CreditCard, PayMethod::AnkrErc20, PayMethod::UsdtErc20]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount is negative")]
    Negative,
    #[error("amount has more than {0} decimal places")]
    TooPrecise(u8),
}

/// USD to cents, half away from zero (10.005 → 10.01): the one rounding of money charged or shown.
pub fn round_cents(usd: Decimal) -> Decimal {
    usd.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Two places, as prices are shown ("23.00"), after `round_cents`.
pub fn cents_text(usd: Decimal) -> String {
    format!("{:.2}", round_cents(usd))
}

/// Rounds a token amount up to the token's decimals (the payer never pays less than the quote).
pub fn round_up_to_decimals(amount: Decimal, decimals: u8) -> Decimal {
    amount.round_dp_with_strategy(decimals as u32, RoundingStrategy::AwayFromZero).normalize()
}

/// Decimal token amount → integer base units. Refuses amounts finer than the token allows.
pub fn to_base_units(amount: Decimal, decimals: u8) -> Result<U256, AmountError> {
    if amount.is_sign_negative() && !amount.is_zero() {
        return Err(AmountError::Negative);
    }
    let amount = amount.normalize();
    if amount.scale() > decimals as u32 {
        return Err(AmountError::TooPrecise(decimals));
    }
    // mantissa × 10^(decimals − scale), all in U256: no overflow for any Decimal.
    let mantissa = U256::from(amount.mantissa().unsigned_abs());
    let shift = U256::from(10u8).pow(U256::from(decimals as u32 - amount.scale()));
    Ok(mantissa * shift)
}

/// Integer base units → the shortest exact decimal string ("1.5", "20"). Works for any U256,
/// including amounts too large for `Decimal`.
pub fn format_base_units(units: U256, decimals: u8) -> String {
    let digits = units.to_string();
    let d = decimals as usize;
    let (whole, frac) = if digits.len() > d {
        let (w, f) = digits.split_at(digits.len() - d);
        (w.to_string(), f.to_string())
    } else {
        ("0".to_string(), format!("{digits:0>d$}"))
    };
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { whole } else { format!("{whole}.{frac}") }
}

/// Parses a stored base-unit string (a decimal integer).
pub fn parse_base_units(s: &str) -> Option<U256> {
    U256::from_str_radix(s, 10).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn base_units_round_trip_at_18_and_6_decimals() {
        let units = to_base_units(d("1332.000000000000000001"), 18).unwrap();
        assert_eq!(units.to_string(), "1332000000000000000001");
        assert_eq!(format_base_units(units, 18), "1332.000000000000000001");
        let usdt = to_base_units(d("33.3"), 6).unwrap();
        assert_eq!(usdt, U256::from(33_300_000u64));
        assert_eq!(format_base_units(usdt, 6), "33.3");
        assert_eq!(format_base_units(U256::from(5u8), 6), "0.000005");
        assert_eq!(format_base_units(U256::ZERO, 18), "0");
    }

    #[test]
    fn too_precise_or_negative_amounts_are_refused() {
        assert_eq!(to_base_units(d("0.0000001"), 6), Err(AmountError::TooPrecise(6)));
        assert_eq!(to_base_units(d("-1"), 6), Err(AmountError::Negative));
    }

    #[test]
    fn rounding_up_never_undercharges() {
        assert_eq!(round_up_to_decimals(d("1.0000001"), 6), d("1.000001"));
        assert_eq!(round_up_to_decimals(d("1.5"), 6), d("1.5"));
    }

    #[test]
    fn huge_on_chain_amounts_still_format() {
        assert_eq!(format_base_units(U256::MAX, 18).len(), 79);
    }
}
