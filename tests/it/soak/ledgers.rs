//! The books beside the orders: the sweep ledger against balances on chain (invariant 4), card
//! charges against the processor's own record (5), and webhook events against the facts and
//! the receiver (6). Read like `audit.rs`: the chain directly, paywatch through its database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use paywatch::payments::calendar::add_months;
use serde_json::Value;
use sqlx::Row;

use super::audit::{rows, transfers_on, u256, violation};
use super::{Soak, Violation};

pub async fn check(soak: &mut Soak, last: bool) -> Result<(), Violation> {
    sweeps(soak).await?;
    cards(soak).await?;
    for app_id in soak.extended_apps.clone() {
        app_end(soak, &app_id).await?;
    }
    webhooks(soak, last).await?;
    refunds(soak).await
}

/// Refunds sent by paywatch: once every approved one is settled (blocks mined for its depth),
/// each refund that reads refunded: its address holds exactly its amount (each address is used once) and
/// its fund carries its hash, an unsent one's holds nothing, and on each chain the refund
/// wallet sent exactly one transaction per recorded intent (its nonce count).
async fn refunds(soak: &mut Soak) -> Result<(), Violation> {
    let started = Instant::now();
    loop {
        let open =
            rows(soak, "SELECT refund_id, status, error FROM refunds WHERE status IN ('approved', 'sent')").await;
        if open.is_empty() {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let open: Vec<(String, String, Option<String>)> =
                open.iter().map(|r| (r.get("refund_id"), r.get("status"), r.get("error"))).collect();
            return violation("refunds: each approved refund is sent and settled", format!("after 90 s: {open:?}"));
        }
        soak.app.mine(1).await;
        alloy::providers::ext::AnvilApi::anvil_mine(&soak.app.l2().deployer, Some(1), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let chains = [(paywatch::devnet::CHAIN_ID, &soak.app.chain), (paywatch::devnet::L2_CHAIN_ID, soak.app.l2())];
    let funds: BTreeMap<String, Option<String>> = rows(soak, "SELECT fund_id, refund_tx FROM stray_funds")
        .await
        .iter()
        .map(|r| (r.get("fund_id"), r.get("refund_tx")))
        .collect();
    let mut intents: BTreeMap<u64, u64> = BTreeMap::new();
    let mut refunded = 0;
    for r in rows(soak, "SELECT refund_id, fund_id, chain_id, token_address, to_address, amount_base, status, tx_hash, nonce FROM refunds").await {
        let chain_id = r.get::<i64, _>("chain_id") as u64;
        let Some((_, chain)) = chains.iter().find(|(id, _)| *id == chain_id) else { continue };
        let Some(to) = r.get::<Option<String>, _>("to_address") else { continue };
        let status: String = r.get("status");
        let amount = u256(&r.get::<String, _>("amount_base"));
        let holds = chain.balance_of(r.get::<String, _>("token_address").parse().unwrap(), to.parse().unwrap()).await;
        // The external signer may have paid a refund that a reorg ended before its hash was
        // recorded: the operator's double payment, not paywatch's.
        let paid_after_end =
            soak.external.as_ref().is_some_and(|e| e.paid_after_end.contains(&to.parse::<Address>().unwrap()));
        let expected = if status == "refunded" || paid_after_end { amount } else { U256::ZERO };
        let tx_hash: Option<String> = r.get("tx_hash");
        let fund_id: String = r.get("fund_id");
        let refund_id: String = r.get("refund_id");
        if holds != expected || (status == "refunded" && funds.get(&fund_id).cloned().flatten() != tx_hash) {
            return violation(
                "refunds: each refund that reads refunded reached its payer once, and only those",
                format!("refund {refund_id} ({status}, {amount}) to {to} on {chain_id}: holds {holds}; fund {fund_id} {:?}, tx {tx_hash:?}", funds.get(&fund_id)),
            );
        }
        refunded += usize::from(status == "refunded");
        if r.get::<Option<i64>, _>("nonce").is_some() {
            *intents.entry(chain_id).or_default() += 1;
        }
    }
    for (chain_id, chain) in chains {
        let sent =
            alloy::providers::Provider::get_transaction_count(&chain.deployer, soak.refund_wallet).await.unwrap();
        let recorded = match &soak.external {
            Some(signer) => signer.signed_on(chain_id),
            None => intents.get(&chain_id).copied().unwrap_or(0),
        };
        if sent != recorded {
            return violation(
                "refunds: one transaction per refund intent",
                format!("chain {chain_id}: the wallet sent {sent} transactions for {recorded} intents"),
            );
        }
    }
    soak.counts.insert("audit: refunds refunded on chain (at the latest audit)".into(), refunded as u64);
    let expired = rows(soak, "SELECT refund_id FROM refunds WHERE error = 'the claim link expired'").await.len();
    soak.counts.insert("audit: claim links expired (at the latest audit)".into(), expired as u64);
    Ok(())
}

/// 4. Each deposit address holds on chain what it received minus what the sweep ledger says
///    was moved; each treasury gained exactly what the ledger moved to it.
async fn sweeps(soak: &mut Soak) -> Result<(), Violation> {
    let addresses: BTreeSet<Address> = soak.orders.iter().map(|o| o.address).collect();
    let mut moved: BTreeMap<(u64, Address, Address), U256> = BTreeMap::new();
    for r in rows(
        soak,
        "SELECT chain_id, token_address, deposit_address, moved_base FROM sweeps WHERE state IN ('pending', 'confirmed')",
    )
    .await
    {
        let key = (
            r.get::<i64, _>("chain_id") as u64,
            r.get::<String, _>("token_address").parse().unwrap(),
            r.get::<String, _>("deposit_address").parse().unwrap(),
        );
        *moved.entry(key).or_default() += u256(&r.get::<String, _>("moved_base"));
    }
    let chains = [(paywatch::devnet::CHAIN_ID, &soak.app.chain), (paywatch::devnet::L2_CHAIN_ID, soak.app.l2())];
    let mut swept_addresses = 0;
    for (chain_id, chain) in chains {
        let mut received: BTreeMap<(Address, Address), U256> = BTreeMap::new();
        for t in transfers_on(chain).await.into_iter().filter(|t| addresses.contains(&t.to)) {
            *received.entry((t.token, t.to)).or_default() += t.amount;
        }
        for token in chain.deployment.tokens.values().copied() {
            let mut to_treasury = U256::ZERO;
            for address in &addresses {
                let swept = moved.get(&(chain_id, token, *address)).copied().unwrap_or_default();
                to_treasury += swept;
                swept_addresses += usize::from(!swept.is_zero());
                let came = received.get(&(token, *address)).copied().unwrap_or_default();
                let holds = chain.balance_of(token, *address).await;
                if came.checked_sub(swept) != Some(holds) {
                    let ledger = rows(
                        soak,
                        &format!(
                            "SELECT tx_hash, state, expected_base, moved_base, block_number, block_hash FROM sweeps \
                             WHERE chain_id = {chain_id} AND deposit_address = '{}'",
                            paywatch::store::columns::address_text(address)
                        ),
                    )
                    .await;
                    let ledger: Vec<String> = ledger
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {} expected {} moved {} in {:?} {:?}",
                                r.get::<String, _>("tx_hash"),
                                r.get::<String, _>("state"),
                                r.get::<String, _>("expected_base"),
                                r.get::<String, _>("moved_base"),
                                r.get::<Option<i64>, _>("block_number"),
                                r.get::<Option<String>, _>("block_hash"),
                            )
                        })
                        .collect();
                    return violation(
                        "4: a deposit address holds what it received minus what the ledger swept",
                        format!(
                            "chain {chain_id}, token {token}, {address}: received {came}, swept {swept}, holds {holds}; ledger: {ledger:#?}"
                        ),
                    );
                }
            }
            let start = soak.treasury_start[&(chain_id, token)];
            let gained = chain.balance_of(token, chain.treasury).await - start;
            if gained != to_treasury {
                return violation(
                    "4: the treasury received exactly what the sweep ledger says",
                    format!("chain {chain_id}, token {token}: gained {gained}, the ledger moved {to_treasury}"),
                );
            }
        }
    }
    soak.counts.insert("audit: deposit addresses swept (at the latest audit)".into(), swept_addresses as u64);
    Ok(())
}

/// Waits (the recovery job runs every half second here) until no card charge is unresolved.
async fn cards_settled(soak: &Soak) -> Result<(), Violation> {
    let started = Instant::now();
    loop {
        let pending = rows(soak, "SELECT charge_ref FROM card_charges WHERE state = 'pending'").await;
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let refs: Vec<String> = pending.iter().map(|r| r.get("charge_ref")).collect();
            return violation("5: each card charge reaches one outcome", format!("still pending after 60 s: {refs:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 5. Each charge the processor made has one record and one outcome: recorded (and paid for
///    one period of its app, once) or refunded; a failed intent charged nothing it kept.
///    3 (card apps). Each card app's end is its start plus every period paid, in the order paid.
async fn cards(soak: &mut Soak) -> Result<(), Violation> {
    cards_settled(soak).await?;
    let charged: BTreeMap<String, bool> = rows(soak, "SELECT reference, refunded_at FROM sandbox_charges")
        .await
        .iter()
        .map(|r| (r.get("reference"), r.get::<Option<i64>, _>("refunded_at").is_some()))
        .collect();
    let intents: BTreeMap<String, String> = rows(soak, "SELECT charge_ref, state FROM card_charges")
        .await
        .iter()
        .map(|r| (r.get("charge_ref"), r.get("state")))
        .collect();
    let deposits: BTreeMap<String, i64> = rows(soak, "SELECT order_id, COUNT(*) AS n FROM deposits GROUP BY order_id")
        .await
        .iter()
        .map(|r| (r.get("order_id"), r.get("n")))
        .collect();
    for (reference, refunded) in &charged {
        let state = intents.get(reference).map(String::as_str);
        let expected = if *refunded { "refunded" } else { "recorded" };
        if state != Some(expected) {
            return violation(
                "5: each card charge has one record and one outcome",
                format!("charge {reference} (refunded: {refunded}) recorded as {state:?}"),
            );
        }
    }
    for (reference, state) in &intents {
        let kept = charged.get(reference).is_some_and(|refunded| !refunded);
        let paid = deposits.get(reference).copied().unwrap_or(0);
        let consistent = match state.as_str() {
            "recorded" => kept && paid == 1,
            "refunded" | "failed" => !kept && paid == 0,
            _ => false,
        };
        if !consistent {
            return violation(
                "5: each card charge has one record and one outcome",
                format!("intent {reference} is {state}; charge kept: {kept}; deposit rows: {paid}"),
            );
        }
    }
    for app_id in soak.card_apps.clone() {
        app_end(soak, &app_id).await?;
    }
    Ok(())
}

/// 3 (apps paid more than once). The app's end is its start plus every period paid, in the
/// order paid (each deposit row's end the previous one's plus its period), and it is active.
/// An app whose payment a reorg reversed is left unjudged (a reversal takes back its own share
/// and keeps later extensions: the ends no longer chain).
async fn app_end(soak: &mut Soak, app_id: &str) -> Result<(), Violation> {
    let reversed = rows(
        soak,
        &format!(
            "SELECT COUNT(*) AS n FROM webhook_outbox WHERE event_type = 'payment.reversed' AND app_id = '{app_id}'"
        ),
    )
    .await;
    if reversed[0].get::<i64, _>("n") > 0 {
        soak.count("audit: an app left unjudged (a payment reversed)");
        return Ok(());
    }
    let app = rows(soak, &format!("SELECT status, start_time, end_time FROM apps WHERE app_id = '{app_id}'")).await;
    let (status, start, end): (String, Option<i64>, Option<i64>) =
        (app[0].get("status"), app[0].get("start_time"), app[0].get("end_time"));
    let paid = rows(
        soak,
        &format!(
            "SELECT d.app_end_time, o.period_months FROM deposits d JOIN orders o ON o.order_id = d.order_id \
             WHERE d.app_id = '{app_id}' ORDER BY d.app_end_time"
        ),
    )
    .await;
    if paid.is_empty() {
        return Ok(());
    }
    let mut expected = start;
    let mut steps = Vec::new();
    for r in &paid {
        expected = expected.map(|e| add_months(e, r.get::<i64, _>("period_months") as u32));
        steps.push((r.get::<Option<i64>, _>("app_end_time"), expected));
    }
    if status != "active" || end != expected || steps.iter().any(|(had, want)| had != want) {
        return violation(
            "3: each app's end is its start plus every period paid, once",
            format!("app {app_id}: {status} {start:?}..{end:?}; deposits (end, expected): {steps:?}"),
        );
    }
    if paid.len() > 1 {
        soak.count("audit: apps paid more than once, their ends judged");
    }
    Ok(())
}

/// 6. Each fact is announced once and follows the books: per order, `order.paid` events minus
///    `payment.reversed` events is 1 when it is paid and 0 when not, each paid order's app
///    event came with it, and reversals only after a reorg deeper than the confirmations. At
///    the end: every event was delivered to the receiver as written.
async fn webhooks(soak: &mut Soak, last: bool) -> Result<(), Violation> {
    if last {
        deliveries_done(soak).await?;
    }
    let events: Vec<(String, String, Value)> =
        rows(soak, "SELECT event_id, event_type, payload FROM webhook_outbox ORDER BY seq")
            .await
            .iter()
            .map(|r| {
                let payload: String = r.get("payload");
                (r.get("event_id"), r.get("event_type"), serde_json::from_str(&payload).unwrap())
            })
            .collect();
    let mut per_order: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    for (_, kind, payload) in &events {
        let slot = match kind.as_str() {
            "order.paid" => 0,
            "payment.reversed" => 1,
            "app.activated" | "app.extended" => 2,
            _ => continue,
        };
        let order_id = payload["data"]["order_id"].as_str().unwrap_or_default().to_string();
        per_order.entry(order_id).or_default()[slot] += 1;
    }
    let deep_reorgs =
        soak.counts.keys().any(|k| reorg_depth(k).is_some_and(|(depth, confirmations)| depth >= confirmations));
    for r in rows(soak, "SELECT order_id, status, app_id FROM orders").await {
        let (order_id, status, app_id): (String, String, Option<String>) =
            (r.get("order_id"), r.get("status"), r.get("app_id"));
        let [paid, reversed, app_events] = per_order.get(&order_id).copied().unwrap_or_default();
        let standing = paid - reversed;
        let fits = standing == i64::from(status == "paid")
            && reversed >= 0
            && (app_id.is_none() || app_events == paid)
            && (reversed == 0 || deep_reorgs);
        if !fits {
            return violation(
                "6: each fact is announced once",
                format!(
                    "order {order_id} ({status}): {paid} order.paid, {reversed} payment.reversed, {app_events} app events"
                ),
            );
        }
    }
    if last {
        let delivered: BTreeMap<String, Value> = soak
            .receiver
            .seen()
            .into_iter()
            .filter(|d| d.answered < 300)
            .map(|d| (d.event_id.clone(), serde_json::from_str(&d.body).unwrap_or(Value::Null)))
            .collect();
        for (event_id, kind, payload) in &events {
            match delivered.get(event_id) {
                Some(body) if body == payload && body["type"] == kind.as_str() => {}
                other => {
                    return violation(
                        "6: each webhook event is delivered as written",
                        format!("{kind} {event_id}: delivered {other:?}, written {payload}"),
                    );
                }
            }
        }
        if let Some(stranger) = delivered.keys().find(|id| !events.iter().any(|(e, _, _)| e == *id)) {
            return violation("6: each webhook event is delivered as written", format!("{stranger} is no event"));
        }
        soak.count(&format!("final audit: webhook events delivered ({})", events.len()));
    }
    Ok(())
}

/// A reorg fault's depth and its chain's confirmations, from its count's name.
fn reorg_depth(kind: &str) -> Option<(u64, u64)> {
    let rest = kind.strip_prefix("fault: reorg of ")?;
    let (depth, chain) = rest.split_once(' ')?;
    let confirmations = if chain.contains("second") { super::L2_CONFIRMATIONS } else { super::CONFIRMATIONS };
    Some((depth.parse().ok()?, confirmations))
}

/// Until every event in the outbox was delivered (the receiver answers again by now).
async fn deliveries_done(soak: &Soak) -> Result<(), Violation> {
    let started = Instant::now();
    loop {
        let open =
            rows(soak, "SELECT event_id, attempts, failed_at FROM webhook_outbox WHERE delivered_at IS NULL").await;
        if let Some(failed) = open.iter().find(|r| r.get::<Option<i64>, _>("failed_at").is_some()) {
            return violation(
                "6: each webhook event is delivered",
                format!("gave up on {}", failed.get::<String, _>("event_id")),
            );
        }
        if open.is_empty() {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            return violation(
                "6: each webhook event is delivered",
                format!("{} still undelivered after 120 s", open.len()),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
