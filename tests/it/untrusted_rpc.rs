//! The watcher believes no single RPC answer: behind endpoints that misbehave the way real
//! backends do (a node lagging on every call it answers, a log-serving pool 100 blocks behind,
//! a head answered ahead of the logs, a head that lies, `removed` logs, logs outside their
//! block's bloom), every payment is credited exactly once; failover reaches the second endpoint
//! and comes back to the first; an endpoint on another chain is named and left out.

use std::time::{Duration, Instant};

use paywatch::devnet::anvil::free_port;
use paywatch::money::Token;
use paywatch::payments::calendar::add_months;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::process::ServeProcess;
use crate::support::rpc_proxy::{Mode, RpcProxy};
use crate::support::thirty_payments::thirty_payments_on;
use crate::support::watch::wait_processed;
use crate::support::write_file;

async fn thirty_payments_through(mode: Mode, lag: u64, backend: &'static str) {
    let app = spawn_app(Options {
        backend,
        confirmations: 2,
        proxy: Some(mode),
        poll_interval_ms: 200,
        ..Default::default()
    })
    .await;
    thirty_payments_on(app, &format!("{mode:?} on {backend}"), lag).await;
}

/// One module per backend behaviour, a test per database.
macro_rules! every_payment_once_behind {
    ($($name:ident: $mode:expr, lag $lag:expr;)*) => {$(
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                thirty_payments_through($mode, $lag, "sqlite").await;
            }
            #[tokio::test]
            async fn postgres() {
                thirty_payments_through($mode, $lag, "postgres").await;
            }
        }
    )*};
}

every_payment_once_behind! {
    a_node_lagging_on_every_call_by_hash_too: Mode::LaggingNode { lag: 3 }, lag 3;
    a_log_pool_100_blocks_behind_current_heads: Mode::LogsBehind { lag: 100 }, lag 100;
    a_head_answered_ahead_of_the_logs: Mode::HeadAhead, lag 3;
    logs_marked_removed: Mode::RemovedLogs, lag 0;
    logs_outside_their_blocks_bloom: Mode::OutsideBloom, lag 0;
    each_call_routed_alone_half_the_log_calls_2_behind: Mode::SplitLogs { lag: 2, percent: 50 }, lag 0;
    each_call_routed_alone_every_log_call_8_behind: Mode::SplitLogs { lag: 8, percent: 100 }, lag 0;
}

/// The test config's single `rpc_http` URL replaced by `urls`, for a `paywatch serve` process.
fn with_endpoints(app: &TestApp, urls: &[&str]) -> String {
    let text = std::fs::read_to_string(&app.config_path).unwrap();
    let one = format!("\"{}\"", app.chain.anvil.rpc_url());
    assert!(text.contains(&one), "the test config names anvil's URL once");
    let list = urls.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    text.replace(&one, &format!("[{list}]"))
}

async fn start_serving(app: &mut TestApp, config: &str) -> ServeProcess {
    std::fs::write(&app.config_path, config).unwrap();
    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    server
}

/// Pays a new one-month USDT order and waits for it to be paid; returns the seconds it took.
async fn pay_one(app: &TestApp, secs: u64) -> f64 {
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let started = Instant::now();
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, secs, |o| o["status"] == "paid").await;
    started.elapsed().as_secs_f64()
}

async fn wait_calls(proxy: &RpcProxy, above: u64, secs: u64, what: &str) {
    let started = Instant::now();
    while proxy.calls() <= above {
        assert!(started.elapsed() < Duration::from_secs(secs), "{what}: no call within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_the_first_endpoint_down_the_second_credits_and_the_first_is_used_again() {
    let mut app = spawn_app(Options { confirmations: 1, poll_interval_ms: 200, ..Default::default() }).await;
    app.stop_server().await;
    let anvil = app.chain.anvil.rpc_url();
    let first_port = free_port().unwrap();
    let first = RpcProxy::start_on(first_port, &anvil, Mode::Honest).await;
    let second = RpcProxy::start(&anvil, Mode::Honest).await;
    let config = with_endpoints(&app, &[&first.url, &second.url]);
    let server = start_serving(&mut app, &config).await;
    wait_processed(&app, 30).await;
    pay_one(&app, 30).await;
    assert!(first.calls() > 0, "the first endpoint is the one in use");

    // 503 for 30 s: each payment meanwhile is credited through the second.
    first.set_mode(Mode::Down);
    let down = Instant::now();
    let before = second.calls();
    while down.elapsed() < Duration::from_secs(30) {
        let took = pay_one(&app, 15).await;
        assert!(took < 8.0, "credited within a few polls through the second endpoint: {took:.1} s");
    }
    assert!(second.calls() > before, "the second endpoint answered while the first was down");

    // Then nothing listens at all for 30 s (connection refused).
    drop(first);
    let refused = Instant::now();
    while refused.elapsed() < Duration::from_secs(30) {
        let took = pay_one(&app, 15).await;
        assert!(took < 8.0, "credited through the second endpoint with the first refusing: {took:.1} s");
    }

    // Back: after its rest the first is asked again (its chain id first), and used.
    let first = RpcProxy::start_on(first_port, &anvil, Mode::Honest).await;
    wait_calls(&first, 1, 60, "the recovered first endpoint").await;
    pay_one(&app, 30).await;
    // Every poll goes to it again, not to the second.
    let (first_before, second_before) = (first.calls(), second.calls());
    wait_calls(&first, first_before + 5, 30, "the first endpoint serving polls again").await;
    assert!(second.calls() <= second_before + 1, "the second endpoint rests once the first is back");
    drop(server);
    app.stop().await;
}

#[tokio::test]
async fn a_head_claimed_1000_blocks_ahead_credits_nothing_before_its_real_depth() {
    let app = spawn_app(Options {
        confirmations: 3,
        proxy: Some(Mode::LyingHead { ahead: 1000 }),
        poll_interval_ms: 200,
        ..Default::default()
    })
    .await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    // One block deep, then two: the watcher has read the head each time, and must not credit.
    for depth in 1..=2 {
        wait_processed(&app, 30).await;
        let order = app.wait_order(&order_id, 30, |o| !o["payments"].as_array().unwrap().is_empty()).await;
        assert_ne!(order["status"], "paid", "{depth} block(s) deep of 3 is not paid: {order:#}");
        app.mine(1).await;
    }
    let order = app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    assert_eq!(order["confirmed"], order["expected"]);
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_on_another_chain_is_named_by_check_and_never_used_by_serve() {
    let mut app = spawn_app(Options { confirmations: 1, poll_interval_ms: 200, ..Default::default() }).await;
    app.stop_server().await;
    let anvil = app.chain.anvil.rpc_url();
    let other = RpcProxy::start(&anvil, Mode::OtherChain).await;
    let config = with_endpoints(&app, &[&anvil, &other.url]);
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "paywatch.toml", &config);
    let out = crate::support::paywatch_beside_server(&["check", "--config", path.to_str().unwrap()]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "check fails: {stderr}");
    let port = other.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    assert!(stderr.contains(port) && stderr.contains("chain id 1"), "check names the endpoint: {stderr}");
    assert!(!stderr.contains("SECRET-API-KEY"), "{stderr}");

    let server = start_serving(&mut app, &config).await;
    wait_processed(&app, 30).await;
    let after_start = other.calls();
    for _ in 0..3 {
        pay_one(&app, 30).await;
    }
    assert_eq!(other.calls(), after_start, "nothing is asked of the endpoint on another chain once it was found out");
    assert!(after_start <= 2, "only its chain id was asked ({after_start} calls)");
    drop(server);
    app.stop().await;
}

/// Issue 34: a restart 300 blocks behind, every eth_getLogs call answered by a log-serving
/// pool 100 blocks behind while every other call, even in the same batch, reaches a current
/// node (each call routed on its own, as aggregators do). The pool's empty answers prove
/// nothing for the blocks it lacks: those whose bloom holds a transfer are proven by their
/// receipts, so every payment is credited once while the pool stays behind. (Before, the
/// watcher believed the pool's `[]` for the newest 100 blocks: 6 of 8 such payments lost.)
async fn a_restart_300_blocks_behind_a_split_log_pool_100_behind(backend: &'static str) {
    let mut app = spawn_app(Options {
        backend,
        confirmations: 2,
        proxy: Some(Mode::Honest),
        poll_interval_ms: 200,
        ..Default::default()
    })
    .await;
    wait_processed(&app, 30).await;
    let mut orders = Vec::new();
    for _ in 0..8 {
        orders.push(app.create_crypto_app("ANKR_ERC20", 1).await);
    }
    app.stop_server().await;
    // A payment every 37 blocks over 300: the last three within 100 blocks of the head.
    for (_, _, address, owed) in &orders {
        app.pay(Token::AnkrErc20, *address, *owed).await;
        app.mine(36).await;
    }
    let proxy = app.proxy.take().unwrap();
    proxy.set_mode(Mode::SplitLogs { lag: 100, percent: 100 });
    let config = std::fs::read_to_string(&app.config_path).unwrap();
    let server = start_serving(&mut app, &config).await;
    wait_processed(&app, 60).await;
    for (app_id, order_id, _, _) in &orders {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
        assert_eq!(crate::support::db::deposits_for_order(&app.db.store, order_id).await, 1, "{order_id} once");
        let status = app.app_status(app_id).await;
        let start = status["app_start_time"].as_i64().unwrap();
        assert_eq!(status["app_end_time"].as_i64().unwrap(), add_months(start, 1), "{app_id}: one period");
    }
    let transfers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM chain_transfers").fetch_one(app.db.store.pool()).await.unwrap();
    assert_eq!(transfers, orders.len() as i64, "each transfer recorded once");
    drop(server);
    drop(proxy);
    app.stop().await;
}

on_both_backends!(a_restart_300_blocks_behind_a_split_log_pool_100_behind_credits_each_payment_once => a_restart_300_blocks_behind_a_split_log_pool_100_behind);
