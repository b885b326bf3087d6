//! `paywatch contracts deploy`: the deposit factory, and for devnets the mock tokens and feed.
//! The factory goes through the deterministic deployment proxy (CREATE2 with a zero salt), so
//! with the same treasury it has the same address on every chain, and with it every order's
//! deposit address.

use std::collections::BTreeMap;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, I256, U256, address, keccak256};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolConstructor;
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

/// The deterministic deployment proxy (Arachnid's), at this address on anvil and most chains:
/// called with `salt ++ init code`, it CREATE2s the code.
pub const DETERMINISTIC_DEPLOYER: Address = address!("4e59b44847b379578588920cA78FbF26c0B4956C");

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Contract(#[from] alloy::contract::Error),
    #[error("rpc: {0}")]
    Rpc(String),
    #[error(
        "the deterministic deployment proxy {DETERMINISTIC_DEPLOYER} is not on this chain: deploy it first \
         (https://github.com/Arachnid/deterministic-deployment-proxy)"
    )]
    NoProxy,
    #[error("the factory's deployment went through but {0} holds no code (reverted?)")]
    NoCode(Address),
}

fn rpc_error(e: impl std::fmt::Display) -> DeployError {
    DeployError::Rpc(super::rpc::describe(&e.to_string()))
}

/// The factory's creation code with its constructor argument.
fn factory_init_code(treasury: Address) -> Vec<u8> {
    let mut code = DepositFactory::BYTECODE.to_vec();
    code.extend(DepositFactory::constructorCall { treasury_: treasury }.abi_encode());
    code
}

/// Where the factory for `treasury` is (or will be) on any chain: computed, not asked.
pub fn factory_address(treasury: Address) -> Address {
    DETERMINISTIC_DEPLOYER.create2(B256::ZERO, keccak256(factory_init_code(treasury)))
}

/// True when the chain holds code at `address`.
pub async fn has_code(provider: &DynProvider, address: Address) -> Result<bool, DeployError> {
    Ok(!provider.get_code_at(address).await.map_err(rpc_error)?.is_empty())
}

/// The treasury a deployed factory sends sweeps to (fixed at its deployment), None where
/// `factory` holds no code.
pub async fn factory_treasury(provider: &DynProvider, factory: Address) -> Result<Option<Address>, DeployError> {
    if !has_code(provider, factory).await? {
        return Ok(None);
    }
    let treasury = crate::chain::contracts::DepositFactory::new(factory, provider.clone())
        .treasury()
        .call()
        .await
        .map_err(|e| DeployError::Rpc(crate::chain::rpc::describe(&e.to_string())))?;
    Ok(Some(treasury))
}

/// `[deposits] treasury` must be where the factory sends sweeps: a config naming another one
/// would show an address the money never goes to. Checked on the chain, both addresses named.
pub async fn check_treasury(provider: &DynProvider, deposits: &crate::config::DepositsConfig) -> anyhow::Result<()> {
    if let Some(actual) = factory_treasury(provider, deposits.factory).await? {
        anyhow::ensure!(
            actual == deposits.treasury,
            "deposits.treasury is {} but the factory at {} sends sweeps to {actual} (its treasury is fixed at \
             deployment: set deposits.treasury to it, or deploy a factory for the new treasury)",
            deposits.treasury,
            deposits.factory
        );
    }
    Ok(())
}

/// Deploys the factory through the proxy (nothing to do where it already is); its address is
/// [`factory_address`] on every chain.
pub async fn deploy_factory(provider: &DynProvider, treasury: Address) -> Result<Address, DeployError> {
    let factory = factory_address(treasury);
    if has_code(provider, factory).await? {
        return Ok(factory);
    }
    if !has_code(provider, DETERMINISTIC_DEPLOYER).await? {
        return Err(DeployError::NoProxy);
    }
    let mut data = B256::ZERO.to_vec();
    data.extend(factory_init_code(treasury));
    let tx =
        alloy::rpc::types::TransactionRequest::default().with_to(DETERMINISTIC_DEPLOYER).with_input(Bytes::from(data));
    let receipt = provider.send_transaction(tx).await.map_err(rpc_error)?.get_receipt().await.map_err(rpc_error)?;
    if !receipt.status() || !has_code(provider, factory).await? {
        return Err(DeployError::NoCode(factory));
    }
    Ok(factory)
}

/// A 6-decimal USDT-like mock (its `transfer` returns nothing), for devnets.
pub async fn deploy_mock_usdt(provider: &DynProvider) -> alloy::contract::Result<Address> {
    Ok(*MockUSDT::deploy(provider.clone()).await?.address())
}

/// A USDT0-like token (6 decimals, EIP-3009 and EIP-2612 under its own EIP-712 domain).
pub async fn deploy_mock_usdt0(provider: &DynProvider) -> alloy::contract::Result<Address> {
    Ok(*crate::chain::contracts::MockUSDT0::deploy(provider.clone()).await?.address())
}

/// The factory, then (with `mocks`) an 18-decimal ANKR-like token, a no-return 6-decimal
/// USDT-like token and an ANKR/USD feed.
pub async fn deploy_all(provider: &DynProvider, treasury: Address, mocks: bool) -> Result<Deployment, DeployError> {
    let factory = deploy_factory(provider, treasury).await?;
    let mut tokens = BTreeMap::new();
    let mut price_feed = None;
    if mocks {
        let ankr = MockERC20::deploy(provider.clone(), "Ankr (mock)".into(), "ANKR".into(), 18).await?;
        tokens.insert(Token::AnkrErc20, *ankr.address());
        tokens.insert(Token::UsdtErc20, deploy_mock_usdt(provider).await?);
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

/// Mints mock tokens (devnet only: the mocks let anyone mint; both mocks' `mint` has one shape).
pub async fn mint_mock(
    provider: &DynProvider,
    _token: Token,
    address: Address,
    to: Address,
    amount: U256,
) -> alloy::contract::Result<()> {
    MockERC20::new(address, provider.clone()).mint(to, amount).send().await?.get_receipt().await?;
    Ok(())
}

/// The decimals of the devnet's mock for a token: 6 for USDT-like ones, else 18.
pub fn mock_decimals(token: Token) -> u8 {
    if token.default_asset().starts_with("USDT") { 6 } else { 18 }
}
