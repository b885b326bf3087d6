//! The demo hosting catalog as tests order from it.

use serde_json::{Value, json};

use super::admin::admin;
use super::app::{Options, TestApp, spawn_app};

/// A test app with the devnet's demo catalog imported.
pub async fn with_demo_catalog(options: Options) -> TestApp {
    let app = spawn_app(options).await;
    let doc: Value = serde_json::from_str(paywatch::devnet::DEMO_CATALOG).unwrap();
    let (status, body) = admin(&app, reqwest::Method::POST, "/admin/catalog/import", Some(doc)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"first_groups": 1, "groups": 1, "products": 2}));
    app
}

/// A cart order of the demo catalog's GPU product, monthly.
pub fn gpu_order(pay_method: &str) -> Value {
    json!({"product_id": 2, "billingcycle": "monthly", "pay_method": pay_method})
}

/// What of `product_id` is left in stock.
pub async fn stock(app: &TestApp, product_id: i64) -> i64 {
    paywatch::store::products::stock(app.db.store.pool(), product_id).await.unwrap().unwrap()
}
