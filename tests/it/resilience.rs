//! Nothing lost, nothing doubled: a server killed with SIGKILL during a stream of payments,
//! an RPC node that goes away and comes back, two servers sharing one PostgreSQL database.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use paywatch::devnet::anvil::free_port;
use paywatch::money::Token;
use paywatch::payments::calendar::add_months;
use paywatch::store::outbox;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::process::ServeProcess;

async fn assert_paid_once_for_one_period(app: &TestApp, orders: &[(String, String, Address, U256)]) {
    for (app_id, order_id, _, _) in orders {
        app.wait_order(order_id, 60, |o| o["status"] == "paid").await;
        let status = app.app_status(app_id).await;
        let start = status["app_start_time"].as_i64().unwrap();
        assert_eq!(
            status["app_end_time"].as_i64().unwrap(),
            add_months(start, 1),
            "{app_id} moved by exactly one period"
        );
        assert_eq!(
            crate::support::db::deposits_for_order(&app.db.store, order_id).await,
            1,
            "{order_id} credited once"
        );
        let events = outbox::types_for_app(app.db.store.pool(), app_id).await.unwrap();
        assert_eq!(events, ["order.paid", "app.activated"], "{app_id} events written once");
    }
    let transfers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM chain_transfers").fetch_one(app.db.store.pool()).await.unwrap();
    assert_eq!(transfers, orders.len() as i64, "each transfer recorded once");
}

#[tokio::test]
async fn fifty_payments_through_sigkills_are_each_credited_exactly_once() {
    let mut app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    app.stop_server().await;
    let port = free_port().unwrap();
    let mut server = Some(ServeProcess::start(&app.config_path, port).await);
    app.base = server.as_ref().unwrap().base.clone();
    let mut orders = Vec::new();
    for _ in 0..50 {
        orders.push(app.create_crypto_app("USDT_ERC20", 1).await);
    }

    let seed = crate::support::test_seed("sigkill schedule");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kills = 0;
    let mut paid_while_down = 0;
    let mut up_for = 0;
    let mut down_for = 0;
    for (_, _, address, owed) in orders.iter() {
        app.pay(Token::UsdtErc20, *address, *owed).await;
        match server.take() {
            // Kill at a random moment of the stream: right after a payment, or a little later
            // while the watcher may be mid-step; at the latest after 7 payments up.
            Some(s) if rng.random_bool(0.15) || up_for >= 6 => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
                s.kill9().await;
                kills += 1;
                (up_for, down_for) = (0, 0);
            }
            Some(s) => {
                server = Some(s);
                up_for += 1;
            }
            // Down for one to three payments.
            None => {
                paid_while_down += 1;
                down_for += 1;
                if rng.random_bool(0.5) || down_for >= 3 {
                    server = Some(ServeProcess::start(&app.config_path, port).await);
                }
            }
        }
    }
    if server.is_none() {
        server = Some(ServeProcess::start(&app.config_path, port).await);
    }
    assert!(kills >= 4 && paid_while_down >= 4, "the schedule killed {kills} times, {paid_while_down} paid while down");
    assert_paid_once_for_one_period(&app, &orders).await;
    server.unwrap().kill9().await;
    app.stop().await;
}

#[tokio::test]
async fn the_watcher_resumes_after_the_rpc_node_comes_back() {
    let mut app = spawn_app(Options { confirmations: 1, anvil_state: true, ..Default::default() }).await;
    let first = app.create_crypto_app("ANKR_ERC20", 1).await;
    app.pay(Token::AnkrErc20, first.2, first.3).await;
    app.wait_order(&first.1, 20, |o| o["status"] == "paid").await;

    let second = app.create_crypto_app("ANKR_ERC20", 1).await;
    app.chain.anvil.restart_after(Duration::from_secs(2)).await.unwrap();
    let health = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "paywatch kept serving through the outage");
    app.pay(Token::AnkrErc20, second.2, second.3).await;
    app.wait_order(&second.1, 40, |o| o["status"] == "paid").await;
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &first.1).await, 1);
    app.stop().await;
}

/// Which of the servers runs the watcher, once exactly one does.
async fn the_one_watching(servers: &[&ServeProcess]) -> usize {
    let started = Instant::now();
    loop {
        let mut watching = Vec::new();
        for (i, s) in servers.iter().enumerate() {
            if s.is_watching().await {
                watching.push(i);
            }
        }
        assert!(watching.len() <= 1, "two watchers at once: {watching:?}");
        if let [one] = watching[..] {
            return one;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no server took the watcher");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_servers_on_one_postgres_run_one_watcher_and_the_survivor_takes_over() {
    let mut app = spawn_app(Options { backend: "postgres", confirmations: 1, ..Default::default() }).await;
    app.stop_server().await;
    let a = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    let b = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    let leader = the_one_watching(&[&a, &b]).await;
    for _ in 0..5 {
        assert_eq!(the_one_watching(&[&a, &b]).await, leader, "the lease stays put");
    }
    app.base = a.base.clone();
    let first = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, first.2, first.3).await;
    app.wait_order(&first.1, 20, |o| o["status"] == "paid").await;

    let (dead, survivor) = if leader == 0 { (a, b) } else { (b, a) };
    dead.kill9().await;
    assert_eq!(the_one_watching(&[&survivor]).await, 0, "the survivor took over");
    app.base = survivor.base.clone();
    let second = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, second.2, second.3).await;
    app.wait_order(&second.1, 20, |o| o["status"] == "paid").await;
    assert_paid_once_for_one_period(&app, &[first, second]).await;
    survivor.kill9().await;
    app.stop().await;
}

/// SQLite busy past its busy timeout (another writer holds the lock) is a 503 with
/// `Retry-After`, in the JSON error model, not a 500; once the lock is gone the same call works.
#[tokio::test]
async fn a_busy_sqlite_answers_503_with_retry_after() {
    let app = spawn_app(Options::default()).await;
    let mut holder = app.db.store.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *holder).await.unwrap();
    let body = crate::support::app::create_app_body("USDT_ERC20", 1);
    let r = app
        .http
        .post(format!("{}/v2alpha/app/v2/app", app.base))
        .bearer_auth(&app.api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let answer: serde_json::Value = r.json().await.unwrap();
    sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
    drop(holder);
    assert_eq!((status, answer["code"].as_str()), (503, Some("unavailable")), "{answer}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let (status, created) = app.post("/v2alpha/app/v2/app", &body).await;
    assert_eq!(status, 200, "{created}");
    app.stop().await;
}
