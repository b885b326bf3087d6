//! Gasless payments (issue 36) on anvil: a payer holding USDT0 and no ETH signs EIP-3009
//! authorizations; paywatch's relayer sends them and the watcher credits the Transfers. One
//! transaction per authorization whatever is posted twice, to two processes, or around a
//! SIGKILL; each bad input refused with its field, nothing sent.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};
use paywatch::chain::contracts::{MockUSDT0, TransferWithAuthorization};
use paywatch::devnet::anvil::accounts;
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::chain::Mined;
use crate::support::process::ServeProcess;

async fn gasless_app(backend: &'static str) -> TestApp {
    spawn_app(Options { backend, l2_confirmations: Some(1), gasless: true, ..Default::default() }).await
}

fn usdt0(app: &TestApp) -> Address {
    app.l2().deployment.tokens[&paywatch::devnet::L2_USDT0]
}

fn relayer() -> Address {
    accounts::RELAYER_KEY.parse::<PrivateKeySigner>().unwrap().address()
}

/// A payer with `units` of USDT0 and no coin for gas.
async fn payer_with(app: &TestApp, units: u64) -> PrivateKeySigner {
    let payer = PrivateKeySigner::random();
    let token = MockUSDT0::new(usdt0(app), app.l2().deployer.clone());
    token.mint(payer.address(), U256::from(units)).mined().await;
    assert_eq!(app.l2().deployer.get_balance(payer.address()).await.unwrap(), U256::ZERO, "the payer has no gas money");
    payer
}

async fn chain_time(app: &TestApp) -> u64 {
    let head = app.l2().deployer.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    head.header.timestamp
}

/// The authorization `payer` signs: `value` to `to`, valid for an hour by the chain's clock.
async fn authorization(app: &TestApp, payer: &PrivateKeySigner, to: Address, value: u64) -> TransferWithAuthorization {
    TransferWithAuthorization {
        from: payer.address(),
        to,
        value: U256::from(value),
        validAfter: U256::ZERO,
        validBefore: U256::from(chain_time(app).await + 3_600),
        nonce: B256::from(rand::random::<[u8; 32]>()),
    }
}

/// The request body: `auth` signed by `signer` under USDT0's domain on the second chain.
fn body(app: &TestApp, auth: &TransferWithAuthorization, signer: &PrivateKeySigner) -> Value {
    let domain = Eip712Domain::new(
        Some("USDT0".into()),
        Some("1".into()),
        Some(U256::from(paywatch::devnet::L2_CHAIN_ID)),
        Some(usdt0(app)),
        None,
    );
    let signature = signer.sign_hash_sync(&auth.eip712_signing_hash(&domain)).unwrap();
    json!({
        "chain_id": paywatch::devnet::L2_CHAIN_ID,
        "token": format!("{:#x}", usdt0(app)),
        "authorization": {
            "from": format!("{:#x}", auth.from),
            "to": format!("{:#x}", auth.to),
            "value": auth.value.to_string(),
            "validAfter": auth.validAfter.to_string(),
            "validBefore": auth.validBefore.to_string(),
            "nonce": format!("{:#x}", auth.nonce),
        },
        "signature": format!("0x{}", alloy::hex::encode(signature.as_bytes())),
    })
}

async fn post_to(base: &str, order_id: &str, body: &Value) -> (u16, Value) {
    let r =
        reqwest::Client::new().post(format!("{base}/pay/{order_id}/authorization")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn relayer_nonce(app: &TestApp) -> u64 {
    app.l2().deployer.get_transaction_count(relayer()).await.unwrap()
}

async fn recorded(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM gasless_payments").fetch_one(app.db.store.pool()).await.unwrap()
}

/// Mines the second chain until the order satisfies `done` (its payments need depth).
async fn wait_l2(app: &TestApp, order_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let order = app.order(order_id).await;
        if done(&order) {
            return order;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the order never got there: {order:#}");
        app.l2().deployer.anvil_mine(Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn gasless_settled(order: &Value) -> bool {
    order["gasless"].as_array().is_some_and(|g| g.iter().all(|p| p["status"] != "sent"))
}

/// A payer with USDT0 and no ETH pays half, then the rest, each by a signed authorization; the
/// relayer's transactions are the only ones; the same authorization again is the same payment.
async fn pays_without_gas(backend: &'static str) {
    let app = gasless_app(backend).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let payer = payer_with(&app, owed).await;
    let order = app.order(&order_id).await;
    let option = order["options"].as_array().unwrap().iter().find(|o| o["pay_method"] == "USDT0_L2");
    assert!(
        option.is_some_and(|o| o["amount_base"].as_str() == Some(owed.to_string().as_str())),
        "USDT0 is one of the options: {order:#}"
    );
    let nonce_before = relayer_nonce(&app).await;

    let half = authorization(&app, &payer, address, owed / 2).await;
    let first = body(&app, &half, &payer);
    let (status, sent) = post_to(&app.base, &order_id, &first).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "sent");
    let (status, again) = post_to(&app.base, &order_id, &first).await;
    assert_eq!((status, &again["tx_hash"]), (200, &sent["tx_hash"]), "the same authorization is the same payment");
    let mut other = half.clone();
    other.value = U256::from(owed / 4);
    let (status, reused) = post_to(&app.base, &order_id, &body(&app, &other, &payer)).await;
    assert_eq!(status, 409, "another authorization under a used nonce: {reused}");
    assert!(reused["message"].as_str().unwrap().contains("authorization.nonce"), "{reused}");
    let order = wait_l2(&app, &order_id, |o| o["status"] == "partially_paid" && gasless_settled(o)).await;
    assert_eq!(order["gasless"][0]["status"], "confirmed", "{order:#}");

    let rest = authorization(&app, &payer, address, owed - owed / 2).await;
    let (status, second) = post_to(&app.base, &order_id, &body(&app, &rest, &payer)).await;
    assert_eq!(status, 200, "{second}");
    let order = wait_l2(&app, &order_id, |o| o["status"] == "paid" && gasless_settled(o)).await;
    assert_eq!(order["payments"].as_array().unwrap().len(), 2, "two Transfers credited: {order:#}");
    assert_eq!(app.app_status(&app_id).await["status"], "active", "the app starts");

    assert_eq!(relayer_nonce(&app).await, nonce_before + 2, "one relayer transaction per authorization");
    assert_eq!(app.l2().deployer.get_transaction_count(payer.address()).await.unwrap(), 0, "the payer sent nothing");
    for payment in order["gasless"].as_array().unwrap() {
        let hash: B256 = payment["tx_hash"].as_str().unwrap().parse().unwrap();
        let tx = app.l2().deployer.get_transaction_by_hash(hash).await.unwrap().unwrap();
        assert_eq!(alloy::consensus::Transaction::to(&tx), Some(usdt0(&app)));
        assert_eq!(tx.inner.signer(), relayer(), "sent by the relayer");
        assert!(payment["gas_used"].as_i64().unwrap() > 0);
    }
    let (status, late) =
        post_to(&app.base, &order_id, &body(&app, &authorization(&app, &payer, address, 1).await, &payer)).await;
    assert_eq!(status, 409, "a paid order takes nothing more: {late}");
    app.stop().await;
}

on_both_backends!(a_payer_without_gas_pays_by_signed_authorizations => pays_without_gas);

/// Every bad input answers its 4xx naming the field, and nothing is recorded or sent.
#[tokio::test]
async fn each_bad_authorization_is_refused_by_name_and_nothing_is_sent() {
    let app = gasless_app("sqlite").await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let payer = payer_with(&app, owed).await;
    let nonce_before = relayer_nonce(&app).await;
    let order = app.order(&order_id).await;
    let now = chain_time(&app).await;
    let late_end = order["expires_at"].as_i64().unwrap() as u64 + 24 * 3_600;

    // Used elsewhere: someone else submitted this authorization to the token first. It pays
    // the order 1 base unit: once the watcher has confirmed it, every case below is built against
    // what then remains (were it seen mid-way, a case would fail on the amount first).
    let used = authorization(&app, &payer, address, 1).await;
    let sig = {
        let domain = Eip712Domain::new(
            Some("USDT0".into()),
            Some("1".into()),
            Some(U256::from(paywatch::devnet::L2_CHAIN_ID)),
            Some(usdt0(&app)),
            None,
        );
        payer.sign_hash_sync(&used.eip712_signing_hash(&domain)).unwrap()
    };
    MockUSDT0::new(usdt0(&app), app.l2().deployer.clone())
        .transferWithAuthorization_0(
            used.from,
            used.to,
            used.value,
            used.validAfter,
            used.validBefore,
            used.nonce,
            sig.as_bytes().to_vec().into(),
        )
        .mined()
        .await;
    let counted = |o: &Value| o["payments"].as_array().is_some_and(|p| p.len() == 1 && p[0]["state"] == "confirmed");
    app.wait_order(&order_id, 30, counted).await;
    let owed = owed - 1;
    let mut cases: Vec<(&str, Value, u16, &str)> = Vec::new();
    let good = authorization(&app, &payer, address, owed).await;
    let mut wrong_to = good.clone();
    wrong_to.to = PrivateKeySigner::random().address();
    cases.push(("another address", body(&app, &wrong_to, &payer), 422, "authorization.to"));
    let mut too_much = good.clone();
    too_much.value = U256::from(owed + 1);
    cases.push(("more than remains", body(&app, &too_much, &payer), 422, "authorization.value"));
    let mut expired = good.clone();
    expired.validBefore = U256::from(now + 5);
    cases.push(("expired", body(&app, &expired, &payer), 422, "authorization.validBefore"));
    let mut outlives = good.clone();
    outlives.validBefore = U256::from(late_end + 60);
    cases.push(("past the order's late window", body(&app, &outlives, &payer), 422, "authorization.validBefore"));
    cases.push(("signed by another key", body(&app, &good, &PrivateKeySigner::random()), 422, "signature"));
    let poor = payer_with(&app, owed / 2).await;
    cases.push((
        "balance short",
        body(&app, &authorization(&app, &poor, address, owed).await, &poor),
        422,
        "authorization.from",
    ));
    let mut plain_usdt = body(&app, &good, &payer);
    plain_usdt["token"] = json!(format!("{:#x}", app.l2().deployment.tokens[&paywatch::devnet::L2_USDT]));
    cases.push(("a token without authorizations", plain_usdt, 422, "token"));
    let mut broken = body(&app, &good, &payer);
    broken["signature"] = json!("0x1234");
    cases.push(("a signature that is not 65 bytes", broken, 422, "signature"));
    cases.push(("a used nonce", body(&app, &used, &payer), 409, "authorization.nonce"));

    for (what, request, want, field) in cases {
        let (status, answer) = post_to(&app.base, &order_id, &request).await;
        assert_eq!(status, want, "{what}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{what} names {field}: {answer}");
    }
    let (status, answer) = post_to(&app.base, "no-such-order", &body(&app, &good, &payer)).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(recorded(&app).await, 0, "nothing recorded");
    assert_eq!(relayer_nonce(&app).await, nonce_before, "nothing sent");
    app.stop().await;
}

/// The same authorization posted to two processes at once: one transaction. Then a process
/// killed after recording an intent whose broadcast never reached the node: restarted, it sends
/// the same transaction, once.
#[tokio::test]
async fn two_processes_and_a_sigkill_send_one_transaction_per_authorization() {
    let mut app = gasless_app("postgres").await;
    app.stop_server().await;
    let servers = [
        ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap()).await,
        ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap()).await,
    ];
    app.base = servers[0].base.clone();
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let payer = payer_with(&app, owed).await;
    let nonce_before = relayer_nonce(&app).await;

    let half = body(&app, &authorization(&app, &payer, address, owed / 2).await, &payer);
    let (a, b) = tokio::join!(post_to(&servers[0].base, &order_id, &half), post_to(&servers[1].base, &order_id, &half));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(a.1["tx_hash"], b.1["tx_hash"], "one payment for one authorization");
    assert_eq!(recorded(&app).await, 1);

    // The node drops what it is sent from now on; the process dies after recording.
    app.l2().deployer.anvil_set_auto_mine(false).await.unwrap();
    let rest = body(&app, &authorization(&app, &payer, address, owed - owed / 2).await, &payer);
    let (status, sent) = post_to(&servers[0].base, &order_id, &rest).await;
    assert_eq!(status, 200, "{sent}");
    let [first, second] = servers;
    first.kill9().await;
    second.kill9().await;
    let hash: B256 = sent["tx_hash"].as_str().unwrap().parse().unwrap();
    app.l2().deployer.anvil_drop_transaction(hash).await.unwrap();
    assert!(app.l2().deployer.get_transaction_by_hash(hash).await.unwrap().is_none(), "the broadcast is lost");
    app.l2().deployer.anvil_set_auto_mine(true).await.unwrap();

    let server = ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap()).await;
    app.base = server.base.clone();
    let order = wait_l2(&app, &order_id, |o| o["status"] == "paid" && gasless_settled(o)).await;
    let again = order["gasless"].as_array().unwrap().iter().find(|p| p["tx_hash"] == sent["tx_hash"]);
    assert!(again.is_some_and(|p| p["status"] == "confirmed"), "the recorded transaction, sent again: {order:#}");
    assert_eq!(relayer_nonce(&app).await, nonce_before + 2, "one transaction per authorization");
    server.kill9().await;
    app.stop().await;
}

async fn readiness_warnings(app: &TestApp) -> Vec<String> {
    let r = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    let body: Value = r.json().await.unwrap();
    body["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_string()).collect()
}

async fn wait_warnings(app: &TestApp, low: bool) -> Vec<String> {
    let started = Instant::now();
    loop {
        let now = readiness_warnings(app).await;
        if now.iter().any(|w| w.contains("relayer")) == low {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "readyz warnings stayed {now:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A relayer without the chain's coin: /readyz names it (the service stays ready: transfers go
/// on), its balance is a metric, and an authorization is refused with why, nothing recorded;
/// funded again, it relays.
#[tokio::test]
async fn a_relayer_without_gas_money_is_named_and_relays_nothing_until_funded() {
    let app = gasless_app("sqlite").await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let payer = payer_with(&app, owed).await;
    app.l2().deployer.anvil_set_balance(relayer(), U256::ZERO).await.unwrap();
    let warnings = wait_warnings(&app, true).await;
    assert!(warnings.iter().any(|w| w.contains("min_balance")), "{warnings:?}");
    let metrics = reqwest::get(format!("{}/metrics", app.base)).await.unwrap().text().await.unwrap();
    // (Its value is not asserted: the metrics registry is this test process's, shared with
    // other tests' relayers on chains of the same id.)
    let gauge = format!("paywatch_relayer_balance{{chain_id=\"{}\"}}", paywatch::devnet::L2_CHAIN_ID);
    assert!(metrics.contains(&gauge), "the relayer's balance is a metric: {gauge}");

    let pay = body(&app, &authorization(&app, &payer, address, owed).await, &payer);
    let (status, refused) = post_to(&app.base, &order_id, &pay).await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("relayer's balance is too low"), "{refused}");
    assert_eq!(recorded(&app).await, 0);

    app.l2().deployer.anvil_set_balance(relayer(), U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
    wait_warnings(&app, false).await;
    let (status, sent) = post_to(&app.base, &order_id, &pay).await;
    assert_eq!(status, 200, "{sent}");
    app.stop().await;
}

/// The relayer's gas cap is per chain: above it on the second chain, an authorization is refused
/// with why (503, try again later) and nothing is recorded or sent.
#[tokio::test]
async fn above_the_chains_gas_cap_the_relayer_sends_nothing() {
    let app = spawn_app(Options {
        l2_confirmations: Some(1),
        gasless: true,
        config_edits: vec![(
            "display_name = \"Local l2 devnet\"\n",
            "display_name = \"Local l2 devnet\"\nrelayer_max_fee_gwei = \"0.000000001\"\n",
        )],
        ..Default::default()
    })
    .await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let payer = payer_with(&app, owed).await;
    let nonce_before = relayer_nonce(&app).await;
    let (status, refused) =
        post_to(&app.base, &order_id, &body(&app, &authorization(&app, &payer, address, owed).await, &payer)).await;
    assert_eq!(status, 503, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("above the relayer's cap"), "{refused}");
    assert_eq!((recorded(&app).await, relayer_nonce(&app).await), (0, nonce_before), "nothing sent");
    app.stop().await;
}

/// A contract wallet (EIP-1271) pays too: the token asks the wallet whether its owner signed;
/// paywatch leaves that check to the token's simulated call, which refuses another signer.
#[tokio::test]
async fn a_contract_wallet_pays_by_eip1271_and_a_wrong_owner_is_refused() {
    let app = gasless_app("sqlite").await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let owed: u64 = owed.to::<u64>();
    let owner = PrivateKeySigner::random();
    let wallet = *paywatch::chain::contracts::MockWallet1271::deploy(app.l2().deployer.clone(), owner.address())
        .await
        .unwrap()
        .address();
    MockUSDT0::new(usdt0(&app), app.l2().deployer.clone()).mint(wallet, U256::from(owed)).mined().await;
    let mut auth = authorization(&app, &owner, address, owed).await;
    auth.from = wallet;

    let (status, refused) = post_to(&app.base, &order_id, &body(&app, &auth, &PrivateKeySigner::random())).await;
    assert_eq!(status, 422, "another signer than the wallet's owner: {refused}");
    assert!(refused["message"].as_str().unwrap().contains("invalid signature"), "{refused}");
    assert_eq!(recorded(&app).await, 0);

    let (status, sent) = post_to(&app.base, &order_id, &body(&app, &auth, &owner)).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["payer"], format!("{wallet:#x}"));
    wait_l2(&app, &order_id, |o| o["status"] == "paid" && gasless_settled(o)).await;
    app.stop().await;
}
