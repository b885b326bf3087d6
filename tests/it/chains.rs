//! Several EVM chains in one process (issue 16), on two anvils: the first chain (31337) and an
//! L2-like one (31338, `[chains.l2]` with `USDT_L2`, asset USDT). One deposit address on both;
//! payments of the order's asset add up across chains; each chain's reorg, outage and lease is
//! its own; sweeps per chain.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::ext::AnvilApi;
use alloy::rpc::types::anvil::ReorgOptions;
use paywatch::chain::contracts::DepositFactory;
use paywatch::chain::deploy;
use paywatch::chain::deposit_address::{DepositAddresses, salt_for_order};
use paywatch::devnet::anvil::{accounts, free_port};
use paywatch::devnet::{L2_CHAIN_ID, L2_USDT};
use paywatch::money::Token;
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::process::ServeProcess;

const FIRST: u64 = paywatch::devnet::CHAIN_ID;

fn two_chains(backend: &'static str, confirmations: u64, l2_confirmations: u64) -> Options {
    Options { backend, confirmations, l2_confirmations: Some(l2_confirmations), ..Default::default() }
}

/// The order's pay options, by chain id.
fn option_on(order: &Value, chain_id: u64) -> Value {
    order["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["chain_id"] == chain_id))
        .cloned()
        .unwrap_or_else(|| panic!("no pay option on chain {chain_id}: {order:#}"))
}

async fn wait_healthz(app: &TestApp, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let h: Value = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap().json().await.unwrap();
        if done(&h) {
            return h;
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "healthz never got there: {h:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn chain_health(h: &Value, chain_id: u64) -> Value {
    h["chains"].as_array().and_then(|c| c.iter().find(|c| c["chain_id"] == chain_id)).cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_factory_and_a_deposit_address_are_the_same_on_both_chains_and_off_chain() {
    let app = spawn_app(two_chains("sqlite", 1, 1)).await;
    let l2 = app.l2();
    let factory = deploy::factory_address(app.chain.treasury);
    assert_eq!(app.chain.deployment.factory, factory, "first chain: the computed address");
    assert_eq!(l2.deployment.factory, factory, "second chain: the same address");
    let (_, order_id, address, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let salt = salt_for_order(&order_id);
    assert_eq!(address, DepositAddresses::new(factory).address_of(salt), "the off-chain computation");
    for chain in [&app.chain, l2] {
        let on_chain = DepositFactory::new(factory, chain.deployer.clone()).addressOf(salt).call().await.unwrap();
        assert_eq!(on_chain, address, "the factory on chain {} agrees", chain.anvil.chain_id());
    }
    // Deploying again finds it there (nothing new, the same address).
    assert_eq!(deploy::deploy_factory(&l2.deployer, app.chain.treasury).await.unwrap(), factory);
    app.stop().await;
}

async fn paid_on_the_second_chain_and_split_across_both(backend: &'static str) {
    let app = spawn_app(two_chains(backend, 1, 1)).await;
    let (app_id, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let order = app.order(&order_id).await;
    let first = option_on(&order, FIRST);
    let second = option_on(&order, L2_CHAIN_ID);
    assert_eq!(first["pay_method"], "USDT_ERC20");
    assert_eq!(second["pay_method"], L2_USDT.as_str());
    assert_eq!(second["value"], first["value"], "the same USDT amount on either chain");
    let l2_token = app.l2().token(L2_USDT);
    assert_eq!(
        second["payment_uri"],
        format!("ethereum:{l2_token}@{L2_CHAIN_ID}/transfer?address={address}&uint256={owed}"),
        "EIP-681 with the second chain's id and token"
    );

    app.pay_l2(address, owed).await;
    let paid = app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    let payments = paid["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "{paid:#}");
    assert_eq!(payments[0]["chain_id"], L2_CHAIN_ID, "the payment shows its chain");
    assert_eq!(payments[0]["counted"], true);
    assert_eq!(app.app_status(&app_id).await["status"], "active");

    // 40 % on the first chain, 60 % on the second: paid once.
    let (_, split_id, split_at, split_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let part = split_owed * U256::from(4u8) / U256::from(10u8);
    app.pay(Token::UsdtErc20, split_at, part).await;
    let partial = app.wait_order(&split_id, 30, |o| o["status"] == "partially_paid").await;
    let rest = split_owed - part;
    assert_eq!(
        option_on(&partial, L2_CHAIN_ID)["payment_uri"].as_str().unwrap().rsplit("uint256=").next(),
        Some(rest.to_string().as_str()),
        "the options ask for what remains"
    );
    app.pay_l2(split_at, rest).await;
    let split = app.wait_order(&split_id, 30, |o| o["status"] == "paid").await;
    let mut chains: Vec<u64> =
        split["payments"].as_array().unwrap().iter().map(|p| p["chain_id"].as_u64().unwrap()).collect();
    chains.sort_unstable();
    assert_eq!(chains, vec![FIRST, L2_CHAIN_ID], "one payment on each chain: {split:#}");
    assert_eq!(split["overpaid"], "0");
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &split_id).await, 1, "paid once");
    app.stop().await;
}

on_both_backends!(usdt_paid_on_the_second_chain_or_split_across_both_is_credited_once => paid_on_the_second_chain_and_split_across_both);

async fn a_reorg_of_the_second_chain_rewinds_only_it(backend: &'static str) {
    // The second chain waits for 5 confirmations, so its payment stays seen while reorged.
    let app = spawn_app(two_chains(backend, 1, 5)).await;
    let (_, first_id, first_at, first_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, first_at, first_owed).await;
    let first_paid = app.wait_order(&first_id, 30, |o| o["status"] == "paid").await;

    let (_, second_id, second_at, second_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay_l2(second_at, second_owed).await;
    app.wait_order(&second_id, 30, |o| o["payments"].as_array().is_some_and(|p| p.len() == 1)).await;
    let store = app.db.store.clone();
    let cursor = |id| {
        let store = store.clone();
        async move { paywatch::store::cursor::get(store.pool(), id).await.unwrap().unwrap() }
    };
    let first_cursor = cursor(FIRST).await;

    app.l2().deployer.anvil_reorg(ReorgOptions { depth: 2, tx_block_pairs: vec![] }).await.unwrap();
    app.l2().deployer.anvil_mine(Some(1), None).await.unwrap();
    let reorged = app.wait_order(&second_id, 30, |o| o["payments"].as_array().is_some_and(|p| p.is_empty())).await;
    assert_eq!(reorged["status"], "awaiting_payment", "{reorged:#}");

    // The first chain did not rewind: its cursor kept its place and its order is as it was.
    let after = cursor(FIRST).await;
    assert!(after.block_number >= first_cursor.block_number, "the first chain's cursor moved back");
    let first_now = app.order(&first_id).await;
    assert_eq!(first_now["status"], "paid");
    assert_eq!(first_now["payments"][0]["tx_hash"], first_paid["payments"][0]["tx_hash"]);
    assert_eq!(crate::support::db::deposits_for_order(&app.db.store, &first_id).await, 1);
    app.stop().await;
}

on_both_backends!(a_reorg_of_the_second_chain_rewinds_only_it);

async fn the_first_chain_down_does_not_stop_the_second(backend: &'static str) {
    let mut app = spawn_app(Options { anvil_state: true, ..two_chains(backend, 1, 2) }).await;
    let (_, before_id, before_at, before_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, before_at, before_owed).await;
    app.wait_order(&before_id, 30, |o| o["status"] == "paid").await;

    app.chain.anvil.pause().await.unwrap();
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay_l2(address, owed).await;
    let l2_head = alloy::providers::Provider::get_block_number(&app.l2().deployer).await.unwrap();
    app.l2().deployer.anvil_mine(Some(1), None).await.unwrap(); // 2 confirmations
    let paid = app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    assert_eq!(paid["payments"][0]["chain_id"], L2_CHAIN_ID);
    assert!(paid["payments"][0]["block_number"].as_u64().unwrap() <= l2_head);
    let h = wait_healthz(&app, 30, |h| chain_health(h, FIRST)["problem"].is_string()).await;
    assert!(chain_health(&h, L2_CHAIN_ID)["problem"].is_null(), "only the first chain has a problem: {h:#}");

    app.chain.anvil.resume().await.unwrap();
    let (_, after_id, after_at, after_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, after_at, after_owed).await;
    app.wait_order(&after_id, 60, |o| o["status"] == "paid").await;
    wait_healthz(&app, 30, |h| chain_health(h, FIRST)["problem"].is_null()).await;
    app.stop().await;
}

on_both_backends!(the_first_chain_down_does_not_stop_the_second_and_resumes_by_itself => the_first_chain_down_does_not_stop_the_second);

/// Per chain id, which of `servers` watches it; fails when two watch one chain at once.
async fn watchers(servers: &[&ServeProcess]) -> std::collections::BTreeMap<u64, Vec<usize>> {
    let mut by_chain: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, s) in servers.iter().enumerate() {
        let Some(h) = s.health().await else { continue };
        for c in h["chains"].as_array().cloned().unwrap_or_default() {
            if c["watcher"] == "active" {
                by_chain.entry(c["chain_id"].as_u64().unwrap()).or_default().push(i);
            }
        }
    }
    for (chain, who) in &by_chain {
        assert!(who.len() <= 1, "chain {chain} watched by {who:?} at once");
    }
    by_chain
}

/// Waits until every chain is watched by exactly one of `servers`; returns who watches which.
async fn each_chain_watched_once(servers: &[&ServeProcess]) -> std::collections::BTreeMap<u64, usize> {
    let started = Instant::now();
    loop {
        let w = watchers(servers).await;
        if [FIRST, L2_CHAIN_ID].iter().all(|c| w.get(c).is_some_and(|who| who.len() == 1)) {
            return w.into_iter().map(|(c, who)| (c, who[0])).collect();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not every chain is watched: {w:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_serve_processes_on_postgres_watch_each_chain_once_and_take_over_a_dead_ones_chains() {
    let mut app = spawn_app(two_chains("postgres", 1, 1)).await;
    app.stop_server().await;
    let a = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    let b = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    let held = each_chain_watched_once(&[&a, &b]).await;
    for _ in 0..5 {
        assert_eq!(each_chain_watched_once(&[&a, &b]).await, held, "the leases stay put");
    }
    app.base = a.base.clone();
    let (_, paid_id, paid_at, paid_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay_l2(paid_at, paid_owed).await;
    app.wait_order(&paid_id, 30, |o| o["status"] == "paid").await;

    // Kill the one watching the first chain; the survivor ends up watching both.
    let (dead, survivor) = if held[&FIRST] == 0 { (a, b) } else { (b, a) };
    dead.kill9().await;
    let now = each_chain_watched_once(&[&survivor]).await;
    assert_eq!(now.values().copied().collect::<Vec<_>>(), vec![0, 0], "the survivor watches every chain");
    app.base = survivor.base.clone();
    let [(first_id, _, _), (second_id, _, _)] = paid_on_each_chain(&app).await;
    for id in [&paid_id, &first_id, &second_id] {
        assert_eq!(crate::support::db::deposits_for_order(&app.db.store, id).await, 1, "{id} paid once");
    }
    survivor.kill9().await;
    app.stop().await;
}

/// A USDT order paid on the first chain and another on the second, both credited:
/// (order id, deposit address, base units) of each.
async fn paid_on_each_chain(app: &TestApp) -> [(String, alloy::primitives::Address, U256); 2] {
    let (_, first_id, first_at, first_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, first_at, first_owed).await;
    let (_, second_id, second_at, second_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay_l2(second_at, second_owed).await;
    app.wait_order(&first_id, 30, |o| o["status"] == "paid").await;
    app.wait_order(&second_id, 30, |o| o["status"] == "paid").await;
    [(first_id, first_at, first_owed), (second_id, second_at, second_owed)]
}

async fn sweeps_move_each_chains_deposits_on_that_chain(backend: &'static str) {
    let signer = format!("[signer]\nprivate_key = \"{}\"\n", accounts::DEPLOYER_KEY);
    let app = spawn_app(Options { extra_config: signer, ..two_chains(backend, 1, 1) }).await;
    let [(_, first_at, first_owed), (_, second_at, second_owed)] = paid_on_each_chain(&app).await;

    let usdt1 = app.chain.token(Token::UsdtErc20);
    let usdt2 = app.l2().token(L2_USDT);
    let treasury = app.chain.treasury;
    let before = (app.chain.balance_of(usdt1, treasury).await, app.l2().balance_of(usdt2, treasury).await);
    let out = crate::support::paywatch_beside_server(&["sweep", "--config", app.config_path.to_str().unwrap()]).await;
    assert!(out.status.success(), "sweep failed: {}", String::from_utf8_lossy(&out.stderr));
    let runs: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs["chains"]["main"]["swept"], 1, "{runs:#}");
    assert_eq!(runs["chains"]["l2"]["swept"], 1, "{runs:#}");
    assert_eq!(runs["chains"]["l2"]["chain_id"], L2_CHAIN_ID);
    assert_eq!(app.chain.balance_of(usdt1, treasury).await, before.0 + first_owed, "first chain's treasury");
    assert_eq!(app.l2().balance_of(usdt2, treasury).await, before.1 + second_owed, "second chain's treasury");
    for (chain, token, at) in [(&app.chain, usdt1, first_at), (app.l2(), usdt2, second_at)] {
        assert_eq!(chain.balance_of(token, at).await, U256::ZERO, "emptied on chain {}", chain.anvil.chain_id());
    }
    // The other chain's address was never touched by the wrong chain's sweep.
    assert_eq!(app.l2().balance_of(usdt2, first_at).await, U256::ZERO);
    let again: Value = serde_json::from_slice(
        &crate::support::paywatch_beside_server(&[
            "sweep",
            "--config",
            app.config_path.to_str().unwrap(),
            "--chain",
            "l2",
        ])
        .await
        .stdout,
    )
    .unwrap();
    assert_eq!(again["chains"]["l2"]["swept"], 0, "nothing twice: {again:#}");
    assert!(again["chains"].get("main").is_none(), "--chain selects one chain: {again:#}");
    app.stop().await;
}

on_both_backends!(sweeps_move_each_chains_confirmed_deposits_to_the_treasury_on_that_chain => sweeps_move_each_chains_deposits_on_that_chain);

/// Issue 26, item 1: the first chain's ANKR and the second's USDT_L2 share a contract address.
/// A wrong-token payment on the first chain and an overpayment on the second leave two open
/// stray funds of one order at one token address, on two chains; neither chain's watcher may
/// stop (before the index carried the chain id, the second row broke every later step).
async fn stray_funds_of_one_address_on_two_chains(backend: &'static str) {
    let app = spawn_app(two_chains(backend, 1, 1)).await;
    assert_eq!(
        app.chain.token(Token::AnkrErc20),
        app.l2().token(L2_USDT),
        "the devnet's two tokens share an address (what this test is about)"
    );
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::AnkrErc20, address, U256::from(1u64)).await;
    app.pay_l2(address, owed + U256::from(5u64)).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    // Both chains go on crediting.
    for on_l2 in [false, true] {
        let (_, next, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
        if on_l2 {
            app.pay_l2(address, owed).await;
        } else {
            app.pay(Token::UsdtErc20, address, owed).await;
        }
        app.wait_order(&next, 30, |o| o["status"] == "paid").await;
    }
    let r = app
        .http
        .get(format!("{}/admin/funds?status=unattributed", app.base))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let mut chains: Vec<u64> = body["funds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["order_id"] == order_id.as_str())
        .map(|f| f["chain_id"].as_u64().unwrap())
        .collect();
    chains.sort_unstable();
    assert_eq!(chains, [FIRST, L2_CHAIN_ID], "one open fund on each chain: {body:#}");
    app.stop().await;
}

on_both_backends!(stray_funds_of_one_address_on_two_chains);

/// Issue 26, item 11: an order's sums add transfers of two tokens on two chains, which together
/// can pass what a uint256 holds (each token's supply cannot). 2^255 USDT on each chain to one
/// order: with wrapping sums the order fell back to nothing received (un-paid by its second
/// payment); saturating, it stays paid, overpaid.
#[tokio::test]
async fn sums_across_two_chains_never_wrap_around() {
    let app = spawn_app(two_chains("sqlite", 1, 1)).await;
    let payer = paywatch::devnet::anvil::accounts::PAYER_KEY
        .parse::<alloy::signers::local::PrivateKeySigner>()
        .unwrap()
        .address();
    let half = U256::from(1u64) << 255;
    deploy::mint_mock(&app.chain.deployer, Token::UsdtErc20, app.chain.token(Token::UsdtErc20), payer, half)
        .await
        .unwrap();
    deploy::mint_mock(&app.l2().deployer, L2_USDT, app.l2().token(L2_USDT), payer, half).await.unwrap();
    let (_, order_id, address, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    app.pay(Token::UsdtErc20, address, half).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    app.pay_l2(address, half).await;
    // Both confirmed (one confirmation each), then the order as the watcher left it.
    let order = app
        .wait_order(&order_id, 30, |o| {
            let payments = o["payments"].as_array().unwrap();
            payments.len() == 2 && payments.iter().all(|p| p["state"] == "confirmed")
        })
        .await;
    assert_eq!(order["status"], "paid", "{order:#}");
    assert_ne!(order["confirmed"], "0", "the sum did not wrap to nothing: {order:#}");
    app.stop().await;
}

/// Issue 26, item 6: the first chain's ANKR (18 decimals) and the second chain's USDT_L2 (6)
/// share an address. A stray ANKR fund applied to a USDT_L2 order must be refused: it would
/// count 10^18 base units of ANKR as 10^12 USDT.
#[tokio::test]
async fn a_fund_is_never_applied_to_an_order_of_another_chains_token_at_the_same_address() {
    let app = spawn_app(two_chains("sqlite", 1, 1)).await;
    assert_eq!(app.chain.token(Token::AnkrErc20), app.l2().token(L2_USDT));
    let (_, stray_from, address, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let one_ankr = U256::from(10u64).pow(U256::from(18u64));
    app.pay(Token::AnkrErc20, address, one_ankr).await;
    let admin = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut r =
            app.http.request(method, format!("{}{path}", app.base)).bearer_auth(crate::support::app::ADMIN_TOKEN);
        if let Some(body) = body {
            r = r.json(&body);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let started = Instant::now();
    let fund = loop {
        let (_, body) = admin(reqwest::Method::GET, "/admin/funds?status=unattributed".into(), None).await;
        if let Some(f) = body["funds"].as_array().unwrap().iter().find(|f| f["order_id"] == stray_from.as_str()) {
            break f.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no stray fund: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (_, target, _, _) = app.create_crypto_app(L2_USDT.as_str(), 1).await;
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("/admin/funds/{}/apply", fund["fund_id"].as_str().unwrap()),
        Some(serde_json::json!({"order_id": target})),
    )
    .await;
    assert_eq!(status, 422, "refused: {body}");
    let order = app.order(&target).await;
    assert_eq!(order["status"], "awaiting_payment", "nothing credited: {order:#}");
    app.stop().await;
}

/// Issue 26, item 2: which transfer completed an order is decided by block time, not by block
/// number (two chains' numbers say nothing of which came first). Half paid on time on the first
/// chain at a high block number, the rest on the second chain at a low block number after the
/// order's expiry by that chain's clock: the order is paid late. (Sorted by block number, the
/// second chain's transfer came "first" and the on-time half "completed" it.)
#[tokio::test]
async fn lateness_across_chains_follows_block_time_not_block_number() {
    let app = spawn_app(two_chains("sqlite", 1, 1)).await;
    app.mine(100).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let half = owed / U256::from(2u64);
    app.pay(Token::UsdtErc20, address, half).await;
    app.wait_order(&order_id, 30, |o| o["status"] == "partially_paid").await;
    app.l2().deployer.anvil_increase_time(90 * 60).await.unwrap();
    app.pay_l2(address, owed - half).await;
    let order = app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    let payments = order["payments"].as_array().unwrap();
    let number_on = |chain: u64| {
        payments.iter().find(|p| p["chain_id"] == chain).map(|p| p["block_number"].as_u64().unwrap()).unwrap()
    };
    assert!(number_on(L2_CHAIN_ID) < number_on(FIRST), "the late payment has the lower block number: {order:#}");
    assert_eq!(order["late"], true, "completed after expiry by the second chain's payment: {order:#}");
    app.stop().await;
}
