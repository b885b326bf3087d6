//! Checks serde cannot express: ranges, URL schemes, key shapes, parseable secrets.

use rust_decimal::Decimal;
use secrecy::ExposeSecret;

use super::{Config, ConfigError, ExactDecimal, PriceConfig, ResourcePrices};

/// The largest scale `rust_decimal` can hold; token amounts are computed at the token's decimals.
const MAX_TOKEN_DECIMALS: u8 = 28;

/// Chain ids of local development chains (anvil, hardhat, ganache).
const DEVNET_CHAIN_IDS: [u64; 2] = [31337, 1337];

impl Config {
    /// What is valid but unwise, for `paywatch check` to say.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.chain.rpc_http.urls().len() == 1 && !DEVNET_CHAIN_IDS.contains(&self.chain.chain_id) {
            out.push(format!(
                "chain.rpc_http has one endpoint ({}): configure two or more providers so an outage or rate limit \
                 of one does not stop the watcher",
                crate::chain::rpc::redact(self.chain.rpc_http.primary())
            ));
        }
        out
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database_url();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::key("database.url", "must start with sqlite:, postgres:// or postgresql://"));
        }
        if self.database.max_connections == Some(0) {
            return Err(ConfigError::key("database.max_connections", "must be at least 1"));
        }
        let chain = &self.chain;
        for url in chain.rpc_http.urls() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::key("chain.rpc_http", "must be an http:// or https:// URL"));
            }
        }
        if let Some(ws) = &chain.rpc_ws
            && !(ws.starts_with("ws://") || ws.starts_with("wss://"))
        {
            return Err(ConfigError::key("chain.rpc_ws", "must be a ws:// or wss:// URL"));
        }
        if let Some(f) = &chain.finality
            && f.large_usd.0 <= Decimal::ZERO
        {
            return Err(ConfigError::key("chain.finality.large_usd", "must be more than 0"));
        }
        if chain.poll_interval_ms < 50 {
            return Err(ConfigError::key("chain.poll_interval_ms", "must be at least 50"));
        }
        if self.server.heartbeat_secs == 0 {
            return Err(ConfigError::key("server.heartbeat_secs", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.server.request_timeout_s) {
            return Err(ConfigError::key("server.request_timeout_s", "must be 1 to 3600"));
        }
        if self.server.max_streams == 0 || self.server.max_streams_per_order == 0 {
            return Err(ConfigError::key("server.max_streams", "and max_streams_per_order must be at least 1"));
        }
        if self.cards.recover_after_s == 0 {
            return Err(ConfigError::key("cards.recover_after_s", "must be at least 1"));
        }
        for (token, t) in &self.tokens {
            if t.decimals > MAX_TOKEN_DECIMALS {
                return Err(ConfigError::key(
                    &format!("tokens.{token}.decimals"),
                    format!("at most {MAX_TOKEN_DECIMALS} are supported"),
                ));
            }
        }
        for (token, price) in &self.prices {
            if let PriceConfig::Fixed { usd } = price {
                positive(&format!("prices.{token}.usd"), usd)?;
            }
            if !self.tokens.contains_key(token) {
                return Err(ConfigError::key(&format!("prices.{token}"), "has no [tokens] entry"));
            }
        }
        fraction("orders.underpayment_tolerance", &self.orders.underpayment_tolerance)?;
        if self.orders.ttl_minutes == 0 {
            return Err(ConfigError::key("orders.ttl_minutes", "must be at least 1"));
        }
        self.validate_pricing()?;
        not_negative("catalog.markup", &self.catalog.markup)?;
        not_negative("catalog.discount", &self.catalog.discount)?;
        if !(1..=500).contains(&self.jobs.sweep_batch) {
            return Err(ConfigError::key("jobs.sweep_batch", "must be between 1 and 500"));
        }
        if let Some(w) = &self.webhooks {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err(ConfigError::key("webhooks.url", "must be an http:// or https:// URL"));
            }
            if w.secret.expose_secret().is_empty() {
                return Err(ConfigError::key("webhooks.secret", "must not be empty"));
            }
            if w.max_attempts == 0 {
                return Err(ConfigError::key("webhooks.max_attempts", "must be at least 1"));
            }
            if w.poll_interval_ms < 10 || w.retry_base_ms < 10 || w.timeout_ms < 100 {
                return Err(ConfigError::key(
                    "webhooks",
                    "poll_interval_ms and retry_base_ms must be at least 10, timeout_ms at least 100",
                ));
            }
        }
        if let Some(s) = &self.signer
            && s.private_key.expose_secret().parse::<alloy::signers::local::PrivateKeySigner>().is_err()
        {
            // Never echo the value: it is a key.
            return Err(ConfigError::key("signer.private_key", "is not a 32-byte hex private key"));
        }
        if let Some(t) = &self.auth.admin_token
            && t.expose_secret().len() < 16
        {
            return Err(ConfigError::key("auth.admin_token", "must be at least 16 characters"));
        }
        Ok(())
    }

    fn validate_pricing(&self) -> Result<(), ConfigError> {
        let p = &self.pricing;
        resource_prices("pricing.default", &p.default)?;
        for (cluster, prices) in &p.clusters {
            resource_prices(&format!("pricing.clusters.{cluster}"), prices)?;
        }
        for (chart, fee) in &p.charts {
            not_negative(&format!("pricing.charts.{chart}"), fee)?;
        }
        for (months, off) in &p.discounts {
            let key = format!("pricing.discounts.{months}");
            match months.parse::<u8>() {
                Ok(1..=12) => fraction(&key, off)?,
                _ => {
                    return Err(ConfigError::key(&key, "the period must be a whole number of months from 1 to 12"));
                }
            }
        }
        Ok(())
    }
}

fn resource_prices(prefix: &str, p: &ResourcePrices) -> Result<(), ConfigError> {
    not_negative(&format!("{prefix}.cpu_per_core_month"), &p.cpu_per_core_month)?;
    not_negative(&format!("{prefix}.mem_per_gib_month"), &p.mem_per_gib_month)?;
    not_negative(&format!("{prefix}.storage_per_gib_month"), &p.storage_per_gib_month)
}

fn not_negative(key: &str, v: &ExactDecimal) -> Result<(), ConfigError> {
    if v.0.is_sign_negative() && !v.0.is_zero() {
        return Err(ConfigError::key(key, "must not be negative"));
    }
    Ok(())
}

fn positive(key: &str, v: &ExactDecimal) -> Result<(), ConfigError> {
    if v.0 <= Decimal::ZERO {
        return Err(ConfigError::key(key, "must be greater than 0"));
    }
    Ok(())
}

/// A fraction in [0, 1).
fn fraction(key: &str, v: &ExactDecimal) -> Result<(), ConfigError> {
    if v.0 < Decimal::ZERO || v.0 >= Decimal::ONE {
        return Err(ConfigError::key(key, "must be a fraction from 0 up to (not including) 1"));
    }
    Ok(())
}
