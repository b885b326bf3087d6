//! Checks serde cannot express: ranges, URL schemes, key shapes, parseable secrets.

use rust_decimal::Decimal;
use secrecy::ExposeSecret;

use super::{Config, ConfigError, ExactDecimal, PriceConfig, ResourcePrices};

/// The largest scale `rust_decimal` can hold; token amounts are computed at the token's decimals.
const MAX_TOKEN_DECIMALS: u8 = 28;

/// Chain ids of local development chains (anvil, hardhat, ganache).
const DEVNET_CHAIN_IDS: [u64; 3] = [31337, 31338, 1337];

impl Config {
    /// What is valid but unwise, for `paywatch check` to say.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for chain in self.chains() {
            let c = chain.config;
            if c.rpc_http.urls().len() == 1 && !DEVNET_CHAIN_IDS.contains(&c.chain_id) {
                out.push(format!(
                    "chain {}: rpc_http has one endpoint ({}): configure two or more providers so an outage or rate \
                     limit of one does not stop the watcher",
                    chain.name,
                    crate::redact::redact(c.rpc_http.primary())
                ));
            }
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
        self.validate_chains()?;
        if self.server.heartbeat_secs == 0 {
            return Err(ConfigError::key("server.heartbeat_secs", "must be at least 1"));
        }
        if !(1..=3600).contains(&self.server.request_timeout_s) {
            return Err(ConfigError::key("server.request_timeout_s", "must be 1 to 3600"));
        }
        if let Some(bad) = self.server.trusted_proxies.iter().find(|p| super::parse_net(p).is_none()) {
            return Err(ConfigError::key(
                "server.trusted_proxies",
                format!("{bad:?} is neither an IP address nor a CIDR network (like \"10.0.0.0/8\")"),
            ));
        }
        if !(1..=300).contains(&self.server.header_read_timeout_s) {
            return Err(ConfigError::key("server.header_read_timeout_s", "must be 1 to 300"));
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
        for (name, price) in &self.prices {
            if let PriceConfig::Fixed { usd } = price {
                positive(&format!("prices.{name}.usd"), usd)?;
            }
            let book = self.token_book();
            if book.get(*name).is_none() && !book.entries().iter().any(|e| e.asset == name.as_str()) {
                return Err(ConfigError::key(&format!("prices.{name}"), "names no [tokens] entry nor a token's asset"));
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
            let secrets = std::iter::once(("webhooks.secret", &w.secret))
                .chain(w.previous_secrets.iter().map(|s| ("webhooks.previous_secrets", s)));
            for (key, secret) in secrets {
                // Never echo the value: it is a secret.
                crate::webhooks::sign::standard_key(secret.expose_secret())
                    .map_err(|why| ConfigError::key(key, why))?;
            }
            if !["standard", "paywatch"].contains(&w.signature_scheme.as_str()) {
                return Err(ConfigError::key(
                    "webhooks.signature_scheme",
                    "must be \"standard\" (Standard Webhooks) or \"paywatch\" (deprecated)",
                ));
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
        if let Some(key) = &self.refunds.private_key
            && key.expose_secret().trim().parse::<alloy::signers::local::PrivateKeySigner>().is_err()
        {
            return Err(ConfigError::key("refunds.private_key", "is not a 32-byte hex private key"));
        }
        let r = &self.refunds;
        if r.max_per_refund_usd.0 <= rust_decimal::Decimal::ZERO || r.max_per_day_usd.0 < r.max_per_refund_usd.0 {
            return Err(ConfigError::key(
                "refunds.max_per_day_usd",
                "and max_per_refund_usd must be positive, the day's at least one refund's",
            ));
        }
        if let Some(s) = &self.signer
            && s.private_key.expose_secret().parse::<alloy::signers::local::PrivateKeySigner>().is_err()
        {
            // Never echo the value: it is a key.
            return Err(ConfigError::key("signer.private_key", "is not a 32-byte hex private key"));
        }
        // One key per job: sweeps and refunds sending from one account would take each other's
        // nonces, and a refund could wait behind a sweep (or replace it).
        let address = |k: &secrecy::SecretString| {
            k.expose_secret().trim().parse::<alloy::signers::local::PrivateKeySigner>().ok().map(|s| s.address())
        };
        if let (Some(refunds), Some(signer)) = (&self.refunds.private_key, &self.signer)
            && address(refunds).is_some()
            && address(refunds) == address(&signer.private_key)
        {
            return Err(ConfigError::key(
                "refunds.private_key",
                "must not be the [signer] key (sweeps and refunds would compete for nonces)",
            ));
        }
        if self.relayer.is_none()
            && let Some((token, _)) = self.tokens.iter().find(|(_, t)| t.authorization.is_some())
        {
            return Err(ConfigError::key(
                &format!("tokens.{}.authorization", token.as_str()),
                "needs a [relayer] to submit the payers' authorizations",
            ));
        }
        if let Some(relayer) = &self.relayer {
            let Some(own) = address(&relayer.private_key) else {
                return Err(ConfigError::key("relayer.private_key", "is not a 32-byte hex private key"));
            };
            let others =
                [("[signer]", self.signer.as_ref().map(|s| &s.private_key)), ("[refunds]", r.private_key.as_ref())];
            if let Some((name, _)) = others.iter().find(|(_, k)| k.is_some_and(|k| address(k) == Some(own))) {
                return Err(ConfigError::key(
                    "relayer.private_key",
                    format!("must not be the {name} key (each job keeps its own nonces)"),
                ));
            }
            if relayer.max_fee_wei() == 0 {
                return Err(ConfigError::key("relayer.max_fee_gwei", "must be positive"));
            }
        }
        if r.claim_ttl_days == 0 {
            return Err(ConfigError::key("refunds.claim_ttl_days", "must be at least 1"));
        }
        if let Some(t) = &self.auth.admin_token
            && t.expose_secret().len() < 16
        {
            return Err(ConfigError::key("auth.admin_token", "must be at least 16 characters"));
        }
        Ok(())
    }

    /// Each chain's keys; chain names and ids unique; every token on a configured chain, once.
    fn validate_chains(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.chain.name {
            chain_name("chain.name", name)?;
        }
        let mut ids = std::collections::BTreeMap::new();
        for (i, chain) in self.chains().into_iter().enumerate() {
            let prefix = if i == 0 { "chain".to_string() } else { format!("chains.{}", chain.name) };
            if i > 0 {
                chain_name(&prefix, chain.name)?;
                if chain.config.name.as_deref().is_some_and(|n| n != chain.name) {
                    return Err(ConfigError::key(&format!("{prefix}.name"), "is the section's key; leave it out"));
                }
                if chain.name == self.first_chain().name {
                    return Err(ConfigError::key(&prefix, "has the first chain's name"));
                }
            }
            if let Some(other) = ids.insert(chain.chain_id(), prefix.clone()) {
                return Err(ConfigError::key(
                    &format!("{prefix}.chain_id"),
                    format!("{} is also [{other}]'s chain id", chain.chain_id()),
                ));
            }
            validate_chain(&prefix, chain.config)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (token, t) in &self.tokens {
            if let Some(name) = &t.chain
                && self.chain_named(name).is_none()
            {
                let known: Vec<&str> = self.chains().iter().map(|c| c.name).collect();
                return Err(ConfigError::key(
                    &format!("tokens.{token}.chain"),
                    format!("no chain named {name:?} has an RPC configured (chains: {})", known.join(", ")),
                ));
            }
            if let Some(asset) = &t.asset
                && (asset.is_empty() || !asset.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(ConfigError::key(&format!("tokens.{token}.asset"), "must be a name like USDT"));
            }
        }
        for e in self.token_book().entries() {
            if !seen.insert((e.chain_id, e.address)) {
                return Err(ConfigError::key(
                    &format!("tokens.{}.address", e.token),
                    format!("another token has this address on chain {}", e.chain),
                ));
            }
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

fn chain_name(key: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(ConfigError::key(key, "a chain's name is lowercase letters, digits, - and _"));
    }
    Ok(())
}

fn validate_chain(prefix: &str, chain: &super::ChainConfig) -> Result<(), ConfigError> {
    for url in chain.rpc_http.urls() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError::key(&format!("{prefix}.rpc_http"), "must be an http:// or https:// URL"));
        }
    }
    if let Some(ws) = &chain.rpc_ws
        && !(ws.starts_with("ws://") || ws.starts_with("wss://"))
    {
        return Err(ConfigError::key(&format!("{prefix}.rpc_ws"), "must be a ws:// or wss:// URL"));
    }
    if let Some(explorer) = &chain.explorer
        && !(explorer.starts_with("http://") || explorer.starts_with("https://"))
    {
        return Err(ConfigError::key(&format!("{prefix}.explorer"), "must be an http:// or https:// URL"));
    }
    crate::config::payment_link::PaymentLink::parse(&chain.payment_link)
        .map_err(|why| ConfigError::key(&format!("{prefix}.payment_link"), why))?;
    if let Some(rpc) = &chain.wallet_rpc
        && !(rpc.starts_with("https://") || rpc.starts_with("http://"))
    {
        return Err(ConfigError::key(&format!("{prefix}.wallet_rpc"), "must be an http:// or https:// URL"));
    }
    if let Some(icon) = &chain.icon
        && !((icon.starts_with('/') && !icon.starts_with("//")) || icon.starts_with("data:image/"))
    {
        return Err(ConfigError::key(
            &format!("{prefix}.icon"),
            "must be a path on this host (/...) or a data:image/ URI: the checkout page loads nothing from elsewhere",
        ));
    }
    if chain.display_name.as_deref().is_some_and(|n| n.trim().is_empty() || n.len() > 60) {
        return Err(ConfigError::key(&format!("{prefix}.display_name"), "must be 1 to 60 characters"));
    }
    if chain.native_symbol.is_empty() || chain.native_symbol.len() > 11 {
        return Err(ConfigError::key(&format!("{prefix}.native_symbol"), "must be 1 to 11 characters"));
    }
    if let Some(f) = &chain.finality
        && f.large_usd.0 <= Decimal::ZERO
    {
        return Err(ConfigError::key(&format!("{prefix}.finality.large_usd"), "must be more than 0"));
    }
    if chain.poll_interval_ms < 50 {
        return Err(ConfigError::key(&format!("{prefix}.poll_interval_ms"), "must be at least 50"));
    }
    Ok(())
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
