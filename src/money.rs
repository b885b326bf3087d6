//! Names of what is paid with, and exact conversions between decimal token amounts and the
//! integer base units that travel on chain. No floats anywhere.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// An ERC20 token paywatch accepts, named by its pay method (`ANKR_ERC20`, `USDT_ARBITRUM`):
/// the keys of `[tokens]`. Names are interned, so a token is `Copy` and compares by name; the
/// set of names is the configuration's, so what is kept is bounded. Lowercase names are taken
/// as uppercase because environment overrides arrive lowercased.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(&'static str);

/// Every token name interned so far.
static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// A pay-method name, uppercased, or why it is not one.
fn valid_name(name: &str) -> Result<String, UnknownName> {
    let name = name.to_ascii_uppercase();
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid || name == PayMethod::CREDIT_CARD {
        return Err(UnknownName(name));
    }
    Ok(name)
}

#[allow(non_upper_case_globals)] // named like the variants they were, as the seed spells them
impl Token {
    /// The seed's two pay methods, on the first chain.
    pub const AnkrErc20: Token = Token("ANKR_ERC20");
    pub const UsdtErc20: Token = Token("USDT_ERC20");
    /// The devnet's second chain's USDT.
    pub const UsdtL2: Token = Token("USDT_L2");
    /// The devnet's second chain's USDT0 (EIP-3009: gasless payments), of asset USDT.
    pub const Usdt0L2: Token = Token("USDT0_L2");

    /// The token of a pay-method name: capital letters, digits and `_`, starting with a letter.
    /// The name is interned: for the configuration and stored rows only (what they hold is
    /// bounded); a name from a request goes through `PayMethod::known`.
    pub fn named(name: &str) -> Result<Token, UnknownName> {
        let name = valid_name(name)?;
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = names.get(name.as_str()) {
            return Ok(Token(known));
        }
        let leaked: &'static str = Box::leak(name.into_boxed_str());
        names.insert(leaked);
        Ok(Token(leaked))
    }

    /// The token of a name already interned (configured or stored), without interning it:
    /// a request's name is checked before anything of it is kept.
    pub fn interned(name: &str) -> Result<Token, UnknownName> {
        let name = valid_name(name)?;
        if let Some(t) =
            [Token::AnkrErc20, Token::UsdtErc20, Token::UsdtL2, Token::Usdt0L2].into_iter().find(|t| t.0 == name)
        {
            return Ok(t);
        }
        let names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        names.get(name.as_str()).map(|known| Token(known)).ok_or(UnknownName(name))
    }

    /// How many names are interned (bounded by the configuration and the stored rows).
    pub fn interned_count() -> usize {
        NAMES.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// What the token is worth when `[tokens.X] asset` does not say: the name up to its first
    /// `_` (`USDT_ERC20` → `USDT`).
    pub fn default_asset(self) -> &'static str {
        self.0.split('_').next().unwrap_or(self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for Token {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Token::named(s)
    }
}

impl Serialize for Token {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Token::named(&name).map_err(|_| {
            serde::de::Error::custom(format!(
                "{name:?} is not a token name (capital letters, digits and _, like USDT_ERC20)"
            ))
        })
    }
}

/// How an order is paid: by card, or with one of the configured tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayMethod {
    CreditCard,
    Token(Token),
}

#[allow(non_upper_case_globals)]
impl PayMethod {
    pub const CREDIT_CARD: &'static str = "CREDIT_CARD";
    pub const AnkrErc20: PayMethod = PayMethod::Token(Token::AnkrErc20);
    pub const UsdtErc20: PayMethod = PayMethod::Token(Token::UsdtErc20);

    pub fn as_str(self) -> &'static str {
        match self {
            PayMethod::CreditCard => Self::CREDIT_CARD,
            PayMethod::Token(t) => t.as_str(),
        }
    }

    pub fn token(self) -> Option<Token> {
        match self {
            PayMethod::CreditCard => None,
            PayMethod::Token(t) => Some(t),
        }
    }
}

impl fmt::Display for PayMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PayMethod {
    /// A request's pay method: CREDIT_CARD or a token name already known to the process
    /// (configured, or the seed's two), checked without interning the name.
    pub fn known(s: &str) -> Result<Self, UnknownName> {
        if s == Self::CREDIT_CARD {
            return Ok(PayMethod::CreditCard);
        }
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(UnknownName(s.to_string()));
        }
        Token::interned(s).map(PayMethod::Token)
    }
}

/// A name only (for stored rows): whether the token is configured is the caller's question.
impl FromStr for PayMethod {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == Self::CREDIT_CARD {
            return Ok(PayMethod::CreditCard);
        }
        if s.bytes().any(|b| b.is_ascii_lowercase()) {
            return Err(UnknownName(s.to_string()));
        }
        Token::named(s).map(PayMethod::Token)
    }
}

impl Serialize for PayMethod {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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

pub use paywatch_core::units::convert_units;

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
    fn token_names_are_pay_methods() {
        assert_eq!(Token::named("usdt_arbitrum").unwrap().as_str(), "USDT_ARBITRUM");
        assert_eq!(Token::named("USDT_ERC20").unwrap(), Token::UsdtErc20);
        assert_eq!(Token::UsdtErc20.default_asset(), "USDT");
        for bad in ["", "1USDT", "USDT-ERC20", "CREDIT_CARD"] {
            assert!(Token::named(bad).is_err(), "{bad:?}");
        }
        assert_eq!("CREDIT_CARD".parse::<PayMethod>().unwrap(), PayMethod::CreditCard);
        assert!("usdt_erc20".parse::<PayMethod>().is_err());
    }

    #[test]
    fn huge_on_chain_amounts_still_format() {
        assert_eq!(format_base_units(U256::MAX, 18).len(), 79);
    }
}
