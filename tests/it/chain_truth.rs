//! The watcher against hostile RPC endpoints, other clocks and deep reorgs: every payment
//! credited exactly once, judged by the chain, whatever the endpoint does.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::rpc::types::anvil::ReorgOptions;
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::contracts::MockERC20;
use paywatch::chain::rpc;
use paywatch::devnet::anvil::{accounts, free_port};
use paywatch::money::Token;
use paywatch::payments::calendar::add_months;
use paywatch::store::{outbox, unix_now};
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::chain::Mined;
use crate::support::process::ServeProcess;
use crate::support::rpc_proxy::{CapStyle, Mode, RpcProxy, silent_websocket};
use crate::support::thirty_payments::thirty_payments_on;
use crate::support::watch::{readyz, wait_processed, wait_ready};
use crate::support::webhook_receiver::{Receiver, webhook_config};

async fn thirty_payments_each_credited_once(mode: Mode) {
    let app =
        spawn_app(Options { confirmations: 2, proxy: Some(mode), poll_interval_ms: 200, ..Default::default() }).await;
    thirty_payments_on(app, &format!("{mode:?}"), 0).await;
}

#[tokio::test]
async fn under_lagging_log_backends_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::LaggingLogs).await;
}

#[tokio::test]
async fn under_rate_limits_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::RateLimited { every: 3 }).await;
}

#[tokio::test]
async fn under_range_caps_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::Caps(CapStyle::QuickNode { max_range: 2 })).await;
}

#[tokio::test]
async fn under_result_caps_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::Caps(CapStyle::Infura { max_results: 3 })).await;
}

#[tokio::test]
async fn under_heads_going_back_and_forth_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::FlappingHeads).await;
}

#[tokio::test]
async fn under_dropped_connections_and_slow_answers_every_payment_is_credited_once() {
    thirty_payments_each_credited_once(Mode::Flaky).await;
}

#[tokio::test]
async fn a_websocket_that_stays_open_and_silent_leaves_polling_to_credit() {
    let (ws_url, subscriptions, _ws) = silent_websocket().await;
    let app = spawn_app(Options {
        confirmations: 2,
        ws: true,
        ws_url: Some(ws_url),
        poll_interval_ms: 200,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    while subscriptions.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "paywatch never subscribed to new heads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    thirty_payments_on(app, "silent WebSocket", 0).await;
}

#[tokio::test]
async fn a_logs_answer_from_a_node_without_the_block_is_not_believed() {
    // Every eth_getLogs call reaches a node a block behind the head, even inside a batch whose
    // headers a current node answers: its answer for the newest block is empty. The block's
    // bloom says it may hold a transfer, so the empty answer is not believed (its receipts are).
    // No block is mined after the payment's: the log node never has it, so only the receipts
    // can credit it, and the refusal is certain rather than a race with the next block.
    let mode = Mode::SplitLogs { lag: 1, percent: 100 };
    let app = spawn_app(Options { confirmations: 1, proxy: Some(mode), ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("paywatch_untrusted_log_answers_total") && !l.ends_with(" 0")),
        "an answer from the node without the block was refused at least once:\n{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn serve_starts_with_the_endpoint_down_and_becomes_ready_when_it_comes_up() {
    let app = spawn_app(Options { confirmations: 1, proxy: Some(Mode::Down), ..Default::default() }).await;
    let proxy = app.proxy.as_ref().unwrap();
    // The API serves while the node is unreachable: quotes need no RPC (fixed price).
    let (status, quote) = app
        .post("/v2alpha/ANKR_ERC20/acquire_pre_amount", &json!({"cpu_limit": 1000, "mem_limit": 2000, "storage_limit": 20000, "period": 1, "cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03", "chart_name": "boinc"}))
        .await;
    assert_eq!(status, 200, "quote while the RPC is down: {quote}");
    let (_, order_id, address, owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let started = Instant::now();
    let body = loop {
        let (status, body) = readyz(&app).await;
        if status == 503 && body["message"].as_str().is_some_and(|m| m.contains("rpc")) {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "readyz never said the RPC is down: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let message = body["message"].as_str().unwrap();
    assert!(!message.contains("SECRET-API-KEY"), "the URL's key stays secret: {message}");

    proxy.set_mode(Mode::Honest);
    wait_ready(&app, 60).await;
    app.pay(Token::AnkrErc20, address, owed).await;
    app.wait_order(&order_id, 60, |o| o["status"] == "paid").await;
    app.stop().await;
}

#[tokio::test]
async fn serve_process_starts_behind_rate_limits_and_before_the_endpoint_exists() {
    // The real binary, with nothing listening at its RPC address yet.
    let mut app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    app.stop_server().await;
    let rpc_port = free_port().unwrap();
    let text = std::fs::read_to_string(&app.config_path).unwrap();
    let proxied = text.replace(&app.chain.anvil.rpc_url(), &format!("http://127.0.0.1:{rpc_port}/v3/SECRET-API-KEY"));
    std::fs::write(&app.config_path, proxied).unwrap();
    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    let (status, _) = readyz(&app).await;
    assert_eq!(status, 503, "not ready while the RPC does not answer");
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;

    let _proxy = RpcProxy::start_on(rpc_port, &app.chain.anvil.rpc_url(), Mode::RateLimited { every: 3 }).await;
    wait_ready(&app, 60).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 60, |o| o["status"] == "paid").await;
    drop(server);
    app.stop().await;
}

#[tokio::test]
async fn under_constant_rate_limits_the_idle_request_rate_stays_low() {
    let app = spawn_app(Options { confirmations: 1, poll_interval_ms: 200, ..Default::default() }).await;
    wait_processed(&app, 30).await;
    app.stop().await;
    let app = spawn_app(Options {
        confirmations: 1,
        poll_interval_ms: 200,
        proxy: Some(Mode::RateLimited { every: 1 }),
        ..Default::default()
    })
    .await;
    let proxy = app.proxy.as_ref().unwrap();
    // Past the start-up, measure over 15 poll intervals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = proxy.calls();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let calls = proxy.calls() - before;
    let intervals = window.as_millis() as u64 / 200;
    assert!(calls < 5 * intervals, "{calls} requests in {intervals} poll intervals under constant 429s");
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "a rate-limited RPC is reported: {body}");
    app.stop().await;
}

/// 20 orders, then (with the server stopped) 10,000 Transfer logs over 2,000 blocks, 20 of
/// them paying those orders.
async fn busy_history(app: &mut TestApp) -> Vec<(String, String)> {
    let mut orders = Vec::new();
    for _ in 0..20 {
        orders.push(app.create_crypto_app("ANKR_ERC20", 1).await);
    }
    app.stop_server().await;
    let mut recipients: Vec<Address> = (0..50u64).map(|i| Address::with_last_byte(i as u8 + 1)).collect();
    let payer =
        rpc::signing_provider(&app.chain.anvil.rpc_url(), accounts::PAYER_KEY.parse::<PrivateKeySigner>().unwrap())
            .unwrap();
    let token = MockERC20::new(app.chain.token(Token::AnkrErc20), payer);
    for i in 0..200usize {
        let mut values = vec![U256::from(1u64); 50];
        if let Some((_, _, address, owed)) = orders.get(i / 10).filter(|_| i % 10 == 0) {
            recipients[0] = *address;
            values[0] = *owed;
        } else {
            recipients[0] = Address::with_last_byte(1);
        }
        let receipt = token.multiTransfer(recipients.clone(), values).mined().await;
        assert!(receipt.status());
        app.mine(9).await;
    }
    orders.into_iter().map(|(a, o, _, _)| (a, o)).collect()
}

/// Busy history made while paywatch is down, then `paywatch serve` catching up behind a proxy
/// with `cap`, until every paying order is paid.
async fn catch_up_behind(cap: CapStyle) -> (TestApp, RpcProxy, ServeProcess) {
    let mut app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let orders = busy_history(&mut app).await;
    let proxy = RpcProxy::start(&app.chain.anvil.rpc_url(), Mode::Caps(cap)).await;
    let text = std::fs::read_to_string(&app.config_path).unwrap();
    std::fs::write(&app.config_path, text.replace(&app.chain.anvil.rpc_url(), &proxy.url)).unwrap();
    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    wait_processed(&app, 180).await;
    for (_, order_id) in &orders {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
    }
    (app, proxy, server)
}

#[tokio::test]
async fn a_catch_up_under_a_range_cap_uses_the_providers_range() {
    let (app, proxy, server) = catch_up_behind(CapStyle::Alchemy { max_range: 300 }).await;
    let ranges = proxy.log_ranges();
    assert_eq!(proxy.refusals(), 1, "one refusal, then the stated cap holds: {ranges:?}");
    assert!(ranges.iter().all(|(from, to)| to - from < 300), "never above the cap: {ranges:?}");
    let full = ranges.iter().filter(|(from, to)| to - from + 1 == 300).count();
    assert!(full >= 2000 / 300 - 1, "the catch-up asks for the whole hinted range: {ranges:?}");
    assert!(proxy.header_batches() > 0, "the headers near the head are asked in JSON-RPC batches");
    drop(server);
    app.stop().await;
}

#[tokio::test]
async fn a_catch_up_under_a_result_cap_follows_the_hinted_ranges() {
    let (app, proxy, server) = catch_up_behind(CapStyle::Infura { max_results: 1000 }).await;
    let answered = proxy.log_ranges().len() as u64;
    // Halving alone would be refused about as often as answered; the hint makes refusals rare.
    assert!(proxy.refusals() * 2 <= answered, "{} refusals for {answered} answers", proxy.refusals());
    drop(server);
    app.stop().await;
}

on_both_backends!(a_payment_mined_before_expiry_and_read_after_it_is_on_time => payment_mined_before_expiry_is_on_time);

async fn payment_mined_before_expiry_is_on_time(backend: &'static str) {
    let mut app = spawn_app(Options {
        backend,
        confirmations: 2,
        config_edits: vec![("late_window_hours = 24", "late_window_hours = 0")],
        ..Default::default()
    })
    .await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let (unpaid_app, unpaid_order, _, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let (tight_app, tight_order, tight_address, tight_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let expires_at = app.order(&order_id).await["expires_at"].as_i64().unwrap();
    wait_processed(&app, 30).await;
    app.stop_server().await;

    // Paid before expiry by the chain's clock; then the chain moves two hours on.
    app.pay(Token::AnkrErc20, address, owed).await;
    // This one expires at its payment's block time, and the host's clock passes that before
    // paywatch reads it: judged by when it is processed, it would buy nothing (no late window).
    let tx = app.pay(Token::UsdtErc20, tight_address, tight_owed).await;
    let block = app.chain.deployer.get_transaction_receipt(tx).await.unwrap().unwrap().block_number.unwrap();
    let mined_at = app.chain.deployer.get_block_by_number(block.into()).await.unwrap().unwrap().header.timestamp as i64;
    sqlx::query("UPDATE orders SET expires_at = $1 WHERE order_id = $2")
        .bind(mined_at)
        .bind(&tight_order)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    while unix_now() <= mined_at + 1 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.chain.deployer.anvil_increase_time(7_200).await.unwrap();
    app.mine(3).await;

    // The host's clock is past expiry too, but the watcher is behind: nothing expires.
    let store = &app.db.store;
    let clock = paywatch::jobs::expiry::order_clock(store, &[31337], false, expires_at + 7_200).await.unwrap();
    assert!(clock < expires_at, "the chain's clock is the last processed block's");
    assert_eq!(paywatch::jobs::expiry::expire_orders(store, clock).await.unwrap(), 0);

    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    let paid = app.wait_order(&order_id, 60, |o| o["status"] == "paid").await;
    assert_eq!(paid["late"], false, "judged by the block time of the payment: {paid:#}");
    assert!(paid["payments"][0]["block_time"].as_i64().unwrap() <= expires_at);
    assert_eq!(app.app_status(&app_id).await["status"], "active");
    let tight = app.wait_order(&tight_order, 60, |o| o["status"] == "paid").await;
    assert_eq!(tight["late"], false, "mined at its expiry, read after it: on time {tight:#}");
    assert_eq!(app.app_status(&tight_app).await["status"], "active");

    // Once the watcher has read past expiry, the unpaid order expires by the chain's clock.
    wait_processed(&app, 30).await;
    let clock = paywatch::jobs::expiry::order_clock(store, &[31337], false, unix_now()).await.unwrap();
    assert!(clock > expires_at);
    assert_eq!(paywatch::jobs::expiry::expire_orders(store, clock).await.unwrap(), 1);
    assert_eq!(app.order(&unpaid_order).await["status"], "expired");
    assert_eq!(app.app_status(&unpaid_app).await["status"], "cancelled");
    assert_eq!(app.order(&order_id).await["status"], "paid", "the paid order stays paid");
    drop(server);
    app.stop().await;
}

#[tokio::test]
async fn an_order_written_by_a_clock_an_hour_ahead_hides_no_later_order() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, future_order, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    sqlx::query("UPDATE orders SET created_at = created_at + 3600 WHERE order_id = $1")
        .bind(&future_order)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    // Let the watcher's index read the future-dated order before the later ones exist.
    app.mine(1).await;
    wait_processed(&app, 30).await;
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let mut later = Vec::new();
    for _ in 0..3 {
        let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        app.pay(Token::UsdtErc20, address, owed).await;
        later.push(order_id);
    }
    for order_id in &later {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
    }
    app.stop().await;
}

on_both_backends!(a_credited_payment_reorged_out_deep_is_reversed_and_credits_once_when_re_mined => deep_reorg_reverses_and_re_mined_credits_once);

async fn deep_reorg_reverses_and_re_mined_credits_once(backend: &'static str) {
    let (receiver, url) = Receiver::start(&[], 200).await;
    let app =
        spawn_app(Options { backend, confirmations: 3, extra_config: webhook_config(&url), ..Default::default() })
            .await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let tx_hash = app.pay(Token::AnkrErc20, address, owed).await;
    app.mine(2).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    receiver.wait_delivered(2).await; // order.paid, app.activated: the platform has run the app
    let raw = app.chain.deployer.get_raw_transaction_by_hash(tx_hash).await.unwrap().expect("raw tx");
    app.mine(3).await; // the payment is now 6 deep
    wait_processed(&app, 30).await;

    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 6, tx_block_pairs: vec![] }).await.unwrap();
    app.mine(1).await;
    let order = app.wait_order(&order_id, 30, |o| o["status"] != "paid").await;
    assert_eq!(order["status"], "awaiting_payment", "{order:#}");
    assert_eq!(order["confirmed"], "0");
    let status = app.app_status(&app_id).await;
    assert_eq!(status["status"], "suspended", "an app that had run is suspended: {status}");
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &order_id).await, 0);
    let delivered = receiver.wait_delivered(3).await;
    let reversed: Value = serde_json::from_str(&delivered[2].body).unwrap();
    assert_eq!(reversed["type"], "payment.reversed", "{reversed:#}");
    assert_eq!(reversed["data"]["order_id"], order_id.as_str());
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("paywatch_payments_reversed_total") && !l.ends_with(" 0")),
        "the reversal is counted:\n{metrics}"
    );

    // The same signed transaction, mined again on the new chain.
    let pending = app.chain.deployer.send_raw_transaction(&raw).await.unwrap();
    assert_eq!(*pending.tx_hash(), tx_hash);
    // Waits for the receipt by polling: alloy's receipt watcher can see the block before the
    // node serves the receipt and answer NullResp (seen once under load).
    let started = Instant::now();
    while app.chain.deployer.get_transaction_receipt(tx_hash).await.unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the re-sent transaction was never mined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.mine(2).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    app.mine(3).await;
    wait_processed(&app, 30).await;
    let status = app.app_status(&app_id).await;
    assert_eq!(status["status"], "active");
    let start = status["app_start_time"].as_i64().unwrap();
    assert_eq!(status["app_end_time"].as_i64().unwrap(), add_months(start, 1), "one period, once");
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &order_id).await, 1);
    assert_eq!(
        outbox::types_for_app(app.db.store.pool(), &app_id).await.unwrap(),
        ["order.paid", "app.activated", "payment.reversed", "order.paid", "app.activated"]
    );
    app.stop().await;
}

#[tokio::test]
async fn expiry_and_crediting_never_both_win_on_postgres() {
    let app = spawn_app(Options { backend: "postgres", confirmations: 1, ..Default::default() }).await;
    let pool = app.db.store.pool();
    sqlx::raw_sql(
        "CREATE FUNCTION slow_paid() RETURNS trigger AS $$ BEGIN \
           IF NEW.status = 'paid' THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_paid BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION slow_paid();",
    )
    .execute(pool)
    .await
    .unwrap();
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    // Wait until the crediting transaction sits in the trigger, then run the expiry with a
    // clock far past the order's expiry.
    let started = Instant::now();
    loop {
        let sleeping: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")
            .fetch_one(pool)
            .await
            .unwrap();
        if sleeping > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the crediting update never reached the trigger");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let expired = paywatch::jobs::expiry::expire_orders(&app.db.store, unix_now() + 86_400).await.unwrap();
    let order = app.wait_order(&order_id, 30, |o| o["status"] == "paid" || o["status"] == "expired").await;
    let events = outbox::types_for_app(pool, &app_id).await.unwrap();
    let app_status = app.app_status(&app_id).await["status"].clone();
    match order["status"].as_str().unwrap() {
        "paid" => {
            assert_eq!(expired, 0);
            assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &order_id).await, 1);
            assert_eq!(app_status, "active");
            assert!(!events.contains(&"order.expired".to_string()), "{events:?}");
        }
        _ => {
            assert_eq!(app_status, "cancelled");
            assert!(!events.contains(&"order.paid".to_string()), "{events:?}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_large_order_waits_for_the_finalized_block_a_small_one_does_not() {
    // anvil's finalized block is 64 below its head.
    let app = spawn_app(Options {
        confirmations: 2,
        config_edits: vec![(
            "start_block = 0\n",
            "start_block = 0\n[chain.finality]\nlarge_usd = \"100\"\nlarge = \"finalized\"\n",
        )],
        ..Default::default()
    })
    .await;
    let (_, small, small_address, small_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (large_app, large, large_address, large_owed) = app.create_crypto_app("USDT_ERC20", 12).await;
    let order = app.order(&large).await;
    assert!(order["usd"].as_str().unwrap().parse::<f64>().unwrap() >= 100.0, "the 12-month order is large: {order}");
    assert_eq!(order["confirmations_required"], "finalized", "the order says what it waits for");
    assert_eq!(app.order(&small).await["confirmations_required"], "2");
    app.pay(Token::UsdtErc20, small_address, small_owed).await;
    app.pay(Token::UsdtErc20, large_address, large_owed).await;
    app.mine(2).await;
    app.wait_order(&small, 30, |o| o["status"] == "paid").await;

    app.mine(40).await; // far past 2 confirmations, not yet finalized
    wait_processed(&app, 30).await;
    let waiting = app.order(&large).await;
    assert_eq!(waiting["status"], "awaiting_payment", "{waiting:#}");
    assert_eq!(waiting["payments"][0]["state"], "seen");
    assert_eq!(app.app_status(&large_app).await["status"], "pending_payment");

    app.mine(30).await; // now the payment's block is below the finalized one
    app.wait_order(&large, 30, |o| o["status"] == "paid").await;
    app.stop().await;
}

#[tokio::test]
async fn a_reorg_deeper_than_the_kept_hashes_stops_the_watcher_instead_of_jumping() {
    let app = spawn_app(Options { confirmations: 2, ..Default::default() }).await;
    app.mine(300).await;
    wait_processed(&app, 60).await;
    let cursor_before = paywatch::store::cursor::get(app.db.store.pool(), 31337).await.unwrap().unwrap();
    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 290, tx_block_pairs: vec![] }).await.unwrap();
    app.mine(1).await;
    let started = Instant::now();
    let body = loop {
        let (status, body) = readyz(&app).await;
        if status == 503 && body["message"].as_str().is_some_and(|m| m.contains("no common ancestor")) {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "readyz never reported the stall: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cursor_after = paywatch::store::cursor::get(app.db.store.pool(), 31337).await.unwrap().unwrap();
    assert_eq!(cursor_after, cursor_before, "the cursor did not move to an unchecked block: {body}");
    app.stop().await;
}

/// A process on standby (another holds the watcher lease on PostgreSQL) shows the watching
/// process's head and processed block, read from the database: its order views carry the same
/// confirmations instead of none.
#[tokio::test]
async fn a_standby_process_shows_the_watchers_head_and_confirmations() {
    let app = spawn_app(Options { backend: "postgres", confirmations: 3, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(4).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    wait_processed(&app, 30).await;
    let standby = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    assert_eq!(standby.health().await.unwrap()["watcher"], "standby");
    let head = app.head().await;
    let started = Instant::now();
    loop {
        let h = standby.health().await.unwrap();
        if h["processed_block"].as_u64() == Some(head) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the standby never read the watcher's position: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = format!("{}/v2alpha/teams/{}/orders/{order_id}", standby.base, app.team_id);
    let seen: Value = app.http.get(url).bearer_auth(&app.api_key).send().await.unwrap().json().await.unwrap();
    let leader = app.order(&order_id).await;
    assert_eq!(seen["payments"][0]["confirmations"], leader["payments"][0]["confirmations"], "{seen}");
    assert!(seen["payments"][0]["confirmations"].as_u64().unwrap() >= 3, "{seen}");
    standby.kill9().await;
    app.stop().await;
}

/// `/readyz` asks the node nothing: 200 polls cost no RPC calls beyond the watcher's own
/// (about one step per 200 ms poll), and the answer still names the chain's head.
#[tokio::test]
async fn readiness_polls_make_no_rpc_calls() {
    let app = spawn_app(Options { proxy: Some(Mode::Honest), poll_interval_ms: 200, ..Default::default() }).await;
    wait_ready(&app, 30).await;
    let proxy = app.proxy.as_ref().unwrap();
    let started = Instant::now();
    let before = proxy.calls();
    for _ in 0..200 {
        let (status, body) = readyz(&app).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["chain_head"].as_u64().unwrap() >= 1);
    }
    let calls = proxy.calls() - before;
    // The watcher's polls in that time, generously: a handful per poll interval.
    let watcher_budget = 5 * (started.elapsed().as_millis() as u64 / 200 + 1);
    assert!(calls < 200 && calls <= watcher_budget, "{calls} RPC calls during 200 readiness polls");
    app.stop().await;
}

/// Issue 26, item 8: the host's clock 3 hours behind the chain's (anvil's clock moved 3 hours
/// ahead). An order's expiry comes from the chain's clock at creation: paid 10 chain-minutes
/// after it was created it is on time, and an unpaid one is still open 20 chain-minutes into
/// its 60-minute life when the expiry job runs by the chain's clock. (By the host's clock the
/// order was born 3 hours expired: paid late, and expired at the first run.)
#[tokio::test]
async fn an_order_created_with_the_host_clock_3_hours_behind_lives_by_the_chains_clock() {
    let app = spawn_app(Options { confirmations: 1, poll_interval_ms: 200, ..Default::default() }).await;
    app.chain.deployer.anvil_increase_time(3 * 3600).await.unwrap();
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let head = app.chain.deployer.get_block_by_number(app.head().await.into()).await.unwrap().unwrap();
    let chain_time = head.header.timestamp as i64;
    assert!(chain_time > unix_now() + 3 * 3600 - 60, "the chain's clock is 3 hours ahead of the host's");
    let (_, paid_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, unpaid_id, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let order = app.order(&paid_id).await;
    let expires_at = order["expires_at"].as_i64().unwrap();
    assert!(
        (expires_at - (chain_time + 3600)).abs() < 120,
        "expires an hour after creation by the chain's clock ({chain_time}): {expires_at}"
    );

    app.chain.deployer.anvil_increase_time(600).await.unwrap();
    app.pay(Token::UsdtErc20, address, owed).await;
    let paid = app.wait_order(&paid_id, 30, |o| o["status"] == "paid").await;
    assert_eq!(paid["late"], false, "paid 10 chain-minutes after creation: {paid:#}");

    app.chain.deployer.anvil_increase_time(600).await.unwrap();
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let config = paywatch::config::Config::load(&app.config_path).unwrap();
    let now = app.chain.deployer.get_block_by_number(app.head().await.into()).await.unwrap().unwrap().header.timestamp;
    paywatch::jobs::run_expiry(&app.db.store, &config, true, now as i64).await.unwrap();
    let unpaid = app.order(&unpaid_id).await;
    assert_eq!(unpaid["status"], "awaiting_payment", "20 chain-minutes into 60: {unpaid:#}");
    app.stop().await;
}

/// Issue 25: while following the head, a poll asks for the new blocks' logs in the head's own
/// batch, linked to the cursor by the first new block's parent. A reorg between two polls that
/// replaced the cursor's block (taking one payment out, putting another in) must be seen by
/// that link: the payment taken out is never credited, the one put in is. Without the link the
/// watcher read on from the new head, kept the first payment and never saw the second.
#[tokio::test]
async fn a_reorg_between_two_polls_is_seen_by_the_heads_batch() {
    let app = spawn_app(Options { confirmations: 8, poll_interval_ms: 1_000, ..Default::default() }).await;
    let (_, taken_out, address_out, owed_out) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, put_in, address_in, owed_in) = app.create_crypto_app("USDT_ERC20", 1).await;
    // The chain's pace, as the watcher sees it between heads.
    for _ in 0..4 {
        app.mine(1).await;
        wait_processed(&app, 20).await;
    }
    app.pay(Token::UsdtErc20, address_out, owed_out).await;
    app.mine(1).await;
    wait_processed(&app, 20).await;
    let seen = app.wait_order(&taken_out, 20, |o| o["payments"].as_array().is_some_and(|p| !p.is_empty())).await;
    assert_eq!(seen["status"], "awaiting_payment", "not yet deep enough: {seen:#}");
    // Whole seconds of the chain's clock pass after the head was read, so the next poll finds
    // blocks due by the pace and asks for their logs with the head (a precondition of the
    // path under test, not a wait for a result).
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let put = alloy::rpc::types::anvil::TransactionData::JSON(payer_usdt_transfer(&app, address_in, owed_in));
    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 2, tx_block_pairs: vec![(put, 0)] }).await.unwrap();
    app.mine(3).await;
    app.mine(8).await;
    app.wait_order(&put_in, 30, |o| o["status"] == "paid").await;
    wait_processed(&app, 20).await;
    let order = app.order(&taken_out).await;
    assert_eq!(order["status"], "awaiting_payment", "the payment taken out by the reorg counts for nothing: {order:#}");
    assert_eq!(order["payments"].as_array().map(Vec::len), Some(0), "{order:#}");
    app.stop().await;
}

/// Issue 34: a payment seen at one height, then the chain reorganised below it and the same
/// transaction (same hash, same log index) mined again lower, on a shorter chain. The payment
/// must end up recorded once, at its new height, and credited. (With the "window" polls of
/// issue 25, the row kept at the old height made the new one a no-op insert, and a later poll
/// deleted the old row: 2 of 4 such payments lost.) Four payments, each through the shape.
async fn a_payment_mined_again_lower_after_a_reorg(backend: &'static str) {
    a_payment_mined_again_lower_after_a_reorg_with(backend, vec![]).await
}

/// The same with these `config_edits` (an endpoint declared to keep a batch on one node).
pub(crate) async fn a_payment_mined_again_lower_after_a_reorg_with(
    backend: &'static str,
    config_edits: Vec<(&'static str, &'static str)>,
) {
    let options = Options { backend, confirmations: 3, poll_interval_ms: 1_000, config_edits, ..Default::default() };
    let app = spawn_app(options).await;
    let node = &app.chain.deployer;
    for round in 0..4 {
        let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        // The chain's pace, as the watcher sees it between heads.
        for _ in 0..3 {
            app.mine(1).await;
            wait_processed(&app, 20).await;
        }
        let c = app.head().await;
        // The payment as raw signed bytes, so the reorg can mine the very same transaction.
        let raw = signed_payer_usdt_transfer(&app, address, owed).await;
        // Whole seconds of the chain's clock pass after the head was read, so the next poll
        // finds several blocks due by the pace and asks for them with the head (the shape in
        // which the earlier watcher recorded a window; a precondition, not a wait for a result).
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        // Three empty blocks, then the payment at c+4, at once.
        node.anvil_set_auto_mine(false).await.unwrap();
        node.anvil_mine(Some(3), None).await.unwrap();
        let hash = *node.send_raw_transaction(&raw).await.unwrap().tx_hash();
        node.anvil_mine(Some(1), None).await.unwrap();
        node.anvil_set_auto_mine(true).await.unwrap();
        assert_eq!(app.head().await, c + 4, "round {round}: the payment is mined at c+4");
        let seen_at = eventually_transfer_block(&app, &order_id).await;
        assert_eq!(seen_at, c + 4, "round {round}: first seen at c+4");
        // The chain reorganised from c: the payment again at c+1, the new head c+2.
        node.anvil_rollback(Some(4)).await.unwrap();
        assert_eq!(app.head().await, c, "round {round}: rolled back to c");
        let again = node.send_raw_transaction(&raw).await.unwrap();
        assert_eq!(*again.tx_hash(), hash, "the same transaction");
        if app.head().await == c {
            app.mine(1).await;
        }
        let receipt = node.get_transaction_receipt(hash).await.unwrap().expect("mined again");
        assert_eq!(receipt.block_number, Some(c + 1), "round {round}: mined again at c+1");
        app.mine(1).await;
        // A poll reads the new chain's c+1..c+2 alone (the shape that lost the payment), then
        // blocks past the depth: credited once, at c+1.
        wait_processed(&app, 20).await;
        app.mine(4).await;
        let order = app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
        assert_eq!(order["payments"].as_array().map(Vec::len), Some(1), "round {round}: once: {order:#}");
        let rows: Vec<i64> = sqlx::query_scalar("SELECT block_number FROM chain_transfers WHERE order_id = $1")
            .bind(&order_id)
            .fetch_all(app.db.store.pool())
            .await
            .unwrap();
        assert_eq!(rows, vec![(c + 1) as i64], "round {round}: recorded once, at the canonical height");
        assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &order_id).await, 1, "round {round}");
    }
    app.stop().await;
}

/// The block at which the order's one transfer is stored, once it is.
async fn eventually_transfer_block(app: &TestApp, order_id: &str) -> u64 {
    let started = Instant::now();
    loop {
        let row: Option<i64> = sqlx::query_scalar("SELECT block_number FROM chain_transfers WHERE order_id = $1")
            .bind(order_id)
            .fetch_optional(app.db.store.pool())
            .await
            .unwrap();
        if let Some(n) = row {
            return n as u64;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the payment was never recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

on_both_backends!(a_payment_mined_again_lower_after_a_reorg_is_credited_once => a_payment_mined_again_lower_after_a_reorg);

/// A row stored at one height (left by a window above the cursor) and the same log found at
/// another by a proven step: one row, at the height found; a window moves nothing.
async fn a_transfer_stored_at_another_height_moves_to_where_a_step_finds_it(backend: &'static str) {
    use alloy::primitives::B256;
    use paywatch::payments::credit::{self, Rules, Step};
    use paywatch::store::cursor::{self, Cursor};
    use paywatch::store::transfers::{self, Transfer};
    let mut app = spawn_app(Options { backend, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.stop_server().await;
    let rules = Rules::from_config(&paywatch::config::Config::load(&app.config_path).unwrap());
    let store = &app.db.store;
    // The chain's clock near the order's creation (anvil's blocks carry the host's time).
    let t0 = unix_now();
    let at =
        |n: u64, byte: u8| Cursor { block_number: n, block_hash: B256::repeat_byte(byte), block_time: t0 + n as i64 };
    cursor::set(store.pool(), rules.chain_id, at(10, 0xaa)).await.unwrap();
    let transfer = |n: u64, byte: u8| Transfer {
        chain_id: rules.chain_id,
        tx_hash: B256::repeat_byte(0x11),
        log_index: 0,
        block_number: n,
        block_hash: B256::repeat_byte(byte),
        token: app.chain.token(Token::UsdtErc20),
        from: Address::repeat_byte(0x01),
        to: address,
        amount_base: owed,
        order_id: Some(order_id.clone()),
        block_time: Some(t0 + n as i64),
    };
    transfers::insert_seen(store.pool(), &transfer(14, 0xee)).await.unwrap();
    let step = Step {
        from_cursor: Some(at(10, 0xaa)),
        transfers: vec![transfer(11, 0xbb)],
        confirm_up_to: Some(12),
        cursor: Some(at(12, 0xcc)),
        at: t0 + 12,
        answered: Some(credit::Answered {
            from: 11,
            to: 12,
            logs: vec![(B256::repeat_byte(0x11), 0, B256::repeat_byte(0xbb))],
        }),
        ..Default::default()
    };
    let mut tx = store.begin().await.unwrap();
    let outcome = credit::commit_step(&mut tx, &rules, &step).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outcome.recorded, 1, "recorded at the height found");
    assert_eq!(outcome.paid, vec![order_id.clone()], "and credited");
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT block_number, state FROM chain_transfers").fetch_all(store.pool()).await.unwrap();
    assert_eq!(rows, vec![(11, "confirmed".to_string())], "one row, at block 11");
    // A window (a tied endpoint's head poll without the link to the cursor) that sees the same
    // log at another height proves nothing: the credited row stays where the proven step put it.
    let window = Step {
        from_cursor: Some(at(12, 0xcc)),
        transfers: vec![transfer(14, 0xee)],
        at: t0 + 14,
        ..Default::default()
    };
    let mut tx = store.begin().await.unwrap();
    let outcome = credit::commit_step(&mut tx, &rules, &window).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((outcome.recorded, outcome.removed.len(), outcome.reversed.len()), (0, 0, 0), "{outcome:?}");
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT block_number, state FROM chain_transfers").fetch_all(store.pool()).await.unwrap();
    assert_eq!(rows, vec![(11, "confirmed".to_string())], "still one row, at block 11, confirmed");
    app.stop().await;
}

on_both_backends!(a_transfer_stored_at_another_height_moves_to_where_a_step_finds_it);

/// The payer's USDT transfer as a transaction anvil signs for it (the payer's account is
/// unlocked): for a reorg to put in, or a block mined with others.
pub(crate) fn payer_usdt_transfer(app: &TestApp, to: Address, value: U256) -> alloy::rpc::types::TransactionRequest {
    let payer: Address = accounts::PAYER_KEY.parse::<PrivateKeySigner>().unwrap().address();
    let call = paywatch::chain::contracts::IERC20::transferCall { to, value };
    alloy::rpc::types::TransactionRequest::default()
        .from(payer)
        .to(app.chain.token(Token::UsdtErc20))
        .input(alloy::sol_types::SolCall::abi_encode(&call).into())
}

/// The payer's USDT transfer signed by the test with the payer's next nonce, as raw bytes: a
/// reorg can mine the very same transaction (same hash) again.
pub(crate) async fn signed_payer_usdt_transfer(app: &TestApp, to: Address, value: U256) -> Vec<u8> {
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::NetworkTransactionBuilder as _;
    use alloy::network::{EthereumWallet, TransactionBuilder};
    let payer: PrivateKeySigner = accounts::PAYER_KEY.parse().unwrap();
    let nonce = app.chain.deployer.get_transaction_count(payer.address()).await.unwrap();
    payer_usdt_transfer(app, to, value)
        .with_nonce(nonce)
        .with_chain_id(paywatch::devnet::CHAIN_ID)
        .with_gas_limit(200_000)
        .with_max_fee_per_gas(100_000_000_000)
        .with_max_priority_fee_per_gas(1_000_000_000)
        .build(&EthereumWallet::from(payer))
        .await
        .unwrap()
        .encoded_2718()
}

/// A step commits only onto the cursor it was read from. A process whose lease was lost (its
/// database session killed) may still be mid-step while its successor rewinds after a reorg;
/// its commit must not write the old chain's transfers and a cursor over the successor's work.
async fn a_step_read_from_a_cursor_another_process_moved_is_refused(backend: &'static str) {
    use alloy::primitives::B256;
    use paywatch::payments::credit::{self, Rules, Step};
    use paywatch::store::cursor::{self, Cursor};
    use paywatch::store::transfers::Transfer;
    let mut app = spawn_app(Options { backend, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.stop_server().await;
    let rules = Rules::from_config(&paywatch::config::Config::load(&app.config_path).unwrap());
    let store = &app.db.store;
    let at = |n: u64, byte: u8| Cursor {
        block_number: n,
        block_hash: B256::repeat_byte(byte),
        block_time: 1_000 + n as i64,
    };
    cursor::set(store.pool(), rules.chain_id, at(10, 0xaa)).await.unwrap();
    let stale = at(10, 0xaa);
    // The successor rewound and moved on: the cursor is elsewhere now.
    cursor::set(store.pool(), rules.chain_id, at(12, 0xbb)).await.unwrap();
    let transfer = Transfer {
        chain_id: rules.chain_id,
        tx_hash: B256::repeat_byte(0x11),
        log_index: 0,
        block_number: 11,
        block_hash: B256::repeat_byte(0xcc),
        token: app.chain.token(Token::UsdtErc20),
        from: Address::repeat_byte(0x01),
        to: address,
        amount_base: owed,
        order_id: Some(order_id.clone()),
        block_time: Some(1_011),
    };
    let step =
        Step { from_cursor: Some(stale), transfers: vec![transfer], cursor: Some(at(11, 0xcc)), ..Default::default() };
    let mut tx = store.begin().await.unwrap();
    let refused = credit::commit_step(&mut tx, &rules, &step).await;
    drop(tx);
    assert!(matches!(refused, Err(paywatch::store::StoreError::Conflict(_))), "{refused:?}");
    assert_eq!(
        cursor::get(store.pool(), rules.chain_id).await.unwrap(),
        Some(at(12, 0xbb)),
        "the successor's cursor stands"
    );
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM chain_transfers").fetch_one(store.pool()).await.unwrap();
    assert_eq!(recorded, 0, "nothing of the stale step is written");
    // Read from the cursor as it is, the same step commits.
    let step = Step { from_cursor: Some(at(12, 0xbb)), cursor: Some(at(13, 0xdd)), ..step };
    let mut tx = store.begin().await.unwrap();
    credit::commit_step(&mut tx, &rules, &step).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(cursor::get(store.pool(), rules.chain_id).await.unwrap(), Some(at(13, 0xdd)));
    app.stop().await;
}

on_both_backends!(a_step_read_from_a_cursor_another_process_moved_is_refused);
