//! The chain watcher. `eth_getLogs` from the stored cursor is the truth: Transfer logs of the
//! configured tokens, matched in memory against every order's deposit address. Each step is
//! checked against block hashes (reorgs are walked back to the common ancestor) and committed
//! with the cursor in one transaction (see `payments::credit`). Errors never stop the daemon:
//! the loop backs off and resumes from the stored cursor.

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

use super::contracts::IERC20;
use super::range::{AdaptiveRange, is_too_large};
use super::reorg::{ParentCheck, check_chain};
use super::status::ChainStatus;
use super::{leader, wake};
use crate::config::{Config, Confirmations};
use crate::payments::credit::{self, Rules, Step};
use crate::store::orders::deposit_addresses_since;
use crate::store::transfers::Transfer;
use crate::store::{Store, cursor, unix_now};

/// Blocks this close to the head get every header fetched and stored: reorgs happen here.
pub const UNSAFE_ZONE: u64 = 64;
/// How far back a reorg is searched for, and how many block hashes are kept.
const MAX_REORG_DEPTH: u64 = 256;
/// Orders are re-read from this far behind the newest one seen, so an order whose transaction
/// committed late is still picked up.
const INDEX_MARGIN_SECS: i64 = 600;
const MAX_RANGE: u64 = 5_000;

pub struct Watcher {
    store: Store,
    provider: DynProvider,
    rules: Rules,
    tokens: Vec<Address>,
    confirmations: Confirmations,
    start_block: u64,
    range: AdaptiveRange,
    index: DepositIndex,
    status: Arc<ChainStatus>,
}

/// Deposit address → order id, for every crypto order.
#[derive(Default)]
struct DepositIndex {
    by_address: HashMap<Address, String>,
    newest: i64,
}

impl DepositIndex {
    async fn refresh(&mut self, store: &Store) -> anyhow::Result<()> {
        let since = if self.by_address.is_empty() { i64::MIN } else { self.newest - INDEX_MARGIN_SECS };
        for w in deposit_addresses_since(store.pool(), since).await? {
            self.newest = self.newest.max(w.created_at);
            self.by_address.insert(w.deposit_address, w.order_id);
        }
        Ok(())
    }
}

enum Progress {
    CaughtUp,
    MoreToDo,
}

impl Watcher {
    pub fn new(config: &Config, store: Store, provider: DynProvider, status: Arc<ChainStatus>) -> Self {
        let tokens: Vec<Address> = config.tokens.values().map(|t| t.address).collect();
        let decimals = config.tokens.values().map(|t| (t.address, t.decimals)).collect();
        Self {
            store,
            provider,
            rules: Rules {
                chain_id: config.chain.chain_id,
                tolerance: config.orders.underpayment_tolerance.0,
                late_window_secs: (config.orders.late_window_hours * 3600) as i64,
                decimals,
            },
            tokens,
            confirmations: config.chain.confirmations,
            start_block: config.chain.start_block,
            range: AdaptiveRange::new(1_000, MAX_RANGE),
            index: DepositIndex::default(),
            status,
        }
    }

    /// Watches while this process holds the lease; waits for it otherwise.
    pub async fn run(
        mut self,
        ws_url: Option<String>,
        poll: Duration,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let wake = Arc::new(Notify::new());
        if let Some(url) = ws_url {
            tokio::spawn(wake::run(url, wake.clone(), shutdown.clone()));
        }
        while let Some(lease) = leader::acquire(&self.store, &shutdown).await {
            let lost = shutdown.child_token();
            let keeper = tokio::spawn(lease.keep(lost.clone()));
            self.status.set_leader(true);
            tracing::info!("watching the chain");
            self.watch(&wake, poll, &lost).await;
            self.status.set_leader(false);
            lost.cancel();
            let _ = keeper.await;
        }
        Ok(())
    }

    async fn watch(&mut self, wake: &Notify, poll: Duration, stop: &CancellationToken) {
        if self.tokens.is_empty() {
            // An eth_getLogs filter without addresses would match every contract's Transfers.
            // The lease is still held: the jobs and webhook deliveries follow it.
            tracing::warn!("no [tokens] configured: the watcher has nothing to watch");
            return stop.cancelled().await;
        }
        let mut backoff = poll;
        loop {
            let wait = match self.step().await {
                Ok(Progress::MoreToDo) => Duration::ZERO,
                Ok(Progress::CaughtUp) => {
                    backoff = poll;
                    poll
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        "watcher step failed"
                    );
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
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
        while let Progress::MoreToDo = self.step().await? {}
        Ok(())
    }

    /// One step: check the cursor's block, fetch the next range, commit. Never skips a block:
    /// the cursor moves only in the transaction that records the range's transfers.
    async fn step(&mut self) -> anyhow::Result<Progress> {
        let chain_id = self.rules.chain_id;
        let head = self.provider.get_block_number().await.context("eth_blockNumber")?;
        self.status.set_head(head);
        // A failed read is an error, never "no cursor": that would restart from start_block.
        let stored = cursor::get(self.store.pool(), chain_id).await.context("reading the cursor")?;

        if let Some(c) = stored {
            let canonical = self.header(c.block_number).await?;
            if canonical.1 != c.block_hash {
                self.walk_back(c).await?;
                return Ok(Progress::MoreToDo);
            }
            self.status.set_processed(c.block_number);
        }
        let from = stored.map_or(self.start_block, |c| c.block_number + 1);
        if from > head {
            self.confirm_only(head, stored).await?;
            return Ok(Progress::CaughtUp);
        }
        let to = head.min(from + self.range.get() - 1);

        // The first block must extend the cursor; blocks near the head (where reorgs happen)
        // are all fetched, checked as one chain and kept; far behind, the ends suffice.
        let tail_from = from.max(head.saturating_sub(UNSAFE_ZONE)).max(from + 1);
        let mut numbers = vec![from];
        numbers.extend(tail_from..=to);
        if *numbers.last().expect("non-empty") != to {
            numbers.push(to);
        }
        let headers = self.headers(&numbers).await?;
        let linked_from = headers.first().expect("from is fetched").0;
        let near_head: Vec<_> =
            headers.iter().copied().filter(|(n, _, _)| *n >= tail_from || *n == linked_from).collect();
        let contiguous = tail_from == from + 1;
        let chain_check = match check_chain(stored.map(|c| c.block_hash), &headers[..1]) {
            ParentCheck::Valid | ParentCheck::Unknown => {
                let base = if contiguous { Some(headers[0].1) } else { None };
                check_chain(base, &headers[1..].iter().copied().filter(|(n, _, _)| *n >= tail_from).collect::<Vec<_>>())
            }
            mismatch => mismatch,
        };
        if let ParentCheck::Mismatch { expected, got } = chain_check {
            tracing::warn!(%expected, %got, "chain moved while reading; retrying");
            return Ok(Progress::MoreToDo);
        }
        let logs = match self.logs(from, to).await {
            Ok(logs) => logs,
            Err(e) if is_too_large(&format!("{e:#}")) => {
                self.range.shrink();
                tracing::info!(range = self.range.get(), "node refused the range; shrinking");
                return Ok(Progress::MoreToDo);
            }
            Err(e) => return Err(e),
        };
        self.range.grow();
        metrics::counter!(crate::telemetry::LOGS_SCANNED).increment(logs.len() as u64);
        let known: HashMap<u64, B256> = headers.iter().map(|(n, h, _)| (*n, *h)).collect();
        if logs.iter().any(|l| l.block_number.and_then(|n| known.get(&n)).is_some_and(|h| Some(*h) != l.block_hash)) {
            tracing::warn!("logs from another fork than the headers; retrying");
            return Ok(Progress::MoreToDo);
        }

        // Refreshed after the logs were fetched: any order whose address is paid in these logs
        // was committed before the payment was mined, so it is in the index now.
        self.index.refresh(&self.store).await?;
        let transfers = self.matching_transfers(&logs)?;
        let (to_number, to_hash, _) = *headers.last().expect("at least one header");
        let step = Step {
            transfers,
            confirm_up_to: self.confirmed_block(head).await?.map(|b| b.min(to)),
            cursor: Some(cursor::Cursor { block_number: to_number, block_hash: to_hash }),
            blocks: near_head,
            forget_blocks_below: to.saturating_sub(MAX_REORG_DEPTH),
            at: unix_now(),
        };
        let mut tx = self.store.begin().await?;
        let outcome = credit::commit_step(&mut tx, &self.rules, &step).await?;
        tx.commit().await.context("committing the step")?;
        self.status.set_processed(to);
        metrics::counter!(crate::telemetry::TRANSFERS_MATCHED).increment(outcome.recorded as u64);
        crate::telemetry::payments_credited("token", outcome.paid.len());
        if outcome.recorded > 0 || !outcome.paid.is_empty() {
            tracing::info!(from, to, recorded = outcome.recorded, paid = outcome.paid.len(), "step committed");
        }
        Ok(if to < head { Progress::MoreToDo } else { Progress::CaughtUp })
    }

    /// Nothing new to read: only let earlier transfers reach their confirmations.
    async fn confirm_only(&mut self, head: u64, stored: Option<cursor::Cursor>) -> anyhow::Result<()> {
        let Some(c) = stored else { return Ok(()) };
        let Some(block) = self.confirmed_block(head).await? else { return Ok(()) };
        let step = Step { confirm_up_to: Some(block.min(c.block_number)), at: unix_now(), ..Default::default() };
        let mut tx = self.store.begin().await?;
        let outcome = credit::commit_step(&mut tx, &self.rules, &step).await?;
        tx.commit().await?;
        crate::telemetry::payments_credited("token", outcome.paid.len());
        Ok(())
    }

    /// The deepest block whose transfers count as confirmed.
    async fn confirmed_block(&self, head: u64) -> anyhow::Result<Option<u64>> {
        match self.confirmations {
            Confirmations::Blocks(n) => Ok((head + 1).checked_sub(n)),
            Confirmations::Finalized => {
                let block = self.provider.get_block_by_number(BlockNumberOrTag::Finalized).await?;
                Ok(block.map(|b| b.header.number))
            }
        }
    }

    /// After a reorg: the highest stored block the node still agrees with.
    async fn walk_back(&mut self, from: cursor::Cursor) -> anyhow::Result<()> {
        let chain_id = self.rules.chain_id;
        let floor = from.block_number.saturating_sub(MAX_REORG_DEPTH);
        let mut ancestor = None;
        let mut n = from.block_number;
        while n > floor {
            n -= 1;
            if let Some(stored) = cursor::block_hash(self.store.pool(), chain_id, n).await? {
                let (_, hash, _) = self.header(n).await?;
                if hash == stored {
                    ancestor = Some(cursor::Cursor { block_number: n, block_hash: hash });
                    break;
                }
            }
        }
        let ancestor = match ancestor {
            Some(a) => a,
            None => {
                let (number, hash, _) = self.header(floor).await?;
                tracing::error!(from = from.block_number, floor, "no common ancestor within the reorg window");
                cursor::Cursor { block_number: number, block_hash: hash }
            }
        };
        let mut tx = self.store.begin().await?;
        let deep = credit::rewind(&mut tx, &self.rules, ancestor, unix_now()).await?;
        tx.commit().await?;
        tracing::warn!(
            from = from.block_number,
            ancestor = ancestor.block_number,
            "reorg: rewound to the common ancestor"
        );
        if !deep.is_empty() {
            tracing::error!(
                affected = ?deep,
                "reorg deeper than the confirmations: these confirmed transfers left the canonical chain"
            );
        }
        Ok(())
    }

    /// Headers of `numbers`, fetched a few at a time, in order.
    async fn headers(&self, numbers: &[u64]) -> anyhow::Result<Vec<(u64, B256, B256)>> {
        let futures: Vec<_> = numbers.iter().map(|n| self.header(*n)).collect();
        futures_util::stream::iter(futures).buffered(16).collect::<Vec<_>>().await.into_iter().collect()
    }

    async fn header(&self, n: u64) -> anyhow::Result<(u64, B256, B256)> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .with_context(|| format!("eth_getBlockByNumber({n})"))?
            .with_context(|| format!("block {n} not found"))?;
        Ok((n, block.header.hash, block.header.parent_hash))
    }

    async fn logs(&self, from: u64, to: u64) -> anyhow::Result<Vec<Log>> {
        let filter = Filter::new()
            .address(self.tokens.clone())
            .event_signature(IERC20::Transfer::SIGNATURE_HASH)
            .from_block(from)
            .to_block(to);
        Ok(self.provider.get_logs(&filter).await?)
    }

    /// Transfers into known deposit addresses; everything else is skipped by a map lookup.
    fn matching_transfers(&self, logs: &[Log]) -> anyhow::Result<Vec<Transfer>> {
        let mut out = Vec::new();
        for log in logs {
            // topics: [signature, from, to]; the recipient decides whether we care.
            let Some(to_topic) = log.topics().get(2) else { continue };
            let to = Address::from_word(*to_topic);
            let Some(order_id) = self.index.by_address.get(&to) else { continue };
            let decoded = log.log_decode::<IERC20::Transfer>().context("malformed Transfer log")?;
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
                order_id: Some(order_id.clone()),
            });
        }
        Ok(out)
    }
}
