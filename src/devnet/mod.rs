//! `paywatch devnet`: a complete local setup in one command. Starts two anvils: the first chain
//! (chain id 31337, a block a second) and an L2-like one (31338, a block every 250 ms), deploys
//! the factory on both at one address (the deterministic deployment proxy), mock ANKR and USDT
//! on the first and a mock USDT on the second, funds a payer on both, writes a config, creates
//! a demo team and catalog, writes `devnet.json` and serves on SQLite until SIGINT/SIGTERM,
//! then stops the anvils. Each run starts from fresh chains and database in its folder.

pub mod anvil;
pub mod config_template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use rand::RngCore;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::chain::{deploy, rpc};
use crate::config::Config;
use crate::money::Token;
use crate::store::Store;
use anvil::{Anvil, AnvilOptions, accounts};

pub const CHAIN_ID: u64 = 31337;
/// The L2-like second chain: its name in the config, its id, its USDT's pay method.
pub const L2_NAME: &str = "l2";
pub const L2_CHAIN_ID: u64 = 31338;
pub const L2_USDT: Token = Token::UsdtL2;
/// The second chain's USDT0: USDT that pays without gas (`[tokens.USDT0_L2] authorization`).
pub const L2_USDT0: Token = Token::Usdt0L2;
const L2_BLOCK_MS: u64 = 250;
pub const CONFIRMATIONS: u64 = 2;
/// What the payer starts with, in whole tokens of each kind.
const PAYER_FUNDS: u64 = 1_000_000;

pub struct Options {
    pub port: u16,
    pub anvil_port: u16,
    pub dir: PathBuf,
}

/// The file a newcomer (or a test) reads to talk to the devnet.
#[derive(Debug, Serialize)]
pub struct DevnetInfo {
    pub api_url: String,
    pub rpc_url: String,
    pub chain_id: u64,
    pub tokens: BTreeMap<Token, Address>,
    pub factory: Address,
    pub treasury: Address,
    pub price_feed: Option<Address>,
    pub confirmations: u64,
    /// Every chain by name (the first is also described by the keys above).
    pub chains: BTreeMap<String, DevnetChain>,
    pub payer_private_key: String,
    pub payer_address: Address,
    pub team_id: String,
    pub api_key: String,
    pub admin_token: String,
    pub config: String,
}

#[derive(Debug, Serialize)]
pub struct DevnetChain {
    pub rpc_url: String,
    pub chain_id: u64,
    pub tokens: BTreeMap<Token, Address>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.dir).with_context(|| format!("creating {}", options.dir.display()))?;
    let dir = options.dir.canonicalize()?;
    for stale in ["devnet.db", "devnet.db-wal", "devnet.db-shm", "devnet.json"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .with_context(|| format!("port {} for the API", options.port))?;
    let api_addr = listener.local_addr()?;

    let anvil = Anvil::spawn(AnvilOptions {
        port: options.anvil_port,
        chain_id: CHAIN_ID,
        block_time_ms: Some(1000),
        state: None,
    })
    .await?;
    let l2_port = if options.anvil_port == 0 { 0 } else { options.anvil_port + 1 };
    let l2 = Anvil::spawn(AnvilOptions {
        port: l2_port,
        chain_id: L2_CHAIN_ID,
        block_time_ms: Some(L2_BLOCK_MS),
        state: None,
    })
    .await?;
    tracing::info!(rpc = anvil.rpc_url(), l2 = l2.rpc_url(), "anvils started");
    let shutdown = CancellationToken::new();
    crate::startup::cancel_on_signal(shutdown.clone());

    let result = async {
        let (config, info) = prepare(&anvil, &l2, &dir, api_addr).await?;
        let info_path = dir.join("devnet.json");
        std::fs::write(&info_path, serde_json::to_string_pretty(&info)? + "\n")?;
        tracing::info!(api = info.api_url, file = %info_path.display(), "devnet ready");
        crate::startup::run(config, listener, shutdown).await
    }
    .await;
    l2.stop().await?;
    anvil.stop().await?;
    result
}

/// The second chain's contracts: the factory (at the first chain's address) and a USDT mock.
pub async fn deploy_l2(
    provider: &alloy::providers::DynProvider,
    treasury: Address,
) -> anyhow::Result<deploy::Deployment> {
    let factory = deploy::deploy_factory(provider, treasury).await.context("the factory on the second chain")?;
    let usdt = deploy::deploy_mock_usdt(provider).await.context("USDT on the second chain")?;
    Ok(deploy::Deployment { factory, tokens: BTreeMap::from([(L2_USDT, usdt)]), price_feed: None })
}

/// Mints each of `deployment`'s mock tokens to `holder`.
pub async fn fund(
    provider: &alloy::providers::DynProvider,
    deployment: &deploy::Deployment,
    holder: Address,
    whole_tokens: u64,
) -> anyhow::Result<()> {
    for (token, address) in &deployment.tokens {
        let amount = U256::from(whole_tokens) * U256::from(10u8).pow(U256::from(token_decimals(*token)));
        deploy::mint_mock(provider, *token, *address, holder, amount).await.context("funding the payer")?;
    }
    Ok(())
}

/// Deploys, funds, writes the config and seeds the database.
async fn prepare(
    anvil: &Anvil,
    l2: &Anvil,
    dir: &Path,
    api_addr: std::net::SocketAddr,
) -> anyhow::Result<(Config, DevnetInfo)> {
    let deployer: PrivateKeySigner = accounts::DEPLOYER_KEY.parse()?;
    let payer: PrivateKeySigner = accounts::PAYER_KEY.parse()?;
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let provider = rpc::signing_provider(&anvil.rpc_url(), deployer.clone())?;
    let deployment = deploy::deploy_all(&provider, treasury, true).await.context("deploying contracts")?;
    fund(&provider, &deployment, payer.address(), PAYER_FUNDS).await?;
    let l2_provider = rpc::signing_provider(&l2.rpc_url(), deployer)?;
    let mut l2_deployment = deploy_l2(&l2_provider, treasury).await?;
    l2_deployment
        .tokens
        .insert(L2_USDT0, deploy::deploy_mock_usdt0(&l2_provider).await.context("USDT0 on the second chain")?);
    anyhow::ensure!(
        l2_deployment.factory == deployment.factory,
        "the factory landed at another address on the second chain"
    );
    fund(&l2_provider, &l2_deployment, payer.address(), PAYER_FUNDS).await?;

    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut secret);
    let admin_token = hex::encode(secret);
    let config_path = dir.join("paywatch.toml");
    let more = vec![config_template::MoreChain {
        name: L2_NAME.to_string(),
        chain_id: L2_CHAIN_ID,
        rpc_http: l2.rpc_url(),
        confirmations: CONFIRMATIONS,
        poll_interval_ms: L2_BLOCK_MS,
        deployment: &l2_deployment,
    }];
    std::fs::write(&config_path, config_toml(anvil, dir, api_addr, &deployment, more, treasury, &admin_token))?;
    let config = Config::load(&config_path)?;

    let store = Store::connect(config.database_url()).await?;
    store.migrate().await?;
    let (team, key) = crate::store::teams::create_with_key(&store, "demo").await?;
    seed_catalog(&store).await?;
    store.close().await;

    let info = DevnetInfo {
        api_url: format!("http://{api_addr}"),
        rpc_url: anvil.rpc_url(),
        chain_id: CHAIN_ID,
        tokens: deployment.tokens.clone(),
        factory: deployment.factory,
        treasury,
        price_feed: deployment.price_feed,
        confirmations: CONFIRMATIONS,
        chains: BTreeMap::from([
            (
                crate::config::FIRST_CHAIN.to_string(),
                DevnetChain { rpc_url: anvil.rpc_url(), chain_id: CHAIN_ID, tokens: deployment.tokens.clone() },
            ),
            (
                L2_NAME.to_string(),
                DevnetChain { rpc_url: l2.rpc_url(), chain_id: L2_CHAIN_ID, tokens: l2_deployment.tokens.clone() },
            ),
        ]),
        payer_private_key: accounts::PAYER_KEY.to_string(),
        payer_address: payer.address(),
        team_id: team.team_id,
        api_key: key.api_key,
        admin_token,
        config: config_path.display().to_string(),
    };
    Ok((config, info))
}

pub fn token_decimals(token: Token) -> u8 {
    deploy::mock_decimals(token)
}

fn config_toml(
    anvil: &Anvil,
    dir: &Path,
    api_addr: std::net::SocketAddr,
    deployment: &deploy::Deployment,
    more_chains: Vec<config_template::MoreChain<'_>>,
    treasury: Address,
    admin_token: &str,
) -> String {
    let header = "# Written by `paywatch devnet`; every run starts from a fresh chain and database.\n";
    let body = config_template::render(&config_template::LocalConfig {
        listen: api_addr.to_string(),
        database_url: format!("sqlite://{}", dir.join("devnet.db").display()),
        chain_id: CHAIN_ID,
        rpc_http: anvil.rpc_url(),
        rpc_ws: Some(anvil.ws_url()),
        confirmations: CONFIRMATIONS,
        poll_interval_ms: 500,
        deployment,
        treasury,
        chainlink_max_age: None,
        admin_token: admin_token.to_string(),
        signer_key: Some(accounts::DEPLOYER_KEY.to_string()),
        more_chains,
        // The relayer of gasless payments: an anvil account of its own, funded with the chain's coin.
        extra: format!("[relayer]\nprivate_key = \"{}\"\n", accounts::RELAYER_KEY),
    });
    format!("{header}{body}")
}

/// The demo hosting catalog: a product that uses every option type (1-20), and one with a
/// small stock. `paywatch catalog import` takes files of the same shape.
pub const DEMO_CATALOG: &str = include_str!("demo_catalog.json");

pub fn demo_catalog() -> crate::catalog::products::CatalogDocument {
    serde_json::from_str(DEMO_CATALOG).expect("the demo catalog parses")
}

/// The seed's goods item and the demo hosting catalog, so the catalog endpoints have
/// something to show.
async fn seed_catalog(store: &Store) -> anyhow::Result<()> {
    crate::catalog::import::import(store, &demo_catalog()).await?;
    use crate::store::catalog::{GoodsSpecification, SpecCell, SpecPicture, replace_goods_specification};
    let cell = |main: &str, second: &str, cost: i64| SpecCell {
        main_specification: main.into(),
        second_specification: second.into(),
        purchasing_cost: cost.into(),
    };
    let goods = GoodsSpecification {
        goods_id: 1,
        main_specification_name: "颜色".into(),
        second_specification_name: "鞋码".into(),
        cells: vec![
            cell("蓝色", "37", 23),
            cell("蓝色", "38", 24),
            cell("蓝色", "39", 21),
            cell("绿色", "37", 23),
            cell("绿色", "42", 21),
        ],
        pics: vec![
            SpecPicture { main_specification: "蓝色".into(), image_url: "https://example.com/blue.png".into() },
            SpecPicture { main_specification: "绿色".into(), image_url: "https://example.com/green.png".into() },
        ],
    };
    let mut tx = store.begin().await?;
    replace_goods_specification(&mut tx, &goods).await?;
    tx.commit().await?;
    Ok(())
}
