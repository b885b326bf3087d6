//! Token prices in USD. `fixed` comes from the configuration; USDT is 1 USD unless configured.
//! (The Chainlink source is read on chain by the price job, which comes with the jobs work.)

use rust_decimal::Decimal;

use crate::config::{Config, PriceConfig};
use crate::money::Token;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("{0} is not configured under [tokens]")]
    TokenNotConfigured(Token),
    #[error("no price is configured for {0}")]
    NoPrice(Token),
    #[error("no fresh price for {0} right now")]
    Stale(Token),
}

/// The USD price of one whole `token`.
pub fn usd_price(config: &Config, token: Token) -> Result<Decimal, PriceError> {
    if !config.tokens.contains_key(&token) {
        return Err(PriceError::TokenNotConfigured(token));
    }
    match config.prices.get(&token) {
        Some(PriceConfig::Fixed { usd }) => Ok(usd.0),
        Some(PriceConfig::Chainlink { .. }) => Err(PriceError::Stale(token)),
        None if token == Token::UsdtErc20 => Ok(Decimal::ONE),
        None => Err(PriceError::NoPrice(token)),
    }
}
