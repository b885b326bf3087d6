//! The chain watcher's step: plan a range from the stored cursor, fetch what the trust rule
//! needs (`reader`), believe only what `completeness::verify` proves, match the transfers to
//! orders (`matching`), and commit them with the cursor in one transaction (see
//! `payments::credit`). The cursor moves only past blocks whose answer was proven, never
//! skipping one; reorgs of any depth are walked back to the common ancestor and what left the
//! chain is reversed; without an ancestor the watcher stops advancing rather than jump. The
//! loop around steps is in `supervisor`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use anyhow::Context;

use super::ahead;
use super::reader::Reader;
use crate::chain::completeness::{self, Believed, BlockHead, Look, Verdict, verify};
use crate::chain::deposit_index::DepositIndex;
use crate::chain::one_node::verify_tied;
use crate::chain::pace::Pace;
use crate::chain::range::{AdaptiveRange, Failure, classify};
use crate::chain::rpc;
use crate::chain::status::ChainStatus;
use crate::config::{ChainRef, Config, Confirmations, RpcBatches};
use crate::payments::credit::{self, Rules, Step};
use crate::store::{Store, cursor, unix_now};

/// How deep a `safe` or `finalized` tag is taken to be when shown as a count of confirmations.
pub const UNSAFE_ZONE: u64 = 64;
/// How far back a reorg is searched for, and how many block hashes are kept.
pub(super) const MAX_REORG_DEPTH: u64 = 256;
const MAX_RANGE: u64 = 5_000;
/// Bloom-positive blocks without log evidence whose receipts one step asks for.
const RECEIPTS_PER_STEP: usize = 8;

pub struct Watcher {
    /// The chain's name, in logs and problems.
    pub(super) name: String,
    pub(super) store: Store,
    pub(super) reader: Reader,
    pub(super) rpc_names: String,
    pub(super) rpc_urls: Vec<String>,
    pub(super) rules: Rules,
    pub(super) tokens: Vec<Address>,
    confirmations: Confirmations,
    /// `[chain.finality] large`: what large orders wait for.
    large_confirmations: Option<Confirmations>,
    start_block: u64,
    range: AdaptiveRange,
    pub(super) index: DepositIndex,
    pub(super) status: Arc<ChainStatus>,
    /// The endpoints behind the provider, when the watcher may leave one out (another chain).
    pub(super) failover: Option<crate::chain::failover::Failover>,
    /// The info line while far behind the head.
    pub(super) catch_up_log: super::progress::CatchUpLog,
    /// The last step reached the head: the next poll asks for the new blocks' logs with it.
    following: bool,
    /// `rpc_batches = "one_node"`: a range is believed on one batch's two end headers and logs
    /// (`one_node::verify_tied`) instead of a header per block (`completeness::verify`).
    pub(super) tied: bool,
    /// The configured factory and treasury: the factory's own treasury must be this one.
    pub(super) deposits: Option<crate::config::DepositsConfig>,
    pace: Pace,
    /// Tied, the last poll was a window (`one_node::window_due`): the next one links.
    pub(super) last_was_window: bool,
    /// Catching up, the next range's answer, read while the last step committed (`ahead`).
    ahead: Option<Look>,
}

/// What a step asks of the loop. Every outcome but `MoreToDo` waits before the next step.
pub(super) enum Progress {
    CaughtUp,
    MoreToDo,
    /// The answers disagreed or proved too little (chain moved, a lagging backend, a refused
    /// range): try again soon, not as an outage (unless it goes on: `/readyz` then says why).
    Retry(String),
}

/// A step failure, classified so the loop knows how long to wait.
pub(super) struct StepError {
    pub(super) error: anyhow::Error,
    pub(super) rate_limited: bool,
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
        let c = chain.config;
        Self {
            name: chain.name.to_string(),
            store,
            reader: Reader::new(provider, tokens.clone()),
            rpc_names: rpc::redact_all(c.rpc_http.urls()),
            rpc_urls: c.rpc_http.urls().to_vec(),
            rules: Rules::for_chain(config, chain),
            tokens,
            confirmations: c.confirmations,
            large_confirmations: c.finality.as_ref().map(|f| f.large),
            start_block: c.start_block,
            range: AdaptiveRange::new(1_000, MAX_RANGE),
            index: DepositIndex::new(config.orders.late_window_secs()),
            status,
            failover: None,
            catch_up_log: Default::default(),
            following: false,
            tied: c.rpc_batches == RpcBatches::OneNode,
            deposits: config.deposits.clone(),
            pace: Pace::default(),
            last_was_window: false,
            ahead: None,
        }
    }

    /// Each endpoint's chain id is checked on its own, and one serving another chain left out.
    pub fn with_failover(mut self, failover: crate::chain::failover::Failover) -> Self {
        self.failover = Some(failover);
        self
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

    /// One step and what it asks of the caller: "caught up", "more to do", or "retry: why".
    /// For drivers other than `run` (the simulator, one-off tools).
    pub async fn step_once(&mut self) -> anyhow::Result<Result<bool, String>> {
        match self.step().await {
            Ok(Progress::CaughtUp) => Ok(Ok(true)),
            Ok(Progress::MoreToDo) => Ok(Ok(false)),
            Ok(Progress::Retry(why)) => Ok(Err(why)),
            Err(e) => Err(e.error),
        }
    }

    /// One step: plan → fetch → verify → match → commit. The cursor moves only in the
    /// transaction that records the proven blocks' transfers, and only to the last of them.
    pub(super) async fn step(&mut self) -> Result<Progress, StepError> {
        // A failed read is an error, never "no cursor": that would restart from start_block.
        let stored = cursor::get(self.store.pool(), self.rules.chain_id).await.context("reading the cursor")?;
        // An answer read ahead serves the step right after the one that read it, or none.
        let ahead = self.ahead.take();
        let (head, quick) = self.read_head(stored).await?;
        let (from, to) = match self.plan(&head, stored).await? {
            Ok(range) => range,
            Err(progress) => return Ok(progress),
        };
        if let Some(progress) = self.window(stored, quick.as_ref(), from, &head).await? {
            return Ok(progress);
        }
        // Tied, the head's poll stands for the range only with the first block's header in it.
        let quick = quick.filter(|q| q.from == from && q.to == to && (!self.tied || q.headers.contains_key(&from)));
        let look = match quick.or_else(|| ahead::take_for(ahead, from, to)) {
            Some(look) => look,
            None => match self.reader.look(self.tied, from, to).await {
                Ok(look) => look,
                Err(e) => return self.refused(e, to - from + 1),
            },
        };
        // Catching up, the next range is read while this one is judged and committed.
        let next = (!self.following).then(|| ahead::next_range(look.to, head.number, self.range.grown())).flatten();
        let reader = self.reader.clone();
        let (read_ahead, progress) =
            tokio::join!(ahead::read(&reader, self.tied, next), self.believe_and_commit(look, stored, &head));
        self.ahead = read_ahead.filter(|_| matches!(progress, Ok(Progress::MoreToDo)));
        progress
    }

    /// Verify → match → commit of one look: the part of a step the next range's read overlaps.
    async fn believe_and_commit(
        &mut self,
        look: Look,
        stored: Option<cursor::Cursor>,
        head: &BlockHead,
    ) -> Result<Progress, StepError> {
        let believed = match self.believe(look, stored, head).await? {
            Ok(believed) => believed,
            Err(progress) => return Ok(progress),
        };
        self.range.grow();
        let progress = self.commit(stored, head.number, believed).await?;
        self.last_was_window = false;
        self.following = matches!(progress, Progress::CaughtUp);
        Ok(progress)
    }

    /// The head, and while following it the logs and headers of the blocks the pace says came,
    /// in the head's own request.
    async fn read_head(&mut self, stored: Option<cursor::Cursor>) -> Result<(BlockHead, Option<Look>), StepError> {
        let due = stored.filter(|_| self.following).map(|c| (c, self.pace.blocks_due(c.block_time, self.chain_now())));
        let (head, look) = match due {
            // The head is the last new block: one header fewer than the blocks due (tied, only
            // the first new block's, which links the range to the cursor, and not in a window).
            Some((c, due)) if due >= 1 => {
                let window = crate::chain::one_node::window_due(due, self.last_was_window);
                let extra = if !self.tied { due - 1 } else { u64::from(due >= 2 && !window) };
                let poll = self.reader.head_with_logs(c.block_number + 1, extra).await?;
                (poll.head, poll.look)
            }
            _ => (self.reader.head().await?, None),
        };
        self.record_head(&head).await?;
        Ok((head, look))
    }

    /// A refused `eth_getLogs`: a range or result cap asks for less; anything else is an error.
    fn refused(&mut self, e: anyhow::Error, asked: u64) -> Result<Progress, StepError> {
        match classify(&format!("{e:#}")) {
            Failure::TooLarge { span, cap } => {
                self.range.refused(span, cap, asked);
                tracing::info!(range = self.range.get(), "the node refused the range; asking for less");
                Ok(Progress::Retry("range refused".into()))
            }
            _ => Err(e.into()),
        }
    }

    /// The trust rule applied: the headers no answer had yet are asked, the receipts of a few
    /// bloom-positive blocks the logs did not prove, and `verify` judges it all.
    async fn believe(
        &mut self,
        mut look: Look,
        stored: Option<cursor::Cursor>,
        head: &BlockHead,
    ) -> Result<Result<Believed, Progress>, StepError> {
        let cursor = stored.map(|c| c.block_hash);
        let judge = |look: &Look| match self.tied {
            true => verify_tied(look, cursor, head, &self.tokens),
            false => verify(look, cursor, head, &self.tokens),
        };
        if !self.tied {
            self.reader.complete_headers(&mut look).await?;
        }
        let mut verdict = judge(&look);
        let wanted = completeness::receipts_wanted(&look, &verdict, &self.tokens, RECEIPTS_PER_STEP);
        if !wanted.is_empty() {
            // The logs answered did not prove every block they were asked for.
            metrics::counter!(crate::telemetry::UNTRUSTED_ANSWERS).increment(1);
            for hash in wanted {
                // A failed or refused call proves nothing: the block stays unproven this step.
                let answer = self.reader.block_logs(hash).await.unwrap_or_else(|e| {
                    tracing::debug!(chain = self.name, block = %hash, error = %e, "a block's receipts not read");
                    None
                });
                look.receipts.insert(hash, answer);
            }
            verdict = judge(&look);
        }
        let (from, to) = (look.from, look.to);
        Ok(match verdict {
            Verdict::Trusted { believed, .. } => {
                if believed.removed + believed.outside_bloom + believed.other_fork > 0 {
                    tracing::warn!(
                        chain = self.name,
                        removed = believed.removed,
                        outside_bloom = believed.outside_bloom,
                        other_fork = believed.other_fork,
                        "logs refused: removed, not in their block's bloom, or of another fork"
                    );
                    let refused = believed.removed + believed.outside_bloom + believed.other_fork;
                    metrics::counter!(crate::telemetry::REFUSED_LOGS).increment(refused as u64);
                }
                Ok(*believed)
            }
            Verdict::Unproven(block) => Err(Progress::Retry(format!(
                "no answer proves block {}'s logs yet (its bloom may hold a transfer; the endpoint answering \
                     logs lags the head {})",
                block.number, head.number
            ))),
            Verdict::NotKnown(block) => {
                metrics::counter!(crate::telemetry::UNTRUSTED_ANSWERS).increment(1);
                self.range.shrink(None, to - from + 1);
                Err(Progress::Retry(format!("no endpoint answered block {block}'s header yet (head {})", head.number)))
            }
            Verdict::Unlinked => Err(self.check_cursor(stored).await?),
            Verdict::Retry(why) => Err(Progress::Retry(why.into())),
        })
    }

    async fn record_head(&mut self, head: &BlockHead) -> Result<(), StepError> {
        self.pace.saw(head);
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
    pub(super) fn chain_now(&self) -> i64 {
        self.status.chain_now().unwrap_or_else(unix_now)
    }

    /// The range to read next, or why there is none: caught up (earlier transfers may reach
    /// their confirmations), the cursor's block gone (walked back), the node behind.
    async fn plan(
        &mut self,
        head: &BlockHead,
        stored: Option<cursor::Cursor>,
    ) -> Result<Result<(u64, u64), Progress>, StepError> {
        if let Some(c) = stored {
            self.status.set_processed(c.block_number);
            self.status.set_processed_time(c.block_time);
            if head.number <= c.block_number {
                if head.hash != c.block_hash {
                    // The head is at or below the cursor on another hash: is the cursor's block
                    // still on the chain?
                    match self.reader.header(c.block_number).await? {
                        None => return Ok(Err(Progress::Retry("the node is behind the cursor".into()))),
                        Some(h) if h.hash != c.block_hash => return Ok(Err(self.walk_back(c).await?)),
                        Some(_) => {}
                    }
                }
                self.confirm_only(c).await?;
                self.status.set_caught_up(true);
                return Ok(Err(Progress::CaughtUp));
            }
        }
        let from = stored.map_or(self.start_block, |c| c.block_number + 1);
        if from > head.number {
            self.status.set_caught_up(true);
            return Ok(Err(Progress::CaughtUp));
        }
        self.status.set_caught_up(false);
        Ok(Ok((from, head.number.min(from + self.range.get() - 1))))
    }

    /// Nothing new to read: only let earlier transfers reach their confirmations, counted
    /// from the cursor (a block whose logs were proven).
    async fn confirm_only(&mut self, c: cursor::Cursor) -> Result<(), StepError> {
        let Some(block) = self.confirmed_block(self.confirmations, c.block_number).await? else { return Ok(()) };
        let step = Step {
            from_cursor: Some(c),
            confirm_up_to: Some(block.min(c.block_number)),
            confirm_large_up_to: self.confirmed_large(c.block_number).await?.map(|b| b.min(c.block_number)),
            at: self.chain_now(),
            ..Default::default()
        };
        let Some(outcome) = self.commit_books(&step).await? else { return Ok(()) };
        crate::telemetry::payments_credited("token", outcome.paid.len());
        Ok(())
    }

    /// The deepest block whose transfers count as confirmed under `confirmations`.
    async fn confirmed_block(&self, confirmations: Confirmations, head: u64) -> anyhow::Result<Option<u64>> {
        rpc::confirmed_block(self.reader.provider(), confirmations, head).await
    }

    /// The same for large orders, when `[chain.finality]` is set.
    async fn confirmed_large(&self, head: u64) -> anyhow::Result<Option<u64>> {
        match self.large_confirmations {
            Some(c) => self.confirmed_block(c, head).await,
            None => Ok(None),
        }
    }

    /// Matches the believed logs to orders and commits them with the cursor at the last proven
    /// block. Confirmations count from that block, never from the head number alone. The
    /// answer is the whole of the proven blocks: a transfer stored there that it lacks (or
    /// stored at another height) is removed, and its order recomputed.
    async fn commit(&mut self, stored: Option<cursor::Cursor>, head: u64, b: Believed) -> Result<Progress, StepError> {
        let (first, last) = (b.first(), b.last());
        let to = last.number;
        metrics::counter!(crate::telemetry::LOGS_SCANNED).increment(b.logs.len() as u64);
        let answered = credit::Answered {
            from: b.from,
            to,
            logs: b.logs.iter().filter_map(|l| Some((l.transaction_hash?, l.log_index?, l.block_hash?))).collect(),
        };
        let headers: BTreeMap<u64, BlockHead> = b.headers.iter().map(|h| (h.number, *h)).collect();
        let transfers = match self.matched(&b.logs, &headers).await? {
            Ok(transfers) => transfers,
            Err(why) => return Ok(Progress::Retry(why)),
        };
        let step = Step {
            from_cursor: stored,
            transfers,
            confirm_up_to: self.confirmed_block(self.confirmations, to).await?.map(|b| b.min(to)),
            confirm_large_up_to: self.confirmed_large(to).await?.map(|b| b.min(to)),
            cursor: Some(cursor::Cursor { block_number: to, block_hash: last.hash, block_time: last.time }),
            blocks: [first, last].iter().map(|h| (h.number, h.hash, h.parent)).collect(),
            forget_blocks_below: to.saturating_sub(MAX_REORG_DEPTH),
            at: self.chain_now(),
            answered: Some(answered),
        };
        let Some(outcome) = self.commit_books(&step).await? else {
            return Ok(Progress::Retry("an order changed under the step".into()));
        };
        self.status.set_processed(to);
        self.status.set_processed_time(last.time);
        if !outcome.removed.is_empty() {
            let deep: Vec<_> =
                outcome.removed.iter().filter(|r| r.confirmed).map(|r| (&r.order_id, &r.tx_hash)).collect();
            tracing::warn!(chain = self.name, from = b.from, to, removed = outcome.removed.len(),
                reversed = ?outcome.reversed, "stored transfers the proven answer no longer holds were removed");
            if !deep.is_empty() {
                tracing::error!(removed = ?deep, "reorg deeper than the confirmations: confirmed transfers left the canonical chain");
            }
        }
        metrics::counter!(crate::telemetry::TRANSFERS_MATCHED).increment(outcome.recorded as u64);
        crate::telemetry::payments_credited("token", outcome.paid.len());
        if outcome.recorded > 0 || !outcome.paid.is_empty() {
            tracing::info!(
                chain = self.name,
                from = b.from,
                to,
                recorded = outcome.recorded,
                paid = outcome.paid.len(),
                "step committed"
            );
        }
        Ok(if to < head { Progress::MoreToDo } else { Progress::CaughtUp })
    }
}
