//! Reconciliation (issue 13): on a clean run the ledger and every deposit address's balance
//! agree; money put at a deposit address outside the watcher's view (a storage write, no
//! Transfer log) is reported by `paywatch reconcile` (exit 1) and `GET /admin/reconciliation`,
//! and the sweep that then moves it reports that it moved another amount than expected.

use alloy::primitives::{B256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::sol_types::SolValue;
use paywatch::money::Token;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::paywatch_beside_server;
use crate::support::watch::wait_processed;

async fn reconcile_cli(app: &TestApp) -> (bool, Value) {
    let out = paywatch_beside_server(&["reconcile", "--config", app.config_path.to_str().unwrap()]).await;
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("reconcile prints JSON: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

async fn admin_reconciliation(app: &TestApp, query: &str) -> (u16, Value) {
    let r = app
        .http
        .get(format!("{}/admin/reconciliation{query}", app.base))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn reports_a_difference_made_on_purpose(backend: &'static str) {
    let signer = format!("[signer]\nprivate_key = \"{}\"\n", paywatch::devnet::anvil::accounts::DEPLOYER_KEY);
    let app = spawn_app(Options { backend, confirmations: 1, extra_config: signer, ..Default::default() }).await;
    assert_eq!(admin_reconciliation(&app, "").await.0, 404, "none has run yet");
    let (_, usdt_order, usdt_at, usdt_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, ankr_order, ankr_at, ankr_owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    app.pay(Token::UsdtErc20, usdt_at, usdt_owed).await;
    app.pay(Token::AnkrErc20, ankr_at, ankr_owed).await;
    app.wait_order(&usdt_order, 20, |o| o["status"] == "paid").await;
    app.wait_order(&ankr_order, 20, |o| o["status"] == "paid").await;
    wait_processed(&app, 30).await;

    let (ok, clean) = reconcile_cli(&app).await;
    assert!(ok, "a clean ledger reconciles: {clean}");
    assert_eq!(clean["checked"], 2, "{clean}");
    assert_eq!(clean["differences"], serde_json::json!([]));
    let (status, latest) = admin_reconciliation(&app, "").await;
    assert_eq!((status, &latest["differences"]), (200, &serde_json::json!([])), "{latest}");

    // One more USDT at the address, written straight into the token's storage (balanceOf is
    // slot 1 of MockUSDT): no Transfer log, so the watcher cannot know.
    let usdt = app.chain.token(Token::UsdtErc20);
    let slot = keccak256((usdt_at, U256::from(1u8)).abi_encode());
    let extra = U256::from(1_000_000u64);
    let value = B256::from(usdt_owed + extra);
    app.chain.deployer.anvil_set_storage_at(usdt, slot.into(), value).await.unwrap();
    assert_eq!(app.chain.balance_of(usdt, usdt_at).await, usdt_owed + extra);
    app.mine(1).await;
    wait_processed(&app, 30).await;

    let (ok, found) = reconcile_cli(&app).await;
    assert!(!ok, "a difference exits 1: {found}");
    let differences = found["differences"].as_array().unwrap();
    assert_eq!(differences.len(), 1, "{found}");
    assert_eq!(differences[0]["address"], format!("{usdt_at:#x}"));
    assert_eq!(differences[0]["token"], format!("{usdt:#x}"));
    assert_eq!(differences[0]["ledger"], usdt_owed.to_string());
    assert_eq!(differences[0]["on_chain"], (usdt_owed + extra).to_string());
    let (status, fresh) = admin_reconciliation(&app, "?fresh=true").await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["differences"], found["differences"]);

    // A sweep moves what is there and reports that it is not what the ledger expected.
    let out = paywatch_beside_server(&["sweep", "--config", app.config_path.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let swept: Value = serde_json::from_slice::<Value>(&out.stdout).unwrap()["chains"]["main"].clone();
    let mismatches = swept["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{swept}");
    assert_eq!(mismatches[0]["address"], format!("{usdt_at:#x}"));
    assert_eq!(mismatches[0]["expected"], usdt_owed.to_string());
    assert_eq!(mismatches[0]["moved"], (usdt_owed + extra).to_string());
    app.stop().await;
}

on_both_backends!(reconciliation_reports_a_difference_made_on_purpose_and_nothing_when_clean => reports_a_difference_made_on_purpose);
