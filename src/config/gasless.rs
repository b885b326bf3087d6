//! Gasless payments: which tokens take a signed authorization (`[tokens.X] authorization`) and
//! the relayer that submits it and pays its gas (`[relayer]`).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::decimal::ExactDecimal;

/// How a token moves on a payer's signature alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authorization {
    /// EIP-3009 `transferWithAuthorization` (USDT0, USDC; not Ethereum's USDT).
    Eip3009,
}

/// The token's EIP-712 domain as `[tokens.X]` gives it; a part left out is read from the
/// contract (`name()`, `version()`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eip712Names {
    pub name: Option<String>,
    pub version: Option<String>,
}

/// The relayer: its own key (not the sweep signer's, not the refund wallet's: each job keeps its
/// own nonces), a cap on the fee it pays, and the balance below which it stops relaying.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayerConfig {
    pub private_key: SecretString,
    /// The highest fee per gas it pays, in gwei; a payment the chain prices higher waits.
    #[serde(default = "default_max_fee_gwei")]
    pub max_fee_gwei: ExactDecimal,
    /// In the chain's coin: below it the relayer takes no payment and `/readyz` says why.
    #[serde(default = "default_min_balance")]
    pub min_balance: ExactDecimal,
}

fn gwei_to_wei(gwei: ExactDecimal) -> u128 {
    let wei = gwei.0 * rust_decimal::Decimal::from(1_000_000_000u64);
    rust_decimal::prelude::ToPrimitive::to_u128(&wei.trunc()).unwrap_or(0)
}

fn default_max_fee_gwei() -> ExactDecimal {
    ExactDecimal(rust_decimal::Decimal::from(200))
}

fn default_min_balance() -> ExactDecimal {
    ExactDecimal(rust_decimal::Decimal::new(1, 3))
}

impl RelayerConfig {
    /// The relayer's key (checked when the config loaded).
    pub fn signer(&self) -> Option<alloy::signers::local::PrivateKeySigner> {
        self.private_key.expose_secret().trim().parse().ok()
    }

    /// `max_fee_gwei` in wei.
    pub fn max_fee_wei(&self) -> u128 {
        gwei_to_wei(self.max_fee_gwei)
    }

    /// The cap on `chain`: its `relayer_max_fee_gwei`, else `max_fee_gwei`; in wei.
    pub fn max_fee_wei_on(&self, chain: &super::ChainConfig) -> u128 {
        chain.relayer_max_fee_gwei.map_or_else(|| self.max_fee_wei(), gwei_to_wei)
    }

    /// `min_balance` in wei.
    pub fn min_balance_wei(&self) -> alloy::primitives::U256 {
        crate::money::to_base_units(self.min_balance.0, 18).unwrap_or_default()
    }
}

impl super::Config {
    /// Whether the token at (`chain_id`, `token`) takes authorizations.
    pub fn takes_authorizations(&self, chain_id: u64, token: alloy::primitives::Address) -> bool {
        self.token_book()
            .at(chain_id, token)
            .and_then(|e| self.tokens.get(&e.token))
            .is_some_and(|t| t.authorization == Some(Authorization::Eip3009))
    }

    /// The x402 network name an x402 client pays (`chain_id`, `token`) under: its chain's
    /// `x402_network`, when the token takes authorizations.
    pub fn x402_network(&self, chain_id: u64, token: alloy::primitives::Address) -> Option<String> {
        let network = self.chain_by_id(chain_id)?.config.x402_network.clone()?;
        self.takes_authorizations(chain_id, token).then_some(network)
    }
}
