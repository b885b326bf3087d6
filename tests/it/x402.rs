//! x402 (issue 36) with the x402 project's own client: `x402-fetch` and `viem` from npm,
//! unmodified (tools/x402-pay.mjs), pay an order's `x402_url` on an anvil with Base Sepolia's
//! chain id; the order turns paid through the watcher; a paid order asks for nothing more.

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use base64::Engine;
use paywatch::chain::contracts::MockUSDT0;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::chain::Mined;

const BASE_SEPOLIA: u64 = 84_532;

async fn x402_app(backend: &'static str) -> TestApp {
    spawn_app(Options {
        backend,
        l2_confirmations: Some(1),
        gasless: true,
        l2_chain_id: Some(BASE_SEPOLIA),
        config_edits: vec![(
            "display_name = \"Local l2 devnet\"\n",
            "display_name = \"Local l2 devnet\"\nx402_network = \"base-sepolia\"\n",
        )],
        ..Default::default()
    })
    .await
}

/// The x402 client, run with node from tools/ (where npm installed it); awaited, as the server
/// it pays runs on this test's runtime.
async fn x402_client(url: &str, key: &PrivateKeySigner) -> Value {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools");
    assert!(
        tools.join("node_modules/x402-fetch").exists(),
        "x402-fetch is needed for this test and is missing: run `make tools`"
    );
    let out = tokio::process::Command::new("node")
        .arg(tools.join("x402-pay.mjs"))
        .arg(url)
        .arg(format!("0x{}", alloy::hex::encode(key.to_bytes())))
        .current_dir(&tools)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim().lines().last().unwrap_or_default()).unwrap_or_else(|_| {
        panic!("the x402 client printed no answer:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = reqwest::get(url).await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn pays_with_the_x402_client(backend: &'static str) {
    let app = x402_app(backend).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let usdt0: Address = app.l2().deployment.tokens[&paywatch::devnet::L2_USDT0];
    let payer = PrivateKeySigner::random();
    MockUSDT0::new(usdt0, app.l2().deployer.clone()).mint(payer.address(), owed).mined().await;

    let order = app.order(&order_id).await;
    let path = order["x402_url"].as_str().unwrap_or_else(|| panic!("the order names its x402 link: {order:#}"));
    let url = format!("{}{path}", app.base);
    let (status, _, asked) = get(&url).await;
    assert_eq!(status, 402, "{asked}");
    assert_eq!(asked["x402Version"], 1);
    let accepts = asked["accepts"].as_array().unwrap();
    assert_eq!(accepts.len(), 1, "one chain of the order takes x402: {asked:#}");
    let wanted = &accepts[0];
    assert_eq!(wanted["network"], "base-sepolia");
    assert_eq!(wanted["maxAmountRequired"], owed.to_string());
    assert_eq!(wanted["payTo"], format!("{address:#x}"));
    assert_eq!(wanted["asset"], format!("{usdt0:#x}"));
    assert_eq!(wanted["extra"]["name"], "USDT0");

    let paid = x402_client(&url, &payer).await;
    assert_eq!(paid["status"], 200, "the client paid: {paid:#}");
    let response = &paid["paymentResponse"];
    assert_eq!(response["success"], true, "{paid:#}");
    let hash = response["transaction"].as_str().unwrap().parse().unwrap();
    let receipt = app.l2().deployer.get_transaction_receipt(hash).await.unwrap().expect("the payment is mined");
    assert!(receipt.status());
    assert_eq!(app.l2().deployer.get_transaction_count(payer.address()).await.unwrap(), 0, "the payer paid no gas");

    let started = std::time::Instant::now();
    while app.order(&order_id).await["status"] != "paid" {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the order never turned paid");
        alloy::providers::ext::AnvilApi::anvil_mine(&app.l2().deployer, Some(1), None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, _, again) = get(&url).await;
    assert_eq!((status, &again["status"]), (200, &Value::from("paid")), "a paid order asks for nothing: {again}");
    assert_eq!(app.l2().deployer.get_balance(payer.address()).await.unwrap(), U256::ZERO);
    app.stop().await;
}

on_both_backends!(the_x402_client_pays_an_order => pays_with_the_x402_client);

/// A bad X-PAYMENT answers 402 with the reason and the requirements; nothing is sent.
#[tokio::test]
async fn a_bad_x_payment_is_answered_402_with_its_reason() {
    let app = x402_app("sqlite").await;
    let (_, order_id, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let url = format!("{}/pay/{order_id}/x402", app.base);
    let client = reqwest::Client::new();
    let cases = [
        ("not base64", "%%%".to_string(), "base64"),
        ("not a payment", base64::engine::general_purpose::STANDARD.encode("{}"), "not an x402 payment"),
        (
            "another network",
            base64::engine::general_purpose::STANDARD.encode(
                serde_json::json!({"x402Version": 1, "scheme": "exact", "network": "base", "payload": {
                    "signature": "0x00", "authorization": {"from": "0x0000000000000000000000000000000000000001",
                    "to": "0x0000000000000000000000000000000000000002", "value": "1", "validAfter": "0",
                    "validBefore": "1", "nonce": format!("0x{}", "00".repeat(32))}}})
                .to_string(),
            ),
            "network",
        ),
    ];
    for (what, header, says) in cases {
        let r = client.get(&url).header("X-PAYMENT", header).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 402, "{what}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(says), "{what}: {body}");
        assert_eq!(body["accepts"].as_array().unwrap().len(), 1, "{what}: the requirements again");
    }
    let (status, _, missing) = get(&format!("{}/pay/no-such-order/x402", app.base)).await;
    assert_eq!(status, 404, "{missing}");
    let sent: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM gasless_payments").fetch_one(app.db.store.pool()).await.unwrap();
    assert_eq!(sent, 0, "nothing sent");
    app.stop().await;
}
