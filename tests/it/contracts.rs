//! The deposit contracts on a real anvil: off-chain CREATE2 addresses, and sweeping both tokens.

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use paywatch::chain::contracts::{DepositFactory, DepositForwarder};
use paywatch::chain::deploy::mint_mock;
use paywatch::chain::deposit_address::{DepositAddresses, salt_for_order};
use paywatch::chain::sweep::sweep_batch;
use paywatch::money::Token;

use crate::support::chain::Mined;
use crate::support::chain::TestChain;

#[tokio::test]
async fn the_off_chain_deposit_address_is_the_factorys_answer_and_where_the_forwarder_lands() {
    let chain = TestChain::start().await;
    let factory_address = chain.deployment.factory;
    let factory = DepositFactory::new(factory_address, chain.deployer.clone());
    let off_chain = DepositAddresses::new(factory_address);
    assert_eq!(
        factory.implementation().call().await.unwrap(),
        factory_address.create(1),
        "the implementation sits at the factory's first CREATE address"
    );
    for order_id in ["order-1", "order-2", "5f0c6f52-8a57-4a3e-9d1c-2b9a7f0e4c11"] {
        let salt = salt_for_order(order_id);
        let predicted = off_chain.address_of(salt);
        assert_eq!(factory.addressOf(salt).call().await.unwrap(), predicted, "addressOf({order_id})");
        assert!(chain.deployer.get_code_at(predicted).await.unwrap().is_empty(), "nothing deployed yet");
        factory.deployForwarder(salt).mined().await;
        let code = chain.deployer.get_code_at(predicted).await.unwrap();
        assert!(!code.is_empty(), "the forwarder for {order_id} landed at the predicted address");
    }
}

/// Funds `count` deposit addresses with different amounts of `token`; returns their salts and total.
async fn fund_deposits(chain: &TestChain, token: Token, count: u64, unit: U256) -> (Vec<B256>, U256) {
    let addresses = DepositAddresses::new(chain.deployment.factory);
    let mut salts = Vec::new();
    let mut total = U256::ZERO;
    for i in 0..count {
        let salt = salt_for_order(&format!("{token}-{i}"));
        let amount = unit * U256::from(i + 1) + U256::from(i); // odd amounts, down to the base unit
        mint_mock(&chain.deployer, token, chain.token(token), addresses.address_of(salt), amount).await.unwrap();
        salts.push(salt);
        total += amount;
    }
    (salts, total)
}

async fn sweeps_full_balances_in_one_transaction(token: Token, unit: U256) {
    let chain = TestChain::start().await;
    let token_address = chain.token(token);
    let addresses = DepositAddresses::new(chain.deployment.factory);
    let (salts, total) = fund_deposits(&chain, token, 6, unit).await;
    let before = chain.balance_of(token_address, chain.treasury).await;

    let block_before = chain.deployer.get_block_number().await.unwrap();
    let receipt = sweep_batch(&chain.deployer, chain.deployment.factory, token_address, salts.clone()).await.unwrap();
    let block_after = chain.deployer.get_block_number().await.unwrap();
    assert_eq!(block_after, block_before + 1, "one transaction (one block on automine) swept all six");
    assert_eq!(receipt.total, total, "the Swept events add up to what was deposited");
    assert_eq!(chain.balance_of(token_address, chain.treasury).await - before, total);
    for salt in &salts {
        assert_eq!(chain.balance_of(token_address, addresses.address_of(*salt)).await, U256::ZERO);
    }

    // Sweeping again moves nothing and does not fail on already-deployed forwarders.
    let again = sweep_batch(&chain.deployer, chain.deployment.factory, token_address, salts).await.unwrap();
    assert_eq!(again.total, U256::ZERO);
    assert_eq!(chain.balance_of(token_address, chain.treasury).await - before, total);
}

#[tokio::test]
async fn a_sweep_moves_every_18_decimal_deposit_to_the_treasury_in_one_transaction() {
    sweeps_full_balances_in_one_transaction(Token::AnkrErc20, U256::from(10u64).pow(U256::from(18))).await;
}

#[tokio::test]
async fn a_sweep_moves_every_no_return_6_decimal_deposit_to_the_treasury_in_one_transaction() {
    sweeps_full_balances_in_one_transaction(Token::UsdtErc20, U256::from(1_000_000u64)).await;
}

#[tokio::test]
async fn only_the_factory_may_move_a_forwarders_funds() {
    let chain = TestChain::start().await;
    let factory = DepositFactory::new(chain.deployment.factory, chain.deployer.clone());
    let salt = salt_for_order("guarded");
    factory.deployForwarder(salt).mined().await;
    let forwarder = DepositForwarder::new(factory.addressOf(salt).call().await.unwrap(), chain.deployer.clone());
    let attacker: Address = chain.deployer.get_accounts().await.unwrap()[0];
    let attempt = forwarder.sweep(chain.token(Token::AnkrErc20), attacker).call().await;
    assert!(attempt.is_err(), "a direct call to a forwarder must revert");
}
