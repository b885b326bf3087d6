//! `paywatch contracts deploy`: the deposit factory, and for devnets the mock tokens and feed.

use std::collections::BTreeMap;

use alloy::primitives::{Address, I256, U256};
use alloy::providers::DynProvider;
use serde::Serialize;

use super::contracts::{DepositFactory, MockERC20, MockPriceFeed, MockUSDT};
use crate::money::Token;

/// What `contracts deploy` prints (and what devnet writes into devnet.json).
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub factory: Address,
    pub tokens: BTreeMap<Token, Address>,
    pub price_feed: Option<Address>,
}

/// The mock feed's decimals and first answer: 0.025 USD per ANKR, with 8 decimals as Chainlink's USD feeds.
pub const MOCK_FEED_DECIMALS: u8 = 8;
pub const MOCK_FEED_ANSWER: i64 = 2_500_000;

pub async fn deploy_factory(provider: &DynProvider, treasury: Address) -> alloy::contract::Result<Address> {
    let factory = DepositFactory::deploy(provider.clone(), treasury).await?;
    Ok(*factory.address())
}

/// The factory, then (with `mocks`) an 18-decimal ANKR-like token, a no-return 6-decimal
/// USDT-like token and an ANKR/USD feed.
pub async fn deploy_all(provider: &DynProvider, treasury: Address, mocks: bool) -> alloy::contract::Result<Deployment> {
    let factory = deploy_factory(provider, treasury).await?;
    let mut tokens = BTreeMap::new();
    let mut price_feed = None;
    if mocks {
        let ankr = MockERC20::deploy(provider.clone(), "Ankr (mock)".into(), "ANKR".into(), 18).await?;
        tokens.insert(Token::AnkrErc20, *ankr.address());
        let usdt = MockUSDT::deploy(provider.clone()).await?;
        tokens.insert(Token::UsdtErc20, *usdt.address());
        let feed = MockPriceFeed::deploy(
            provider.clone(),
            MOCK_FEED_DECIMALS,
            "ANKR / USD".into(),
            I256::try_from(MOCK_FEED_ANSWER).expect("small constant fits"),
        )
        .await?;
        price_feed = Some(*feed.address());
    }
    Ok(Deployment { factory, tokens, price_feed })
}

/// Mints mock tokens (devnet only: the mocks let anyone mint).
pub async fn mint_mock(
    provider: &DynProvider,
    token: Token,
    address: Address,
    to: Address,
    amount: U256,
) -> alloy::contract::Result<()> {
    match token {
        Token::AnkrErc20 => {
            MockERC20::new(address, provider.clone()).mint(to, amount).send().await?.get_receipt().await?;
        }
        Token::UsdtErc20 => {
            MockUSDT::new(address, provider.clone()).mint(to, amount).send().await?.get_receipt().await?;
        }
    }
    Ok(())
}
