//! Card payments, the deposit and payment lists, idempotency and the admin API, on both
//! databases where the data layer matters.

use paywatch::payments::calendar::add_months;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::str::FromStr;

use crate::support::app::{Options, TestApp, create_app_body, spawn_app};

fn card_app_body(card_id: &str, period: u32) -> Value {
    let mut body = create_app_body("CREDIT_CARD", period);
    body["pre_pay_info"]["card_id"] = json!(card_id);
    body
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(app.db.store.pool())
        .await
        .unwrap()
}

async fn a_card_pays_activates_and_extends(backend: &'static str) {
    let app = spawn_app(Options { backend, ..Default::default() }).await;
    let (status, quote) = app
        .post(
            "/v2alpha/USD/acquire_pre_amount",
            &json!({"cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03",
            "chart_name": "boinc", "cpu_limit": 1000, "mem_limit": 2000, "storage_limit": 20000, "period": 3}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(quote["amount"], quote["usd"], "a USD quote's amount is the USD");

    let before = paywatch::store::unix_now();
    let (status, created) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", 3)).await;
    assert_eq!(status, 200, "{created}");
    let app_id = created["app_id"].as_str().unwrap().to_string();
    let active = app.app_status(&app_id).await;
    assert_eq!(active["status"], "active");
    let start = active["app_start_time"].as_i64().unwrap();
    assert!(start >= before);
    let end = active["app_end_time"].as_i64().unwrap();
    assert_eq!(end, add_months(start, 3));
    let order = app.order(created["order_id"].as_str().unwrap()).await;
    assert_eq!((order["status"].as_str(), order["usd"].clone()), (Some("paid"), quote["usd"].clone()));

    // The seed's two-step card extension.
    let (status, ext) = app
        .post("/v2alpha/create_extend_order", &json!({"app_id": app_id, "period": "2", "pay_method": "CREDIT_CARD"}))
        .await;
    assert_eq!(status, 200, "{ext}");
    let (status, done) = app
        .post(
            "/v2alpha/after_create_extend_order/do_extend_app",
            &json!({"app_id": app_id, "period": "2", "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["message"], "success");
    assert_eq!(done["code"], ext["amount"], "the seed answers the amount charged in `code`");
    assert_eq!(
        app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(),
        add_months(end, 2),
        "moved by exactly 2 months"
    );

    // ExtendApp by card, as the seed sends it: a GET with a body and no period, so the app's
    // first period (3) applies.
    let r = app
        .http
        .get(format!("{}/v2alpha/teams/{}/extend_app", app.base, app.team_id))
        .bearer_auth(&app.api_key)
        .json(&json!({"pay_method": "CREDIT_CARD", "app_id": app_id, "card_id": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    let (status, done): (u16, Value) = (r.status().as_u16(), r.json().await.unwrap());
    assert_eq!((status, done["code"].as_i64()), (200, Some(0)), "{done}");
    assert_eq!(app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(), add_months(add_months(end, 2), 3));

    // One deposit row per charge, newest first, with the card.
    let (status, list) = app.get(&format!("/v2alpha/teams/{}/deposit_list", app.team_id)).await;
    assert_eq!(status, 200);
    let rows = list["deposit_list"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["card_id"] == "pm_card_visa" && r["pay_method"] == "CREDIT_CARD"));
    assert_eq!(rows[0]["app_end_time"].as_i64().unwrap(), add_months(add_months(end, 2), 3), "newest first");
    assert_eq!(rows[2]["app_end_time"].as_i64().unwrap(), end);
    assert_eq!(rows[2]["usd"], quote["usd"]);
    assert_eq!(rows[2]["project_name"], "xyh421--boinc-5");
    assert_eq!(rows[2]["app_total_time"].as_i64().unwrap(), (end - start) / 86_400);
    app.stop().await;
}

on_both_backends!(a_card_pays_activates_and_extends_on => a_card_pays_activates_and_extends);

#[tokio::test]
async fn declined_and_unknown_cards_leave_nothing_behind() {
    let app = spawn_app(Options::default()).await;
    for (card, status) in
        [("pm_card_chargeDeclined", 402), ("pm_card_chargeDeclinedInsufficientFunds", 402), ("pm_card_mystery", 422)]
    {
        let (got, err) = app.post("/v2alpha/app/v2/app", &card_app_body(card, 1)).await;
        assert_eq!(got, status, "{card}: {err}");
        assert!(err["message"].as_str().unwrap().len() > 5, "the reason is given: {err}");
    }
    let mut no_card = create_app_body("CREDIT_CARD", 1);
    no_card["pre_pay_info"]["card_id"] = json!("");
    let (got, err) = app.post("/v2alpha/app/v2/app", &no_card).await;
    assert_eq!(got, 422);
    assert!(err["message"].as_str().unwrap().contains("card_id"));
    for table in ["apps", "orders", "deposits", "webhook_outbox"] {
        assert_eq!(count(&app, table).await, 0, "{table} must stay empty");
    }
    app.stop().await;
}

async fn payment_list_matches_deposit_list(backend: &'static str) {
    let app = spawn_app(Options { backend, confirmations: 1, ..Default::default() }).await;
    for period in [1, 3, 12] {
        let (s, _) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", period)).await;
        assert_eq!(s, 200);
    }
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 6).await;
    app.pay(paywatch::money::Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    // One payment from last year, placed in its month directly: the list is by UTC month.
    sqlx::query(
        "UPDATE deposits SET deposit_time = 1598918400 WHERE deposit_id = (SELECT MIN(deposit_id) FROM deposits)",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();

    let (_, deposits) = app.get(&format!("/v2alpha/teams/{}/deposit_list?page_size=200", app.team_id)).await;
    let (status, months) = app.get(&format!("/v2alpha/{}/pre_payment_list", app.team_id)).await;
    assert_eq!(status, 200, "{months}");
    let months = months.as_array().unwrap();
    assert_eq!(months.len(), 2);
    assert_eq!(months[1]["period"], "2020-09-01", "newest month first");
    let mut flattened = Vec::new();
    for m in months {
        let sum: Decimal = m["app_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Decimal::from_str(r["usd"].as_str().unwrap()).unwrap())
            .sum();
        assert_eq!(Decimal::from_str(m["total_usd"].as_str().unwrap()).unwrap(), sum, "total equals its rows");
        flattened.extend(m["app_list"].as_array().unwrap().iter().cloned());
    }
    let deposits = deposits["deposit_list"].as_array().unwrap();
    assert_eq!(flattened.len(), deposits.len());
    for (p, d) in flattened.iter().zip(deposits) {
        assert_eq!(
            (&p["app_id"], &p["usd"], &p["amount"], &p["pay_method"]),
            (&d["app_id"], &d["usd"], &d["amount"], &d["pay_method"])
        );
        assert_eq!(p["billing_time"], d["deposit_time"]);
    }
    assert!(
        deposits
            .iter()
            .any(|d| d["pay_method"] == "USDT_ERC20" && d["transaction_hash"].as_str().unwrap().starts_with("0x"))
    );
    app.stop().await;
}

on_both_backends!(the_payment_list_adds_up_and_matches_the_deposit_list_on => payment_list_matches_deposit_list);

#[tokio::test]
async fn deposit_list_pages_are_bounded() {
    let app = spawn_app(Options::default()).await;
    for _ in 0..3 {
        app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", 1)).await;
    }
    let path = |q: &str| format!("/v2alpha/teams/{}/deposit_list?{q}", app.team_id);
    let (_, page2) = app.get(&path("page=2&page_size=2")).await;
    assert_eq!(page2["deposit_list"].as_array().unwrap().len(), 1);
    assert_eq!((page2["total"].as_i64(), page2["has_more"].as_bool()), (Some(3), Some(false)), "{page2}");
    let (_, page1) = app.get(&path("page=1&page_size=2")).await;
    assert_eq!((page1["total"].as_i64(), page1["has_more"].as_bool()), (Some(3), Some(true)), "{page1}");
    assert_eq!(app.get(&path("page_size=100000")).await.0, 422);
    assert_eq!(app.get(&path("page=0")).await.0, 422);
    assert_eq!(app.get(&path("page=abc")).await.0, 422);
    app.stop().await;
}

/// Without `page`/`page_size` the seed answers the whole list, not a first page of 50.
#[tokio::test]
async fn deposit_list_without_a_page_answers_every_deposit() {
    let app = spawn_app(Options::default()).await;
    for _ in 0..55 {
        let (status, body) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", 1)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, all) = app.get(&format!("/v2alpha/teams/{}/deposit_list", app.team_id)).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["deposit_list"].as_array().unwrap().len(), 55, "every deposit");
    assert_eq!((all["total"].as_i64(), all["has_more"].as_bool()), (Some(55), Some(false)));
    app.stop().await;
}

async fn post_with_key(app: &TestApp, key: &str, body: &Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/v2alpha/app/v2/app", app.base))
        .bearer_auth(&app.api_key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn idempotent_creates_make_one_app(backend: &'static str) {
    let app = spawn_app(Options { backend, ..Default::default() }).await;
    let body = card_app_body("pm_card_visa", 1);
    let calls = (0..20).map(|_| post_with_key(&app, "create-once-1", &body));
    let answers = futures_util::future::join_all(calls).await;
    let first = &answers[0];
    for a in &answers {
        assert_eq!(a.0, 200, "{}", a.1);
        assert_eq!(a.1, first.1, "every call gets the same answer");
    }
    assert_eq!(count(&app, "apps").await, 1, "one app for twenty calls");
    assert_eq!(count(&app, "deposits").await, 1, "one charge recorded");
    let mut other = body.clone();
    other["name"] = json!("another");
    assert_eq!(post_with_key(&app, "create-once-1", &other).await.0, 422, "same key, different body");
    assert_eq!(post_with_key(&app, "create-once-2", &other).await.0, 200, "a new key is a new request");
    app.stop().await;
}

on_both_backends!(twenty_parallel_creates_with_one_key_make_one_app_on => idempotent_creates_make_one_app);

#[tokio::test]
async fn admin_creates_teams_and_revokes_keys() {
    let app = spawn_app(Options::default()).await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(crate::support::app::ADMIN_TOKEN);
    let r =
        admin(app.http.post(format!("{}/admin/teams", app.base))).json(&json!({"name": "beta"})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let team: Value = r.json().await.unwrap();
    let key = team["api_key"].as_str().unwrap();
    let list = |key: &str| {
        app.http
            .get(format!("{}/v2alpha/teams/{}/deposit_list", app.base, team["team_id"].as_str().unwrap()))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(list(key).await.unwrap().status(), 200);
    let wrong = app
        .http
        .post(format!("{}/admin/teams", app.base))
        .bearer_auth("test-admin-token-0123456780")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401, "a wrong admin token");
    // One rule for names, in characters: 200 CJK characters (600 bytes) pass, 201 are a 422.
    for (name, want) in [("团".repeat(200), 200), ("团".repeat(201), 422), ("   ".to_string(), 422)] {
        let r = admin(app.http.post(format!("{}/admin/teams", app.base)))
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, want, "{} characters: {body}", name.chars().count());
        if want == 422 {
            assert_eq!(body["code"], "invalid", "{body}");
        }
    }
    assert_eq!(
        app.http
            .post(format!("{}/admin/teams", app.base))
            .bearer_auth(&app.api_key)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        401,
        "a team key is not the admin token"
    );
    let revoke = admin(app.http.delete(format!(
        "{}/admin/teams/{}/keys/{}",
        app.base,
        team["team_id"].as_str().unwrap(),
        team["key_id"].as_str().unwrap()
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(revoke.status(), 200);
    assert_eq!(list(key).await.unwrap().status(), 401, "a revoked key is refused");
    app.stop().await;
}

/// Keys are verified through a sub-second cache: the process that revokes a key refuses it at
/// once, another process sharing the PostgreSQL database within a second.
#[tokio::test]
async fn a_revoked_key_is_refused_at_once_here_and_within_a_second_elsewhere() {
    let app = spawn_app(Options { backend: "postgres", ..Default::default() }).await;
    let other =
        crate::support::process::ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap())
            .await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(crate::support::app::ADMIN_TOKEN);
    let team: Value = admin(app.http.post(format!("{}/admin/teams", app.base)))
        .json(&json!({"name": "cached"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (team_id, key) = (team["team_id"].as_str().unwrap(), team["api_key"].as_str().unwrap());
    let http = app.http.clone();
    let status = move |base: String| {
        let (http, url) = (http.clone(), format!("{base}/v2alpha/teams/{team_id}/deposit_list"));
        let key = key.to_string();
        async move { http.get(url).bearer_auth(key).send().await.unwrap().status().as_u16() }
    };
    for base in [&app.base, &other.base] {
        assert_eq!(status(base.clone()).await, 200, "a new key works at once on {base}");
        assert_eq!(status(base.clone()).await, 200, "and again, from the cache");
    }
    let revoke =
        admin(app.http.delete(format!("{}/admin/teams/{team_id}/keys/{}", app.base, team["key_id"].as_str().unwrap())));
    assert_eq!(revoke.send().await.unwrap().status(), 200);
    let revoked = std::time::Instant::now();
    assert_eq!(status(app.base.clone()).await, 401, "the revoking process refuses the key at once");
    while status(other.base.clone()).await != 401 {
        assert!(revoked.elapsed() < std::time::Duration::from_secs(5), "the other process still takes the key");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let took = revoked.elapsed();
    assert!(took <= std::time::Duration::from_millis(1_500), "the other process took {took:?} to refuse it");
    other.kill9().await;
    app.stop().await;
}

#[tokio::test]
async fn deposits_are_unique_per_order() {
    let app = spawn_app(Options::default()).await;
    let (_, created) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", 1)).await;
    let order_id = created["order_id"].as_str().unwrap();
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, order_id).await, 1);
    // A second deposit for the same order is refused by the database itself.
    let second = paywatch::store::deposits::NewDeposit {
        team_id: app.team_id.clone(),
        app_id: created["app_id"].as_str().map(str::to_string),
        order_id: order_id.to_string(),
        pay_method: "CREDIT_CARD".into(),
        usd: "1".into(),
        amount: "1".into(),
        expected_amount: "1".into(),
        address: None,
        transaction_hash: None,
        card_id: Some("pm_card_visa".into()),
        app_end_time: None,
        deposit_time: 0,
        app_before: None,
    };
    let refused = paywatch::store::deposits::insert(app.db.store.pool(), &second).await.unwrap_err();
    assert!(refused.is_unique_violation(), "{refused}");
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, order_id).await, 1);
    app.stop().await;
}

/// The charge goes through but the database refuses the record (a real failure, injected with
/// a PostgreSQL trigger): the charge is refunded, the answer says so, and nothing is left behind.
#[tokio::test]
async fn a_card_charge_whose_order_cannot_be_recorded_is_refunded() {
    let app = spawn_app(Options { backend: "postgres", ..Default::default() }).await;
    let pool = app.db.store.pool();
    sqlx::query(
        "CREATE FUNCTION refuse_card_deposits() RETURNS trigger LANGUAGE plpgsql AS \
         'BEGIN RAISE EXCEPTION ''injected failure''; END'",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_card_deposits BEFORE INSERT ON deposits FOR EACH ROW \
         WHEN (NEW.card_id IS NOT NULL) EXECUTE FUNCTION refuse_card_deposits()",
    )
    .execute(pool)
    .await
    .unwrap();
    let refunds = |s: &prometheus_parse::Scrape| {
        crate::support::metrics::value(s, "paywatch_card_refunds_total", &[("result", "refunded")])
    };
    let before = refunds(&crate::support::metrics::scrape(&app).await);

    let (status, answer) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa", 1)).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("refunded"), "{answer}");
    assert!(refunds(&crate::support::metrics::scrape(&app).await) >= before + 1.0, "the refund is counted");
    let (apps, orders) = (count(&app, "apps").await, count(&app, "orders").await);
    assert_eq!((apps, orders), (0, 0), "the app and its order were rolled back with the record");
    // The processor's own ledger: charged once and refunded; the intent says refunded.
    let refunded: (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(refunded_at) FROM sandbox_charges").fetch_one(pool).await.unwrap();
    assert_eq!(refunded, (1, 1), "one charge, refunded");
    let state: String = sqlx::query_scalar("SELECT state FROM card_charges").fetch_one(pool).await.unwrap();
    assert_eq!(state, "refunded");
    app.stop().await;
}
