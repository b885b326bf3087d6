//! `/metrics` parsed as Prometheus text: the state gauges are there and the counters move
//! when a payment is credited.

use paywatch::money::Token;

use crate::support::app::{Options, spawn_app};
use crate::support::metrics::{find, scrape, value};
use prometheus_parse::{Scrape, Value};

#[tokio::test]
async fn metrics_parse_and_counters_move_when_a_payment_is_credited() {
    let mut app = spawn_app(Options::default()).await;
    // A server process of its own: its counters move for this test's payment only (the
    // recorder in this test process is shared by every test).
    app.stop_server().await;
    let server =
        crate::support::process::ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap())
            .await;
    app.base = server.base.clone();
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.order(&order_id).await;
    let before = scrape(&app).await;
    let credited = |s: &Scrape| value(s, "paywatch_payments_credited_total", &[("method", "token")]);
    let matched = |s: &Scrape| value(s, "paywatch_transfers_matched_total", &[]);
    let scanned = |s: &Scrape| value(s, "paywatch_logs_scanned_total", &[]);

    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(1).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    // The counters move right after the commit the order view already shows; allow that instant.
    let mut after = scrape(&app).await;
    for _ in 0..50 {
        if credited(&after) > credited(&before) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scrape(&app).await;
    }
    // Exactly this test's payment: one credit, one matched transfer.
    assert_eq!(credited(&after) - credited(&before), 1.0, "payments credited");
    assert_eq!(matched(&after) - matched(&before), 1.0, "transfers matched");
    assert!(scanned(&after) > scanned(&before), "logs scanned did not move");

    assert!(value(&after, "paywatch_chain_head_block", &[]) >= 1.0);
    assert!(find(&after, "paywatch_processed_block", &[]).is_some());
    assert!(find(&after, "paywatch_chain_lag_blocks", &[]).is_some());
    assert!(value(&after, "paywatch_orders", &[("status", "paid")]) >= 1.0);
    assert!(find(&after, "paywatch_orders", &[("status", "expired")]).is_some(), "every status is reported");

    let route = "/v2alpha/teams/:team_id/orders/:order_id";
    let requests = value(&after, "paywatch_http_requests_total", &[("route", route), ("status", "200")]);
    assert!(requests >= 2.0, "order status requests are counted under the route template: {requests}");
    let latency = find(&after, "paywatch_http_request_duration_seconds", &[("route", route)])
        .expect("a latency histogram for the route");
    match &latency.value {
        Value::Histogram(buckets) => {
            assert!(buckets.len() > 3, "{buckets:?}");
            assert!(buckets.last().unwrap().count >= 2.0, "+Inf counts every request: {buckets:?}");
        }
        other => panic!("latency is a histogram, not {other:?}"),
    }
    server.kill9().await;
    app.stop().await;
}

#[tokio::test]
async fn price_age_is_reported_for_a_chainlink_priced_token() {
    let app = spawn_app(Options { chainlink_max_age: Some(3600), ..Default::default() }).await;
    let s = scrape(&app).await;
    let age = value(&s, "paywatch_price_age_seconds", &[("token", "ANKR_ERC20")]);
    assert!(find(&s, "paywatch_price_age_seconds", &[("token", "ANKR_ERC20")]).is_some(), "price age is exported");
    assert!((0.0..3600.0).contains(&age), "the mock feed was updated at deployment: {age}");
    app.stop().await;
}
