//! What the watcher knows, shared with the API (confirmations, readiness) and the jobs (the
//! chain's clock) without holding a lock across an await.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Blocks behind the head past which the watcher reports its catch-up progress and the console
/// shows the chain as catching up.
pub const FAR_BEHIND: u64 = 1_000;

#[derive(Debug, Default)]
pub struct ChainStatus {
    head: AtomicU64,
    processed: AtomicU64,
    /// Timestamp of the last processed block: the clock of the payment rules.
    processed_time: AtomicI64,
    /// The newest block timestamp seen (the head's, or on standby the processed block's) and
    /// when it was seen (milliseconds of `elapsed_ms`): the chain's clock now, without the
    /// host's clock (`chain_now`).
    seen_time: Mutex<Option<(i64, i64)>>,
    /// None: time between heads passes on the host's monotonic clock; Some: on a clock in
    /// milliseconds that a simulator moves (`with_simulated_clock`), so a seeded run stays
    /// the same run whatever the host's speed.
    simulated_clock: Option<Arc<AtomicI64>>,
    caught_up: AtomicBool,
    /// The node answered with the configured chain id (this process asked it).
    verified: AtomicBool,
    leader: AtomicBool,
    /// Counts the leases taken, so a lease lost and taken again at once is still seen as lost.
    leader_terms: AtomicU64,
    /// Why the watcher cannot go on (RPC unreachable, no common ancestor); `/readyz` says it.
    problem: Mutex<Option<String>>,
    /// Rung when the head moves or the watcher commits, so the order-event recorder looks at
    /// once instead of at its next poll.
    changed: tokio::sync::Notify,
    /// Lag samples of the last hour, for the console's chart.
    lag: Mutex<LagHistory>,
}

/// How far behind the head the watcher was: one sample per `LAG_STEP_SECS`, an hour of them
/// (this process's view since it started; by the host's clock, which only the chart uses).
#[derive(Debug, Default)]
pub struct LagHistory {
    samples: std::collections::VecDeque<LagSample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    /// Unix seconds, rounded down to the step.
    pub at: i64,
    pub head: u64,
    pub processed: u64,
}

impl LagSample {
    pub fn behind(&self) -> u64 {
        self.head.saturating_sub(self.processed)
    }
}

pub const LAG_STEP_SECS: i64 = 10;
const LAG_KEPT_SECS: i64 = 3600;

impl LagHistory {
    /// Keeps the newest reading of each step; drops what is older than an hour.
    pub fn record(&mut self, now: i64, head: u64, processed: u64) {
        let at = now - now.rem_euclid(LAG_STEP_SECS);
        let sample = LagSample { at, head, processed };
        match self.samples.back_mut() {
            Some(last) if last.at == at => *last = sample,
            _ => self.samples.push_back(sample),
        }
        while self.samples.front().is_some_and(|s| s.at <= at - LAG_KEPT_SECS) {
            self.samples.pop_front();
        }
    }
    pub fn samples(&self) -> Vec<LagSample> {
        self.samples.iter().copied().collect()
    }
    /// Blocks processed per second over the last minute of samples (None with fewer than two).
    pub fn blocks_per_second(&self) -> Option<f64> {
        let last = self.samples.back()?;
        let first = self.samples.iter().find(|s| s.at >= last.at - 60 && s.at < last.at)?;
        Some(last.processed.saturating_sub(first.processed) as f64 / (last.at - first.at) as f64)
    }
}

impl ChainStatus {
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }
    /// The head the watcher saw last (after a failover to a node behind the previous one,
    /// that node's head: keeping the highest ever seen would freeze confirmations).
    pub fn set_head(&self, n: u64) {
        if self.head.swap(n, Ordering::Relaxed) != n {
            self.changed.notify_one();
        }
        self.sample_lag();
    }
    /// The watcher committed what it read.
    pub fn committed(&self) {
        self.changed.notify_one();
    }
    /// Resolves at the next head move or commit (one that happened unawaited counts).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
    /// The head the watcher last saw (or, on standby, wrote); asked of the node only before
    /// any is known.
    pub async fn head_or_ask(&self, rpc: &alloy::providers::DynProvider) -> u64 {
        use alloy::providers::Provider;
        match self.head() {
            0 => rpc.get_block_number().await.unwrap_or(0),
            head => head,
        }
    }
    /// The last block the watcher has committed.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
    pub fn set_processed(&self, n: u64) {
        self.processed.store(n, Ordering::Relaxed);
        self.sample_lag();
    }
    /// Blocks between the head and the last processed block.
    pub fn behind(&self) -> u64 {
        self.head().saturating_sub(self.processed())
    }
    fn sample_lag(&self) {
        let (head, processed) = (self.head(), self.processed());
        if head > 0 && processed > 0 {
            let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
            lag.record(crate::store::unix_now(), head, processed);
        }
    }
    /// The last hour's lag samples, oldest first.
    pub fn lag_samples(&self) -> Vec<LagSample> {
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).samples()
    }
    pub fn blocks_per_second(&self) -> Option<f64> {
        self.lag.lock().unwrap_or_else(|e| e.into_inner()).blocks_per_second()
    }
    /// A status whose time between heads is `clock` (milliseconds), moved by its owner.
    pub fn with_simulated_clock(clock: Arc<AtomicI64>) -> Self {
        Self { simulated_clock: Some(clock), ..Self::default() }
    }
    /// Milliseconds on the monotonic clock between heads (see `simulated_clock`).
    fn elapsed_ms(&self) -> i64 {
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        match &self.simulated_clock {
            Some(clock) => clock.load(Ordering::Relaxed),
            None => START.get_or_init(std::time::Instant::now).elapsed().as_millis() as i64,
        }
    }
    /// A block timestamp just read (the head's). The same head read again keeps the moment it
    /// was first seen: the chain's clock goes on from there, not from each poll.
    pub fn set_head_time(&self, t: i64) {
        let now = self.elapsed_ms();
        let mut seen = self.seen_time.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none_or(|(old, _)| old != t) {
            *seen = Some((t, now));
        }
    }
    /// The chain's clock now: the newest block timestamp seen plus the time elapsed since (a
    /// duration, so a host clock set hours off changes nothing). None before any block is seen.
    pub fn chain_now(&self) -> Option<i64> {
        let now = self.elapsed_ms();
        let seen = *self.seen_time.lock().unwrap_or_else(|e| e.into_inner());
        seen.map(|(t, at)| t + (now - at).max(0) / 1_000)
    }
    pub fn processed_time(&self) -> i64 {
        self.processed_time.load(Ordering::Relaxed)
    }
    pub fn set_processed_time(&self, t: i64) {
        self.processed_time.store(t, Ordering::Relaxed);
    }
    /// True while the last step found nothing newer than what it had processed.
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }
    pub fn set_caught_up(&self, v: bool) {
        self.caught_up.store(v, Ordering::Relaxed);
    }
    /// True once this process's node answered with the configured chain id.
    pub fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Relaxed)
    }
    pub fn set_verified(&self) {
        self.verified.store(true, Ordering::Relaxed);
    }
    /// True while this process holds the watcher lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
    pub fn set_leader(&self, v: bool) {
        if v {
            self.leader_terms.fetch_add(1, Ordering::Relaxed);
        }
        self.leader.store(v, Ordering::Relaxed);
        if !v {
            self.set_caught_up(false);
        }
    }
    pub fn problem(&self) -> Option<String> {
        // A poisoned lock still holds a readable string; readiness must not panic.
        self.problem.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set_problem(&self, problem: Option<String>) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = problem;
    }
}

/// Chain id → the head its watcher last saw: confirmations are counted per chain.
pub type Heads = std::collections::BTreeMap<u64, u64>;

/// One configured chain as this process sees it: its name, id, RPC and watcher status.
pub struct WatchedChain {
    pub name: String,
    pub chain_id: u64,
    pub rpc: alloy::providers::DynProvider,
    /// The endpoints behind `rpc`: the watcher leaves out those serving another chain.
    pub failover: super::failover::Failover,
    pub status: std::sync::Arc<ChainStatus>,
}

/// Every configured chain, the first first. The first chain's lease also carries the jobs,
/// webhook deliveries and the order-event recorder (one process does them).
pub struct Chains {
    list: Vec<WatchedChain>,
}

impl Chains {
    /// One per configured chain, each with its provider over its endpoints.
    pub fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        let mut list = Vec::new();
        for chain in config.chains() {
            let (rpc, failover) = super::rpc::chain_provider(chain.config.rpc_http.urls(), chain.chain_id())?;
            list.push(WatchedChain {
                name: chain.name.to_string(),
                chain_id: chain.chain_id(),
                rpc,
                failover,
                status: std::sync::Arc::default(),
            });
        }
        Ok(Self { list })
    }

    pub fn first(&self) -> &WatchedChain {
        &self.list[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = &WatchedChain> {
        self.list.iter()
    }

    pub fn by_id(&self, chain_id: u64) -> Option<&WatchedChain> {
        self.list.iter().find(|c| c.chain_id == chain_id)
    }

    /// True when every chain's watcher has read up to its head (nothing unread could pay).
    pub fn all_caught_up(&self) -> bool {
        self.list.iter().all(|c| c.status.is_caught_up())
    }

    /// The clock of a payment rule on `chain_id`: that chain's `chain_now`, else the host's
    /// (before its watcher has read a block).
    pub fn now_on(&self, chain_id: u64) -> i64 {
        self.by_id(chain_id).and_then(|c| c.status.chain_now()).unwrap_or_else(crate::store::unix_now)
    }

    /// The least of the chains' clocks (an order can be paid on any of them).
    pub fn least_now(&self) -> i64 {
        self.list.iter().map(|c| self.now_on(c.chain_id)).min().unwrap_or_else(crate::store::unix_now)
    }

    /// The heads the watchers saw.
    pub fn heads(&self) -> Heads {
        self.list.iter().map(|c| (c.chain_id, c.status.head())).collect()
    }

    /// The same, asking a chain's node for the ones not known yet.
    pub async fn heads_or_ask(&self) -> Heads {
        let mut heads = Heads::new();
        for c in &self.list {
            heads.insert(c.chain_id, c.status.head_or_ask(&c.rpc).await);
        }
        heads
    }

    /// Resolves at the next head move or commit on any chain.
    pub async fn changed(&self) {
        let waits = self.list.iter().map(|c| Box::pin(c.status.changed()));
        futures_util::future::select_all(waits).await;
    }
}

/// On a process that does not hold the watcher lease: copies what the watching process wrote
/// (head, processed block, its time), every `every`, until `shutdown`.
pub async fn follow_watcher(
    store: crate::store::Store,
    chain_id: u64,
    status: std::sync::Arc<ChainStatus>,
    every: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    loop {
        if !status.is_leader() {
            match crate::store::cursor::watched(store.pool(), chain_id).await {
                Ok(Some((head, processed, time))) => status.copy_from_watcher(head, processed, time),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "reading the watcher's position"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

impl ChainStatus {
    /// Resolves once this process no longer holds the watcher lease (looked at every 50 ms),
    /// so leader-only work stops at once rather than at the end of its pass.
    pub async fn leadership_lost(&self) {
        let term = self.leader_terms.load(Ordering::Relaxed);
        while self.is_leader() && self.leader_terms.load(Ordering::Relaxed) == term {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    fn copy_from_watcher(&self, head: u64, processed: u64, time: i64) {
        self.set_head(head);
        self.set_processed(processed);
        if time != self.processed_time() {
            // The newest block time a process on standby knows (a poll behind the head's).
            self.set_head_time(time);
        }
        self.set_processed_time(time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_is_the_latest_seen_not_the_highest() {
        let s = ChainStatus::default();
        s.set_head(100);
        s.set_head(90); // a failover to a node 10 blocks behind
        assert_eq!(s.head(), 90);
    }
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    #[test]
    fn one_sample_per_step_an_hour_kept_and_a_rate_over_the_last_minute() {
        let mut lag = LagHistory::default();
        lag.record(1000, 100, 90);
        lag.record(1005, 110, 95); // same step: replaces
        assert_eq!(lag.samples(), vec![LagSample { at: 1000, head: 110, processed: 95 }]);
        assert_eq!(lag.blocks_per_second(), None);
        lag.record(1010, 120, 115);
        assert_eq!(lag.blocks_per_second(), Some(2.0));
        lag.record(1000 + 3600, 130, 130);
        assert_eq!(lag.samples().first().map(|s| s.at), Some(1010), "an hour back is dropped");
        assert_eq!(lag.samples().last().map(LagSample::behind), Some(0));
    }
}
