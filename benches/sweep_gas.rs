//! Gas per swept deposit for batches of 1, 10 and 50, next to a plain ERC20 transfer from an
//! EOA to the treasury measured in the same run: `make bench`. Gas is deterministic, so one
//! run of each is the measurement.

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::deploy::{self, mint_mock};
use paywatch::chain::deposit_address::{DepositAddresses, salt_for_order};
use paywatch::chain::rpc;
use paywatch::chain::sweep::sweep_batch;
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};
use paywatch::money::Token;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let payer = rpc::signing_provider(&anvil.rpc_url(), accounts::PAYER_KEY.parse()?)?;
    let payer_address = accounts::PAYER_KEY.parse::<PrivateKeySigner>()?.address();
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let deployment = deploy::deploy_all(&deployer, treasury, true).await?;

    println!("## Gas per swept deposit (sweep transaction gas / deposits in it)\n");
    println!(
        "| token | plain transfer (baseline) | batch 1 | batch 10 | batch 50 | batch 50 / plain | re-sweep of 50 deployed forwarders | re-sweep / plain |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for token in [Token::AnkrErc20, Token::UsdtErc20] {
        let address = deployment.tokens[&token];
        let unit = U256::from(10u64).pow(U256::from(if token == Token::AnkrErc20 { 18 } else { 6 }));
        mint_mock(&deployer, token, address, payer_address, unit * U256::from(1_000_000u64)).await?;
        // The baseline: the payer's second transfer to the treasury (both balances already
        // non-zero, as for a sweep into a treasury that holds funds).
        plain_transfer(&payer, token, address, treasury, unit).await?;
        let plain = plain_transfer(&payer, token, address, treasury, unit).await?;
        let mut per_deposit = Vec::new();
        let mut last_salts = Vec::new();
        for batch in [1usize, 10, 50] {
            let salts: Vec<_> = (0..batch).map(|i| salt_for_order(&format!("gas-{token}-{batch}-{i}"))).collect();
            per_deposit.push(fund_and_sweep(&deployer, &deployment, token, address, &salts, unit).await?);
            last_salts = salts;
        }
        // Money arriving again at the same 50 addresses: their forwarders are already there.
        let again = fund_and_sweep(&deployer, &deployment, token, address, &last_salts, unit).await?;
        println!(
            "| {token} | {plain} | {} | {} | {} | **{:.2}x** | {again} | **{:.2}x** |",
            per_deposit[0],
            per_deposit[1],
            per_deposit[2],
            per_deposit[2] as f64 / plain as f64,
            again as f64 / plain as f64
        );
    }
    println!("\nTarget: at 50 per batch, under 1.5x the plain transfer's gas per deposit.");
    anvil.stop().await?;
    Ok(())
}

/// Funds the deposit addresses of `salts` and sweeps them in one transaction; gas per deposit.
async fn fund_and_sweep(
    deployer: &alloy::providers::DynProvider,
    deployment: &deploy::Deployment,
    token: Token,
    address: Address,
    salts: &[alloy::primitives::B256],
    unit: U256,
) -> anyhow::Result<u64> {
    let addresses = DepositAddresses::new(deployment.factory);
    for salt in salts {
        mint_mock(deployer, token, address, addresses.address_of(*salt), unit * U256::from(3u8)).await?;
    }
    let receipt = sweep_batch(deployer, deployment.factory, address, salts.to_vec()).await?;
    anyhow::ensure!(receipt.total == unit * U256::from(3 * salts.len() as u64), "sweep moved everything");
    anyhow::ensure!(receipt.failed.is_empty(), "no address failed");
    Ok(receipt.gas_used / salts.len() as u64)
}

async fn plain_transfer(
    payer: &alloy::providers::DynProvider,
    token: Token,
    address: Address,
    to: Address,
    amount: U256,
) -> anyhow::Result<u64> {
    let _ = token; // both mocks take the minimal ERC20 transfer
    let receipt = paywatch::chain::contracts::IERC20::new(address, payer.clone())
        .transfer(to, amount)
        .send()
        .await?
        .get_receipt()
        .await?;
    Ok(receipt.gas_used)
}
