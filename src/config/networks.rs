//! The chains and what can be paid on each: `[chain]` (the first), `[chains.NAME]`, and each
//! `[tokens.X]` placed on its chain with its asset. Tokens of one asset are interchangeable
//! for paying, on any chain.

use alloy::primitives::{Address, U256};

use super::{ChainConfig, Config};
use crate::money::{PayMethod, Token, convert_units};

/// The first chain's name when `[chain] name` does not give one.
pub const FIRST_CHAIN: &str = "main";

/// A configured chain and its name.
#[derive(Debug, Clone, Copy)]
pub struct ChainRef<'a> {
    pub name: &'a str,
    pub config: &'a ChainConfig,
}

impl ChainRef<'_> {
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }
}

/// One token on one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    pub token: Token,
    pub chain: String,
    pub chain_id: u64,
    pub address: Address,
    pub decimals: u8,
    pub asset: String,
}

/// Every configured token with its chain and asset, in `[tokens]` order.
#[derive(Debug, Clone, Default)]
pub struct TokenBook {
    entries: Vec<TokenEntry>,
}

impl TokenBook {
    pub fn entries(&self) -> &[TokenEntry] {
        &self.entries
    }

    pub fn get(&self, token: Token) -> Option<&TokenEntry> {
        self.entries.iter().find(|e| e.token == token)
    }

    /// The token at `address` on chain `chain_id` (a Transfer log's emitter).
    pub fn at(&self, chain_id: u64, address: Address) -> Option<&TokenEntry> {
        self.entries.iter().find(|e| e.chain_id == chain_id && e.address == address)
    }

    /// The tokens that can pay an order priced in `token`: its asset's, on every chain.
    pub fn payable_with(&self, token: Token) -> impl Iterator<Item = &TokenEntry> {
        let asset = self.get(token).map(|e| e.asset.clone());
        self.entries.iter().filter(move |e| Some(&e.asset) == asset.as_ref())
    }

    /// What `amount` of the token at (`chain_id`, `token`) counts for an order priced in the
    /// token at (`order_chain`, `order_token`), in the order's base units: all of it in the
    /// order's own token, converted in another token of the same asset, None for another asset.
    pub fn counted_units(
        &self,
        (order_chain, order_token): (u64, Address),
        (chain_id, token): (u64, Address),
        amount: U256,
    ) -> Option<U256> {
        if (chain_id, token) == (order_chain, order_token) {
            return Some(amount);
        }
        let own = self.at(order_chain, order_token)?;
        let sent = self.at(chain_id, token)?;
        (own.asset == sent.asset).then(|| convert_units(amount, sent.decimals, own.decimals))
    }

    /// The tokens watched on chain `chain_id`.
    pub fn on_chain(&self, chain_id: u64) -> impl Iterator<Item = &TokenEntry> {
        self.entries.iter().filter(move |e| e.chain_id == chain_id)
    }
}

impl Config {
    /// Whether `token` is a pay method here: a configured token, or one of the seed's two
    /// (`ANKR_ERC20`, `USDT_ERC20`), which the seed's endpoints name even when not configured.
    pub fn knows_token(&self, token: Token) -> bool {
        self.tokens.contains_key(&token) || token == Token::AnkrErc20 || token == Token::UsdtErc20
    }

    /// The token pay methods, comma-separated, for an error message (the seed's two when none
    /// is configured).
    pub fn token_names(&self) -> String {
        let names: Vec<&str> = self.tokens.keys().map(|t| t.as_str()).collect();
        if names.is_empty() { "ANKR_ERC20, USDT_ERC20".to_string() } else { names.join(", ") }
    }

    /// `text` as a pay method of this config: `CREDIT_CARD` or a token it knows.
    pub fn pay_method(&self, text: &str) -> Option<PayMethod> {
        match PayMethod::known(text) {
            Ok(PayMethod::Token(t)) if !self.knows_token(t) => None,
            known => known.ok(),
        }
    }

    /// The first chain, then `[chains]` by name.
    pub fn chains(&self) -> Vec<ChainRef<'_>> {
        let first = ChainRef { name: self.chain.name.as_deref().unwrap_or(FIRST_CHAIN), config: &self.chain };
        std::iter::once(first)
            .chain(self.chains.iter().map(|(name, config)| ChainRef { name: name.as_str(), config }))
            .collect()
    }

    pub fn chain_ids(&self) -> Vec<u64> {
        self.chains().iter().map(|c| c.chain_id()).collect()
    }

    pub fn first_chain(&self) -> ChainRef<'_> {
        self.chains()[0]
    }

    pub fn chain_named(&self, name: &str) -> Option<ChainRef<'_>> {
        self.chains().into_iter().find(|c| c.name == name)
    }

    pub fn chain_by_id(&self, chain_id: u64) -> Option<ChainRef<'_>> {
        self.chains().into_iter().find(|c| c.chain_id() == chain_id)
    }

    /// The chains `--chain NAME` selects: that one, or every chain.
    pub fn select_chains(&self, name: Option<&str>) -> Result<Vec<ChainRef<'_>>, super::ConfigError> {
        match name {
            None => Ok(self.chains()),
            Some(n) => self.chain_named(n).map(|c| vec![c]).ok_or_else(|| {
                let known: Vec<&str> = self.chains().iter().map(|c| c.name).collect();
                super::ConfigError(format!("no chain named {n:?} (configured: {})", known.join(", ")))
            }),
        }
    }

    /// Every token with its chain and asset (validated tokens name a configured chain).
    pub fn token_book(&self) -> &TokenBook {
        self.book.get_or_init(|| {
            let entries = self
                .tokens
                .iter()
                .filter_map(|(token, t)| {
                    let chain = match &t.chain {
                        None => self.first_chain(),
                        Some(name) => self.chain_named(name)?,
                    };
                    Some(TokenEntry {
                        token: *token,
                        chain: chain.name.to_string(),
                        chain_id: chain.chain_id(),
                        address: t.address,
                        decimals: t.decimals,
                        asset: t.asset.clone().unwrap_or_else(|| token.default_asset().to_string()),
                    })
                })
                .collect();
            TokenBook { entries }
        })
    }
}
