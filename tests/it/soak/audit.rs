//! The books against the chain. The chain is read directly (anvil, not through paywatch's
//! proxy); paywatch only through its database and API. Each invariant is computed from the
//! chain's transfers and the payment rules, never from what paywatch decided.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use paywatch::chain::contracts::IERC20;
use sqlx::Row;

use super::{Soak, Violation};
use crate::support::chain::TestChain;

/// (chain id, token contract): where money sits.
type Bucket = (u64, Address);

/// A Transfer into a deposit address, as the chain has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OnChain {
    pub(super) chain_id: u64,
    pub(super) tx_hash: String,
    pub(super) log_index: u64,
    pub(super) block_number: u64,
    pub(super) block_time: i64,
    pub(super) token: Address,
    pub(super) to: Address,
    pub(super) amount: U256,
}

pub(super) fn violation(invariant: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { invariant, detail })
}

pub(super) fn u256(text: &str) -> U256 {
    text.parse().unwrap_or_else(|_| panic!("a base-unit amount: {text:?}"))
}

/// Whether the canonical chain holds the recorded transfer `key` by its receipt (mined, in the
/// canonical block at its height, with a Transfer at its log index), and what the chain says.
async fn receipt_view(soak: &Soak, (chain_id, tx_hash, log_index): &(u64, String, u64)) -> (bool, String) {
    let chain = if *chain_id == paywatch::devnet::CHAIN_ID { &soak.app.chain } else { soak.app.l2() };
    let stored = rows(
        soak,
        &format!(
            "SELECT block_number, block_hash FROM chain_transfers WHERE chain_id = {chain_id} AND tx_hash = '{tx_hash}' AND log_index = {log_index}"
        ),
    )
    .await;
    let stored = stored.first().map(|r| (r.get::<i64, _>("block_number"), r.get::<String, _>("block_hash")));
    let canonical_at = match &stored {
        Some((number, _)) => chain
            .deployer
            .get_block_by_number((*number as u64).into())
            .await
            .ok()
            .flatten()
            .map(|b| format!("{:#x}", b.header.hash)),
        None => None,
    };
    let receipt = chain.deployer.get_transaction_receipt(tx_hash.parse().unwrap()).await.ok().flatten();
    let Some(receipt) = receipt else {
        return (false, format!("no receipt; recorded at {stored:?}, the canonical block there is {canonical_at:?}"));
    };
    let block = receipt.block_number.unwrap_or_default();
    let block_hash = receipt.block_hash.map(|h| format!("{h:#x}"));
    let canonical =
        chain.deployer.get_block_by_number(block.into()).await.ok().flatten().map(|b| format!("{:#x}", b.header.hash));
    let has_log = receipt
        .inner
        .logs()
        .iter()
        .any(|l| l.log_index == Some(*log_index) && l.topics().first() == Some(&IERC20::Transfer::SIGNATURE_HASH));
    let held = receipt.status() && block_hash.is_some() && block_hash == canonical && has_log;
    (
        held,
        format!(
            "receipt in block {block} {block_hash:?} (canonical there: {canonical:?}, status {}, log {log_index} a Transfer: {has_log}); recorded at {stored:?}, the canonical block there is {canonical_at:?}",
            receipt.status()
        ),
    )
}

/// Blocks per getLogs page of the audit's read of the chain.
const LOG_PAGE: u64 = 500;

pub(super) async fn transfers_on(chain: &TestChain) -> Vec<OnChain> {
    let tokens: Vec<Address> = chain.deployment.tokens.values().copied().collect();
    let chain_id = chain.anvil.chain_id();
    // In pages of blocks: one getLogs from block 0 comes back cut short once the chain holds
    // enough logs (a 30-minute run's audit missed the newest transfers that way).
    let head = chain.deployer.get_block_number().await.unwrap();
    let mut logs = Vec::new();
    let mut from = 0;
    while from <= head {
        let to = (from + LOG_PAGE - 1).min(head);
        let filter = Filter::new()
            .from_block(from)
            .to_block(to)
            .address(tokens.clone())
            .event_signature(IERC20::Transfer::SIGNATURE_HASH);
        logs.extend(chain.deployer.get_logs(&filter).await.unwrap());
        from = to + 1;
    }
    let mut times = BTreeMap::new();
    let mut out = Vec::new();
    for log in logs {
        let number = log.block_number.unwrap();
        if let std::collections::btree_map::Entry::Vacant(slot) = times.entry(number) {
            let block = chain.deployer.get_block_by_number(number.into()).await.unwrap().unwrap();
            slot.insert(block.header.timestamp as i64);
        }
        let event = IERC20::Transfer::decode_log(&log.inner).unwrap();
        out.push(OnChain {
            chain_id,
            tx_hash: format!("{:#x}", log.transaction_hash.unwrap()),
            log_index: log.log_index.unwrap(),
            block_number: number,
            block_time: times[&number],
            token: log.address(),
            to: event.to,
            amount: event.value,
        });
    }
    out
}

struct OrderRow {
    order_id: String,
    app_id: Option<String>,
    period_months: i64,
    status: String,
    late: bool,
    amount: U256,
    confirmed: U256,
    address: Address,
    expires_at: i64,
}

/// Reads (retrying once: a fault may have just killed the connection).
pub(super) async fn rows(soak: &Soak, sql: &str) -> Vec<sqlx::any::AnyRow> {
    let query = || sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
    match query().fetch_all(soak.app.db.store.pool()).await {
        Ok(rows) => rows,
        Err(_) => query().fetch_all(soak.app.db.store.pool()).await.unwrap(),
    }
}

/// Every invariant; `last` adds those that wait for the expiry job (run here as the scheduler
/// would, by the chain's clock).
pub async fn check(soak: &mut Soak, last: bool) -> Result<(), Violation> {
    let config = paywatch::config::Config::load(&soak.app.config_path).unwrap();
    if last {
        paywatch::jobs::run_expiry(&soak.app.db.store, &config, false, paywatch::store::unix_now()).await.unwrap();
    }
    let late_window = config.orders.late_window_hours as i64 * 3_600;
    // The rules' clock: the chains' time, the least of them for what may be paid on either (as
    // the expiry job has it); a moment between the two chains' clocks is left unjudged.
    let mut clocks = Vec::new();
    for chain in [&soak.app.chain, soak.app.l2()] {
        let head = chain.deployer.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap();
        clocks.push(head.unwrap().header.timestamp as i64);
    }
    let (chain_now, latest_clock) = (*clocks.iter().min().unwrap(), *clocks.iter().max().unwrap());
    let at_the_edge = |moment: i64| chain_now <= moment && moment < latest_clock;

    let mut on_chain = transfers_on(&soak.app.chain).await;
    on_chain.extend(transfers_on(soak.app.l2()).await);
    let orders: Vec<OrderRow> = rows(
        soak,
        "SELECT order_id, app_id, period_months, status, late, amount_base, confirmed_base, deposit_address, expires_at \
         FROM orders WHERE deposit_address IS NOT NULL",
    )
    .await
    .iter()
    .map(|r| OrderRow {
        order_id: r.get("order_id"),
        app_id: r.get("app_id"),
        period_months: r.get("period_months"),
        status: r.get("status"),
        late: r.get::<i64, _>("late") != 0,
        amount: u256(&r.get::<String, _>("amount_base")),
        confirmed: u256(&r.get::<String, _>("confirmed_base")),
        address: r.get::<String, _>("deposit_address").parse().unwrap(),
        expires_at: r.get("expires_at"),
    })
    .collect();
    let deposit_addresses: BTreeSet<Address> = orders.iter().map(|o| o.address).collect();
    on_chain.retain(|t| deposit_addresses.contains(&t.to));

    // 1. Every Transfer into a deposit address is recorded once, confirmed (all are deep now),
    //    and nothing is recorded that the canonical chain does not hold.
    let recorded: BTreeMap<(u64, String, u64), (String, String, String)> =
        rows(soak, "SELECT chain_id, tx_hash, log_index, amount_base, state, to_address FROM chain_transfers")
            .await
            .iter()
            .map(|r| {
                (
                    (
                        r.get::<i64, _>("chain_id") as u64,
                        r.get::<String, _>("tx_hash"),
                        r.get::<i64, _>("log_index") as u64,
                    ),
                    (r.get("amount_base"), r.get("state"), r.get("to_address")),
                )
            })
            .collect();
    for t in &on_chain {
        match recorded.get(&(t.chain_id, t.tx_hash.clone(), t.log_index)) {
            None => return violation("1: every transfer is accounted for", format!("missing: {t:?}")),
            Some((amount, state, _)) if u256(amount) != t.amount || state != "confirmed" => {
                return violation("1: every transfer is accounted for", format!("{t:?} recorded as {amount} {state}"));
            }
            Some(_) => {}
        }
    }
    let canonical: BTreeSet<(u64, String, u64)> =
        on_chain.iter().map(|t| (t.chain_id, t.tx_hash.clone(), t.log_index)).collect();
    for (key, row) in recorded.iter().filter(|(k, _)| !canonical.contains(*k)) {
        // The chain's own word on it: the receipt, and the canonical block at its height. One
        // getLogs from block 0 is the audit's list, but a list can miss a log; a receipt in the
        // canonical block holding this very log is the transfer on the chain.
        let (held, detail) = receipt_view(soak, key).await;
        if held {
            soak.count("audit: a canonical transfer the node's getLogs left out (its receipt holds it)");
            continue;
        }
        return violation(
            "1: nothing credited that is not on the canonical chain",
            format!("{key:?}: {row:?}; {detail}"),
        );
    }

    // Stray funds per (order, bucket), and what was applied to each order.
    let mut stray: BTreeMap<(String, Bucket), U256> = BTreeMap::new();
    let mut applied_in: BTreeMap<String, U256> = BTreeMap::new();
    for r in
        rows(soak, "SELECT order_id, chain_id, token_address, amount_base, status, applied_order_id FROM stray_funds")
            .await
    {
        let amount = u256(&r.get::<String, _>("amount_base"));
        let bucket = (r.get::<i64, _>("chain_id") as u64, r.get::<String, _>("token_address").parse().unwrap());
        *stray.entry((r.get("order_id"), bucket)).or_default() += amount;
        if r.get::<String, _>("status") == "applied" {
            *applied_in.entry(r.get::<Option<String>, _>("applied_order_id").unwrap()).or_default() += amount;
        }
    }
    let deposits: BTreeMap<String, i64> = rows(soak, "SELECT order_id, count(*) AS n FROM deposits GROUP BY order_id")
        .await
        .iter()
        .map(|r| (r.get("order_id"), r.get("n")))
        .collect();
    let usdt = [
        (paywatch::devnet::CHAIN_ID, soak.app.chain.token(paywatch::money::Token::UsdtErc20)),
        (paywatch::devnet::L2_CHAIN_ID, soak.app.l2().token(paywatch::devnet::L2_USDT)),
    ];
    let ankr = [(paywatch::devnet::CHAIN_ID, soak.app.chain.token(paywatch::money::Token::AnkrErc20))];

    for o in &orders {
        let Some(pay_method) = soak.orders.iter().find(|s| s.order_id == o.order_id).map(|s| s.pay_method) else {
            continue;
        };
        // The order's asset on every chain (USDT's two tokens share 6 decimals: units add up).
        let counted: &[Bucket] = if pay_method == "USDT_ERC20" { &usdt } else { &ankr };
        let mut mine: Vec<&OnChain> = on_chain.iter().filter(|t| t.to == o.address).collect();
        mine.sort_by_key(|t| (t.block_time, t.chain_id, t.block_number, t.log_index));
        let mut by_bucket: BTreeMap<Bucket, U256> = BTreeMap::new();
        for t in &mine {
            *by_bucket.entry((t.chain_id, t.token)).or_default() += t.amount;
        }
        let counted_total: U256 = by_bucket.iter().filter(|(b, _)| counted.contains(b)).map(|(_, a)| *a).sum();
        let applied = applied_in.get(&o.order_id).copied().unwrap_or_default();
        let mut running = U256::ZERO;
        let crossing = mine.iter().filter(|t| counted.contains(&(t.chain_id, t.token))).find_map(|t| {
            running += t.amount;
            (running >= o.amount).then_some(t.block_time)
        });
        let deadline = o.expires_at + late_window;
        if at_the_edge(deadline) || at_the_edge(o.expires_at) || mine.iter().any(|t| at_the_edge(t.block_time)) {
            soak.count("audit: an order left unjudged (a moment between the chains' clocks)");
            continue;
        }
        let what = |detail: &str| {
            format!(
                "order {} ({pay_method}, {}, amount {}, confirmed {}, late {}, expires at {}, chain now {chain_now}): {detail}; \
                 applied {applied}; chain: {mine:?}",
                o.order_id, o.status, o.amount, o.confirmed, o.late, o.expires_at
            )
        };

        // 2. The order's confirmed sum is its transfers of its asset plus the funds applied to it;
        //    its status follows from them by the rules.
        if o.confirmed != counted_total + applied {
            return violation(
                "2: an order's confirmed sum is its own transfers and applied funds",
                what(&format!("confirmed {} != transfers {counted_total} + applied {applied}", o.confirmed)),
            );
        }
        let closed_for_good = chain_now > deadline;
        // Applied funds complete an order at the chain's time of the apply, which the chain does
        // not show: once the window closed, such an order is left unjudged.
        let paid_expected = match crossing {
            _ if counted_total + applied < o.amount => Some(false),
            Some(t) if applied.is_zero() => Some(t <= deadline),
            None if applied.is_zero() => Some(false),
            _ if !closed_for_good && crossing.is_none_or(|t| t <= deadline) => Some(true),
            _ => None,
        };
        let Some(paid_expected) = paid_expected else {
            soak.count("audit: an order left unjudged (completed by an apply, its window closed)");
            continue;
        };
        if last {
            let kind = match crossing {
                _ if !applied.is_zero() => "completed with applied funds",
                Some(t) if t > deadline => "completed after the late window (credits nothing)",
                Some(t) if t > o.expires_at => "paid late",
                Some(_) => "paid on time",
                None if counted_total.is_zero() => "never paid",
                None => "partly paid",
            };
            soak.count(&format!("final audit: orders {kind}"));
        }
        let judged = paid_expected || !closed_for_good || last;
        if judged && (o.status == "paid") != paid_expected {
            return violation(
                "2: status follows from the transfers by the rules",
                what(&format!("paid expected: {paid_expected}")),
            );
        }
        if o.status == "paid" && applied.is_zero() && crossing.is_some_and(|t| (t > o.expires_at) != o.late) {
            return violation(
                "2: lateness by the chain's clock",
                what(&format!("late {} crossing {crossing:?}", o.late)),
            );
        }
        if last && !paid_expected && closed_for_good && !applied.is_zero() {
            return violation("2: funds applied to an order closed unpaid are released", what("still applied"));
        }
        if last && !paid_expected {
            let expected = match (chain_now > o.expires_at, counted_total + applied) {
                (true, _) => "expired",
                (false, sum) if sum.is_zero() => "awaiting_payment",
                (false, _) => "partially_paid",
            };
            if o.status != expected {
                return violation(
                    "2: status follows from the transfers by the rules",
                    what(&format!("expected {expected}")),
                );
            }
        }

        // 1 (continued). Money at the address credits the order or is a stray fund: never both,
        //    never neither.
        let strays = |b: &Bucket| stray.get(&(o.order_id.clone(), *b)).copied().unwrap_or_default();
        for (bucket, amount) in &by_bucket {
            if !counted.contains(bucket) && strays(bucket) != *amount {
                return violation(
                    "1: money at an address is credited once",
                    what(&format!("wrong token {bucket:?}: {amount} on chain, {} stray", strays(bucket))),
                );
            }
        }
        let stray_counted: U256 = counted.iter().map(strays).sum();
        let expected_stray = match o.status.as_str() {
            "paid" => (counted_total + applied).saturating_sub(o.amount).min(counted_total),
            _ if closed_for_good && last => counted_total,
            // Listed by the expiry job's next run (every 30 s): before it, none or all of it.
            _ if closed_for_good && stray_counted.is_zero() => U256::ZERO,
            _ if closed_for_good => counted_total,
            _ => U256::ZERO,
        };
        if stray_counted != expected_stray {
            return violation(
                "1: money at an address is credited once",
                what(&format!("stray in its asset {stray_counted}, expected {expected_stray} (applied {applied})")),
            );
        }

        // 3. A paid order's app runs for its period, once; an unpaid one's does not.
        let deposit_rows = deposits.get(&o.order_id).copied().unwrap_or(0);
        if deposit_rows != i64::from(o.status == "paid") {
            return violation("3: each period paid once", what(&format!("{deposit_rows} deposit rows")));
        }
        // An app with extensions is judged across its orders (`ledgers`).
        if let Some(app_id) = o.app_id.as_ref().filter(|a| !soak.extended_apps.contains(*a)) {
            let app =
                rows(soak, &format!("SELECT status, start_time, end_time FROM apps WHERE app_id = '{app_id}'")).await;
            let (status, start, end): (String, Option<i64>, Option<i64>) =
                (app[0].get("status"), app[0].get("start_time"), app[0].get("end_time"));
            let runs = match (start, end) {
                (Some(s), Some(e)) => e == paywatch::payments::calendar::add_months(s, o.period_months as u32),
                _ => false,
            };
            if (o.status == "paid") != (runs && status != "pending_payment") {
                return violation("3: each period paid once", what(&format!("app {status} {start:?}..{end:?}")));
            }
        }
    }

    // 7. No 5xx but the documented 503.
    if let Some(first) = soak.server_errors.first() {
        return violation("7: no 5xx but the documented 503", first.clone());
    }
    Ok(())
}
