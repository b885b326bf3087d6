//! Live order status. The recorder appends an order event whenever an order's view changes
//! (a payment seen, one more confirmation, paid, expired); the API streams those events as
//! Server-Sent Events whose ids are the events' `seq`, so a client resumes where it left off.
//! Only the watcher-lease holder records, so processes sharing a database write each change once.
//!
//! What to look at comes from the changes themselves, never from scanning history: triggers
//! note every order a transaction changes in `order_changes` (whichever process commits it),
//! and orders with a payment still confirming are kept in memory and looked at again when the
//! head moves. The watcher rings `ChainStatus::changed` after each commit and head move, so the
//! recorder runs at once; a change committed by another process waits at most one poll.

pub mod hub;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::chain::status::{Chains, Heads};
use crate::config::{Config, Confirmations};
use crate::payments::order_view::{self, OrderView};
use crate::store::{Store, StoreResult, order_events};
use crate::watcher::UNSAFE_ZONE;

/// Changes looked at per pass; a full page makes the next pass start at once.
const PAGE: i64 = 1_000;

pub async fn run(
    store: Store,
    config: Arc<Config>,
    chains: Arc<Chains>,
    hub: Arc<hub::Hub>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // The first chain's lease holder records; any chain's head move or commit wakes it.
    let status = chains.first().status.clone();
    let tick = Duration::from_millis(config.chain.poll_interval_ms);
    let mut recorder: Option<Recorder> = None;
    let mut more = false;
    loop {
        if !more {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(tick) => {}
                _ = chains.changed() => {}
            }
        }
        more = false;
        // Confirmations are counted from the leader's head; before its first step there is none.
        if !status.is_leader() || status.head() == 0 {
            // A later term starts from the database again: another leader recorded meanwhile.
            recorder = None;
            continue;
        }
        let r = recorder.get_or_insert_with(|| Recorder::new(store.clone(), config.clone(), hub.clone()));
        // Each event is its own write, so a pass cut off by shutdown or a lost lease leaves
        // nothing half done: its changes stay pending for the next leader.
        let heads = chains.heads();
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = status.leadership_lost() => recorder = None,
            result = r.pass(&heads) => match result {
                Ok(passed) => more = passed.more,
                Err(e) => tracing::warn!(error = %e, "recording order events failed; next pass retries"),
            },
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    pub appended: usize,
    /// More changes are pending than one pass takes: the next starts at once.
    pub more: bool,
}

/// The leader's recorder: which orders are still confirming, and the head it last looked at.
pub struct Recorder {
    store: Store,
    config: Arc<Config>,
    hub: Arc<hub::Hub>,
    /// None until read from the database at the first pass.
    confirming: Option<HashSet<String>>,
    heads_looked_at: Heads,
}

impl Recorder {
    pub fn new(store: Store, config: Arc<Config>, hub: Arc<hub::Hub>) -> Self {
        Self { store, config, hub, confirming: None, heads_looked_at: Heads::new() }
    }

    /// Looks at every pending change, and at confirming orders when the head moved.
    pub async fn pass(&mut self, heads: &Heads) -> StoreResult<Passed> {
        let store = self.store.clone();
        let pool = store.pool();
        if self.confirming.is_none() {
            self.confirming = Some(order_events::confirming(pool).await?.into_iter().collect());
        }
        let mut appended = 0;
        let changes = order_events::pending_changes(pool, PAGE).await?;
        let mut looked_at = HashSet::new();
        for (order_id, version) in &changes {
            appended += self.record(order_id, heads).await? as usize;
            order_events::change_recorded(pool, order_id, *version).await?;
            looked_at.insert(order_id.clone());
        }
        if *heads != self.heads_looked_at {
            let confirming: Vec<String> = self.confirming.iter().flatten().cloned().collect();
            for order_id in confirming.iter().filter(|id| !looked_at.contains(*id)) {
                appended += self.record(order_id, heads).await? as usize;
            }
            self.heads_looked_at = heads.clone();
        }
        if appended > 0 {
            tracing::debug!(appended, "order events recorded");
            self.hub.appended();
        }
        Ok(Passed { appended, more: changes.len() as i64 == PAGE })
    }

    /// Appends an event when the order's view differs from its last one; true when it did.
    async fn record(&mut self, order_id: &str, heads: &Heads) -> StoreResult<bool> {
        let Some(view) = order_view::load(&self.store, &self.config, heads, None, order_id).await? else {
            return Ok(false);
        };
        let view = settled(view, &self.config);
        let confirming = self.confirming.get_or_insert_with(HashSet::new);
        // A payment above the head this pass was given: the watcher committed it after the
        // heads were read (it moves the head first). Not recorded with 0 confirmations; the
        // order is looked at again once the heads move, which they already have.
        if view.payments.iter().any(|p| heads.get(&p.chain_id).is_some_and(|h| p.block_number > *h)) {
            confirming.insert(order_id.to_string());
            return Ok(false);
        }
        if view.payments.iter().any(|p| p.confirmations < confirmation_cap(&self.config, p.chain_id)) {
            confirming.insert(order_id.to_string());
        } else {
            confirming.remove(order_id);
        }
        let data = serde_json::to_string(&view).expect("an order view serializes");
        let previous = order_events::latest_data(self.store.pool(), order_id).await?;
        if previous.as_deref() == Some(data.as_str()) {
            return Ok(false);
        }
        let previous: Option<OrderView> = previous.and_then(|p| serde_json::from_str(&p).ok());
        order_events::append(self.store.pool(), order_id, event_name(previous.as_ref(), &view), &data).await?;
        Ok(true)
    }
}

/// Past the depth that settles a payment on `chain_id`, more blocks change nothing the payer
/// needs to see.
pub fn confirmation_cap(config: &Config, chain_id: u64) -> u64 {
    let chain = config.chain_by_id(chain_id).unwrap_or_else(|| config.first_chain());
    match chain.config.confirmations {
        Confirmations::Blocks(n) => n,
        Confirmations::Finalized | Confirmations::Safe => UNSAFE_ZONE,
    }
}

fn settled(mut view: OrderView, config: &Config) -> OrderView {
    for p in &mut view.payments {
        p.confirmations = p.confirmations.min(confirmation_cap(config, p.chain_id));
    }
    view
}

/// What changed, named for the payer: a new status, a new payment, or deeper confirmations.
pub fn event_name(previous: Option<&OrderView>, now: &OrderView) -> &'static str {
    let status_event = || match (now.status.as_str(), now.late) {
        ("paid", true) => "paid_late",
        ("paid", false) => "paid",
        ("partially_paid", _) => "partially_paid",
        ("expired", _) => "expired",
        _ => "awaiting_payment",
    };
    let Some(previous) = previous else {
        return status_event();
    };
    if previous.status != now.status || previous.late != now.late {
        status_event()
    } else if now.payments.len() > previous.payments.len() {
        "seen"
    } else if now.payments.len() < previous.payments.len() {
        "reorged"
    } else if now.payments.iter().zip(&previous.payments).any(|(a, b)| a.confirmations != b.confirmations) {
        "confirmations"
    } else {
        "updated"
    }
}
