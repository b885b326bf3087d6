//! One team's key never reaches another team's data, route by route; and no generated body
//! makes any POST route answer 5xx.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::support::app::{Options, create_app_body, spawn_app};

#[tokio::test]
async fn a_key_of_team_b_gets_nothing_of_team_a_route_by_route() {
    let app = spawn_app(Options::default()).await;
    let a = app.team_id.clone();
    let (app_a, order_a, _, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let mut card = create_app_body("CREDIT_CARD", 1);
    card["pre_pay_info"]["card_id"] = json!("pm_card_visa");
    let (_, paid) = app.post("/v2alpha/app/v2/app", &card).await;
    let card_app_a = paid["app_id"].as_str().unwrap().to_string();
    let (b_team, b_key) = paywatch::store::teams::create_with_key(&app.db.store, "intruder").await.unwrap();
    let b = b_team.team_id;
    // Team A as it is before team B tries anything.
    let pool = app.db.store.pool().clone();
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap()
        }
    };
    let before = (count("orders").await, count("deposits").await, count("apps").await);
    let card_app_before = app.app_status(&card_app_a).await;
    let order_before = app.order(&order_a).await;

    let get = |path: String| {
        let req = app.http.get(format!("{}{path}", app.base)).bearer_auth(&b_key.api_key);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let post = |path: &str, body: Value| {
        let req = app.http.post(format!("{}{path}", app.base)).bearer_auth(&b_key.api_key).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let cases: Vec<(String, u16)> = vec![
        (format!("/v2alpha/teams/{a}/apps/{app_a}"), get(format!("/v2alpha/teams/{a}/apps/{app_a}")).await),
        (format!("/v2alpha/teams/{b}/apps/{app_a}"), get(format!("/v2alpha/teams/{b}/apps/{app_a}")).await),
        (format!("/v2alpha/teams/{a}/orders/{order_a}"), get(format!("/v2alpha/teams/{a}/orders/{order_a}")).await),
        (format!("/v2alpha/teams/{b}/orders/{order_a}"), get(format!("/v2alpha/teams/{b}/orders/{order_a}")).await),
        (
            "eth_order, A's path".into(),
            get(format!("/v2alpha/teams/{a}/eth_order/{app_a}?pay_method=ANKR_ERC20")).await,
        ),
        (
            "eth_order, B's path".into(),
            get(format!("/v2alpha/teams/{b}/eth_order/{app_a}?pay_method=ANKR_ERC20")).await,
        ),
        ("deposit_list".into(), get(format!("/v2alpha/teams/{a}/deposit_list")).await),
        ("pre_payment_list".into(), get(format!("/v2alpha/{a}/pre_payment_list")).await),
        (
            "extend_app, A's path".into(),
            post(
                &format!("/v2alpha/teams/{a}/extend_app"),
                json!({"pay_method": "CREDIT_CARD", "app_id": card_app_a, "card_id": "pm_card_visa"}),
            )
            .await,
        ),
        (
            "extend_app, B's path".into(),
            post(
                &format!("/v2alpha/teams/{b}/extend_app"),
                json!({"pay_method": "CREDIT_CARD", "app_id": card_app_a, "card_id": "pm_card_visa"}),
            )
            .await,
        ),
        (
            "create_extend_order".into(),
            post(
                "/v2alpha/create_extend_order",
                json!({"app_id": card_app_a, "period": 1, "pay_method": "USDT_ERC20"}),
            )
            .await,
        ),
        (
            "do_extend_app".into(),
            post(
                "/v2alpha/after_create_extend_order/do_extend_app",
                json!({"app_id": card_app_a, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
            )
            .await,
        ),
    ];
    for (route, status) in &cases {
        assert_eq!(*status, 404, "{route} must look absent to team B");
    }
    let mut in_a = create_app_body("ANKR_ERC20", 1);
    in_a["team_id"] = json!(a);
    assert_eq!(post("/v2alpha/app/v2/app", in_a).await, 403, "a body naming team A");

    // Team A's data is as it was before the attempts.
    let after = (count("orders").await, count("deposits").await, count("apps").await);
    assert_eq!(after, before, "team B created nothing (orders, deposits, apps)");
    assert_eq!(app.app_status(&card_app_a).await, card_app_before, "team A's app is unchanged");
    assert_eq!(app.order(&order_a).await, order_before, "team A's order is unchanged");
    app.stop().await;
}

/// A random JSON value: every type, huge and odd numbers, unicode, deep nesting.
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let pick = if depth > 6 { rng.random_range(0..7) } else { rng.random_range(0..9) };
    match pick {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(rng.random::<i64>()),
        3 => json!([1e308, -1e308, 0.5, -0.0, 1e-300, 3.0][rng.random_range(0..6)]),
        4 => json!(u64::MAX),
        5 => json!(
            [
                "",
                "0",
                "-1",
                "13",
                "3",
                "ANKR_ERC20",
                "CREDIT_CARD",
                "pm_card_visa",
                "é漢字🙂",
                "\u{0000}",
                "' OR 1=1 --"
            ][rng.random_range(0..11)]
        ),
        6 => json!("x".repeat(rng.random_range(0..5000))),
        7 => Value::Array((0..rng.random_range(0..4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let keys = [
                "period",
                "pay_method",
                "app_id",
                "card_id",
                "cpu_limit",
                "name",
                "pre_pay_info",
                "team_id",
                "custom_values",
            ];
            let mut m = Map::new();
            for _ in 0..rng.random_range(0..5) {
                m.insert(keys[rng.random_range(0..keys.len())].to_string(), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A valid body with one field replaced or removed, or a random value altogether.
fn mutate(rng: &mut StdRng, valid: &Value) -> String {
    match rng.random_range(0..5) {
        0 => random_value(rng, 0).to_string(),
        1 => {
            // Nesting deeper than any parser should follow.
            let depth = rng.random_range(100..3000);
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        2 => {
            let text = valid.to_string();
            text[..rng.random_range(0..text.len())].to_string()
        }
        _ => {
            let mut v = valid.clone();
            if let Some(obj) = v.as_object_mut() {
                let keys: Vec<String> = obj.keys().cloned().collect();
                let key = &keys[rng.random_range(0..keys.len())];
                if rng.random_bool(0.3) {
                    obj.remove(key);
                } else {
                    obj.insert(key.clone(), random_value(rng, 0));
                }
            }
            v.to_string()
        }
    }
}

#[tokio::test]
async fn generated_bodies_never_get_a_5xx_from_any_post_route() {
    let app = spawn_app(Options::default()).await;
    let (existing_app, _, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    // An active app too, so extension bodies reach the charge path, not only the 409 of a
    // pending app.
    let (active_app, _) = app.create_card_app(1).await;
    let team = app.team_id.clone();
    let quote = json!({"cluster_id": "", "chart_name": "boinc", "cpu_limit": 100, "mem_limit": 100, "storage_limit": 100, "period": 3});
    let goods = json!({"goods_id": 7, "main_specification_name": "m", "second_specification_name": "s",
        "specification": [{"main_specification": "a", "second_specification": "b", "purchasing_cost": "1.5"}],
        "pics": [{"main_specification": "a", "image_url": "https://example.com/a.png"}]});
    let routes: Vec<(String, Value, bool)> = vec![
        ("/v2alpha/USD/acquire_pre_amount".into(), quote.clone(), false),
        ("/v2alpha/ANKR_ERC20/acquire_pre_amount".into(), quote.clone(), false),
        ("/v2alpha/app/v2/app".into(), create_app_body("USDT_ERC20", 1), false),
        (
            "/v2alpha/create_extend_order".into(),
            json!({"app_id": existing_app, "period": "3", "pay_method": "CREDIT_CARD"}),
            false,
        ),
        (
            "/v2alpha/after_create_extend_order/do_extend_app".into(),
            json!({"app_id": existing_app, "period": "3", "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
            false,
        ),
        (
            format!("/v2alpha/teams/{team}/extend_app"),
            json!({"pay_method": "USDT_ERC20", "app_id": existing_app, "card_id": ""}),
            false,
        ),
        (
            "/v2alpha/after_create_extend_order/do_extend_app".into(),
            json!({"app_id": active_app, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
            false,
        ),
        (
            format!("/v2alpha/teams/{team}/extend_app"),
            json!({"pay_method": "CREDIT_CARD", "app_id": active_app, "card_id": "pm_card_visa", "period": 1}),
            false,
        ),
        (
            "/v2alpha/create_extend_order".into(),
            json!({"app_id": active_app, "period": 2, "pay_method": "USDT_ERC20"}),
            false,
        ),
        ("/admin/teams".into(), json!({"name": "fuzzed"}), true),
        ("/goods-specification/update-sp".into(), goods.clone(), true),
        ("/goods-specifications".into(), goods, true),
    ];
    let seed = crate::support::test_seed("fuzz");
    let mut rng = StdRng::seed_from_u64(seed);
    for (path, valid, admin) in &routes {
        for i in 0..150 {
            let body = mutate(&mut rng, valid);
            let token = if *admin { crate::support::app::ADMIN_TOKEN } else { app.api_key.as_str() };
            let mut req = app
                .http
                .post(format!("{}{path}", app.base))
                .bearer_auth(token)
                .header("content-type", "application/json");
            if i % 10 == 0 {
                req = req.header("Idempotency-Key", format!("fuzz-{}", rng.random_range(0..5)));
            }
            let r = req.body(body.clone()).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{path} answered {status} to {}: {text}", &body[..body.len().min(300)]);
            let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"));
            if status >= 400 {
                // The pay API's `{"code": "<name>", "message"}`, or the catalog seed's envelope
                // `{"code": 0, "message", "info"}`.
                let catalog = path.starts_with("/goods-specification");
                let code_ok = if catalog { parsed["code"] == 0 } else { parsed["code"].is_string() };
                assert!(code_ok && parsed["message"].is_string(), "{path}: error model: {text}");
            }
        }
    }
    app.stop().await;
}

/// Issue 26, item 10: a well-formed pay-method name that is not configured is refused before
/// anything of it is kept. 2,000 distinct names through the quote route and CreateApp each get
/// a 422 naming the configured pay methods, and the process interns none of them (it interned
/// every one before: memory grew with each cheap request).
#[tokio::test]
async fn unknown_pay_method_names_are_refused_without_being_kept() {
    let app = spawn_app(Options::default()).await;
    let before = paywatch::money::Token::interned_count();
    let quote = json!({"cpu_limit": 1000, "mem_limit": 2000, "storage_limit": 20000, "period": 1, "cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03", "chart_name": "boinc"});
    for i in 0..1_000 {
        let (status, body) = app.post(&format!("/v2alpha/NOT_A_TOKEN_{i}/acquire_pre_amount"), &quote).await;
        assert_eq!(status, 422, "{body}");
        assert!(body["message"].as_str().unwrap_or_default().contains("USDT_ERC20"), "{body}");
        let (status, body) = app.post("/v2alpha/app/v2/app", &create_app_body(&format!("NOT_A_METHOD_{i}"), 1)).await;
        assert_eq!(status, 422, "{body}");
    }
    let after = paywatch::money::Token::interned_count();
    // Other tests of this process may intern their own configured names meanwhile: a handful.
    assert!(after < before + 10, "{} names interned by 2,000 refused requests", after - before);
    app.stop().await;
}
