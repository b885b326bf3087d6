//! The crypto payment path on a real anvil: quote → CreateApp → eth_order → transfer →
//! confirmations → paid and active; partial, overpaid, batched, wrong-token, reorged and
//! extension payments; bad input.

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::rpc::types::anvil::ReorgOptions;
use paywatch::chain::contracts::{MockERC20, MockUSDT};
use paywatch::money::Token;
use paywatch::payments::calendar::add_months;
use serde_json::{Value, json};

use crate::support::app::{Options, create_app_body, spawn_app};
use crate::support::chain::Mined;

fn token_of(pay_method: &str) -> Token {
    pay_method.parse().unwrap()
}

async fn deposits_for(app: &crate::support::app::TestApp, order_id: &str) -> i64 {
    crate::support::db::deposits_for_order(&app.db.store, order_id).await
}

async fn pays_end_to_end(backend: &'static str, pay_method: &str) {
    let app = spawn_app(Options { backend, ..Default::default() }).await;
    let quote_body = json!({"cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03", "chart_name": "boinc",
        "cpu_limit": 1000, "mem_limit": 2000, "storage_limit": 20000, "period": 3});
    let (status, quote) = app.post(&format!("/v2alpha/{pay_method}/acquire_pre_amount"), &quote_body).await;
    assert_eq!(status, 200, "{quote}");

    let (app_id, order_id, address, owed) = app.create_crypto_app(pay_method, 3).await;
    let order = app.order(&order_id).await;
    assert_eq!(order["expected"], quote["amount"], "the order locks in the quoted amount");
    assert_eq!(order["usd"], quote["usd"]);
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(app.app_status(&app_id).await["status"], "pending_payment");

    let before = paywatch::store::unix_now();
    let tx = app.pay(token_of(pay_method), address, owed).await;
    // Included but one block deep: seen, not confirmed (confirmations = 2).
    let seen = app.wait_order(&order_id, 20, |o| o["payments"].as_array().is_some_and(|p| !p.is_empty())).await;
    assert_eq!(seen["status"], "awaiting_payment", "{seen:#}");
    assert_eq!(seen["seen"], quote["amount"]);
    assert_eq!(seen["confirmed"], "0");
    assert_eq!(seen["payments"][0]["tx_hash"], format!("{tx:#x}"));
    assert_eq!(seen["payments"][0]["state"], "seen");

    app.mine(1).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let after = paywatch::store::unix_now();
    assert_eq!(paid["confirmed"], quote["amount"]);
    assert_eq!(paid["overpaid"], "0");
    assert_eq!(paid["late"], false);
    let status = app.app_status(&app_id).await;
    assert_eq!(status["status"], "active");
    let start = status["app_start_time"].as_i64().unwrap();
    assert!((before..=after).contains(&start), "activated at payment time");
    assert_eq!(status["app_end_time"].as_i64().unwrap(), add_months(start, 3), "active for 3 calendar months");
    assert_eq!(deposits_for(&app, &order_id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn ankr_pays_an_app_end_to_end_on_sqlite() {
    pays_end_to_end("sqlite", "ANKR_ERC20").await;
}

#[tokio::test]
async fn usdt_pays_an_app_end_to_end_on_sqlite() {
    pays_end_to_end("sqlite", "USDT_ERC20").await;
}

#[tokio::test]
async fn ankr_pays_an_app_end_to_end_on_postgres() {
    pays_end_to_end("postgres", "ANKR_ERC20").await;
}

#[tokio::test]
async fn usdt_pays_an_app_end_to_end_on_postgres() {
    pays_end_to_end("postgres", "USDT_ERC20").await;
}

#[tokio::test]
async fn a_partial_payment_waits_for_its_top_up() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let part = owed * U256::from(4) / U256::from(10);
    app.pay(Token::UsdtErc20, address, part).await;
    let partial = app.wait_order(&order_id, 20, |o| o["status"] == "partially_paid").await;
    assert_eq!(app.app_status(&app_id).await["status"], "pending_payment");
    assert_ne!(partial["confirmed"], "0");
    app.pay(Token::UsdtErc20, address, owed - part).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["confirmed"], paid["expected"]);
    assert_eq!(paid["payments"].as_array().unwrap().len(), 2);
    assert_eq!(app.app_status(&app_id).await["status"], "active");
    assert_eq!(deposits_for(&app, &order_id).await, 1, "one deposit for the two transfers");
    app.stop().await;
}

#[tokio::test]
async fn an_overpayment_is_recorded_and_credits_once() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed + U256::from(2_500_000u64)).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["overpaid"], "2.5");
    // The deposit row, the deposit list and the order.paid event all carry what was received.
    let received = paywatch::money::format_base_units(owed + U256::from(2_500_000u64), 6);
    let (status, list) = app.get(&format!("/v2alpha/teams/{}/deposit_list", app.team_id)).await;
    assert_eq!(status, 200, "{list}");
    let listed = list.to_string();
    assert!(listed.contains(&format!("\"{received}\"")), "deposit_list shows the received {received}: {list}");
    let event: String = sqlx::query_scalar("SELECT payload FROM webhook_outbox WHERE event_type = 'order.paid'")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    let event: Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["data"]["amount"], received, "the webhook and the list agree");
    let (stored, expected): (String, String) =
        sqlx::query_as("SELECT amount, expected_amount FROM deposits WHERE order_id = $1")
            .bind(&order_id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
    assert_eq!(stored, received);
    assert_eq!(expected, paid["expected"].as_str().unwrap());
    // More money after paid: recorded, overpaid grows, nothing credited twice.
    app.pay(Token::UsdtErc20, address, U256::from(1_000_000u64)).await;
    let more = app.wait_order(&order_id, 20, |o| o["overpaid"] == "3.5").await;
    assert_eq!(more["status"], "paid");
    assert_eq!(deposits_for(&app, &order_id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn two_transfers_in_one_transaction_pay_two_orders() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, first, a, owed_a) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let (_, second, b, owed_b) = app.create_crypto_app("ANKR_ERC20", 3).await;
    let token = MockERC20::new(app.chain.token(Token::AnkrErc20), app.payer.clone());
    let receipt = token.multiTransfer(vec![a, b], vec![owed_a, owed_b]).mined().await;
    assert!(receipt.status());
    let one = app.wait_order(&first, 20, |o| o["status"] == "paid").await;
    let two = app.wait_order(&second, 20, |o| o["status"] == "paid").await;
    let tx = format!("{:#x}", receipt.transaction_hash);
    assert_eq!(one["payments"][0]["tx_hash"], tx);
    assert_eq!(two["payments"][0]["tx_hash"], tx);
    assert_ne!(one["payments"][0]["log_index"], two["payments"][0]["log_index"]);
    app.stop().await;
}

#[tokio::test]
async fn the_wrong_token_is_shown_but_never_credited() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    // USDT worth far more than the order, to the ANKR order's address.
    MockUSDT::new(app.chain.token(Token::UsdtErc20), app.payer.clone()).transfer(address, owed).mined().await;
    app.mine(3).await;
    let shown = app.wait_order(&order_id, 20, |o| o["payments"].as_array().is_some_and(|p| p.len() == 1)).await;
    app.wait_order(&order_id, 20, |o| o["payments"][0]["state"] == "confirmed").await;
    let order = app.order(&order_id).await;
    assert_eq!(shown["payments"][0]["counted"], false);
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["confirmed"], "0");
    assert_eq!(app.app_status(&app_id).await["status"], "pending_payment");
    app.pay(Token::AnkrErc20, address, owed).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["confirmed"], paid["expected"], "only the right token counts");
    app.stop().await;
}

/// Waits until the watcher has processed the current head.
async fn wait_processed(app: &crate::support::app::TestApp) {
    let head = app.head().await;
    let started = std::time::Instant::now();
    loop {
        let r: Value = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap().json().await.unwrap();
        if r["processed_block"].as_u64().unwrap_or(0) >= head {
            return;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "watcher stuck below {head}: {r}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_transfer_reorged_out_is_never_credited() {
    let app = spawn_app(Options { confirmations: 3, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    app.pay(Token::AnkrErc20, address, owed).await;
    let seen = app.wait_order(&order_id, 20, |o| o["payments"].as_array().is_some_and(|p| p.len() == 1)).await;
    assert_eq!(seen["payments"][0]["state"], "seen");

    // Replace the block holding the payment with one without it, then go well past the depth.
    app.chain.deployer.anvil_reorg(ReorgOptions { depth: 1, tx_block_pairs: vec![] }).await.unwrap();
    app.mine(5).await;
    wait_processed(&app).await;
    let order = app.order(&order_id).await;
    assert_eq!(order["status"], "awaiting_payment", "{order:#}");
    assert_eq!(order["payments"], json!([]), "the reorged-out transfer is gone");
    assert_eq!(order["seen"], "0");
    assert_eq!(app.app_status(&app_id).await["status"], "pending_payment");

    // From another account: anvil will not take the reorged-out payer's nonce again.
    app.pay_from(paywatch::devnet::anvil::accounts::OTHER_PAYER_KEY, Token::AnkrErc20, address, owed).await;
    app.mine(2).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["payments"].as_array().unwrap().len(), 1);
    assert_eq!(deposits_for(&app, &order_id).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_paid_extension_adds_its_months_to_the_current_end() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let end = app.app_status(&app_id).await["app_end_time"].as_i64().unwrap();

    // The seed sends the period as a string.
    let (status, ext) = app
        .post("/v2alpha/create_extend_order", &json!({"app_id": app_id, "period": "3", "pay_method": "ANKR_ERC20"}))
        .await;
    assert_eq!(status, 200, "{ext}");
    let (_, eth) = app.get(&format!("/v2alpha/teams/{}/eth_order/{app_id}?pay_method=ANKR_ERC20", app.team_id)).await;
    assert_eq!(eth["order_id"], ext["order_id"], "GetEthOrder returns the extend order");
    assert_eq!(eth["value"], ext["amount"]);
    let owed: U256 = eth["payment_uri"].as_str().unwrap().rsplit("uint256=").next().unwrap().parse().unwrap();
    app.pay(Token::AnkrErc20, eth["address"].as_str().unwrap().parse().unwrap(), owed).await;
    app.wait_order(ext["order_id"].as_str().unwrap(), 20, |o| o["status"] == "paid").await;
    let status = app.app_status(&app_id).await;
    assert_eq!(status["app_end_time"].as_i64().unwrap(), add_months(end, 3));
    assert_eq!(status["status"], "active");

    let events = paywatch::store::outbox::types_for_app(app.db.store.pool(), &app_id).await.unwrap();
    assert_eq!(events, ["order.paid", "app.activated", "order.paid", "app.extended"]);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_json_error_and_writes_nothing() {
    let app = spawn_app(Options::default()).await;
    let quote = |period: Value, cpu: Value| json!({"cluster_id": "", "chart_name": "", "cpu_limit": cpu, "mem_limit": 100, "storage_limit": 100, "period": period});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("/v2alpha/USD/acquire_pre_amount", quote(json!(13), json!(100)), 422, "period"),
        ("/v2alpha/USD/acquire_pre_amount", quote(json!(0), json!(100)), 422, "period"),
        ("/v2alpha/BTC/acquire_pre_amount", quote(json!(1), json!(100)), 422, "type"),
        ("/v2alpha/USD/acquire_pre_amount", quote(json!(1), json!(-5)), 422, "cpu_limit"),
        ("/v2alpha/USD/acquire_pre_amount", quote(json!(1), json!(1e30)), 422, "body"),
        ("/v2alpha/USD/acquire_pre_amount", quote(json!(1), json!("lots")), 422, "body"),
    ];
    for (path, body, status, field) in cases {
        let (got, err) = app.post(path, &body).await;
        assert_eq!(got, status, "{path} {body}: {err}");
        assert!(err["message"].as_str().unwrap().contains(field), "{err} names {field}");
    }
    let mut wrong_method = create_app_body("DOGE", 1);
    let (s, e) = app.post("/v2alpha/app/v2/app", &wrong_method).await;
    assert_eq!((s, e["code"].as_str()), (422, Some("invalid")), "{e}");
    wrong_method["pre_pay_info"]["pay_method"] = json!("ANKR_ERC20");
    wrong_method["team_id"] = json!("another-team");
    assert_eq!(app.post("/v2alpha/app/v2/app", &wrong_method).await.0, 403);
    let mut free = create_app_body("USDT_ERC20", 1);
    (free["cpu_limit"], free["mem_limit"], free["storage_limit"], free["chart_name"]) =
        (json!(0), json!(0), json!(0), json!("none"));
    let (s, e) = app.post("/v2alpha/app/v2/app", &free).await;
    assert_eq!(s, 422, "an order for 0 USD could never be paid: {e}");
    let mut absurd = create_app_body("ANKR_ERC20", 1);
    absurd["mem_limit"] = json!(i64::MAX);
    assert_eq!(app.post("/v2alpha/app/v2/app", &absurd).await.0, 422);

    let raw = app
        .http
        .post(format!("{}/v2alpha/app/v2/app", app.base))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{\"pre_pay_info\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let no_key = app
        .http
        .post(format!("{}/v2alpha/app/v2/app", app.base))
        .json(&create_app_body("ANKR_ERC20", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let (s, _) = app.get("/v2alpha/teams/someone-else/apps/x").await;
    assert_eq!(s, 404);
    let (s, _) = app.get(&format!("/v2alpha/teams/{}/orders/no-such-order", app.team_id)).await;
    assert_eq!(s, 404);

    let apps: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps").fetch_one(app.db.store.pool()).await.unwrap();
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(app.db.store.pool()).await.unwrap();
    assert_eq!((apps, orders), (0, 0), "rejected requests leave nothing behind");
    app.stop().await;
}

/// A Transfer log of another shape (ERC721's: the value as a fourth topic, no data) from a
/// watched token to a deposit address is skipped and counted; the watcher goes on and credits
/// the real payment after it.
#[tokio::test]
async fn a_transfer_log_without_the_erc20_shape_is_skipped_not_fatal() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let usdt = MockUSDT::new(app.chain.token(Token::UsdtErc20), app.payer.clone());
    let odd = usdt.emitOddTransfer(address, owed).mined().await;
    assert_eq!(odd.inner.logs()[0].topics().len(), 4, "the odd log has four topics");
    app.pay(Token::UsdtErc20, address, owed).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["payments"].as_array().unwrap().len(), 1, "only the real transfer counts: {paid}");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let skipped = metrics
        .lines()
        .find(|l| l.starts_with("paywatch_malformed_transfer_logs_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(skipped.is_some_and(|n| n >= 1.0), "the skipped log is counted: {skipped:?}");
    app.stop().await;
}
