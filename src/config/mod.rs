//! The configuration: embedded defaults, then the TOML file, then `PAYWATCH__SECTION__KEY`
//! environment variables. Every section denies unknown keys, so a typo is an error, and
//! [`Config::load`] validates what serde cannot check, naming the offending key.

mod decimal;
pub mod gasless;
mod load;
mod networks;
pub mod payment_link;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use alloy::primitives::Address;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

pub use decimal::ExactDecimal;
pub use load::{ConfigError, load_file};
pub use networks::{ChainRef, FIRST_CHAIN, TokenBook, TokenEntry};

use crate::money::Token;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub database: DatabaseConfig,
    /// The first chain.
    pub chain: ChainConfig,
    /// More EVM chains, by name, watched beside the first.
    #[serde(default)]
    pub chains: BTreeMap<String, ChainConfig>,
    #[serde(default)]
    pub tokens: BTreeMap<Token, TokenConfig>,
    pub deposits: Option<DepositsConfig>,
    #[serde(default)]
    pub prices: BTreeMap<Token, PriceConfig>,
    #[serde(default)]
    pub orders: OrdersConfig,
    #[serde(default)]
    pub pricing: PricingConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub cards: CardsConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub jobs: JobsConfig,
    pub webhooks: Option<WebhooksConfig>,
    pub signer: Option<SignerConfig>,
    #[serde(default)]
    pub refunds: RefundsConfig,
    /// Gasless payments' relayer: submits payers' signed authorizations and pays their gas.
    pub relayer: Option<gasless::RelayerConfig>,
    /// Every (chain, token) pair, built once from `chain`, `chains` and `tokens`.
    #[serde(skip)]
    book: std::sync::OnceLock<TokenBook>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How often a live status stream sends a heartbeat comment while nothing changes.
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    /// A request running longer is answered 408; an Idempotency-Key claim is leased for this
    /// plus 5 seconds, after which a retry may take it over.
    #[serde(default = "default_request_timeout_s")]
    pub request_timeout_s: u64,
    /// Open event streams at most, in all (more answer 503).
    #[serde(default = "default_max_streams")]
    pub max_streams: u64,
    /// Open event streams at most for one order.
    #[serde(default = "default_max_streams_per_order")]
    pub max_streams_per_order: u64,
    /// Open event streams at most from one client address (behind a reverse proxy every
    /// client has the proxy's address: raise it there).
    #[serde(default = "default_max_streams_per_client")]
    pub max_streams_per_client: u64,
    /// Reverse proxies (addresses or CIDRs, e.g. "10.0.0.0/8") whose `Forwarded` or
    /// `X-Forwarded-For` header names the client: the per-client stream cap and the slowing of
    /// failed sign-ins count that client, not the proxy. Empty: the headers are ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The one header the trusted proxies write: `x-forwarded-for` (nginx's
    /// `$proxy_add_x_forwarded_for`, Caddy, most load balancers) or `forwarded` (RFC 7239).
    /// The other is ignored, since a proxy passes a client's own copy of it through.
    #[serde(default)]
    pub forwarded_header: ForwardedHeader,
    /// A connection that has not sent a whole request header within this is closed.
    #[serde(default = "default_header_read_timeout_s")]
    pub header_read_timeout_s: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            heartbeat_secs: default_heartbeat_secs(),
            request_timeout_s: default_request_timeout_s(),
            max_streams: default_max_streams(),
            max_streams_per_order: default_max_streams_per_order(),
            max_streams_per_client: default_max_streams_per_client(),
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
            header_read_timeout_s: default_header_read_timeout_s(),
        }
    }
}

/// Which header names the client behind a trusted proxy (`[server] forwarded_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl ServerConfig {
    /// `trusted_proxies` parsed (a bare address is a one-address network); `validate` has
    /// refused a config where one does not parse.
    pub fn trusted_proxy_nets(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies.iter().filter_map(|p| parse_net(p)).collect()
    }

    /// How long an in-flight Idempotency-Key claim holds its key.
    pub fn idempotency_lease_secs(&self) -> i64 {
        self.request_timeout_s as i64 + 5
    }
}

fn default_request_timeout_s() -> u64 {
    30
}

fn default_max_streams() -> u64 {
    10_000
}

fn default_max_streams_per_order() -> u64 {
    20
}

fn default_max_streams_per_client() -> u64 {
    1_000
}

/// An address or a CIDR network.
pub(crate) fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn default_header_read_timeout_s() -> u64 {
    10
}

fn default_heartbeat_secs() -> u64 {
    15
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// The URL may carry a password, so it is a secret.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    #[serde(default = "default_database_url")]
    pub url: SecretString,
    /// Connections in the pool; unset: 4 on SQLite (one writer at a time anyway), 10 on PostgreSQL.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: default_database_url(), max_connections: None }
    }
}

fn default_database_url() -> SecretString {
    SecretString::from("sqlite://data/paywatch.db")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// The first chain's name (`[chains.NAME]` are named by their key); default "main".
    pub name: Option<String>,
    pub chain_id: u64,
    /// One URL or a list: calls go to the best answering one (see `chain::rpc`).
    pub rpc_http: RpcUrls,
    /// How the endpoints route a JSON-RPC batch: "any" (default: each call may reach its own
    /// backend, as aggregators and load balancers do) or "one_node" (the operator's own node:
    /// the watcher may believe one batch's two headers and logs for a whole range).
    #[serde(default)]
    pub rpc_batches: RpcBatches,
    pub rpc_ws: Option<String>,
    #[serde(default = "default_confirmations")]
    pub confirmations: Confirmations,
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    #[serde(default)]
    pub start_block: u64,
    /// More certainty for large orders.
    pub finality: Option<FinalityConfig>,
    /// A block explorer's base URL (`https://etherscan.io`): the console and the checkout page
    /// link transactions and addresses to `{explorer}/tx/{hash}` and `{explorer}/address/{address}`.
    pub explorer: Option<String>,
    /// The network's name as payers know it ("Ethereum", "Arbitrum One"), shown on the checkout
    /// page and given to wallets; default: the chain's config name.
    pub display_name: Option<String>,
    /// A small picture of the network for the checkout page: a path paywatch's host serves
    /// (`/static/arbitrum.svg`) or a `data:image/...` URI (the page loads nothing from elsewhere).
    pub icon: Option<String>,
    /// The link (and QR code) payers open in their wallet: "eip681" (default), "address", or a
    /// template (see `config::payment_link`).
    #[serde(default = "default_payment_link")]
    pub payment_link: String,
    /// A public RPC URL wallets may add the network with (`wallet_addEthereumChain`); never
    /// `rpc_http`, which usually carries a provider key. Without it a wallet that does not know
    /// the network is asked to add it by hand.
    pub wallet_rpc: Option<String>,
    /// The network's native currency symbol, for adding it to a wallet; default "ETH".
    #[serde(default = "default_native_symbol")]
    pub native_symbol: String,
    /// The chain's name in x402 (`base`, `base-sepolia`, `polygon`, ...): x402 clients may pay
    /// its orders' tokens that take authorizations (`GET /pay/{order_id}/x402`).
    pub x402_network: Option<String>,
    /// The most the gasless relayer pays per gas on this chain, in gwei (default: `[relayer]
    /// max_fee_gwei`).
    pub relayer_max_fee_gwei: Option<decimal::ExactDecimal>,
}

fn default_payment_link() -> String {
    "eip681".into()
}

fn default_native_symbol() -> String {
    "ETH".into()
}

/// Orders worth at least `large_usd` wait for `large` (a tag or a larger count) instead of
/// the chain's `confirmations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalityConfig {
    pub large_usd: ExactDecimal,
    pub large: Confirmations,
}

fn default_confirmations() -> Confirmations {
    Confirmations::Blocks(12)
}

fn default_poll_interval_ms() -> u64 {
    2000
}

/// RPC endpoints. A URL usually carries the provider's API key, so `Debug` shows scheme and
/// host only.
#[derive(Clone, PartialEq, Eq)]
pub struct RpcUrls(pub Vec<String>);

impl RpcUrls {
    pub fn urls(&self) -> &[String] {
        &self.0
    }
    /// The endpoint that signs and sends transactions.
    pub fn primary(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or_default()
    }
}

impl std::fmt::Debug for RpcUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::redact::redact_all(&self.0))
    }
}

impl<'de> Deserialize<'de> for RpcUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let urls = match Raw::deserialize(d)? {
            Raw::One(u) => vec![u],
            Raw::Many(v) => v,
        };
        if urls.is_empty() {
            return Err(serde::de::Error::custom("needs at least one URL"));
        }
        Ok(Self(urls))
    }
}

/// What the operator declares of how `rpc_http` routes the calls of one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcBatches {
    /// Each call may reach its own backend: every block's header is read (`completeness`).
    #[default]
    Any,
    /// Every call of a batch reaches one node: a range's two end headers are enough (`one_node`).
    OneNode,
}

/// How deep a transfer must be to count: a block count, or the node's `safe` or `finalized` tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmations {
    Blocks(u64),
    Safe,
    Finalized,
}

impl<'de> Deserialize<'de> for Confirmations {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Blocks(u64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Blocks(0) => Err(serde::de::Error::custom("must be at least 1")),
            Raw::Blocks(n) => Ok(Self::Blocks(n)),
            Raw::Word(w) if w == "finalized" => Ok(Self::Finalized),
            Raw::Word(w) if w == "safe" => Ok(Self::Safe),
            Raw::Word(w) => match w.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Self::Blocks(n)),
                _ => Err(serde::de::Error::custom(format!(
                    "expected a block count of at least 1, \"safe\" or \"finalized\", got {w:?}"
                ))),
            },
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The chain the token lives on (a `[chains.NAME]` name); omitted: the first chain.
    pub chain: Option<String>,
    pub address: Address,
    pub decimals: u8,
    /// What the token is worth (tokens of one asset pay the same orders); omitted: the name
    /// before its first `_` (`USDT_ERC20` → `USDT`).
    pub asset: Option<String>,
    /// Gasless payments: `"eip3009"` when the token has `transferWithAuthorization`.
    #[serde(default)]
    pub authorization: Option<gasless::Authorization>,
    /// Its EIP-712 domain's name and version, when not read from the contract.
    #[serde(default)]
    pub eip712: gasless::Eip712Names,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositsConfig {
    pub factory: Address,
    pub treasury: Address,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "source", rename_all = "lowercase")]
pub enum PriceConfig {
    /// USD per whole token, fixed by the operator.
    Fixed { usd: ExactDecimal },
    /// A Chainlink AggregatorV3 proxy read on chain; answers older than `max_age_s` are refused.
    Chainlink {
        feed: Address,
        #[serde(default = "default_max_age_s")]
        max_age_s: u64,
    },
}

fn default_max_age_s() -> u64 {
    86_400
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    #[serde(default = "default_ttl_minutes")]
    pub ttl_minutes: u64,
    #[serde(default = "default_late_window_hours")]
    pub late_window_hours: u64,
    #[serde(default)]
    pub underpayment_tolerance: ExactDecimal,
}

impl OrdersConfig {
    /// The late window in seconds (payments within it after expiry still credit).
    pub fn late_window_secs(&self) -> i64 {
        (self.late_window_hours * 3600) as i64
    }
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            ttl_minutes: default_ttl_minutes(),
            late_window_hours: default_late_window_hours(),
            underpayment_tolerance: ExactDecimal::default(),
        }
    }
}

fn default_ttl_minutes() -> u64 {
    60
}

fn default_late_window_hours() -> u64 {
    24
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    #[serde(default)]
    pub default: ResourcePrices,
    /// Per-cluster tables, keyed by cluster id.
    #[serde(default)]
    pub clusters: BTreeMap<String, ResourcePrices>,
    /// Flat monthly fee per chart name.
    #[serde(default)]
    pub charts: BTreeMap<String, ExactDecimal>,
    /// Months (1..12) → fraction off.
    #[serde(default)]
    pub discounts: BTreeMap<String, ExactDecimal>,
}

/// USD per month for one core, one GiB of memory and one GiB of storage.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePrices {
    #[serde(default)]
    pub cpu_per_core_month: ExactDecimal,
    #[serde(default)]
    pub mem_per_gib_month: ExactDecimal,
    #[serde(default)]
    pub storage_per_gib_month: ExactDecimal,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub admin_token: Option<SecretString>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardsConfig {
    #[serde(default = "default_processor")]
    pub processor: CardProcessorKind,
    /// A card payment still pending this long (its request timed out, its client left, the
    /// process died) is resolved by asking the processor. Must exceed the processor's answer time.
    #[serde(default = "default_recover_after_s")]
    pub recover_after_s: u64,
}

impl Default for CardsConfig {
    fn default() -> Self {
        Self { processor: default_processor(), recover_after_s: default_recover_after_s() }
    }
}

fn default_recover_after_s() -> u64 {
    60
}

fn default_processor() -> CardProcessorKind {
    CardProcessorKind::Sandbox
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardProcessorKind {
    /// The built-in test processor that answers like Stripe's test payment methods.
    Sandbox,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_markup")]
    pub markup: ExactDecimal,
    #[serde(default = "default_discount")]
    pub discount: ExactDecimal,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self { currency: default_currency(), markup: default_markup(), discount: default_discount() }
    }
}

fn default_currency() -> String {
    "USD".into()
}

fn default_markup() -> ExactDecimal {
    ExactDecimal(rust_decimal::Decimal::ONE)
}

fn default_discount() -> ExactDecimal {
    ExactDecimal(rust_decimal::Decimal::ONE)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    #[serde(default = "default_expiring_notice_days")]
    pub expiring_notice_days: u64,
    #[serde(default = "default_sweep_batch")]
    pub sweep_batch: u64,
    /// Delivered webhook events and superseded order views of settled orders older than this
    /// are compacted (hourly), so those tables follow open business, not history.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            expiring_notice_days: default_expiring_notice_days(),
            sweep_batch: default_sweep_batch(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> u64 {
    30
}

fn default_expiring_notice_days() -> u64 {
    7
}

fn default_sweep_batch() -> u64 {
    50
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub url: String,
    /// The signing secret: `whsec_<base64>` (Standard Webhooks) or any string of 16+ bytes.
    pub secret: SecretString,
    /// Secrets being rotated out: deliveries are signed with these too until they are removed.
    #[serde(default)]
    pub previous_secrets: Vec<SecretString>,
    /// "standard" (Standard Webhooks headers, the default) or "paywatch" (the deprecated
    /// `Paywatch-Signature` header, kept for one release).
    #[serde(default = "default_signature_scheme")]
    pub signature_scheme: String,
    /// Attempts per event before it is marked failed (redeliverable from the admin API).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay; each later one doubles (with jitter), up to an hour.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How often the outbox is read for due events.
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_interval_ms: u64,
}

fn default_signature_scheme() -> String {
    "standard".into()
}

impl WebhooksConfig {
    /// The HMAC keys deliveries are signed with: the secret's, then the previous ones'.
    pub fn signing_keys(&self) -> Result<Vec<Vec<u8>>, String> {
        std::iter::once(&self.secret)
            .chain(&self.previous_secrets)
            .map(|s| crate::webhooks::sign::standard_key(secrecy::ExposeSecret::expose_secret(s)))
            .collect()
    }
}

fn default_max_attempts() -> u32 {
    16
}

fn default_retry_base_ms() -> u64 {
    5_000
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_webhook_poll_ms() -> u64 {
    1_000
}

/// Refunds of stray funds, sent on chain once the payer claimed them and they are approved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundsConfig {
    /// The refund wallet: a key holding a float of each token, apart from the deposit factory
    /// and its treasury. Without it, paywatch prepares each transaction for an external signer
    /// (a Safe) and records the hash the operator gives back.
    pub private_key: Option<SecretString>,
    /// Claims worth at most this many USD are sent without an operator's approval.
    #[serde(default)]
    pub auto_approve_usd: decimal::ExactDecimal,
    #[serde(default = "default_max_per_refund_usd")]
    pub max_per_refund_usd: decimal::ExactDecimal,
    /// Refunds approved within any 24 hours may not add up to more.
    #[serde(default = "default_max_per_day_usd")]
    pub max_per_day_usd: decimal::ExactDecimal,
    /// A claim link not used within this many days (by the chain's clock) expires: the refund
    /// ends and its fund is open again, so an old leaked link pays nobody.
    #[serde(default = "default_claim_ttl_days")]
    pub claim_ttl_days: u32,
    /// Without a refund key: the Safe (or account) the external signer sends refunds from. When
    /// set, a recorded hash must move the refund's tokens from it.
    #[serde(default)]
    pub external_sender: Option<alloy::primitives::Address>,
    /// A refund wallet's transaction with no receipt this long is signed again with the same
    /// nonce and higher fees (at least 1/8 more); whichever of them is mined counts, once.
    #[serde(default = "default_bump_after_secs")]
    pub bump_after_secs: u64,
}

impl Default for RefundsConfig {
    fn default() -> Self {
        Self {
            private_key: None,
            auto_approve_usd: decimal::ExactDecimal::default(),
            max_per_refund_usd: default_max_per_refund_usd(),
            max_per_day_usd: default_max_per_day_usd(),
            claim_ttl_days: default_claim_ttl_days(),
            external_sender: None,
            bump_after_secs: default_bump_after_secs(),
        }
    }
}

fn default_max_per_refund_usd() -> decimal::ExactDecimal {
    decimal::ExactDecimal(rust_decimal::Decimal::from(500))
}

fn default_bump_after_secs() -> u64 {
    180
}

fn default_claim_ttl_days() -> u32 {
    30
}

fn default_max_per_day_usd() -> decimal::ExactDecimal {
    decimal::ExactDecimal(rust_decimal::Decimal::from(5000))
}

impl RefundsConfig {
    /// The refund wallet's key, if one is configured (checked when the config loaded).
    pub fn signer(&self) -> Option<alloy::signers::local::PrivateKeySigner> {
        self.private_key.as_ref().and_then(|k| k.expose_secret().trim().parse().ok())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerConfig {
    pub private_key: SecretString,
}

impl Config {
    /// Loads and validates the file at `path` with `PAYWATCH__` overrides.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let config = load_file(path)?;
        config.validate()?;
        Ok(config)
    }

    pub fn database_url(&self) -> &str {
        secrecy::ExposeSecret::expose_secret(&self.database.url)
    }
}
