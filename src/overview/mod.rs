//! What an operator sees at a glance, shared by the console's overview page and
//! `paywatch status`: each chain's progress, orders by status, the webhook backlog, money not
//! yet swept, and revenue per UTC month by pay method (the payment list's rule: a deposit's usd
//! counts in the month of its deposit time; sums are exact decimals).

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use time::{Date, Month, OffsetDateTime};

use crate::config::Config;
use crate::money::format_base_units;
use crate::store::{Store, StoreError, StoreResult, deposits, orders, outbox, sweeps};

pub mod terminal;

/// One chain's watcher as an operator sees it.
#[derive(Debug, Clone)]
pub struct ChainLine {
    pub name: String,
    pub chain_id: u64,
    /// The head as last read (None when the node could not be asked).
    pub head: Option<u64>,
    pub processed: u64,
    pub caught_up: bool,
    pub problem: Option<String>,
    /// Who watches it: "this process", another process named by its database session, or
    /// "nobody".
    pub watcher: String,
}

impl ChainLine {
    pub fn behind(&self) -> Option<u64> {
        self.head.map(|h| h.saturating_sub(self.processed))
    }
}

/// Confirmed money at deposit addresses not yet swept, per chain and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unswept {
    pub chain: String,
    pub chain_id: u64,
    /// The token's pay-method name (its address when it is not configured).
    pub token: String,
    /// In token units, exact.
    pub amount: String,
    pub addresses: usize,
}

/// Revenue of one UTC month ("2026-12"), by pay method, in USD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthRevenue {
    pub month: String,
    pub by_method: BTreeMap<String, Decimal>,
}

impl MonthRevenue {
    pub fn total(&self) -> Decimal {
        self.by_method.values().sum()
    }
}

#[derive(Debug, Clone)]
pub struct Overview {
    /// Every order status with its count.
    pub orders: Vec<(&'static str, i64)>,
    pub webhooks_pending: i64,
    pub webhooks_failed: i64,
    pub unswept: Vec<Unswept>,
    /// The last 12 UTC months, oldest first, every month present (this month last).
    pub months: Vec<MonthRevenue>,
}

impl Overview {
    pub fn this_month(&self) -> &MonthRevenue {
        self.months.last().expect("twelve months")
    }

    /// Pay methods that earned anything in the twelve months, sorted.
    pub fn pay_methods(&self) -> Vec<String> {
        let mut all: Vec<String> = self.months.iter().flat_map(|m| m.by_method.keys().cloned()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// The store's part of the overview, at `now` (unix seconds: only the months' window uses it).
pub async fn gather(store: &Store, config: &Config, now: i64) -> StoreResult<Overview> {
    let db = store.pool();
    let orders = orders::count_by_status(db).await?;
    let (webhooks_pending, webhooks_failed) = outbox::backlog(db).await?;
    let book = config.token_book();
    let unswept = sweeps::unswept(db)
        .await?
        .into_iter()
        .map(|(chain_id, token, units, addresses)| {
            let entry = book.at(chain_id, token);
            Unswept {
                chain: entry.map(|e| e.chain.clone()).unwrap_or_else(|| chain_id.to_string()),
                chain_id,
                token: entry
                    .map(|e| e.token.as_str().to_string())
                    .unwrap_or_else(|| crate::store::columns::address_text(&token)),
                amount: entry.map(|e| format_base_units(units, e.decimals)).unwrap_or_else(|| units.to_string()),
                addresses,
            }
        })
        .collect();
    let window = twelve_months(now);
    let mut months: Vec<MonthRevenue> =
        window.iter().map(|(label, _)| MonthRevenue { month: label.clone(), by_method: BTreeMap::new() }).collect();
    for (time, pay_method, usd) in deposits::revenue_since(db, window[0].1).await? {
        let usd = Decimal::from_str(&usd).map_err(|_| StoreError::Corrupt(format!("deposits.usd {usd:?}")))?;
        let label = month_label(time);
        if let Some(m) = months.iter_mut().find(|m| m.month == label) {
            *m.by_method.entry(pay_method).or_default() += usd;
        }
    }
    Ok(Overview { orders, webhooks_pending, webhooks_failed, unswept, months })
}

/// The UTC month of `ts` as "2026-12".
pub fn month_label(ts: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}", dt.year(), dt.month() as u8)
}

/// The last twelve UTC months up to `now`'s: (label, first second), oldest first.
fn twelve_months(now: i64) -> Vec<(String, i64)> {
    let today = OffsetDateTime::from_unix_timestamp(now).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (mut year, mut month) = (today.year(), today.month());
    let mut out = Vec::with_capacity(12);
    for _ in 0..12 {
        let start = Date::from_calendar_date(year, month, 1).expect("a month's first day").midnight().assume_utc();
        out.push((format!("{year:04}-{:02}", month as u8), start.unix_timestamp()));
        if month == Month::January {
            year -= 1;
        }
        month = month.previous();
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twelve_months_end_with_this_one_and_cross_a_year() {
        // 2026-02-15T00:00:00Z
        let months = twelve_months(1_771_113_600);
        assert_eq!(months.len(), 12);
        assert_eq!(months[0].0, "2025-03");
        assert_eq!(months[11].0, "2026-02");
        assert_eq!(months[11].1, 1_769_904_000); // 2026-02-01T00:00:00Z
        assert_eq!(month_label(1_769_903_999), "2026-01");
    }
}

/// One RPC endpoint's answer to `eth_blockNumber` just now.
#[derive(Debug, Clone)]
pub struct EndpointHealth {
    /// Scheme and host only (a key in the path stays out of pages and terminals).
    pub endpoint: String,
    pub answer: Result<u64, String>,
    pub millis: u128,
}

/// How long an endpoint may take before it counts as down.
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Asks every endpoint for its head at once (each on its own, not through the fallback).
pub async fn probe_endpoints(urls: &[String]) -> Vec<EndpointHealth> {
    use alloy::providers::Provider;
    let probes = urls.iter().map(|url| async move {
        let started = std::time::Instant::now();
        let answer = match crate::chain::rpc::http_provider(url) {
            Err(e) => Err(e.to_string()),
            Ok(p) => match tokio::time::timeout(PROBE_TIMEOUT, p.get_block_number()).await {
                Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
                Ok(Err(e)) => Err(crate::chain::rpc::describe(&e.to_string())),
                Ok(Ok(n)) => Ok(n),
            },
        };
        EndpointHealth { endpoint: crate::chain::rpc::redact(url), answer, millis: started.elapsed().as_millis() }
    });
    futures_util::future::join_all(probes).await
}
