//! The deterministic simulator of the watcher (issue 34). The real `Watcher` step, the real
//! store on in-memory SQLite and the real money rules run against a simulated chain and
//! simulated providers (`node`), all driven from one seed, with no socket and no sleep. After
//! every step it checks the promise:
//!
//! 1. every transfer stored was served on some chain, in the block and place it names;
//! 2. nothing off the canonical chain is confirmed (reorgs here stay shallower than the
//!    confirmations), and nothing is confirmed above the cursor;
//! 3. the cursor never passes a block whose answer was not proven: on the canonical chain,
//!    every transfer into a deposit address at or below it is stored, at its canonical block;
//!
//! and at the end of a seed, with the faults healed and the watcher caught up: every transfer
//! into a deposit address on the canonical chain at the required depth is confirmed exactly
//! once, and an order is paid exactly when its confirmed money covers it, with one deposit.
//!
//! A quarter of the seeds declare their endpoint to keep a batch on one node (`rpc_batches =
//! "one_node"`, see `tied`): the watcher believes a range on two end headers there, and the
//! same promise must hold.
//!
//! `SIM_SEEDS=N` runs seeds 0..N (default 30, the short pass of `make test`), `SIM_SEED=S`
//! replays one; a failure prints the seed, the step and the trace shrunk to what still fails.

mod chain;
mod node;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::client::RpcClient;
use chain::{APPROVAL, Chain, SimLog, Tx};
use node::{Backend, Faults, SimTransport};
use paywatch::chain::status::ChainStatus;
use paywatch::config::Config;
use paywatch::money::Token;
use paywatch::store::{Store, cursor};
use paywatch::watcher::Watcher;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CHAIN_ID: u64 = 31337;
const CONFIRMATIONS: u64 = 6;
const MAX_REORG: u64 = CONFIRMATIONS - 1;
const STEPS: usize = 120;
const ORDERS: usize = 6;
const GENESIS_TIME: i64 = 1_900_000_000;
/// Blocks below the watcher's first cursor.
const PRELUDE: u64 = 10;

/// One thing that happens to the world before a watcher step.
#[derive(Debug, Clone)]
enum Action {
    /// A block with these payments (order index, or None for an address nobody watches; half
    /// or whole of what the order owes) and maybe a bloom false positive.
    Mine { pays: Vec<(Option<usize>, bool)>, noise: bool },
    /// The newest `depth` blocks replaced by `blocks` new ones; each dropped transaction mined
    /// again (in a random new block, so at another height or log index) unless `drop`ped.
    Reorg { depth: u64, blocks: u64, again: u64 },
    /// Providers misbehave this way from now on.
    Faults(Faults),
    /// Seconds per block from now on.
    Pace(i64),
    /// Nothing happens (the watcher steps again).
    Idle,
}

/// Parts of the workload that can be left out (`SIM_WITHOUT=noise,reorgs,split`), to point a
/// run at one defect: bloom false positives, reorgs, calls of one batch routed apart.
#[derive(Debug, Clone, Copy, Default)]
struct Without {
    noise: bool,
    reorgs: bool,
    split: bool,
}

impl Without {
    fn from_env() -> Self {
        let text = std::env::var("SIM_WITHOUT").unwrap_or_default();
        let parts: Vec<&str> = text.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
        for p in &parts {
            assert!(["noise", "reorgs", "split"].contains(p), "SIM_WITHOUT: unknown part {p:?}");
        }
        Self { noise: parts.contains(&"noise"), reorgs: parts.contains(&"reorgs"), split: parts.contains(&"split") }
    }
}

/// Whether a seed's endpoint is declared to keep a batch on one node (`rpc_batches =
/// "one_node"`): a quarter of the seeds. There the providers keep that promise (a batch is
/// never split; single calls still reach any backend), and the cheaper tie must hold.
fn tied(seed: u64) -> bool {
    seed % 4 == 3
}

fn plan(seed: u64, without: Without) -> Vec<Action> {
    let mut rng = StdRng::seed_from_u64(seed);
    let unsplit = without.split || tied(seed);
    (0..STEPS)
        .map(|_| match random_action(&mut rng) {
            Action::Mine { pays, .. } if without.noise => Action::Mine { pays, noise: false },
            Action::Reorg { .. } if without.reorgs => Action::Idle,
            Action::Faults(f) if unsplit => Action::Faults(Faults { per_call: false, ..f }),
            other => other,
        })
        .collect()
}

fn random_action(rng: &mut StdRng) -> Action {
    match rng.random_range(0..100) {
        0..45 => {
            let pays = (0..rng.random_range(0..3))
                .map(|_| (rng.random_bool(0.85).then(|| rng.random_range(0..ORDERS)), rng.random_bool(0.3)))
                .collect();
            Action::Mine { pays, noise: rng.random_bool(0.2) }
        }
        45..60 => {
            let depth = rng.random_range(1..=MAX_REORG);
            Action::Reorg { depth, blocks: rng.random_range(depth.saturating_sub(2)..=depth + 2), again: rng.random() }
        }
        60..75 => Action::Faults(random_faults(rng)),
        75..80 => Action::Pace(rng.random_range(1..=12)),
        _ => Action::Idle,
    }
}

fn random_faults(rng: &mut StdRng) -> Faults {
    if rng.random_bool(0.3) {
        return Faults::honest();
    }
    let backends = (0..rng.random_range(1..=3))
        .map(|_| Backend {
            age: if rng.random_bool(0.3) { rng.random_range(0..4) } else { 0 },
            lag: if rng.random_bool(0.5) { rng.random_range(0..6) } else { 0 },
        })
        .collect();
    Faults {
        backends,
        per_call: rng.random_bool(0.5),
        call_errors: if rng.random_bool(0.3) { 0.05 } else { 0.0 },
        request_errors: if rng.random_bool(0.3) { 0.05 } else { 0.0 },
        range_cap: rng.random_bool(0.3).then(|| rng.random_range(1..8)),
        removed_logs: rng.random_bool(0.2),
        no_block_receipts: rng.random_bool(0.2),
    }
}

/// An order the simulation pays: its deposit address, token and what it owes.
#[derive(Debug, Clone)]
struct SimOrder {
    id: String,
    address: Address,
    token: Address,
    owed: U256,
}

struct World {
    transport: SimTransport,
    watcher: Watcher,
    store: Store,
    orders: Vec<SimOrder>,
    rng: StdRng,
    tokens: Vec<Address>,
    steps: u64,
    /// The watcher's clock between heads (milliseconds): the canonical chain's newest block
    /// time, so a step after k new blocks finds k blocks due (the pace's head polls).
    clock: Arc<AtomicI64>,
}

/// What went wrong, at which step.
#[derive(Debug)]
struct Violation {
    step: usize,
    what: String,
}

async fn world(config: &Config, seed: u64) -> World {
    let url = std::env::var("SIM_DB").unwrap_or_else(|_| "sqlite::memory:".into());
    let store = Store::connect_with(&url, Some(1)).await.unwrap();
    store.migrate().await.unwrap();
    let mut chain = Chain::new(GENESIS_TIME);
    // A history below the start, so that no reorg reaches under the first cursor.
    for _ in 0..PRELUDE {
        chain.mine(vec![]);
    }
    chain.snapshot();
    let genesis = chain.head();
    cursor::record_block(store.pool(), CHAIN_ID, genesis.number, genesis.hash, genesis.parent).await.unwrap();
    let transport = SimTransport::new(chain, CHAIN_ID, seed);
    let provider = ProviderBuilder::new().connect_client(RpcClient::new(transport.clone(), true)).erased();
    cursor::set(
        store.pool(),
        CHAIN_ID,
        cursor::Cursor { block_number: genesis.number, block_hash: genesis.hash, block_time: genesis.time },
    )
    .await
    .unwrap();
    let orders = open_orders(config, &store, &provider).await;
    let tokens = config.token_book().on_chain(CHAIN_ID).map(|t| t.address).collect();
    let clock = Arc::new(AtomicI64::new(genesis.time * 1_000));
    let status = Arc::new(ChainStatus::with_simulated_clock(clock.clone()));
    let watcher = Watcher::new(config, store.clone(), provider, status);
    World { transport, watcher, store, orders, rng: StdRng::seed_from_u64(seed ^ 0xa11ce), tokens, steps: 0, clock }
}

async fn open_orders(config: &Config, store: &Store, provider: &alloy::providers::DynProvider) -> Vec<SimOrder> {
    use paywatch::payments::checkout::{self, OrderFor};
    use paywatch::store::apps;
    use paywatch::store::orders::OrderKind;
    let (team, _) = paywatch::store::teams::create_with_key(store, "sim").await.unwrap();
    let prices = paywatch::payments::prices::PriceBook::new(provider.clone());
    let spec = apps::AppSpec {
        name: "sim".into(),
        cluster_id: "c".into(),
        chart_name: "boinc".into(),
        cpu_limit: 1000,
        mem_limit: 1024,
        storage_limit: 1024,
        ..Default::default()
    };
    let mut out = Vec::new();
    for i in 0..ORDERS {
        let (token, method) = if i % 2 == 0 {
            (Token::UsdtErc20, paywatch::money::PayMethod::UsdtErc20)
        } else {
            (Token::AnkrErc20, paywatch::money::PayMethod::AnkrErc20)
        };
        let mut tx = store.begin().await.unwrap();
        let app = apps::insert_app(&mut *tx, &team.team_id, &spec, method).await.unwrap();
        let usd = rust_decimal::Decimal::new(1000 + i as i64 * 37, 2);
        let quote = checkout::price_usd_in(config, &prices, method, usd).await.unwrap();
        let what =
            OrderFor { team_id: &team.team_id, app_id: Some(&app.app_id), kind: OrderKind::Create, period_months: 1 };
        let order = checkout::open_token_order(&mut tx, config, what, token, quote, |_| GENESIS_TIME).await.unwrap();
        tx.commit().await.unwrap();
        let c = order.new.crypto.unwrap();
        out.push(SimOrder {
            id: order.order_id,
            address: c.deposit_address,
            token: c.token_address,
            owed: c.amount_base,
        });
    }
    out
}

impl World {
    /// One watcher step, the clock first moved to the chain's newest block.
    async fn step(&mut self) -> anyhow::Result<Result<bool, String>> {
        let newest = self.transport.0.lock().unwrap().chain.head().time;
        self.clock.fetch_max(newest * 1_000, Ordering::Relaxed);
        self.watcher.step_once().await
    }

    fn apply(&mut self, action: &Action) {
        let mut s = self.transport.0.lock().unwrap();
        match action {
            Action::Mine { pays, noise } => {
                let mut txs = Vec::new();
                for (who, half) in pays {
                    let (to, token, owed) = match who {
                        Some(i) => (self.orders[*i].address, self.orders[*i].token, self.orders[*i].owed),
                        None => (Address::repeat_byte(0x99), self.tokens[0], U256::from(5u64)),
                    };
                    let amount = if *half { owed / U256::from(2) } else { owed };
                    self.steps += 1;
                    let hash =
                        keccak256([self.rng.random::<[u8; 32]>(), B256::from(U256::from(self.steps)).0].concat());
                    let payer = Address::repeat_byte(0x01);
                    txs.push(Tx { hash, logs: vec![SimLog::transfer(token, payer, to, amount)] });
                }
                if *noise {
                    // The token's Approval and another contract's Transfer: "maybe" in the bloom.
                    let hash = keccak256(self.rng.random::<[u8; 32]>());
                    let approval = SimLog {
                        address: self.tokens[0],
                        topics: vec![APPROVAL, B256::ZERO, B256::ZERO],
                        data: vec![0; 32],
                    };
                    let other =
                        SimLog::transfer(Address::repeat_byte(0x77), Address::ZERO, Address::ZERO, U256::from(1));
                    txs.push(Tx { hash, logs: vec![approval, other] });
                }
                // Shuffle so log indexes differ from the order of payment.
                let n = txs.len();
                for i in (1..n).rev() {
                    txs.swap(i, self.rng.random_range(0..=i));
                }
                s.chain.mine(txs);
            }
            Action::Reorg { depth, blocks, again } => {
                // Never below the newest head minus MAX_REORG: what is at the confirmations'
                // depth stays (a deeper reorg is a failure of the chain, not of the watcher).
                let floor = s.chain.max_head.saturating_sub(MAX_REORG).max(PRELUDE);
                let depth = (*depth).min(s.chain.head().number.saturating_sub(floor));
                let dropped = s.chain.rollback(depth);
                let mut new_blocks: Vec<Vec<Tx>> = vec![Vec::new(); (*blocks).max(1) as usize];
                let mut pick = StdRng::seed_from_u64(*again);
                for tx in dropped {
                    if pick.random_bool(0.7) {
                        let at = pick.random_range(0..new_blocks.len());
                        new_blocks[at].push(tx);
                    }
                }
                for txs in new_blocks.into_iter().take((*blocks).max(1) as usize) {
                    s.chain.mine(txs);
                }
            }
            Action::Faults(f) => s.faults = f.clone(),
            Action::Pace(secs) => s.chain.block_secs = *secs,
            Action::Idle => {}
        }
        s.chain.snapshot();
    }

    /// The invariants that hold after every step.
    async fn check(&self, step: usize) -> Result<(), Violation> {
        let fail = |what: String| Err(Violation { step, what });
        let rows = stored(&self.store).await;
        let c = cursor::get(self.store.pool(), CHAIN_ID).await.unwrap().unwrap();
        let s = self.transport.0.lock().unwrap();
        let chain = &s.chain;
        for r in &rows {
            let Some(block) = chain.blocks.get(&r.block_hash) else {
                return fail(format!("stored transfer {r:?} names a block no provider served"));
            };
            let served = block.logs().iter().any(|l| {
                l.transaction_hash == Some(r.tx_hash)
                    && l.log_index == Some(r.log_index)
                    && block.number == r.block_number
            });
            if !served {
                return fail(format!("stored transfer {r:?} is not in the block it names"));
            }
            if r.confirmed && chain.at(r.block_number).map(|b| b.hash) != Some(r.block_hash) {
                return fail(format!("confirmed transfer {r:?} is off the canonical chain"));
            }
            if r.confirmed && r.block_number > c.block_number {
                return fail(format!("confirmed transfer {r:?} above the cursor {}", c.block_number));
            }
        }
        if !chain.blocks.contains_key(&c.block_hash) {
            return fail(format!("the cursor {c:?} names a block no provider served"));
        }
        if chain.at(c.block_number).map(|b| b.hash) == Some(c.block_hash) {
            let due = self.canonical_payments(chain, c.block_number);
            for (key, hash) in &due {
                if !rows.iter().any(|r| (r.tx_hash, r.log_index) == *key && r.block_hash == *hash) {
                    return fail(format!(
                        "the cursor passed block {} but the payment {key:?} in {hash} is not stored",
                        c.block_number
                    ));
                }
            }
            for r in rows.iter().filter(|r| r.block_number <= c.block_number) {
                if chain.at(r.block_number).map(|b| b.hash) != Some(r.block_hash) {
                    return fail(format!("below the canonical cursor {}, {r:?} is of another fork", c.block_number));
                }
            }
        }
        Ok(())
    }

    /// Transfers into deposit addresses of the tokens on the canonical chain up to `to`:
    /// (tx hash, log index) → block hash.
    fn canonical_payments(&self, chain: &Chain, to: u64) -> BTreeMap<(B256, u64), B256> {
        let deposits: BTreeSet<Address> = self.orders.iter().map(|o| o.address).collect();
        let mut out = BTreeMap::new();
        for n in 1..=to.min(chain.head().number) {
            let block = chain.at(n).unwrap();
            for l in block.logs() {
                if let Some((token, to, _)) = sim_log(&l).as_transfer()
                    && self.tokens.contains(&token)
                    && deposits.contains(&to)
                {
                    out.insert((l.transaction_hash.unwrap(), l.log_index.unwrap()), block.hash);
                }
            }
        }
        out
    }

    /// Faults healed and blocks mined past the depth: the watcher must catch up and have
    /// credited every payment at depth exactly once.
    async fn settle(&mut self, step: usize) -> Result<(), Violation> {
        {
            let mut s = self.transport.0.lock().unwrap();
            // An endpoint without eth_getBlockReceipts stays without it: it is what the
            // provider offers, not a fault that passes.
            s.faults = Faults { no_block_receipts: s.faults.no_block_receipts, ..Faults::honest() };
            for _ in 0..CONFIRMATIONS + 1 {
                s.chain.mine(vec![]);
            }
            s.chain.snapshot();
        }
        let head = self.transport.0.lock().unwrap().chain.head();
        for _ in 0..200 {
            let done = matches!(self.step().await, Ok(Ok(true)));
            let c = cursor::get(self.store.pool(), CHAIN_ID).await.unwrap().unwrap();
            if done && c.block_hash == head.hash {
                break;
            }
        }
        self.check(step).await?;
        let fail = |what: String| Err(Violation { step, what });
        let c = cursor::get(self.store.pool(), CHAIN_ID).await.unwrap().unwrap();
        if c.block_hash != head.hash {
            return fail(format!("healed, the watcher did not reach the head {} (cursor {c:?})", head.number));
        }
        let rows = stored(&self.store).await;
        let deep = {
            let s = self.transport.0.lock().unwrap();
            self.canonical_payments(&s.chain, head.number + 1 - CONFIRMATIONS)
        };
        for (key, hash) in &deep {
            let found: Vec<&Row> = rows.iter().filter(|r| (r.tx_hash, r.log_index) == *key).collect();
            if found.len() != 1 || !found[0].confirmed || found[0].block_hash != *hash {
                return fail(format!("payment {key:?} at depth in {hash}: stored as {found:?}, not confirmed once"));
            }
        }
        for r in rows.iter().filter(|r| r.confirmed) {
            if !deep.contains_key(&(r.tx_hash, r.log_index)) {
                return fail(format!("confirmed {r:?} is not a canonical payment at depth"));
            }
        }
        for o in &self.orders {
            let paid_in: U256 = rows.iter().filter(|r| r.confirmed && r.to == o.address).map(|r| r.amount).sum();
            let (status, deposits) = order_state(&self.store, &o.id).await;
            if (paid_in >= o.owed) != (status == "paid") {
                return fail(format!("order {} owes {} and has {paid_in} confirmed, yet reads {status}", o.id, o.owed));
            }
            if status == "paid" && deposits != 1 {
                return fail(format!("order {} paid with {deposits} deposits", o.id));
            }
        }
        Ok(())
    }
}

fn sim_log(l: &alloy::rpc::types::Log) -> SimLog {
    SimLog { address: l.address(), topics: l.topics().to_vec(), data: l.data().data.to_vec() }
}

#[derive(Debug, Clone)]
#[allow(dead_code)] // read through Debug in the failure messages
struct Row {
    tx_hash: B256,
    log_index: u64,
    block_number: u64,
    block_hash: B256,
    to: Address,
    amount: U256,
    confirmed: bool,
}

async fn stored(store: &Store) -> Vec<Row> {
    use sqlx::Row as _;
    let rows = sqlx::query(
        "SELECT tx_hash, log_index, block_number, block_hash, to_address, amount_base, state FROM chain_transfers",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| Row {
            tx_hash: r.get::<String, _>("tx_hash").parse().unwrap(),
            log_index: r.get::<i64, _>("log_index") as u64,
            block_number: r.get::<i64, _>("block_number") as u64,
            block_hash: r.get::<String, _>("block_hash").parse().unwrap(),
            to: r.get::<String, _>("to_address").parse().unwrap(),
            amount: r.get::<String, _>("amount_base").parse().unwrap(),
            confirmed: r.get::<String, _>("state") == "confirmed",
        })
        .collect()
}

async fn order_state(store: &Store, order_id: &str) -> (String, i64) {
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let deposits: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (status, deposits)
}

/// Runs one seed's trace; the violation, if any, and the number of watcher steps taken.
async fn run(config: &Config, seed: u64, trace: &[Action]) -> (Result<(), Violation>, usize) {
    let mut w = world(config, seed).await;
    for (step, action) in trace.iter().enumerate() {
        w.apply(action);
        let _ = w.step().await;
        if let Err(v) = w.check(step).await {
            return (Err(v), step + 1);
        }
    }
    (w.settle(trace.len()).await, trace.len())
}

/// How long one seed may run before it counts as a failure: a seed takes well under a second,
/// so one that runs this long has a step that never ends (a watcher loop, a wait on nothing).
/// Wall-clock only as a guard: no outcome of a seed that ends depends on it.
const SEED_GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// A seed's run with its wall-clock time, failed (as step `usize::MAX`) past `SEED_GUARD`.
async fn guarded(
    run: impl std::future::Future<Output = (Result<(), Violation>, usize)>,
) -> (Result<(), Violation>, usize, std::time::Duration) {
    let started = Instant::now();
    let (result, taken) = tokio::time::timeout(SEED_GUARD, run).await.unwrap_or_else(|_| {
        let what = format!("the seed ran over {} s: a watcher step or the settling never ended", SEED_GUARD.as_secs());
        (Err(Violation { step: usize::MAX, what }), 0)
    });
    (result, taken, started.elapsed())
}

/// A line every `Progress::EVERY` seeds, so that a long run shows it is alive and how fast it
/// goes: seeds done, steps a second, the slowest seed so far.
struct Progress {
    total: usize,
    done: usize,
    steps: usize,
    started: Instant,
    slowest: (u64, std::time::Duration),
}

impl Progress {
    const EVERY: usize = 1_000;

    fn new(total: usize) -> Self {
        Self { total, done: 0, steps: 0, started: Instant::now(), slowest: (0, Default::default()) }
    }

    fn seed_done(&mut self, seed: u64, steps: usize, took: std::time::Duration) {
        self.done += 1;
        self.steps += steps;
        if took > self.slowest.1 {
            self.slowest = (seed, took);
        }
        if self.done.is_multiple_of(Self::EVERY) && self.done < self.total {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "{} of {} seeds in {secs:.0} s ({:.0} steps/s); slowest: seed {} ({:.2} s)",
                self.done,
                self.total,
                self.steps as f64 / secs,
                self.slowest.0,
                self.slowest.1.as_secs_f64()
            );
        }
    }
}

/// The trace cut to the failing step, then each action left out while the run still fails.
async fn shrink(config: &Config, seed: u64, trace: Vec<Action>, step: usize) -> Vec<Action> {
    let mut trace: Vec<Action> = trace.into_iter().take(step + 1).collect();
    let mut i = 0;
    while i < trace.len() {
        let mut shorter = trace.clone();
        shorter.remove(i);
        if run(config, seed, &shorter).await.0.is_err() {
            trace = shorter;
        } else {
            i += 1;
        }
    }
    trace
}

/// The simulator's configuration; `tied`: its endpoint declared to keep a batch on one node.
fn sim_config(tied: bool) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let deployment = paywatch::chain::deploy::Deployment {
        factory: Address::repeat_byte(0xfa),
        tokens: [(Token::UsdtErc20, Address::repeat_byte(0x0d)), (Token::AnkrErc20, Address::repeat_byte(0x0a))].into(),
        price_feed: None,
    };
    let text = paywatch::devnet::config_template::render(&paywatch::devnet::config_template::LocalConfig {
        listen: "127.0.0.1:0".into(),
        database_url: "sqlite::memory:".into(),
        chain_id: CHAIN_ID,
        rpc_http: "http://127.0.0.1:9/simulated".into(),
        rpc_ws: None,
        confirmations: CONFIRMATIONS,
        poll_interval_ms: 1_000,
        deployment: &deployment,
        treasury: Address::repeat_byte(0x7e),
        chainlink_max_age: None,
        admin_token: "sim-admin-token-0123456789".into(),
        signer_key: None,
        more_chains: vec![],
        extra: String::new(),
    });
    let text = match tied {
        true => text.replace("/simulated\"\n", "/simulated\"\nrpc_batches = \"one_node\"\n"),
        false => text,
    };
    assert_eq!(text.contains("rpc_batches"), tied, "the simulated endpoint's line in the config template moved");
    let path = dir.path().join("paywatch.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    (dir, config)
}

#[test]
fn no_payment_is_lost_or_doubled_under_any_provider_routing() {
    let (_dir, any) = sim_config(false);
    let (_tied_dir, one_node) = sim_config(true);
    let config_of = |seed: u64| if tied(seed) { &one_node } else { &any };
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(one) => vec![one.parse().expect("SIM_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("SIM_SEEDS").ok().map_or(30, |n| n.parse().expect("SIM_SEEDS is a number"));
            let first: u64 = std::env::var("SIM_FIRST_SEED").ok().map_or(0, |n| n.parse().expect("a number"));
            (first..first + n).collect()
        }
    };
    let without = Without::from_env();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let (mut steps, mut failures) = (0usize, Vec::new());
    // Seeds run a few at a time on the one thread: while one waits for its database, another
    // steps. Each seed's world is its own, so the interleaving changes no seed's run.
    let parallel: usize =
        std::env::var("SIM_PARALLEL").ok().map_or(8, |n| n.parse().expect("SIM_PARALLEL is a number"));
    let mut progress = Progress::new(seeds.len());
    for chunk in seeds.chunks(parallel.max(1)) {
        let traces: Vec<(u64, Vec<Action>)> = chunk.iter().map(|&seed| (seed, plan(seed, without))).collect();
        let runs = traces.iter().map(|(seed, trace)| guarded(run(config_of(*seed), *seed, trace)));
        let results = runtime.block_on(futures_util::future::join_all(runs));
        for ((seed, trace), (result, taken, took)) in traces.into_iter().zip(results) {
            steps += taken;
            progress.seed_done(seed, taken, took);
            let Err(v) = result else { continue };
            if v.step == usize::MAX {
                // A seed that never ended cannot be shrunk by running it again.
                eprintln!("seed {seed}: {}\nreplay: SIM_SEED={seed} make sim", v.what);
                failures.push(seed);
                continue;
            }
            let shrunk = runtime.block_on(shrink(config_of(seed), seed, trace, v.step));
            eprintln!(
                "seed {seed}{} failed at step {}: {}\nreplay: SIM_SEED={seed}{} make sim\nshrunk trace ({} actions, from {}):",
                if tied(seed) { " (rpc_batches = \"one_node\")" } else { "" },
                v.step,
                v.what,
                std::env::var("SIM_WITHOUT").map(|w| format!(" SIM_WITHOUT={w}")).unwrap_or_default(),
                shrunk.len(),
                v.step + 1
            );
            for a in &shrunk {
                eprintln!("  {a:?}");
            }
            failures.push(seed);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulated {} seeds, {steps} steps in {secs:.1} s: {:.0} steps/s; {} failed",
        seeds.len(),
        steps as f64 / secs,
        failures.len()
    );
    assert!(failures.is_empty(), "seeds that lost or doubled a payment: {failures:?}");
}
