//! The chain watcher. `eth_getLogs` from the stored cursor is the source, never trusted
//! whole: near the head every block's `logsBloom` proves the answer complete
//! (`completeness`), every header is checked as one chain on top of the cursor, and the step
//! is committed with the cursor in one transaction (see `payments::credit`). Reorgs of any
//! depth are walked back to the common ancestor and what left the chain is reversed; without
//! an ancestor the watcher stops advancing rather than jump. Errors never stop the daemon:
//! every retrying path waits (rate limits and outages back off), and the loop resumes from the
//! stored cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::completeness::{Believed, BlockHead, TiedLook, Verdict, bloom_holds, verify};
use super::contracts::IERC20;
use super::deposit_index::DepositIndex;
use super::range::{AdaptiveRange, Failure, classify};
use super::rpc::{self, describe};
use super::status::ChainStatus;
use super::{leader, wake};
use crate::config::{ChainRef, Config, Confirmations};
use crate::payments::credit::{self, Rules, Step};
use crate::store::transfers::Transfer;
use crate::store::{Store, StoreError, cursor, unix_now};

/// How deep a `safe` or `finalized` tag is taken to be when shown as a count of confirmations.
pub const UNSAFE_ZONE: u64 = 64;
/// The next range is fetched ahead only when it ends this far below the head.
const PREFETCH_MARGIN: u64 = 64;
/// Retries in a row (a lagging endpoint, a fork between backends) before `/readyz` says why
/// the watcher waits.
const RETRIES_BEFORE_UNREADY: u32 = 5;
/// How far back a reorg is searched for, and how many block hashes are kept.
const MAX_REORG_DEPTH: u64 = 256;
const MAX_RANGE: u64 = 5_000;
/// Headers asked per JSON-RPC batch (providers cap batches at 50-1,000 calls).
const HEADER_BATCH: usize = 50;
/// Consecutive failures before `/readyz` reports the RPC as the problem.
const FAILURES_BEFORE_UNREADY: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Watcher {
    /// The chain's name, in logs and problems.
    name: String,
    store: Store,
    provider: DynProvider,
    rpc_names: String,
    rpc_urls: Vec<String>,
    rules: Rules,
    tokens: Vec<Address>,
    confirmations: Confirmations,
    /// `[chain.finality] large`: what large orders wait for.
    large_confirmations: Option<Confirmations>,
    start_block: u64,
    range: AdaptiveRange,
    index: DepositIndex,
    status: Arc<ChainStatus>,
    /// Logs asked in one batch with their range's headers (off only to measure its cost).
    tie_logs: bool,
    /// The endpoints behind `provider`, when the watcher may leave one out (another chain).
    failover: Option<super::failover::Failover>,
    /// Far behind the head, the next range's logs are fetched while this one commits.
    prefetched: Option<Prefetch>,
    /// The info line while far behind the head.
    catch_up_log: super::progress::CatchUpLog,
    /// The last step reached the head (the next poll may ask for the new blocks' logs with
    /// the head).
    following: bool,
    /// The last commit recorded a window above the cursor (seen transfers, the cursor kept):
    /// the next poll links its range to the cursor.
    window_open: bool,
    /// The configured factory and treasury: the factory's own treasury must be this one.
    deposits: Option<crate::config::DepositsConfig>,
    /// The last head read, and the chain's seconds per block seen between heads.
    last_head: Option<BlockHead>,
    block_secs: Option<f64>,
}

/// The logs asked in the head's batch, and the first new block's header when it was asked.
struct Quick {
    logs: Vec<Log>,
    first: Option<BlockHead>,
}

/// A getLogs answer asked for ahead of its step; used only by a step planning the same range.
struct Prefetch {
    from: u64,
    to: u64,
    answer: tokio::task::JoinHandle<anyhow::Result<TiedLook>>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.answer.abort();
    }
}

/// What a step asks of the loop. Every outcome but `MoreToDo` waits before the next step.
enum Progress {
    CaughtUp,
    MoreToDo,
    /// The answers disagreed (chain moved, a lagging backend, a refused range): try again
    /// soon, without treating it as an outage (unless it goes on: `/readyz` then says why).
    Retry(String),
}

/// What `plan` found: a range to read, or the step's outcome without one.
enum Plan {
    Range(u64, u64),
    Done(Progress),
}

/// Whether every transfer got its block's header.
enum Stamped {
    All,
    Missing,
}

/// A step failure, classified so the loop knows how long to wait.
struct StepError {
    error: anyhow::Error,
    rate_limited: bool,
}

impl<E: Into<anyhow::Error>> From<E> for StepError {
    fn from(e: E) -> Self {
        let error = e.into();
        let rate_limited = classify(&format!("{error:#}")) == Failure::RateLimited;
        Self { error, rate_limited }
    }
}

impl Watcher {
    /// The first chain's watcher.
    pub fn new(config: &Config, store: Store, provider: DynProvider, status: Arc<ChainStatus>) -> Self {
        Self::for_chain(config, config.first_chain(), store, provider, status)
    }

    /// The watcher of one chain: its tokens, cursor, confirmations, finality and lease.
    pub fn for_chain(
        config: &Config,
        chain: ChainRef<'_>,
        store: Store,
        provider: DynProvider,
        status: Arc<ChainStatus>,
    ) -> Self {
        let tokens: Vec<Address> = config.token_book().on_chain(chain.chain_id()).map(|t| t.address).collect();
        let late_window_secs = config.orders.late_window_secs();
        let c = chain.config;
        Self {
            name: chain.name.to_string(),
            store,
            provider,
            rpc_names: rpc::redact_all(c.rpc_http.urls()),
            rpc_urls: c.rpc_http.urls().to_vec(),
            rules: Rules::for_chain(config, chain),
            tokens,
            confirmations: c.confirmations,
            large_confirmations: c.finality.as_ref().map(|f| f.large),
            start_block: c.start_block,
            range: AdaptiveRange::new(1_000, MAX_RANGE),
            index: DepositIndex::new(late_window_secs),
            status,
            tie_logs: true,
            failover: None,
            prefetched: None,
            catch_up_log: Default::default(),
            following: false,
            window_open: false,
            deposits: config.deposits.clone(),
            last_head: None,
            block_secs: None,
        }
    }

    /// Asks logs alone, not tied to their range's headers: for the benchmark that measures what
    /// the tie costs, never for watching a chain.
    pub fn with_untied_logs(mut self) -> Self {
        self.tie_logs = false;
        self
    }

    /// Each endpoint's chain id is checked on its own, and one serving another chain left out.
    pub fn with_failover(mut self, failover: super::failover::Failover) -> Self {
        self.failover = Some(failover);
        self
    }

    /// Verifies the chain id (waiting out an unreachable or rate-limited RPC), then watches
    /// while this process holds the lease. Only a wrong chain ends it with an error.
    pub async fn run(
        mut self,
        ws_url: Option<String>,
        poll: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        if !self.verify_chain(poll, &shutdown).await? {
            return Ok(());
        }
        self.verify_treasury().await?;
        let wake = Arc::new(Notify::new());
        if let Some(url) = ws_url {
            tokio::spawn(wake::run(url, wake.clone(), shutdown.clone()));
        }
        while let Some(lease) = leader::acquire(&self.store, self.rules.chain_id, &shutdown).await {
            let lost = shutdown.child_token();
            let keeper = tokio::spawn(lease.keep(lost.clone()));
            self.status.set_leader(true);
            tracing::info!(chain = self.name, chain_id = self.rules.chain_id, "watching the chain");
            self.watch(&wake, poll, &lost).await;
            self.status.set_leader(false);
            lost.cancel();
            let _ = keeper.await;
        }
        Ok(())
    }

    /// A `[deposits] treasury` other than the factory's own ends the process, both named: the
    /// config, status and console would show an address the sweeps never go to. An RPC error
    /// here is only logged (the node answered a moment ago; `check` asks again).
    async fn verify_treasury(&self) -> anyhow::Result<()> {
        let Some(d) = &self.deposits else { return Ok(()) };
        match super::deploy::check_treasury(&self.provider, d).await {
            Err(e) if e.downcast_ref::<super::deploy::DeployError>().is_some() => {
                tracing::warn!(chain = self.name, error = %e, "could not read the factory's treasury");
                Ok(())
            }
            Err(e) => {
                let e = e.context(format!("chain {}", self.name));
                self.status.set_problem(Some(format!("{e:#}")));
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    /// False when shut down before the node answered.
    async fn verify_chain(&self, poll: Duration, shutdown: &CancellationToken) -> anyhow::Result<bool> {
        let mut wait = poll;
        loop {
            let checked = match &self.failover {
                Some(f) => rpc::verify_endpoints(f, &self.rpc_urls, self.rules.chain_id).await,
                None => rpc::check_chain_id(&self.provider, &self.rpc_urls, self.rules.chain_id).await,
            };
            match checked {
                Ok(()) => {
                    self.status.set_problem(None);
                    self.status.set_verified();
                    return Ok(true);
                }
                Err(e) if e.is_wrong_chain() => {
                    let e = anyhow::Error::new(e);
                    self.status.set_problem(Some(format!("{e}")));
                    return Err(e);
                }
                Err(e) => {
                    let reason = format!("rpc unreachable ({}): {}", self.rpc_names, describe(&e.to_string()));
                    tracing::warn!(chain = self.name, retry_in_ms = wait.as_millis() as u64, "{reason}");
                    self.status.set_problem(Some(reason));
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    async fn watch(&mut self, wake: &Notify, poll: Duration, stop: &CancellationToken) {
        if self.tokens.is_empty() {
            // An eth_getLogs filter without addresses would match every contract's Transfers.
            // The lease is still held: the jobs and webhook deliveries follow it.
            tracing::warn!(chain = self.name, "no [tokens] on this chain: the watcher has nothing to watch");
            return stop.cancelled().await;
        }
        let mut backoff = poll;
        let mut failures = 0u32;
        let mut retries = 0u32;
        loop {
            let wait = match self.step().await {
                Ok(progress) => {
                    failures = 0;
                    backoff = poll;
                    retries = if matches!(progress, Progress::Retry(_)) { retries + 1 } else { 0 };
                    // A step that went through clears whatever stopped the last one; retries
                    // that go on are the problem.
                    match &progress {
                        Progress::Retry(why) if retries >= RETRIES_BEFORE_UNREADY => {
                            // Said once per run of retries: a watcher that stops moving must
                            // say why where operators look, not only at debug.
                            if retries == RETRIES_BEFORE_UNREADY {
                                tracing::warn!(chain = self.name, why, retries, "the watcher keeps retrying a step");
                            }
                            self.status.set_problem(Some(format!("waiting: {why}")))
                        }
                        Progress::Retry(_) => {}
                        _ if self.status.problem().is_some() => self.status.set_problem(None),
                        _ => {}
                    }
                    let now = std::time::Instant::now();
                    if let Some(c) = self.catch_up_log.tick(now, self.status.head(), self.status.processed()) {
                        tracing::info!(
                            chain = self.name,
                            behind_blocks = c.behind,
                            blocks_per_second = format!("{:.1}", c.blocks_per_second),
                            eta_secs = c.eta_secs,
                            "catching up"
                        );
                    }
                    match progress {
                        Progress::MoreToDo => Duration::ZERO,
                        Progress::CaughtUp => poll,
                        Progress::Retry(why) => {
                            tracing::debug!(why, "step retried");
                            // Short, so a lagging backend costs little, but never a spin.
                            poll.min(Duration::from_millis(500))
                        }
                    }
                }
                Err(StepError { error, rate_limited }) => {
                    failures += 1;
                    let said = describe(&format!("{error:#}"));
                    if failures >= FAILURES_BEFORE_UNREADY && self.status.problem().is_none() {
                        self.status.set_problem(Some(format!("rpc failing ({}): {said}", self.rpc_names)));
                    }
                    tracing::warn!(
                        chain = self.name,
                        error = said,
                        rate_limited,
                        retry_in_ms = backoff.as_millis() as u64,
                        "watcher step failed"
                    );
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            if stop.is_cancelled() {
                return;
            }
            if !wait.is_zero() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// Runs steps until the cursor reaches the head (benchmarks and one-off catch-ups).
    pub async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            match self.step().await {
                Ok(Progress::CaughtUp) => return Ok(()),
                Ok(Progress::MoreToDo) => {}
                Ok(Progress::Retry(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e.error),
            }
        }
    }

    /// One step, in four stages: read the head, plan the range, look at it (logs tied to a node
    /// that has its last block), commit. Never skips a block: the cursor moves only in the
    /// transaction that records the range's transfers, and only past a range whose answer
    /// `completeness::verify` believed.
    async fn step(&mut self) -> Result<Progress, StepError> {
        // A failed read is an error, never "no cursor": that would restart from start_block.
        let stored = cursor::get(self.store.pool(), self.rules.chain_id).await.context("reading the cursor")?;
        let (head, quick) = match stored.filter(|c| self.next_block_due(c)) {
            // The first new block's header only when it links this poll (see `quick_look`).
            Some(c) => {
                self.read_head_with_logs(c.block_number + 1, self.window_open && self.blocks_due(&c) > 1).await?
            }
            None => (self.read_head().await?, None),
        };
        let (from, to) = match self.plan(&head, stored).await? {
            Plan::Range(from, to) => (from, to),
            // Nothing new (or a reorg walked back): whether the next block is due says the pace.
            Plan::Done(progress) => return Ok(progress),
        };
        // Logs asked with the head, after it, up to the head: tied to the node that served it.
        let quick = match quick.filter(|_| to == head.number) {
            Some(q) => self.quick_look(from, &head, q).await?,
            None => None,
        };
        let look = match quick {
            Some(look) => look,
            None => match self.range_look(from, to).await {
                Ok(look) => look,
                Err(e) => {
                    return match classify(&format!("{e:#}")) {
                        Failure::TooLarge { span, cap } => {
                            self.range.refused(span, cap, to - from + 1);
                            tracing::info!(range = self.range.get(), "the node refused the range; asking for less");
                            Ok(Progress::Retry("range refused".into()))
                        }
                        _ => Err(e.into()),
                    };
                }
            },
        };
        let (from, to) = (look.from, look.to);
        let (logs, first, last) = match verify(look, stored.map(|c| c.block_hash), &head, &self.tokens) {
            Verdict::Trusted(believed) => {
                let Believed { logs, first, last, removed, outside_bloom } = *believed;
                if removed + outside_bloom > 0 {
                    tracing::warn!(
                        chain = self.name,
                        removed,
                        outside_bloom,
                        "logs refused: removed, or not in their block's bloom"
                    );
                    metrics::counter!(crate::telemetry::REFUSED_LOGS).increment((removed + outside_bloom) as u64);
                }
                (logs, first, last)
            }
            Verdict::NotKnown(block) => {
                metrics::counter!(crate::telemetry::UNTRUSTED_ANSWERS).increment(1);
                // Ask for less: a lagging node still proves the blocks it has.
                self.range.shrink(None, to - from + 1);
                return Ok(Progress::Retry(format!(
                    "the endpoint answering logs does not have block {block} yet (it lags the head {})",
                    head.number
                )));
            }
            Verdict::Unlinked => return self.check_cursor(stored).await,
            Verdict::Retry(why) => return Ok(Progress::Retry(why.into())),
        };
        self.range.grow();
        self.prefetch_next(last.number, head.number);
        let progress = self.commit(stored, head.number, from, first, last, logs).await?;
        // At the head: the next poll may ask for the new blocks' logs with the head.
        self.following = matches!(progress, Progress::CaughtUp);
        Ok(progress)
    }

    /// The head: one `eth_getBlockByNumber("latest")` (number, hash and parent in one answer).
    async fn read_head(&mut self) -> Result<BlockHead, StepError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .context("eth_getBlockByNumber(latest)")?
            .context("the node has no latest block")?;
        let head = head_of(block.header.number, &block.header);
        self.record_head(&head).await?;
        Ok(head)
    }

    /// When new blocks are due: `eth_getBlockByNumber("latest")`, the first new block's header
    /// when the pace says more than one is due (`with_first`), then `eth_getLogs(from,
    /// "latest")`, in one batch, in that order: the node that answers the logs had the head
    /// when it did (logs past the head are dropped; the next step reads them). None when a
    /// call after the head failed (a node refuses a `from` past its head).
    async fn read_head_with_logs(
        &mut self,
        from: u64,
        with_first: bool,
    ) -> Result<(BlockHead, Option<Quick>), StepError> {
        let filter = Filter::new()
            .from_block(from)
            .to_block(BlockNumberOrTag::Latest)
            .address(self.tokens.clone())
            .event_signature(IERC20::Transfer::SIGNATURE_HASH);
        let mut batch = alloy::rpc::client::BatchRequest::new(self.provider.client());
        type Block = Option<alloy::rpc::types::Block>;
        let latest = batch.add_call::<_, Block>("eth_getBlockByNumber", &(BlockNumberOrTag::Latest, false))?;
        let first = match with_first {
            true => Some(batch.add_call::<_, Block>("eth_getBlockByNumber", &(BlockNumberOrTag::Number(from), false))?),
            false => None,
        };
        let logs = batch.add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))?;
        if let Err(e) = batch.send().await {
            // The node answered, refusing a call of the batch (some refuse a `from` past their
            // head, for the whole batch): the head alone, the range read the usual way.
            if e.is_error_resp() {
                tracing::debug!(error = %e, "the head's batch was refused; reading the head alone");
                return Ok((self.read_head().await?, None));
            }
            return Err(anyhow::Error::new(e).context("a batch of the head and eth_getLogs").into());
        }
        let block = latest.await.context("eth_getBlockByNumber(latest)")?.context("the node has no latest block")?;
        let head = head_of(block.header.number, &block.header);
        self.record_head(&head).await?;
        let first = match first {
            Some(waiter) => match waiter.await {
                Ok(block) => block.map(|b| head_of(from, &b.header)),
                Err(_) => return Ok((head, None)),
            },
            None => None,
        };
        let quick = logs.await.ok().map(|logs: Vec<Log>| Quick {
            logs: logs.into_iter().filter(|l| l.block_number.is_some_and(|n| n <= head.number)).collect(),
            first,
        });
        Ok((head, quick))
    }

    /// The look at `from..=head` made of the logs asked with the head: its first block is the
    /// head itself (one block came), or the header that came in the same batch. Without one it
    /// is a window: believed as the head's node's blocks above the cursor, recorded as seen,
    /// never credited, the cursor kept, and the next poll's range (from the same cursor, with
    /// its first header) links it and judges it again. So only every other poll pays for the
    /// link when several blocks come per poll. After a window, a link is due: the header is
    /// asked now, from a node that has it since it has the head.
    async fn quick_look(&self, from: u64, head: &BlockHead, q: Quick) -> anyhow::Result<Option<TiedLook>> {
        let first = match q.first {
            _ if from == head.number => Some(*head),
            Some(first) if first.number == from => Some(first),
            _ if !self.window_open => {
                let window =
                    TiedLook { from, to: head.number, logs: q.logs, first: None, last: Some(*head), window: true };
                return Ok(Some(window));
            }
            _ => self.header(from).await?,
        };
        Ok(first.map(|first| TiedLook {
            from,
            to: head.number,
            logs: q.logs,
            first: Some(first),
            last: Some(*head),
            window: false,
        }))
    }

    async fn record_head(&mut self, head: &BlockHead) -> Result<(), StepError> {
        if let Some(seen) = self.last_head
            && head.number > seen.number
            && head.time > seen.time
        {
            let secs = (head.time - seen.time) as f64 / (head.number - seen.number) as f64;
            self.block_secs = Some(self.block_secs.map_or(secs, |s| 0.8 * s + 0.2 * secs));
        }
        self.last_head = Some(*head);
        self.status.set_head_time(head.time);
        if head.number != self.status.head() {
            // Processes on standby read it from here.
            cursor::set_head(self.store.pool(), self.rules.chain_id, head.number)
                .await
                .context("recording the head")?;
        }
        self.status.set_head(head.number);
        Ok(())
    }

    /// The clock of the payment rules a step applies (lateness, stray funds): the chain's,
    /// from the head's timestamp, never the host's (`ChainStatus::chain_now`).
    fn chain_now(&self) -> i64 {
        self.status.chain_now().unwrap_or_else(unix_now)
    }

    /// Whether the poll should ask for the new blocks' logs with the head (one request: the
    /// floor's two calls, and the first new block's header when more than one is due): while
    /// following the head, once the chain's pace says a block is due. Only a cost choice:
    /// either way the answer is judged the same.
    fn next_block_due(&self, c: &cursor::Cursor) -> bool {
        self.following && self.blocks_due(c) >= 1
    }

    /// How many blocks the chain's pace says were made since the cursor's block.
    fn blocks_due(&self, c: &cursor::Cursor) -> u64 {
        let elapsed = (self.chain_now() - c.block_time).max(0) as f64;
        self.block_secs.map_or(0, |secs| (elapsed / secs.max(0.001)) as u64)
    }

    /// The range to read next, or why there is none: caught up (earlier transfers may reach
    /// their confirmations), the cursor's block gone (walked back), the node behind.
    async fn plan(&mut self, head: &BlockHead, stored: Option<cursor::Cursor>) -> Result<Plan, StepError> {
        if let Some(c) = stored {
            self.status.set_processed(c.block_number);
            self.status.set_processed_time(c.block_time);
            if head.number <= c.block_number {
                if head.hash != c.block_hash {
                    // The head is at or below the cursor on another hash: is the cursor's block
                    // still on the chain?
                    match self.header(c.block_number).await? {
                        None => return Ok(Plan::Done(Progress::Retry("the node is behind the cursor".into()))),
                        Some(h) if h.hash != c.block_hash => return Ok(Plan::Done(self.walk_back(c).await?)),
                        Some(_) => {}
                    }
                }
                self.confirm_only(c).await?;
                self.status.set_caught_up(true);
                return Ok(Plan::Done(Progress::CaughtUp));
            }
        }
        let from = stored.map_or(self.start_block, |c| c.block_number + 1);
        if from > head.number {
            self.status.set_caught_up(true);
            return Ok(Plan::Done(Progress::CaughtUp));
        }
        self.status.set_caught_up(false);
        Ok(Plan::Range(from, head.number.min(from + self.range.get() - 1)))
    }

    /// The range's first block does not extend the cursor: the cursor's block left the chain
    /// (walk back) or the node that answered is on another fork (ask again).
    async fn check_cursor(&mut self, stored: Option<cursor::Cursor>) -> Result<Progress, StepError> {
        let Some(c) = stored else { return Ok(Progress::Retry("no cursor to link to".into())) };
        match self.header(c.block_number).await? {
            None => Ok(Progress::Retry("the node does not have the cursor's block".into())),
            Some(h) if h.hash != c.block_hash => self.walk_back(c).await,
            Some(_) => Ok(Progress::Retry("a node on another fork answered the logs".into())),
        }
    }

    /// Matches the believed logs to orders, stamps each with its block's time and commits
    /// them with the cursor at `last`. Confirmations count from `last`, a block a node served
    /// with its logs, never from the head number alone. A window (no `first`: not linked to
    /// the cursor) records its transfers as seen and nothing more. Either way the answer is
    /// the whole of `from..=last`: a transfer an earlier window recorded there that it lacks
    /// is removed (and its order recomputed).
    async fn commit(
        &mut self,
        stored: Option<cursor::Cursor>,
        head: u64,
        from: u64,
        first: Option<BlockHead>,
        last: BlockHead,
        logs: Vec<Log>,
    ) -> Result<Progress, StepError> {
        let to = last.number;
        let linked = first.is_some();
        metrics::counter!(crate::telemetry::LOGS_SCANNED).increment(logs.len() as u64);
        let answered = credit::Answered {
            from,
            to,
            logs: logs.iter().filter_map(|l| Some((l.transaction_hash?, l.log_index?, l.block_hash?))).collect(),
        };
        // Refreshed after the logs were fetched: any order whose address is paid in these logs
        // was committed before the payment was mined, so it is in the index now.
        self.index.refresh(&self.store, self.status.processed_time()).await?;
        let mut transfers = self.matching_transfers(&logs).await?;
        let known: HashMap<u64, BlockHead> = first.into_iter().chain([last]).map(|h| (h.number, h)).collect();
        match self.stamp_times(&mut transfers, known).await? {
            Stamped::All => {}
            Stamped::Missing => return Ok(Progress::Retry("a transfer's block is not served yet".into())),
        }
        let step = match first {
            Some(first) => Step {
                from_cursor: stored,
                transfers,
                confirm_up_to: self.confirmed_block(self.confirmations, to).await?.map(|b| b.min(to)),
                confirm_large_up_to: self.confirmed_large(to).await?.map(|b| b.min(to)),
                cursor: Some(cursor::Cursor { block_number: to, block_hash: last.hash, block_time: last.time }),
                blocks: [first, last].iter().map(link).collect(),
                forget_blocks_below: to.saturating_sub(MAX_REORG_DEPTH),
                at: self.chain_now(),
                answered: Some(answered),
            },
            None => Step {
                from_cursor: stored,
                transfers,
                at: self.chain_now(),
                answered: Some(answered),
                ..Default::default()
            },
        };
        let mut tx = self.store.begin().await?;
        let outcome = match credit::commit_step(&mut tx, &self.rules, &step).await {
            Err(StoreError::Conflict(why)) => {
                tracing::info!(why, "an order changed under the step; recomputing");
                return Ok(Progress::Retry("an order changed under the step".into()));
            }
            other => other?,
        };
        tx.commit().await.context("committing the step")?;
        self.status.committed();
        self.window_open = !linked;
        if linked {
            self.status.set_processed(to);
            self.status.set_processed_time(last.time);
        }
        if !outcome.removed.is_empty() {
            let deep: Vec<_> =
                outcome.removed.iter().filter(|r| r.confirmed).map(|r| (&r.order_id, &r.tx_hash)).collect();
            tracing::warn!(
                chain = self.name,
                from,
                to,
                removed = outcome.removed.len(),
                reversed = ?outcome.reversed,
                "transfers recorded in a window left the chain before it was linked"
            );
            if !deep.is_empty() {
                tracing::error!(removed = ?deep, "reorg deeper than the confirmations: confirmed transfers left the canonical chain");
            }
        }
        metrics::counter!(crate::telemetry::TRANSFERS_MATCHED).increment(outcome.recorded as u64);
        crate::telemetry::payments_credited("token", outcome.paid.len());
        if outcome.recorded > 0 || !outcome.paid.is_empty() {
            tracing::info!(
                chain = self.name,
                from,
                to,
                recorded = outcome.recorded,
                paid = outcome.paid.len(),
                "step committed"
            );
        }
        Ok(if to < head { Progress::MoreToDo } else { Progress::CaughtUp })
    }

    /// Nothing new to read: only let earlier transfers reach their confirmations, counted
    /// from the cursor (a block whose logs a node served).
    async fn confirm_only(&mut self, c: cursor::Cursor) -> Result<(), StepError> {
        let Some(block) = self.confirmed_block(self.confirmations, c.block_number).await? else { return Ok(()) };
        let step = Step {
            from_cursor: Some(c),
            confirm_up_to: Some(block.min(c.block_number)),
            confirm_large_up_to: self.confirmed_large(c.block_number).await?.map(|b| b.min(c.block_number)),
            at: self.chain_now(),
            ..Default::default()
        };
        let mut tx = self.store.begin().await?;
        let outcome = match credit::commit_step(&mut tx, &self.rules, &step).await {
            Err(StoreError::Conflict(_)) => return Ok(()), // the next poll recomputes
            other => other?,
        };
        tx.commit().await?;
        self.status.committed();
        crate::telemetry::payments_credited("token", outcome.paid.len());
        Ok(())
    }

    /// The deepest block whose transfers count as confirmed under `confirmations`.
    async fn confirmed_block(&self, confirmations: Confirmations, head: u64) -> anyhow::Result<Option<u64>> {
        super::rpc::confirmed_block(&self.provider, confirmations, head).await
    }

    /// The same for large orders, when `[chain.finality]` is set.
    async fn confirmed_large(&self, head: u64) -> anyhow::Result<Option<u64>> {
        match self.large_confirmations {
            Some(c) => self.confirmed_block(c, head).await,
            None => Ok(None),
        }
    }

    /// After a reorg: the highest stored block the node still agrees with. Everything above
    /// it is rewound (and reversed where it was credited). Without one within the kept
    /// hashes the watcher stops advancing: jumping would skip blocks nobody checked.
    async fn walk_back(&mut self, from: cursor::Cursor) -> Result<Progress, StepError> {
        let chain_id = self.rules.chain_id;
        let floor = from.block_number.saturating_sub(MAX_REORG_DEPTH);
        let mut ancestor = None;
        for (n, stored) in cursor::blocks_below(self.store.pool(), chain_id, from.block_number, floor).await? {
            let Some(node) = self.header(n).await? else {
                return Ok(Progress::Retry("the node does not have a block below the cursor".into()));
            };
            if node.hash == stored {
                ancestor = Some(cursor::Cursor { block_number: n, block_hash: node.hash, block_time: node.time });
                break;
            }
        }
        let Some(ancestor) = ancestor else {
            let reason = format!(
                "reorg: no common ancestor within the {MAX_REORG_DEPTH} kept blocks below {}; the watcher stopped \
                 advancing (an operator must check the chain and the RPC endpoints)",
                from.block_number
            );
            tracing::error!("{reason}");
            self.status.set_problem(Some(reason.clone()));
            return Err(StepError { error: anyhow::anyhow!(reason), rate_limited: false });
        };
        let mut tx = self.store.begin().await?;
        let (reversed, deep) = match credit::rewind(&mut tx, &self.rules, ancestor, self.chain_now(), from).await {
            Err(StoreError::Conflict(_)) => return Ok(Progress::Retry("an order changed under the rewind".into())),
            other => other?,
        };
        tx.commit().await?;
        self.status.committed();
        self.status.set_processed(ancestor.block_number);
        self.status.set_processed_time(ancestor.block_time);
        tracing::warn!(
            chain = self.name,
            from = from.block_number,
            ancestor = ancestor.block_number,
            "reorg: rewound to the common ancestor"
        );
        if !deep.is_empty() {
            tracing::error!(
                removed = ?deep,
                reversed = ?reversed,
                "reorg deeper than the confirmations: confirmed transfers left the canonical chain"
            );
        }
        Ok(Progress::MoreToDo)
    }

    /// Headers of `numbers`, fetched a few at a time, in order; None where a backend does not
    /// serve one yet.
    /// Headers of `numbers` (None where the node has none yet), asked in JSON-RPC batches of
    /// `HEADER_BATCH`: one round trip for the zone near the head instead of one per block. A
    /// node that refuses batches is asked call by call.
    async fn headers(&self, numbers: &[u64]) -> anyhow::Result<Vec<Option<BlockHead>>> {
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(HEADER_BATCH) {
            if chunk.len() > 1
                && let Some(heads) = self.header_batch(chunk).await?
            {
                out.extend(heads);
                continue;
            }
            let singles: Vec<_> = chunk.iter().map(|n| self.header(*n)).collect();
            let fetched: Vec<anyhow::Result<Option<BlockHead>>> =
                futures_util::stream::iter(singles).buffered(16).collect().await;
            for head in fetched {
                out.push(head?);
            }
        }
        Ok(out)
    }

    /// One batch of headers; None when the batch itself was refused (not a call in it).
    async fn header_batch(&self, numbers: &[u64]) -> anyhow::Result<Option<Vec<Option<BlockHead>>>> {
        let mut batch = alloy::rpc::client::BatchRequest::new(self.provider.client());
        let mut waiters = Vec::with_capacity(numbers.len());
        for n in numbers {
            let params = (BlockNumberOrTag::Number(*n), false);
            waiters.push(batch.add_call::<_, Option<alloy::rpc::types::Block>>("eth_getBlockByNumber", &params)?);
        }
        if let Err(e) = batch.send().await {
            tracing::debug!(error = %e, "a batch of headers was refused; asking one by one");
            return Ok(None);
        }
        let mut heads = Vec::with_capacity(numbers.len());
        for (n, waiter) in numbers.iter().zip(waiters) {
            let block = waiter.await.with_context(|| format!("eth_getBlockByNumber({n})"))?;
            heads.push(block.map(|b| head_of(*n, &b.header)));
        }
        Ok(Some(heads))
    }

    async fn header(&self, n: u64) -> anyhow::Result<Option<BlockHead>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .with_context(|| format!("eth_getBlockByNumber({n})"))?;
        Ok(block.map(|b| head_of(n, &b.header)))
    }

    /// The tied look at `from..=to`: the answer fetched ahead when it was for this very range
    /// (it is judged like any answer), else asked now.
    async fn range_look(&mut self, from: u64, to: u64) -> anyhow::Result<TiedLook> {
        match self.prefetched.take() {
            Some(mut p) if (p.from, p.to) == (from, to) => match (&mut p.answer).await {
                Ok(answer) => answer,
                Err(e) => Err(anyhow::anyhow!("prefetching logs: {e}")),
            },
            _ => tied_look(&self.provider, &self.tokens, from, to, self.tie_logs).await,
        }
    }

    /// While this step matches and commits, asks for the next range when it lies wholly below
    /// the head (near the head the next step plans its range from the head it reads).
    fn prefetch_next(&mut self, to: u64, head: u64) {
        let (from, next_to) = (to + 1, to + self.range.get());
        if next_to + PREFETCH_MARGIN >= head {
            return;
        }
        let (provider, tokens, tie) = (self.provider.clone(), self.tokens.clone(), self.tie_logs);
        let answer = tokio::spawn(async move { tied_look(&provider, &tokens, from, next_to, tie).await });
        self.prefetched = Some(Prefetch { from, to: next_to, answer });
    }

    /// Gives each transfer its block's timestamp from that block's header (the range's ends at
    /// hand, others fetched): the header must have the log's hash (else the node serving it is
    /// on another fork: `Missing`, the step retries) and its bloom must hold the log's address
    /// and topics (else the log cannot be in that block: it is dropped and counted).
    async fn stamp_times(
        &self,
        transfers: &mut Vec<Transfer>,
        mut known: HashMap<u64, BlockHead>,
    ) -> anyhow::Result<Stamped> {
        let mut missing: Vec<u64> =
            transfers.iter().map(|t| t.block_number).filter(|n| !known.contains_key(n)).collect();
        missing.sort_unstable();
        missing.dedup();
        for head in self.headers(&missing).await? {
            let Some(h) = head else { return Ok(Stamped::Missing) };
            known.insert(h.number, h);
        }
        let before = transfers.len();
        for t in transfers.iter() {
            if known.get(&t.block_number).is_none_or(|h| h.hash != t.block_hash) {
                return Ok(Stamped::Missing);
            }
        }
        transfers.retain(|t| {
            let topics = [IERC20::Transfer::SIGNATURE_HASH, t.from.into_word(), t.to.into_word()];
            known.get(&t.block_number).is_some_and(|h| bloom_holds(&h.bloom, &t.token, &topics))
        });
        if transfers.len() < before {
            tracing::warn!(
                chain = self.name,
                refused = before - transfers.len(),
                "transfers not in their block's bloom refused"
            );
            metrics::counter!(crate::telemetry::REFUSED_LOGS).increment((before - transfers.len()) as u64);
        }
        for t in transfers.iter_mut() {
            t.block_time = known.get(&t.block_number).map(|h| h.time);
        }
        Ok(Stamped::All)
    }

    /// Transfers into deposit addresses; everything else is skipped by the index.
    async fn matching_transfers(&self, logs: &[Log]) -> anyhow::Result<Vec<Transfer>> {
        let mut out = Vec::new();
        for log in logs {
            // A node may answer logs nobody asked for: only the tokens' Transfers count.
            if !self.tokens.contains(&log.address()) || log.topics().first() != Some(&IERC20::Transfer::SIGNATURE_HASH)
            {
                continue;
            }
            // topics: [signature, from, to]; the recipient decides whether we care.
            let Some(to_topic) = log.topics().get(2) else { continue };
            let to = Address::from_word(*to_topic);
            let Some(order_id) = self.index.lookup(&self.store, &to).await? else { continue };
            // Some tokens write Transfer logs of another shape (the value as a fourth topic, no
            // data): no ERC20 amount can be read from them, so they are recorded and skipped.
            let decoded = match log.log_decode::<IERC20::Transfer>() {
                Ok(decoded) => decoded,
                Err(e) => {
                    tracing::warn!(token = %log.address(), tx_hash = ?log.transaction_hash, log_index = ?log.log_index,
                        error = %e, "a Transfer log without the ERC20 shape was skipped");
                    metrics::counter!(crate::telemetry::MALFORMED_LOGS).increment(1);
                    continue;
                }
            };
            out.push(Transfer {
                chain_id: self.rules.chain_id,
                tx_hash: log.transaction_hash.context("log without tx hash")?,
                log_index: log.log_index.context("log without index")?,
                block_number: log.block_number.context("log without block number")?,
                block_hash: log.block_hash.context("log without block hash")?,
                token: log.address(),
                from: decoded.inner.data.from,
                to,
                amount_base: decoded.inner.data.value,
                order_id: Some(order_id),
                block_time: None,
            });
        }
        // The same log can arrive twice (an answer completed by a by-hash fetch).
        out.sort_by_key(|t| (t.block_number, t.log_index));
        out.dedup_by_key(|t| (t.tx_hash, t.log_index));
        Ok(out)
    }
}

fn link(h: &BlockHead) -> (u64, B256, B256) {
    (h.number, h.hash, h.parent)
}

/// `eth_getLogs(from, to)` for the tokens' Transfers with the headers of `from` and `to`, in
/// one JSON-RPC batch: one HTTP request reaches one node, so the headers say whether the node
/// that answered the logs has the range (`completeness::verify`). With `tie` off (only to
/// measure what the tie costs) the logs are asked alone and the headers after them.
async fn tied_look(
    provider: &DynProvider,
    tokens: &[Address],
    from: u64,
    to: u64,
    tie: bool,
) -> anyhow::Result<TiedLook> {
    let filter = Filter::new()
        .from_block(from)
        .to_block(to)
        .address(tokens.to_vec())
        .event_signature(IERC20::Transfer::SIGNATURE_HASH);
    let header_of = |n: u64, b: Option<alloy::rpc::types::Block>| b.map(|b| head_of(n, &b.header));
    if !tie {
        let logs = provider.get_logs(&filter).await?;
        let first = header_of(from, provider.get_block_by_number(BlockNumberOrTag::Number(from)).await?);
        let last = header_of(to, provider.get_block_by_number(BlockNumberOrTag::Number(to)).await?);
        return Ok(TiedLook { from, to, logs, first, last, window: false });
    }
    // Headers first: a node answering a batch in order, and so having `to` when it answers
    // its header, has it when it answers the logs after it (a head only moves up).
    let mut batch = alloy::rpc::client::BatchRequest::new(provider.client());
    let block = |n: u64| (BlockNumberOrTag::Number(n), false);
    let first = batch.add_call::<_, Option<alloy::rpc::types::Block>>("eth_getBlockByNumber", &block(from))?;
    let last = if to > from {
        Some(batch.add_call::<_, Option<alloy::rpc::types::Block>>("eth_getBlockByNumber", &block(to))?)
    } else {
        None
    };
    let logs = batch.add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))?;
    batch.send().await.context("a batch of headers and eth_getLogs")?;
    let first = header_of(from, first.await.with_context(|| format!("eth_getBlockByNumber({from})"))?);
    let last = match last {
        Some(waiter) => header_of(to, waiter.await.with_context(|| format!("eth_getBlockByNumber({to})"))?),
        None => first,
    };
    let logs = logs.await.context("eth_getLogs")?;
    Ok(TiedLook { from, to, logs, first, last, window: false })
}

fn head_of(number: u64, h: &alloy::rpc::types::Header) -> BlockHead {
    BlockHead { number, hash: h.hash, parent: h.parent_hash, time: h.timestamp as i64, bloom: h.logs_bloom }
}
