//! Gas per gasless payment (issue 36): the relayer's `transferWithAuthorization` of USDT0 next
//! to the payer's own plain `transfer` of the same token, measured in the same run, and what
//! the merchant pays per gasless payment at stated gas prices: `make bench`. Gas is
//! deterministic, so one run of each is the measurement (each the second of its kind, so both
//! balances are already non-zero, as for a payer paying a deposit address).

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use paywatch::chain::contracts::{MockUSDT0, TransferWithAuthorization};
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let payer_key: PrivateKeySigner = accounts::PAYER_KEY.parse()?;
    let payer = rpc::signing_provider(&anvil.rpc_url(), payer_key.clone())?;
    let relayer = rpc::signing_provider(&anvil.rpc_url(), accounts::RELAYER_KEY.parse()?)?;
    let token = deploy::deploy_mock_usdt0(&deployer).await?;
    MockUSDT0::new(token, deployer.clone())
        .mint(payer_key.address(), U256::from(1_000_000_000_000u64))
        .send()
        .await?
        .get_receipt()
        .await?;
    let to = Address::repeat_byte(0x42);
    let amount = U256::from(10_000_000u64);

    let mut plain = 0;
    for _ in 0..2 {
        let receipt = MockUSDT0::new(token, payer.clone()).transfer(to, amount).send().await?.get_receipt().await?;
        plain = receipt.gas_used;
    }
    let chain_id = deployer.get_chain_id().await?;
    let domain =
        Eip712Domain::new(Some("USDT0".into()), Some("1".into()), Some(U256::from(chain_id)), Some(token), None);
    let mut gasless = 0;
    for i in 0..2u8 {
        let auth = TransferWithAuthorization {
            from: payer_key.address(),
            to,
            value: amount,
            validAfter: U256::ZERO,
            validBefore: U256::from(u64::MAX),
            nonce: B256::repeat_byte(i + 1),
        };
        let sig = payer_key.sign_hash_sync(&auth.eip712_signing_hash(&domain))?;
        let receipt = MockUSDT0::new(token, relayer.clone())
            .transferWithAuthorization_1(
                auth.from,
                auth.to,
                auth.value,
                auth.validAfter,
                auth.validBefore,
                auth.nonce,
                27 + u8::from(sig.v()),
                sig.r().into(),
                sig.s().into(),
            )
            .send()
            .await?
            .get_receipt()
            .await?;
        gasless = receipt.gas_used;
    }
    println!("## Gas per gasless payment (EIP-3009, MockUSDT0)\n");
    println!("| payer's plain transfer (baseline) | relayer's transferWithAuthorization | ratio |");
    println!("|---|---|---|");
    println!("| {plain} | {gasless} | **{:.2}x** |", gasless as f64 / plain as f64);
    println!("\nWhat the merchant pays per gasless payment (the relayer's gas × the gas price):\n");
    println!("| gas price | per payment (ETH) |");
    println!("|---|---|");
    for (label, gwei) in [("0.01 gwei (a quiet L2)", 0.01), ("0.1 gwei (a busy L2)", 0.1), ("10 gwei (Ethereum)", 10.0)]
    {
        println!("| {label} | {:.9} |", gasless as f64 * gwei * 1e-9);
    }
    anvil.stop().await?;
    Ok(())
}
