//! Issue 35: one writer of the books. Two writers that race on one order's stray funds, made to
//! meet on PostgreSQL: a gate trigger holds the first inside its transaction (after its reads,
//! before its writes) until the second has either finished or is waiting on a lock; then it
//! lets go, and the books are compared with the chain. Each failed before the ledger took the
//! order's lock (settle against a refund's creation: 5 USDT on the books for 3 at the address;
//! a failed refund against an apply: the applied fund grew by the refund's amount).

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use paywatch::money::Token;
use serde_json::{Value, json};

use crate::support::admin::{admin, funds};
use crate::support::app::{Options, TestApp, spawn_app};

const USDT: u64 = 1_000_000;

/// A trigger that holds every matching update of `table` (`when`, over OLD and NEW) until
/// `open_gate` runs.
async fn install_gate(app: &TestApp, table: &str, when: &str) {
    let sql = format!(
        "CREATE TABLE race_gate (open boolean); \
         CREATE FUNCTION hold_at_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           WHILE NOT EXISTS (SELECT 1 FROM race_gate) LOOP PERFORM pg_sleep(0.02); END LOOP; \
           RETURN NEW; END $$; \
         CREATE TRIGGER hold_at_gate BEFORE UPDATE ON {table} FOR EACH ROW WHEN ({when}) \
           EXECUTE FUNCTION hold_at_gate();"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(app.db.store.pool()).await.unwrap();
}

async fn open_gate(app: &TestApp) {
    sqlx::raw_sql("INSERT INTO race_gate VALUES (true)").execute(app.db.store.pool()).await.unwrap();
}

/// How many of this database's sessions wait on `event_type` (`Timeout` for the gate's sleep,
/// `Lock` for a row or advisory lock).
async fn waiting_on(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = $1",
    )
    .bind(event_type)
    .fetch_one(app.db.store.pool())
    .await
    .unwrap()
}

/// Waits until `until` holds, mining a block between looks when `mine` (the watcher and the
/// refund job act on blocks).
async fn wait_for<F: AsyncFnMut() -> bool>(app: &TestApp, what: &str, mine: bool, mut until: F) {
    let started = Instant::now();
    while !until().await {
        assert!(started.elapsed() < Duration::from_secs(30), "never: {what}");
        if mine {
            app.mine(1).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each stray row of `order_id`: (status, base units).
async fn rows_of(app: &TestApp, order_id: &str) -> Vec<(String, U256)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT status, amount_base FROM stray_funds WHERE order_id = $1 ORDER BY created_at, fund_id")
            .bind(order_id)
            .fetch_all(app.db.store.pool())
            .await
            .unwrap();
    rows.into_iter().map(|(s, a)| (s, a.parse().unwrap())).collect()
}

/// An app whose USDT order is overpaid by `over` USDT and paid: (order id, deposit address,
/// the overpaid fund).
async fn overpaid(app: &TestApp, over: u64) -> (String, alloy::primitives::Address, Value) {
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed + U256::from(over * USDT)).await;
    app.mine(2).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    let mut fund = None;
    wait_for(app, "the overpaid fund", false, async || {
        fund = funds(app, "?status=unattributed").await.into_iter().find(|f| f["order_id"] == order_id.as_str());
        fund.is_some()
    })
    .await;
    (order_id, address, fund.unwrap())
}

/// A payment's settle holds the order (its reads done, the fund read as 2 USDT open) while the
/// operator refunds the whole fund; then a 1 USDT payment's confirmation writes its stray row.
/// The books must say what the address holds beyond the order: 3 USDT, refunded or open.
#[tokio::test]
async fn a_settle_racing_a_refunds_creation_counts_the_money_once_postgres() {
    let app = spawn_app(Options { backend: "postgres", confirmations: 2, ..Default::default() }).await;
    let (order_id, address, fund) = overpaid(&app, 2).await;
    install_gate(&app, "orders", &format!("NEW.order_id = '{order_id}' AND NEW.confirmed_base <> OLD.confirmed_base"))
        .await;
    app.pay(Token::UsdtErc20, address, U256::from(USDT)).await;
    wait_for(&app, "the settle of the 1 USDT held at the gate", true, async || waiting_on(&app, "Timeout").await > 0)
        .await;

    let path = format!("/admin/funds/{}/refunds", fund["fund_id"].as_str().unwrap());
    let refund = tokio::spawn({
        let (http, url) = (app.http.clone(), format!("{}{path}", app.base));
        async move {
            let r = http.post(url).bearer_auth(crate::support::app::ADMIN_TOKEN).json(&json!({})).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    wait_for(&app, "the refund done or waiting on the order's lock", false, async || {
        refund.is_finished() || waiting_on(&app, "Lock").await > 0
    })
    .await;
    open_gate(&app).await;
    let (status, body) = refund.await.unwrap();
    assert_eq!(status, 200, "{body}");
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    wait_for(&app, "the 1 USDT confirmed", true, async || {
        let confirmed: String = sqlx::query_scalar("SELECT confirmed_base FROM orders WHERE order_id = $1")
            .bind(&order_id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
        let owed: String = sqlx::query_scalar("SELECT amount_base FROM orders WHERE order_id = $1")
            .bind(&order_id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
        confirmed.parse::<U256>().unwrap() == owed.parse::<U256>().unwrap() + U256::from(3 * USDT)
    })
    .await;
    let rows = rows_of(&app, &order_id).await;
    let on_books: U256 = rows.iter().map(|r| r.1).sum();
    assert_eq!(on_books, U256::from(3 * USDT), "stray rows (status, units) against 3 USDT over the order: {rows:?}");
    app.stop().await;
}

/// An apply of an order's open 2 USDT to another order is held inside its transaction (the fund
/// already applied, the target's sums not yet written) while a 1 USDT refund of the same order
/// fails (the Safe's transfer reverts: the Safe is blacklisted) and gives its money back. The applied fund must
/// stay the 2 the operator applied; the 1 must be open again on its own.
#[tokio::test]
async fn a_failed_refund_racing_an_apply_reopens_beside_it_postgres() {
    let app = spawn_app(Options { backend: "postgres", confirmations: 2, ..Default::default() }).await;
    let safe = PrivateKeySigner::random();
    crate::support::admin::fund_safe(&app, &safe).await;
    let (order_id, _, fund) = overpaid(&app, 3).await;
    let path = format!("/admin/funds/{}/refunds", fund["fund_id"].as_str().unwrap());
    let (status, refund) = admin(&app, reqwest::Method::POST, &path, Some(json!({"amount": "1"}))).await;
    assert_eq!(status, 200, "{refund}");
    let refund_id = refund["refund"]["refund_id"].as_str().unwrap().to_string();
    let to = format!("{:#x}", PrivateKeySigner::random().address());
    let claimed =
        app.http.post(format!("{}/refund/{refund_id}", app.base)).json(&json!({"address": to, "confirm": true}));
    assert_eq!(claimed.send().await.unwrap().status(), 200);
    let (status, body) = admin(&app, reqwest::Method::POST, &format!("/admin/refunds/{refund_id}/approve"), None).await;
    assert_eq!(status, 200, "{body}");
    let open = funds(&app, "?status=unattributed").await;
    let rest = open.iter().find(|f| f["order_id"] == order_id.as_str()).expect("the 2 USDT left open");
    assert_eq!(rest["amount_base"], (2 * USDT).to_string());
    let (_, target, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;

    install_gate(&app, "orders", &format!("NEW.order_id = '{target}'")).await;
    let apply = tokio::spawn({
        let url = format!("{}/admin/funds/{}/apply", app.base, rest["fund_id"].as_str().unwrap());
        let http = app.http.clone();
        let body = json!({"order_id": target});
        async move {
            let r = http.post(url).bearer_auth(crate::support::app::ADMIN_TOKEN).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    });
    wait_for(&app, "the apply held at the gate", false, async || waiting_on(&app, "Timeout").await > 0).await;
    // The Safe's transfer, recorded while pending, reverts once mined: the refund fails.
    let hash = crate::support::admin::safe_sends(&app, &safe, to.parse().unwrap(), U256::from(USDT), true).await;
    let sent = json!({"tx_hash": format!("{hash:#x}")});
    let (status, body) =
        admin(&app, reqwest::Method::POST, &format!("/admin/refunds/{refund_id}/sent"), Some(sent)).await;
    app.chain.deployer.anvil_set_auto_mine(true).await.unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for(&app, "the refund's failure done or waiting on a lock", true, async || {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{refund_id}"), None).await;
        detail["refund"]["status"] == "failed" || waiting_on(&app, "Lock").await > 0
    })
    .await;
    open_gate(&app).await;
    let (status, body) = apply.await.unwrap();
    assert_eq!(status, 200, "{body}");
    wait_for(&app, "the refund failed", true, async || {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{refund_id}"), None).await;
        detail["refund"]["status"] == "failed"
    })
    .await;
    let rows = rows_of(&app, &order_id).await;
    let by = |status: &str| rows.iter().filter(|r| r.0 == status).map(|r| r.1).collect::<Vec<_>>();
    assert_eq!(by("applied"), [U256::from(2 * USDT)], "the apply keeps what the operator applied: {rows:?}");
    assert_eq!(by("unattributed"), [U256::from(USDT)], "the failed refund's 1 USDT is open again: {rows:?}");
    assert_eq!(by("refunded"), [U256::ZERO], "the failed refund's row holds nothing: {rows:?}");
    let applied: String = sqlx::query_scalar("SELECT amount_base FROM stray_funds WHERE applied_order_id = $1")
        .bind(&target)
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(applied, (2 * USDT).to_string(), "the target counts 2 USDT applied");
    app.stop().await;
}
