//! Catch-up and latency benchmark (a bench binary, not a test): `make bench`.
//!
//! 1. Catch-up: a range holding 50,000 Transfer logs, 1% of them into deposit addresses of open
//!    orders, among thousands of empty blocks. The watcher's catch-up (fetch, match, record,
//!    credit, commit) is timed against the baseline measured in the same run: raw eth_getLogs
//!    of the same range, in the same 1,000-block chunks, doing nothing with the logs.
//! 2. Two chains: the same workload on a second anvil (`[chains.l2]`, paying other orders of
//!    the same store); each chain's catch-up alone, then both watchers at once: the second
//!    chain's catch-up should not slow the first's by more than 20 %.
//! 3. Latency: from a payment's block being mined to its order showing `paid`, with
//!    confirmations = 1, with the WebSocket wake-up on and off (HTTP polling every 1,000 ms).
//!
//! Prints a Markdown report; docs/BENCHMARKS.md holds the last one. `CATCHUP_SINGLE_CHAIN_ONLY=1`
//! stops after the first part.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use paywatch::chain::contracts::MockUSDT;
use paywatch::chain::status::ChainStatus;
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};
use paywatch::money::Token;
use paywatch::store::orders::{self, OrderStatus};
use paywatch::watcher::Watcher;

mod common;
use common::workload::{anvil_head, generate, median, ms, raw_fetch, reset};
use common::{one_node_config, open_orders, setup};
use tokio_util::sync::CancellationToken;

const TOTAL_LOGS: usize = 50_000;
const DEPOSIT_SHARE: usize = 100; // one log in 100 pays an order
const RUNS: usize = 3;
const LATENCY_SAMPLES: usize = 15;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let deployment = deploy::deploy_all(&deployer, treasury, true).await?;
    let usdt = deployment.tokens[&Token::UsdtErc20];
    let dir = tempfile::tempdir()?;
    let l2 = Anvil::spawn(AnvilOptions { chain_id: paywatch::devnet::L2_CHAIN_ID, ..Default::default() }).await?;
    let l2_deployer = rpc::signing_provider(&l2.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let l2_deployment = paywatch::devnet::deploy_l2(&l2_deployer, treasury).await?;

    let (config, store) =
        setup(&anvil, &deployment, Some((&l2, &l2_deployment)), dir.path(), "catchup", false, None).await?;
    let orders_n = TOTAL_LOGS / DEPOSIT_SHARE;
    let deposits = open_orders(&config, &store, orders_n).await?;
    let payer = rpc::signing_provider(&anvil.rpc_url(), accounts::PAYER_KEY.parse()?)?;
    let payer_address = accounts::PAYER_KEY.parse::<PrivateKeySigner>()?.address();
    deploy::mint_mock(&deployer, Token::UsdtErc20, usdt, payer_address, U256::from(10u64).pow(U256::from(30))).await?;
    paywatch::devnet::fund(&l2_deployer, &l2_deployment, payer_address, 1_000_000_000_000).await?;

    eprintln!("generating {TOTAL_LOGS} transfers…");
    let (first_block, last_block) = generate(&anvil, usdt, &deposits, TOTAL_LOGS).await?;
    let blocks = last_block - first_block + 1;

    let raw = median(RUNS, || {
        raw_fetch(&deployer, TOTAL_LOGS, usdt, deployment.tokens[&Token::AnkrErc20], first_block, last_block)
    })
    .await?;
    // As paywatch runs by default: every header of each range beside its logs (the trust rule
    // of issue 34); and on an endpoint declared one node: each range's two end headers and its
    // logs in one batch (the tie). Run in turns, so both meet the node in the same state.
    let tied_config = one_node_config(dir.path(), "catchup")?;
    let (mut watcher_times, mut tied_times) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        for (config, times) in [(&config, &mut watcher_times), (&tied_config, &mut tied_times)] {
            reset(&store, &[(31337, first_block - 1, &deployer)]).await?;
            let mut watcher = Watcher::new(
                config,
                store.clone(),
                rpc::http_provider(&anvil.rpc_url())?,
                Arc::new(ChainStatus::default()),
            );
            let started = Instant::now();
            watcher.catch_up().await?;
            times.push(started.elapsed());
            let paid: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'").fetch_one(store.pool()).await?;
            anyhow::ensure!(paid as usize == orders_n, "catch-up credited {paid} of {orders_n} orders");
        }
    }
    watcher_times.sort();
    tied_times.sort();
    let (watched, tied) = (watcher_times[RUNS / 2], tied_times[RUNS / 2]);

    let logs_per_s = |t: Duration| TOTAL_LOGS as f64 / t.as_secs_f64();
    let blocks_per_s = |t: Duration| blocks as f64 / t.as_secs_f64();
    println!(
        "## Catch-up ({blocks} blocks, {TOTAL_LOGS} Transfer logs, {orders_n} to deposit addresses; median of {RUNS})\n"
    );
    println!("| | time | blocks/s | logs/s |\n|---|---|---|---|");
    println!("| raw eth_getLogs (baseline) | {:.0} ms | {:.0} | {:.0} |", ms(raw), blocks_per_s(raw), logs_per_s(raw));
    println!(
        "| paywatch catch-up | {:.0} ms | {:.0} | {:.0} |",
        ms(watched),
        blocks_per_s(watched),
        logs_per_s(watched)
    );
    println!(
        "| paywatch catch-up, endpoint declared one node | {:.0} ms | {:.0} | {:.0} |",
        ms(tied),
        blocks_per_s(tied),
        logs_per_s(tied)
    );
    println!(
        "\nRatio catch-up / raw fetch: **{:.2}x** with every header of each range checked, **{:.2}x** on one \
         node (two headers a range). All {orders_n} orders ended paid in every run.\n",
        watched.as_secs_f64() / raw.as_secs_f64(),
        tied.as_secs_f64() / raw.as_secs_f64(),
    );

    if std::env::var_os("CATCHUP_SINGLE_CHAIN_ONLY").is_some() {
        // For measuring a change to the catch-up itself: the tables above, without the two-chain and latency parts.
        l2.stop().await?;
        return anvil.stop().await;
    }
    // Two chains: the second chain pays orders of its own (same store, same asset).
    let l2_deposits = open_orders(&config, &store, orders_n).await?;
    eprintln!("generating {TOTAL_LOGS} transfers on the second chain…");
    let (l2_first, _) =
        generate(&l2, l2_deployment.tokens[&paywatch::devnet::L2_USDT], &l2_deposits, TOTAL_LOGS).await?;
    let starts = [(31337, first_block - 1, &deployer), (paywatch::devnet::L2_CHAIN_ID, l2_first - 1, &l2_deployer)];
    let chains = config.chains();
    let watcher_on = |i: usize| -> anyhow::Result<Watcher> {
        let url = if i == 0 { anvil.rpc_url() } else { l2.rpc_url() };
        Ok(Watcher::for_chain(&config, chains[i], store.clone(), rpc::http_provider(&url)?, Arc::default()))
    };
    let (mut alone, mut together) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for _ in 0..RUNS {
        for (i, times) in alone.iter_mut().enumerate() {
            reset(&store, &starts).await?;
            let mut w = watcher_on(i)?;
            let started = Instant::now();
            w.catch_up().await?;
            times.push(started.elapsed());
        }
        reset(&store, &starts).await?;
        let (ta, tb) = tokio::try_join!(timed_catch_up(watcher_on(0)?), timed_catch_up(watcher_on(1)?))?;
        together[0].push(ta);
        together[1].push(tb);
        let paid: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'").fetch_one(store.pool()).await?;
        anyhow::ensure!(paid as usize == 2 * orders_n, "two-chain catch-up credited {paid} of {} orders", 2 * orders_n);
    }
    let mid = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let [alone_first, alone_second] = alone.map(mid);
    let [both_first, both_second] = together.map(mid);
    println!(
        "## Two chains at once ({TOTAL_LOGS} Transfer logs on each, {orders_n} orders paid on each; median of {RUNS})\n"
    );
    println!("| | first chain | second chain |\n|---|---|---|");
    println!("| each chain alone | {:.0} ms | {:.0} ms |", ms(alone_first), ms(alone_second));
    println!("| both watchers at once | {:.0} ms | {:.0} ms |", ms(both_first), ms(both_second));
    println!(
        "\nThe first chain's catch-up with the second running beside it: **{:.2}x** its time alone (target: at \
         most 1.20x); the second's: {:.2}x. Both share one SQLite database and this machine's 2 cores. All {} orders \
         ended paid in every run.\n",
        both_first.as_secs_f64() / alone_first.as_secs_f64(),
        both_second.as_secs_f64() / alone_second.as_secs_f64(),
        2 * orders_n
    );

    println!("## Latency from a mined payment block to `paid` (confirmations = 1, median of {LATENCY_SAMPLES})\n");
    println!("| wake-up | median | p90 |\n|---|---|---|");
    for ws in [false, true] {
        let (median, p90) = latency(&anvil, &deployment, dir.path(), ws, &payer).await?;
        let label = if ws { "WebSocket new heads" } else { "HTTP polling every 1000 ms" };
        println!("| {label} | {:.0} ms | {:.0} ms |", ms(median), ms(p90));
    }
    l2.stop().await?;
    anvil.stop().await?;
    Ok(())
}

async fn timed_catch_up(mut watcher: Watcher) -> anyhow::Result<Duration> {
    let started = Instant::now();
    watcher.catch_up().await?;
    Ok(started.elapsed())
}

/// Mined-to-paid latency of single payments with a running server.
async fn latency(
    anvil: &Anvil,
    deployment: &deploy::Deployment,
    dir: &std::path::Path,
    ws: bool,
    payer: &alloy::providers::DynProvider,
) -> anyhow::Result<(Duration, Duration)> {
    let (config, store) =
        setup(anvil, deployment, None, dir, if ws { "latency-ws" } else { "latency-poll" }, ws, None).await?;
    let head = anvil_head(payer).await?;
    let block = payer.get_block_by_number(head.into()).await?.context("head")?;
    paywatch::store::cursor::set(
        store.pool(),
        31337,
        paywatch::store::cursor::Cursor {
            block_number: head,
            block_hash: block.header.hash,
            block_time: block.header.timestamp as i64,
        },
    )
    .await?;
    let orders = open_orders(&config, &store, LATENCY_SAMPLES).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(paywatch::startup::run(config, listener, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await; // let the watcher reach the head
    let token = MockUSDT::new(deployment.tokens[&Token::UsdtErc20], payer.clone());
    let mut samples = Vec::new();
    for (i, (address, owed, order_id)) in orders.iter().enumerate() {
        // Spread the payments over the polling cycle, as real payments are: a fixed pause
        // would lock every sample to the same phase of the poll.
        tokio::time::sleep(Duration::from_millis(50 + (i as u64 * 389) % 1000)).await;
        // anvil automines: the block exists once the node has accepted the transaction.
        let _pending = token.transfer(*address, *owed).send().await?;
        let mined = Instant::now();
        loop {
            let order = orders::get_any(store.pool(), order_id).await?.context("order")?;
            if order.progress.status == OrderStatus::Paid {
                samples.push(mined.elapsed());
                break;
            }
            anyhow::ensure!(mined.elapsed() < Duration::from_secs(30), "order {order_id} never paid");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    shutdown.cancel();
    server.await??;
    samples.sort();
    Ok((samples[samples.len() / 2], samples[samples.len() * 9 / 10]))
}
