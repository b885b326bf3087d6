//! A card payment that cannot be lost between charge and record. The intent is committed
//! first; the processor is then asked to charge under the intent's reference (it never charges
//! one reference twice); the outcome is recorded conditionally, by whoever gets there first:
//! the request, a retry under the same Idempotency-Key, or the recovery job that asks the
//! processor about intents left pending (a timeout, a dropped client, a crash). A charge whose
//! payment can no longer be recorded is refunded.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

use super::cards::{CardError, CardProcessor, Charge};
use super::checkout::{self, CheckoutError, OrderFor, Quote};
use crate::money::PayMethod;
use crate::store::apps::{self, AppStatus};
use crate::store::card_charges::{self, Intent, IntentState, Purpose};
use crate::store::orders::{self, OrderKind};
use crate::store::{Store, StoreError, StoreResult, products, unix_now};

/// The same card payment sent again without an Idempotency-Key within this window answers
/// the first one's result instead of charging again.
pub const SAME_REQUEST_WINDOW_SECS: i64 = 600;
/// How long one processor call may take before the payment is left to the recovery job.
const PROCESSOR_TIMEOUT: Duration = Duration::from_secs(30);

/// A card payment to make.
#[derive(Debug, Clone)]
pub struct CardPayment {
    pub team_id: String,
    pub card_id: String,
    pub usd: Decimal,
    pub purpose: Purpose,
    /// Set when the request carried an Idempotency-Key: a retry continues this payment.
    pub request_key: Option<String>,
    /// Without a key, a recent identical payment (same fingerprint) answers instead.
    pub dedupe_without_key: bool,
}

/// A recorded card payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub order_id: String,
    pub app_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CardPayError {
    #[error(transparent)]
    Card(CardError),
    #[error("out of stock")]
    OutOfStock,
    #[error("an identical card payment is in progress; retry in a moment")]
    InProgress,
    #[error("the card processor did not answer; the payment is resolved (recorded or not charged) within two minutes")]
    Unresolved,
    #[error("the payment could not be recorded ({0}), so the charge was refunded")]
    Refunded(String),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("card payment task failed: {0}")]
    Task(String),
}

/// What identifies "the same payment" for a client that sends no key. A keyed call's includes
/// its key: distinct keys are distinct payments on purpose.
pub fn fingerprint(team_id: &str, card_id: &str, purpose: &Purpose, request_key: Option<&str>) -> String {
    let what = match purpose {
        Purpose::NewApp { .. } => return uuid::Uuid::new_v4().to_string(), // never the same
        Purpose::Extend { app_id, period } => format!("extend\n{app_id}\n{period}"),
        Purpose::Catalog { product_id, selection, .. } => format!("cart\n{product_id}\n{selection}"),
    };
    let key = request_key.unwrap_or_default();
    hex::encode(Sha256::digest(format!("{team_id}\n{card_id}\n{what}\n{key}")))
}

/// Pays by card: writes the intent, charges, records. See the module comment.
pub async fn pay(store: &Store, cards: &Arc<dyn CardProcessor>, p: CardPayment) -> Result<Recorded, CardPayError> {
    checkout::ensure_payable(&Quote { usd: p.usd, amount: p.usd, token_price_usd: None })?;
    if let Some(key) = &p.request_key
        && let Some(earlier) = card_charges::by_request_key(store.pool(), key).await?
    {
        return continue_intent(store, cards, earlier).await;
    }
    let fingerprint = fingerprint(&p.team_id, &p.card_id, &p.purpose, p.request_key.as_deref());
    if p.request_key.is_none()
        && p.dedupe_without_key
        && let Some(answer) = same_payment(store, &fingerprint).await?
    {
        return answer;
    }
    let intent = Intent {
        charge_ref: orders::new_order_id(),
        team_id: p.team_id,
        card_id: p.card_id,
        usd: p.usd,
        purpose: p.purpose,
        request_key: p.request_key,
        fingerprint,
        state: IntentState::Pending,
        processor_charge_id: None,
        app_id: None,
        error: None,
        created_at: unix_now(),
    };
    let mut tx = store.begin().await?;
    // The intent holds a cart order's stock: both or neither.
    if let Purpose::Catalog { product_id, qty, .. } = &intent.purpose
        && !products::reserve(&mut *tx, *product_id, *qty).await?
    {
        return Err(CardPayError::OutOfStock);
    }
    match card_charges::insert(&mut *tx, &intent).await {
        Ok(()) => tx.commit().await.map_err(StoreError::from)?,
        // The same key raced us in: continue the payment it started.
        Err(e) if e.is_unique_violation() && intent.request_key.is_some() => {
            drop(tx);
            let key = intent.request_key.as_deref().unwrap_or_default();
            let earlier = card_charges::by_request_key(store.pool(), key).await?.ok_or(CardPayError::InProgress)?;
            return continue_intent(store, cards, earlier).await;
        }
        // An identical payment became pending an instant before this one (one pending per
        // fingerprint): answer it, or say it is in progress.
        Err(e) if e.is_unique_violation() => {
            drop(tx);
            return same_payment(store, &intent.fingerprint).await?.unwrap_or(Err(CardPayError::InProgress));
        }
        Err(e) => return Err(e.into()),
    }
    continue_intent(store, cards, intent).await
}

/// The answer of an identical payment of the last 10 minutes, if there is one.
async fn same_payment(store: &Store, fingerprint: &str) -> StoreResult<Option<Result<Recorded, CardPayError>>> {
    let since = unix_now() - SAME_REQUEST_WINDOW_SECS;
    Ok(card_charges::recent_by_fingerprint(store.pool(), fingerprint, since).await?.map(|earlier| {
        match earlier.state {
            IntentState::Recorded => Ok(recorded_of(&earlier)),
            _ => Err(CardPayError::InProgress),
        }
    }))
}

/// Finishes an intent: answers a recorded one, or charges (again: the processor answers the
/// same charge for the same reference) and records. The work runs in a task of its own, so a
/// request that times out or whose client leaves does not stop it between charge and record.
async fn continue_intent(
    store: &Store,
    cards: &Arc<dyn CardProcessor>,
    intent: Intent,
) -> Result<Recorded, CardPayError> {
    match intent.state {
        IntentState::Recorded => return Ok(recorded_of(&intent)),
        IntentState::Refunded => return Err(CardPayError::Refunded(intent.error.unwrap_or_default())),
        IntentState::Failed => {
            return Err(CardPayError::Card(CardError::Declined(intent.error.unwrap_or_default())));
        }
        IntentState::Pending => {}
    }
    let (store, cards) = (store.clone(), cards.clone());
    tokio::spawn(async move {
        let asked =
            tokio::time::timeout(PROCESSOR_TIMEOUT, cards.charge(&intent.card_id, intent.usd, &intent.charge_ref))
                .await;
        let answer = match asked {
            Ok(answer) => answer.map(Some),
            Err(_) => Err(CardError::Unavailable),
        };
        apply_answer(&store, cards.as_ref(), &intent, answer).await
    })
    .await
    .map_err(|e| CardPayError::Task(e.to_string()))?
}

/// Applies what the processor said about a pending intent: `Some(charge)` records it (or
/// refunds it), `None` (a lookup found no charge) or a refusal marks it failed, no answer
/// leaves it pending.
pub async fn apply_answer(
    store: &Store,
    cards: &dyn CardProcessor,
    intent: &Intent,
    answer: Result<Option<Charge>, CardError>,
) -> Result<Recorded, CardPayError> {
    match answer {
        Ok(Some(charge)) => record(store, cards, intent, &charge).await,
        Ok(None) => {
            fail(store, intent, "the processor has no charge for this payment").await?;
            Err(CardPayError::Card(CardError::Declined("not charged".into())))
        }
        Err(e) if e.is_refusal() => {
            fail(store, intent, &e.to_string()).await?;
            Err(CardPayError::Card(e))
        }
        Err(_) => Err(CardPayError::Unresolved),
    }
}

/// Records a charged intent in one transaction, unless someone else resolved it first.
async fn record(
    store: &Store,
    cards: &dyn CardProcessor,
    intent: &Intent,
    charge: &Charge,
) -> Result<Recorded, CardPayError> {
    let mut tx = store.begin().await?;
    // Taken first: a concurrent resolver waits on this row, then finds it resolved.
    if !card_charges::resolve(&mut *tx, &intent.charge_ref, IntentState::Recorded, Some(&charge.charge_id), None, None)
        .await?
    {
        drop(tx);
        return resolved_elsewhere(store, cards, intent, charge).await;
    }
    match write_payment(&mut tx, intent).await {
        Ok(app_id) => {
            if let Some(app_id) = &app_id {
                card_charges::set_app(&mut *tx, &intent.charge_ref, app_id).await?;
            }
            tx.commit().await.map_err(StoreError::from)?;
            crate::telemetry::payments_credited("card", 1);
            Ok(Recorded { order_id: intent.charge_ref.clone(), app_id })
        }
        Err(cause) => {
            drop(tx);
            give_back(store, cards, intent, charge, &cause.to_string()).await
        }
    }
}

/// Another resolver got there first. Recorded: the same answer. Failed (a lookup found no
/// charge while this one was still on its way): the charge has nothing to pay for; refund it.
async fn resolved_elsewhere(
    store: &Store,
    cards: &dyn CardProcessor,
    intent: &Intent,
    charge: &Charge,
) -> Result<Recorded, CardPayError> {
    let now = card_charges::get(store.pool(), &intent.charge_ref)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("card charge {} vanished", intent.charge_ref)))?;
    match now.state {
        IntentState::Recorded => Ok(recorded_of(&now)),
        IntentState::Failed => {
            refund_or_warn(cards, intent, charge).await;
            Err(CardPayError::Refunded("the payment had already been given up".into()))
        }
        IntentState::Refunded => Err(CardPayError::Refunded(now.error.unwrap_or_default())),
        IntentState::Pending => Err(CardPayError::InProgress),
    }
}

/// The order, the app's creation or extension, the deposit and the events for a charged intent.
async fn write_payment(tx: &mut crate::store::Tx, intent: &Intent) -> Result<Option<String>, CheckoutError> {
    let quote = Quote { usd: intent.usd, amount: intent.usd, token_price_usd: None };
    let team_id = intent.team_id.as_str();
    let app_id = match &intent.purpose {
        Purpose::NewApp { spec, .. } => {
            Some(apps::insert_app(&mut **tx, team_id, spec, PayMethod::CreditCard).await?.app_id)
        }
        Purpose::Extend { app_id, .. } => {
            let app = apps::get_app(&mut **tx, team_id, app_id).await?;
            if !app.is_some_and(|a| !matches!(a.status, AppStatus::PendingPayment | AppStatus::Cancelled)) {
                return Err(StoreError::Conflict(format!("app {app_id} can no longer be extended")).into());
            }
            Some(app_id.clone())
        }
        Purpose::Catalog { .. } => None,
    };
    let (kind, period_months) = match &intent.purpose {
        Purpose::NewApp { period, .. } => (OrderKind::Create, *period),
        Purpose::Extend { period, .. } => (OrderKind::Extend, *period),
        Purpose::Catalog { .. } => (OrderKind::Catalog, 0),
    };
    let what = OrderFor { team_id, app_id: app_id.as_deref(), kind, period_months };
    checkout::record_card_payment(tx, what, quote, &intent.card_id, &intent.charge_ref).await?;
    if let Purpose::Catalog { product_id, qty, selection } = &intent.purpose {
        products::record_reservation(tx, &intent.charge_ref, *product_id, *qty, selection).await?;
    }
    Ok(app_id)
}

/// The money moved but the record cannot be written: the intent is claimed as refunded first
/// (so no other resolver records it meanwhile: a payment is never both recorded and refunded),
/// its stock given back, then the charge refunded. A refund the processor refuses is logged and
/// counted (`paywatch_card_refunds_total{result="failed"}`) for the operator.
async fn give_back(
    store: &Store,
    cards: &dyn CardProcessor,
    intent: &Intent,
    charge: &Charge,
    cause: &str,
) -> Result<Recorded, CardPayError> {
    tracing::warn!(
        charge_ref = intent.charge_ref,
        error = cause,
        "card charged but the payment could not be recorded; refunding"
    );
    let mut tx = store.begin().await?;
    let claimed = card_charges::resolve(
        &mut *tx,
        &intent.charge_ref,
        IntentState::Refunded,
        Some(&charge.charge_id),
        None,
        Some(cause),
    )
    .await?;
    if !claimed {
        drop(tx);
        return resolved_elsewhere(store, cards, intent, charge).await;
    }
    release_stock(&mut tx, intent).await?;
    tx.commit().await.map_err(StoreError::from)?;
    refund_or_warn(cards, intent, charge).await;
    Err(CardPayError::Refunded(cause.to_string()))
}

async fn refund_or_warn(cards: &dyn CardProcessor, intent: &Intent, charge: &Charge) -> bool {
    match cards.refund(charge).await {
        Ok(()) => {
            metrics::counter!(crate::telemetry::CARD_REFUNDS, "result" => "refunded").increment(1);
            true
        }
        Err(e) => {
            metrics::counter!(crate::telemetry::CARD_REFUNDS, "result" => "failed").increment(1);
            tracing::error!(charge_ref = intent.charge_ref, charge_id = charge.charge_id, error = %e, "refund failed: refund this charge by hand");
            false
        }
    }
}

/// Nothing was charged: the intent fails and gives back the stock it held.
async fn fail(store: &Store, intent: &Intent, why: &str) -> StoreResult<()> {
    let mut tx = store.begin().await?;
    if card_charges::resolve(&mut *tx, &intent.charge_ref, IntentState::Failed, None, None, Some(why)).await? {
        release_stock(&mut tx, intent).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn release_stock(tx: &mut crate::store::Tx, intent: &Intent) -> StoreResult<()> {
    if let Purpose::Catalog { product_id, qty, .. } = &intent.purpose {
        products::unreserve(&mut **tx, *product_id, *qty).await?;
    }
    Ok(())
}

fn recorded_of(intent: &Intent) -> Recorded {
    Recorded { order_id: intent.charge_ref.clone(), app_id: intent.app_id.clone() }
}

/// What one recovery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Recovery {
    pub recorded: usize,
    pub not_charged: usize,
    pub refunded: usize,
    pub unresolved: usize,
}

/// Resolves intents pending since before `before` by asking the processor what it did.
pub async fn recover_pending(store: &Store, cards: &dyn CardProcessor, before: i64) -> StoreResult<Recovery> {
    let mut report = Recovery::default();
    for intent in card_charges::pending_before(store.pool(), before, 100).await? {
        let answer = cards.lookup(&intent.charge_ref).await;
        match apply_answer(store, cards, &intent, answer).await {
            Ok(_) => report.recorded += 1,
            Err(CardPayError::Card(_)) => report.not_charged += 1,
            Err(CardPayError::Refunded(_)) => report.refunded += 1,
            Err(CardPayError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(charge_ref = intent.charge_ref, error = %e, "card payment still unresolved");
                report.unresolved += 1;
            }
        }
    }
    Ok(report)
}
