//! Memory of the watcher's deposit-address index with a long history (a bench binary, not a
//! test): `make bench`.
//!
//! 1,000,000 crypto orders in a SQLite database, 10,000 of them open, the rest long expired.
//! The process's resident memory (VmRSS) is read before and after the index loads them; the
//! baseline, measured in the same run, is what the index held before: every address in a map
//! to its order id as a string. Lookups of open, old and unknown addresses are checked.

use std::collections::HashMap;

use alloy::primitives::Address;
use paywatch::chain::deposit_index::DepositIndex;
use paywatch::store::{Store, unix_now};

const HISTORY: i64 = 1_000_000;
const OPEN: i64 = 10_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let now = unix_now();
    eprintln!("writing {HISTORY} orders…");
    seed(&store, now).await?;

    let before = rss_kib()?;
    let mut index = DepositIndex::new(24 * 3600);
    index.refresh(&store, now).await?;
    let with_index = rss_kib()?;
    let live = index.live_len();

    // Lookups: an open order (map), an old one (filter, then the database), a stranger.
    let open: String =
        sqlx::query_scalar("SELECT deposit_address FROM orders WHERE status = 'awaiting_payment' LIMIT 1")
            .fetch_one(store.pool())
            .await?;
    let old: String = sqlx::query_scalar("SELECT deposit_address FROM orders WHERE status = 'expired' LIMIT 1")
        .fetch_one(store.pool())
        .await?;
    anyhow::ensure!(index.lookup(&store, &open.parse()?).await?.is_some(), "an open order's address is found");
    anyhow::ensure!(index.lookup(&store, &old.parse()?).await?.is_some(), "an old order's address is still found");
    anyhow::ensure!(index.lookup(&store, &Address::repeat_byte(0x5a)).await?.is_none(), "a stranger is not");
    drop(index);

    // The baseline: every address → order id string, as the index held them before.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT deposit_address, order_id FROM orders").fetch_all(store.pool()).await?;
    let baseline_before = rss_kib()?;
    let mut all: HashMap<Address, String> = HashMap::new();
    for (address, order_id) in &rows {
        all.insert(address.parse()?, order_id.clone());
    }
    let baseline = rss_kib()?.saturating_sub(baseline_before);
    anyhow::ensure!(all.len() as i64 == HISTORY);
    drop(all);

    let index_kib = with_index.saturating_sub(before);
    println!("## Deposit-address index with {HISTORY} historical orders ({OPEN} open)\n");
    println!("| | resident memory added |\n|---|---|");
    println!("| every address → order id string (baseline: the index before) | {:.1} MB |", baseline as f64 / 1024.0);
    println!(
        "| paywatch's index ({live} in the map, every address in the Bloom filter) | {:.1} MB |",
        index_kib as f64 / 1024.0
    );
    println!(
        "\nRatio index / baseline: **{:.2}x**. The whole process with the index loaded: **{:.1} MB** resident \
         (target: under 64 MB).\n",
        index_kib as f64 / baseline.max(1) as f64,
        with_index as f64 / 1024.0
    );
    store.close().await;
    Ok(())
}

/// One team and app, then the orders in one statement each (SQLite's recursive CTE).
async fn seed(store: &Store, now: i64) -> anyhow::Result<()> {
    let pool = store.pool();
    sqlx::query("INSERT INTO teams (team_id, name, created_at) VALUES ('t', 'bench', $1)")
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO apps (app_id, team_id, name, cluster_id, chart_name, cpu_limit, mem_limit, storage_limit, \
         pay_method, status, created_at, updated_at) VALUES ('a', 't', 'bench', 'c', 'boinc', 1, 1, 1, 'USDT_ERC20', \
         'pending_payment', $1, $1)",
    )
    .bind(now)
    .execute(pool)
    .await?;
    let insert = |status: &'static str, from: i64, to: i64, expires_at: i64| {
        let sql = format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) \
             INSERT INTO orders (order_id, team_id, app_id, kind, pay_method, period_months, usd, amount, amount_base, \
             token_price_usd, token_address, chain_id, salt, deposit_address, status, expires_at, created_at, updated_at) \
             SELECT printf('%08x-0000-4000-8000-%012x', i, i), 't', 'a', 'create', 'USDT_ERC20', 1, '20', '20', \
             '20000000', '1', '0xdac17f958d2ee523a2206206994597c13d831ec7', 31337, '0x' || lower(hex(randomblob(32))), \
             '0x' || lower(hex(randomblob(20))), '{status}', {expires_at}, {expires_at} - 3600, {expires_at} - 3600 FROM n"
        );
        async move { sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await }
    };
    insert("expired", 1, HISTORY - OPEN, now - 90 * 86_400).await?;
    insert("awaiting_payment", HISTORY - OPEN + 1, HISTORY, now + 3_600).await?;
    Ok(())
}

fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}
