//! `spawn_app`: a real paywatch server in this process on a free port, over a fresh database
//! and a fresh anvil with the contracts deployed, plus typed helpers to drive it.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::rpc;
use paywatch::config::Config;
use paywatch::devnet::anvil::accounts;
use paywatch::money::Token;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::chain::TestChain;
use super::db::TestDb;
use super::rpc_proxy::{Mode, RpcProxy};
use super::write_file;

/// The admin token of every test config.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub team_id: String,
    pub api_key: String,
    pub chain: TestChain,
    pub db: TestDb,
    pub payer: DynProvider,
    pub config_path: std::path::PathBuf,
    pub http: reqwest::Client,
    /// The hostile RPC proxy paywatch talks to, when the test asked for one.
    pub proxy: Option<RpcProxy>,
    /// The second chain (`[chains.l2]`, chain id 31338), when the test asked for one.
    pub l2: Option<TestChain>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub backend: &'static str,
    pub confirmations: u64,
    pub extra_config: String,
    pub ws: bool,
    /// The WebSocket URL when `ws` is set (default: anvil's).
    pub ws_url: Option<String>,
    /// anvil keeps its state in a file, so it can be stopped and started again.
    pub anvil_state: bool,
    /// Price ANKR from the mock Chainlink feed (with this max_age_s) instead of a fixed price.
    pub chainlink_max_age: Option<u64>,
    /// Put a hostile JSON-RPC proxy in this mode between paywatch and anvil.
    pub proxy: Option<Mode>,
    pub poll_interval_ms: u64,
    /// (from, to) text replacements in the rendered config, e.g. another late window.
    pub config_edits: Vec<(&'static str, &'static str)>,
    /// Also watch a second anvil as `[chains.l2]` (with `USDT_L2`), at these confirmations.
    pub l2_confirmations: Option<u64>,
    /// The second chain also has USDT0 (`USDT0_L2`, EIP-3009), with a `[relayer]`.
    pub gasless: bool,
    /// The second chain's id (default 31338).
    pub l2_chain_id: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: "sqlite",
            confirmations: 2,
            extra_config: String::new(),
            ws: false,
            ws_url: None,
            anvil_state: false,
            chainlink_max_age: None,
            proxy: None,
            poll_interval_ms: 100,
            config_edits: Vec::new(),
            l2_confirmations: None,
            gasless: false,
            l2_chain_id: None,
        }
    }
}

/// The paywatch.toml the tests use, pointing at `chain` (through `rpc_url`: anvil or a proxy
/// in front of it), a second chain when `l2` is given, and `db_url`; `options.config_edits`
/// replace parts of it.
pub fn config_text(
    chain: &TestChain,
    l2: Option<&TestChain>,
    rpc_url: &str,
    db_url: &str,
    options: &Options,
) -> String {
    let more_chains = l2
        .map(|l2| paywatch::devnet::config_template::MoreChain {
            name: paywatch::devnet::L2_NAME.to_string(),
            chain_id: l2.anvil.chain_id(),
            rpc_http: l2.anvil.rpc_url(),
            confirmations: options.l2_confirmations.unwrap_or(options.confirmations),
            poll_interval_ms: options.poll_interval_ms,
            deployment: &l2.deployment,
        })
        .into_iter()
        .collect();
    let text = paywatch::devnet::config_template::render(&paywatch::devnet::config_template::LocalConfig {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.into(),
        chain_id: chain.anvil.chain_id(),
        rpc_http: rpc_url.to_string(),
        rpc_ws: options.ws.then(|| options.ws_url.clone().unwrap_or_else(|| chain.anvil.ws_url())),
        confirmations: options.confirmations,
        poll_interval_ms: options.poll_interval_ms,
        deployment: &chain.deployment,
        treasury: chain.treasury,
        chainlink_max_age: options.chainlink_max_age,
        admin_token: ADMIN_TOKEN.into(),
        signer_key: None,
        more_chains,
        extra: if options.gasless {
            format!("{}\n[relayer]\nprivate_key = \"{}\"\n", options.extra_config, accounts::RELAYER_KEY)
        } else {
            options.extra_config.clone()
        },
    });
    options.config_edits.iter().fold(text, |text, (from, to)| {
        assert!(text.contains(from), "config edit: {from:?} is not in the test config");
        text.replace(from, to)
    })
}

/// Server logs go to the test's output when PAYWATCH_LOG is set (e.g. PAYWATCH_LOG=debug).
fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("PAYWATCH_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        }
    });
}

pub async fn spawn_app(options: Options) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    let state = options.anvil_state.then(|| dir.path().join("anvil-state.json"));
    let chain = TestChain::start_with(paywatch::devnet::anvil::AnvilOptions { state, ..Default::default() }).await;
    let mut l2 = match options.l2_confirmations {
        Some(_) => Some(
            TestChain::start_l2(
                options.anvil_state.then(|| dir.path().join("anvil-l2-state.json")),
                options.l2_chain_id,
            )
            .await,
        ),
        None => None,
    };
    if options.gasless {
        let l2 = l2.as_mut().expect("gasless payments are on the second chain (l2_confirmations)");
        let usdt0 = paywatch::chain::deploy::deploy_mock_usdt0(&l2.deployer).await.unwrap();
        l2.deployment.tokens.insert(paywatch::devnet::L2_USDT0, usdt0);
    }
    let db = TestDb::by_backend(options.backend).await;
    let proxy = match options.proxy {
        Some(mode) => Some(RpcProxy::start(&chain.anvil.rpc_url(), mode).await),
        None => None,
    };
    let rpc_url = proxy.as_ref().map_or_else(|| chain.anvil.rpc_url(), |p| p.url.clone());
    let text = config_text(&chain, l2.as_ref(), &rpc_url, &db.url, &options);
    let config_path = write_file(dir.path(), "paywatch.toml", &text);
    let config = Config::load(&config_path).expect("test config is valid");
    let (team, key) = paywatch::store::teams::create_with_key(&db.store, "acme").await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(paywatch::startup::run(config, listener, shutdown.clone()));

    let payer_key: PrivateKeySigner = accounts::PAYER_KEY.parse().unwrap();
    let payer = rpc::signing_provider(&chain.anvil.rpc_url(), payer_key.clone()).unwrap();
    for key in [accounts::PAYER_KEY, accounts::OTHER_PAYER_KEY] {
        let holder = key.parse::<PrivateKeySigner>().unwrap().address();
        for token in [Token::AnkrErc20, Token::UsdtErc20] {
            let amount = U256::from(10u64).pow(U256::from(30));
            paywatch::chain::deploy::mint_mock(&chain.deployer, token, chain.token(token), holder, amount)
                .await
                .unwrap();
        }
        if let Some(l2) = &l2 {
            paywatch::devnet::fund(&l2.deployer, &l2.deployment, holder, 1_000_000_000).await.unwrap();
        }
    }
    let app = TestApp {
        base,
        team_id: team.team_id,
        api_key: key.api_key,
        chain,
        db,
        payer,
        config_path,
        http: reqwest::Client::new(),
        proxy,
        l2,
        shutdown,
        server: Some(server),
        _dir: dir,
    };
    app.wait_until_healthy().await;
    app
}

/// The seed's CreateApp body with a pay method and period.
pub fn create_app_body(pay_method: &str, period: u32) -> Value {
    json!({
        "pre_pay_info": {"pay_method": pay_method, "period": period},
        "name": "xyh421--boinc-5",
        "cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03",
        "namespace_name": "123",
        "cpu_limit": 1000,
        "mem_limit": 2000,
        "storage_limit": 20000,
        "chart_name": "boinc",
        "chart_repo": "stable",
        "chart_ver": "0.1.1",
        "chart_desc": "BOINC Rosetta",
        "chart_icon_url": "https://assets.ankr.com/charts/BOINC.svg",
        "app_version": "0.1.0",
        "instance_type": "123",
        "enterprise": false,
        "custom_values": [{"key": "ankrCustomValues.ncpu", "value": "1"}]
    })
}

impl TestApp {
    async fn wait_until_healthy(&self) {
        let started = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.api_key).json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.api_key).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// CreateApp, then its eth order: (app_id, order_id, deposit address, base units owed).
    pub async fn create_crypto_app(&self, pay_method: &str, period: u32) -> (String, String, Address, U256) {
        let (status, created) = self.post("/v2alpha/app/v2/app", &create_app_body(pay_method, period)).await;
        assert_eq!(status, 200, "CreateApp: {created}");
        let app_id = created["app_id"].as_str().unwrap().to_string();
        let (status, eth) =
            self.get(&format!("/v2alpha/teams/{}/eth_order/{app_id}?pay_method={pay_method}", self.team_id)).await;
        assert_eq!(status, 200, "GetEthOrder: {eth}");
        let uri = eth["payment_uri"].as_str().unwrap();
        let base_units: U256 = uri.rsplit("uint256=").next().unwrap().parse().unwrap();
        (
            app_id,
            eth["order_id"].as_str().unwrap().to_string(),
            eth["address"].as_str().unwrap().parse().unwrap(),
            base_units,
        )
    }

    /// CreateApp paid with the sandbox's good card: (app_id, app_end_time).
    pub async fn create_card_app(&self, period: u32) -> (String, i64) {
        let mut body = create_app_body("CREDIT_CARD", period);
        body["pre_pay_info"]["card_id"] = json!("pm_card_visa");
        let (status, created) = self.post("/v2alpha/app/v2/app", &body).await;
        assert_eq!(status, 200, "card CreateApp: {created}");
        let app_id = created["app_id"].as_str().unwrap().to_string();
        let end = self.app_status(&app_id).await["app_end_time"].as_i64().unwrap();
        (app_id, end)
    }

    pub async fn order(&self, order_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v2alpha/teams/{}/orders/{order_id}", self.team_id)).await;
        assert_eq!(status, 200, "order status: {body}");
        body
    }

    pub async fn app_status(&self, app_id: &str) -> Value {
        let (status, body) = self.get(&format!("/v2alpha/teams/{}/apps/{app_id}", self.team_id)).await;
        assert_eq!(status, 200, "app status: {body}");
        body
    }

    /// Polls the order until `done` holds; fails with the last state after `secs`.
    pub async fn wait_order(&self, order_id: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let order = self.order(order_id).await;
            if done(&order) {
                return order;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "order never reached the expected state: {order:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A transfer from the payer; returns the tx hash once mined.
    pub async fn pay(&self, token: Token, to: Address, amount: U256) -> alloy::primitives::TxHash {
        self.pay_from(accounts::PAYER_KEY, token, to, amount).await
    }

    /// A transfer from the account of `key`, through a fresh provider: a cached nonce would be
    /// wrong after a reorg took a transaction back.
    pub async fn pay_from(&self, key: &str, token: Token, to: Address, amount: U256) -> alloy::primitives::TxHash {
        pay_on(&self.chain, key, token, to, amount).await
    }

    /// The second chain.
    pub fn l2(&self) -> &TestChain {
        self.l2.as_ref().expect("this test asked for a second chain (Options::l2_confirmations)")
    }

    /// A USDT transfer from the payer on the second chain.
    pub async fn pay_l2(&self, to: Address, amount: U256) -> alloy::primitives::TxHash {
        pay_on(self.l2(), accounts::PAYER_KEY, paywatch::devnet::L2_USDT, to, amount).await
    }
}

/// A token transfer on `chain` from the account of `key`, through a fresh provider (a cached
/// nonce would be wrong after a reorg took a transaction back).
pub async fn pay_on(
    chain: &TestChain,
    key: &str,
    token: Token,
    to: Address,
    amount: U256,
) -> alloy::primitives::TxHash {
    {
        let address = chain.token(token);
        let payer = rpc::signing_provider(&chain.anvil.rpc_url(), key.parse::<PrivateKeySigner>().unwrap()).unwrap();
        // The minimal ERC20 interface fits both mocks (USDT's transfer returns nothing).
        let pending = paywatch::chain::contracts::IERC20::new(address, payer).transfer(to, amount).send().await;
        let receipt = pending.unwrap().get_receipt().await.unwrap();
        assert!(receipt.status(), "transfer succeeded");
        receipt.transaction_hash
    }
}

impl TestApp {
    pub async fn mine(&self, blocks: u64) {
        self.chain.deployer.anvil_mine(Some(blocks), None).await.unwrap();
    }

    pub async fn head(&self) -> u64 {
        self.chain.deployer.get_block_number().await.unwrap()
    }

    /// Stops the in-process server, keeping chain and database (for tests that run
    /// `paywatch serve` processes against them instead).
    pub async fn stop_server(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub async fn stop(mut self) {
        self.stop_server().await;
        self.db.cleanup().await;
    }
}
