//! The watcher's life around its steps: the checks at start (the chain id, the treasury),
//! the lease, and the loop that runs steps, waits between them, backs off on errors and says
//! on `/readyz` why it does not move. Errors never stop the daemon: every retrying path waits
//! (rate limits and outages back off), and the loop resumes from the stored cursor.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::step::{Progress, StepError, Watcher};
use crate::chain::rpc::{self, describe};
use crate::chain::{leader, wake};

/// Retries in a row (a lagging endpoint, a fork between backends) before `/readyz` says why
/// the watcher waits.
const RETRIES_BEFORE_UNREADY: u32 = 5;
/// Consecutive failures before `/readyz` reports the RPC as the problem.
const FAILURES_BEFORE_UNREADY: u32 = 3;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Watcher {
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
        match crate::chain::deploy::check_treasury(self.reader.provider(), d).await {
            Err(e) if e.downcast_ref::<crate::chain::deploy::DeployError>().is_some() => {
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
                None => rpc::check_chain_id(self.reader.provider(), &self.rpc_urls, self.rules.chain_id).await,
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
}
