//! Sweeping: every confirmed token amount at a deposit address (a paid order's, a stray
//! payment's, money after an earlier sweep) moves to the treasury through the factory, many
//! addresses per transaction. Each sweep is recorded pending the moment it is sent, filled from
//! its receipt (the moved amounts, compared with what the ledger expected), confirmed once
//! `confirmations` deep and dropped if a reorg takes it out, which makes its addresses
//! sweepable again. An address whose transfer reverts (a blacklist, a paused token) fails alone;
//! it is retried in a transaction of its own, reported as stuck after 3 failures in a row and
//! from then on tried every 6 hours. Runs never overlap.

use std::collections::BTreeMap;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use anyhow::Context;
use serde::Serialize;

use crate::chain::rpc::confirmed_block;
use crate::chain::sweep::{RECEIPT_TIMEOUT, SweepReceipt, send_sweep, sweep_outcome};
use crate::config::{ChainRef, Config};
use crate::store::sweeps::{self, SweepState};
use crate::store::{Store, deposits, job_leases, orders, unix_now};

/// Addresses looked at per run; the rest wait for the next.
const PER_RUN: i64 = 5_000;
/// After this many failed attempts in a row an address is reported as stuck.
pub const STUCK_AFTER: i64 = 3;
/// A stuck address is attempted again at most this often.
pub const STUCK_RETRY_SECS: i64 = 6 * 3600;
/// A sent sweep that no node knows after this long is given up (its addresses are swept again).
const UNMINED_GIVE_UP_SECS: i64 = 600;

static RUNNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Longer than any run: a process that dies mid-run frees the sweep after this.
const LEASE_SECS: i64 = 3600;

#[derive(Debug, Default, Serialize)]
pub struct SweepReport {
    /// Addresses whose balance moved to the treasury in this run.
    pub swept: usize,
    pub transactions: Vec<String>,
    pub failed_batches: usize,
    /// Addresses whose transfer reverted inside a batch in this run.
    pub failed_addresses: Vec<String>,
    /// Addresses that failed `STUCK_AFTER` times in a row (an operator must look).
    pub stuck: Vec<String>,
    /// Addresses where the receipt moved another amount than the ledger expected.
    pub mismatches: Vec<Mismatch>,
    /// Earlier sweeps confirmed or dropped by this run's check.
    pub confirmed: usize,
    pub dropped: usize,
    /// True when another run was in progress, so this one did nothing.
    pub skipped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub address: String,
    pub token: String,
    pub expected: String,
    pub moved: String,
}

/// The lease that keeps two sweeps of one chain from running at once, across processes.
pub fn lease_name(chain_id: u64) -> String {
    format!("sweep:{chain_id}")
}

/// One chain's sweep, or why it could not run.
#[derive(Debug, Serialize)]
pub struct ChainSweep {
    pub chain_id: u64,
    #[serde(flatten)]
    pub report: Option<SweepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Sweeps each of `chains` in turn with that chain's gas (the `[signer]` key on its first
/// endpoint). A chain that fails (no gas, its RPC down) is reported; the others go on.
pub async fn sweep_chains(store: &Store, config: &Config, chains: &[ChainRef<'_>]) -> BTreeMap<String, ChainSweep> {
    let mut out = BTreeMap::new();
    for chain in chains {
        let result = async {
            let urls = chain.config.rpc_http.urls();
            let signer = crate::chain::rpc::signing_provider(urls[0].as_str(), crate::chain::rpc::signer_key(config)?)?;
            // Never send a sweep to another chain than the one whose ledger it follows.
            crate::chain::rpc::check_chain_id(&signer, &urls[..1], chain.chain_id()).await?;
            sweep_chain(store, config, *chain, &signer).await
        }
        .await;
        let (report, error) = match result {
            Ok(r) => (Some(r), None),
            Err(e) => {
                let said = crate::redact::error(&e);
                tracing::warn!(chain = chain.name, error = said, "sweep failed on this chain; the others go on");
                (None, Some(said))
            }
        };
        out.insert(chain.name.to_string(), ChainSweep { chain_id: chain.chain_id(), report, error });
    }
    out
}

/// The first chain's sweep.
pub async fn sweep_once(store: &Store, config: &Config, signer: &DynProvider) -> anyhow::Result<SweepReport> {
    sweep_chain(store, config, config.first_chain(), signer).await
}

/// Sweeps one chain's confirmed deposits with `signer` (a provider on that chain).
pub async fn sweep_chain(
    store: &Store,
    config: &Config,
    chain: ChainRef<'_>,
    signer: &DynProvider,
) -> anyhow::Result<SweepReport> {
    let factory = config.deposits.as_ref().context("[deposits] factory is needed to sweep")?.factory;
    // One run at a time: in this process, and across processes (the job and `paywatch sweep`).
    let Ok(_running) = RUNNING.try_lock() else {
        return Ok(SweepReport { skipped: true, ..Default::default() });
    };
    let holder = uuid::Uuid::new_v4().to_string();
    let lease = lease_name(chain.chain_id());
    if !job_leases::take(store.pool(), &lease, &holder, LEASE_SECS).await? {
        return Ok(SweepReport { skipped: true, ..Default::default() });
    }
    let result = sweep_held(store, config.jobs.sweep_batch as usize, chain, signer, factory).await;
    job_leases::release(store.pool(), &lease, &holder).await?;
    result
}

async fn sweep_held(
    store: &Store,
    batch: usize,
    chain: ChainRef<'_>,
    signer: &DynProvider,
    factory: Address,
) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let chain_id = chain.chain_id();
    recheck(store, chain, signer, factory, &mut report).await?;

    let mut by_token: BTreeMap<Address, Vec<(sweeps::Candidate, U256, i64)>> = BTreeMap::new();
    for c in sweeps::candidates(store.pool(), chain_id, PER_RUN).await? {
        let (received, swept) = sweeps::ledger(store.pool(), chain_id, &c.address, &c.token, None).await?;
        if received <= swept {
            continue;
        }
        let (failures, last_failure) =
            sweeps::failures_since_success(store.pool(), chain_id, &c.address, &c.token).await?;
        if failures >= STUCK_AFTER {
            report.stuck.push(crate::store::columns::address_text(&c.address));
            // Each attempt costs gas: a stuck address is tried again only every few hours.
            if last_failure.is_some_and(|at| unix_now() - at < STUCK_RETRY_SECS) {
                continue;
            }
        }
        by_token.entry(c.token).or_default().push((c, received - swept, failures));
    }
    if !report.stuck.is_empty() {
        tracing::error!(addresses = ?report.stuck, "deposit addresses that repeatedly fail to sweep");
    }
    metrics::gauge!(crate::telemetry::SWEEP_STUCK).set(report.stuck.len() as f64);
    for (token, items) in by_token {
        // An address that failed before goes alone, so it cannot fail a batch again.
        let (alone, together): (Vec<_>, Vec<_>) = items.into_iter().partition(|(_, _, failures)| *failures > 0);
        let batches = together.chunks(batch).map(<[_]>::to_vec).chain(alone.into_iter().map(|one| vec![one]));
        for chunk in batches {
            let expected: Vec<(Address, U256)> = chunk.iter().map(|(c, amount, _)| (c.address, *amount)).collect();
            let salts = chunk.iter().map(|(c, _, _)| c.salt).collect();
            match send_sweep(signer, factory, token, salts).await {
                Ok(tx_hash) => {
                    let mut tx = store.begin().await?;
                    sweeps::record_sent(&mut tx, chain_id, &tx_hash, &token, &expected).await?;
                    tx.commit().await?;
                    report.transactions.push(format!("{tx_hash:#x}"));
                    match sweep_outcome(signer, factory, token, tx_hash, RECEIPT_TIMEOUT).await {
                        Ok(Some(receipt)) => {
                            apply_receipt(store, &receipt, token, &expected, false, &mut report).await?;
                        }
                        Ok(None) => tracing::warn!(%tx_hash, "sweep not mined yet; the next run checks it"),
                        Err(e) => {
                            tracing::warn!(%tx_hash, error = crate::redact::error(&e), "sweep receipt unreadable; the next run checks it")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = crate::redact::error(&e), %token, deposits = chunk.len(), "sweep transaction failed; the next run retries");
                    report.failed_batches += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Writes what a receipt says of each address in its sweep; compares moved with expected.
async fn apply_receipt(
    store: &Store,
    receipt: &SweepReceipt,
    token: Address,
    expected: &[(Address, U256)],
    deep: bool,
    report: &mut SweepReport,
) -> anyhow::Result<()> {
    let block = Some((receipt.block_number, receipt.block_hash));
    let tx_text = format!("{:#x}", receipt.tx_hash);
    for (address, want) in expected {
        let moved = receipt.moved.get(address).copied().unwrap_or_default();
        let failed = !receipt.succeeded || receipt.failed.contains(address);
        let (state, error) = match (failed, deep) {
            (true, _) if !receipt.succeeded => (SweepState::Failed, Some("the sweep transaction reverted")),
            (true, _) => (SweepState::Failed, Some("this address's transfer reverted (blacklisted or paused token?)")),
            (false, true) => (SweepState::Confirmed, None),
            (false, false) => (SweepState::Pending, None),
        };
        sweeps::record_outcome(store.pool(), &receipt.tx_hash, address, state, moved, block, error).await?;
        if failed {
            report.failed_addresses.push(crate::store::columns::address_text(address));
            metrics::counter!(crate::telemetry::SWEEP_FAILURES).increment(1);
            continue;
        }
        if moved != *want {
            tracing::warn!(%address, %token, expected = %want, %moved, "a sweep moved another amount than the ledger expected");
            metrics::counter!(crate::telemetry::SWEEP_MISMATCHES).increment(1);
            report.mismatches.push(Mismatch {
                address: crate::store::columns::address_text(address),
                token: crate::store::columns::address_text(&token),
                expected: want.to_string(),
                moved: moved.to_string(),
            });
        }
        if moved > U256::ZERO {
            report.swept += 1;
            if let Some(order) = orders::find_by_deposit_address(store.pool(), address).await? {
                deposits::mark_swept(store.pool(), &order.order_id, &tx_text, receipt.block_number, unix_now()).await?;
            }
        }
    }
    Ok(())
}

/// Re-reads every open sweep: mined ones become confirmed once deep enough; one that left the
/// chain (or never reached it) is dropped, so its addresses are swept again.
async fn recheck(
    store: &Store,
    chain: ChainRef<'_>,
    provider: &DynProvider,
    factory: Address,
    report: &mut SweepReport,
) -> anyhow::Result<()> {
    let now = unix_now();
    // A reorg deeper than the confirmations can take a confirmed sweep: the money is back at
    // its addresses, and the ledger must not keep it as moved (nor keep them from a new sweep).
    for (tx_hash, block, hash) in sweeps::confirmed_since(store.pool(), chain.chain_id(), now - 24 * 3600).await? {
        let canonical = provider.get_block_by_number(block.into()).await?.map(|b| b.header.hash);
        if canonical != Some(hash) && sweeps::unconfirm_transaction(store.pool(), &tx_hash).await? > 0 {
            tracing::warn!(%tx_hash, block, "a confirmed sweep's block left the chain; checking it again");
        }
    }
    let open = sweeps::open(store.pool(), chain.chain_id(), now - 24 * 3600).await?;
    if open.is_empty() {
        return Ok(());
    }
    let head = provider.get_block_number().await?;
    let deep_to = confirmed_block(provider, chain.config.confirmations, head).await?;
    for sweep in open {
        match sweep_outcome(provider, factory, sweep.token, sweep.tx_hash, std::time::Duration::ZERO).await? {
            Some(receipt) => {
                let deep = deep_to.is_some_and(|d| receipt.block_number <= d);
                let rows = sweeps::list_for_transaction(store.pool(), &sweep.tx_hash).await?;
                // Differences were reported when the receipt was first read.
                apply_receipt(store, &receipt, sweep.token, &rows, deep, &mut SweepReport::default()).await?;
                if deep {
                    report.confirmed += rows.len();
                }
            }
            None if sweep.mined || now - sweep.created_at > UNMINED_GIVE_UP_SECS => {
                let n = sweeps::drop_transaction(store.pool(), &sweep.tx_hash).await?;
                if n > 0 {
                    tracing::warn!(tx_hash = %sweep.tx_hash, "a sweep left the chain; its addresses are swept again");
                }
                report.dropped += n as usize;
            }
            None => {}
        }
    }
    Ok(())
}
