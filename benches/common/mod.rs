//! What the bench binaries share: a config and store beside an anvil, and open orders.
#![allow(dead_code)] // each bench binary uses its part

pub mod counting_proxy;
pub mod workload;

use alloy::primitives::{Address, U256};
use anyhow::Context;
use paywatch::chain::{deploy, rpc};
use paywatch::config::Config;
use paywatch::devnet::anvil::Anvil;
use paywatch::money::Token;
use paywatch::payments::checkout::{self, OrderFor};
use paywatch::store::orders::OrderKind;
use paywatch::store::{Store, apps};

/// The first chain reached through another URL (a proxy), polled and confirmed as given.
pub struct Through {
    pub rpc_url: String,
    pub poll_interval_ms: u64,
    pub confirmations: u64,
    /// The endpoint declared to keep a batch on one node (`rpc_batches = "one_node"`).
    pub one_node: bool,
}

pub async fn setup(
    anvil: &Anvil,
    deployment: &deploy::Deployment,
    l2: Option<(&Anvil, &deploy::Deployment)>,
    dir: &std::path::Path,
    name: &str,
    ws: bool,
    through: Option<&Through>,
) -> anyhow::Result<(Config, Store)> {
    let text = paywatch::devnet::config_template::render(&paywatch::devnet::config_template::LocalConfig {
        listen: "127.0.0.1:0".into(),
        database_url: format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
        chain_id: anvil.chain_id(),
        rpc_http: through.map_or_else(|| anvil.rpc_url(), |t| t.rpc_url.clone()),
        rpc_ws: ws.then(|| anvil.ws_url()),
        confirmations: through.map_or(1, |t| t.confirmations),
        poll_interval_ms: through.map_or(1000, |t| t.poll_interval_ms),
        deployment,
        // The treasury the benches deploy the factory for (serve refuses any other).
        treasury: paywatch::devnet::anvil::accounts::TREASURY_KEY
            .parse::<alloy::signers::local::PrivateKeySigner>()?
            .address(),
        chainlink_max_age: None,
        admin_token: "bench-admin-token-0123456789".into(),
        signer_key: None,
        more_chains: l2
            .map(|(l2, deployment)| paywatch::devnet::config_template::MoreChain {
                name: paywatch::devnet::L2_NAME.into(),
                chain_id: l2.chain_id(),
                rpc_http: l2.rpc_url(),
                confirmations: 1,
                poll_interval_ms: 1000,
                deployment,
            })
            .into_iter()
            .collect(),
        extra: String::new(),
    });
    let text = if through.is_some_and(|t| t.one_node) { declare_one_node(&text) } else { text };
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    let config = Config::load(&path)?;
    let store = Store::connect(config.database_url()).await?;
    store.migrate().await?;
    Ok((config, store))
}

/// The config text with the first chain's endpoint declared to keep a batch on one node.
pub fn declare_one_node(text: &str) -> String {
    assert!(text.contains("[chain]\n"), "the config has a [chain] section");
    text.replacen("[chain]\n", "[chain]\nrpc_batches = \"one_node\"\n", 1)
}

/// The config `setup` wrote as `name`, loaded again with its endpoint declared one node.
pub fn one_node_config(dir: &std::path::Path, name: &str) -> anyhow::Result<Config> {
    let text = declare_one_node(&std::fs::read_to_string(dir.join(format!("{name}.toml")))?);
    let path = dir.join(format!("{name}-one-node.toml"));
    std::fs::write(&path, text)?;
    Ok(Config::load(&path)?)
}

/// `n` USDT orders for one app each; returns (deposit address, base units owed, order id).
pub async fn open_orders(config: &Config, store: &Store, n: usize) -> anyhow::Result<Vec<(Address, U256, String)>> {
    let (team, _) = paywatch::store::teams::create_with_key(store, "bench").await?;
    let prices = &paywatch::payments::prices::PriceBook::new(rpc::provider(config.chain.rpc_http.urls())?);
    let spec = apps::AppSpec {
        name: "bench".into(),
        cluster_id: "c".into(),
        chart_name: "boinc".into(),
        cpu_limit: 1000,
        mem_limit: 1024,
        storage_limit: 1024,
        ..Default::default()
    };
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tx = store.begin().await?;
        let app = apps::insert_app(&mut *tx, &team.team_id, &spec, paywatch::money::PayMethod::UsdtErc20).await?;
        let quote = checkout::price_usd_in(
            config,
            prices,
            paywatch::money::PayMethod::UsdtErc20,
            rust_decimal::Decimal::new(1234, 2),
        )
        .await?;
        let what =
            OrderFor { team_id: &team.team_id, app_id: Some(&app.app_id), kind: OrderKind::Create, period_months: 1 };
        let order =
            checkout::open_token_order(&mut tx, config, what, Token::UsdtErc20, quote, |_| paywatch::store::unix_now())
                .await?;
        tx.commit().await?;
        let c = order.new.crypto.context("token order")?;
        out.push((c.deposit_address, c.amount_base, order.order_id));
    }
    Ok(out)
}
