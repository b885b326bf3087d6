//! Refund claims on anvil (issue 29): stray funds refunded through claim links (one filled in
//! headless Chromium), sent from the refund wallet and confirmed at depth, exactly once through a
//! reorg and a SIGKILL; the limits; an external signer's transaction recorded by its hash.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use paywatch::money::Token;
use serde_json::{Value, json};

use crate::support::admin::{admin, fund_safe, funds, safe_sends};
use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::browser::{find, signed_in};
use crate::support::chain::Mined;

const USDT: u64 = 1_000_000;

/// An app whose refund wallet is `wallet` (funded with gas and 1,000 of each token), or none.
async fn refund_app(backend: &'static str, wallet: Option<&PrivateKeySigner>, limits: &str) -> TestApp {
    let key = wallet.map(|w| format!("private_key = \"0x{}\"\n", alloy::hex::encode(w.to_bytes()))).unwrap_or_default();
    let app = spawn_app(Options {
        backend,
        confirmations: 2,
        extra_config: format!("[refunds]\n{key}{limits}"),
        ..Default::default()
    })
    .await;
    if let Some(w) = wallet {
        app.chain.deployer.anvil_set_balance(w.address(), U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
        paywatch::devnet::fund(&app.chain.deployer, &app.chain.deployment, w.address(), 1_000).await.unwrap();
    }
    app
}

/// An overpaid USDT order (2 USDT over) and an ANKR order paid 1.5 USDT: two stray funds.
async fn two_funds(app: &TestApp) -> (Value, Value) {
    let (_, over, a, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, _, b, _) = app.create_crypto_app("ANKR_ERC20", 1).await;
    app.pay(Token::UsdtErc20, a, owed + U256::from(2 * USDT)).await;
    app.pay(Token::UsdtErc20, b, U256::from(3 * USDT / 2)).await;
    app.mine(2).await;
    app.wait_order(&over, 20, |o| o["status"] == "paid").await;
    let started = Instant::now();
    loop {
        let open = funds(app, "?status=unattributed").await;
        if open.len() == 2 {
            let by = |reason: &str| open.iter().find(|f| f["reason"] == reason).unwrap().clone();
            return (by("overpaid"), by("wrong_token"));
        }
        assert!(started.elapsed() < Duration::from_secs(20), "two funds: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The overpaid fund of `two_funds`, refunded whole and claimed by a fresh address: (refund id,
/// the address).
async fn overpayment_claimed(app: &TestApp) -> (String, Address) {
    let (overpaid, _) = two_funds(app).await;
    let to = PrivateKeySigner::random().address();
    let refund = refund_of(app, &overpaid, None).await;
    let id = refund["refund"]["refund_id"].as_str().unwrap().to_string();
    assert_eq!(claim(app, &id, &format!("{to:#x}")).await.0, 200);
    (id, to)
}

async fn refund_of(app: &TestApp, fund: &Value, amount: Option<&str>) -> Value {
    let body = amount.map_or(json!({}), |a| json!({"amount": a}));
    let path = format!("/admin/funds/{}/refunds", fund["fund_id"].as_str().unwrap());
    let (status, answer) = admin(app, reqwest::Method::POST, &path, Some(body)).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn claim(app: &TestApp, refund_id: &str, address: &str) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}/refund/{refund_id}", app.base))
        .json(&json!({"address": address, "confirm": true}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn approve(app: &TestApp, refund_id: &str) -> (u16, Value) {
    admin(app, reqwest::Method::POST, &format!("/admin/refunds/{refund_id}/approve"), None).await
}

/// Mines a block at a time until the refund reads `status` (the job sends and follows it).
async fn wait_refund(app: &TestApp, refund_id: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let (_, detail) = admin(app, reqwest::Method::GET, &format!("/admin/refunds/{refund_id}"), None).await;
        if detail["refund"]["status"] == status {
            return detail["refund"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "refund never {status}: {detail}");
        if detail["refund"]["status"] == "sent" {
            app.mine(1).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn usdt(app: &TestApp) -> Address {
    app.chain.token(Token::UsdtErc20)
}

async fn refunds_through_claim_links(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "").await;
    let (overpaid, wrong) = two_funds(&app).await;
    let (first, second) = (PrivateKeySigner::random().address(), PrivateKeySigner::random().address());

    // The overpayment, whole, refunded by the API; 1 of the wrong token's 1.5 from the console.
    let whole = refund_of(&app, &overpaid, None).await;
    let whole_id = whole["refund"]["refund_id"].as_str().unwrap().to_string();
    assert_eq!(whole["refund"]["amount_base"], (2 * USDT).to_string());
    let browser = crate::support::browser::Browser::start(1280, 900).await;
    signed_in(&browser, &app).await;
    browser.client.goto(&format!("{}/console/funds", app.base)).await.unwrap();
    let fund_id = wrong["fund_id"].as_str().unwrap();
    find(&browser, &format!("#refund-amount-{fund_id}")).await.send_keys("1").await.unwrap();
    find(&browser, &format!("tr[data-fund-id=\"{fund_id}\"] form.refund button")).await.click().await.unwrap();
    let row = find(&browser, &format!("#refunds tr[data-status=\"open\"]:not([data-refund-id=\"{whole_id}\"])")).await;
    let part_id = row.attr("data-refund-id").await.unwrap().unwrap();
    crate::support::browser::accessible(&browser, "stray funds and refunds").await;
    let open = funds(&app, "?status=unattributed").await;
    assert_eq!(open.len(), 1, "the wrong token's other 0.5 stays open: {open:?}");
    assert_eq!(open[0]["amount_base"], (USDT / 2).to_string());
    // A fund being refunded cannot also pay an order.
    let (_, open_order, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let apply = format!("/admin/funds/{}/apply", overpaid["fund_id"].as_str().unwrap());
    let (status, body) = admin(&app, reqwest::Method::POST, &apply, Some(json!({"order_id": open_order}))).await;
    assert_eq!(status, 409, "{body}");

    // Both claimed by the payer in the browser, through their links.
    for (id, to, shows) in [(&whole_id, first, "2 USDT"), (&part_id, second, "1 USDT")] {
        browser.client.goto(&format!("{}/refund/{id}", app.base)).await.unwrap();
        assert!(find(&browser, "#refund-amount").await.text().await.unwrap().contains(shows));
        crate::support::browser::accessible(&browser, "refund claim").await;
        find(&browser, "#address").await.send_keys(&to.to_checksum(None)).await.unwrap();
        find(&browser, "#confirm").await.click().await.unwrap();
        find(&browser, "form.claim button").await.click().await.unwrap();
        let said = find(&browser, "#refund-status").await.text().await.unwrap();
        assert!(said.contains("Claimed"), "{said}");
    }
    let (whole_id, part_id) = (whole_id.as_str(), part_id.as_str());

    // A second claim, and addresses a refund may not go to.
    assert_eq!(claim(&app, whole_id, &format!("{second:#x}")).await.0, 409, "claimed once");
    let again = refund_of(&app, &funds(&app, "?status=unattributed").await[0], Some("0.25")).await;
    let again_id = again["refund"]["refund_id"].as_str().unwrap();
    let deposit = overpaid["deposit_address"].as_str().unwrap().to_string();
    let mut bad_checksum = first.to_checksum(None);
    bad_checksum = bad_checksum.replacen(|c: char| c.is_ascii_uppercase(), "x", 1).replace('x', "a");
    for (address, says) in [
        (deposit.as_str(), "deposit address"),
        (&format!("{:#x}", usdt(&app)), "token contract"),
        ("0x0000000000000000000000000000000000000000", "zero"),
        ("0x12", "40 hex digits"),
    ] {
        let (status, body) = claim(&app, again_id, address).await;
        assert_eq!(status, 422, "{address}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{address}: {body}");
    }
    if bad_checksum != first.to_checksum(None) && bad_checksum.chars().any(|c| c.is_ascii_uppercase()) {
        let (status, body) = claim(&app, again_id, &bad_checksum).await;
        assert_eq!(status, 422, "a broken checksum: {body}");
    }

    // Approved: sent from the refund wallet, confirmed at depth; a second approval changes nothing.
    assert_eq!(approve(&app, whole_id).await.0, 200);
    browser.client.goto(&format!("{}/console/funds", app.base)).await.unwrap();
    find(&browser, &format!("#refunds tr[data-refund-id=\"{part_id}\"] button")).await.click().await.unwrap();
    find(&browser, &format!("#refunds tr[data-refund-id=\"{part_id}\"][data-status=\"approved\"], #refunds tr[data-refund-id=\"{part_id}\"][data-status=\"sent\"], #refunds tr[data-refund-id=\"{part_id}\"][data-status=\"refunded\"]")).await;
    let (status, body) = approve(&app, whole_id).await;
    assert_eq!(status, 409, "{body}");
    let done_whole = wait_refund(&app, whole_id, "refunded").await;
    let done_part = wait_refund(&app, part_id, "refunded").await;
    assert_eq!(app.chain.balance_of(usdt(&app), first).await, U256::from(2 * USDT));
    assert_eq!(app.chain.balance_of(usdt(&app), second).await, U256::from(USDT));
    for (fund, done) in [(&overpaid, &done_whole), (&wrong, &done_part)] {
        let listed = funds(&app, "?status=refunded").await;
        let row = listed.iter().find(|f| f["fund_id"] == fund["fund_id"]).unwrap();
        assert!(
            done["tx_hash"].as_str().is_some_and(|h| h.len() == 66),
            "the refund reads refunded with its hash: {done}"
        );
        assert_eq!(row["refund_tx"], done["tx_hash"], "the fund reads refunded with the transaction");
        assert_eq!(done["from_address"], format!("{:#x}", wallet.address()));
    }
    assert_ne!(done_whole["nonce"], done_part["nonce"]);
    // The console's download of the refunds file: both, with their transactions.
    let session = browser.client.get_named_cookie("paywatch_console").await.expect("a session cookie");
    let csv = app
        .http
        .get(format!("{}/console/exports/refunds.csv", app.base))
        .header("cookie", format!("paywatch_console={}", session.value()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for done in [&done_whole, &done_part] {
        assert!(csv.contains(done["tx_hash"].as_str().unwrap()), "{csv}");
    }
    // One row per refund record with its status (the 0.25 still open); the days' sums of what
    // the file says left equal what left the refund wallet on chain.
    let rows: Vec<std::collections::HashMap<String, String>> =
        csv::Reader::from_reader(csv.as_bytes()).deserialize().map(Result::unwrap).collect();
    let status_of = |id: &str| rows.iter().find(|r| r["refund_id"] == id).map(|r| r["status"].clone());
    assert_eq!(status_of(again_id).as_deref(), Some("open"), "{rows:?}");
    assert_eq!((status_of(whole_id).as_deref(), status_of(part_id).as_deref()), (Some("refunded"), Some("refunded")));
    let mut per_day = std::collections::BTreeMap::<String, U256>::new();
    for row in rows.iter().filter(|r| r["token"] == format!("{:#x}", usdt(&app))) {
        *per_day.entry(row["at"][..10].to_string()).or_default() += row["refunded_base"].parse::<U256>().unwrap();
    }
    let left = U256::from(1_000 * USDT) - app.chain.balance_of(usdt(&app), wallet.address()).await;
    assert_eq!(per_day.values().copied().sum::<U256>(), left, "refunds.csv against the wallet: {per_day:?}");
    browser.close().await;
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM webhook_outbox WHERE event_type LIKE 'refund.%'")
            .fetch_all(app.db.store.pool())
            .await
            .unwrap();
    for kind in ["refund.claimed", "refund.sent", "refund.confirmed"] {
        assert_eq!(events.iter().filter(|e| *e == kind).count(), 2, "{kind}: {events:?}");
    }
    app.stop().await;
}

on_both_backends!(stray_funds_are_refunded_through_claim_links_once => refunds_through_claim_links);

/// The refund's transaction leaves the chain before it is deep: the same transaction (nonce,
/// hash) is sent again, and the payer receives the refund once.
async fn reorged_out_refund(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "").await;
    let (id, to) = overpayment_claimed(&app).await;
    let id = id.as_str();
    assert_eq!(approve(&app, id).await.0, 200);
    // Mined (automine) and seen in its block by the job, not yet deep.
    let started = Instant::now();
    let sent = loop {
        let (_, d) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{id}"), None).await;
        if !d["refund"]["block_number"].is_null() {
            break d["refund"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "never mined: {d}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT));
    app.chain
        .deployer
        .anvil_reorg(alloy::rpc::types::anvil::ReorgOptions { depth: 1, tx_block_pairs: vec![] })
        .await
        .unwrap();
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::ZERO, "the reorg took the refund");
    let done = wait_refund(&app, id, "refunded").await;
    assert_eq!((&done["tx_hash"], &done["nonce"]), (&sent["tx_hash"], &sent["nonce"]), "the same transaction");
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT), "received once");
    let nonce = app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap();
    assert_eq!(nonce, done["nonce"].as_u64().unwrap() + 1, "the wallet sent one transaction");
    app.stop().await;
}

on_both_backends!(a_refund_reorged_out_is_sent_again_and_received_once => reorged_out_refund);

/// Per refund and per day: a refund over the one is refused when created, an approval past the
/// other is refused with the day's total in its message, and the refund waits, claimed.
async fn refund_limits(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let limits = "max_per_refund_usd = \"1.6\"\nmax_per_day_usd = \"2.5\"\n";
    let app = refund_app(backend, Some(&wallet), limits).await;
    let (overpaid, wrong) = two_funds(&app).await;
    let path = format!("/admin/funds/{}/refunds", overpaid["fund_id"].as_str().unwrap());
    let (status, body) = admin(&app, reqwest::Method::POST, &path, Some(json!({}))).await;
    assert_eq!(status, 422, "2 USDT is over 1.6: {body}");
    assert!(body["message"].as_str().unwrap().contains("per-refund limit"), "{body}");
    let first = refund_of(&app, &wrong, None).await;
    let second = refund_of(&app, &overpaid, Some("1.5")).await;
    for r in [&first, &second] {
        let id = r["refund"]["refund_id"].as_str().unwrap();
        assert_eq!(claim(&app, id, &format!("{:#x}", PrivateKeySigner::random().address())).await.0, 200);
    }
    assert_eq!(approve(&app, first["refund"]["refund_id"].as_str().unwrap()).await.0, 200);
    let second_id = second["refund"]["refund_id"].as_str().unwrap();
    let (status, body) = approve(&app, second_id).await;
    assert_eq!(status, 422, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("per-day limit of 2.5 USD") && message.contains("1.5"), "{message}");
    let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{second_id}"), None).await;
    assert_eq!(detail["refund"]["status"], "claimed");
    app.stop().await;
}

on_both_backends!(the_refund_limits_refuse_with_a_clear_error => refund_limits);

/// SIGKILL of the process that sent a refund, the moment the payer's balance shows it (before
/// it could record the receipt): the next process follows the same transaction, and the payer
/// receives it once (one nonce, one intent).
async fn sigkill_after_sending(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let mut app = refund_app(backend, Some(&wallet), "").await;
    let (overpaid, _) = two_funds(&app).await;
    app.stop_server().await;
    let config = app.config_path.clone();
    let port = || paywatch::devnet::anvil::free_port().unwrap();
    let server = crate::support::process::ServeProcess::start(&config, port()).await;
    let to = PrivateKeySigner::random().address();
    let refund = refund_of_at(&server.base, &overpaid).await;
    let id = refund["refund"]["refund_id"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/refund/{id}", server.base))
        .json(&json!({"address": format!("{to:#x}"), "confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/admin/refunds/{id}/approve", server.base))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    while app.chain.balance_of(usdt(&app), to).await.is_zero() {
        assert!(started.elapsed() < Duration::from_secs(20), "never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill9().await;
    let again = crate::support::process::ServeProcess::start(&config, port()).await;
    let started = Instant::now();
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM refunds WHERE refund_id = $1")
            .bind(&id)
            .fetch_one(app.db.store.pool())
            .await
            .unwrap();
        if status == "refunded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never confirmed after the restart: {status}");
        app.mine(1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT), "received once");
    let intents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM refunds WHERE nonce IS NOT NULL")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(intents, 1);
    assert_eq!(app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap(), 1, "one transaction sent");
    again.kill9().await;
    app.stop().await;
}

on_both_backends!(a_sigkill_after_sending_leads_to_one_refund => sigkill_after_sending);

async fn refund_of_at(base: &str, fund: &Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/admin/funds/{}/refunds", fund["fund_id"].as_str().unwrap()))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn sent_hash(app: &TestApp, refund_id: &str, hash: &str) -> (u16, Value) {
    admin(app, reqwest::Method::POST, &format!("/admin/refunds/{refund_id}/sent"), Some(json!({"tx_hash": hash}))).await
}

/// No refund key: the approved refund carries the transaction to sign; the test sends it from
/// its Safe (`[refunds] external_sender`), gives its hash back, and the refund is confirmed by
/// its receipt. Hashes that did not pay it are refused: one no chain knows (a safeTxHash), an
/// unrelated mined one, the right transfer from another sender, and a hash another refund holds.
async fn external_signer(backend: &'static str) {
    let safe = PrivateKeySigner::random();
    let app = refund_app(backend, None, &format!("external_sender = \"{:#x}\"\n", safe.address())).await;
    fund_safe(&app, &safe).await;
    let (id, to) = overpayment_claimed(&app).await;
    let id = id.as_str();
    let (status, approved) = approve(&app, id).await;
    assert_eq!(status, 200, "{approved}");
    let prepared = &approved["prepared_transaction"];
    assert_eq!(prepared["to"], format!("{:#x}", usdt(&app)));
    assert_eq!(prepared["safe_transaction_builder"]["transactions"][0]["data"], prepared["data"]);
    let amount = U256::from(2 * USDT);

    let (status, body) = sent_hash(&app, id, &format!("{:#x}", alloy::primitives::B256::repeat_byte(7))).await;
    assert_eq!(status, 422, "a hash no chain knows: {body}");
    assert!(body["message"].as_str().unwrap().contains("safeTxHash"), "{body}");
    let unrelated = app.pay(Token::UsdtErc20, PrivateKeySigner::random().address(), U256::from(USDT)).await;
    let (status, body) = sent_hash(&app, id, &format!("{unrelated:#x}")).await;
    assert_eq!(status, 422, "an unrelated transaction: {body}");
    let elsewhere = app.pay(Token::UsdtErc20, to, amount).await;
    let (status, body) = sent_hash(&app, id, &format!("{elsewhere:#x}")).await;
    assert_eq!(status, 422, "the right transfer from another sender than the Safe: {body}");

    let hash = format!("{:#x}", safe_sends(&app, &safe, to, amount, false).await);
    let (status, body) = sent_hash(&app, id, &hash).await;
    assert_eq!(status, 200, "{body}");
    let done = wait_refund(&app, id, "refunded").await;
    assert_eq!(done["tx_hash"], hash);
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, amount * U256::from(2), "the Safe's 2 and the payer's 2");

    // The same hash for a second refund: refused, whatever it moved.
    let wrong = funds(&app, "?status=unattributed").await.into_iter().next().expect("the wrong-token fund");
    let second = refund_of(&app, &wrong, None).await["refund"]["refund_id"].as_str().unwrap().to_string();
    assert_eq!(claim(&app, &second, &format!("{to:#x}")).await.0, 200);
    assert_eq!(approve(&app, &second).await.0, 200);
    let (status, body) = sent_hash(&app, &second, &hash).await;
    assert_eq!(status, 409, "a hash pays one refund: {body}");
    app.stop().await;
}

on_both_backends!(without_a_refund_key_an_external_signers_transaction_confirms_the_refund => external_signer);

/// A claim worth at most `auto_approve_usd` needs no operator: it is approved as claimed, sent
/// and confirmed; one worth more waits, claimed.
async fn auto_approval(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "auto_approve_usd = \"1.8\"\n").await;
    let (overpaid, wrong) = two_funds(&app).await;
    let (small, to) = (refund_of(&app, &wrong, None).await, PrivateKeySigner::random().address());
    assert_eq!(small["refund"]["usd"], "1.5");
    let id = small["refund"]["refund_id"].as_str().unwrap();
    let (status, claimed) = claim(&app, id, &format!("{to:#x}")).await;
    assert_eq!(status, 200, "{claimed}");
    assert_ne!(claimed["status"], "claimed", "1.5 USD is under 1.8: approved at once");
    wait_refund(&app, id, "refunded").await;
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(3 * USDT / 2));
    let big = refund_of(&app, &overpaid, None).await;
    assert_eq!(big["refund"]["usd"], "2");
    let id = big["refund"]["refund_id"].as_str().unwrap();
    let (_, claimed) = claim(&app, id, &format!("{:#x}", PrivateKeySigner::random().address())).await;
    assert_eq!(claimed["status"], "claimed", "2 USD is over 1.8: the operator approves");
    app.stop().await;
}

on_both_backends!(a_claim_under_the_auto_approval_amount_is_sent_without_an_operator => auto_approval);

/// Where a reorg and a refund meet: the wrong-token payment behind a refund not sent yet leaves
/// the chain (deeper than the confirmations). The refund is cancelled (failed, saying why, and
/// announced), its fund keeps nothing, nothing of that money is left open, and a claim is refused.
async fn reorg_before_sending(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "").await;
    let (_, wrong) = two_funds(&app).await;
    let refund = refund_of(&app, &wrong, None).await;
    let id = refund["refund"]["refund_id"].as_str().unwrap();
    // The wrong-token payment was the last transaction: three blocks back takes it.
    app.chain
        .deployer
        .anvil_reorg(alloy::rpc::types::anvil::ReorgOptions { depth: 3, tx_block_pairs: vec![] })
        .await
        .unwrap();
    app.mine(1).await;
    let cancelled = wait_refund(&app, id, "failed").await;
    assert!(cancelled["error"].as_str().unwrap().contains("reorg"), "{cancelled}");
    let order_funds: Vec<Value> =
        funds(&app, "").await.into_iter().filter(|f| f["order_id"] == wrong["order_id"]).collect();
    assert!(
        order_funds.iter().all(|f| f["amount_base"] == "0" || f["status"] != "unattributed"),
        "nothing of the money taken is open: {order_funds:?}"
    );
    let open: Vec<&Value> = order_funds.iter().filter(|f| f["status"] == "unattributed").collect();
    assert!(open.is_empty(), "{open:?}");
    let (status, body) = claim(&app, id, &format!("{:#x}", PrivateKeySigner::random().address())).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("cancelled"), "{body}");
    let announced: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE event_type = 'refund.failed'")
        .fetch_one(app.db.store.pool())
        .await
        .unwrap();
    assert_eq!(announced, 1);
    app.stop().await;
}

on_both_backends!(a_refund_whose_money_a_reorg_takes_before_it_is_sent_is_cancelled => reorg_before_sending);

/// A refund already confirmed whose block a reorg deeper than the confirmations takes: the
/// payer no longer has it, so it is `sent` again, the same transaction goes out, and the payer
/// ends with it once.
async fn confirmed_refund_reorged_out(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "").await;
    let (id, to) = overpayment_claimed(&app).await;
    let id = id.as_str();
    assert_eq!(approve(&app, id).await.0, 200);
    let first = wait_refund(&app, id, "refunded").await;
    // The refund's block and everything after it (two confirmations: at most two blocks).
    let head = app.chain.deployer.get_block_number().await.unwrap();
    let depth = head - first["block_number"].as_u64().unwrap() + 1;
    app.chain
        .deployer
        .anvil_reorg(alloy::rpc::types::anvil::ReorgOptions { depth, tx_block_pairs: vec![] })
        .await
        .unwrap();
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::ZERO, "the reorg took the confirmed refund");
    let started = Instant::now();
    while app.chain.balance_of(usdt(&app), to).await.is_zero() {
        assert!(started.elapsed() < Duration::from_secs(20), "the refund was never sent again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = wait_refund(&app, id, "refunded").await;
    assert_eq!((&again["tx_hash"], &again["nonce"]), (&first["tx_hash"], &first["nonce"]), "the same transaction");
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT), "received once");
    app.stop().await;
}

on_both_backends!(a_confirmed_refund_a_deeper_reorg_takes_is_sent_again_once => confirmed_refund_reorged_out);

/// Issue 35, measured: three 60 USD refunds claimed at the same instant under a 150 USD day,
/// each under the 100 USD of auto-approval, through two processes. A trigger holds every
/// approval's transaction open for a moment after its write, so each approval reads the day's
/// sum while the others are still uncommitted: at most two are approved; the third waits,
/// claimed.
#[tokio::test]
async fn three_claims_at_once_never_pass_the_days_limit_postgres() {
    let wallet = PrivateKeySigner::random();
    let limits = "auto_approve_usd = \"100\"\nmax_per_refund_usd = \"100\"\nmax_per_day_usd = \"150\"\n";
    let app = refund_app("postgres", Some(&wallet), limits).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        app.pay(Token::UsdtErc20, address, owed + U256::from(60 * USDT)).await;
        orders.push(order_id);
    }
    app.mine(2).await;
    for order_id in &orders {
        app.wait_order(order_id, 20, |o| o["status"] == "paid").await;
    }
    let started = Instant::now();
    let open = loop {
        let open = funds(&app, "?status=unattributed").await;
        if open.len() == 3 {
            break open;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "three overpaid funds: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut ids = Vec::new();
    for fund in &open {
        let refund = refund_of(&app, fund, None).await;
        let usd: rust_decimal::Decimal = refund["refund"]["usd"].as_str().unwrap().parse().unwrap();
        assert_eq!(usd, rust_decimal::Decimal::from(60), "{refund}");
        ids.push(refund["refund"]["refund_id"].as_str().unwrap().to_string());
    }
    sqlx::raw_sql(
        "CREATE FUNCTION slow_approval() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.status = 'approved' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow_approval AFTER UPDATE ON refunds FOR EACH ROW EXECUTE FUNCTION slow_approval();",
    )
    .execute(app.db.store.pool())
    .await
    .unwrap();
    let second = crate::support::process::ServeProcess::start(&app.config_path, {
        paywatch::devnet::anvil::free_port().unwrap()
    })
    .await;
    let bases = [app.base.clone(), second.base.clone(), app.base.clone()];
    let claims = ids.iter().zip(&bases).map(|(id, base)| {
        let to = format!("{:#x}", PrivateKeySigner::random().address());
        let (http, url) = (app.http.clone(), format!("{base}/refund/{id}"));
        async move { http.post(url).json(&json!({"address": to, "confirm": true})).send().await.unwrap().status() }
    });
    for status in futures_util::future::join_all(claims).await {
        assert_eq!(status, 200, "every claim is taken; the limit only decides the approval");
    }
    let mut statuses = Vec::new();
    for id in &ids {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{id}"), None).await;
        statuses.push(detail["refund"]["status"].as_str().unwrap().to_string());
    }
    let approved = statuses.iter().filter(|s| matches!(s.as_str(), "approved" | "sent" | "refunded")).count();
    assert!(approved <= 2, "three 60 USD refunds approved under a 150 USD day: {statuses:?}");
    assert_eq!(approved, 2, "two fit in the day: {statuses:?}");
    assert!(statuses.iter().any(|s| s == "claimed"), "the third waits for an operator: {statuses:?}");
    second.kill9().await;
    app.stop().await;
}

/// The open unattributed fund of the order `fund` came from.
async fn open_fund_of(app: &TestApp, fund: &Value) -> Value {
    let open = funds(app, "?status=unattributed").await;
    open.into_iter().find(|f| f["order_id"] == fund["order_id"]).unwrap_or_else(|| panic!("no open fund of {fund}"))
}

async fn end(app: &TestApp, refund_id: &str, how: &str, body: Option<Value>) -> (u16, Value) {
    admin(app, reqwest::Method::POST, &format!("/admin/refunds/{refund_id}/{how}"), body).await
}

/// Issue 35, ways out of a refund: the operator cancels an open refund and rejects a claimed
/// one (each fails, its money open again, its link refuses a claim); a refund sent cannot be
/// cancelled; a claim link unused for `claim_ttl_days` by the chain's clock expires (the host's
/// clock never moves) and its fund is open again.
async fn ways_out(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "claim_ttl_days = 2\n").await;
    let (overpaid, wrong) = two_funds(&app).await;
    let id_of = |r: &Value| r["refund"]["refund_id"].as_str().unwrap().to_string();

    let cancelled = id_of(&refund_of(&app, &overpaid, None).await);
    let (status, body) = end(&app, &cancelled, "cancel", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refund"]["status"], "failed");
    assert!(body["refund"]["error"].as_str().unwrap().contains("cancelled by the operator"), "{body}");
    let reopened = open_fund_of(&app, &overpaid).await;
    assert_eq!(reopened["amount_base"], (2 * USDT).to_string(), "the 2 USDT are open again");
    let (status, body) = claim(&app, &cancelled, &format!("{:#x}", PrivateKeySigner::random().address())).await;
    assert_eq!(status, 409, "a cancelled refund's link: {body}");
    assert!(body["message"].as_str().unwrap().contains("cancelled"), "{body}");
    assert_eq!(end(&app, &cancelled, "cancel", None).await.0, 409, "ended once");

    let rejected = id_of(&refund_of(&app, &reopened, None).await);
    assert_eq!(claim(&app, &rejected, &format!("{:#x}", PrivateKeySigner::random().address())).await.0, 200);
    assert_eq!(end(&app, &rejected, "reject", Some(json!({"reason": " "}))).await.0, 422, "a reason is needed");
    let (status, body) = end(&app, &rejected, "reject", Some(json!({"reason": "sanctioned address"}))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refund"]["error"].as_str().unwrap().contains("rejected by the operator: sanctioned address"));
    let reopened = open_fund_of(&app, &overpaid).await;
    assert_eq!(reopened["amount_base"], (2 * USDT).to_string(), "open again after the rejection");

    // Sent: too late to cancel.
    let sent = id_of(&refund_of(&app, &wrong, None).await);
    assert_eq!(claim(&app, &sent, &format!("{:#x}", PrivateKeySigner::random().address())).await.0, 200);
    assert_eq!(approve(&app, &sent).await.0, 200);
    let started = Instant::now();
    loop {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{sent}"), None).await;
        if matches!(detail["refund"]["status"].as_str(), Some("sent" | "refunded")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never sent: {detail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = end(&app, &sent, "cancel", None).await;
    assert_eq!(status, 409, "a sent refund: {body}");
    wait_refund(&app, &sent, "refunded").await;

    // The claim link expires by the chain's clock: three days pass on the chain only.
    let expiring = id_of(&refund_of(&app, &reopened, None).await);
    app.chain.deployer.anvil_increase_time(3 * 86_400).await.unwrap();
    app.mine(1).await;
    let started = Instant::now();
    let detail = loop {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{expiring}"), None).await;
        if detail["refund"]["status"] == "failed" {
            break detail;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the claim link never expired: {detail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(detail["refund"]["error"].as_str().unwrap().contains("expired"), "{detail}");
    assert_eq!(open_fund_of(&app, &overpaid).await["amount_base"], (2 * USDT).to_string());
    let (status, body) = claim(&app, &expiring, &format!("{:#x}", PrivateKeySigner::random().address())).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");
    // A fresh link is claimable at the new chain time.
    let fresh = id_of(&refund_of(&app, &open_fund_of(&app, &overpaid).await, None).await);
    assert_eq!(claim(&app, &fresh, &format!("{:#x}", PrivateKeySigner::random().address())).await.0, 200);
    app.stop().await;
}

on_both_backends!(refunds_are_cancelled_rejected_and_their_claim_links_expire => ways_out);

/// Issue 35: a refund wallet with tokens and no coin for gas. The approved refund waits with
/// the reason on it for the operator (not `sent` with a hash that never reaches the chain, and
/// nothing queued behind it); once the wallet has gas money it is sent and confirmed once.
async fn wallet_without_gas(backend: &'static str) {
    let wallet = PrivateKeySigner::random();
    let app = refund_app(backend, Some(&wallet), "").await;
    app.chain.deployer.anvil_set_balance(wallet.address(), U256::ZERO).await.unwrap();
    let (id, to) = overpayment_claimed(&app).await;
    assert_eq!(approve(&app, &id).await.0, 200);
    let started = Instant::now();
    let waiting = loop {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{id}"), None).await;
        if detail["refund"]["error"].is_string() {
            break detail["refund"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the refund never said why it waits: {detail}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(waiting["status"], "approved", "{waiting}");
    assert!(waiting["tx_hash"].is_null(), "no transaction recorded: {waiting}");
    let why = waiting["error"].as_str().unwrap().to_lowercase();
    assert!(why.contains("holds 0 of the chain's coin for gas"), "the reason names the wallet's gas money: {why}");
    assert_eq!(app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap(), 0, "nothing queued");

    app.chain.deployer.anvil_set_balance(wallet.address(), U256::from(10u64).pow(U256::from(18u64))).await.unwrap();
    let done = wait_refund(&app, &id, "refunded").await;
    assert!(done["error"].is_null(), "the reason is cleared once sent: {done}");
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT));
    assert_eq!(app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap(), 1, "one transaction");
    app.stop().await;
}

on_both_backends!(a_wallet_without_gas_money_says_so_and_sends_once_funded => wallet_without_gas);

/// Issue 35: the refund job tries each refund on its own. With the first chain's RPC down, a
/// refund on the second chain is sent and confirmed; the first chain's waits, approved, and
/// goes once its RPC is back. Each reaches its payer once.
#[tokio::test]
async fn a_chain_down_stops_only_its_own_refunds() {
    use crate::support::rpc_proxy::Mode;
    let wallet = PrivateKeySigner::random();
    let key = format!("[refunds]\nprivate_key = \"0x{}\"\n", alloy::hex::encode(wallet.to_bytes()));
    let options = Options {
        confirmations: 1,
        l2_confirmations: Some(1),
        proxy: Some(Mode::Honest),
        extra_config: key,
        ..Default::default()
    };
    let app = spawn_app(options).await;
    for chain in [&app.chain, app.l2()] {
        chain.deployer.anvil_set_balance(wallet.address(), U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
        paywatch::devnet::fund(&chain.deployer, &chain.deployment, wallet.address(), 1_000).await.unwrap();
    }
    let (_, first, a, owed_a) = app.create_crypto_app("USDT_ERC20", 1).await;
    let (_, second, b, owed_b) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, a, owed_a + U256::from(2 * USDT)).await;
    app.pay_l2(b, owed_b + U256::from(3 * USDT)).await;
    app.mine(1).await;
    for order in [&first, &second] {
        app.wait_order(order, 30, |o| o["status"] == "paid").await;
    }
    let started = Instant::now();
    let open = loop {
        let open = funds(&app, "?status=unattributed").await;
        if open.len() == 2 {
            break open;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "two overpaid funds: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (to_first, to_l2) = (PrivateKeySigner::random().address(), PrivateKeySigner::random().address());
    let mut ids = Vec::new();
    for (chain_id, to) in [(paywatch::devnet::CHAIN_ID, to_first), (paywatch::devnet::L2_CHAIN_ID, to_l2)] {
        let fund = open.iter().find(|f| f["chain_id"] == chain_id).unwrap();
        let id = refund_of(&app, fund, None).await["refund"]["refund_id"].as_str().unwrap().to_string();
        assert_eq!(claim(&app, &id, &format!("{to:#x}")).await.0, 200);
        ids.push(id);
    }
    app.proxy.as_ref().unwrap().set_mode(Mode::Down);
    for id in &ids {
        assert_eq!(approve(&app, id).await.0, 200);
    }
    let l2_usdt = app.l2().token(paywatch::devnet::L2_USDT);
    let started = Instant::now();
    while app.l2().balance_of(l2_usdt, to_l2).await != U256::from(3 * USDT) {
        assert!(started.elapsed() < Duration::from_secs(30), "the second chain's refund never arrived");
        app.l2().deployer.anvil_mine(Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    loop {
        let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{}", ids[1]), None).await;
        if detail["refund"]["status"] == "refunded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the second chain's refund never confirmed: {detail}");
        app.l2().deployer.anvil_mine(Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, detail) = admin(&app, reqwest::Method::GET, &format!("/admin/refunds/{}", ids[0]), None).await;
    assert_eq!(detail["refund"]["status"], "approved", "the first chain's waits while its RPC is down: {detail}");
    assert_eq!(app.chain.balance_of(usdt(&app), to_first).await, U256::ZERO);

    app.proxy.as_ref().unwrap().set_mode(Mode::Honest);
    wait_refund(&app, &ids[0], "refunded").await;
    assert_eq!(app.chain.balance_of(usdt(&app), to_first).await, U256::from(2 * USDT));
    assert_eq!(app.l2().balance_of(l2_usdt, to_l2).await, U256::from(3 * USDT), "once each");
    app.stop().await;
}

/// Issue 35: a refund whose transaction waits (a node took it and never passed it on) is signed
/// again with the same nonce and higher fees after `bump_after_secs`; the new one is mined and
/// the refund confirmed once. The first transaction can never be mined after it (its nonce is
/// spent), and the refund keeps its hash among the replaced.
#[tokio::test]
async fn a_stuck_refund_is_bumped_and_confirmed_once() {
    use crate::support::rpc_proxy::Mode;
    let wallet = PrivateKeySigner::random();
    let config =
        format!("[refunds]\nprivate_key = \"0x{}\"\nbump_after_secs = 1\n", alloy::hex::encode(wallet.to_bytes()));
    let options = Options { confirmations: 2, proxy: Some(Mode::Honest), extra_config: config, ..Default::default() };
    let app = spawn_app(options).await;
    app.chain.deployer.anvil_set_balance(wallet.address(), U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
    paywatch::devnet::fund(&app.chain.deployer, &app.chain.deployment, wallet.address(), 1_000).await.unwrap();
    let (id, to) = overpayment_claimed(&app).await;
    let proxy = app.proxy.as_ref().unwrap();
    proxy.set_mode(Mode::SwallowTransactions { count: 1 });
    assert_eq!(approve(&app, &id).await.0, 200);
    let started = Instant::now();
    let first = loop {
        if let Some(raw) = proxy.swallowed().first() {
            break raw.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the refund was never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = wait_refund(&app, &id, "refunded").await;
    let first_hash = format!("{:#x}", alloy::primitives::keccak256(alloy::hex::decode(&first[2..]).unwrap()));
    assert_ne!(done["tx_hash"], first_hash, "the bumped transaction is the one mined: {done}");
    assert_eq!(done["replaced_hashes"], first_hash, "the stuck one is kept: {done}");
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT));
    assert_eq!(app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap(), 1, "one nonce spent");
    let late = app.chain.deployer.send_raw_transaction(&alloy::hex::decode(&first[2..]).unwrap()).await;
    assert!(late.is_err(), "the stuck transaction can no longer be mined");
    app.mine(2).await;
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT), "received once");
    app.stop().await;
}

/// Issue 35: a destination the token will not credit (USDC-like blacklist: the mock's
/// `blockRecipient`). The wallet holds the float, so the revert is the token's refusal: the
/// approved refund fails with why, nothing is sent, and its money is open again; a refund of it
/// to another address goes through.
#[tokio::test]
async fn a_destination_the_token_refuses_fails_the_refund_and_reopens_its_fund() {
    let wallet = PrivateKeySigner::random();
    let app = refund_app("sqlite", Some(&wallet), "").await;
    let (overpaid, _) = two_funds(&app).await;
    let id = refund_of(&app, &overpaid, None).await["refund"]["refund_id"].as_str().unwrap().to_string();
    let blocked = PrivateKeySigner::random().address();
    let token = paywatch::chain::contracts::MockUSDT::new(usdt(&app), app.payer.clone());
    token.blockRecipient(blocked).mined().await;
    assert_eq!(claim(&app, &id, &format!("{blocked:#x}")).await.0, 200);
    assert_eq!(approve(&app, &id).await.0, 200);
    let failed = wait_refund(&app, &id, "failed").await;
    assert!(failed["error"].as_str().unwrap().contains("the token refuses this transfer"), "{failed}");
    assert!(failed["tx_hash"].is_null(), "nothing was sent: {failed}");
    assert_eq!(app.chain.deployer.get_transaction_count(wallet.address()).await.unwrap(), 0);
    let reopened = open_fund_of(&app, &overpaid).await;
    assert_eq!(reopened["amount_base"], (2 * USDT).to_string(), "the 2 USDT are open again");

    let again = refund_of(&app, &reopened, None).await["refund"]["refund_id"].as_str().unwrap().to_string();
    let to = PrivateKeySigner::random().address();
    assert_eq!(claim(&app, &again, &format!("{to:#x}")).await.0, 200);
    assert_eq!(approve(&app, &again).await.0, 200);
    wait_refund(&app, &again, "refunded").await;
    assert_eq!(app.chain.balance_of(usdt(&app), to).await, U256::from(2 * USDT));
    app.stop().await;
}
