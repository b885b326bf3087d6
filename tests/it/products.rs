//! The hosting catalog over HTTP (seed 002): productsconfig for a product using all 20 option
//! types, cart pricing, admin writes and `paywatch catalog import`, stock reserved atomically
//! by 20 parallel orders, stock given back on expiry, and a catalog order paid in tokens.

use std::collections::BTreeSet;

use paywatch::catalog::products::CharRule;
use paywatch::catalog::secrets::{host_satisfies, satisfies};
use paywatch::money::Token;
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::catalog::{gpu_order, stock, with_demo_catalog};

use crate::support::app::ADMIN_TOKEN as ADMIN;

async fn admin_post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(format!("{}{path}", app.base)).bearer_auth(ADMIN).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn public_get(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn rule(v: &Value) -> CharRule {
    let on = |k: &str| v[k].as_i64() == Some(1);
    CharRule {
        upper: on("upper"),
        lower: on("lower"),
        num: on("num"),
        special: on("special"),
        len_num: v["len_num"].as_u64().unwrap() as u32,
    }
}

#[tokio::test]
async fn productsconfig_has_the_seeds_fields_for_all_20_option_types() {
    let app = with_demo_catalog(Options::default()).await;
    let (status, body) = public_get(&app, "/v1/productsconfig?product_id=1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(keys(&body), set(&["currency", "first_group"]));
    assert_eq!(keys(&body["currency"]), set(&["id", "code", "prefix", "suffix"]));
    assert_eq!(body["currency"]["code"], "USD");
    let first = &body["first_group"][0];
    assert_eq!(keys(first), set(&["id", "name", "custom_fields", "group"]));
    assert_eq!(first["custom_fields"][0], json!({"name": "sla", "value": "99.9"}));
    let group = &first["group"][0];
    assert_eq!(keys(group), set(&["id", "name", "headline", "tagline", "custom_fields", "products"]));
    let products = group["products"].as_array().unwrap();
    assert_eq!(products.len(), 1, "only the asked-for product");
    let p = &products[0];
    assert_eq!(
        keys(p),
        set(&[
            "id",
            "name",
            "description",
            "host",
            "password",
            "allow_qty",
            "stock_control",
            "qty",
            "cycle",
            "configoptions",
            "custom_fields"
        ])
    );
    assert_eq!((p["allow_qty"].clone(), p["stock_control"].clone(), p["qty"].clone()), (json!(1), json!(1), json!(50)));

    assert_eq!(keys(&p["host"]), set(&["show", "prefix", "host", "rule"]));
    assert_eq!(keys(&p["host"]["rule"]), set(&["upper", "lower", "num", "len_num"]));
    let host = p["host"]["host"].as_str().unwrap();
    assert!(host_satisfies(host, "ser", &rule(&p["host"]["rule"])), "{host} follows its rule");
    assert_eq!(keys(&p["password"]), set(&["show", "password", "rule"]));
    assert_eq!(keys(&p["password"]["rule"]), set(&["upper", "lower", "num", "len_num", "special"]));
    let password = p["password"]["password"].as_str().unwrap();
    assert!(satisfies(password, &rule(&p["password"]["rule"])), "{password} follows its rule");
    let (_, again) = public_get(&app, "/v1/productsconfig?product_id=1").await;
    let p2 = &again["first_group"][0]["group"][0]["products"][0];
    assert_ne!(p2["password"]["password"], p["password"]["password"], "a fresh password each time");

    let cycles = p["cycle"].as_array().unwrap();
    for c in cycles {
        let mut expected = set(&["product_price", "setup_fee", "billingcycle", "saleprice"]);
        if c["billingcycle"] == "ontrial" {
            expected.insert("pay_ontrial_cycle".into());
        }
        assert_eq!(keys(c), expected, "{c}");
    }
    let monthly = cycles.iter().find(|c| c["billingcycle"] == "monthly").unwrap();
    assert_eq!((monthly["product_price"].as_str(), monthly["saleprice"].as_str()), (Some("20.00"), Some("18.00")));
    assert_eq!(cycles.iter().find(|c| c["billingcycle"] == "annually").unwrap()["product_price"], "-1.00");

    let options = p["configoptions"].as_array().unwrap();
    let types: Vec<i64> = options.iter().map(|o| o["type"].as_i64().unwrap()).collect();
    assert_eq!(types, (1..=20).collect::<Vec<i64>>(), "all 20 types, the hidden option left out");
    for o in options {
        let t = o["type"].as_i64().unwrap();
        let quantity = matches!(t, 4 | 7 | 9 | 11 | 14..=19);
        let mut expected = set(&["id", "name", "type", "notes", "is_discount", "unit", "sub"]);
        if quantity {
            expected.extend(set(&["qty_minimum", "qty_maximum"]));
        }
        assert_eq!(keys(o), expected, "option type {t}");
        match t {
            5 => {
                let families = keys(&o["sub"]);
                assert_eq!(families, set(&["CentOS", "Ubuntu", "Windows"]));
                let centos = &o["sub"]["CentOS"];
                assert_eq!(keys(centos), set(&["child", "ico_url", "qty_stage"]));
                assert_eq!(centos["child"].as_array().unwrap().len(), 2);
                let child = &centos["child"][0];
                assert!(keys(child).is_superset(&set(&[
                    "id",
                    "version",
                    "pricing",
                    "show_pricing",
                    "os_type",
                    "os_url"
                ])));
            }
            12 => {
                let us = &o["sub"][0];
                assert!(keys(us).is_superset(&set(&[
                    "option_name",
                    "option_name_first",
                    "country_code",
                    "area",
                    "qty_stage"
                ])));
                assert_eq!(us["country_code"], "US");
                assert_eq!(keys(&us["area"][0]), set(&["id", "pricing", "area", "area_zh", "show_pricing"]));
            }
            _ => {
                let mut sub = set(&[
                    "id",
                    "config_id",
                    "name",
                    "option_name",
                    "option_name_first",
                    "pricing",
                    "qty_stage",
                    "show_pricing",
                ]);
                if quantity {
                    sub.extend(set(&["qty_minimum", "qty_maximum"]));
                }
                for s in o["sub"].as_array().unwrap() {
                    assert_eq!(keys(s), sub, "type {t} sub-option");
                    assert_eq!(s["config_id"], o["id"], "seed 002: a sub-option names its option");
                }
                assert_eq!(o["sub"][0]["qty_stage"], json!(i32::from((15..=19).contains(&t))));
            }
        }
    }
    let fields = p["custom_fields"].as_array().unwrap();
    let types: BTreeSet<String> = fields.iter().map(|f| f["fieldtype"].as_str().unwrap().to_string()).collect();
    assert_eq!(types, set(&["password", "text", "link", "textarea", "dropdown", "tickbox"]));
    for f in fields {
        assert_eq!(
            keys(f),
            set(&["id", "fieldname", "description", "fieldtype", "fieldoptions", "regexpr", "required"])
        );
    }

    // Scopes: one first group or one group; none, two or unknown ids are refused.
    let (status, by_group) = public_get(&app, "/v1/productsconfig?group_id=10").await;
    assert_eq!(status, 200);
    assert_eq!(by_group["first_group"][0]["group"][0]["products"].as_array().unwrap().len(), 2);
    assert_eq!(public_get(&app, "/v1/productsconfig?first_group_id=1").await.0, 200);
    for bad in ["", "?product_id=1&group_id=10", "?first_group_id=1&group_id=10&product_id=1"] {
        let (status, body) = public_get(&app, &format!("/v1/productsconfig{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains("exactly one"), "{body}");
    }
    assert_eq!(public_get(&app, "/v1/productsconfig?product_id=999").await.0, 404);
    assert_eq!(public_get(&app, "/v1/productsconfig?product_id=abc").await.0, 422);
    app.stop().await;
}

async fn public_post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let r = app.http.post(format!("{}{path}", app.base)).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn vps_selection() -> Value {
    json!({"product_id": 1, "billingcycle": "monthly", "qty": 2,
           "configoptions": [{"id": 107, "qty": 9}, {"id": 117, "qty": 10}],
           "custom_fields": [{"id": 1, "value": "abcd1234"}, {"id": 6, "value": "on"}]})
}

#[tokio::test]
async fn cart_price_and_admin_writes() {
    let app = with_demo_catalog(Options::default()).await;
    let (status, priced) = public_post(&app, "/v1/cart/price", &vps_selection()).await;
    assert_eq!(status, 200, "{priced}");
    // 18 + cores 9 × 1.75 (volume) + memory burst 2 × 0.6 (graduated) + minimums (1 + 0.1 + 1) = 37.05;
    // (37.05 + setup 5) × 2 = 84.10.
    assert_eq!(priced["recurring"], "37.05");
    assert_eq!(priced["total"], "84.10");
    let mut disabled = vps_selection();
    disabled["billingcycle"] = json!("annually");
    let (status, body) = public_post(&app, "/v1/cart/price", &disabled).await;
    assert_eq!((status, body["message"].as_str()), (422, Some("billingcycle: is disabled for this product")));
    let (status, _) = public_post(&app, "/v1/cart/price", &json!({"product_id": 999, "billingcycle": "monthly"})).await;
    assert_eq!(status, 404);

    // Admin writes: the token is needed, tier gaps and dangling references are named.
    let doc: Value = serde_json::from_str(paywatch::devnet::DEMO_CATALOG).unwrap();
    let mut product = doc["products"][1].clone();
    let r = app.http.post(format!("{}/admin/catalog/products", app.base)).json(&product).send().await.unwrap();
    assert_eq!(r.status(), 401);
    product["qty"] = json!(7);
    let (status, body) = admin_post(&app, "/admin/catalog/products", &product).await;
    assert_eq!(status, 200, "{body}");
    let (_, config) = public_get(&app, "/v1/productsconfig?product_id=2").await;
    assert_eq!(config["first_group"][0]["group"][0]["products"][0]["qty"], 7, "saving sets the stock");
    let mut gap = doc["products"][0].clone();
    gap["configoptions"][3]["sub"][1]["qty_minimum"] = json!(6);
    let (status, body) = admin_post(&app, "/admin/catalog/products", &gap).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().starts_with("configoptions[3].sub[1].qty_minimum: leaves a gap"),
        "{body}"
    );
    let mut orphan = doc["products"][1].clone();
    orphan["group_id"] = json!(77);
    assert_eq!(admin_post(&app, "/admin/catalog/products", &orphan).await.1["message"], "group_id: no such group");
    let group = json!({"id": 11, "first_group_id": 9, "name": "Dedicated"});
    assert_eq!(
        admin_post(&app, "/admin/catalog/groups", &group).await.1["message"],
        "first_group_id: no such first group"
    );
    // Parts of a product on their own: a cycle, an option with tiers, a field; stock untouched.
    assert_eq!(app.post("/v1/cart/order", &gpu_order("USDT_ERC20")).await.0, 200);
    assert_eq!(stock(&app, 2).await, 6);
    let cycle = json!({"billingcycle": "quarterly", "product_price": "300", "setup_fee": "10"});
    let (status, body) = admin_post(&app, "/admin/catalog/products/2/cycles", &cycle).await;
    assert_eq!(status, 200, "{body}");
    let (_, config) = public_get(&app, "/v1/productsconfig?product_id=2").await;
    let gpu = &config["first_group"][0]["group"][0]["products"][0];
    assert_eq!(gpu["cycle"].as_array().unwrap().len(), 2, "the cycle is added");
    assert_eq!(gpu["qty"], 6, "editing a part leaves the stock on hand alone");
    let option = json!({"id": 202, "name": "Extra disks", "type": 4, "qty_minimum": 0, "qty_maximum": 8,
        "sub": [{"id": 2101, "name": "0-3", "pricing": "5", "qty_minimum": 0, "qty_maximum": 3},
                {"id": 2102, "name": "5-8", "pricing": "4", "qty_minimum": 5, "qty_maximum": 8}]});
    let (status, body) = admin_post(&app, "/admin/catalog/products/2/configoptions", &option).await;
    assert_eq!(status, 422);
    assert!(
        body["message"].as_str().unwrap().starts_with("configoptions[1].sub[1].qty_minimum: leaves a gap"),
        "{body}"
    );
    let field = json!({"id": 9, "fieldname": "Key", "fieldtype": "text", "regexpr": "[unclosed"});
    let (status, body) = admin_post(&app, "/admin/catalog/products/2/custom_fields", &field).await;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().unwrap().starts_with("custom_fields[0].regexpr"), "{body}");
    assert_eq!(admin_post(&app, "/admin/catalog/products/99/cycles", &cycle).await.0, 404);
    let (status, body) = admin_post(&app, "/admin/catalog/products/9223372036854775808/cycles", &cycle).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "a bad path id is a JSON error: {body}");
    assert_eq!(admin_post(&app, "/admin/catalog/first_groups", &json!({"id": 9, "name": "Metal"})).await.0, 200);
    assert_eq!(admin_post(&app, "/admin/catalog/groups", &group).await.0, 200);
    app.stop().await;
}

async fn twenty_parallel_orders_take_exactly_the_stock(backend: &'static str) {
    let app = with_demo_catalog(Options { backend, ..Default::default() }).await;
    assert_eq!(stock(&app, 2).await, 5);
    let body = gpu_order("USDT_ERC20");
    let orders = (0..20).map(|_| app.post("/v1/cart/order", &body));
    let results = futures_util::future::join_all(orders).await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert_eq!(ok, 5, "exactly the stock is sold: {refused:?}");
    assert!(refused.iter().all(|(s, b)| *s == 409 && b["message"] == "GPU box is out of stock"), "{refused:?}");
    assert_eq!(stock(&app, 2).await, 0);
    app.stop().await;
}

on_both_backends!(twenty_parallel_orders_take_exactly_the_stock);

#[tokio::test]
async fn a_catalog_order_paid_in_tokens_becomes_paid_like_an_app_order() {
    let app = with_demo_catalog(Options::default()).await;
    let (status, created) = app
        .post("/v1/cart/order", &{
            let mut s = vps_selection();
            s["pay_method"] = json!("USDT_ERC20");
            s
        })
        .await;
    assert_eq!(status, 200, "{created}");
    let order = &created["order"];
    assert_eq!(order["kind"], "catalog");
    assert_eq!(order["status"], "awaiting_payment");
    assert_eq!(order["usd"], "84.1");
    assert_eq!(order["expected"], "84.1", "USDT at 1 USD");
    assert_eq!(created["price"]["total"], "84.10");
    assert_eq!(stock(&app, 1).await, 48, "2 units reserved");
    let order_id = order["order_id"].as_str().unwrap();
    let address = order["address"].as_str().unwrap().parse().unwrap();
    let uri = order["payment_uri"].as_str().unwrap();
    let owed: alloy::primitives::U256 = uri.rsplit("uint256=").next().unwrap().parse().unwrap();
    assert_eq!(owed, alloy::primitives::U256::from(84_100_000u64));

    app.pay(Token::UsdtErc20, address, owed).await;
    app.mine(1).await;
    let paid = app.wait_order(order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["confirmed"], "84.1");
    let (status, deposits) = app.get(&format!("/v2alpha/teams/{}/deposit_list", app.team_id)).await;
    assert_eq!(status, 200);
    assert_eq!(deposits["deposit_list"][0]["usd"], "84.1", "the payment is listed like any other");

    // By card: paid at once; a declined card gives the units back.
    let mut card = gpu_order("CREDIT_CARD");
    card["card_id"] = json!("pm_card_visa");
    let (status, body) = app.post("/v1/cart/order", &card).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order"]["status"], "paid");
    assert_eq!(stock(&app, 2).await, 4);
    card["card_id"] = json!("pm_card_chargeDeclined");
    assert_eq!(app.post("/v1/cart/order", &card).await.0, 402);
    assert_eq!(stock(&app, 2).await, 4, "a declined charge keeps no stock");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_catalog_order_gives_its_stock_back_once() {
    let app = with_demo_catalog(Options::default()).await;
    let (status, body) = app.post("/v1/cart/order", &gpu_order("ANKR_ERC20")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(stock(&app, 2).await, 4);
    let later = paywatch::store::unix_now() + 2 * 3600;
    assert_eq!(paywatch::jobs::expiry::expire_orders(&app.db.store, later).await.unwrap(), 1);
    assert_eq!(stock(&app, 2).await, 5, "the unit is back on sale");
    assert_eq!(paywatch::jobs::expiry::expire_orders(&app.db.store, later).await.unwrap(), 0);
    assert_eq!(stock(&app, 2).await, 5, "and only once");
    let order_id = body["order"]["order_id"].as_str().unwrap();
    assert_eq!(app.order(order_id).await["status"], "expired");

    // Paid after all (the late window): the order takes its unit again.
    let address = body["order"]["address"].as_str().unwrap().parse().unwrap();
    let uri = body["order"]["payment_uri"].as_str().unwrap();
    let owed: alloy::primitives::U256 = uri.rsplit("uint256=").next().unwrap().parse().unwrap();
    app.pay(Token::AnkrErc20, address, owed).await;
    app.mine(1).await;
    app.wait_order(order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(stock(&app, 2).await, 4, "the paid order holds its unit again");
    app.stop().await;
}

#[tokio::test]
async fn catalog_import_from_the_command_line() {
    let app = spawn_app(Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::write_file(dir.path(), "catalog.json", paywatch::devnet::DEMO_CATALOG);
    let config = app.config_path.to_str().unwrap();
    let import = |file: std::path::PathBuf| async move {
        crate::support::paywatch_beside_server(&["catalog", "import", file.to_str().unwrap(), "--config", config]).await
    };
    let out = import(file).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, json!({"first_groups": 1, "groups": 1, "products": 2}));
    assert_eq!(public_get(&app, "/v1/productsconfig?product_id=1").await.0, 200);

    let broken = paywatch::devnet::DEMO_CATALOG.replacen("\"product_price\": \"-1\"", "\"product_price\": \"-2\"", 1);
    assert_ne!(broken, paywatch::devnet::DEMO_CATALOG, "the edit applies");
    let file = crate::support::write_file(dir.path(), "broken.json", &broken);
    let out = import(file).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("products[0].cycle[3].product_price"), "{stderr}");
    app.stop().await;
}
