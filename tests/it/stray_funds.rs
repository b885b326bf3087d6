//! Stray funds on anvil (issue 13): a partial payment on an expired order, a payment after
//! the late window and the wrong token each appear in `GET /admin/funds` (announced by
//! `funds.unattributed`), are swept with everything else, and one is applied to another open
//! order of the team, which becomes paid; another is marked refunded.

use alloy::primitives::{Address, U256};
use paywatch::config::Config;
use paywatch::devnet::anvil::accounts;
use paywatch::money::Token;
use serde_json::{Value, json};

use crate::support::admin::{admin, funds};
use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::paywatch_beside_server;
use crate::support::watch::wait_processed;

/// Orders raced at once in the concurrency tests, each apply holding a connection in its window.
const RACES: usize = 20;
/// A pool with room for every raced apply and the watcher.
const ROOMY_POOL: (&str, &str) = ("[database]\n", "[database]\nmax_connections = 40\n");

/// Runs the expiry job as the scheduler would, by the chain's clock.
async fn run_expiry(app: &TestApp) {
    let config = Config::load(&app.config_path).unwrap();
    paywatch::jobs::run_expiry(&app.db.store, &config, false, paywatch::store::unix_now()).await.unwrap();
}

async fn chain_now(app: &TestApp) -> i64 {
    use alloy::providers::Provider;
    let head = app.head().await;
    app.chain.deployer.get_block_by_number(head.into()).await.unwrap().unwrap().header.timestamp as i64
}

async fn stray_funds_are_listed_swept_and_applied(backend: &'static str) {
    let app = spawn_app(Options {
        backend,
        confirmations: 1,
        extra_config: format!("[signer]\nprivate_key = \"{}\"\n", accounts::DEPLOYER_KEY),
        config_edits: vec![("late_window_hours = 24", "late_window_hours = 0")],
        ..Default::default()
    })
    .await;
    let usdt = app.chain.token(Token::UsdtErc20);
    let (_, partial, partial_at, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, late, late_at, late_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, wrong, wrong_at, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let (target_app, target, _, target_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    assert_eq!(target_owed, late_owed, "the same resources price the same");

    let part = owed * U256::from(4u8) / U256::from(10u8);
    app.pay(Token::UsdtErc20, partial_at, part).await;
    app.wait_order(&partial, 20, |o| o["status"] == "partially_paid").await;
    // USDT to an ANKR order's address: stray at once.
    let wrong_amount = U256::from(5_000_000u64);
    app.pay(Token::UsdtErc20, wrong_at, wrong_amount).await;
    app.mine(1).await;
    wait_processed(&app, 30).await;

    // Two orders reach their expiry by the chain's clock (late window 0): the partial one's
    // money is stray once it expires; the other is paid in full only afterwards.
    let expired_at = chain_now(&app).await - 10;
    for order in [&partial, &late] {
        sqlx::query("UPDATE orders SET expires_at = $1 WHERE order_id = $2")
            .bind(expired_at)
            .bind(order)
            .execute(app.db.store.pool())
            .await
            .unwrap();
    }
    app.mine(1).await;
    wait_processed(&app, 30).await;
    run_expiry(&app).await;
    assert_eq!(app.order(&partial).await["status"], "expired");
    app.pay(Token::UsdtErc20, late_at, late_owed).await;
    app.mine(1).await;
    let after = app.wait_order(&late, 20, |o| o["confirmed"] != "0").await;
    assert_eq!(after["status"], "expired", "a payment after the late window credits nothing: {after}");

    let listed = funds(&app, "?status=unattributed").await;
    let reason_of = |order: &str| {
        listed.iter().find(|f| f["order_id"] == order).map(|f| (f["reason"].clone(), f["amount_base"].clone()))
    };
    assert_eq!(reason_of(&partial), Some((json!("partial_on_expired_order"), json!(part.to_string()))), "{listed:?}");
    assert_eq!(reason_of(&late), Some((json!("after_late_window"), json!(late_owed.to_string()))), "{listed:?}");
    assert_eq!(reason_of(&wrong), Some((json!("wrong_token"), json!(wrong_amount.to_string()))), "{listed:?}");
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(funds(&app, &format!("?token={usdt:#x}&team_id={}", app.team_id)).await.len(), 3);
    assert_eq!(funds(&app, "?status=applied").await.len(), 0);
    for bad in ["/admin/funds?status=lost", "/admin/funds?token=nope", "/admin/sweeps?state=gone"] {
        let (status, body) = admin(&app, reqwest::Method::GET, bad, None).await;
        assert_eq!((status, body["code"].as_str()), (422, Some("invalid")), "{bad}: {body}");
    }
    let announced: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE event_type = 'funds.unattributed'")
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
    assert_eq!(announced, 3, "each announced once");

    // Swept like any deposit: every stray address is emptied into the treasury.
    let treasury_before = app.chain.balance_of(usdt, app.chain.treasury).await;
    let out = paywatch_beside_server(&["sweep", "--config", app.config_path.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice::<Value>(&out.stdout).unwrap()["chains"]["main"].clone();
    assert_eq!(report["swept"], 3, "{report}");
    for address in [partial_at, late_at, wrong_at] {
        assert_eq!(app.chain.balance_of(usdt, address).await, U256::ZERO, "{address} swept");
    }
    assert_eq!(app.chain.balance_of(usdt, app.chain.treasury).await - treasury_before, part + late_owed + wrong_amount);

    // The late payment is applied to the team's open order, which becomes paid.
    let fund_id =
        |order: &str| listed.iter().find(|f| f["order_id"] == order).unwrap()["fund_id"].as_str().unwrap().to_string();
    let post = reqwest::Method::POST;
    let wrong_order = json!({"order_id": wrong});
    let (status, body) =
        admin(&app, post.clone(), &format!("/admin/funds/{}/apply", fund_id(&late)), Some(wrong_order)).await;
    assert_eq!(status, 422, "USDT cannot pay an ANKR order: {body}");
    let (status, body) =
        admin(&app, post.clone(), &format!("/admin/funds/{}/apply", fund_id(&late)), Some(json!({"order_id": target})))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_status"], "paid", "{body}");
    assert_eq!(body["fund"]["status"], "applied");
    let paid = app.order(&target).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(app.app_status(&target_app).await["status"], "active");
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &target).await, 1);
    let (status, _) =
        admin(&app, post.clone(), &format!("/admin/funds/{}/apply", fund_id(&late)), Some(json!({"order_id": target})))
            .await;
    assert_eq!(status, 409, "applied once");

    // The wrong token is refunded by the operator and recorded.
    let refund = json!({"tx_hash": format!("0x{}", "ab".repeat(32))});
    let (status, body) =
        admin(&app, post.clone(), &format!("/admin/funds/{}/refunded", fund_id(&wrong)), Some(refund)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("refunded")), "{body}");
    let (status, _) =
        admin(&app, post, &format!("/admin/funds/{}/refunded", fund_id(&wrong)), Some(json!({"tx_hash": "nope"})))
            .await;
    assert_eq!(status, 422);

    // Later steps do not list settled money again; only the partial payment is left.
    app.mine(2).await;
    wait_processed(&app, 30).await;
    run_expiry(&app).await;
    let open: Vec<Address> = funds(&app, "?status=unattributed")
        .await
        .iter()
        .map(|f| f["deposit_address"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(open, vec![partial_at]);
    app.stop().await;
}

on_both_backends!(stray_funds_are_listed_swept_and_applied);

/// Issue 26, item 5: an order paid in part and also sent another token expires; once its late
/// window closes its partial payment is listed, beside the wrong-token fund it already had (an
/// order with any fund was taken as already judged, so the partial was never listed).
async fn a_partial_beside_a_wrong_token_fund_is_listed_when_the_window_closes(backend: &'static str) {
    let app = spawn_app(Options {
        backend,
        confirmations: 1,
        config_edits: vec![("late_window_hours = 24", "late_window_hours = 0")],
        ..Default::default()
    })
    .await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let part = owed * U256::from(4u8) / U256::from(10u8);
    app.pay(Token::UsdtErc20, address, part).await;
    app.pay(Token::AnkrErc20, address, U256::from(7u64)).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "partially_paid").await;
    let started = std::time::Instant::now();
    while !funds(&app, "?status=unattributed").await.iter().any(|f| f["order_id"] == order_id.as_str()) {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the wrong-token fund is listed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expires_at = app.order(&order_id).await["expires_at"].as_i64().unwrap();
    let config = Config::load(&app.config_path).unwrap();
    for _ in 0..2 {
        paywatch::jobs::run_expiry(&app.db.store, &config, true, expires_at + 60).await.unwrap();
    }
    assert_eq!(app.order(&order_id).await["status"], "expired");
    let reasons: Vec<(Value, Value)> = funds(&app, "?status=unattributed")
        .await
        .into_iter()
        .filter(|f| f["order_id"] == order_id.as_str())
        .map(|f| (f["reason"].clone(), f["amount_base"].clone()))
        .collect();
    assert!(reasons.contains(&(json!("wrong_token"), json!("7"))), "{reasons:?}");
    assert!(reasons.contains(&(json!("partial_on_expired_order"), json!(part.to_string()))), "{reasons:?}");
    app.stop().await;
}

on_both_backends!(a_partial_beside_a_wrong_token_fund_is_listed_when_the_window_closes);

/// Issue 26, item 3 (PostgreSQL): two stray funds applied to one order at the same moment, each
/// less than the order and both together more. A trigger holds each apply open between its fund
/// update and the order's settle, so both settles read at once; RACES (20) orders, every one must end
/// paid (without a lock on the order, each settle saw only its own fund and the last write left
/// the order partially paid although covered).
#[tokio::test]
async fn two_funds_applied_to_one_order_at_once_both_count_on_postgres() {
    let app = spawn_app(Options {
        backend: "postgres",
        confirmations: 1,
        config_edits: vec![ROOMY_POOL],
        ..Default::default()
    })
    .await;
    let mut funds_for = Vec::new();
    for _ in 0..RACES {
        let (_, target, _, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        let extra = owed * U256::from(6u8) / U256::from(10u8);
        let mut sources = Vec::new();
        for _ in 0..2 {
            let (_, source, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
            app.pay(Token::UsdtErc20, address, owed + extra).await;
            sources.push(source);
        }
        funds_for.push((target, sources));
    }
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let listed = funds(&app, "?status=unattributed").await;
    let fund_of = |order: &str| {
        listed.iter().find(|f| f["order_id"] == order).unwrap_or_else(|| panic!("no fund from {order}: {listed:?}"))
            ["fund_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    sqlx::raw_sql(
        "CREATE FUNCTION slow_apply() RETURNS trigger AS $$ BEGIN \
           IF NEW.status = 'applied' THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_apply BEFORE UPDATE ON stray_funds FOR EACH ROW EXECUTE FUNCTION slow_apply();",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let apply = |fund: String, order: String| {
        let app = &app;
        async move {
            admin(app, reqwest::Method::POST, &format!("/admin/funds/{fund}/apply"), Some(json!({"order_id": order})))
                .await
        }
    };
    let mut races = Vec::new();
    for (target, sources) in &funds_for {
        races.push(futures_util::future::join(
            apply(fund_of(&sources[0]), target.clone()),
            apply(fund_of(&sources[1]), target.clone()),
        ));
    }
    for ((a, body_a), (b, body_b)) in futures_util::future::join_all(races).await {
        assert_eq!((a, b), (200, 200), "{body_a} {body_b}");
    }
    for (target, _) in &funds_for {
        let order = app.order(target).await;
        assert_eq!(order["status"], "paid", "both funds count: {order:#}");
    }
    app.stop().await;
}

/// Issue 26, item 4: a fund applied to an order that then closes unpaid (expired, late window
/// over) goes back to being stray where it came from: listed as unattributed again, counted no
/// more by the closed order, and the expiry job stops re-selecting that order (it was applied
/// to it forever, listed nowhere, and the job picked the order again on every run).
async fn funds_applied_to_an_order_that_closes_unpaid_are_unattributed_again(backend: &'static str) {
    let app = spawn_app(Options {
        backend,
        confirmations: 1,
        config_edits: vec![("late_window_hours = 24", "late_window_hours = 0")],
        ..Default::default()
    })
    .await;
    let (_, target, _, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, source, address, source_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let extra = owed / U256::from(4u8);
    app.pay(Token::UsdtErc20, address, source_owed + extra).await;
    app.wait_order(&source, 20, |o| o["status"] == "paid").await;
    let fund = wait_fund_of(&app, &source).await;
    let (status, body) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/admin/funds/{}/apply", fund["fund_id"].as_str().unwrap()),
        Some(json!({"order_id": target})),
    )
    .await;
    assert_eq!((status, body["order_status"].as_str()), (200, Some("partially_paid")), "{body}");
    let expires_at = app.order(&target).await["expires_at"].as_i64().unwrap();
    let config = Config::load(&app.config_path).unwrap();
    for _ in 0..2 {
        paywatch::jobs::run_expiry(&app.db.store, &config, true, expires_at + 60).await.unwrap();
    }
    let closed = app.order(&target).await;
    assert_eq!(closed["status"], "expired", "{closed:#}");
    let listed = funds(&app, "?status=unattributed").await;
    let back: Vec<&Value> = listed.iter().filter(|f| f["order_id"] == source.as_str()).collect();
    assert_eq!(back.len(), 1, "the fund is stray at its order again: {listed:#?}");
    assert_eq!(back[0]["amount_base"], extra.to_string());
    assert!(funds(&app, "?status=applied").await.is_empty(), "no fund stays applied to a closed order");
    let unchecked =
        paywatch::store::stray_funds::closed_orders_unchecked(app.db.store.pool(), expires_at + 600).await.unwrap();
    assert!(!unchecked.contains(&target), "the expiry job keeps re-selecting the closed order");
    app.stop().await;
}

on_both_backends!(funds_applied_to_an_order_that_closes_unpaid_are_unattributed_again);

/// Until all RACES applies sleep in their trigger on an `UPDATE <table>`: each inside its window.
async fn all_in_their_window(app: &TestApp, table: &str) {
    let started = std::time::Instant::now();
    loop {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE 'UPDATE ' || $1 || '%'",
        )
        .bind(table)
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
        if sleeping == RACES as i64 {
            return;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{sleeping} applies in their window");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The unattributed fund of `order_id`, once listed.
async fn wait_fund_of(app: &TestApp, order_id: &str) -> Value {
    let started = std::time::Instant::now();
    loop {
        let listed = funds(app, "?status=unattributed").await;
        if let Some(f) = listed.into_iter().find(|f| f["order_id"] == order_id) {
            return f;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "no fund from {order_id}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Issue 26, item 11 (PostgreSQL): the watcher settles an order whose stray fund the operator
/// is applying elsewhere at that moment. A trigger holds each apply 1.5 s after its fund
/// update; meanwhile the source order is overpaid again and the watcher confirms it. RACES (20) orders
/// at once: every applied fund keeps the amount the target was credited with, and the new
/// overpayment is a new unattributed fund (the watcher's update overwrote the applied row:
/// the target counted one amount, the fund said another, and the new money was listed nowhere).
#[tokio::test]
async fn a_fund_applied_while_the_watcher_rewrites_it_keeps_its_amount_on_postgres() {
    let app = spawn_app(Options {
        backend: "postgres",
        confirmations: 1,
        config_edits: vec![ROOMY_POOL],
        ..Default::default()
    })
    .await;
    let mut pairs = Vec::new();
    for _ in 0..RACES {
        let (_, target, _, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        let (_, source, address, source_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        let extra = owed / U256::from(4u8);
        app.pay(Token::UsdtErc20, address, source_owed + extra).await;
        pairs.push((target, source, address, extra));
    }
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let mut funds_of = Vec::new();
    for (_, source, _, _) in &pairs {
        funds_of.push(wait_fund_of(&app, source).await["fund_id"].as_str().unwrap().to_string());
    }
    sqlx::raw_sql(
        "CREATE FUNCTION slow_apply() RETURNS trigger AS $$ BEGIN \
           IF NEW.status = 'applied' THEN PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_apply BEFORE UPDATE ON stray_funds FOR EACH ROW EXECUTE FUNCTION slow_apply();",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let applies = pairs.iter().zip(&funds_of).map(|((target, ..), fund)| {
        let app = &app;
        async move {
            admin(app, reqwest::Method::POST, &format!("/admin/funds/{fund}/apply"), Some(json!({"order_id": target})))
                .await
        }
    });
    let more = U256::from(1_000u64);
    let pay_again = async {
        // Every apply is inside its window (its trigger sleeping) before the payments are made.
        all_in_their_window(&app, "stray_funds").await;
        for (_, _, address, _) in &pairs {
            app.pay(Token::UsdtErc20, *address, more).await;
        }
    };
    let (answers, ()) = futures_util::future::join(futures_util::future::join_all(applies), pay_again).await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
    }
    wait_processed(&app, 30).await;
    let applied_funds = funds(&app, "?status=applied").await;
    for ((target, source, _, extra), fund) in pairs.iter().zip(&funds_of) {
        let applied = applied_funds.iter().find(|f| f["fund_id"] == fund.as_str()).expect("the fund is applied");
        assert_eq!(applied["amount_base"], extra.to_string(), "the applied fund was rewritten: {applied}");
        let credited = app.order(target).await;
        assert_eq!(credited["status"], "partially_paid", "{credited:#}");
        let started = std::time::Instant::now();
        loop {
            let listed = funds(&app, "?status=unattributed").await;
            if listed.iter().any(|f| f["order_id"] == source.as_str() && f["amount_base"] == more.to_string()) {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "the new overpayment of {source} is listed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    app.stop().await;
}

/// Issue 26, item 3, the second race (PostgreSQL): a fund applied to an order while the
/// watcher confirms the order's own transfer. A trigger holds each apply 1.5 s between its
/// settle's reading and its write of the order; inside that window a block confirms the
/// transfers. RACES (20) orders, each covered only by the two together: every apply answers 200 and
/// every order ends paid. Without the order's lock the apply's write found the order changed
/// under it (503); with it, but the watcher locking its orders only when it settles them, the
/// watcher's confirmation held the orders' change notes while waiting on their locks: deadlock
/// (503).
#[tokio::test]
async fn a_fund_applied_while_the_watcher_confirms_the_orders_transfer_counts_on_postgres() {
    let app = spawn_app(Options {
        backend: "postgres",
        confirmations: 30,
        config_edits: vec![ROOMY_POOL],
        ..Default::default()
    })
    .await;
    let mut pairs = Vec::new();
    for _ in 0..RACES {
        let (_, target, target_address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        let (_, source, address, source_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        let part = owed * U256::from(6u8) / U256::from(10u8);
        app.pay(Token::UsdtErc20, address, source_owed + part).await;
        pairs.push((target, target_address, source, part));
    }
    app.mine(30).await;
    let mut funds_of = Vec::new();
    for (_, _, source, _) in &pairs {
        funds_of.push(wait_fund_of(&app, source).await["fund_id"].as_str().unwrap().to_string());
    }
    // Each target's own part: seen, not yet 30 deep (one block per payment).
    for (_, target_address, _, part) in &pairs {
        app.pay(Token::UsdtErc20, *target_address, *part).await;
    }
    wait_processed(&app, 30).await;
    for (target, ..) in &pairs {
        let seen = app.order(target).await;
        assert_eq!(
            (seen["status"].as_str(), seen["confirmed"].as_str()),
            (Some("awaiting_payment"), Some("0")),
            "{seen:#}"
        );
    }
    // The apply's write is the one that adds the fund to what was seen.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_apply_write() RETURNS trigger AS $$ BEGIN \
           IF NEW.seen_base <> OLD.seen_base THEN PERFORM pg_sleep(1.5); END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
         CREATE TRIGGER slow_apply_write BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION slow_apply_write();",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let applies = pairs.iter().zip(&funds_of).map(|((target, ..), fund)| {
        let app = &app;
        async move {
            admin(app, reqwest::Method::POST, &format!("/admin/funds/{fund}/apply"), Some(json!({"order_id": target})))
                .await
        }
    });
    let confirm = async {
        all_in_their_window(&app, "orders").await;
        app.mine(30).await;
    };
    let (answers, ()) = futures_util::future::join(futures_util::future::join_all(applies), confirm).await;
    for (status, body) in answers {
        assert_eq!(status, 200, "{body}");
    }
    for (target, ..) in &pairs {
        app.wait_order(target, 30, |o| o["status"] == "paid").await;
    }
    app.stop().await;
}

/// A reorg meets an apply: a fund (an overpayment) applied to another order, whose payment
/// then leaves the chain. The money no longer exists, so the order it paid loses it (its
/// payment is reversed) and the fund is gone; nothing is credited twice or from nothing. The
/// soak found it (an awaiting order whose stray funds had no transfer behind them).
async fn a_fund_whose_money_a_reorg_takes_is_taken_back_from_the_order_it_paid(backend: &'static str) {
    use alloy::providers::ext::AnvilApi;
    use alloy::rpc::types::anvil::ReorgOptions;
    let app = spawn_app(Options { backend, confirmations: 2, ..Default::default() }).await;
    let (target_app, target, _, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, source, address, source_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let paid_in = app.head().await + 1;
    app.pay(Token::UsdtErc20, address, source_owed + owed).await;
    app.mine(2).await;
    let fund = wait_fund_of(&app, &source).await;
    assert_eq!(fund["amount_base"], owed.to_string().as_str(), "{fund}");
    let apply = format!("/admin/funds/{}/apply", fund["fund_id"].as_str().unwrap());
    let (status, body) = admin(&app, reqwest::Method::POST, &apply, Some(json!({"order_id": target}))).await;
    assert_eq!(status, 200, "{body}");
    app.wait_order(&target, 20, |o| o["status"] == "paid").await;
    assert_eq!(app.app_status(&target_app).await["status"], "active");

    // The block with the overpayment is replaced by one without it.
    let depth = app.head().await - paid_in + 1;
    app.chain.deployer.anvil_reorg(ReorgOptions { depth, tx_block_pairs: vec![] }).await.unwrap();
    app.mine(3).await;
    wait_processed(&app, 30).await;
    app.wait_order(&source, 20, |o| o["status"] == "awaiting_payment").await;
    let target_now = app.wait_order(&target, 20, |o| o["status"] != "paid").await;
    assert_eq!(
        (target_now["status"].as_str(), target_now["confirmed"].as_str()),
        (Some("awaiting_payment"), Some("0"))
    );
    assert_ne!(app.app_status(&target_app).await["status"], "active", "the app paid by vanished money stops");
    let left: Vec<Value> = funds(&app, "").await.into_iter().filter(|f| f["order_id"] == source.as_str()).collect();
    assert!(left.is_empty(), "no fund without money behind it: {left:?}");
    app.stop().await;
}

on_both_backends!(a_fund_whose_money_a_reorg_takes_is_taken_back_from_the_order_it_paid);

/// Issue 26, item 11: stray-fund lateness is judged by the chain's clock. The chain runs 2 hours
/// ahead of the host: an order's late window (0 here) has closed by the chain's clock though not
/// by the host's. A full payment then is listed as `after_late_window` by the watcher's own step,
/// before any expiry run (judged by the host's clock the window was open, and nothing was listed).
async fn stray_lateness_follows_the_chains_clock_not_the_hosts(backend: &'static str) {
    use alloy::providers::ext::AnvilApi;
    let app = spawn_app(Options {
        backend,
        confirmations: 1,
        config_edits: vec![("late_window_hours = 24", "late_window_hours = 0")],
        ..Default::default()
    })
    .await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.chain.deployer.anvil_increase_time(2 * 3600).await.unwrap();
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let expires_at = app.order(&order_id).await["expires_at"].as_i64().unwrap();
    assert!(
        chain_now(&app).await > expires_at && paywatch::store::unix_now() < expires_at,
        "the window is closed by the chain only"
    );
    run_expiry(&app).await;
    assert_eq!(app.order(&order_id).await["status"], "expired");
    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(1).await;
    wait_processed(&app, 30).await;
    let fund = wait_fund_of(&app, &order_id).await;
    assert_eq!(
        (fund["reason"].as_str(), fund["amount_base"].as_str()),
        (Some("after_late_window"), Some(owed.to_string().as_str()))
    );
    assert_eq!(app.order(&order_id).await["status"], "expired", "a payment after the window credits nothing");
    app.stop().await;
}

on_both_backends!(stray_lateness_follows_the_chains_clock_not_the_hosts);
