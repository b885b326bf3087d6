//! Sweeping on anvil: 30 paid deposits of both tokens reach the treasury in a few
//! transactions; a rerun sweeps nothing; an unconfirmed transfer is never swept.

use alloy::primitives::{Address, U256};
use paywatch::chain::contracts::MockUSDT;
use paywatch::devnet::anvil::accounts;
use paywatch::money::Token;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::chain::Mined;
use crate::support::paywatch_beside_server;

fn signer_config() -> String {
    format!("[signer]\nprivate_key = \"{}\"\n", accounts::DEPLOYER_KEY)
}

async fn sweep(app: &TestApp) -> Value {
    let out = paywatch_beside_server(&["sweep", "--config", app.config_path.to_str().unwrap()]).await;
    assert!(out.status.success(), "sweep failed: {}", String::from_utf8_lossy(&out.stderr));
    let runs: Value = serde_json::from_slice(&out.stdout).expect("sweep prints a JSON report");
    runs["chains"]["main"].clone()
}

#[tokio::test]
async fn thirty_paid_deposits_of_both_tokens_are_swept_in_a_few_transactions_once() {
    let app = spawn_app(Options { confirmations: 1, extra_config: signer_config(), ..Default::default() }).await;
    let mut paid: Vec<(Token, String, Address, U256)> = Vec::new();
    for i in 0..30 {
        let (method, token) =
            if i % 2 == 0 { ("ANKR_ERC20", Token::AnkrErc20) } else { ("USDT_ERC20", Token::UsdtErc20) };
        let (_, order_id, address, owed) = app.create_crypto_app(method, 1).await;
        app.pay(token, address, owed).await;
        paid.push((token, order_id, address, owed));
    }
    for (_, order_id, _, _) in &paid {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
    }
    let treasury = app.chain.treasury;
    let before: Vec<U256> = futures_util::future::join_all(
        [Token::AnkrErc20, Token::UsdtErc20].map(|t| app.chain.balance_of(app.chain.token(t), treasury)),
    )
    .await;

    let report = sweep(&app).await;
    assert_eq!(report["swept"], 30, "{report}");
    let txs = report["transactions"].as_array().unwrap();
    assert!(!txs.is_empty() && txs.len() <= 2, "one transaction per token at batch 50: {report}");
    for (i, token) in [Token::AnkrErc20, Token::UsdtErc20].into_iter().enumerate() {
        let sum: U256 = paid.iter().filter(|p| p.0 == token).map(|p| p.3).fold(U256::ZERO, |a, b| a + b);
        let after = app.chain.balance_of(app.chain.token(token), treasury).await;
        assert_eq!(after - before[i], sum, "{token}: the treasury received exactly what was paid");
        for p in paid.iter().filter(|p| p.0 == token) {
            assert_eq!(app.chain.balance_of(app.chain.token(token), p.2).await, U256::ZERO);
        }
    }
    let swept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE swept_tx IS NOT NULL")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(swept, 30);

    let again = sweep(&app).await;
    assert_eq!(again["swept"], 0, "a rerun sweeps nothing: {again}");
    assert_eq!(again["transactions"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn an_address_with_an_unconfirmed_transfer_is_not_swept() {
    let app = spawn_app(Options { confirmations: 3, extra_config: signer_config(), ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(2).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    // More money arrives: seen, one block deep, not confirmed.
    app.pay(Token::UsdtErc20, address, U256::from(7u8)).await;
    app.wait_order(&order_id, 20, |o| o["payments"].as_array().is_some_and(|p| p.len() == 2)).await;
    let report = sweep(&app).await;
    assert_eq!(report["swept"], 0, "{report}");
    assert_eq!(app.chain.balance_of(app.chain.token(Token::UsdtErc20), address).await, owed + U256::from(7u8));
    // Once it is confirmed, the address is swept whole.
    app.mine(3).await;
    app.wait_order(&order_id, 20, |o| o["payments"].as_array().unwrap().iter().all(|p| p["state"] == "confirmed"))
        .await;
    assert_eq!(sweep(&app).await["swept"], 1);
    assert_eq!(app.chain.balance_of(app.chain.token(Token::UsdtErc20), address).await, U256::ZERO);
    app.stop().await;
}

#[tokio::test]
async fn money_arriving_after_a_sweep_is_swept_again_once() {
    let app = spawn_app(Options { confirmations: 1, extra_config: signer_config(), ..Default::default() }).await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(sweep(&app).await["swept"], 1);
    assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO);

    // A top-up after the sweep: recorded on the order, then swept on the next run.
    let treasury_before = app.chain.balance_of(usdt, app.chain.treasury).await;
    app.pay(Token::UsdtErc20, address, U256::from(7u8)).await;
    app.wait_order(&order_id, 20, |o| {
        o["payments"].as_array().is_some_and(|p| p.len() == 2 && p.iter().all(|p| p["state"] == "confirmed"))
    })
    .await;
    let report = sweep(&app).await;
    assert_eq!(report["swept"], 1, "{report}");
    assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO);
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await, treasury_before + U256::from(7u8));
    assert_eq!(sweep(&app).await["swept"], 0, "and only once");
    app.stop().await;
}

async fn sweep_rows(app: &TestApp, address: Address) -> Vec<(String, String)> {
    sqlx::query_as("SELECT state, moved_base FROM sweeps WHERE deposit_address = $1 ORDER BY created_at, state")
        .bind(format!("{address:#x}"))
        .fetch_all(app.db.store.pool())
        .await
        .unwrap()
}

/// A Tether-like token with a blacklist: one blacklisted deposit address in a batch of 10 does
/// not keep the other 9 from being swept; it is retried alone, reported as stuck after three
/// failures in a row, and swept once it may send again.
async fn one_blacklisted_address_in_ten(backend: &'static str) {
    let app =
        spawn_app(Options { backend, confirmations: 1, extra_config: signer_config(), ..Default::default() }).await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let mut paid = Vec::new();
    for _ in 0..10 {
        let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        app.pay(Token::UsdtErc20, address, owed).await;
        paid.push((order_id, address, owed));
    }
    for (order_id, _, _) in &paid {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
    }
    let (_, bad, bad_amount) = paid[3].clone();
    MockUSDT::new(usdt, app.payer.clone()).addBlackList(bad).mined().await;
    let treasury_before = app.chain.balance_of(usdt, app.chain.treasury).await;

    let report = sweep(&app).await;
    assert_eq!(report["swept"], 9, "{report}");
    assert_eq!(report["transactions"].as_array().unwrap().len(), 1, "one batch: {report}");
    assert_eq!(report["failed_addresses"], serde_json::json!([format!("{bad:#x}")]), "{report}");
    let others: U256 = paid.iter().filter(|p| p.1 != bad).map(|p| p.2).fold(U256::ZERO, |a, b| a + b);
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await - treasury_before, others);
    for (_, address, _) in paid.iter().filter(|p| p.1 != bad) {
        assert_eq!(app.chain.balance_of(usdt, *address).await, U256::ZERO);
    }
    assert_eq!(app.chain.balance_of(usdt, bad).await, bad_amount, "the blacklisted address keeps its money");

    // Retried alone; after three failures in a row it is reported as stuck.
    for attempt in 2..=3 {
        let again = sweep(&app).await;
        assert_eq!(again["swept"], 0, "attempt {attempt}: {again}");
        assert_eq!(again["failed_addresses"].as_array().unwrap().len(), 1, "{again}");
    }
    let stuck = sweep(&app).await;
    assert_eq!(stuck["stuck"], serde_json::json!([format!("{bad:#x}")]), "{stuck}");
    assert_eq!(stuck["transactions"].as_array().unwrap().len(), 0, "a stuck address waits hours between tries");
    let rows = sweep_rows(&app, bad).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|(state, _)| state == "failed"), "{rows:?}");

    // Unblacklisted, and the stuck address's retry time has come (its failures made 7 h ago).
    MockUSDT::new(usdt, app.payer.clone()).removeBlackList(bad).mined().await;
    sqlx::query("UPDATE sweeps SET created_at = created_at - 7 * 3600 WHERE state = 'failed'")
        .execute(app.db.store.pool())
        .await
        .unwrap();
    let freed = sweep(&app).await;
    assert_eq!(freed["swept"], 1, "{freed}");
    assert_eq!(app.chain.balance_of(usdt, bad).await, U256::ZERO);
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await - treasury_before, others + bad_amount);
    assert_eq!(sweep(&app).await["swept"], 0, "nothing is swept twice");
    app.stop().await;
}

on_both_backends!(one_blacklisted_address_in_ten_does_not_block_the_other_nine => one_blacklisted_address_in_ten);

/// A sweep is pending until `confirmations` deep; one a reorg takes out is dropped, the address
/// is swept again, and the treasury receives the money once.
async fn a_reorged_sweep(backend: &'static str) {
    use alloy::providers::ext::AnvilApi;
    use alloy::rpc::types::anvil::ReorgOptions;
    let app =
        spawn_app(Options { backend, confirmations: 2, extra_config: signer_config(), ..Default::default() }).await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(3).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let treasury_before = app.chain.balance_of(usdt, app.chain.treasury).await;

    assert_eq!(sweep(&app).await["swept"], 1);
    assert_eq!(sweep_rows(&app, address).await, vec![("pending".to_string(), owed.to_string())], "not deep yet");
    // The sweep's block leaves the chain; the transaction is not mined again.
    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 1, tx_block_pairs: vec![] }).await.unwrap();
    assert_eq!(app.chain.balance_of(usdt, address).await, owed, "the reorg undid the sweep");

    let again = sweep(&app).await;
    assert_eq!(again["dropped"], 1, "{again}");
    assert_eq!(again["swept"], 1, "swept again: {again}");
    app.mine(2).await;
    let settled = sweep(&app).await;
    assert_eq!((settled["confirmed"].as_u64(), settled["swept"].as_u64()), (Some(1), Some(0)), "{settled}");
    // The reorged sweep's rows stay as dropped, unless the same transaction (same nonce,
    // calldata and fees: the same hash) was sent again, which they then describe.
    let rows = sweep_rows(&app, address).await;
    let confirmed: Vec<_> = rows.iter().filter(|(state, _)| state == "confirmed").collect();
    assert_eq!(confirmed.len(), 1, "one sweep recorded: {rows:?}");
    assert!(rows.iter().all(|(state, _)| state == "confirmed" || state == "dropped"), "{rows:?}");
    assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO);
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await - treasury_before, owed, "received once");
    app.stop().await;
}

on_both_backends!(a_sweep_reorged_out_is_pending_again_and_swept_again_once => a_reorged_sweep);

/// Runs never overlap across processes: while another holds the sweep's lease, `paywatch
/// sweep` does nothing and says so; once it is free, the sweep runs.
#[tokio::test]
async fn a_sweep_running_elsewhere_keeps_another_from_starting() {
    use paywatch::jobs::sweep::lease_name;
    use paywatch::store::job_leases;
    let app = spawn_app(Options { confirmations: 1, extra_config: signer_config(), ..Default::default() }).await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let pool = app.db.store.pool();
    assert!(job_leases::take(pool, &lease_name(31337), "another-process", 60).await.unwrap());
    let skipped = sweep(&app).await;
    assert_eq!((skipped["skipped"].as_bool(), skipped["swept"].as_u64()), (Some(true), Some(0)), "{skipped}");
    assert_eq!(app.chain.balance_of(usdt, address).await, owed);
    job_leases::release(pool, &lease_name(31337), "another-process").await.unwrap();
    assert_eq!(sweep(&app).await["swept"], 1);
    assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO);
    app.stop().await;
}

/// A sweep already confirmed that a reorg deeper than the confirmations takes (found by the
/// soak on the second chain): the next run sees its block gone, drops it and sweeps again; the
/// ledger and the treasury count the money once.
async fn a_confirmed_sweep_reorged_out(backend: &'static str) {
    use alloy::providers::ext::AnvilApi;
    use alloy::rpc::types::anvil::ReorgOptions;
    let app =
        spawn_app(Options { backend, confirmations: 1, extra_config: signer_config(), ..Default::default() }).await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(2).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let treasury_before = app.chain.balance_of(usdt, app.chain.treasury).await;
    assert_eq!(sweep(&app).await["swept"], 1);
    app.mine(1).await;
    let settled = sweep(&app).await;
    assert_eq!(settled["confirmed"], 1, "{settled}");
    // Two blocks back: the sweep's block and the one after it.
    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 2, tx_block_pairs: vec![] }).await.unwrap();
    assert_eq!(app.chain.balance_of(usdt, address).await, owed, "the reorg undid the confirmed sweep");
    let again = sweep(&app).await;
    assert_eq!((again["dropped"].as_u64(), again["swept"].as_u64()), (Some(1), Some(1)), "{again}");
    app.mine(1).await;
    sweep(&app).await;
    let moved: Vec<String> = sqlx::query_scalar(
        "SELECT moved_base FROM sweeps WHERE deposit_address = $1 AND state IN ('pending', 'confirmed')",
    )
    .bind(format!("{address:#x}"))
    .fetch_all(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(moved, [owed.to_string()], "the ledger moved it once");
    assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO);
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await - treasury_before, owed, "received once");
    app.stop().await;
}

on_both_backends!(a_confirmed_sweep_a_deeper_reorg_takes_is_swept_again_once => a_confirmed_sweep_reorged_out);
