//! What following the head costs in RPC calls (a bench binary, not a test): `make bench`.
//!
//! paywatch (`startup::run`, the whole service) polls every 2 s through a counting proxy in
//! front of anvil, for 120 s at one block per 2 s and for 120 s at four blocks a second (an
//! L2's pace), with a few payments in each window (every one must end paid). Every JSON-RPC
//! call is counted by method, the calls inside batches too, and priced in compute units with
//! the table below. The floor is one `eth_getBlockByNumber("latest")` plus one range
//! `eth_getLogs` per poll: 80 units a poll. Prints a Markdown report; docs/BENCHMARKS.md holds
//! the last one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use paywatch::chain::contracts::MockUSDT;
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};
use paywatch::money::Token;
use paywatch::store::orders::{self, OrderStatus};
use tokio_util::sync::CancellationToken;

mod common;
use common::counting_proxy::Proxy;
use common::{Through, open_orders, setup};

const POLL_MS: u64 = 2_000;
const WINDOW: Duration = Duration::from_secs(120);
const PAYMENTS: usize = 4;
/// Compute units per call (Alchemy's published table: the two calls of the floor, 20 + 60).
const UNITS: &[(&str, u64)] = &[
    ("eth_getBlockByNumber", 20),
    ("eth_getBlockByHash", 20),
    ("eth_getLogs", 60),
    ("eth_blockNumber", 10),
    ("eth_chainId", 0),
];
const UNKNOWN_UNITS: u64 = 26;
const FLOOR_PER_POLL: f64 = 80.0;

fn units(method: &str) -> u64 {
    UNITS.iter().find(|(m, _)| *m == method).map_or(UNKNOWN_UNITS, |(_, u)| *u)
}

struct Window {
    name: &'static str,
    blocks: u64,
    polls: f64,
    counts: BTreeMap<String, u64>,
    requests: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut windows = Vec::new();
    // Each pace with the default rule (any routing: a header per block) and on an endpoint
    // declared one node (the tie: a range's two end headers in one batch with its logs).
    for (name, block_every, one_node) in [
        ("one block per 2 s", Duration::from_secs(2), false),
        ("four blocks a second", Duration::from_millis(250), false),
        ("one block per 2 s, one node", Duration::from_secs(2), true),
        ("four blocks a second, one node", Duration::from_millis(250), true),
    ] {
        windows.push(measure(name, block_every, one_node).await?);
    }
    println!(
        "## RPC cost of following the head (2 s poll, {} s per pace, {PAYMENTS} payments each)\n",
        WINDOW.as_secs()
    );
    println!(
        "Compute units per call: {}; others {UNKNOWN_UNITS}.\n",
        UNITS.iter().map(|(m, u)| format!("{m} {u}")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "| pace | blocks | polls | HTTP requests | calls per block | units per block | floor per block | ratio to the floor |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for w in &windows {
        let calls: u64 = w.counts.values().sum();
        let total_units: u64 = w.counts.iter().map(|(m, n)| units(m) * n).sum();
        let per_block = total_units as f64 / w.blocks as f64;
        let floor = FLOOR_PER_POLL * w.polls / w.blocks as f64;
        println!(
            "| {} | {} | {:.0} | {} | {:.2} | {:.1} | {:.1} | {:.2}x |",
            w.name,
            w.blocks,
            w.polls,
            w.requests,
            calls as f64 / w.blocks as f64,
            per_block,
            floor,
            per_block / floor
        );
    }
    println!("\nBy method (calls per block, units per block):\n");
    println!("| pace | method | calls per block | units per block |");
    println!("|---|---|---:|---:|");
    for w in &windows {
        for (m, n) in &w.counts {
            println!(
                "| {} | {m} | {:.2} | {:.1} |",
                w.name,
                *n as f64 / w.blocks as f64,
                (units(m) * n) as f64 / w.blocks as f64
            );
        }
    }
    Ok(())
}

/// One pace: a fresh anvil mined by this bench every `block_every`, paywatch behind the
/// counting proxy (declared one node when `one_node`), counted over `WINDOW` once it follows
/// the head.
async fn measure(name: &'static str, block_every: Duration, one_node: bool) -> anyhow::Result<Window> {
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let deployment = deploy::deploy_all(&deployer, treasury, true).await?;
    let usdt = deployment.tokens[&Token::UsdtErc20];
    let payer = rpc::signing_provider(&anvil.rpc_url(), accounts::PAYER_KEY.parse()?)?;
    let payer_address = accounts::PAYER_KEY.parse::<PrivateKeySigner>()?.address();
    deploy::mint_mock(
        &deployer,
        Token::UsdtErc20,
        usdt,
        payer_address,
        alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(24)),
    )
    .await?;

    let (proxy, proxy_url, proxy_task) = Proxy::spawn(anvil.rpc_url()).await?;

    let dir = tempfile::tempdir()?;
    let through = Through { rpc_url: proxy_url, poll_interval_ms: POLL_MS, confirmations: 2, one_node };
    let (config, store) = setup(&anvil, &deployment, None, dir.path(), "rpc-cost", false, Some(&through)).await?;
    let orders = open_orders(&config, &store, PAYMENTS).await?;
    // Transactions wait for the bench's own blocks, as on a chain with a block time.
    let node = rpc::http_provider(&anvil.rpc_url())?;
    node.anvil_set_auto_mine(false).await?;
    let shutdown = CancellationToken::new();
    let service_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server = tokio::spawn(paywatch::startup::run(config, service_listener, shutdown.clone()));

    let miner_stop = CancellationToken::new();
    let miner = {
        let (provider, stop) = (node.clone(), miner_stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(block_every);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => { let _ = provider.anvil_mine(Some(1), None).await; }
                }
            }
        })
    };
    // Start-up (chain id checks, the first catch-up) is not what this measures.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let head = |p: &alloy::providers::DynProvider| {
        let p = p.clone();
        async move { anyhow::Ok(p.get_block_number().await?) }
    };
    proxy.take();
    let first = head(&payer).await?;
    let started = Instant::now();
    let token = MockUSDT::new(usdt, payer.clone());
    for (i, (address, owed, _)) in orders.iter().enumerate() {
        let at = WINDOW * (i as u32 + 1) / (PAYMENTS as u32 + 2);
        tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
        let _pending = token.transfer(*address, *owed).send().await?;
    }
    tokio::time::sleep(WINDOW.saturating_sub(started.elapsed())).await;
    let elapsed = started.elapsed();
    let counted = proxy.take();
    let blocks = head(&payer).await? - first;
    for (_, _, order_id) in &orders {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let order = orders::get_any(store.pool(), order_id).await?.context("order")?;
            if order.progress.status == OrderStatus::Paid {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{name}: order {order_id} never paid");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    miner_stop.cancel();
    let _ = miner.await;
    shutdown.cancel();
    server.await??;
    proxy_task.abort();
    Ok(Window {
        name,
        blocks,
        polls: elapsed.as_millis() as f64 / POLL_MS as f64,
        counts: counted.by_method,
        requests: counted.requests,
    })
}
