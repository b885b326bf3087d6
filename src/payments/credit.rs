//! The crediting transaction. One watcher step commits atomically: the new transfers, the
//! confirmations, each touched order's sums and status, the app's activation or extension,
//! the deposit row, the webhook events and the cursor. A crash before commit loses nothing
//! (the step is replayed from the old cursor); a replay changes nothing (transfers are keyed
//! by chain id, tx hash and log index, and sums are recomputed from them).

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, B256, U256};
use rust_decimal::Decimal;
use serde_json::json;

use super::calendar::add_months;
use super::order_money::{OrderMoney, Received, Stray, judge};
use super::order_state::Terms;
use crate::config::{ChainRef, TokenBook};
use crate::money::format_base_units;
use crate::store::apps::{self, AppStatus};
use crate::store::orders::{self, CryptoTerms, Order, OrderKind, OrderStatus, PaymentProgress};
use crate::store::stray_funds::StrayAt;
use crate::store::transfers::{self, Transfer};
use crate::store::{StoreError, StoreResult, Tx, cursor, deposits, outbox, products, stray_funds};

/// The rules that do not change between steps.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The chain whose steps these are (cursor, confirmations, rewinds).
    pub chain_id: u64,
    pub tolerance: Decimal,
    pub late_window_secs: i64,
    /// Every token on every chain: an order's sums count its asset's tokens wherever sent.
    pub tokens: TokenBook,
    /// Orders worth at least this many USD wait for `Step::confirm_large_up_to` (this chain's).
    pub large_usd: Option<Decimal>,
}

impl Rules {
    /// The first chain's rules.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::for_chain(config, config.first_chain())
    }

    pub fn for_chain(config: &crate::config::Config, chain: ChainRef<'_>) -> Self {
        Rules {
            chain_id: chain.chain_id(),
            tolerance: config.orders.underpayment_tolerance.0,
            late_window_secs: config.orders.late_window_secs(),
            tokens: config.token_book().clone(),
            large_usd: chain.config.finality.as_ref().map(|f| f.large_usd.0),
        }
    }

    /// Decimals of the token at `address` on `chain_id` (0 for one no longer configured).
    pub fn decimals(&self, chain_id: u64, address: Address) -> u8 {
        self.tokens.at(chain_id, address).map_or(0, |e| e.decimals)
    }

    /// What transfer `t` counts for an order with terms `crypto`, in the order's base units:
    /// all of it in the order's own token; converted, in another token of the same asset (on
    /// any chain); None for another asset.
    pub fn counted_units(&self, crypto: &CryptoTerms, t: &Transfer) -> Option<U256> {
        self.tokens.counted_units((crypto.chain_id, crypto.token_address), (t.chain_id, t.token), t.amount_base)
    }
}

/// What one watcher step found.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The cursor the step was read from: it commits only if the cursor is still there (one
    /// process that lost its lease and another that took it may both be mid-step).
    pub from_cursor: Option<cursor::Cursor>,
    pub transfers: Vec<Transfer>,
    /// Seen transfers at or below this block become confirmed.
    pub confirm_up_to: Option<u64>,
    /// The same for large orders (`[chain.finality]`); None: none is deep enough yet.
    pub confirm_large_up_to: Option<u64>,
    /// The new cursor: the last block processed.
    pub cursor: Option<cursor::Cursor>,
    /// (number, hash, parent hash) of processed blocks near the head, kept for reorg checks.
    pub blocks: Vec<(u64, B256, B256)>,
    /// Forget stored block hashes below this number.
    pub forget_blocks_below: u64,
    /// The time used to judge expiry (unix seconds).
    pub at: i64,
    /// The range this step's answer covers whole, with every log it held: stored transfers in
    /// it that the answer lacks left the chain (rows an older version recorded above its cursor).
    pub answered: Option<Answered>,
}

/// A believed answer's range and its logs by (tx hash, log index, block hash).
#[derive(Debug, Clone, Default)]
pub struct Answered {
    pub from: u64,
    pub to: u64,
    pub logs: Vec<(B256, u64, B256)>,
}

/// Orders whose state changed, and whether they became paid (or stopped being paid).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub recorded: usize,
    pub paid: Vec<String>,
    pub reversed: Vec<String>,
    /// Stored transfers the step's answer no longer held (deleted; their orders recomputed).
    pub removed: Vec<transfers::Stale>,
}

/// What recomputing one order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Unchanged,
    NewlyPaid,
    Reversed,
}

pub async fn commit_step(tx: &mut Tx, rules: &Rules, step: &Step) -> StoreResult<Outcome> {
    if let Some(c) = step.from_cursor {
        cursor::claim(tx, rules.chain_id, c).await?;
    }
    // Every order this step may write, locked before the first write (see `orders::lock_all`).
    let mut due: BTreeSet<String> = step.transfers.iter().filter_map(|t| t.order_id.clone()).collect();
    if let Some(block) = step.confirm_up_to {
        due.extend(transfers::orders_seen_up_to(tx, rules.chain_id, block).await?);
    }
    let mut stale = match &step.answered {
        Some(a) => transfers::stale_in(tx, rules.chain_id, (a.from, a.to), &a.logs).await?,
        None => Vec::new(),
    };
    // The same log stored at another block (a reorg mined its transaction again elsewhere):
    // the row moves to where this step found it, so it is recorded once, at the canonical one.
    // Only a proven answer (one with `answered`) moves a row; a window's leaves it.
    let moves = if step.answered.is_some() { transfers::stored_elsewhere(tx, &step.transfers).await? } else { vec![] };
    for moved in moves {
        if !stale.iter().any(|s| (&s.tx_hash, s.log_index) == (&moved.tx_hash, moved.log_index)) {
            stale.push(moved);
        }
    }
    due.extend(stale.iter().filter_map(|s| s.order_id.clone()));
    orders::lock_all(tx, &due).await?;
    let mut touched: BTreeSet<String> = stale.iter().filter_map(|s| s.order_id.clone()).collect();
    transfers::remove(tx, rules.chain_id, &stale).await?;
    let mut outcome = Outcome { removed: stale, ..Outcome::default() };
    for t in &step.transfers {
        if transfers::insert_seen(&mut **tx, t).await? {
            outcome.recorded += 1;
            if let Some(order_id) = &t.order_id {
                touched.insert(order_id.clone());
            }
        }
    }
    if let Some(block) = step.confirm_up_to {
        let large = rules.large_usd.map(|usd| (usd, step.confirm_large_up_to));
        touched.extend(transfers::confirm_up_to(tx, rules.chain_id, block, large).await?);
    }
    for order_id in &touched {
        match settle(tx, rules, order_id, step.at).await? {
            Settled::NewlyPaid => outcome.paid.push(order_id.clone()),
            Settled::Reversed => outcome.reversed.push(order_id.clone()),
            Settled::Unchanged => {}
        }
    }
    for (number, hash, parent) in &step.blocks {
        cursor::record_block(&mut **tx, rules.chain_id, *number, *hash, *parent).await?;
    }
    if let Some(c) = step.cursor {
        cursor::set(&mut **tx, rules.chain_id, c).await?;
        cursor::prune_blocks(&mut **tx, rules.chain_id, u64::MAX >> 1, step.forget_blocks_below).await?;
    }
    Ok(outcome)
}

/// After a reorg: every transfer above `ancestor` left the canonical chain, confirmed or not.
/// They are deleted (the new chain is read again from the ancestor) and each touched order is
/// recomputed from what remains; a credited payment that no longer stands is reversed. Returns
/// the orders reversed and the (order id, tx hash) of confirmed transfers that were removed.
pub async fn rewind(
    tx: &mut Tx,
    rules: &Rules,
    ancestor: cursor::Cursor,
    at: i64,
    from: cursor::Cursor,
) -> StoreResult<(Vec<String>, Vec<(Option<String>, String)>)> {
    cursor::claim(tx, rules.chain_id, from).await?;
    let (touched, deep) = transfers::remove_above(tx, rules.chain_id, ancestor.block_number).await?;
    let mut reversed = Vec::new();
    for order_id in &touched {
        if settle(tx, rules, order_id, at).await? == Settled::Reversed {
            reversed.push(order_id.clone());
        }
    }
    cursor::prune_blocks(&mut **tx, rules.chain_id, ancestor.block_number, 0).await?;
    cursor::set(&mut **tx, rules.chain_id, ancestor).await?;
    Ok((reversed, deep))
}

/// Recomputes an order after the operator applied stray funds to it; true when it became paid.
pub async fn settle_applied(tx: &mut Tx, rules: &Rules, order_id: &str, at: i64) -> StoreResult<bool> {
    Ok(settle(tx, rules, order_id, at).await? == Settled::NewlyPaid)
}

/// The one writer of an order's money: under the order's row lock (so two settles of one
/// order serialize and each reads what the other wrote), reads everything the money model
/// needs, lets `order_money::judge` decide, and writes the decision: the sums and status, the
/// app's activation or extension and the deposit row on the step that pays it, the reversal
/// when it stops being paid (a deep reorg), the unattributed rows, and the release of funds
/// applied to an order that closed unpaid. `at` is the chain's clock.
pub async fn settle(tx: &mut Tx, rules: &Rules, order_id: &str, at: i64) -> StoreResult<Settled> {
    orders::lock(tx, order_id).await?;
    let order = orders::get_any(&mut **tx, order_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("transfer for missing order {order_id}")))?;
    let Some(crypto) = order.new.crypto.clone() else {
        return Ok(Settled::Unchanged);
    };
    let own = (crypto.chain_id, crypto.token_address);
    let received: Vec<Received> = transfers::for_order(&mut **tx, order_id)
        .await?
        .into_iter()
        .map(|(t, state)| Received {
            bucket: (t.chain_id, t.token),
            amount: t.amount_base,
            counted: rules.counted_units(&crypto, &t),
            confirmed: state == "confirmed",
            block_time: t.block_time,
            tx_hash: t.tx_hash,
        })
        .collect();
    let (mut settled, mut decimals) = (BTreeMap::new(), BTreeMap::new());
    decimals.insert(own, rules.decimals(own.0, own.1));
    let mut buckets: BTreeSet<(u64, Address)> = received.iter().map(|r| r.bucket).collect();
    buckets.extend(stray_funds::buckets_of(&mut **tx, order_id).await?);
    for (chain_id, token) in buckets {
        decimals.insert((chain_id, token), rules.decimals(chain_id, token));
        settled.insert((chain_id, token), stray_funds::settled_from(&mut **tx, order_id, chain_id, &token).await?);
    }
    let decision = judge(&OrderMoney {
        status: order.progress.status,
        late: order.progress.late,
        paid_at: order.progress.paid_at,
        terms: Terms {
            expected: crypto.amount_base,
            tolerance: rules.tolerance,
            expires_at: order.new.expires_at,
            late_window_secs: rules.late_window_secs,
        },
        own,
        received: &received,
        applied: stray_funds::applied_to(&mut **tx, order_id).await?,
        settled: &settled,
        decimals: &decimals,
        at,
    });
    let update = PaymentProgress {
        status: decision.progress.status,
        seen_base: decision.seen,
        confirmed_base: decision.confirmed,
        overpaid_base: decision.progress.overpaid,
        late: decision.late,
        paid_at: decision.paid_at,
    };
    orders::update_progress(&mut **tx, order_id, order.progress.status, &update).await?;
    write_stray(tx, rules, &order, &decision.stray).await?;
    // Funds applied elsewhere whose money a reorg took back: the orders they paid lose them.
    for s in decision.stray.iter().filter(|s| !s.overdrawn.is_zero()) {
        let (chain_id, token) = s.bucket;
        let taken = stray_funds::take_back_applied(tx, order_id, chain_id, &token, s.overdrawn).await?;
        for target in taken.targets {
            Box::pin(settle(tx, rules, &target, at)).await?;
        }
        for refund_id in taken.cancelled_refunds {
            if let Some(refund) = crate::store::refunds::get(&mut **tx, &refund_id).await? {
                super::refunds::announce(tx, "refund.failed", &refund).await?;
            }
        }
    }
    if decision.release_applied {
        // Each fund goes back to the order it is stray from, whose unattributed row grows.
        for source in stray_funds::release_applied_to(tx, order_id).await? {
            Box::pin(settle(tx, rules, &source, at)).await?;
        }
    }
    let decimals = rules.decimals(crypto.chain_id, crypto.token_address);
    if decision.progress.newly_paid {
        let paid = Paid {
            amount: format_base_units(decision.confirmed, decimals),
            late: decision.progress.late,
            address: Some(crate::store::columns::address_text(&crypto.deposit_address)),
            transaction_hash: decision.completing_tx.map(|h| format!("{h:#x}")),
            card_id: None,
        };
        record_paid(tx, &order, &paid, decision.paid_at_chain).await?;
        return Ok(Settled::NewlyPaid);
    }
    if decision.progress.reversed {
        super::reversal::reverse(tx, &order, at).await?;
        return Ok(Settled::Reversed);
    }
    if decision.progress.status == OrderStatus::PartiallyPaid && decision.confirmed != order.progress.confirmed_base {
        let data = json!({
            "team_id": order.new.team_id, "app_id": order.new.app_id, "order_id": order.order_id,
            "confirmed": format_base_units(decision.confirmed, decimals),
            "expected": order.new.amount.to_string(),
        });
        outbox::emit(&mut **tx, "order.partially_paid", order.new.app_id.as_deref(), data).await?;
    }
    Ok(Settled::Unchanged)
}

/// Writes the order's unattributed rows as the money model decided them (`Decision::stray`):
/// each row stays where the money is, to be swept or refunded there. A new or grown row is
/// announced.
async fn write_stray(tx: &mut Tx, rules: &Rules, order: &Order, stray: &[Stray]) -> StoreResult<()> {
    let Some(crypto) = &order.new.crypto else { return Ok(()) };
    for s in stray {
        let (chain_id, token) = s.bucket;
        let at_address = StrayAt { order, chain_id, token, reason: s.reason, amount: s.open };
        if let Some(fund_id) = stray_funds::set_unattributed(tx, &at_address).await? {
            let decimals = rules.decimals(chain_id, token);
            let data = json!({
                "fund_id": fund_id, "team_id": order.new.team_id, "order_id": order.order_id, "chain_id": chain_id,
                "token": crate::store::columns::address_text(&token), "deposit_address": crate::store::columns::address_text(&crypto.deposit_address),
                "reason": s.reason, "amount": format_base_units(s.open, decimals), "amount_base": s.open.to_string(),
            });
            outbox::emit(&mut **tx, "funds.unattributed", None, data).await?;
        }
    }
    Ok(())
}

/// How a paid order was paid, for its deposit row and event.
#[derive(Debug, Clone)]
pub struct Paid {
    /// What was received, in the pay method's unit.
    pub amount: String,
    pub late: bool,
    pub address: Option<String>,
    pub transaction_hash: Option<String>,
    pub card_id: Option<String>,
}

/// What follows an order becoming paid, card or token alike: the `order.paid` event, the
/// app's activation or extension, and the deposit row (unique per order: never twice).
pub async fn record_paid(tx: &mut Tx, order: &Order, paid: &Paid, at: i64) -> StoreResult<Option<i64>> {
    let data = json!({
        "team_id": order.new.team_id, "app_id": order.new.app_id, "order_id": order.order_id,
        "pay_method": order.new.pay_method.as_str(), "amount": paid.amount, "late": paid.late,
    });
    outbox::emit(&mut **tx, "order.paid", order.new.app_id.as_deref(), data).await?;
    // The app changes after the order, so its events follow the order's.
    let (end, app_before) = apply_to_app(tx, order, at).await?.unzip();
    if order.new.kind == OrderKind::Catalog && !products::retake_returned(tx, &order.order_id).await? {
        tracing::warn!(order_id = order.order_id, "a late payment for a catalog order whose stock has been sold");
        let data = json!({"team_id": order.new.team_id, "order_id": order.order_id});
        outbox::emit(&mut **tx, "order.stock_short", None, data).await?;
    }
    deposits::insert(
        &mut **tx,
        &deposits::NewDeposit {
            team_id: order.new.team_id.clone(),
            app_id: order.new.app_id.clone(),
            order_id: order.order_id.clone(),
            pay_method: order.new.pay_method.as_str().to_string(),
            usd: order.new.usd.to_string(),
            amount: paid.amount.clone(),
            expected_amount: order.new.amount.to_string(),
            address: paid.address.clone(),
            transaction_hash: paid.transaction_hash.clone(),
            card_id: paid.card_id.clone(),
            app_end_time: end,
            deposit_time: at,
            app_before,
        },
    )
    .await?;
    Ok(end)
}

/// Activation (create) or extension (extend) of the order's app; returns the new end time and
/// the app as it was before.
async fn apply_to_app(tx: &mut Tx, order: &Order, at: i64) -> StoreResult<Option<(i64, deposits::AppBefore)>> {
    let Some(app_id) = &order.new.app_id else { return Ok(None) };
    let app = apps::get_app(&mut **tx, &order.new.team_id, app_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("order {} for missing app {app_id}", order.order_id)))?;
    let before = deposits::AppBefore {
        status: app.status.as_str().to_string(),
        start_time: app.start_time,
        end_time: app.end_time,
    };
    let months = order.new.period_months as u32;
    let (start, end, event) = match order.new.kind {
        OrderKind::Create | OrderKind::Catalog => (at, add_months(at, months), "app.activated"),
        OrderKind::Extend => {
            let base = app.end_time.map_or(at, |end| end.max(at));
            (app.start_time.unwrap_or(at), add_months(base, months), "app.extended")
        }
    };
    apps::set_lifetime(&mut **tx, app_id, AppStatus::Active, Some(start), Some(end)).await?;
    let data = json!({
        "team_id": order.new.team_id, "app_id": app_id, "order_id": order.order_id,
        "app_start_time": start, "app_end_time": end,
    });
    outbox::emit(&mut **tx, event, Some(app_id), data).await?;
    Ok(Some((end, before)))
}
