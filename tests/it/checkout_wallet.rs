//! Issue 28: the checkout page pays with a browser wallet. Headless Chromium gets a small
//! EIP-1193 provider announced through EIP-6963; its requests are answered from here: accounts,
//! chain id, network switches (as a wallet that knows both devnet chains, or none), `eth_call`
//! forwarded to anvil, `eth_sendTransaction` signed with the payer's devnet key and sent
//! raw to the anvil of the network the wallet is on, and `eth_signTypedData_v4` signed by
//! that anvil (the payer is one of its unlocked accounts).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use fantoccini::Locator;
use paywatch::devnet::anvil::accounts;
use paywatch::devnet::{CHAIN_ID, L2_CHAIN_ID};
use paywatch::money::Token;
use serde_json::{Value, json};

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::browser::{Browser, accessible};

/// The provider the page finds: it queues each request for the test to answer.
const INJECT: &str = r#"
const w = window.__wallet = { requests: [], pending: {}, seq: 0 };
const provider = { request: (args) => new Promise((resolve, reject) => {
  const id = ++w.seq; w.pending[id] = { resolve, reject };
  w.requests.push({ id, method: args.method, params: args.params || [] });
}) };
window.__walletAnswer = (id, result, error) => {
  const p = w.pending[id]; delete w.pending[id];
  if (error) { const e = new Error(error.message); e.code = error.code; p.reject(e); } else { p.resolve(result); }
};
const announce = () => window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail: Object.freeze({
  info: { uuid: '6f8c2b1e-1a3b-4c5d-8e9f-0a1b2c3d4e5f', name: 'Test Wallet', rdns: 'dev.paywatch.testwallet',
          icon: 'data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 1 1%22/%3E' },
  provider }) }));
window.addEventListener('eip6963:requestProvider', announce);
announce();
return true;
"#;

/// How the test wallet behaves.
#[derive(Clone)]
struct Behaviour {
    /// The chain the wallet is on.
    on: u64,
    /// The chains it knows (chain id → anvil URL); a switch to another answers 4902.
    knows: Vec<(u64, String)>,
    /// Answer `eth_sendTransaction` with 4001 (the payer declines).
    decline_send: bool,
    /// Hold `eth_sendTransaction` until released (to see the page while it waits).
    hold_send: bool,
    /// Answer `eth_signTypedData_v4` with 4001 (the payer declines to sign).
    decline_sign: bool,
}

struct Wallet {
    behaviour: Arc<Mutex<Behaviour>>,
    /// Every request the page made, in order: (method, params).
    seen: Arc<Mutex<Vec<(String, Value)>>>,
    /// The transactions sent: (chain id, hash).
    sent: Arc<Mutex<Vec<(u64, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Wallet {
    async fn inject(browser: &Browser, behaviour: Behaviour) -> Wallet {
        browser.client.execute(INJECT, vec![]).await.expect("the test wallet is injected");
        let behaviour = Arc::new(Mutex::new(behaviour));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let client = browser.client.clone();
        let (b, s, t) = (behaviour.clone(), seen.clone(), sent.clone());
        let task = tokio::spawn(async move {
            let payer: PrivateKeySigner = accounts::PAYER_KEY.parse().unwrap();
            let mut held: Vec<(u64, Value)> = Vec::new();
            loop {
                let Ok(batch) =
                    client.execute("return window.__wallet ? window.__wallet.requests.splice(0) : []", vec![]).await
                else {
                    return;
                };
                let new: Vec<(u64, Value)> = batch
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|r| (r["id"].as_u64().unwrap(), r))
                    .collect();
                for (_, r) in &new {
                    s.lock().unwrap().push((r["method"].as_str().unwrap().to_string(), r["params"].clone()));
                }
                let behaviour = b.lock().unwrap().clone();
                let requests: Vec<(u64, Value)> =
                    if behaviour.hold_send { new } else { held.drain(..).chain(new).collect() };
                for (id, r) in requests {
                    let method = r["method"].as_str().unwrap().to_string();
                    let on = b.lock().unwrap().on;
                    let url = behaviour.knows.iter().find(|(id, _)| *id == on).map(|(_, u)| u.clone());
                    let answer: Result<Value, (i64, &str)> = match method.as_str() {
                        "eth_requestAccounts" | "eth_accounts" => Ok(json!([format!("{:#x}", payer.address())])),
                        "eth_chainId" => Ok(json!(format!("{on:#x}"))),
                        "wallet_switchEthereumChain" => {
                            let want = u64::from_str_radix(
                                r["params"][0]["chainId"].as_str().unwrap_or("0x0").trim_start_matches("0x"),
                                16,
                            )
                            .unwrap_or(0);
                            if behaviour.knows.iter().any(|(id, _)| *id == want) {
                                b.lock().unwrap().on = want;
                                Ok(Value::Null)
                            } else {
                                Err((4902, "Unrecognized chain ID"))
                            }
                        }
                        "eth_call" => Ok(forward(url.as_deref().unwrap(), "eth_call", &r["params"]).await),
                        "eth_sendTransaction" if behaviour.hold_send => {
                            held.push((id, r.clone()));
                            continue;
                        }
                        "eth_sendTransaction" if behaviour.decline_send => Err((4001, "User rejected the request.")),
                        "eth_sendTransaction" => {
                            let tx = &r["params"][0];
                            let request = TransactionRequest::default()
                                .with_to(tx["to"].as_str().unwrap().parse::<Address>().unwrap())
                                .with_input(tx["data"].as_str().unwrap().parse::<Bytes>().unwrap());
                            let provider =
                                paywatch::chain::rpc::signing_provider(url.as_deref().unwrap(), payer.clone()).unwrap();
                            let hash = *provider.send_transaction(request).await.unwrap().tx_hash();
                            t.lock().unwrap().push((on, format!("{hash:#x}")));
                            Ok(json!(format!("{hash:#x}")))
                        }
                        "eth_signTypedData_v4" if behaviour.decline_sign => Err((4001, "User rejected the request.")),
                        // anvil signs typed data for its unlocked accounts (the payer is one).
                        "eth_signTypedData_v4" => {
                            Ok(forward(url.as_deref().unwrap(), "eth_signTypedData_v4", &r["params"]).await)
                        }
                        _ => Err((4200, "Unsupported method")),
                    };
                    let (result, error) = match answer {
                        Ok(v) => (v, Value::Null),
                        Err((code, message)) => (Value::Null, json!({"code": code, "message": message})),
                    };
                    let _ = client
                        .execute(
                            "window.__walletAnswer(arguments[0], arguments[1], arguments[2])",
                            vec![json!(id), result, error],
                        )
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Wallet { behaviour, seen, sent, task }
    }

    fn methods(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(m, _)| m.clone()).collect()
    }

    fn switches(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m == "wallet_switchEthereumChain")
            .map(|(_, p)| p[0]["chainId"].clone())
            .collect()
    }

    /// Waits for the wallet's next transaction; its (chain, hash).
    async fn wait_sent(&self, count: usize) -> (u64, String) {
        let started = Instant::now();
        loop {
            if let Some(last) = self.sent.lock().unwrap().get(count - 1) {
                return last.clone();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the wallet sent nothing; requests: {:?}",
                self.methods()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Wallet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(url: &str, method: &str, params: &Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer: Value = reqwest::Client::new().post(url).json(&body).send().await.unwrap().json().await.unwrap();
    answer["result"].clone()
}

fn both_chains(app: &TestApp) -> Vec<(u64, String)> {
    vec![(CHAIN_ID, app.chain.anvil.rpc_url()), (L2_CHAIN_ID, app.l2().anvil.rpc_url())]
}

async fn text(browser: &Browser, css: &str) -> String {
    browser.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
}

/// Waits until `css`'s text holds `needle`.
async fn wait_text(browser: &Browser, css: &str, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let now = browser.client.find(Locator::Css(css)).await.ok();
        let now = match now {
            Some(el) => el.text().await.unwrap_or_default(),
            None => String::new(),
        };
        if now.contains(needle) {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{css} says {now:?}, wanted {needle:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click_pay(browser: &Browser) {
    let started = Instant::now();
    loop {
        if let Ok(button) = browser.client.find(Locator::Css("button.pay-with-wallet")).await
            && button.text().await.unwrap_or_default().contains("Test Wallet")
            && button.is_enabled().await.unwrap_or(false)
        {
            button.click().await.unwrap();
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no enabled 'Pay with Test Wallet' button");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Transfer of a mined transaction: (token, to, amount).
async fn transfer_of(chain: &crate::support::chain::TestChain, hash: &str) -> (Address, Address, U256) {
    let receipt = chain.deployer.get_transaction_receipt(hash.parse().unwrap()).await.unwrap().expect("mined");
    assert!(receipt.status(), "the transfer succeeded");
    let log = receipt
        .inner
        .logs()
        .iter()
        .find(|l| l.topics().first() == Some(&paywatch::chain::contracts::IERC20::Transfer::SIGNATURE_HASH))
        .expect("a Transfer");
    let event = paywatch::chain::contracts::IERC20::Transfer::decode_log(&log.inner).unwrap();
    (log.address(), event.to, event.value)
}

/// Picks a network on the page.
async fn choose_network(browser: &Browser, chain_id: u64) {
    let choice = browser.client.find(Locator::Css(&format!("input[name=network][value='{chain_id}']"))).await.unwrap();
    choice.click().await.unwrap();
}

/// Screenshots on a desktop and a phone-sized window (no sideways scrolling on the phone).
async fn shots(browser: &Browser, name: &str) {
    browser.screenshot(name).await;
    browser.client.set_window_size(390, 844).await.unwrap();
    let fits = browser
        .client
        .execute("return document.documentElement.scrollWidth <= window.innerWidth", vec![])
        .await
        .unwrap();
    assert_eq!(fits, Value::Bool(true), "{name}: no sideways scrolling on a phone");
    browser.screenshot(&format!("{name}-phone")).await;
    browser.client.set_window_size(1280, 900).await.unwrap();
}

async fn open(app: &TestApp, browser: &Browser, order_id: &str) {
    browser.client.goto(&format!("{}/pay/{order_id}", app.base)).await.unwrap();
    wait_text(browser, "#status", "Waiting for payment").await;
}

#[tokio::test]
async fn a_browser_wallet_pays_what_remains_on_the_chosen_network() {
    let app = spawn_app(Options { confirmations: 1, l2_confirmations: Some(1), ..Default::default() }).await;
    let browser = Browser::start(1280, 900).await;

    // The first chain, the wallet on the second: it is asked to switch, then sends exactly the
    // amount to the deposit address; the page shows the hash at once, then turns paid.
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    open(&app, &browser, &order_id).await;
    shots(&browser, "checkout-wallet-before").await;
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: L2_CHAIN_ID,
            knows: both_chains(&app),
            decline_send: false,
            hold_send: true,
            decline_sign: false,
        },
    )
    .await;
    click_pay(&browser).await;
    wait_text(&browser, "#wallet-message", "Waiting for the wallet: confirm sending").await;
    shots(&browser, "checkout-wallet-waiting").await;
    accessible(&browser, "the checkout page while the wallet asks").await;
    wallet.behaviour.lock().unwrap().hold_send = false;
    let (chain, hash) = wallet.wait_sent(1).await;
    assert_eq!(chain, CHAIN_ID, "sent on the order's network");
    assert_eq!(wallet.switches(), vec![json!(format!("{CHAIN_ID:#x}"))], "asked to switch to the order's network");
    assert_eq!(transfer_of(&app.chain, &hash).await, (app.chain.token(Token::UsdtErc20), address, owed));
    assert_eq!(wait_text(&browser, "#wallet-tx-hash", "0x").await, hash, "the transaction's hash, at once");
    app.wait_order(&order_id, 30, |o| o["status"] == "paid").await;
    wait_text(&browser, "#status", "Paid").await;
    shots(&browser, "checkout-wallet-paid").await;
    accessible(&browser, "the checkout page paid by a wallet").await;

    // The second chain, chosen on the page.
    drop(wallet);
    let (_, l2_order, l2_address, l2_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    open(&app, &browser, &l2_order).await;
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: CHAIN_ID,
            knows: both_chains(&app),
            decline_send: false,
            hold_send: false,
            decline_sign: false,
        },
    )
    .await;
    choose_network(&browser, L2_CHAIN_ID).await;
    click_pay(&browser).await;
    let (chain, hash) = wallet.wait_sent(1).await;
    assert_eq!(chain, L2_CHAIN_ID);
    assert_eq!(wallet.switches(), vec![json!(format!("{L2_CHAIN_ID:#x}"))]);
    assert_eq!(transfer_of(app.l2(), &hash).await, (app.l2().token(paywatch::devnet::L2_USDT), l2_address, l2_owed));
    app.wait_order(&l2_order, 30, |o| o["status"] == "paid").await;
    wait_text(&browser, "#status", "Paid").await;

    // After a partial payment: what remains, and no switch when the wallet is there already.
    let (_, partial, partial_address, partial_owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let part = partial_owed * U256::from(4u8) / U256::from(10u8);
    app.pay(Token::UsdtErc20, partial_address, part).await;
    app.wait_order(&partial, 30, |o| o["status"] == "partially_paid").await;
    drop(wallet);
    browser.client.goto(&format!("{}/pay/{partial}", app.base)).await.unwrap();
    wait_text(&browser, "#status", "Partially paid").await;
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: CHAIN_ID,
            knows: both_chains(&app),
            decline_send: false,
            hold_send: false,
            decline_sign: false,
        },
    )
    .await;
    click_pay(&browser).await;
    let (_, hash) = wallet.wait_sent(1).await;
    assert!(wallet.switches().is_empty(), "already on the network: {:?}", wallet.methods());
    assert_eq!(transfer_of(&app.chain, &hash).await.2, partial_owed - part, "exactly what remains");
    let paid = app.wait_order(&partial, 30, |o| o["status"] == "paid").await;
    assert_eq!(paid["overpaid"], "0", "{paid:#}");

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_declined_request_or_an_unknown_network_sends_nothing_and_says_so() {
    let app = spawn_app(Options { confirmations: 1, ..Default::default() }).await;
    let (_, order_id, _, _) = app.create_crypto_app("USDT_ERC20", 1).await;
    let browser = Browser::start(390, 844).await;
    open(&app, &browser, &order_id).await;
    let first_only = vec![(CHAIN_ID, app.chain.anvil.rpc_url())];

    // The payer declines in the wallet.
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: CHAIN_ID,
            knows: first_only.clone(),
            decline_send: true,
            hold_send: false,
            decline_sign: false,
        },
    )
    .await;
    click_pay(&browser).await;
    wait_text(&browser, "#wallet-message", "You declined in your wallet. Nothing was sent.").await;
    assert!(wallet.methods().contains(&"eth_sendTransaction".to_string()), "{:?}", wallet.methods());
    assert!(wallet.sent.lock().unwrap().is_empty());
    browser.screenshot("checkout-wallet-declined-phone").await;
    accessible(&browser, "the checkout page after a declined request").await;
    drop(wallet);

    // A wallet on a network it alone knows, that does not know the order's (no wallet_rpc is
    // configured, so the page cannot offer to add it): the page says so and asks for nothing more.
    browser.client.refresh().await.unwrap();
    wait_text(&browser, "#status", "Waiting for payment").await;
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: 999,
            knows: vec![(999, String::new())],
            decline_send: false,
            hold_send: false,
            decline_sign: false,
        },
    )
    .await;
    click_pay(&browser).await;
    wait_text(&browser, "#wallet-message", "Your wallet does not know").await;
    assert!(!wallet.methods().contains(&"eth_sendTransaction".to_string()), "{:?}", wallet.methods());
    assert!(wallet.methods().contains(&"wallet_switchEthereumChain".to_string()));
    // The page stays usable: the button is there again.
    assert!(browser.client.find(Locator::Css("button.pay-with-wallet")).await.unwrap().is_enabled().await.unwrap());

    let order = app.order(&order_id).await;
    assert_eq!(
        (order["status"].as_str(), order["payments"].as_array().map(Vec::len)),
        (Some("awaiting_payment"), Some(0))
    );
    browser.close().await;
    app.stop().await;
}

/// A chain's `payment_link` template and display name: the option, the page's link and QR code.
#[tokio::test]
async fn a_chains_payment_link_template_and_name_are_what_payers_see() {
    let app = spawn_app(Options {
        confirmations: 1,
        l2_confirmations: Some(1),
        config_edits: vec![(
            "display_name = \"Local l2 devnet\"\n",
            "display_name = \"Arbitrum One\"\n\
             payment_link = \"safepal://send?to={address}&contract={token}&chain={chain_id}&amount={amount}\"\n",
        )],
        ..Default::default()
    })
    .await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    let order = app.order(&order_id).await;
    let l2 = order["options"].as_array().unwrap().iter().find(|o| o["chain_id"] == L2_CHAIN_ID).unwrap().clone();
    let token = app.l2().token(paywatch::devnet::L2_USDT);
    let amount = paywatch::money::format_base_units(owed, 6);
    let expected = format!("safepal://send?to={address}&contract={token}&chain={L2_CHAIN_ID}&amount={amount}");
    assert_eq!(l2["link"], expected.as_str());
    assert_eq!(l2["network"], "Arbitrum One");
    assert_eq!(l2["amount_base"], owed.to_string().as_str());
    let first = order["options"].as_array().unwrap().iter().find(|o| o["chain_id"] == CHAIN_ID).unwrap().clone();
    assert_eq!(first["link"], first["payment_uri"], "the first chain keeps EIP-681");

    let browser = Browser::start(1280, 900).await;
    open(&app, &browser, &order_id).await;
    choose_network(&browser, L2_CHAIN_ID).await;
    let href = browser.client.find(Locator::Css("#wallet-link")).await.unwrap().attr("href").await.unwrap();
    assert_eq!(href.as_deref(), Some(expected.as_str()));
    assert_eq!(text(&browser, "#network").await, "Arbitrum One");
    assert_eq!(text(&browser, "#amount").await, amount, "token units, never base units");
    assert_eq!(text(&browser, "#unit").await, "USDT");
    let label = text(&browser, "#networks").await;
    assert!(label.contains("Arbitrum One") && !label.contains("31338"), "networks by name: {label}");
    browser.close().await;
    app.stop().await;
}

async fn click(browser: &Browser, css: &str, label: &str) {
    let started = Instant::now();
    loop {
        if let Ok(button) = browser.client.find(Locator::Css(css)).await
            && button.text().await.unwrap_or_default().contains(label)
            && button.is_displayed().await.unwrap_or(false)
            && button.is_enabled().await.unwrap_or(false)
        {
            button.click().await.unwrap();
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no enabled {label:?} button");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Issue 36: "Pay without gas" where the chosen network's token takes authorizations. The
/// wallet signs typed data (no transaction of its own); the page posts the signature and shows
/// the relayer's hash, then the order turns paid. A payer who declines to sign is told in words
/// and nothing is sent.
#[tokio::test]
async fn pay_without_gas_signs_and_the_relayer_pays_or_a_declined_signature_sends_nothing() {
    let app =
        spawn_app(Options { confirmations: 1, l2_confirmations: Some(1), gasless: true, ..Default::default() }).await;
    let browser = Browser::start(1280, 900).await;
    let sent_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM gasless_payments")
            .fetch_one(app.db.store.pool())
            .await
            .unwrap()
    };

    // Declined: said in words, nothing signed or sent.
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    open(&app, &browser, &order_id).await;
    let wallet = Wallet::inject(
        &browser,
        Behaviour {
            on: L2_CHAIN_ID,
            knows: both_chains(&app),
            decline_send: false,
            hold_send: false,
            decline_sign: true,
        },
    )
    .await;
    choose_network(&browser, L2_CHAIN_ID).await;
    click(&browser, "button.pay-without-gas", "Pay without gas with Test Wallet").await;
    wait_text(&browser, "#wallet-message", "You declined in your wallet. Nothing was sent.").await;
    assert!(wallet.methods().contains(&"eth_signTypedData_v4".to_string()), "{:?}", wallet.methods());
    assert!(!wallet.methods().contains(&"eth_sendTransaction".to_string()), "{:?}", wallet.methods());
    assert_eq!(sent_rows().await, 0, "nothing relayed");

    // Signed: the relayer's transaction pays the order; the wallet sent none.
    wallet.behaviour.lock().unwrap().decline_sign = false;
    click(&browser, "button.pay-without-gas", "Pay without gas with Test Wallet").await;
    let hash = wait_text(&browser, "#wallet-tx-hash", "0x").await;
    wait_text(&browser, "#wallet-message", "Sent without gas").await;
    let usdt0 = app.l2().deployment.tokens[&paywatch::devnet::L2_USDT0];
    assert_eq!(transfer_of(app.l2(), &hash).await, (usdt0, address, owed), "what remains, to the order's address");
    let tx = app.l2().deployer.get_transaction_by_hash(hash.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        tx.inner.signer(),
        accounts::RELAYER_KEY.parse::<PrivateKeySigner>().unwrap().address(),
        "sent by the relayer"
    );
    assert!(
        !wallet.methods().contains(&"eth_sendTransaction".to_string()),
        "the wallet sent nothing: {:?}",
        wallet.methods()
    );
    let started = Instant::now();
    while app.order(&order_id).await["status"] != "paid" {
        assert!(started.elapsed() < Duration::from_secs(60), "the order never turned paid");
        alloy::providers::ext::AnvilApi::anvil_mine(&app.l2().deployer, Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_text(&browser, "#status", "Paid").await;
    accessible(&browser, "the checkout page paid without gas").await;
    drop(wallet);
    app.stop().await;
}
