//! The scale benchmark (a bench binary, not a test): `make bench-scale`.
//!
//! Two databases on PostgreSQL, measured in one run against the same anvil chain: a small one
//! (100 open orders) and a large one (100,000 open orders and 1,000,000 historical ones,
//! bulk-inserted). For each, the release `paywatch serve` is started with its cursor before a
//! range of 4,000-odd blocks holding 20,000 Transfer logs (100 of them paying orders), and:
//! - catch-up time, restart included (process start to cursor at the range's end; the service
//!   ran before, so its deposit index saved its filter), against the
//!   baseline of a raw `eth_getLogs` fetch of the same range in the watcher's own range sequence
//!   (`AdaptiveRange`, growing from 1,000 to 5,000 blocks);
//! - resident memory of the server process;
//! - block mined → order `paid` in the database, WebSocket wake-ups on;
//! - requests per second of CreateApp, of the order-status GET and of `/healthz` (a load
//!   generator in this binary: keep-alive connections, a fixed number in flight);
//! - the payments export (`/admin/exports/payments.csv`) of every order's deposit (100 rows on
//!   the small one, 1,000,000 on the large): rows per second and the server's resident memory
//!   sampled during the download, against its memory before it (flat means the growth does not
//!   follow the rows);
//! - on the large one, with 10,000 SSE streams open: resident memory, database transactions per
//!   second (`pg_stat_database.xact_commit`) against the same server with no stream open, the
//!   latency from a payment's block to the `paid` event on its stream, and a payment to an
//!   order without a stream credited meanwhile.
//!
//! Prints a Markdown report; docs/BENCHMARKS.md holds the last one.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use anyhow::Context;
use paywatch::chain::contracts::{IERC20, MockUSDT};
use paywatch::chain::range::AdaptiveRange;
use paywatch::chain::{deploy, rpc};
use paywatch::devnet::anvil::{Anvil, AnvilOptions, accounts};
use paywatch::money::{PayMethod, Token};
use paywatch::store::orders::{CryptoTerms, NewOrder, OrderKind};
use paywatch::store::{Store, apps, cursor, orders, teams, unix_now};
use rust_decimal::Decimal;
use serde_json::json;

const NOISE_TXS: usize = 40;
const PER_TX: usize = 500;
const EMPTY_BLOCKS_PER_TX: u64 = 100;
/// Orders paid inside the caught-up range (one log in 200).
const CATCHUP_PAID: usize = NOISE_TXS * PER_TX / 200;
const LATENCY_SAMPLES: usize = 30;
const STREAMS: usize = 10_000;
const STREAM_SAMPLES: usize = 10;
/// Base units every target order owes (1 USDT).
const OWED: u64 = 1_000_000;
const LOAD_SECS: u64 = 4;
const IN_FLIGHT: usize = 32;
const POLL_MS: u64 = 1_000;
const CATCHUP_RUNS: usize = 3;

struct Scale {
    name: &'static str,
    tag: &'static str,
    open: i64,
    history: i64,
    streams: bool,
}

/// Orders the benchmark pays, by kind. Catch-up targets are in both databases (the range pays
/// them); the others are the scale's own (`tag`), so one scale's payments pay nothing in the other.
#[derive(Clone, Copy)]
enum Target {
    CatchUp(usize),
    Latency(&'static str, usize),
    Stream(&'static str, usize),
    Other(&'static str),
}

impl Target {
    fn address(self) -> Address {
        let label = match self {
            Target::CatchUp(i) => format!("catchup-{i}"),
            Target::Latency(tag, i) => format!("{tag}-latency-{i}"),
            Target::Stream(tag, i) => format!("{tag}-stream-{i}"),
            Target::Other(tag) => format!("{tag}-other"),
        };
        Address::from_word(keccak256(label))
    }

    fn all(tag: &'static str) -> Vec<Target> {
        let mut all: Vec<Target> = (0..CATCHUP_PAID).map(Target::CatchUp).collect();
        all.extend((0..LATENCY_SAMPLES).map(|i| Target::Latency(tag, i)));
        all.extend((0..STREAM_SAMPLES).map(|i| Target::Stream(tag, i)));
        all.push(Target::Other(tag));
        all
    }
}

struct Chain {
    anvil: Anvil,
    deployment: deploy::Deployment,
    payer: DynProvider,
    usdt: Address,
    first_block: u64,
    last_block: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let chain = chain().await?;
    let admin_url = std::env::var("PAYWATCH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string());
    let scales = [
        Scale { name: "100 open orders", tag: "small", open: 100, history: 0, streams: false },
        Scale {
            name: "100,000 open + 1,000,000 historical orders",
            tag: "large",
            open: 100_000,
            history: 1_000_000,
            streams: true,
        },
    ];
    let mut reports = Vec::new();
    for scale in &scales {
        eprintln!("== {}", scale.name);
        reports.push(measure(&chain, &admin_url, scale).await?);
    }
    print_report(&chain, &scales, &reports);
    chain.anvil.stop().await?;
    Ok(())
}

/// The chain both scales catch up over: 40 transactions of 500 USDT transfers, one in 200
/// paying a catch-up target, with 100 empty blocks after each.
async fn chain() -> anyhow::Result<Chain> {
    let anvil = Anvil::spawn(AnvilOptions::default()).await?;
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let treasury = accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address();
    let deployment = deploy::deploy_all(&deployer, treasury, true).await?;
    let usdt = deployment.tokens[&Token::UsdtErc20];
    let payer = rpc::signing_provider(&anvil.rpc_url(), accounts::PAYER_KEY.parse()?)?;
    let payer_address = accounts::PAYER_KEY.parse::<PrivateKeySigner>()?.address();
    deploy::mint_mock(&deployer, Token::UsdtErc20, usdt, payer_address, U256::from(10u64).pow(U256::from(30))).await?;
    eprintln!("generating {} transfers…", NOISE_TXS * PER_TX);
    let first_block = deployer.get_block_number().await? + 1;
    let token = MockUSDT::new(usdt, payer.clone());
    let mut paid = 0;
    for tx in 0..NOISE_TXS {
        let mut to = Vec::with_capacity(PER_TX);
        let mut values = Vec::with_capacity(PER_TX);
        for i in 0..PER_TX {
            if i % 200 == 0 {
                to.push(Target::CatchUp(paid).address());
                values.push(U256::from(OWED));
                paid += 1;
            } else {
                to.push(Address::from_word(keccak256(format!("noise-{tx}-{i}"))));
                values.push(U256::from(1u8));
            }
        }
        token.multiTransfer(to, values).gas(25_000_000).send().await?.get_receipt().await?;
        deployer.anvil_mine(Some(EMPTY_BLOCKS_PER_TX), None).await?;
    }
    let last_block = deployer.get_block_number().await?;
    let chain = Chain { anvil, deployment, payer, usdt, first_block, last_block };
    // One fetch of the range before anything is measured: the node's caches are warm for all.
    raw_fetch(&chain.payer, &chain).await?;
    Ok(chain)
}

#[derive(Default)]
struct Report {
    catch_up: Duration,
    /// Of the catch-up: from the process's start to its API listening.
    startup: Duration,
    raw_fetch: Duration,
    rss_mb: f64,
    paid_p50: Duration,
    paid_p99: Duration,
    create_rps: f64,
    status_rps: f64,
    healthz_rps: f64,
    console: ConsoleTimes,
    export: ExportRun,
    streams: Option<StreamReport>,
}

/// One download of the payments export.
#[derive(Default)]
struct ExportRun {
    rows: usize,
    time: Duration,
    rss_before_mb: f64,
    rss_peak_mb: f64,
}

/// The console's orders page, signed in: (median, slowest) of `CONSOLE_SAMPLES` requests each.
#[derive(Default)]
struct ConsoleTimes {
    first_page: (Duration, Duration),
    deep_page: (Duration, Duration),
    by_status: (Duration, Duration),
    deep_by_status: (Duration, Duration),
    by_tx_hash: (Duration, Duration),
}

const CONSOLE_SAMPLES: usize = 20;

/// Where the server listens and the team's key.
struct Api {
    base: String,
    team_id: String,
    key: String,
}

struct StreamReport {
    rss_mb: f64,
    tps_without: f64,
    tps_with: f64,
    event_p50: Duration,
    event_max: Duration,
    other_paid: Duration,
}

async fn measure(chain: &Chain, admin_url: &str, scale: &Scale) -> anyhow::Result<Report> {
    let db_name = format!("paywatch_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Store::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}"))).execute(admin.pool()).await?;
    let db_url = format!("{}/{db_name}", admin_url.rsplit_once('/').context("a database URL")?.0);
    let result = measure_on(chain, &db_url, &db_name, scale).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")))
        .execute(admin.pool())
        .await;
    admin.close().await;
    result
}

async fn measure_on(chain: &Chain, db_url: &str, db_name: &str, scale: &Scale) -> anyhow::Result<Report> {
    let store = Store::connect(db_url).await?;
    store.migrate().await?;
    let (team_id, key) = seed(&store, chain, scale).await?;
    let dir = tempfile::tempdir()?;
    let config = config_file(chain, dir.path(), db_url)?;
    let mut report = Report::default();

    // Catch-up, restart included: the process starts with its cursor before the range. Each
    // run is beside a raw fetch of the range, so both meet the node in the same state.
    let (mut catch_ups, mut startups, mut raws) = (Vec::new(), Vec::new(), Vec::new());
    let mut running: Option<Server> = None;
    for run in 0..CATCHUP_RUNS {
        if let Some(previous) = running.take() {
            previous.stop().await?;
            rewind(&store, chain).await?;
        }
        raws.push(raw_fetch(&chain.payer, chain).await?);
        let (server, startup, catch_up) = catch_up(chain, &store, &config).await?;
        eprintln!("catch-up run {run}: {catch_up:?} (start-up {startup:?}), raw fetch {:?}", raws[run]);
        catch_ups.push(catch_up);
        startups.push(startup);
        running = Some(server);
    }
    let mut server = running.context("a catch-up ran")?;
    report.catch_up = median(catch_ups);
    report.startup = median(startups);
    report.raw_fetch = median(raws);
    let base = server.wait_base().await?;
    report.rss_mb = server.rss_mb()?;

    // Block mined → paid in the database.
    let mut samples = Vec::new();
    for i in 0..LATENCY_SAMPLES {
        // Spread over the polling cycle, as real payments are.
        tokio::time::sleep(Duration::from_millis(50 + (i as u64 * 389) % POLL_MS)).await;
        samples.push(pay_until_paid(chain, &store, Target::Latency(scale.tag, i)).await?);
    }
    samples.sort();
    report.paid_p50 = samples[samples.len() / 2];
    report.paid_p99 = samples[(samples.len() * 99).div_ceil(100) - 1];

    // Requests per second.
    let http = reqwest::Client::builder().pool_max_idle_per_host(IN_FLIGHT).build()?;
    let status_order = order_at(&store, Target::CatchUp(0)).await?;
    let status_url = format!("{base}/v2alpha/teams/{team_id}/orders/{status_order}");
    report.healthz_rps = load(&http, || http.get(format!("{base}/healthz"))).await?;
    report.status_rps = load(&http, || http.get(&status_url).bearer_auth(&key)).await?;
    let body = create_app_body();
    report.create_rps =
        load(&http, || http.post(format!("{base}/v2alpha/app/v2/app")).bearer_auth(&key).json(&body)).await?;

    report.console = console_times(&http, &base, &store).await?;
    report.export = export_run(&http, &base, &store, &server, scale).await?;

    if scale.streams {
        let api = Api { base, team_id, key };
        report.streams = Some(streams(chain, &store, db_name, &server, &api, scale.tag).await?);
    }
    server.stop().await?;
    store.close().await;
    Ok(report)
}

/// Every historical order (the open ones on the small database) gets a deposit row, then the
/// whole payments export is downloaded while the server's memory is sampled every 20 ms.
async fn export_run(
    http: &reqwest::Client,
    base: &str,
    store: &Store,
    server: &Server,
    scale: &Scale,
) -> anyhow::Result<ExportRun> {
    let which = if scale.history > 0 { "expired" } else { "awaiting_payment" };
    eprintln!("writing deposits for the export…");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO deposits (deposit_id, team_id, app_id, order_id, pay_method, usd, amount, expected_amount, address, \
         transaction_hash, deposit_time, created_at) SELECT md5('deposit' || order_id), team_id, app_id, order_id, \
         pay_method, usd, amount, amount, deposit_address, '0x' || md5(order_id) || md5('tx' || order_id), created_at, \
         created_at FROM orders WHERE status = '{which}'"
    )))
    .execute(store.pool())
    .await?;
    sqlx::query("ANALYZE deposits").execute(store.pool()).await?;
    let pid = server.child.id().context("pid")?;
    let rss_before_mb = rss_of(pid)?;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_of(pid).unwrap_or(0.0));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let mut answer = http
        .get(format!("{base}/admin/exports/payments.csv"))
        .bearer_auth("bench-admin-token-0123456789")
        .send()
        .await?;
    anyhow::ensure!(answer.status() == 200, "export: {}", answer.status());
    let mut lines = 0;
    while let Some(chunk) = answer.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let time = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let rss_peak_mb = sampler.await?.max(rss_before_mb);
    let rows = lines.saturating_sub(1);
    let expected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deposits").fetch_one(store.pool()).await?;
    anyhow::ensure!(rows as i64 == expected, "the export held {rows} of {expected} payments");
    eprintln!("export: {rows} rows in {time:?}, RSS {rss_before_mb:.1} → peak {rss_peak_mb:.1} MB");
    Ok(ExportRun { rows, time, rss_before_mb, rss_peak_mb })
}

/// Signs in to the console as a browser would (sign-in nonce cookie, then the session cookie).
async fn console_session(base: &str) -> anyhow::Result<String> {
    // The sign-in answers see-other with the cookie: not followed, so the cookie is read here.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let cookie = |r: &reqwest::Response, name: &str| -> anyhow::Result<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_string())
            })
            .with_context(|| format!("no {name} cookie"))
    };
    let form = http.get(format!("{base}/console/sign-in")).send().await?;
    let nonce = cookie(&form, "paywatch_sign_in")?;
    let signed = http
        .post(format!("{base}/console/sign-in"))
        .header("cookie", format!("paywatch_sign_in={nonce}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token=bench-admin-token-0123456789&nonce={nonce}&next=%2Fconsole"))
        .send()
        .await?;
    anyhow::ensure!(signed.status() == 303, "console sign-in: {}", signed.status());
    Ok(format!("paywatch_console={}", cookie(&signed, "paywatch_console")?))
}

async fn console_times(http: &reqwest::Client, base: &str, store: &Store) -> anyhow::Result<ConsoleTimes> {
    let session = console_session(base).await?;
    let pool = store.pool();
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(pool).await?;
    // A page half-way down the table (the mark is found by OFFSET here, once, unmeasured).
    let (at, id): (i64, String) = sqlx::query_as(
        "SELECT created_at, order_id FROM orders ORDER BY created_at DESC, order_id DESC OFFSET $1 LIMIT 1",
    )
    .bind(total / 2)
    .fetch_one(pool)
    .await?;
    // The same within the status filter that holds most orders (expired history; awaiting on
    // the small database).
    let (status, in_status): (String, i64) =
        sqlx::query_as("SELECT status, COUNT(*) FROM orders GROUP BY status ORDER BY COUNT(*) DESC LIMIT 1")
            .fetch_one(pool)
            .await?;
    let (status_at, status_id): (i64, String) = sqlx::query_as(
        "SELECT created_at, order_id FROM orders WHERE status = $1 \
         ORDER BY created_at DESC, order_id DESC OFFSET $2 LIMIT 1",
    )
    .bind(&status)
    .bind(in_status / 2)
    .fetch_one(pool)
    .await?;
    let tx: String = sqlx::query_scalar("SELECT tx_hash FROM chain_transfers ORDER BY block_number DESC LIMIT 1")
        .fetch_one(pool)
        .await?;
    let time = |path: String| {
        let (http, session) = (http.clone(), session.clone());
        async move {
            let mut samples = Vec::with_capacity(CONSOLE_SAMPLES);
            for _ in 0..CONSOLE_SAMPLES {
                let started = Instant::now();
                let r = http.get(format!("{base}{path}")).header("cookie", &session).send().await?;
                let status = r.status();
                let html = r.text().await?;
                samples.push(started.elapsed());
                anyhow::ensure!(status == 200 && html.contains("id=\"orders\""), "{path}: {status}, no orders table");
            }
            samples.sort();
            Ok::<_, anyhow::Error>((samples[samples.len() / 2], samples[samples.len() - 1]))
        }
    };
    Ok(ConsoleTimes {
        first_page: time("/console/orders".into()).await?,
        deep_page: time(format!("/console/orders?after={at}.{id}")).await?,
        by_status: time("/console/orders?status=awaiting_payment".into()).await?,
        deep_by_status: time(format!("/console/orders?status={status}&after={status_at}.{status_id}")).await?,
        by_tx_hash: time(format!("/console/orders?q={tx}")).await?,
    })
}

/// One team with a key; history and open orders bulk-inserted (each with its recorded view, as
/// the recorder left them); the target orders, each with an app of its own; the cursor placed
/// before the range.
async fn seed(store: &Store, chain: &Chain, scale: &Scale) -> anyhow::Result<(String, String)> {
    let (team, key) = teams::create_with_key(store, "bench").await?;
    let now = unix_now();
    let pool = store.pool();
    let spec = apps::AppSpec {
        name: "bench".into(),
        cluster_id: "c".into(),
        chart_name: "boinc".into(),
        cpu_limit: 1000,
        mem_limit: 1024,
        storage_limit: 1024,
        ..Default::default()
    };
    let bulk_app = apps::insert_app(pool, &team.team_id, &spec, PayMethod::UsdtErc20).await?;
    eprintln!("writing {} historical and {} open orders…", scale.history, scale.open);
    let usdt = format!("{:#x}", chain.usdt);
    let bulk = |status: &'static str, from: i64, to: i64, expires_at: i64| {
        let sql = format!(
            "INSERT INTO orders (order_id, team_id, app_id, kind, pay_method, period_months, usd, amount, amount_base, \
             token_price_usd, token_address, chain_id, salt, deposit_address, status, expires_at, created_at, updated_at) \
             SELECT md5('order' || i)::uuid::text, '{team}', '{app}', 'create', 'USDT_ERC20', 1, '20', '20', '20000000', \
             '1', '{usdt}', 31337, '0x' || md5('salt' || i) || md5('salt2' || i), \
             '0x' || substr(md5('addr' || i) || md5('addr2' || i), 1, 40), '{status}', {expires_at}, {expires_at} - 3600, \
             {expires_at} - 3600 FROM generate_series({from}, {to}) AS i",
            team = team.team_id,
            app = bulk_app.app_id,
        );
        async move { sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await }
    };
    if scale.history > 0 {
        bulk("expired", 1, scale.history, now - 90 * 86_400).await?;
    }
    bulk("awaiting_payment", scale.history + 1, scale.history + scale.open, now + 3 * 3_600).await?;
    for sql in [
        "INSERT INTO order_events (order_id, event, data, created_at) SELECT order_id, \
         CASE status WHEN 'expired' THEN 'expired' ELSE 'awaiting_payment' END, '{}', created_at FROM orders",
        "DELETE FROM order_changes",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    let mut tx = store.begin().await?;
    for target in Target::all(scale.tag) {
        let app = apps::insert_app(&mut *tx, &team.team_id, &spec, PayMethod::UsdtErc20).await?;
        let new = NewOrder {
            team_id: team.team_id.clone(),
            app_id: Some(app.app_id),
            kind: OrderKind::Create,
            pay_method: PayMethod::UsdtErc20,
            period_months: 1,
            usd: Decimal::ONE,
            amount: Decimal::ONE,
            crypto: Some(CryptoTerms {
                amount_base: U256::from(OWED),
                token_price_usd: Decimal::ONE,
                token_address: chain.usdt,
                chain_id: 31337,
                salt: B256::from(keccak256(target.address())),
                deposit_address: target.address(),
            }),
            card_id: None,
            expires_at: now + 3 * 3_600,
        };
        orders::insert_order(&mut *tx, &orders::new_order_id(), &new).await?;
    }
    tx.commit().await?;
    eprintln!("vacuum and analyze…");
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    // The service ran before this restart: its deposit index saved its filter then.
    paywatch::chain::deposit_index::DepositIndex::new(24 * 3600).refresh(store, now).await?;
    place_cursor(store, chain).await?;
    Ok((team.team_id, key.api_key))
}

fn config_file(chain: &Chain, dir: &std::path::Path, db_url: &str) -> anyhow::Result<std::path::PathBuf> {
    let text = paywatch::devnet::config_template::render(&paywatch::devnet::config_template::LocalConfig {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.into(),
        chain_id: chain.anvil.chain_id(),
        rpc_http: chain.anvil.rpc_url(),
        rpc_ws: Some(chain.anvil.ws_url()),
        confirmations: 1,
        poll_interval_ms: POLL_MS,
        deployment: &chain.deployment,
        // The treasury the factory was deployed for (serve refuses any other).
        treasury: accounts::TREASURY_KEY.parse::<PrivateKeySigner>()?.address(),
        chainlink_max_age: None,
        admin_token: "bench-admin-token-0123456789".into(),
        signer_key: None,
        more_chains: Vec::new(),
        extra: String::new(),
    })
    .replace("heartbeat_secs = 5", "heartbeat_secs = 15\nmax_streams = 20000\nmax_streams_per_client = 20000");
    let path = dir.join("paywatch.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// A process's resident memory in MB.
fn rss_of(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .context("VmRSS")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// `paywatch serve` (the release binary built with this bench), its address read from its log.
struct Server {
    child: tokio::process::Child,
    log: std::path::PathBuf,
}

impl Server {
    fn start(config: &std::path::Path) -> anyhow::Result<Self> {
        let log = config.with_file_name("serve.log");
        let out = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_paywatch"))
            .args(["serve", "--config", config.to_str().context("path")?])
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()?;
        Ok(Self { child, log })
    }

    fn listening(&self) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|log| strip_ansi(&log).contains("serving"))
    }

    fn alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            anyhow::bail!("paywatch serve exited ({status}):\n{log}");
        }
        Ok(())
    }

    /// The listening address, from the "serving" log line.
    async fn wait_base(&mut self) -> anyhow::Result<String> {
        for _ in 0..1000 {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let stripped = strip_ansi(&log);
            if let Some(line) = stripped.lines().find(|l| l.contains("serving")) {
                let addr = line.split("addr=").nth(1).and_then(|s| s.split_whitespace().next()).context("addr")?;
                return Ok(format!("http://{addr}"));
            }
            self.alive()?;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::bail!("paywatch serve never said where it listens")
    }

    fn rss_mb(&self) -> anyhow::Result<f64> {
        rss_of(self.child.id().context("pid")?)
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the graceful path.
            std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        Ok(())
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts the server and waits until its cursor is at the range's end: (server, start-up time
/// until the API listens, catch-up time), both from the process's start.
async fn catch_up(
    chain: &Chain,
    store: &Store,
    config: &std::path::Path,
) -> anyhow::Result<(Server, Duration, Duration)> {
    let started = Instant::now();
    let mut server = Server::start(config)?;
    let mut startup = None;
    loop {
        if startup.is_none() && server.listening() {
            startup = Some(started.elapsed());
        }
        let at = cursor::get(store.pool(), 31337).await?.map_or(0, |c| c.block_number);
        if at >= chain.last_block {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "catch-up did not finish");
        server.alive()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let caught_up = started.elapsed();
    let mut paid = 0;
    for i in 0..CATCHUP_PAID {
        let order = orders::find_by_deposit_address(store.pool(), &Target::CatchUp(i).address()).await?;
        paid += order.is_some_and(|o| o.progress.status == orders::OrderStatus::Paid) as usize;
    }
    anyhow::ensure!(paid == CATCHUP_PAID, "catch-up credited {paid} of {CATCHUP_PAID} orders");
    Ok((server, startup.unwrap_or(caught_up), caught_up))
}

/// Forgets what the last catch-up did (its transfers, credits, apps' activation, cursor), so
/// the next one does the same work.
async fn rewind(store: &Store, chain: &Chain) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    for sql in [
        "DELETE FROM deposits",
        "DELETE FROM stray_funds",
        "DELETE FROM chain_transfers",
        "DELETE FROM webhook_attempts",
        "DELETE FROM webhook_outbox",
        "DELETE FROM chain_blocks",
        "UPDATE orders SET status = 'awaiting_payment', seen_base = '0', confirmed_base = '0', overpaid_base = '0', \
         paid_at = NULL WHERE status = 'paid'",
        "UPDATE apps SET status = 'pending_payment', start_time = NULL, end_time = NULL WHERE status <> 'pending_payment'",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    place_cursor(store, chain).await
}

async fn place_cursor(store: &Store, chain: &Chain) -> anyhow::Result<()> {
    let before = chain.payer.get_block_by_number((chain.first_block - 1).into()).await?.context("block")?;
    let at = cursor::Cursor {
        block_number: chain.first_block - 1,
        block_hash: before.header.hash,
        block_time: before.header.timestamp as i64,
    };
    cursor::set(store.pool(), 31337, at).await?;
    Ok(())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The baseline: the same filter over the same range, in the watcher's range sequence
/// (`AdaptiveRange` from 1,000 growing to 5,000 blocks), logs counted and dropped.
async fn raw_fetch(p: &DynProvider, chain: &Chain) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut range = AdaptiveRange::new(1_000, 5_000);
    let (mut from, mut n) = (chain.first_block, 0);
    while from <= chain.last_block {
        let to = chain.last_block.min(from + range.get() - 1);
        let filter = Filter::new()
            .address(vec![chain.deployment.tokens[&Token::AnkrErc20], chain.usdt])
            .event_signature(IERC20::Transfer::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        n += p.get_logs(&filter).await?.len();
        range.grow();
        from = to + 1;
    }
    anyhow::ensure!(n >= NOISE_TXS * PER_TX, "raw fetch saw {n} logs");
    Ok(started.elapsed())
}

async fn order_at(store: &Store, target: Target) -> anyhow::Result<String> {
    Ok(orders::find_by_deposit_address(store.pool(), &target.address()).await?.context("target order")?.order_id)
}

/// Pays `target` in full and waits for the database to say paid; mined → paid.
async fn pay_until_paid(chain: &Chain, store: &Store, target: Target) -> anyhow::Result<Duration> {
    let order_id = order_at(store, target).await?;
    let mined = pay(chain, target).await?;
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE order_id = $1")
            .bind(&order_id)
            .fetch_one(store.pool())
            .await?;
        if status == "paid" {
            return Ok(mined.elapsed());
        }
        anyhow::ensure!(mined.elapsed() < Duration::from_secs(30), "order {order_id} never paid");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sends the payment; anvil automines, so the block exists once the node accepted it.
async fn pay(chain: &Chain, target: Target) -> anyhow::Result<Instant> {
    let token = MockUSDT::new(chain.usdt, chain.payer.clone());
    let _pending = token.transfer(target.address(), U256::from(OWED)).send().await?;
    Ok(Instant::now())
}

/// Requests per second answered 2xx with `IN_FLIGHT` requests in flight for `LOAD_SECS`;
/// any other answer fails the benchmark.
async fn load<F>(http: &reqwest::Client, request: F) -> anyhow::Result<f64>
where
    F: Fn() -> reqwest::RequestBuilder,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(LOAD_SECS);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let done = done.clone();
        let make = request().build()?;
        let client = http.clone();
        workers.spawn(async move {
            while Instant::now() < until {
                let req = make.try_clone().context("a request with a body that clones")?;
                let response = client.execute(req).await?;
                let status = response.status();
                let body = response.bytes().await?;
                anyhow::ensure!(status.is_success(), "{status}: {}", String::from_utf8_lossy(&body));
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = workers.join_next().await {
        joined??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn create_app_body() -> serde_json::Value {
    json!({
        "pre_pay_info": {"pay_method": "USDT_ERC20", "period": 1},
        "name": "bench-app",
        "cluster_id": "cls-a91a7dbc-1a23-42f6-a66f-876094349f03",
        "cpu_limit": 1000,
        "mem_limit": 2000,
        "storage_limit": 20000,
        "chart_name": "boinc"
    })
}

/// Database transactions committed per second over `secs`, as PostgreSQL counts them.
async fn tps(store: &Store, db_name: &str, secs: u64) -> anyhow::Result<f64> {
    let count = || async {
        sqlx::query("SELECT pg_stat_force_next_flush()").execute(store.pool()).await?;
        let n: i64 = sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(db_name)
            .fetch_one(store.pool())
            .await?;
        anyhow::Ok(n)
    };
    // An idle backend flushes its counts within 10 s: a quiet spell first, so a burst before
    // (a load test, streams opening) is not counted in the window.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let before = count().await?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = count().await?;
    // The counting queries (two per count) are the benchmark's own.
    Ok((after - before - 2) as f64 / secs as f64)
}

async fn streams(
    chain: &Chain,
    store: &Store,
    db_name: &str,
    server: &Server,
    api: &Api,
    tag: &'static str,
) -> anyhow::Result<StreamReport> {
    let Api { base, team_id, key } = api;
    // The recorder first records the orders the CreateApp load made: the baseline is idle.
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_changes").fetch_one(store.pool()).await?;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tps_without = tps(store, db_name, 10).await?;
    eprintln!("opening {STREAMS} event streams…");
    let mut ids: Vec<String> =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE status = 'awaiting_payment' ORDER BY seq DESC LIMIT $1")
            .bind((STREAMS + STREAM_SAMPLES + 1) as i64)
            .fetch_all(store.pool())
            .await?;
    let mut sampled = Vec::new();
    for i in 0..STREAM_SAMPLES {
        sampled.push(order_at(store, Target::Stream(tag, i)).await?);
    }
    let other = order_at(store, Target::Other(tag)).await?;
    ids.retain(|id| !sampled.contains(id) && *id != other);
    ids.truncate(STREAMS - STREAM_SAMPLES);
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let open = |order_id: String| {
        let request = http.get(format!("{base}/v2alpha/teams/{team_id}/orders/{order_id}/events")).bearer_auth(key);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(response.status() == 200, "stream of {order_id}: {}", response.status());
            anyhow::Ok(response)
        }
    };
    let mut held = Vec::with_capacity(STREAMS);
    for chunk in ids.chunks(250) {
        let opened = futures_util::future::try_join_all(chunk.iter().cloned().map(&open)).await?;
        held.extend(opened);
    }
    let mut watched = Vec::new();
    for id in &sampled {
        watched.push(open(id.clone()).await?);
    }
    eprintln!("{} streams open", held.len() + watched.len());
    let rss_mb = server.rss_mb()?;
    let tps_with = tps(store, db_name, 10).await?;

    let mut samples = Vec::new();
    for (i, stream) in watched.iter_mut().enumerate() {
        tokio::time::sleep(Duration::from_millis(50 + (i as u64 * 389) % POLL_MS)).await;
        let mined = pay(chain, Target::Stream(tag, i)).await?;
        let mut seen = String::new();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(30), stream.chunk())
                .await
                .context("no paid event within 30 s")??
                .context("the stream ended before its paid event")?;
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: paid") {
                samples.push(mined.elapsed());
                break;
            }
        }
    }
    let other_paid = pay_until_paid(chain, store, Target::Other(tag)).await?;
    samples.sort();
    anyhow::ensure!(held.len() + watched.len() == STREAMS, "{} streams", held.len() + watched.len());
    drop(held);
    Ok(StreamReport {
        rss_mb,
        tps_without,
        tps_with,
        event_p50: samples[samples.len() / 2],
        event_max: *samples.last().context("samples")?,
        other_paid,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn print_report(chain: &Chain, scales: &[Scale], reports: &[Report]) {
    let blocks = chain.last_block - chain.first_block + 1;
    println!(
        "## Scale ({blocks} blocks, {} Transfer logs, {CATCHUP_PAID} paying orders; PostgreSQL; one run, \
         catch-up and raw fetch the median of {CATCHUP_RUNS})\n",
        NOISE_TXS * PER_TX
    );
    println!(
        "| | catch-up (restart included) | of which start-up | raw fetch, same ranges | ratio | RSS after catch-up | \
         mined → paid p50 / p99 (WebSocket) | CreateApp rps | order status rps | /healthz rps | status / healthz |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (scale, r) in scales.iter().zip(reports) {
        println!(
            "| {} | {:.0} ms | {:.0} ms | {:.0} ms | **{:.2}x** | **{:.1} MB** | {:.0} / {:.0} ms | {:.0} | {:.0} | {:.0} | **{:.2}** |",
            scale.name,
            ms(r.catch_up),
            ms(r.startup),
            ms(r.raw_fetch),
            r.catch_up.as_secs_f64() / r.raw_fetch.as_secs_f64(),
            r.rss_mb,
            ms(r.paid_p50),
            ms(r.paid_p99),
            r.create_rps,
            r.status_rps,
            r.healthz_rps,
            r.status_rps / r.healthz_rps,
        );
    }
    if let [small, large] = reports {
        let ratio = |r: &Report| r.catch_up.as_secs_f64() / r.raw_fetch.as_secs_f64();
        println!("\nLarge / small catch-up ratio: **{:.2}x** (flat means ≤ 1.1x).", ratio(large) / ratio(small));
    }
    println!(
        "\n### The console's orders page (signed in; median / slowest of {CONSOLE_SAMPLES} requests; target: under 200 ms at 1,000,000 orders)\n"
    );
    println!(
        "| | first page | a page half-way down (keyset) | status filter | half-way down a status | search by tx hash |\n|---|---|---|---|---|---|"
    );
    for (scale, r) in scales.iter().zip(reports) {
        let c = &r.console;
        let cell = |t: (Duration, Duration)| format!("{:.1} / {:.1} ms", ms(t.0), ms(t.1));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            scale.name,
            cell(c.first_page),
            cell(c.deep_page),
            cell(c.by_status),
            cell(c.deep_by_status),
            cell(c.by_tx_hash)
        );
    }
    if let [small, large] = reports {
        let ratio = |f: fn(&ConsoleTimes) -> Duration| ms(f(&large.console)) / ms(f(&small.console)).max(0.001);
        println!(
            "\nLarge / small (medians): first page **{:.2}x**, half-way page **{:.2}x**, status filter **{:.2}x**, half-way down a status **{:.2}x**, tx hash **{:.2}x**.",
            ratio(|c| c.first_page.0),
            ratio(|c| c.deep_page.0),
            ratio(|c| c.by_status.0),
            ratio(|c| c.deep_by_status.0),
            ratio(|c| c.by_tx_hash.0)
        );
    }
    println!("\n### The payments export (`/admin/exports/payments.csv`, one download of every row)\n");
    println!(
        "| | rows | time | rows/s | server RSS before | peak RSS during | growth |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for (scale, r) in scales.iter().zip(reports) {
        let e = &r.export;
        println!(
            "| {} | {} | {:.2} s | {:.0} | {:.1} MB | {:.1} MB | {:.1} MB |",
            scale.name,
            e.rows,
            e.time.as_secs_f64(),
            e.rows as f64 / e.time.as_secs_f64().max(0.001),
            e.rss_before_mb,
            e.rss_peak_mb,
            e.rss_peak_mb - e.rss_before_mb
        );
    }
    if let [small, large] = reports {
        let peak = |r: &Report| r.export.rss_peak_mb / r.export.rss_before_mb.max(0.1);
        println!(
            "\nPeak RSS during / before the download: **{:.2}x** at {} rows, {:.2}x at {} rows (flat: the memory does not follow the rows).",
            peak(large),
            large.export.rows,
            peak(small),
            small.export.rows
        );
    }
    for r in reports {
        if let Some(s) = &r.streams {
            println!("\n### {STREAMS} open SSE streams (the large database)\n");
            println!("| | figure |\n|---|---|");
            println!("| server RSS with the streams open | **{:.1} MB** |", s.rss_mb);
            println!("| database transactions/s, no stream open (baseline) | {:.1} |", s.tps_without);
            println!("| database transactions/s, {STREAMS} streams open | {:.1} |", s.tps_with);
            println!("| ratio with / without | **{:.2}x** |", s.tps_with / s.tps_without.max(0.1));
            println!(
                "| block mined → `paid` event on its stream, p50 / max of {STREAM_SAMPLES} | **{:.0} ms** / {:.0} ms |",
                ms(s.event_p50),
                ms(s.event_max)
            );
            println!("| a payment to an order without a stream, mined → paid | {:.0} ms |", ms(s.other_paid));
        }
    }
}
