//! The expiry jobs with a moved clock: each job is called with the "now" a test chooses.

use paywatch::jobs::expiry::{expire_apps, expire_orders, notify_expiring};
use paywatch::money::Token;
use paywatch::store::{outbox, unix_now};
use serde_json::{Value, json};

use crate::support::app::{Options, spawn_app};

async fn unpaid_order_expires_and_app_is_cancelled(backend: &'static str) {
    let app = spawn_app(Options { backend, ..Default::default() }).await;
    let (app_id, order_id, _, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let expires_at = app.order(&order_id).await["expires_at"].as_i64().unwrap();
    let store = &app.db.store;
    assert_eq!(expire_orders(store, expires_at - 1).await.unwrap(), 0, "not yet");
    assert_eq!(expire_orders(store, expires_at + 1).await.unwrap(), 1);
    assert_eq!(expire_orders(store, expires_at + 2).await.unwrap(), 0, "a second run changes nothing");
    assert_eq!(app.order(&order_id).await["status"], "expired");
    assert_eq!(app.app_status(&app_id).await["status"], "cancelled");
    assert_eq!(outbox::types_for_app(store.pool(), &app_id).await.unwrap(), ["order.expired"]);
    app.stop().await;
}

on_both_backends!(an_unpaid_order_expires_and_its_app_is_cancelled_on => unpaid_order_expires_and_app_is_cancelled);

#[tokio::test]
async fn a_payment_within_the_late_window_still_activates_marked_late() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    // Move the order's expiry into the past, as if its hour had run out, and expire it.
    sqlx::query("UPDATE orders SET expires_at = $1 WHERE order_id = $2")
        .bind(unix_now() - 60)
        .bind(&order_id)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(expire_orders(&app.db.store, unix_now()).await.unwrap(), 1);
    assert_eq!(app.app_status(&app_id).await["status"], "cancelled");

    app.pay(Token::UsdtErc20, address, owed).await;
    let paid: Value = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["late"], true);
    assert_eq!(app.app_status(&app_id).await["status"], "active");
    app.stop().await;
}

#[tokio::test]
async fn a_payment_after_the_late_window_is_recorded_but_buys_nothing() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    // The default late window is 24 hours; this order expired two days ago.
    sqlx::query("UPDATE orders SET expires_at = $1 WHERE order_id = $2")
        .bind(unix_now() - 2 * 86_400)
        .bind(&order_id)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    expire_orders(&app.db.store, unix_now()).await.unwrap();
    app.pay(Token::UsdtErc20, address, owed).await;
    let order = app.wait_order(&order_id, 20, |o| o["confirmed"] == o["expected"]).await;
    assert_eq!(order["payments"][0]["state"], "confirmed", "the transfer is recorded");
    assert_eq!(order["status"], "expired");
    assert_eq!(app.app_status(&app_id).await["status"], "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn an_active_app_expires_at_its_end() {
    let app = spawn_app(Options::default()).await;
    let (app_id, end) = app.create_card_app(1).await;
    assert_eq!(expire_apps(&app.db.store, end - 1).await.unwrap(), 0);
    assert_eq!(app.app_status(&app_id).await["status"], "active");
    assert_eq!(expire_apps(&app.db.store, end).await.unwrap(), 1);
    assert_eq!(expire_apps(&app.db.store, end + 60).await.unwrap(), 0, "once");
    assert_eq!(app.app_status(&app_id).await["status"], "expired");
    let events = outbox::types_for_app(app.db.store.pool(), &app_id).await.unwrap();
    assert_eq!(events, ["order.paid", "app.activated", "app.expired"]);
    app.stop().await;
}

#[tokio::test]
async fn app_expiring_is_sent_once_per_end_time() {
    let app = spawn_app(Options::default()).await;
    let (app_id, end) = app.create_card_app(1).await;
    let store = &app.db.store;
    let day = 86_400;
    assert_eq!(notify_expiring(store, end - 8 * day, 7).await.unwrap(), 0, "too early");
    assert_eq!(notify_expiring(store, end - 7 * day, 7).await.unwrap(), 1);
    assert_eq!(notify_expiring(store, end - 6 * day, 7).await.unwrap(), 0, "sent once");
    assert_eq!(notify_expiring(store, end - day, 7).await.unwrap(), 0, "still once");

    // An extension moves the end: the new end gets its own notice.
    let (status, _) = app
        .post(
            "/v2alpha/after_create_extend_order/do_extend_app",
            &json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
        )
        .await;
    assert_eq!(status, 200);
    let new_end = app.app_status(&app_id).await["app_end_time"].as_i64().unwrap();
    assert_eq!(notify_expiring(store, new_end - 3 * day, 7).await.unwrap(), 1);
    let expiring =
        outbox::types_for_app(store.pool(), &app_id).await.unwrap().iter().filter(|t| *t == "app.expiring").count();
    assert_eq!(expiring, 2);
    app.stop().await;
}
