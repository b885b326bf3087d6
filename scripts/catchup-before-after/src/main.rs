//! The catch-up of the code before issue 34 and of this code, timed in one process against one
//! anvil holding one workload (`run.sh`). The catch-up bench times each code in its own process
//! against its own anvil; between two such processes the raw fetch alone moved 1.8x, more than
//! the codes differ. Here every turn meets the same node in the same state: each round runs the
//! raw eth_getLogs baseline, the old watcher, this watcher (default rule) and this watcher on an
//! endpoint declared one node, in an order rotated every round, and the report gives the median
//! of each and the ratio of this code's time to the old code's in the same round. Then one
//! catch-up of each through a counting proxy, with sqlx's statement events tallied: where the
//! time goes (the node's answers, SQL) and what differs between the codes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};
use paywatch::money::Token;

#[path = "../../../benches/common/mod.rs"]
mod common;
mod old_common;

use common::counting_proxy::Proxy;
use common::workload::{forget_progress, generate, ms, raw_fetch, reset};

const TOTAL_LOGS: usize = 50_000;
/// Orders each store opens; both sets are paid in the same workload, so each watcher matches
/// 500 payments among 50,000 logs (the catch-up bench's share) and passes over the other 500.
const ORDERS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Turn {
    Raw,
    Before,
    Default,
    OneNode,
    /// This code's reads alone (the default rule's), no matching or writing.
    FetchDefault,
    /// The same for the tie's reads.
    FetchOneNode,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(7), |r| r.parse())?;
    {
        use tracing_subscriber::prelude::*;
        let only_statements =
            tracing_subscriber::filter::Targets::new().with_target("sqlx::query", tracing::Level::DEBUG);
        tracing_subscriber::registry().with((&SQL).with_filter(only_statements)).init();
    }
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let deployment = deploy::deploy_all(&deployer, treasury, true).await?;
    let (usdt, ankr) = (deployment.tokens[&Token::UsdtErc20], deployment.tokens[&Token::AnkrErc20]);
    let dir = tempfile::tempdir()?;

    // This code's config and store; the old code reads the same config with its own database.
    let (config, store) = common::setup(&anvil, &deployment, None, dir.path(), "now", false, None).await?;
    let one_node = common::one_node_config(dir.path(), "now")?;
    let text = std::fs::read_to_string(dir.path().join("now.toml"))?.replace("now.db", "before.db");
    anyhow::ensure!(text.contains("before.db"), "the config names its database file");
    std::fs::write(dir.path().join("before.toml"), text)?;
    let old_config = old::config::Config::load(&dir.path().join("before.toml"))?;
    let old_store = old::store::Store::connect(old_config.database_url()).await?;
    old_store.migrate().await?;

    let mut deposits = common::open_orders(&config, &store, ORDERS).await?;
    let old_deposits = old_common::open_orders(&old_config, &old_store, ORDERS).await?;
    // Interleaved, so both codes' payments lie spread over the same blocks.
    deposits = deposits.into_iter().zip(old_deposits).flat_map(|(a, b)| [a, b]).collect();
    let distinct: std::collections::HashSet<_> = deposits.iter().map(|d| d.0).collect();
    anyhow::ensure!(distinct.len() == 2 * ORDERS, "the two stores' deposit addresses overlap");
    let payer = accounts::PAYER_KEY.parse::<PrivateKeySigner>()?.address();
    deploy::mint_mock(&deployer, Token::UsdtErc20, usdt, payer, U256::from(10u64).pow(U256::from(30))).await?;
    eprintln!("generating {TOTAL_LOGS} transfers…");
    let (first, last) = generate(&anvil, usdt, &deposits, TOTAL_LOGS).await?;

    let node = Node { chain_id: anvil.chain_id(), url: anvil.rpc_url() };
    let mut times: Vec<(Turn, Duration)> = Vec::new();
    let mut judged = Judged::default();
    let order = [Turn::Raw, Turn::Before, Turn::Default, Turn::OneNode, Turn::FetchDefault, Turn::FetchOneNode];
    let reader = paywatch::watcher::reader::Reader::new(rpc::http_provider(&anvil.rpc_url())?, vec![ankr, usdt]);
    for round in 0..rounds {
        for k in 0..order.len() {
            let turn = order[(round + k) % order.len()];
            let took = match turn {
                Turn::Raw => raw_fetch(&deployer, TOTAL_LOGS, usdt, ankr, first, last).await?,
                Turn::Before => before(&old_config, &old_store, &deployer, &node, first - 1).await?.0,
                Turn::Default => now(&config, &store, &deployer, &node, first - 1).await?.0,
                Turn::OneNode => now(&one_node, &store, &deployer, &node, first - 1).await?.0,
                Turn::FetchDefault => fetch_only(&reader, &[ankr, usdt], false, first, last, &mut judged).await?,
                Turn::FetchOneNode => fetch_only(&reader, &[ankr, usdt], true, first, last, &mut judged).await?,
            };
            eprintln!("round {round}: {turn:?} {:.0} ms", ms(took));
            times.push((turn, took));
        }
    }
    report(&times, rounds, last - first + 1);
    println!(
        "\nThe trust rule alone over the same answers (median): `verify` {:.1} ms, `verify_tied` {:.1} ms. \
         Every log checked against its block's bloom: {:.1} ms as `bloom_holds` does it (each input hashed), \
         {:.1} ms with each distinct address and topic hashed once a range.",
        ms(median(judged.verify)),
        ms(median(judged.verify_tied)),
        ms(median(judged.bloom)),
        ms(median(judged.bloom_once))
    );

    // One more catch-up of each code through a counting proxy: what it asked of the node, how
    // long the node took to answer, and the SQL it ran, against the catch-up's own time.
    let (proxy, url, proxy_task) = Proxy::spawn(anvil.rpc_url()).await?;
    let counted = Node { chain_id: anvil.chain_id(), url };
    println!("\n## What each catch-up asked of the node (one catch-up each, through a counting proxy)\n");
    println!(
        "| | catch-up | node's answering time, summed | HTTP requests | calls by method | SQL statements | their time, \
         summed |\n|---|---:|---:|---:|---|---:|---:|"
    );
    for turn in [Turn::Before, Turn::Default, Turn::OneNode] {
        proxy.take();
        let (took, (statements, sql_time)) = match turn {
            Turn::Before => before(&old_config, &old_store, &deployer, &counted, first - 1).await?,
            Turn::Default => now(&config, &store, &deployer, &counted, first - 1).await?,
            _ => now(&one_node, &store, &deployer, &counted, first - 1).await?,
        };
        let c = proxy.take();
        let methods: Vec<String> = c.by_method.iter().map(|(m, n)| format!("{m} {n}")).collect();
        println!(
            "| {turn:?} | {:.0} ms | {:.0} ms | {} | {} | {statements} | {:.0} ms |",
            ms(took),
            ms(c.waited),
            c.requests,
            methods.join(", "),
            ms(sql_time)
        );
    }
    proxy_task.abort();
    anvil.stop().await
}

/// sqlx's statement events (target `sqlx::query`, one at debug level for each statement run,
/// with its time), counted and their times summed; `timed` takes them around a catch-up.
struct SqlTally {
    statements: AtomicU64,
    nanos: AtomicU64,
}

static SQL: SqlTally = SqlTally { statements: AtomicU64::new(0), nanos: AtomicU64::new(0) };

impl SqlTally {
    /// The statements and their time since the last take.
    fn take(&self) -> (u64, Duration) {
        (self.statements.swap(0, Ordering::Relaxed), Duration::from_nanos(self.nanos.swap(0, Ordering::Relaxed)))
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for &'static SqlTally {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Elapsed(f64);
        impl tracing::field::Visit for Elapsed {
            fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
                if field.name() == "elapsed_secs" {
                    self.0 = value;
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut elapsed = Elapsed(0.0);
        event.record(&mut elapsed);
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add((elapsed.0 * 1e9) as u64, Ordering::Relaxed);
    }
}

/// The node a watcher reads: the chain's id and the URL it is reached at (anvil's own, or a
/// counting proxy's in front of it).
struct Node {
    chain_id: u64,
    url: String,
}

/// This code's catch-up from `start`.
async fn now(
    config: &paywatch::config::Config,
    store: &paywatch::store::Store,
    p: &DynProvider,
    node: &Node,
    start: u64,
) -> anyhow::Result<(Duration, (u64, Duration))> {
    reset(store, &[(node.chain_id, start, p)]).await?;
    let provider = rpc::http_provider(&node.url)?;
    let mut watcher = paywatch::watcher::Watcher::new(config, store.clone(), provider, Arc::default());
    timed(watcher.catch_up(), store.pool()).await
}

/// The code before issue 34 from `start`: its own watcher and store, the same node and workload.
async fn before(
    config: &old::config::Config,
    store: &old::store::Store,
    p: &DynProvider,
    node: &Node,
    start: u64,
) -> anyhow::Result<(Duration, (u64, Duration))> {
    use alloy::providers::Provider;
    forget_progress(store.pool()).await?;
    let block = p.get_block_by_number(start.into()).await?.ok_or_else(|| anyhow::anyhow!("no block {start}"))?;
    let cursor = old::store::cursor::Cursor {
        block_number: start,
        block_hash: block.header.hash,
        block_time: block.header.timestamp as i64,
    };
    old::store::cursor::set(store.pool(), node.chain_id, cursor).await?;
    let provider = old::chain::rpc::http_provider(&node.url)?;
    let mut watcher = old::chain::watcher::Watcher::new(config, store.clone(), provider, Arc::default());
    timed(watcher.catch_up(), store.pool()).await
}

/// This code's reads of `first..=last` alone, in ranges sized as its catch-up sizes them (from
/// 1,000 blocks, doubling up to the watcher's 5,000): where a catch-up's time goes. Each range's
/// answer is then judged by the trust rule the watcher applies (`verify`, or `verify_tied`),
/// timed apart and not counted in the reads' time; it must be believed whole.
async fn fetch_only(
    reader: &paywatch::watcher::reader::Reader,
    tokens: &[alloy::primitives::Address],
    tied: bool,
    first: u64,
    last: u64,
    judged: &mut Judged,
) -> anyhow::Result<Duration> {
    use paywatch::chain::completeness::{Verdict, verify};
    use paywatch::chain::one_node::verify_tied;
    let head = reader.header(last).await?.ok_or_else(|| anyhow::anyhow!("no header {last}"))?;
    let mut cursor = reader.header(first - 1).await?.map(|h| h.hash);
    let mut range = paywatch::chain::range::AdaptiveRange::new(1_000, 5_000);
    let (mut read, mut verified, mut from, mut logs) = (Duration::ZERO, Duration::ZERO, first, 0);
    let (mut bloom, mut bloom_once) = (Duration::ZERO, Duration::ZERO);
    while from <= last {
        let to = last.min(from + range.get() - 1);
        let started = Instant::now();
        let mut look = if tied { reader.tied_range(from, to).await? } else { reader.range(from, to).await? };
        if !tied {
            reader.complete_headers(&mut look).await?;
        }
        read += started.elapsed();
        let started = Instant::now();
        let verdict =
            if tied { verify_tied(&look, cursor, &head, tokens) } else { verify(&look, cursor, &head, tokens) };
        verified += started.elapsed();
        if !tied {
            let (each, once) = bloom_checks(&look);
            bloom += each;
            bloom_once += once;
        }
        let Verdict::Trusted { believed, unproven: None } = verdict else {
            anyhow::bail!("{from}..={to} not believed whole");
        };
        anyhow::ensure!(believed.last().number == to, "{from}..={to} believed only to {}", believed.last().number);
        logs += believed.logs.len();
        cursor = Some(believed.last().hash);
        from = to + 1;
        range.grow();
    }
    anyhow::ensure!(logs >= TOTAL_LOGS, "the reads saw {logs} logs");
    if tied {
        judged.verify_tied.push(verified);
    } else {
        judged.verify.push(verified);
        judged.bloom.push(bloom);
        judged.bloom_once.push(bloom_once);
    }
    Ok(read)
}

/// The trust rule's own time over each read-alone turn's answers, and the part of it that checks
/// every log against its block's bloom, done two ways.
#[derive(Default)]
struct Judged {
    verify: Vec<Duration>,
    verify_tied: Vec<Duration>,
    bloom: Vec<Duration>,
    bloom_once: Vec<Duration>,
}

/// Every log of `look` checked against its block's bloom: as the core's `bloom_holds` does it
/// (address and topics hashed for every log), and with each distinct one hashed once.
fn bloom_checks(look: &paywatch::chain::completeness::Look) -> (Duration, Duration) {
    use alloy::primitives::{Address, B256, BloomInput, keccak256};
    use paywatch::chain::completeness::bloom_holds;
    let bloom_of = |log: &alloy::rpc::types::Log| look.headers[&log.block_number.unwrap()].bloom;
    let started = Instant::now();
    let held = look.logs.iter().filter(|l| bloom_holds(&bloom_of(l), &l.address(), l.topics())).count();
    let each = started.elapsed();
    let started = Instant::now();
    let (mut addresses, mut topics) = (HashMap::<Address, B256>::new(), HashMap::<B256, B256>::new());
    let held_once = look
        .logs
        .iter()
        .filter(|l| {
            let bloom = bloom_of(l);
            let a = *addresses.entry(l.address()).or_insert_with(|| keccak256(l.address()));
            bloom.contains_input(BloomInput::Hash(a))
                && l.topics().iter().all(|t| {
                    let h = *topics.entry(*t).or_insert_with(|| keccak256(t));
                    bloom.contains_input(BloomInput::Hash(h))
                })
        })
        .count();
    let once = started.elapsed();
    assert_eq!(held, held_once, "both checks agree");
    assert_eq!(held, look.logs.len(), "every log in its block's bloom");
    (each, once)
}

/// How long a catch-up took, and the SQL statements it ran (count, summed time), once it has
/// credited every order of its store.
async fn timed(
    catch_up: impl Future<Output = anyhow::Result<()>>,
    pool: &sqlx::AnyPool,
) -> anyhow::Result<(Duration, (u64, Duration))> {
    SQL.take();
    let started = Instant::now();
    catch_up.await?;
    let took = started.elapsed();
    let statements = SQL.take();
    let paid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'").fetch_one(pool).await?;
    anyhow::ensure!(paid as usize == ORDERS, "catch-up credited {paid} of {ORDERS} orders");
    Ok((took, statements))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(times: &[(Turn, Duration)], rounds: usize, blocks: u64) {
    let of = |turn: Turn| -> Vec<Duration> { times.iter().filter(|(t, _)| *t == turn).map(|(_, d)| *d).collect() };
    // This code's time over the old code's, round by round (the same node state, minutes apart at most).
    let per_round = |turn: Turn| -> Vec<f64> {
        of(turn).iter().zip(of(Turn::Before)).map(|(a, b)| a.as_secs_f64() / b.as_secs_f64()).collect()
    };
    let raw = median(of(Turn::Raw));
    println!(
        "## Catch-up before issue 34 and now, one process, one anvil ({blocks} blocks, {TOTAL_LOGS} Transfer logs, \
         {ORDERS} paying each code's orders; median of {rounds} rounds)\n"
    );
    println!("| | median | ratio to raw fetch | this code / before, per round (min, median, max) |");
    println!("|---|---:|---:|---|");
    for (turn, label) in [
        (Turn::Raw, "raw eth_getLogs (baseline)"),
        (Turn::Before, "before issue 34 (7158f6e, its default: each range tied to two headers)"),
        (Turn::Default, "this code, default rule (every header of each range)"),
        (Turn::OneNode, "this code, endpoint declared one node (the tie)"),
        (Turn::FetchDefault, "this code's reads alone, default rule (logs and every header)"),
        (Turn::FetchOneNode, "this code's reads alone, the tie (logs and two headers a range)"),
    ] {
        let m = median(of(turn));
        let ratios = if matches!(turn, Turn::Default | Turn::OneNode) {
            let mut r = per_round(turn);
            r.sort_by(f64::total_cmp);
            format!("{:.2}x, {:.2}x, {:.2}x", r[0], r[r.len() / 2], r[r.len() - 1])
        } else {
            String::new()
        };
        println!("| {label} | {:.0} ms | {:.2}x | {ratios} |", ms(m), m.as_secs_f64() / raw.as_secs_f64());
    }
}
