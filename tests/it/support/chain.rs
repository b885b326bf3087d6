//! A fresh anvil per test (one block per transaction unless a test mines more), with the
//! project's contracts deployed by the deployer account.

use alloy::primitives::{Address, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};

pub struct TestChain {
    pub anvil: Anvil,
    /// Signs as the deployer (anvil account 0).
    pub deployer: DynProvider,
    pub treasury: Address,
    pub deployment: deploy::Deployment,
}

impl TestChain {
    pub async fn start() -> Self {
        Self::start_with(AnvilOptions::default()).await
    }

    pub async fn start_with(options: AnvilOptions) -> Self {
        let (anvil, deployer, treasury) = Self::launch(options).await;
        let deployment = deploy::deploy_all(&deployer, treasury, true).await.expect("contracts deploy on anvil");
        Self { anvil, deployer, treasury, deployment }
    }

    /// anvil, a provider signing as the deployer, and the treasury address.
    async fn launch(options: AnvilOptions) -> (Anvil, DynProvider, Address) {
        let anvil = Anvil::spawn(options)
            .await
            .unwrap_or_else(|e| panic!("anvil is needed for this test and did not start: {e:#}"));
        let signer: PrivateKeySigner = accounts::DEPLOYER_KEY.parse().unwrap();
        let deployer = rpc::signing_provider(&anvil.rpc_url(), signer).unwrap();
        let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>().unwrap().address();
        (anvil, deployer, treasury)
    }

    /// The L2-like second chain (chain id 31338 unless given): the factory, at the first
    /// chain's address, and a USDT mock (`USDT_L2`), as `paywatch devnet` sets it up.
    pub async fn start_l2(state: Option<std::path::PathBuf>, chain_id: Option<u64>) -> Self {
        let chain_id = chain_id.unwrap_or(paywatch::devnet::L2_CHAIN_ID);
        let options = AnvilOptions { chain_id, state, ..Default::default() };
        let (anvil, deployer, treasury) = Self::launch(options).await;
        let deployment = paywatch::devnet::deploy_l2(&deployer, treasury).await.expect("contracts deploy on anvil");
        Self { anvil, deployer, treasury, deployment }
    }

    pub fn token(&self, token: paywatch::money::Token) -> Address {
        self.deployment.tokens[&token]
    }

    pub async fn balance_of(&self, token: Address, owner: Address) -> U256 {
        paywatch::chain::contracts::IERC20::new(token, self.deployer.clone())
            .balanceOf(owner)
            .call()
            .await
            .expect("balanceOf answers")
    }
}

/// A contract call sent and waited for: the test's transaction must land (`.mined().await`).
pub trait Mined {
    fn mined(self) -> impl std::future::Future<Output = alloy::rpc::types::TransactionReceipt>;
}

impl<P: alloy::providers::Provider, D: alloy::contract::CallDecoder> Mined for alloy::contract::CallBuilder<P, D> {
    async fn mined(self) -> alloy::rpc::types::TransactionReceipt {
        self.send().await.unwrap().get_receipt().await.unwrap()
    }
}
