//! The operator console in headless Chromium, on SQLite and on PostgreSQL: sign-in, sessions
//! and CSRF; a devnet-like state made here (orders in every status, a failed webhook, unswept
//! deposits, a stray fund) read back on the overview, its charts, the orders table and an
//! order's detail; Redeliver, Revoke and Sweep now end to end; axe-core inside every page and
//! screenshots at desktop and phone size. Plus `paywatch status`.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use fantoccini::Locator;
use paywatch::devnet::anvil::accounts;
use paywatch::money::{Token, format_base_units};
use paywatch::store::{outbox, teams};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::browser::{Browser, accessible};
use crate::support::browser::{find, path, sign_in};
use crate::support::webhook_receiver::{Receiver, webhook_config};

use crate::support::app::ADMIN_TOKEN;
const EXPLORER: &str = "https://explorer.example";
const PAGES: [&str; 6] =
    ["/console", "/console/orders", "/console/webhooks", "/console/sweeps", "/console/teams", "/console/funds"];

/// What the test made, to check the console against.
struct State {
    paid_usdt: String,
    paid_tx: String,
    partial_ankr: String,
    awaiting: String,
    expired: String,
    usdt_unswept: U256,
    ankr_unswept: U256,
    failed_event: String,
}

async fn make_state(app: &TestApp, receiver: &Receiver) -> State {
    // A card app: paid at once; its first webhook answered 400, so given up (failed).
    app.create_card_app(1).await;
    let (_, paid_usdt, paid_at, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let paid_tx = app.pay(Token::UsdtErc20, paid_at, owed).await;
    let (_, partial_ankr, ankr_at, ankr_owed) = app.create_crypto_app("ANKR_ERC20", 1).await;
    let ankr_part = ankr_owed * U256::from(2) / U256::from(5);
    app.pay(Token::AnkrErc20, ankr_at, ankr_part).await;
    // USDT sent to an ANKR order: a stray fund (wrong token), swept with the rest.
    let wrong = U256::from(3_000_000u64);
    app.pay(Token::UsdtErc20, ankr_at, wrong).await;
    let (_, awaiting, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, expired, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    // Its hour ran out (the others' did not): expired by the expiry rule.
    let now = paywatch::store::unix_now();
    sqlx::query("UPDATE orders SET expires_at = $1 WHERE order_id = $2")
        .bind(now - 60)
        .bind(&expired)
        .execute(app.db.store.pool())
        .await
        .unwrap();
    paywatch::jobs::expiry::expire_orders(&app.db.store, now).await.unwrap();
    app.wait_order(&expired, 30, |o| o["status"] == "expired").await;
    app.wait_order(&paid_usdt, 30, |o| o["status"] == "paid").await;
    app.wait_order(&partial_ankr, 30, |o| o["status"] == "partially_paid" && o["confirmed"] != "0").await;
    let started = Instant::now();
    let failed_event = loop {
        let list = outbox::list(app.db.store.pool(), outbox::Which::Undelivered, 50).await.unwrap();
        if let Some(d) = list.iter().find(|d| d.state == "failed") {
            break d.event_id.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no webhook given up: {list:?} {:?}", receiver.seen());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The stray fund is recorded once the wrong-token transfer is confirmed.
    let started = Instant::now();
    while paywatch::store::stray_funds::list(app.db.store.pool(), &Default::default(), 10).await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the wrong-token transfer is never a stray fund");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    State {
        paid_usdt,
        paid_tx: format!("{paid_tx:#x}"),
        partial_ankr,
        awaiting,
        expired,
        usdt_unswept: owed + wrong,
        ankr_unswept: ankr_part,
        failed_event,
    }
}

/// A form post as a browser would send it, off the browser (to forge what a browser would not).
fn form(request: reqwest::RequestBuilder, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={}", v.replace('/', "%2F"))).collect();
    request.header("content-type", "application/x-www-form-urlencoded").body(body.join("&"))
}

/// An element's text; found again when the overview's live refresh replaced it meanwhile.
async fn text(browser: &Browser, css: &str) -> String {
    let mut tries = 0;
    loop {
        match find(browser, css).await.text().await {
            Ok(t) => return t,
            Err(e) if tries < 5 => {
                tries += 1;
                let _ = e;
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

async fn all(browser: &Browser, css: &str) -> Vec<fantoccini::elements::Element> {
    browser.client.find_all(Locator::Css(css)).await.unwrap()
}

/// Waits until the browser is at a path starting with `prefix` (after a form's see-other).
async fn wait_path(browser: &Browser, prefix: &str) {
    let started = Instant::now();
    while !path(browser).await.starts_with(prefix) {
        assert!(started.elapsed() < Duration::from_secs(20), "still at {}, wanted {prefix}", path(browser).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The window at `width`, as tall as the page (so a screenshot holds all of it).
async fn whole_page(browser: &Browser, width: u32) {
    browser.client.set_window_size(width, 900).await.unwrap();
    let height = browser.client.execute("return document.documentElement.scrollHeight", vec![]).await.unwrap();
    let height = height.as_u64().unwrap_or(900).clamp(600, 6000) as u32 + 120;
    browser.client.set_window_size(width, height).await.unwrap();
}

/// Screenshots at desktop and phone size (and no sideways scrolling on the phone).
async fn pictures(browser: &Browser, name: &str) {
    whole_page(browser, 1280).await;
    let shot = browser.screenshot(&format!("console-{name}")).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "{shot:?} holds a picture");
    whole_page(browser, 390).await;
    let fits = browser.client.execute("return document.documentElement.scrollWidth <= window.innerWidth", vec![]);
    assert_eq!(fits.await.unwrap(), Value::Bool(true), "{name}: no sideways scrolling on a phone");
    browser.screenshot(&format!("console-{name}-phone")).await;
    browser.client.set_window_size(1280, 900).await.unwrap();
}

async fn console_end_to_end(backend: &'static str) {
    let (receiver, url) = Receiver::start(&[400], 200).await;
    let signer = format!("[signer]\nprivate_key = \"{}\"\n", accounts::DEPLOYER_KEY);
    let app = spawn_app(Options {
        backend,
        confirmations: 1,
        extra_config: format!("{}{signer}", webhook_config(&url)),
        config_edits: vec![(
            "poll_interval_ms = 100\n",
            "poll_interval_ms = 100\nexplorer = \"https://explorer.example\"\n",
        )],
        ..Default::default()
    })
    .await;
    let state = make_state(&app, &receiver).await;
    let shots = backend == "sqlite";

    // Without the cookie every page (and every action) goes to sign-in.
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let detail = format!("/console/orders/{}", state.paid_usdt);
    for page in PAGES.iter().copied().chain([detail.as_str()]) {
        let r = anonymous.get(format!("{}{page}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{page} without a session");
        assert!(r.headers()["location"].to_str().unwrap().starts_with("/console/sign-in"), "{page}");
        assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    }
    let r = form(anonymous.post(format!("{}/console/sweeps/run", app.base)), &[("csrf", "x")]).send().await.unwrap();
    assert_eq!(r.status(), 303, "an action without a session");

    let browser = Browser::start(1280, 900).await;
    browser.client.goto(&format!("{}/console/orders", app.base)).await.unwrap();
    wait_path(&browser, "/console/sign-in").await;
    accessible(&browser, "sign-in").await;
    if shots {
        pictures(&browser, "sign-in").await;
    }
    sign_in(&browser, &app, "not-the-token").await;
    assert!(text(&browser, "#sign-in-error").await.contains("not the admin token"));
    assert!(browser.client.get_named_cookie("paywatch_console").await.is_err(), "no session for a wrong token");
    sign_in(&browser, &app, ADMIN_TOKEN).await;
    // The overview's own part: the sign-in page's path starts with "/console" too.
    find(&browser, "#order-counts").await;
    assert_eq!(text(&browser, "h1").await, "Overview");
    let session = browser.client.get_named_cookie("paywatch_console").await.expect("a session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");

    // A POST with the session but without (or with a wrong) CSRF token is refused.
    let cookie = format!("paywatch_console={}", session.value());
    let redeliver = format!("{}/console/webhooks/{}/redeliver", app.base, state.failed_event);
    for fields in [vec![("back", "/console")], vec![("csrf", "0123456789abcdef0123456789abcdef")]] {
        let r = form(anonymous.post(&redeliver).header("cookie", &cookie), &fields).send().await.unwrap();
        assert_eq!(r.status(), 403, "a POST with {fields:?}");
    }
    let still = outbox::list(app.db.store.pool(), outbox::Which::Undelivered, 50).await.unwrap();
    assert!(still.iter().any(|d| d.event_id == state.failed_event && d.state == "failed"), "nothing was redelivered");

    // The overview: counts and sums from the store, by the payment list's rules.
    let counts = paywatch::store::orders::count_by_status(app.db.store.pool()).await.unwrap();
    assert_eq!(counts, [("awaiting_payment", 1), ("partially_paid", 1), ("paid", 2), ("expired", 1)]);
    for (status, n) in &counts {
        assert_eq!(text(&browser, &format!("#order-counts li[data-status={status}] .n")).await, n.to_string());
    }
    let (pending, failed) = outbox::backlog(app.db.store.pool()).await.unwrap();
    assert!(failed >= 1);
    assert_eq!(text(&browser, "#webhook-counts li[data-state=failed] .n").await, failed.to_string());
    assert_eq!(text(&browser, "#webhook-counts li[data-state=pending] .n").await, pending.to_string());
    assert_eq!(
        text(&browser, "#unswept tr[data-token=USDT_ERC20] .amount").await,
        format_base_units(state.usdt_unswept, 6)
    );
    assert_eq!(
        text(&browser, "#unswept tr[data-token=ANKR_ERC20] .amount").await,
        format_base_units(state.ankr_unswept, 18)
    );
    let (_, months) = app.get(&format!("/v2alpha/{}/pre_payment_list", app.team_id)).await;
    let month = &months.as_array().expect("the payment list")[0];
    let listed_total: Decimal = month["total_usd"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        text(&browser, "#revenue-month tr[data-method=total] .amount").await,
        format!("{:.2}", listed_total),
        "this month's revenue is the payment list's total"
    );
    for method in ["CREDIT_CARD", "USDT_ERC20"] {
        let listed: Decimal = month["app_list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["pay_method"] == method)
            .map(|p| p["usd"].as_str().unwrap().parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(
            text(&browser, &format!("#revenue-month tr[data-method={method}] .amount")).await,
            format!("{listed:.2}")
        );
        let bar = find(&browser, &format!("#revenue-chart rect.bar[data-method={method}]")).await;
        assert_eq!(bar.attr("data-usd").await.unwrap().unwrap().parse::<Decimal>().unwrap(), listed, "{method}'s bar");
    }
    let chain_id = app.chain.anvil.chain_id();
    assert!(!all(&browser, &format!("#lag-{chain_id} circle.point")).await.is_empty(), "the lag chart has points");
    assert_eq!(
        text(&browser, &format!("#chains tr[data-chain-id=\"{chain_id}\"] td:nth-of-type(5)")).await,
        "this process"
    );
    assert!(text(&browser, "table.endpoints").await.contains("block "), "the endpoint answered");
    let (head, processed, _) = first_chain_health(&app).await;
    assert!(head > 0 && processed > 0, "the watcher is running");
    accessible(&browser, "overview").await;
    if shots {
        pictures(&browser, "overview").await;
    }

    // Orders: filter by status, then find one by its transaction hash.
    browser.client.goto(&format!("{}/console/orders", app.base)).await.unwrap();
    assert_eq!(all(&browser, "#orders tbody tr").await.len(), 5);
    find(&browser, "#status").await.select_by_value("partially_paid").await.unwrap();
    find(&browser, "form.filters button").await.click().await.unwrap();
    wait_path(&browser, "/console/orders?status=partially_paid").await;
    let rows = all(&browser, "#orders tbody tr").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attr("data-order-id").await.unwrap().as_deref(), Some(state.partial_ankr.as_str()));
    find(&browser, "#q").await.send_keys(&state.paid_tx).await.unwrap();
    find(&browser, "form.search button").await.click().await.unwrap();
    wait_path(&browser, "/console/orders?q=").await;
    let rows = all(&browser, "#orders tbody tr").await;
    assert_eq!(rows.len(), 1, "one order paid by {}", state.paid_tx);
    assert_eq!(rows[0].attr("data-order-id").await.unwrap().as_deref(), Some(state.paid_usdt.as_str()));
    for (status, id) in [("awaiting_payment", &state.awaiting), ("expired", &state.expired)] {
        browser.client.goto(&format!("{}/console/orders?status={status}", app.base)).await.unwrap();
        let rows = all(&browser, "#orders tbody tr").await;
        assert_eq!(rows.len(), 1, "{status}");
        assert_eq!(rows[0].attr("data-order-id").await.unwrap().as_deref(), Some(id.as_str()));
    }
    browser.client.goto(&format!("{}/console/orders", app.base)).await.unwrap();
    accessible(&browser, "orders").await;
    if shots {
        pictures(&browser, "orders").await;
    }

    // Order detail: its transfer with an explorer link, its timeline (as the recorder writes it).
    find(&browser, &format!("#orders a[href=\"{detail}\"]")).await.click().await.unwrap();
    wait_path(&browser, &detail).await;
    assert_eq!(text(&browser, "#order-status").await, "paid");
    let link = find(&browser, &format!("#transfers tr[data-tx=\"{}\"] a", state.paid_tx)).await;
    assert_eq!(link.attr("href").await.unwrap(), Some(format!("{EXPLORER}/tx/{}", state.paid_tx)));
    let started = Instant::now();
    while !text(&browser, "#main").await.contains("paid ·") {
        assert!(started.elapsed() < Duration::from_secs(30), "the timeline never shows paid");
        tokio::time::sleep(Duration::from_millis(200)).await;
        browser.client.refresh().await.unwrap();
    }
    assert!(text(&browser, "#app").await.contains("active"), "the order's app");
    accessible(&browser, "order detail").await;
    if shots {
        pictures(&browser, "order-detail").await;
    }

    // Redeliver the failed webhook: the receiver gets it.
    browser.client.goto(&format!("{}/console/webhooks", app.base)).await.unwrap();
    accessible(&browser, "webhooks").await;
    if shots {
        pictures(&browser, "webhooks").await;
    }
    find(&browser, &format!("#undelivered tr[data-event-id=\"{}\"] button", state.failed_event))
        .await
        .click()
        .await
        .unwrap();
    let started = Instant::now();
    while !receiver.seen().iter().any(|r| r.event_id == state.failed_event && r.answered == 200) {
        assert!(started.elapsed() < Duration::from_secs(30), "the redelivered event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Revoke the team's key: the API refuses it.
    let owner = teams::find_key_owner(app.db.store.pool(), &app.api_key).await.unwrap().expect("the key is live");
    let (status, _) = app.get(&format!("/v2alpha/teams/{}/orders/{}", app.team_id, state.paid_usdt)).await;
    assert_eq!(status, 200);
    browser.client.goto(&format!("{}/console/teams", app.base)).await.unwrap();
    accessible(&browser, "teams").await;
    if shots {
        pictures(&browser, "teams").await;
    }
    find(&browser, &format!("tr[data-key-id=\"{}\"] button", owner.key_id)).await.click().await.unwrap();
    wait_path(&browser, "/console/teams").await;
    let revoked = Instant::now();
    while !text(&browser, &format!("tr[data-key-id=\"{}\"]", owner.key_id)).await.contains("revoked") {
        assert!(revoked.elapsed() < Duration::from_secs(20), "the key never shows as revoked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = app.get(&format!("/v2alpha/teams/{}/orders/{}", app.team_id, state.paid_usdt)).await;
    assert_eq!(status, 401, "a revoked key is refused");

    // Stray funds list the wrong-token payment with its actions.
    browser.client.goto(&format!("{}/console/funds", app.base)).await.unwrap();
    assert!(text(&browser, "#funds").await.contains("wrong token"));
    accessible(&browser, "stray funds").await;
    if shots {
        pictures(&browser, "funds").await;
    }
    // Mark refunded from the page: a malformed hash is refused with its reason and changes
    // nothing; a good one settles the fund.
    let fund = paywatch::store::stray_funds::list(app.db.store.pool(), &Default::default(), 10).await.unwrap();
    let fund_id = &fund[0].fund_id;
    let refund = |hash: &'static str| {
        let browser = &browser;
        async move {
            find(browser, &format!("#refund-{fund_id}")).await.send_keys(hash).await.unwrap();
            find(browser, &format!("form[action=\"/console/funds/{fund_id}/refunded\"] button"))
                .await
                .click()
                .await
                .unwrap();
        }
    };
    refund("0x12").await;
    assert!(text(&browser, "p.error").await.contains("tx_hash"), "a malformed refund hash is refused with its reason");
    let kept = paywatch::store::stray_funds::get(app.db.store.pool(), fund_id).await.unwrap().unwrap();
    assert_eq!(kept.status, "unattributed", "a refused refund changes nothing");
    browser.client.goto(&format!("{}/console/funds", app.base)).await.unwrap();
    let hash = "0x00000000000000000000000000000000000000000000000000000000000000fe";
    refund(hash).await;
    wait_path(&browser, "/console/funds").await;
    let row = text(&browser, &format!("tr[data-fund-id=\"{fund_id}\"][data-status=\"refunded\"]")).await;
    assert!(row.contains(hash), "the refunded fund shows its refund transaction: {row}");

    // Sweep now: the treasury's balance moves on anvil by what was waiting.
    let usdt = app.chain.token(Token::UsdtErc20);
    let before = app.chain.balance_of(usdt, app.chain.treasury).await;
    browser.client.goto(&format!("{}/console/sweeps", app.base)).await.unwrap();
    accessible(&browser, "sweeps").await;
    if shots {
        pictures(&browser, "sweeps").await;
    }
    find(&browser, "form[action=\"/console/sweeps/run\"] button").await.click().await.unwrap();
    assert!(text(&browser, "#sweep-report").await.contains("\"swept\""), "the sweep's report");
    let started = Instant::now();
    while app.chain.balance_of(usdt, app.chain.treasury).await - before != state.usdt_unswept {
        assert!(started.elapsed() < Duration::from_secs(30), "the treasury never received the USDT waiting");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await;
    app.stop().await;
}

on_both_backends!(the_console_shows_and_acts_on_a_devnet_like_state => console_end_to_end);

/// `paywatch status` prints the overview; with the node unreachable it says so and exits 1.
#[tokio::test]
async fn status_prints_the_overview_and_exits_1_when_the_rpc_is_unreachable() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, owed).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    let config = app.config_path.to_str().unwrap().to_string();
    let out = crate::support::paywatch_beside_server(&["status", "--config", &config]).await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status: {printed}\n{}", String::from_utf8_lossy(&out.stderr));
    let head = app.head().await;
    assert!(printed.contains(&format!("main ({}): head {head}", app.chain.anvil.chain_id())), "{printed}");
    assert!(printed.contains("paid: 1"), "{printed}");
    assert!(
        printed.contains(&format!("USDT_ERC20 on main: {} at 1 address(es)", format_base_units(owed, 6))),
        "{printed}"
    );

    let text = std::fs::read_to_string(&app.config_path).unwrap();
    let dead = text.replace(&app.chain.anvil.rpc_url(), "http://127.0.0.1:9");
    assert_ne!(dead, text);
    let dead_path = app.config_path.with_file_name("dead-rpc.toml");
    std::fs::write(&dead_path, dead).unwrap();
    let out = crate::support::paywatch_beside_server(&["status", "--config", dead_path.to_str().unwrap()]).await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "exit 1 with the RPC unreachable: {printed}");
    assert!(printed.contains("UNREACHABLE"), "{printed}");
    assert!(printed.contains("paid: 1"), "the rest of the overview is still printed: {printed}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no RPC endpoint answers"));
    app.stop().await;
}

async fn first_chain_health(app: &TestApp) -> (u64, u64, u64) {
    let health: Value = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap().json().await.unwrap();
    let c = &health["chains"][0];
    let (head, processed) = (c["head"].as_u64().unwrap(), c["processed_block"].as_u64().unwrap());
    let behind = c["behind_blocks"].as_u64().expect("behind_blocks in /healthz");
    assert_eq!(behind, head.saturating_sub(processed), "behind_blocks is head - processed: {health}");
    assert_eq!(health["behind_blocks"], c["behind_blocks"], "the first chain's, at the top");
    (head, processed, behind)
}
