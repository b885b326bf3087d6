//! Token prices in USD. `fixed` comes from the configuration; `chainlink` reads an
//! AggregatorV3 proxy on chain (answer scaled by the feed's decimals), refusing non-positive
//! answers and answers older than `max_age_s`. USDT is 1 USD unless configured. Prices are per
//! asset (tokens of one asset on several chains share one); feeds are read on the first chain. Feed reads
//! are cached for a few seconds so a burst of quotes makes one call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use rust_decimal::Decimal;
use tokio::sync::Mutex;

use crate::config::{Config, PriceConfig};
use crate::money::Token;

const FEED_CACHE: Duration = Duration::from_secs(5);

alloy::sol! {
    #[sol(rpc)]
    interface AggregatorV3 {
        function decimals() external view returns (uint8);
        function latestRoundData() external view returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("{0} is not configured under [tokens]")]
    TokenNotConfigured(Token),
    #[error("no price is configured for {0}")]
    NoPrice(Token),
    #[error("no fresh price for {token}: {reason}")]
    Unavailable { token: Token, reason: String },
}

/// A feed's answer as read: USD per token and when the feed last updated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedAnswer {
    pub usd: Decimal,
    pub updated_at: i64,
}

/// When a feed was read, and what it said.
type FeedRead = (Instant, Result<FeedAnswer, String>);

pub struct PriceBook {
    provider: DynProvider,
    cache: Mutex<HashMap<Address, FeedRead>>,
}

impl PriceBook {
    pub fn new(provider: DynProvider) -> Self {
        Self { provider, cache: Mutex::new(HashMap::new()) }
    }

    /// The USD price of one whole `token` at `now` (unix seconds).
    pub async fn usd_price(&self, config: &Config, token: Token, now: i64) -> Result<Decimal, PriceError> {
        let Some(entry) = config.token_book().get(token) else {
            return Err(PriceError::TokenNotConfigured(token));
        };
        match price_of(config, token, &entry.asset) {
            Some(PriceConfig::Fixed { usd }) => Ok(usd.0),
            Some(PriceConfig::Chainlink { feed, max_age_s }) => {
                let answer = self.read_feed(*feed).await.map_err(|reason| PriceError::Unavailable { token, reason })?;
                check_fresh(answer, now, *max_age_s).map_err(|reason| PriceError::Unavailable { token, reason })
            }
            None if entry.asset == "USDT" => Ok(Decimal::ONE),
            None => Err(PriceError::NoPrice(token)),
        }
    }

    /// Seconds since `feed` last updated its answer, as of `now`; `None` when it cannot be read.
    pub async fn feed_age(&self, feed: Address, now: i64) -> Option<i64> {
        self.read_feed(feed).await.ok().map(|a| now - a.updated_at)
    }

    async fn read_feed(&self, feed: Address) -> Result<FeedAnswer, String> {
        let mut cache = self.cache.lock().await;
        if let Some((read_at, answer)) = cache.get(&feed)
            && read_at.elapsed() < FEED_CACHE
        {
            return answer.clone();
        }
        let answer = read_aggregator(&self.provider, feed).await;
        cache.insert(feed, (Instant::now(), answer.clone()));
        answer
    }
}

/// Prices are per asset: `[prices.X]` names a token (its asset's price) or an asset; the
/// token's own entry first, then its asset's, then another token's of the asset.
fn price_of<'c>(config: &'c Config, token: Token, asset: &str) -> Option<&'c PriceConfig> {
    config.prices.get(&token).or_else(|| {
        config.prices.iter().find_map(|(name, price)| {
            let same = name.as_str() == asset || config.token_book().get(*name).is_some_and(|e| e.asset == asset);
            same.then_some(price)
        })
    })
}

async fn read_aggregator(provider: &DynProvider, feed: Address) -> Result<FeedAnswer, String> {
    let aggregator = AggregatorV3::new(feed, provider.clone());
    let decimals = aggregator.decimals().call().await.map_err(|e| format!("feed unreadable: {e}"))?;
    let round = aggregator.latestRoundData().call().await.map_err(|e| format!("feed unreadable: {e}"))?;
    let answer = i128::try_from(round.answer).map_err(|_| "answer out of range".to_string())?;
    if answer <= 0 {
        return Err(format!("the feed answers {answer}, not a price"));
    }
    let usd = Decimal::try_from_i128_with_scale(answer, u32::from(decimals))
        .map_err(|_| "answer out of range".to_string())?;
    let updated_at = i64::try_from(round.updatedAt).map_err(|_| "updatedAt out of range".to_string())?;
    Ok(FeedAnswer { usd, updated_at })
}

/// Refuses an answer older than `max_age_s` at `now`.
pub fn check_fresh(answer: FeedAnswer, now: i64, max_age_s: u64) -> Result<Decimal, String> {
    let age = now - answer.updated_at;
    if age > max_age_s as i64 {
        return Err(format!("the feed's answer is {age} s old (max_age_s = {max_age_s})"));
    }
    Ok(answer.usd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_older_than_max_age_is_refused() {
        let a = FeedAnswer { usd: Decimal::new(25, 3), updated_at: 1_000 };
        assert_eq!(check_fresh(a, 1_500, 600), Ok(Decimal::new(25, 3)));
        assert!(check_fresh(a, 1_601, 600).is_err());
    }
}
