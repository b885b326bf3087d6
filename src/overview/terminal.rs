//! `paywatch status`: the overview in a terminal, read from the database and the nodes (not
//! from a serving process), and whether any watcher is stalled or a chain unreachable.

use std::fmt::Write;

use super::{ChainLine, EndpointHealth, Overview, probe_endpoints};
use crate::chain::leader;
use crate::config::Config;
use crate::store::{Store, StoreResult, cursor, unix_now};

/// Behind by more than this many blocks with a cursor that has not moved for `STALL_SECS`:
/// the watcher is stalled (a quiet chain is not: nothing is behind).
pub const STALL_BLOCKS: u64 = 50;
pub const STALL_SECS: i64 = 120;

pub struct Status {
    pub text: String,
    /// Why the exit code is 1, one line per chain that is stalled or unreachable.
    pub alarms: Vec<String>,
}

/// Reads everything and writes the report.
pub async fn status(store: &Store, config: &Config) -> StoreResult<Status> {
    let now = unix_now();
    let mut alarms = Vec::new();
    let mut chains = Vec::new();
    for c in config.chains() {
        let chain_id = c.chain_id();
        let endpoints = probe_endpoints(c.config.rpc_http.urls()).await;
        let head = endpoints.iter().filter_map(|e| e.answer.as_ref().ok().copied()).max();
        let stored = cursor::get(store.pool(), chain_id).await?;
        let moved_at = cursor::moved_at(store.pool(), chain_id).await?;
        let processed = stored.map(|c| c.block_number).unwrap_or(0);
        let watcher = match leader::holder(store, chain_id).await? {
            Some(h) => h,
            None if store.backend() == crate::store::Backend::Sqlite => "the serving process (SQLite)".into(),
            None => "nobody holds the lease".into(),
        };
        let line = ChainLine {
            name: c.name.to_string(),
            chain_id,
            head,
            processed,
            caught_up: head.is_some_and(|h| h <= processed),
            problem: None,
            watcher,
        };
        match (head, moved_at) {
            (None, _) => alarms.push(format!("chain {}: no RPC endpoint answers", c.name)),
            (Some(_), None) => {
                alarms.push(format!("chain {}: nothing has been processed yet (is `paywatch serve` running?)", c.name))
            }
            (Some(_), Some(at)) => {
                let behind = line.behind().unwrap_or(0);
                if behind > STALL_BLOCKS && now - at > STALL_SECS {
                    alarms.push(format!(
                        "chain {}: the watcher is stalled ({behind} blocks behind, its cursor last moved {} s ago)",
                        c.name,
                        now - at
                    ));
                }
            }
        }
        chains.push((line, endpoints));
    }
    let figures = super::gather(store, config, now).await?;
    Ok(Status { text: render(&chains, &figures, &alarms), alarms })
}

fn render(chains: &[(ChainLine, Vec<EndpointHealth>)], o: &Overview, alarms: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "chains");
    for (c, endpoints) in chains {
        let head = c.head.map(|h| h.to_string()).unwrap_or_else(|| "unknown".into());
        let behind = c.behind().map(|b| b.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(
            out,
            "  {} ({}): head {head}, processed {}, behind {behind}; watcher: {}",
            c.name, c.chain_id, c.processed, c.watcher
        );
        for e in endpoints {
            match &e.answer {
                Ok(n) => _ = writeln!(out, "    {}: block {n} ({} ms)", e.endpoint, e.millis),
                Err(why) => _ = writeln!(out, "    {}: UNREACHABLE: {why}", e.endpoint),
            }
        }
    }
    let _ = writeln!(out, "orders");
    for (status, n) in &o.orders {
        let _ = writeln!(out, "  {status}: {n}");
    }
    let _ = writeln!(out, "webhooks\n  pending: {}\n  failed: {}", o.webhooks_pending, o.webhooks_failed);
    let _ = writeln!(out, "unswept");
    if o.unswept.is_empty() {
        let _ = writeln!(out, "  nothing");
    }
    for u in &o.unswept {
        let _ = writeln!(out, "  {} on {}: {} at {} address(es)", u.token, u.chain, u.amount, u.addresses);
    }
    let month = o.this_month();
    let _ = writeln!(out, "revenue {} (UTC): {} USD", month.month, crate::money::cents_text(month.total()));
    for (method, usd) in &month.by_method {
        let _ = writeln!(out, "  {method}: {}", crate::money::cents_text(*usd));
    }
    for a in alarms {
        let _ = writeln!(out, "ALARM {a}");
    }
    out
}
