//! Chainlink prices from the mock AggregatorV3 feed on anvil: a fresh answer prices ANKR;
//! a zero or stale answer makes token quotes 503 while USD quotes go on.

use alloy::primitives::{I256, U256};
use paywatch::chain::contracts::MockPriceFeed;
use paywatch::store::unix_now;
use serde_json::json;

use crate::support::app::{Options, TestApp, create_app_body, spawn_app};
use crate::support::chain::Mined;

fn quote_body() -> serde_json::Value {
    json!({"cluster_id": "c", "chart_name": "boinc", "cpu_limit": 1000, "mem_limit": 2048, "storage_limit": 20480, "period": 1})
}

async fn set_feed(app: &TestApp, answer: i64, updated_at: u64) {
    let feed = MockPriceFeed::new(app.chain.deployment.price_feed.unwrap(), app.chain.deployer.clone());
    feed.setAnswer(I256::try_from(answer).unwrap(), U256::from(updated_at)).mined().await;
}

#[tokio::test]
async fn a_fresh_feed_answer_prices_ankr_quotes_and_is_locked_into_the_order() {
    let app = spawn_app(Options { chainlink_max_age: Some(3600), ..Default::default() }).await;
    set_feed(&app, 5_000_000, 0).await; // 0.05 USD with 8 decimals, updated now
    let (status, usd) = app.post("/v2alpha/USD/acquire_pre_amount", &quote_body()).await;
    assert_eq!(status, 200);
    let (status, ankr) = app.post("/v2alpha/ANKR_ERC20/acquire_pre_amount", &quote_body()).await;
    assert_eq!(status, 200, "{ankr}");
    // (1 × 10 + 2 × 4 + 20 × 0.1 + 1) = 21 USD at 0.05 USD per ANKR = 420 ANKR
    assert_eq!(usd["usd"], "21");
    assert_eq!(ankr["amount"], "420");
    let (_, order_id, _, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    // The price moves; the open order keeps the one it was quoted at.
    set_feed(&app, 10_000_000, 0).await;
    let order = app.order(&order_id).await;
    let expected: rust_decimal::Decimal = order["expected"].as_str().unwrap().parse().unwrap();
    let usd: rust_decimal::Decimal = order["usd"].as_str().unwrap().parse().unwrap();
    assert_eq!(expected * rust_decimal::Decimal::new(5, 2), usd, "the order was priced at 0.05");
    app.stop().await;
}

async fn token_quotes_are_503_and_usd_goes_on(answer: i64, updated_at: u64) {
    let app = spawn_app(Options { chainlink_max_age: Some(3600), ..Default::default() }).await;
    set_feed(&app, answer, updated_at).await;
    let (status, err) = app.post("/v2alpha/ANKR_ERC20/acquire_pre_amount", &quote_body()).await;
    assert_eq!(status, 503, "{err}");
    assert!(err["message"].as_str().unwrap().contains("ANKR_ERC20"), "{err}");
    let (status, _) = app.post("/v2alpha/app/v2/app", &create_app_body("ANKR_ERC20", 1)).await;
    assert_eq!(status, 503, "no token order without a price");
    assert_eq!(app.post("/v2alpha/USD/acquire_pre_amount", &quote_body()).await.0, 200, "USD quotes go on");
    assert_eq!(app.post("/v2alpha/USDT_ERC20/acquire_pre_amount", &quote_body()).await.0, 200, "USDT is 1 USD");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(app.db.store.pool()).await.unwrap();
    assert_eq!(orders, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_zero_answer_makes_token_quotes_503() {
    token_quotes_are_503_and_usd_goes_on(0, 0).await;
}

#[tokio::test]
async fn a_stale_answer_makes_token_quotes_503() {
    token_quotes_are_503_and_usd_goes_on(2_500_000, (unix_now() - 2 * 3600) as u64).await;
}
