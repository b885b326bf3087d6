//! The soak (issue 27): a random workload from one seed, random faults at random moments, and
//! an audit of the books against the chain at quiet points and at the end (`audit.rs`).
//!
//! `make test` runs a short seed per backend; `make soak` runs longer (`SOAK_SECS`, default
//! 600). `PAYWATCH_SOAK_SEED` replays a seed: the workload (orders, payments, applies) is drawn
//! from it alone, so two runs of one seed issue the same payments; the timing of faults is not
//! replayable, their kinds and order are.

mod audit;
mod external;
mod ledgers;
mod workload;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::rpc::types::anvil::ReorgOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::support::app::{Options, TestApp, spawn_app};
use crate::support::process::ServeProcess;
use crate::support::rpc_proxy::Mode;
use crate::support::webhook_receiver::{Receiver, webhook_config};

use crate::support::app::ADMIN_TOKEN;
/// The first chain's depth (a reorg of up to 5 blocks goes within and beyond it) and the second's.
const CONFIRMATIONS: u64 = 3;
const L2_CONFIRMATIONS: u64 = 2;

/// No limit stands in the way of the workload's refunds.
/// Every claim approved at once; a claim link left unused expires after a day of the chains'
/// clock, which the clock faults move by up to 25 hours.
const REFUND_LIMITS: &str = "auto_approve_usd = \"1000000000000000000000000\"\nmax_per_refund_usd = \"1000000000000000000000000\"\nmax_per_day_usd = \"1000000000000000000000000000\"\nclaim_ttl_days = 1\n";

/// Deliveries are retried until they land: the audit wants every event delivered.
const WEBHOOK_ATTEMPTS: &str = "max_attempts = 1000";

/// One order the workload created (each is its own app's first order).
#[derive(Debug, Clone)]
pub struct SoakOrder {
    pub order_id: String,
    pub app_id: String,
    /// An extension of its app (paid in tokens), not the app's first order.
    pub extension: bool,
    pub pay_method: &'static str,
    pub address: alloy::primitives::Address,
    pub owed: alloy::primitives::U256,
}

pub struct Soak {
    pub app: TestApp,
    pub backend: &'static str,
    pub seed: u64,
    /// The workload's draws: from the seed alone.
    pub work: StdRng,
    /// The faults' draws: from the seed too, but their effect depends on timing.
    faults: StdRng,
    servers: Vec<ServeProcess>,
    pub orders: Vec<SoakOrder>,
    /// What happened, by kind: the summary.
    pub counts: BTreeMap<String, u64>,
    /// Answers of the API that were a 5xx other than 503 (invariant 7).
    pub server_errors: Vec<String>,
    pub step: u64,
    pub http: reqwest::Client,
    /// The payments issued, in order (kind, order index, amount): what "same seed, same
    /// workload" compares.
    pub issued: Vec<String>,
    /// The webhook receiver (invariant 6); it fails for a while as one of the faults.
    pub receiver: Receiver,
    /// Apps paid by card at creation (the workload extends them by card).
    pub card_apps: Vec<String>,
    /// Apps with a token extension order: their end is audited across their orders.
    pub extended_apps: std::collections::BTreeSet<String>,
    /// Deposit addresses blacklisted by the first chain's USDT (their sweeps fail).
    pub blacklisted: Vec<alloy::primitives::Address>,
    /// The wallet refunds leave from: paywatch's refund key, or the external signer's.
    pub refund_wallet: alloy::primitives::Address,
    /// The operator's external signer, when no refund key is configured (`external.rs`).
    pub external: Option<external::ExternalSigner>,
    /// Chains paused by a fault: each task resumes its chain.
    paused: Vec<tokio::task::JoinHandle<()>>,
    /// Each (chain id, token)'s treasury balance before the workload: sweeps add to it.
    pub treasury_start: BTreeMap<(u64, alloy::primitives::Address), alloy::primitives::U256>,
}

/// What a violated invariant reports: enough to replay it.
#[derive(Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl Soak {
    pub async fn start(backend: &'static str, seed: u64) -> Self {
        let (receiver, hook_url) = Receiver::start(&[], 200).await;
        // Refunds are approved as soon as claimed: the workload's refunds are sent at once, by
        // paywatch's refund key or by the soak as the operator's external signer.
        let refund_wallet = alloy::signers::local::PrivateKeySigner::random();
        let external = external::chosen(seed).then(|| external::ExternalSigner::new(refund_wallet.clone()));
        let refunds = match external {
            Some(_) => format!("external_sender = \"{:#x}\"", refund_wallet.address()),
            None => format!("private_key = \"0x{}\"", alloy::hex::encode(refund_wallet.to_bytes())),
        };
        let extra_config = format!(
            "{}[signer]\nprivate_key = \"{}\"\n[cards]\nrecover_after_s = 1\n[refunds]\n{refunds}\n{REFUND_LIMITS}",
            webhook_config(&hook_url).replace("max_attempts = 5", WEBHOOK_ATTEMPTS),
            paywatch::devnet::anvil::accounts::DEPLOYER_KEY,
        );
        let mut app = spawn_app(Options {
            backend,
            confirmations: CONFIRMATIONS,
            l2_confirmations: Some(L2_CONFIRMATIONS),
            proxy: Some(Mode::Honest),
            extra_config,
            ..Default::default()
        })
        .await;
        // The workload talks to `paywatch serve` processes (SIGKILL is one of the faults); on
        // PostgreSQL two of them, the watchers' leases moving between them.
        app.stop_server().await;
        // The refund wallet's float, before the setup is buried.
        for chain in [&app.chain, app.l2()] {
            let wallet = refund_wallet.address();
            chain
                .deployer
                .anvil_set_balance(
                    wallet,
                    alloy::primitives::U256::from(10u64).pow(alloy::primitives::U256::from(20u64)),
                )
                .await
                .unwrap();
            // Wrong-token payments can be huge (an ANKR amount sent in USDT units): a float to match.
            paywatch::devnet::fund(&chain.deployer, &chain.deployment, wallet, 10_000_000_000_000_000).await.unwrap();
        }
        // The setup (contracts, the payers' tokens, the refund wallet's float) deeper than any reorg the faults make.
        app.mine(10).await;
        app.l2().deployer.anvil_mine(Some(10), None).await.unwrap();
        let mut treasury_start = BTreeMap::new();
        for (chain_id, chain) in [(paywatch::devnet::CHAIN_ID, &app.chain), (paywatch::devnet::L2_CHAIN_ID, app.l2())] {
            for token in chain.deployment.tokens.values() {
                treasury_start.insert((chain_id, *token), chain.balance_of(*token, chain.treasury).await);
            }
        }
        let processes = if backend == "postgres" { 2 } else { 1 };
        let mut servers = Vec::new();
        for _ in 0..processes {
            servers.push(start_server(&app).await);
        }
        Soak {
            app,
            backend,
            seed,
            work: StdRng::seed_from_u64(seed),
            faults: StdRng::seed_from_u64(seed ^ 0x5eed_fa17),
            servers,
            orders: Vec::new(),
            counts: BTreeMap::new(),
            server_errors: Vec::new(),
            step: 0,
            http: reqwest::Client::new(),
            issued: Vec::new(),
            receiver,
            card_apps: Vec::new(),
            extended_apps: Default::default(),
            blacklisted: Vec::new(),
            treasury_start,
            refund_wallet: refund_wallet.address(),
            external,
            paused: Vec::new(),
        }
    }

    pub fn count(&mut self, kind: &str) {
        *self.counts.entry(kind.to_string()).or_default() += 1;
    }

    /// A request to one of the running processes (another when one refuses the connection),
    /// retried while it answers the documented 503.
    pub async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        admin: bool,
    ) -> (u16, Value) {
        self.call_with(method, path, body, admin, true).await
    }

    /// `call`, answering a 503 as it came when `retry_busy` is false (a card whose charge is
    /// unresolved answers 503; the recovery job settles it, not a retry).
    pub async fn call_with(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        admin: bool,
        retry_busy: bool,
    ) -> (u16, Value) {
        let started = Instant::now();
        loop {
            for server in &self.servers {
                let token = if admin { ADMIN_TOKEN } else { self.app.api_key.as_str() };
                let mut request =
                    self.http.request(method.clone(), format!("{}{path}", server.base)).bearer_auth(token);
                if let Some(body) = body {
                    request = request.json(body);
                }
                let Ok(answer) = request.send().await else { continue };
                let status = answer.status().as_u16();
                let body = answer.json().await.unwrap_or(Value::Null);
                if status >= 500 && status != 503 {
                    self.server_errors.push(format!("step {}: {method} {path} answered {status}: {body}", self.step));
                }
                if retry_busy && status == 503 && started.elapsed() < Duration::from_secs(20) {
                    // The documented "busy, retry": a client retries.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return (status, body);
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no paywatch process answers {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the workload with faults for `secs`, auditing at quiet points; the first violation
    /// ends the run.
    pub async fn run(&mut self, secs: u64) -> Result<(), Violation> {
        let started = Instant::now();
        let mut next_audit = 40;
        while started.elapsed() < Duration::from_secs(secs) {
            self.step += 1;
            if self.faults.random_ratio(1, 8) {
                self.fault().await;
            }
            workload::act(self).await;
            if self.step >= next_audit {
                next_audit += 40;
                self.quiet_point(false).await?;
            }
        }
        self.quiet_point(true).await
    }

    /// Faults off, every payment deep, the watchers caught up; then the audit.
    async fn quiet_point(&mut self, last: bool) -> Result<(), Violation> {
        for resume in self.paused.drain(..) {
            resume.await.unwrap();
        }
        self.app.proxy.as_ref().unwrap().set_mode(Mode::Honest);
        *self.receiver.fallback.lock().unwrap() = 200;
        self.align_clocks().await;
        external::catch_up(self).await;
        self.app.mine(CONFIRMATIONS + 1).await;
        self.app.l2().deployer.anvil_mine(Some(L2_CONFIRMATIONS + 1), None).await.unwrap();
        self.wait_processed().await?;
        // The sweep ledger learns of sweeps that left the chain when a sweep run rechecks them.
        workload::sweep(self, true).await;
        self.app.mine(CONFIRMATIONS + 1).await;
        self.wait_processed().await?;
        self.count(if last { "audit (final)" } else { "audit (quiet point)" });
        audit::check(self, last).await?;
        ledgers::check(self, last).await
    }

    /// Until each chain's cursor (in the database: whichever process watches) reaches its head.
    async fn wait_processed(&mut self) -> Result<(), Violation> {
        let chains = [(&self.app.chain, paywatch::devnet::CHAIN_ID), (self.app.l2(), paywatch::devnet::L2_CHAIN_ID)];
        for (chain, chain_id) in chains {
            let started = Instant::now();
            loop {
                // The head now (a refund sent meanwhile mines a block), and the cursor on it by
                // hash: after a reorg the old cursor may stand at the same number.
                let head = alloy::providers::Provider::get_block_by_number(
                    &chain.deployer,
                    alloy::eips::BlockNumberOrTag::Latest,
                )
                .await
                .unwrap()
                .unwrap()
                .header;
                let cursor = paywatch::store::cursor::get(self.app.db.store.pool(), chain_id).await.ok().flatten();
                if cursor.is_some_and(|c| c.block_number == head.number && c.block_hash == head.hash) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    // What each process says of its watchers (`/readyz` names what they wait on).
                    let mut said = Vec::new();
                    for server in &self.servers {
                        let answer = self.http.get(format!("{}/readyz", server.base)).send().await;
                        said.push(match answer {
                            Ok(r) => r.text().await.unwrap_or_default(),
                            Err(e) => format!("no answer: {e}"),
                        });
                    }
                    // And who holds the chain's lease (PostgreSQL): a holder that does not
                    // watch differs from a watcher that cannot move.
                    let holder = paywatch::chain::leader::holder(&self.app.db.store, chain_id).await;
                    return Err(Violation {
                        invariant: "a watcher keeps up (the books can be audited)",
                        detail: format!(
                            "chain {chain_id} stuck at {cursor:?}, head {} {}; lease holder {holder:?}; /readyz: {said:?}",
                            head.number, head.hash
                        ),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Both chains' next blocks at the later of their clocks: time moves on both as on one
    /// world's (a reorg can take a chain's clock back; the audit judges by the chains' clock).
    async fn align_clocks(&self) {
        let chains = [&self.app.chain, self.app.l2()];
        let mut latest = 0;
        for chain in chains {
            let head =
                chain.deployer.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
            latest = latest.max(head.header.timestamp);
        }
        for chain in chains {
            chain.deployer.anvil_set_time(latest + 1).await.unwrap();
            chain.deployer.anvil_mine(Some(1), None).await.unwrap();
        }
    }

    async fn fault(&mut self) {
        match self.faults.random_range(0..8u8) {
            0 => {
                // Within the depth (transfers seen, not yet credited) or beyond it (reversal).
                let depth = self.faults.random_range(1..=CONFIRMATIONS + 2);
                self.app.chain.deployer.anvil_reorg(ReorgOptions { depth, tx_block_pairs: vec![] }).await.unwrap();
                self.count(&format!("fault: reorg of {depth} (first chain)"));
            }
            1 => {
                let depth = self.faults.random_range(1..=L2_CONFIRMATIONS + 1);
                self.app.l2().deployer.anvil_reorg(ReorgOptions { depth, tx_block_pairs: vec![] }).await.unwrap();
                self.count(&format!("fault: reorg of {depth} (second chain)"));
            }
            2 => {
                let modes = [
                    ("honest", Mode::Honest),
                    ("lagging node", Mode::LaggingNode { lag: 3 }),
                    ("logs behind", Mode::LogsBehind { lag: 6 }),
                    ("flaky", Mode::Flaky),
                    ("removed logs", Mode::RemovedLogs),
                    ("head ahead", Mode::HeadAhead),
                    ("rate limited", Mode::RateLimited { every: 4 }),
                    ("down", Mode::Down),
                ];
                let (name, mode) = modes[self.faults.random_range(0..modes.len())];
                self.app.proxy.as_ref().unwrap().set_mode(mode);
                self.count(&format!("fault: rpc {name}"));
            }
            3 => {
                let victim = self.faults.random_range(0..self.servers.len());
                self.servers.remove(victim).kill9().await;
                self.servers.push(start_server(&self.app).await);
                self.count("fault: SIGKILL of serve");
            }
            4 => {
                let secs = [600, 1_800, 3_600, 4 * 3_600, 25 * 3_600][self.faults.random_range(0..5)];
                for chain in [&self.app.chain, self.app.l2()] {
                    chain.deployer.anvil_increase_time(secs).await.unwrap();
                    // A block at the new time: aligning reads the clocks from the heads.
                    chain.deployer.anvil_mine(Some(1), None).await.unwrap();
                }
                self.align_clocks().await;
                self.count("fault: chain clock moved");
            }
            6 => {
                // A chain stops (its node frozen with SIGSTOP) for 0.5-3 s: calls to it wait,
                // as on a node that stalls, and it goes on where it was.
                let second = self.faults.random_bool(0.5);
                let chain = if second { self.app.l2() } else { &self.app.chain };
                let pid = chain.anvil.pid().expect("anvil runs") as libc::pid_t;
                let millis = self.faults.random_range(500..3_000);
                // SAFETY: signals to a child process this test started.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                self.paused.push(tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                }));
                self.count(if second { "fault: second chain paused" } else { "fault: first chain paused" });
            }
            5 => {
                // The receiver fails (5xx) until the next such fault or quiet point.
                let mut answer = self.receiver.fallback.lock().unwrap();
                *answer = if *answer == 200 { 500 } else { 200 };
                let kind =
                    if *answer == 200 { "fault: webhook receiver back" } else { "fault: webhook receiver failing" };
                drop(answer);
                self.count(kind);
            }
            _ if self.backend == "postgres" => {
                // Every other connection to the database: the processes' pools reconnect.
                let _ = sqlx::raw_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid()",
                )
                .execute(self.app.db.store.pool())
                .await;
                self.count("fault: PostgreSQL connections killed");
            }
            _ => {
                self.app.mine(self.faults.random_range(1..4)).await;
                self.count("fault: blocks mined");
            }
        }
    }

    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "soak seed {} on {}: {} steps, {} orders, refunds sent by {}",
            self.seed,
            self.backend,
            self.step,
            self.orders.len(),
            if self.external.is_some() { "an external signer" } else { "paywatch's refund key" }
        )];
        for (kind, n) in &self.counts {
            lines.push(format!("  {kind}: {n}"));
        }
        lines.join("\n")
    }

    pub async fn stop(self) {
        for server in self.servers {
            server.kill9().await;
        }
        self.app.stop().await;
    }
}

async fn start_server(app: &TestApp) -> ServeProcess {
    ServeProcess::start(&app.config_path, paywatch::devnet::anvil::free_port().unwrap()).await
}

fn seconds() -> u64 {
    std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(45)
}

/// `PAYWATCH_SOAK_SEED`, else a random one for `make soak` (SOAK_SECS set), else the short
/// run's fixed seed: `make test` stays a check of known ground, the long runs explore.
fn seed(fixed: u64) -> u64 {
    match std::env::var("PAYWATCH_SOAK_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => seed,
        None if std::env::var("SOAK_SECS").is_ok() => rand::random(),
        None => fixed,
    }
}

async fn soak(backend: &'static str, fixed_seed: u64) {
    let seed = seed(fixed_seed);
    let mut soak = Soak::start(backend, seed).await;
    let result = soak.run(seconds()).await;
    let summary = soak.summary();
    println!("{summary}");
    if let Err(v) = result {
        panic!(
            "soak violation: {}\n{}\nseed {seed}, step {}: replay with PAYWATCH_SOAK_SEED={seed} make soak\n{summary}",
            v.invariant, v.detail, soak.step
        );
    }
    soak.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_hold_under_a_random_workload_with_faults_sqlite() {
    soak("sqlite", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_hold_under_a_random_workload_with_faults_postgres() {
    soak("postgres", 4).await;
}

/// Same seed, same workload: the payments issued depend on the seed alone.
#[tokio::test]
async fn one_seed_issues_the_same_payments_twice() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut soak = Soak::start("sqlite", 42).await;
        for _ in 0..12 {
            soak.step += 1;
            workload::act(&mut soak).await;
        }
        runs.push(soak.issued.clone());
        soak.stop().await;
    }
    assert!(runs[0].len() >= 3, "the workload issued payments: {:?}", runs[0]);
    assert_eq!(runs[0], runs[1], "two runs of seed 42");
}
