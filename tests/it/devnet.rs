//! `paywatch devnet` as a newcomer runs it: it comes up, writes a usable devnet.json, answers
//! /healthz, and on SIGTERM stops anvil with it.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::contracts::IERC20;
use paywatch::chain::rpc;
use paywatch::store::{Store, teams};
use serde_json::Value;

#[tokio::test]
async fn devnet_comes_up_with_a_usable_devnet_json_and_leaves_no_anvil_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (devnet, info) = crate::support::process::spawn_devnet(dir.path()).await;

    let api = info["api_url"].as_str().unwrap();
    let health = reqwest::get(format!("{api}/healthz")).await.expect("API answers");
    assert_eq!(health.status(), 200);
    // The demo catalog is seeded: one product uses every option type.
    let config: Value =
        reqwest::get(format!("{api}/v1/productsconfig?product_id=1")).await.unwrap().json().await.unwrap();
    let types: Vec<i64> = config["first_group"][0]["group"][0]["products"][0]["configoptions"]
        .as_array()
        .unwrap_or_else(|| panic!("the demo product is served: {config}"))
        .iter()
        .map(|o| o["type"].as_i64().unwrap())
        .collect();
    assert_eq!(types, (1..=20).collect::<Vec<i64>>());

    // The chain in devnet.json is the one anvil serves, with the contracts and a funded payer.
    let rpc_url = info["rpc_url"].as_str().unwrap();
    let provider = rpc::http_provider(rpc_url).unwrap();
    assert_eq!(provider.get_chain_id().await.unwrap(), info["chain_id"].as_u64().unwrap());
    let address = |v: &Value| v.as_str().unwrap().parse::<Address>().unwrap();
    assert!(!provider.get_code_at(address(&info["factory"])).await.unwrap().is_empty(), "factory deployed");
    assert!(!provider.get_code_at(address(&info["price_feed"])).await.unwrap().is_empty(), "feed deployed");
    let payer: PrivateKeySigner = info["payer_private_key"].as_str().unwrap().parse().unwrap();
    assert_eq!(payer.address(), address(&info["payer_address"]));
    for token in ["ANKR_ERC20", "USDT_ERC20"] {
        let balance = IERC20::new(address(&info["tokens"][token]), provider.clone())
            .balanceOf(payer.address())
            .call()
            .await
            .unwrap();
        assert!(balance > U256::ZERO, "payer holds {token}");
    }
    assert!(provider.get_balance(payer.address()).await.unwrap() > U256::ZERO, "payer has gas money");

    // Two chains: the first as above, the L2-like one with the factory at the same address
    // and a funded USDT.
    assert_eq!(info["chains"]["main"]["rpc_url"], info["rpc_url"]);
    let l2 = &info["chains"]["l2"];
    assert_eq!(l2["chain_id"], 31338);
    let l2_provider = rpc::http_provider(l2["rpc_url"].as_str().unwrap()).unwrap();
    assert_eq!(l2_provider.get_chain_id().await.unwrap(), 31338);
    assert!(!l2_provider.get_code_at(address(&info["factory"])).await.unwrap().is_empty(), "factory on the L2 too");
    let l2_usdt = IERC20::new(address(&l2["tokens"]["USDT_L2"]), l2_provider.clone());
    assert!(l2_usdt.balanceOf(payer.address()).call().await.unwrap() > U256::ZERO, "payer holds USDT on the L2");
    let first_block = l2_provider.get_block_number().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(l2_provider.get_block_number().await.unwrap() >= first_block + 3, "the L2 mines every 250 ms");
    let health: Value = reqwest::get(format!("{api}/healthz")).await.unwrap().json().await.unwrap();
    assert_eq!(health["chains"].as_array().map(Vec::len), Some(2), "both chains watched: {health}");
    assert_ne!(address(&info["treasury"]), Address::ZERO);
    assert_eq!(info["confirmations"].as_u64(), Some(2));
    assert!(info["admin_token"].as_str().unwrap().len() >= 16);

    // The demo team's key is live in the devnet's database.
    let config = paywatch::config::Config::load(std::path::Path::new(info["config"].as_str().unwrap())).unwrap();
    let store = Store::connect(config.database_url()).await.unwrap();
    let owner = teams::find_key_owner(store.pool(), info["api_key"].as_str().unwrap()).await.unwrap();
    assert_eq!(owner.map(|o| o.team_id).as_deref(), info["team_id"].as_str());
    store.close().await;

    // SIGTERM stops the server and anvil.
    let status = devnet.stop().await;
    assert!(status.success(), "devnet exits cleanly on SIGTERM: {status}");
    assert!(provider.get_chain_id().await.is_err(), "anvil is gone after devnet stopped");
    assert!(l2_provider.get_chain_id().await.is_err(), "the second anvil is gone too");
}

/// The HOME an anvil process was started with, read from /proc.
fn home_of(pid: u32) -> std::path::PathBuf {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("anvil's environment");
    let home = environ.split(|b| *b == 0).find_map(|kv| kv.strip_prefix(b"HOME=")).expect("anvil has a HOME");
    std::path::PathBuf::from(String::from_utf8(home.to_vec()).unwrap())
}

#[tokio::test]
async fn a_killed_anvil_leaves_no_state_files_behind() {
    let anvil = paywatch::devnet::anvil::Anvil::spawn(Default::default()).await.unwrap();
    let home = home_of(anvil.pid().unwrap());
    assert_ne!(Some(home.as_os_str()), std::env::var_os("HOME").as_deref(), "anvil runs with a HOME of its own");
    // Enough blocks that anvil pushes states out of memory, to its HOME.
    let provider = rpc::http_provider(&anvil.rpc_url()).unwrap();
    let states = home.join(".foundry/anvil/tmp");
    for _ in 0..40 {
        if std::fs::read_dir(&states).is_ok_and(|mut d| d.next().is_some()) {
            break;
        }
        let _: Value = provider.raw_request("anvil_mine".into(), ("0x40",)).await.unwrap();
    }
    assert!(std::fs::read_dir(&states).is_ok_and(|mut d| d.next().is_some()), "anvil wrote states under {states:?}");
    drop(anvil); // killed, not stopped: anvil removes nothing itself
    assert!(!home.exists(), "{home:?} removed with the anvil");
}
