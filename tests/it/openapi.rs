//! The OpenAPI document: it validates (openapi-spec-validator), names every route, renders on
//! the offline docs page, and schemathesis finds no 5xx and no response that breaks its schema.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};

use crate::support::app::ADMIN_TOKEN;

/// Every route the server answers, as "METHOD path".
const ROUTES: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/docs.js",
    "GET /pay/{order_id}",
    "POST /pay/{order_id}/authorization",
    "GET /pay/{order_id}/x402",
    "GET /pay/assets/checkout.js",
    "GET /pay/assets/checkout.css",
    "GET /pay/{order_id}/events",
    "POST /v2alpha/{type}/acquire_pre_amount",
    "POST /v2alpha/app/v2/app",
    "GET /v2alpha/teams/{team_id}/apps/{app_id}",
    "GET /v2alpha/teams/{team_id}/eth_order/{app_id}",
    "GET /v2alpha/teams/{team_id}/orders/{order_id}",
    "GET /v2alpha/teams/{team_id}/orders/{order_id}/events",
    "POST /v2alpha/create_extend_order",
    "POST /v2alpha/after_create_extend_order/do_extend_app",
    "GET /v2alpha/teams/{team_id}/extend_app",
    "POST /v2alpha/teams/{team_id}/extend_app",
    "GET /v2alpha/teams/{team_id}/deposit_list",
    "GET /v2alpha/{team_id}/pre_payment_list",
    "POST /goods-specification/update-sp",
    "GET /goods-specifications",
    "POST /goods-specifications",
    "GET /v1/productsconfig",
    "POST /v1/cart/price",
    "POST /v1/cart/order",
    "POST /admin/catalog/first_groups",
    "POST /admin/catalog/groups",
    "POST /admin/catalog/products",
    "POST /admin/catalog/import",
    "POST /admin/catalog/products/{product_id}/cycles",
    "POST /admin/catalog/products/{product_id}/configoptions",
    "POST /admin/catalog/products/{product_id}/custom_fields",
    "POST /admin/teams",
    "GET /admin/webhooks",
    "POST /admin/webhooks/{event_id}/redeliver",
    "GET /admin/funds",
    "POST /admin/funds/{fund_id}/apply",
    "POST /admin/funds/{fund_id}/refunded",
    "GET /admin/sweeps",
    "POST /admin/funds/{fund_id}/refunds",
    "GET /admin/refunds",
    "GET /admin/refunds/{refund_id}",
    "POST /admin/refunds/{refund_id}/approve",
    "POST /admin/refunds/{refund_id}/cancel",
    "POST /admin/refunds/{refund_id}/reject",
    "POST /admin/refunds/{refund_id}/sent",
    "GET /refund/{refund_id}",
    "POST /refund/{refund_id}",
    "POST /admin/webhooks/endpoint/enable",
    "GET /admin/exports/payments.csv",
    "GET /admin/exports/stray_funds.csv",
    "GET /admin/exports/refunds.csv",
    "GET /admin/reconciliation",
    "POST /admin/teams/{team_id}/keys",
    "DELETE /admin/teams/{team_id}/keys/{key_id}",
];

fn python_tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/.venv/bin").join(name);
    assert!(path.exists(), "{} is needed for this test and is missing: run `make pytools`", path.display());
    path
}

async fn document(app: &TestApp) -> Value {
    let r = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_openapi_document_validates_and_names_every_route() {
    let app = spawn_app(Options::default()).await;
    let doc = document(&app).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(python_tool("openapi-spec-validator")).arg(file.path()).output().unwrap();
    assert!(
        out.status.success(),
        "the document is not valid OpenAPI:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
            let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path} has responses"));
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path} documents its success");
            let secured = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("team_key").is_some()));
            if secured {
                let unauthorized = &responses["401"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(unauthorized, "#/components/schemas/ErrorBody", "{method} {path} documents the error model");
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
    assert_eq!(documented, expected, "the document names exactly the routes the server has");
    // And the server has them: none of the listed routes is a 404 "route not found".
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let url = format!("{}{}", app.base, path.replace('{', "x").replace('}', ""));
        let r = app.http.request(method.parse().unwrap(), url).send().await.unwrap();
        if r.status() == 404 {
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(body["message"], "route not found", "{route} is documented but not served");
        }
    }

    // The docs page is served by paywatch and loads nothing from elsewhere.
    let page = app.http.get(format!("{}/docs", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("/docs/docs.js") && page.contains("/openapi.json"));
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!page.contains(external), "the docs page loads nothing from elsewhere ({external})");
    }
    let script = app.http.get(format!("{}/docs/docs.js", app.base)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    app.stop().await;
}

/// Runs schemathesis against the live server with `auth` on every request.
async fn schemathesis(app: &TestApp, auth: &str, filter: &[&str]) {
    let reports = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(python_tool("st"))
        .arg("run")
        .arg(format!("{}/openapi.json", app.base))
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: hypothesis describes strategies with ast.parse, which is not thread-safe.
        .args(["--max-examples", "25", "--request-timeout", "10", "--seed", "7", "--workers", "1"])
        .args(["--header", &format!("Authorization: Bearer {auth}")])
        .args(filter)
        .args(["--report-dir", reports.path().to_str().unwrap()])
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "schemathesis found problems:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    assert!(stdout.contains("passed"), "schemathesis ran operations:\n{stdout}");
}

#[tokio::test]
async fn schemathesis_finds_no_server_errors_and_no_schema_breaks() {
    let app = spawn_app(Options::default()).await;
    // Something to find: an app with a token order, so lists and statuses have rows.
    app.create_crypto_app("USDT_ERC20", 1).await;
    // Team endpoints with the team's key; the operator's with the admin token.
    schemathesis(&app, &app.api_key, &["--exclude-tag", "admin"]).await;
    schemathesis(&app, ADMIN_TOKEN, &["--include-tag", "admin"]).await;
    schemathesis(&app, ADMIN_TOKEN, &["--include-tag", "catalog"]).await;
    app.stop().await;
}
