//! The checkout page in headless Chromium: open it, pay on anvil, and watch the status reach
//! paid without a reload; screenshots on a desktop and a phone-sized window. Plus the page's
//! HTTP surface: no key needed, 404 for an unknown order, same-origin assets only.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use paywatch::money::Token;
use serde_json::Value;

use crate::support::app::{Options, spawn_app};
use crate::support::browser::Browser;

async fn text(browser: &Browser, css: &str) -> String {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

async fn page_status(browser: &Browser) -> (String, String) {
    let el = browser.client.find(Locator::Css("#status")).await.expect("#status on the page");
    (el.attr("data-status").await.unwrap().unwrap_or_default(), el.text().await.unwrap())
}

/// Waits until the page's status element says `status`; fails with what it says instead.
async fn wait_status(browser: &Browser, status: &str, text_contains: &str) -> String {
    let started = Instant::now();
    loop {
        let (now, text) = page_status(browser).await;
        if now == status && text.contains(text_contains) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "page stuck at {now:?} {text:?}, wanted {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn checkout_page_reaches_paid_live_in_headless_chromium() {
    let app = spawn_app(Options { confirmations: 2, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let order = app.order(&order_id).await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&format!("{}/pay/{order_id}", app.base)).await.unwrap();

    assert_eq!(text(&browser, "#amount").await, order["expected"].as_str().unwrap());
    assert_eq!(text(&browser, "#address").await.to_lowercase(), format!("{address:#x}"));
    let wallet = browser.client.find(Locator::Css("#wallet-link")).await.unwrap();
    assert_eq!(wallet.attr("href").await.unwrap().as_deref(), order["payment_uri"].as_str());
    browser.client.find(Locator::Css(".qr svg")).await.expect("a QR code");
    assert!(text(&browser, "#countdown").await.starts_with("Expires in "), "a countdown runs");
    wait_status(&browser, "awaiting_payment", "Waiting for payment").await;
    browser.screenshot("checkout-awaiting").await;

    // Everything the page loaded came from paywatch itself: it works offline.
    let foreign = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(foreign, Value::Array(vec![]), "resources from elsewhere: {foreign}");

    // A marker on the window survives only if the page is never reloaded.
    browser.client.execute("window.__notReloaded = true; return true", vec![]).await.unwrap();
    app.pay(Token::UsdtErc20, address, owed).await;
    wait_status(&browser, "awaiting_payment", "Payment seen").await;
    assert!(text(&browser, "#detail").await.contains("1 of 2 confirmations"));
    app.mine(1).await;
    wait_status(&browser, "paid", "Paid").await;
    let marker = browser.client.execute("return window.__notReloaded === true", vec![]).await.unwrap();
    assert_eq!(marker, Value::Bool(true), "the status changed without a reload");
    assert_eq!(text(&browser, "#countdown").await, "", "no countdown once paid");
    assert!(text(&browser, ".closed-note").await.contains("paid"), "a paid order shows no instructions");
    assert!(browser.client.find(Locator::Css("#address")).await.is_err(), "the address is gone once paid");
    let shot = browser.screenshot("checkout-paid").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "{shot:?} holds a picture");

    // The same page on a phone-sized window: the address stays inside the screen.
    browser.client.set_window_size(390, 844).await.unwrap();
    let overflow = browser
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth", vec![])
        .await
        .unwrap();
    assert_eq!(overflow, Value::Bool(true), "no sideways scrolling on a phone");
    browser.screenshot("checkout-paid-phone").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn checkout_page_is_public_and_unknown_orders_are_404() {
    let app = spawn_app(Options::default()).await;
    let (_, order_id, address, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let anonymous = reqwest::Client::new();
    let page = anonymous.get(format!("{}/pay/{order_id}", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains(&format!("{address:#x}")), "the deposit address is on the page");
    for external in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(http"] {
        assert!(!html.contains(external), "nothing loaded from elsewhere ({external})");
    }
    for asset in ["/pay/assets/checkout.js", "/pay/assets/checkout.css"] {
        assert!(html.contains(asset), "{asset} is linked");
        let r = anonymous.get(format!("{}{asset}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
    }
    let missing = anonymous.get(format!("{}/pay/00000000-0000-4000-8000-000000000000", app.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Order not found"));
    app.stop().await;
}

/// An expired order's page (served fresh) says not to send and shows no address; so does a
/// paid one. GetEthOrder answers the open order first, else the newest without a payment URI.
#[tokio::test]
async fn closed_orders_show_no_payment_instructions_and_get_eth_order_prefers_the_open_one() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, first, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&first, 20, |o| o["status"] == "paid").await;
    let anonymous = reqwest::Client::new();
    let page = |id: String| {
        let url = format!("{}/pay/{id}", app.base);
        let anonymous = anonymous.clone();
        async move { anonymous.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let paid_page = page(first.clone()).await;
    assert!(paid_page.contains("This order is paid"), "{paid_page}");
    assert!(!paid_page.contains("Send exactly") && !paid_page.contains("id=\"address\""), "no instructions once paid");

    let extend = |_: ()| async {
        let body = serde_json::json!({"app_id": app_id, "period": 1, "pay_method": "USDT_ERC20"});
        let (status, body) = app.post("/v2alpha/create_extend_order", &body).await;
        assert_eq!(status, 200, "{body}");
        body["order_id"].as_str().unwrap().to_string()
    };
    let older = extend(()).await;
    let newer = extend(()).await;
    let pool = app.db.store.pool().clone();
    let expire = |id: String| {
        let pool = pool.clone();
        async move {
            sqlx::query("UPDATE orders SET status = 'expired' WHERE order_id = $1")
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    expire(newer.clone()).await;
    let eth_path = format!("/v2alpha/teams/{}/eth_order/{app_id}?pay_method=USDT_ERC20", app.team_id);
    let eth_order = || app.get(&eth_path);
    let (status, open) = eth_order().await;
    assert_eq!(status, 200, "{open}");
    assert_eq!(open["order_id"], older.as_str(), "the open order, not the newer expired one: {open}");
    assert!(open["payment_uri"].as_str().is_some_and(|u| u.starts_with("ethereum:")), "{open}");

    expire(older.clone()).await;
    let (_, closed) = eth_order().await;
    assert_eq!(closed["order_id"], newer.as_str(), "with none open, the newest: {closed}");
    assert_eq!(closed["status"], "expired");
    assert!(closed.get("payment_uri").is_none(), "a closed order has no payment_uri: {closed}");
    let expired_page = page(newer).await;
    assert!(expired_page.contains("do not send"), "{expired_page}");
    assert!(!expired_page.contains("Send exactly") && !expired_page.contains("id=\"address\""), "{expired_page}");
    app.stop().await;
}

/// With two chains the page offers both networks; switching changes the QR code's URI (chain
/// id and token), the amount and the wallet link, the address stays; a payment on the second
/// chain turns the page to paid.
#[tokio::test]
async fn checkout_page_offers_both_networks_and_turns_paid_by_the_second_chain() {
    use paywatch::devnet::{L2_CHAIN_ID, L2_USDT};
    let app = spawn_app(Options { confirmations: 1, l2_confirmations: Some(2), ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&format!("{}/pay/{order_id}", app.base)).await.unwrap();
    wait_status(&browser, "awaiting_payment", "Waiting for payment").await;
    let choices = browser.client.find_all(Locator::Css("#networks input[name=network]")).await.unwrap();
    assert_eq!(choices.len(), 2, "both networks offered");
    assert!(text(&browser, "#same-address").await.contains("same address"), "the page says the address is one");

    let visible_qr = || async {
        browser
            .client
            .execute("return [...document.querySelectorAll('.qr[data-chain-id]')].filter(q => !q.hidden).map(q => q.dataset.chainId)", vec![])
            .await
            .unwrap()
    };
    let wallet = || async {
        browser.client.find(Locator::Css("#wallet-link")).await.unwrap().attr("href").await.unwrap().unwrap_or_default()
    };
    let first_token = app.chain.token(Token::UsdtErc20);
    assert_eq!(visible_qr().await, serde_json::json!([paywatch::devnet::CHAIN_ID.to_string()]));
    assert_eq!(wallet().await, format!("ethereum:{first_token}@31337/transfer?address={address}&uint256={owed}"));

    let second =
        browser.client.find(Locator::Css(&format!("input[name=network][value='{L2_CHAIN_ID}']"))).await.unwrap();
    second.click().await.unwrap();
    let l2_token = app.l2().token(L2_USDT);
    let l2_uri = format!("ethereum:{l2_token}@{L2_CHAIN_ID}/transfer?address={address}&uint256={owed}");
    assert_eq!(wallet().await, l2_uri, "the wallet link follows the choice");
    assert_eq!(visible_qr().await, serde_json::json!([L2_CHAIN_ID.to_string()]), "the QR code follows the choice");
    // The QR code shown is the one of that URI, as the server rendered it for that option.
    let order = app.order(&order_id).await;
    let option = order["options"].as_array().unwrap().iter().find(|o| o["chain_id"] == L2_CHAIN_ID).unwrap().clone();
    assert_eq!(option["payment_uri"], l2_uri);
    assert_eq!(
        text(&browser, "#network").await,
        format!("Local {} devnet", paywatch::devnet::L2_NAME),
        "its display name"
    );
    assert_eq!(text(&browser, "#token").await.to_lowercase(), format!("{l2_token:#x}"));
    assert_eq!(text(&browser, "#address").await.to_lowercase(), format!("{address:#x}"), "the same address");
    browser.screenshot("checkout-networks").await;

    // 40 % on the first chain: the amount and link of the chosen network ask for what remains.
    let part = owed * alloy::primitives::U256::from(4u8) / alloy::primitives::U256::from(10u8);
    app.pay(Token::UsdtErc20, address, part).await;
    wait_status(&browser, "partially_paid", "Partially paid").await;
    let rest = owed - part;
    let started = Instant::now();
    while !wallet().await.ends_with(&format!("uint256={rest}")) {
        assert!(started.elapsed() < Duration::from_secs(30), "the link still asks for {}", wallet().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let remaining = app.order(&order_id).await["remaining"].as_str().unwrap().to_string();
    assert_eq!(text(&browser, "#amount").await, remaining, "the amount is what remains");

    app.pay_l2(address, rest).await;
    alloy::providers::ext::AnvilApi::anvil_mine(&app.l2().deployer, Some(1), None).await.unwrap();
    wait_status(&browser, "paid", "Paid").await;
    browser.close().await;
    app.stop().await;
}

/// Issue 26, item 9: after a partial payment on a single-network order, the page, its wallet
/// link (and so its QR code, drawn from the same URI), the order's `payment_uri` and
/// GetEthOrder's ask for what remains, never the whole amount again.
#[tokio::test]
async fn after_a_partial_payment_a_single_network_order_asks_for_what_remains() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let part = owed * alloy::primitives::U256::from(40u64) / alloy::primitives::U256::from(100u64);
    let left = owed - part;
    app.pay(Token::UsdtErc20, address, part).await;
    let order = app.wait_order(&order_id, 20, |o| o["status"] == "partially_paid").await;
    let remaining = order["remaining"].as_str().unwrap().to_string();
    assert_ne!(remaining, order["expected"].as_str().unwrap(), "something was paid: {order:#}");
    let asks_left = |uri: &str| uri.ends_with(&format!("uint256={left}"));
    assert!(asks_left(order["payment_uri"].as_str().unwrap()), "the order's payment_uri: {order:#}");

    let page = reqwest::get(format!("{}/pay/{order_id}", app.base)).await.unwrap().text().await.unwrap();
    assert!(
        page.contains(&format!("<span id=\"amount\">{remaining}</span>")),
        "the amount shown is what remains: {page}"
    );
    assert!(page.contains(&format!("uint256={left}\"")), "the wallet link asks for what remains: {page}");
    assert!(!page.contains(&format!("uint256={owed}")), "nothing asks for the whole amount: {page}");

    let (status, eth) =
        app.get(&format!("/v2alpha/teams/{}/eth_order/{app_id}?pay_method=USDT_ERC20", app.team_id)).await;
    assert_eq!(status, 200, "{eth}");
    assert!(asks_left(eth["payment_uri"].as_str().unwrap()), "GetEthOrder's payment_uri: {eth}");
    app.pay(Token::UsdtErc20, address, left).await;
    let paid = app.wait_order(&order_id, 20, |o| o["status"] == "paid").await;
    assert_eq!(paid["overpaid"], "0", "paying what was asked pays exactly: {paid:#}");
    app.stop().await;
}
