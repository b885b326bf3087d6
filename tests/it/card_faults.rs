//! Card money under faults (issue 13): a fault between charge and record (a slow card past
//! the request timeout, a client that leaves, an error after the charge, a SIGKILL of
//! `paywatch serve` mid-charge) charges at most once and is recorded or given up within two
//! minutes, with a cart order's stock kept; ExtendApp (GET and POST), do_extend_app and cart
//! orders retried with and without an Idempotency-Key charge and extend once; a request dropped
//! after its claim is answered, once its lease runs out, with the same app.

use std::time::{Duration, Instant};

use paywatch::devnet::anvil::free_port;
use paywatch::payments::calendar::add_months;
use paywatch::store::unix_now;
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, create_app_body, spawn_app};
use crate::support::catalog::{gpu_order, stock, with_demo_catalog};
use crate::support::process::ServeProcess;

const RECOVERY: Duration = Duration::from_secs(120);

fn options(backend: &'static str, request_timeout_s: u64) -> Options {
    Options {
        backend,
        extra_config: "[cards]\nrecover_after_s = 1\n".into(),
        config_edits: vec![(
            "heartbeat_secs = 5",
            leak(format!("heartbeat_secs = 5\nrequest_timeout_s = {request_timeout_s}")),
        )],
        ..Default::default()
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(app.db.store.pool()).await.unwrap()
}

/// Waits (up to the promised two minutes) until `sql` counts `want`.
async fn wait_count(app: &TestApp, sql: &str, want: i64) {
    let started = Instant::now();
    loop {
        let now = count(app, sql).await;
        if now == want {
            return;
        }
        assert!(started.elapsed() < RECOVERY, "{sql}: {now}, wanted {want} within two minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn send(
    app: &TestApp,
    base: &str,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut r = app.http.request(method, format!("{base}{path}")).bearer_auth(&app.api_key).json(body);
    if let Some(key) = key {
        r = r.header("Idempotency-Key", key);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn card_app_body(card: &str) -> Value {
    let mut body = create_app_body("CREDIT_CARD", 1);
    body["pre_pay_info"]["card_id"] = json!(card);
    body
}

fn card_cart(card: &str) -> Value {
    let mut body = gpu_order("CREDIT_CARD");
    body["card_id"] = json!(card);
    body
}

async fn faults_between_charge_and_record_in_process(backend: &'static str) {
    let app = with_demo_catalog(options(backend, 1)).await;
    let stock_before = stock(&app, 2).await;

    // The slow card answers after the 1 s request timeout: 408, and the charge is recorded anyway.
    let (status, body) = app.post("/v2alpha/app/v2/app", &card_app_body("pm_card_visa_slow_3")).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["code"], "timeout", "the JSON error model: {body}");
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 1).await;
    let app_id: String = sqlx::query_scalar("SELECT app_id FROM card_charges WHERE state = 'recorded'")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(app.app_status(&app_id).await["status"], "active");

    // A cart order on the slow card: its stock stays taken once, with its reservation.
    let (status, _) = app.post("/v1/cart/order", &card_cart("pm_card_visa_slow_3")).await;
    assert_eq!(status, 408);
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 2).await;
    assert_eq!(stock(&app, 2).await, stock_before - 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM catalog_reservations").await, 1);

    // A client that leaves mid-charge: the extension is recorded once.
    let (_, end) = (app_id.clone(), app.app_status(&app_id).await["app_end_time"].as_i64().unwrap());
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let left = impatient
        .post(format!("{}/v2alpha/after_create_extend_order/do_extend_app", app.base))
        .bearer_auth(&app.api_key)
        .json(&json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa_slow_2"}))
        .send()
        .await;
    assert!(left.is_err(), "the client gave up before the answer");
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 3).await;
    assert_eq!(app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(), add_months(end, 1));

    // The processor charges and then errors: pending, then recorded by the recovery job.
    let body =
        json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa_chargedThenError"});
    let (status, answer) = app.post("/v2alpha/after_create_extend_order/do_extend_app", &body).await;
    assert_eq!(status, 503, "{answer}");
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 4).await;
    assert_eq!(app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(), add_months(end, 2));
    // Sent again without a key: the recorded payment answers; nothing is charged again.
    let (status, again) = app.post("/v2alpha/after_create_extend_order/do_extend_app", &body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(), add_months(end, 2));

    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_charges").await, 4, "each card charged once");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_charges WHERE refunded_at IS NOT NULL").await, 0);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM deposits").await, 4, "each charge recorded once");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_charges WHERE state <> 'recorded'").await, 0);
    app.stop().await;
}

on_both_backends!(faults_between_charge_and_record_charge_once_and_record => faults_between_charge_and_record_in_process);

/// SIGKILL of `paywatch serve` mid-charge: after a restart, the charged CreateApp is recorded
/// by the recovery job and the cart order whose card was never charged gives its stock back.
/// The CreateApp's Idempotency-Key stays claimed until its lease runs out (409), then the
/// retry answers the app the charge created.
async fn a_sigkill_mid_charge(backend: &'static str) {
    let mut app = with_demo_catalog(options(backend, 6)).await;
    app.stop_server().await;
    let port = free_port().unwrap();
    let server = ServeProcess::start(&app.config_path, port).await;
    let base = server.base.clone();
    let stock_before = stock(&app, 2).await;

    let create = card_app_body("pm_card_visa_slow_5");
    let first = {
        let (http, base, key, create) = (app.http.clone(), base.clone(), app.api_key.clone(), create.clone());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{base}/v2alpha/app/v2/app"))
                .bearer_auth(key)
                .header("Idempotency-Key", "create-1")
                .json(&create)
                .send()
                .await;
        })
    };
    let cart = {
        let (http, base, key) = (app.http.clone(), base.clone(), app.api_key.clone());
        tokio::spawn(async move {
            let _ = http
                .post(format!("{base}/v1/cart/order"))
                .bearer_auth(key)
                .json(&card_cart("pm_card_visa_queued_5"))
                .send()
                .await;
        })
    };
    // Both intents written, the CreateApp's card charged, the cart's not yet: kill.
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'pending'", 2).await;
    wait_count(&app, "SELECT COUNT(*) FROM sandbox_charges", 1).await;
    assert_eq!(stock(&app, 2).await, stock_before - 1, "the cart's intent holds its stock");
    server.kill9().await;
    let _ = (first.await, cart.await);

    let server = ServeProcess::start(&app.config_path, port).await;
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 1).await;
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'failed'", 1).await;
    assert_eq!(stock(&app, 2).await, stock_before, "the uncharged cart order gave its stock back");
    let app_id: String = sqlx::query_scalar("SELECT app_id FROM card_charges WHERE state = 'recorded'")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();

    // Lease: 6 s request timeout + 5 s, stored in whole unix seconds. Inside it the key is still
    // in progress; asked only with a second to spare, as the restart may have used the lease up.
    let post = reqwest::Method::POST;
    let lease_until: i64 =
        sqlx::query_scalar("SELECT lease_until FROM idempotency_keys WHERE idempotency_key = 'create-1'")
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
    if unix_now() + 1 < lease_until {
        let (status, body) = send(&app, &base, post.clone(), "/v2alpha/app/v2/app", Some("create-1"), &create).await;
        assert_eq!(status, 409, "inside its lease the key is in progress: {body}");
    }
    let started = Instant::now();
    let retried = loop {
        let (status, body) = send(&app, &base, post.clone(), "/v2alpha/app/v2/app", Some("create-1"), &create).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 409, "{body}");
        assert!(started.elapsed() < Duration::from_secs(30), "the lease never ran out");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(retried["app_id"], app_id.as_str(), "the retry answers the app the first charge made");
    let (status, again) = send(&app, &base, post, "/v2alpha/app/v2/app", Some("create-1"), &create).await;
    assert_eq!((status, &again), (200, &retried), "and replays it after");

    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_charges").await, 1, "charged once, the cart never");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM apps").await, 1, "one app");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM deposits").await, 1);
    server.kill9().await;
    app.stop().await;
}

on_both_backends!(a_sigkill_mid_charge_is_recorded_or_given_up_after_restart => a_sigkill_mid_charge);

async fn retries_charge_once(backend: &'static str) {
    let app = with_demo_catalog(Options { backend, ..Default::default() }).await;
    let (app_id, end0) = app.create_card_app(1).await;
    let path = format!("/v2alpha/teams/{}/extend_app", app.team_id);
    let do_extend = "/v2alpha/after_create_extend_order/do_extend_app";
    let (get, post) = (reqwest::Method::GET, reqwest::Method::POST);
    let base = app.base.clone();
    let charges = || count(&app, "SELECT COUNT(*) FROM sandbox_charges");
    let end = || async { app.app_status(&app_id).await["app_end_time"].as_i64().unwrap() };

    // Without a key: POST, POST again, the seed's GET and do_extend_app are one extension.
    let extend = json!({"pay_method": "CREDIT_CARD", "app_id": app_id, "card_id": "pm_card_visa", "period": 1});
    let (status, first) = send(&app, &base, post.clone(), &path, None, &extend).await;
    assert_eq!(status, 200, "{first}");
    for method in [post.clone(), get.clone()] {
        let (status, again) = send(&app, &base, method, &path, None, &extend).await;
        assert_eq!((status, &again["order_id"]), (200, &first["order_id"]), "{again}");
    }
    let seed_do = json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"});
    let (status, done) = send(&app, &base, post.clone(), do_extend, None, &seed_do).await;
    assert_eq!((status, &done["order_id"]), (200, &first["order_id"]), "{done}");
    assert_eq!(charges().await, 2, "CreateApp and one extension");
    assert_eq!(end().await, add_months(end0, 1));

    // With a key: the same key answers the first; another key extends again, on purpose.
    let extend2 = json!({"pay_method": "CREDIT_CARD", "app_id": app_id, "card_id": "pm_card_visa", "period": 2});
    let (status, keyed) = send(&app, &base, post.clone(), &path, Some("ext-a"), &extend2).await;
    assert_eq!(status, 200, "{keyed}");
    let (_, replay) = send(&app, &base, post.clone(), &path, Some("ext-a"), &extend2).await;
    assert_eq!(replay, keyed);
    let (status, by_get) = send(&app, &base, get, &path, Some("ext-a"), &extend2).await;
    assert_eq!((status, &by_get), (200, &keyed), "GET and POST are one route");
    let do2 = json!({"app_id": app_id, "period": 2, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"});
    let (status, d1) = send(&app, &base, post.clone(), do_extend, Some("do-b"), &do2).await;
    assert_eq!(status, 200, "{d1}");
    assert_ne!(d1["order_id"], keyed["order_id"], "another key is another extension");
    let (_, d2) = send(&app, &base, post.clone(), do_extend, Some("do-b"), &do2).await;
    assert_eq!(d2, d1);
    assert_eq!(charges().await, 4);
    assert_eq!(end().await, add_months(add_months(add_months(end0, 1), 2), 2));

    // Cart orders: the same twice without a key is one; with a key, twice is one more.
    let stock_before = stock(&app, 2).await;
    let cart = card_cart("pm_card_visa");
    let (status, c1) = send(&app, &base, post.clone(), "/v1/cart/order", None, &cart).await;
    assert_eq!(status, 200, "{c1}");
    let (_, c2) = send(&app, &base, post.clone(), "/v1/cart/order", None, &cart).await;
    assert_eq!(c2["order"]["order_id"], c1["order"]["order_id"]);
    let (_, k1) = send(&app, &base, post.clone(), "/v1/cart/order", Some("cart-k"), &cart).await;
    let (_, k2) = send(&app, &base, post, "/v1/cart/order", Some("cart-k"), &cart).await;
    assert_eq!(k1["order"]["order_id"], k2["order"]["order_id"]);
    assert_ne!(k1["order"]["order_id"], c1["order"]["order_id"]);
    assert_eq!(k1["price"]["total"], c1["price"]["total"], "the answer carries the priced selection");
    assert_eq!(stock(&app, 2).await, stock_before - 2);
    assert_eq!(charges().await, 6);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM deposits").await, 6);
    app.stop().await;
}

on_both_backends!(extensions_and_cart_orders_retried_charge_once => retries_charge_once);

/// Eight identical ExtendApp calls without a key at the same instant: one charge, one month;
/// every answer is that extension or a 409 while it is in progress.
async fn concurrent_identical_extensions(backend: &'static str) {
    let app = spawn_app(Options { backend, ..Default::default() }).await;
    let (app_id, end0) = app.create_card_app(1).await;
    let path = format!("/v2alpha/teams/{}/extend_app", app.team_id);
    let body = json!({"pay_method": "CREDIT_CARD", "app_id": app_id, "card_id": "pm_card_visa_slow_1", "period": 1});
    let base = app.base.clone();
    let calls = (0..8).map(|_| send(&app, &base, reqwest::Method::POST, &path, None, &body));
    let answers = futures_util::future::join_all(calls).await;
    let order_ids: std::collections::BTreeSet<String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, a)| a["order_id"].as_str().unwrap().to_string())
        .collect();
    assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 409), "{answers:?}");
    assert!(order_ids.len() <= 1, "one extension: {answers:?}");
    wait_count(&app, "SELECT COUNT(*) FROM card_charges WHERE state = 'recorded'", 2).await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM sandbox_charges").await, 2, "CreateApp and one extension");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM card_charges").await, 2, "no second intent was written");
    assert_eq!(app.app_status(&app_id).await["app_end_time"].as_i64().unwrap(), add_months(end0, 1));
    app.stop().await;
}

on_both_backends!(concurrent_identical_extensions_charge_once => concurrent_identical_extensions);
