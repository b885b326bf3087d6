//! The catch-up workload: transfers among empty blocks, the raw fetch it is measured against,
//! and a reset so each run catches up from the same place. Shared by `benches/catchup.rs` and
//! `scripts/catchup-before-after` (the code before issue 34 and this code in one process).

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use anyhow::Context;
use paywatch::chain::contracts::{IERC20, MockUSDT};
use paywatch::chain::rpc;
use paywatch::devnet::anvil::{Anvil, accounts};
use paywatch::store::Store;

/// Transfers a multiTransfer carries.
const PER_TX: usize = 500;
/// Empty blocks mined among the transfers, in ten runs.
const EMPTY_BLOCKS: u64 = 5_000;

/// `total_logs` USDT Transfer logs on `anvil`, spread evenly, one paying each of `deposits`,
/// among empty blocks; returns the first and last block of the range.
pub async fn generate(
    anvil: &Anvil,
    usdt: Address,
    deposits: &[(Address, U256, String)],
    total_logs: usize,
) -> anyhow::Result<(u64, u64)> {
    anyhow::ensure!(
        !deposits.is_empty() && deposits.len() <= total_logs,
        "{} deposits among {total_logs} logs",
        deposits.len()
    );
    let share = total_logs / deposits.len();
    let deployer = rpc::signing_provider(&anvil.rpc_url(), accounts::DEPLOYER_KEY.parse()?)?;
    let payer = rpc::signing_provider(&anvil.rpc_url(), accounts::PAYER_KEY.parse()?)?;
    let first_block = anvil_head(&deployer).await? + 1;
    let token = MockUSDT::new(usdt, payer);
    let mut d = 0;
    for tx in 0..total_logs / PER_TX {
        let mut to = Vec::with_capacity(PER_TX);
        let mut values = Vec::with_capacity(PER_TX);
        for i in 0..PER_TX {
            if (tx * PER_TX + i).is_multiple_of(share) && d < deposits.len() {
                to.push(deposits[d].0);
                values.push(deposits[d].1);
                d += 1;
            } else {
                to.push(Address::from_word(alloy::primitives::keccak256(format!("noise-{tx}-{i}"))));
                values.push(U256::from(1u8));
            }
        }
        token.multiTransfer(to, values).gas(25_000_000).send().await?.get_receipt().await?;
        if tx % 10 == 0 {
            deployer.anvil_mine(Some(EMPTY_BLOCKS / 10), None).await?;
        }
    }
    Ok((first_block, anvil_head(&deployer).await?))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub async fn anvil_head(p: &DynProvider) -> anyhow::Result<u64> {
    Ok(p.get_block_number().await?)
}

pub async fn median<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Duration>>,
{
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        times.push(f().await?);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// The baseline: the same filter over the same range in 1,000-block chunks, logs dropped.
pub async fn raw_fetch(
    p: &DynProvider,
    expected_logs: usize,
    usdt: Address,
    ankr: Address,
    from: u64,
    to: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut n = 0;
    let mut start = from;
    while start <= to {
        let end = to.min(start + 999);
        let filter = Filter::new()
            .address(vec![ankr, usdt])
            .event_signature(IERC20::Transfer::SIGNATURE_HASH)
            .from_block(start)
            .to_block(end);
        n += p.get_logs(&filter).await?.len();
        start = end + 1;
    }
    anyhow::ensure!(n >= expected_logs, "raw fetch saw {n} logs");
    Ok(started.elapsed())
}

/// Forgets everything the watcher did, so each run catches up from the same place.
/// Each chain of `starts` (chain id, the block before its range, a provider on it) starts there.
pub async fn reset(store: &Store, starts: &[(u64, u64, &DynProvider)]) -> anyhow::Result<()> {
    forget_progress(store.pool()).await?;
    for (chain_id, before_first, p) in starts {
        let block = p.get_block_by_number((*before_first).into()).await?.context("block")?;
        paywatch::store::cursor::set(
            store.pool(),
            *chain_id,
            paywatch::store::cursor::Cursor {
                block_number: *before_first,
                block_hash: block.header.hash,
                block_time: block.header.timestamp as i64,
            },
        )
        .await?;
    }
    Ok(())
}

/// The store's progress wiped: no deposits, transfers, blocks or cursor; every order awaiting
/// payment again. Plain SQL, so the code before issue 34 (same tables) is reset the same way.
pub async fn forget_progress(pool: &sqlx::AnyPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for sql in [
        "DELETE FROM deposits",
        "DELETE FROM chain_transfers",
        "DELETE FROM webhook_outbox",
        "DELETE FROM chain_blocks",
        "DELETE FROM chain_cursor",
        "UPDATE orders SET status = 'awaiting_payment', seen_base = '0', confirmed_base = '0', overpaid_base = '0', paid_at = NULL",
        "UPDATE apps SET status = 'pending_payment', start_time = NULL, end_time = NULL",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    Ok(tx.commit().await?)
}
