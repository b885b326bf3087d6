//! Exports for the books (issue 29): each month's payments export parses as CSV and adds up to
//! that month of the payment list; stray funds and refunds have files of their own; bad
//! periods are a JSON 400, and the exports are the operator's only.

use std::str::FromStr;

use alloy::primitives::U256;
use paywatch::money::Token;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, spawn_app};

use crate::support::app::ADMIN_TOKEN as ADMIN;

/// The export's rows as header → value maps.
async fn export(app: &TestApp, path: &str) -> Vec<std::collections::HashMap<String, String>> {
    let r = app.http.get(format!("{}{path}", app.base)).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let text = r.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    reader
        .records()
        .map(|r| header.iter().cloned().zip(r.expect("each record parses").iter().map(String::from)).collect())
        .collect()
}

fn sum(values: impl Iterator<Item = String>) -> Decimal {
    values.map(|v| Decimal::from_str(&v).unwrap()).sum()
}

async fn exports_match_the_books(backend: &'static str) {
    let app = spawn_app(Options { backend, confirmations: 1, ..Default::default() }).await;
    let card = |period: u32| {
        let mut body = crate::support::app::create_app_body("CREDIT_CARD", period);
        body["pre_pay_info"]["card_id"] = json!("pm_card_visa");
        body
    };
    for period in [1, 3] {
        assert_eq!(app.post("/v2alpha/app/v2/app", &card(period)).await.0, 200);
    }
    // Paid exactly, overpaid (its excess a stray fund), and a wrong-token payment (stray too).
    let (_, exact, a, owed_a) = app.create_crypto_app("USDT_ERC20", 2).await;
    let (_, over, b, owed_b) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let (_, _, c, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let exact_tx = app.pay(Token::UsdtErc20, a, owed_a).await;
    app.pay(Token::AnkrErc20, b, owed_b + U256::from(10u64).pow(U256::from(18u64))).await;
    app.pay(Token::UsdtErc20, c, U256::from(1_500_000u64)).await;
    app.mine(1).await;
    for order in [&exact, &over] {
        app.wait_order(order, 20, |o| o["status"] == "paid").await;
    }
    // One payment placed in a past month directly: the list and the exports are by UTC month.
    sqlx::query("UPDATE deposits SET deposit_time = 1598918400 WHERE order_id = $1")
        .bind(&exact)
        .execute(app.db.store.pool())
        .await
        .unwrap();

    let (status, months) = app.get(&format!("/v2alpha/{}/pre_payment_list", app.team_id)).await;
    assert_eq!(status, 200, "{months}");
    for month in months.as_array().unwrap() {
        let start = month["period"].as_str().unwrap();
        let (y, m): (i32, u32) = (start[..4].parse().unwrap(), start[5..7].parse().unwrap());
        let end = if m == 12 { format!("{}-01-01", y + 1) } else { format!("{y}-{:02}-01", m + 1) };
        let rows = export(&app, &format!("/admin/exports/payments.csv?from={start}&to={end}")).await;
        let listed = month["app_list"].as_array().unwrap();
        assert_eq!(rows.len(), listed.len(), "{start}: {rows:?}");
        assert_eq!(
            sum(rows.iter().map(|r| r["usd"].clone())),
            Decimal::from_str(month["total_usd"].as_str().unwrap()).unwrap(),
            "{start}: USD"
        );
        for method in ["CREDIT_CARD", "USDT_ERC20", "ANKR_ERC20"] {
            let exported = sum(rows.iter().filter(|r| r["pay_method"] == method).map(|r| r["amount"].clone()));
            let listed = sum(listed
                .iter()
                .filter(|r| r["pay_method"] == method)
                .map(|r| r["amount"].as_str().unwrap().to_string()));
            assert_eq!(exported, listed, "{start}: {method}");
        }
    }
    let september = export(&app, "/admin/exports/payments.csv?from=2020-09-01&to=2020-10-01").await;
    assert_eq!(september.len(), 1);
    let row = &september[0];
    assert_eq!((row["order_id"].as_str(), row["paid_at"].as_str()), (exact.as_str(), "2020-09-01T00:00:00Z"));
    assert_eq!(row["transaction_hash"], format!("{exact_tx:#x}"));
    assert_eq!(row["chain_id"], paywatch::devnet::CHAIN_ID.to_string());
    let all = export(&app, "/admin/exports/payments.csv").await;
    assert_eq!(all.len(), 4, "two cards and two token payments: {all:?}");
    let overpaid = all.iter().find(|r| r["order_id"] == over).unwrap();
    assert_eq!(overpaid["overpaid"], "1", "one ANKR over: {overpaid:?}");

    // Stray funds: the overpayment and the wrong token; one refunded by hand shows in refunds.
    // The wrong-token payment pays no order, so nothing above waited for its step.
    let started = std::time::Instant::now();
    while crate::support::admin::funds(&app, "").await.len() < 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the wrong-token fund never recorded");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let funds = export(&app, "/admin/exports/stray_funds.csv").await;
    let mut reasons: Vec<&str> = funds.iter().map(|f| f["reason"].as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["overpaid", "wrong_token"], "{funds:?}");
    let wrong = funds.iter().find(|f| f["reason"] == "wrong_token").unwrap();
    assert_eq!((wrong["amount"].as_str(), wrong["asset"].as_str()), ("1.5", "USDT"));
    assert!(export(&app, "/admin/exports/refunds.csv").await.is_empty());
    let refund_tx = format!("{:#x}", alloy::primitives::B256::repeat_byte(0xab));
    let r = app
        .http
        .post(format!("{}/admin/funds/{}/refunded", app.base, wrong["fund_id"]))
        .bearer_auth(ADMIN)
        .json(&json!({"tx_hash": refund_tx}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let refunds = export(&app, "/admin/exports/refunds.csv").await;
    assert_eq!(refunds.len(), 1, "a refund sent outside paywatch is a refund record too: {refunds:?}");
    let r = &refunds[0];
    assert_eq!(
        (r["fund_id"].as_str(), r["transaction_hash"].as_str(), r["status"].as_str(), r["from_address"].as_str()),
        (wrong["fund_id"].as_str(), refund_tx.as_str(), "refunded", "external")
    );
    assert_eq!((r["refunded"].as_str(), r["refunded_base"].as_str()), ("1.5", "1500000"), "{r:?}");

    // Bad periods: a JSON 422 naming the field (as every invalid field); without the admin token: 401.
    for (query, field) in [("from=yesterday", "from"), ("from=2026-02-01&to=2026-01-01", "to"), ("to=2026-13-01", "to")]
    {
        let r = app
            .http
            .get(format!("{}/admin/exports/payments.csv?{query}", app.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(field), "{query}: {body}");
    }
    let r = app.http.get(format!("{}/admin/exports/payments.csv", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

on_both_backends!(exports_parse_and_add_up_to_the_payment_list => exports_match_the_books);
