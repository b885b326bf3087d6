//! Live order status. The recorder appends an order event whenever an order's view changes
//! (a payment seen, one more confirmation, paid, expired); the API streams those events as
//! Server-Sent Events whose ids are the events' `seq`, so a client resumes where it left off.
//! Only the watcher-lease holder records, so processes sharing a database write each change once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::chain::status::ChainStatus;
use crate::chain::watcher::UNSAFE_ZONE;
use crate::config::{Config, Confirmations};
use crate::payments::order_view::{self, OrderView};
use crate::store::{Store, StoreResult, order_events, unix_now};

/// How far back, in seconds, the first pass after a start looks for changed orders, beyond
/// the newest recorded event: changes made while no recorder ran are picked up then.
const RESTART_MARGIN_SECS: i64 = 60;

pub async fn run(
    store: Store,
    config: Arc<Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let tick = Duration::from_millis(config.chain.poll_interval_ms);
    let mut since = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
        // Confirmations are counted from the leader's head; before its first step there is none.
        if !status.is_leader() || status.head() == 0 {
            continue;
        }
        let started = unix_now();
        // Each event is its own write, so a pass cut off by shutdown or a lost lease leaves
        // nothing half done; the next leader's pass picks up from its own `since`.
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = status.leadership_lost() => {}
            result = pass(&store, &config, status.head(), since) => match result {
                // A change in the same second as `started` is looked at again next pass, not missed.
                Ok(()) => since = Some(started - 1),
                Err(e) => tracing::warn!(error = %e, "recording order events failed; next pass retries"),
            },
        }
    }
}

async fn pass(store: &Store, config: &Config, head: u64, since: Option<i64>) -> StoreResult<()> {
    let changed_since = match since {
        Some(t) => t,
        None => order_events::last_recorded_at(store.pool()).await?.unwrap_or(0) - RESTART_MARGIN_SECS,
    };
    let appended = record_changes(store, config, head, changed_since).await?;
    if appended > 0 {
        tracing::debug!(appended, "order events recorded");
    }
    Ok(())
}

/// Appends an event for every candidate order whose view differs from its last event;
/// returns how many were appended.
pub async fn record_changes(store: &Store, config: &Config, head: u64, changed_since: i64) -> StoreResult<usize> {
    let mut appended = 0;
    for order_id in order_events::candidates(store.pool(), changed_since).await? {
        let Some(view) = order_view::load(store, config, head, None, &order_id).await? else {
            continue;
        };
        let view = settled(view, confirmation_cap(config));
        let data = serde_json::to_string(&view).expect("an order view serializes");
        let previous = order_events::latest_data(store.pool(), &order_id).await?;
        if previous.as_deref() == Some(data.as_str()) {
            continue;
        }
        let previous: Option<OrderView> = previous.and_then(|p| serde_json::from_str(&p).ok());
        order_events::append(store.pool(), &order_id, event_name(previous.as_ref(), &view), &data).await?;
        appended += 1;
    }
    Ok(appended)
}

/// Past the depth that settles a payment, more blocks change nothing the payer needs to see.
fn confirmation_cap(config: &Config) -> u64 {
    match config.chain.confirmations {
        Confirmations::Blocks(n) => n,
        Confirmations::Finalized | Confirmations::Safe => UNSAFE_ZONE,
    }
}

fn settled(mut view: OrderView, cap: u64) -> OrderView {
    for p in &mut view.payments {
        p.confirmations = p.confirmations.min(cap);
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
