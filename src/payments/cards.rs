//! Card processors behind one trait. A charge carries the caller's reference with Stripe's
//! `Idempotency-Key` semantics (the same reference never charges twice) and can be looked up
//! by it later, so a payment whose answer was lost can be resolved. The built-in `sandbox`
//! answers like Stripe's test payment methods and keeps its charges in the database.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rust_decimal::Decimal;
use sqlx::Row;

use crate::store::{Store, unix_now};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card declined: {0}")]
    Declined(String),
    #[error("card declined: insufficient funds")]
    InsufficientFunds,
    #[error("unknown card_id {0:?}")]
    UnknownCard(String),
    /// No answer, or an error after the request reached the processor: the card may or may
    /// not have been charged, and only a lookup by reference can tell.
    #[error("the card processor is unavailable")]
    Unavailable,
}

impl CardError {
    /// True when the processor said no: nothing was charged.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, CardError::Unavailable)
    }
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: String,
}

pub type ChargeFuture<'a> = Pin<Box<dyn Future<Output = Result<Charge, CardError>> + Send + 'a>>;
pub type RefundFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CardError>> + Send + 'a>>;
pub type LookupFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<Charge>, CardError>> + Send + 'a>>;

pub trait CardProcessor: Send + Sync {
    /// Charges `usd` to `card_id` once per `reference`: asked again with the same reference,
    /// it answers the first charge instead of charging again.
    fn charge<'a>(&'a self, card_id: &'a str, usd: Decimal, reference: &'a str) -> ChargeFuture<'a>;

    /// The charge made under `reference`, if any (None: the card was not charged).
    fn lookup<'a>(&'a self, reference: &'a str) -> LookupFuture<'a>;

    /// Gives a whole charge back (when what it paid for could not be recorded).
    fn refund<'a>(&'a self, charge: &'a Charge) -> RefundFuture<'a>;
}

/// Stripe-like test cards: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined,
/// `pm_card_chargeDeclinedInsufficientFunds` fails for funds, anything else is unknown. For
/// faults between charge and record: `pm_card_visa_slow_<N>` charges at once and answers after
/// N seconds; `pm_card_visa_queued_<N>` waits N seconds before it charges; and
/// `pm_card_visa_chargedThenError` charges and then answers as if the connection dropped.
pub struct Sandbox {
    store: Store,
}

/// How a sandbox card behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCard {
    Charges { wait_before: u64, wait_after: u64, then_error: bool },
    Refuses,
}

const MAX_WAIT_SECS: u64 = 600;

fn test_card(card_id: &str) -> Result<TestCard, CardError> {
    let seconds = |rest: &str| rest.parse::<u64>().ok().filter(|s| *s <= MAX_WAIT_SECS);
    let charges = |wait_before, wait_after, then_error| Ok(TestCard::Charges { wait_before, wait_after, then_error });
    match card_id {
        "pm_card_visa" => charges(0, 0, false),
        "pm_card_visa_chargedThenError" => charges(0, 0, true),
        "pm_card_chargeDeclined" | "pm_card_chargeDeclinedInsufficientFunds" => Ok(TestCard::Refuses),
        other => {
            if let Some(n) = other.strip_prefix("pm_card_visa_slow_").and_then(seconds) {
                charges(0, n, false)
            } else if let Some(n) = other.strip_prefix("pm_card_visa_queued_").and_then(seconds) {
                charges(n, 0, false)
            } else {
                Err(CardError::UnknownCard(other.to_string()))
            }
        }
    }
}

impl Sandbox {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn charge_once(&self, card_id: &str, usd: Decimal, reference: &str) -> Result<Charge, CardError> {
        let pool = self.store.pool();
        sqlx::query(
            "INSERT INTO sandbox_charges (reference, charge_id, card_id, usd, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (reference) DO NOTHING",
        )
        .bind(reference)
        .bind(format!("ch_sandbox_{}", uuid::Uuid::new_v4().simple()))
        .bind(card_id)
        .bind(usd.to_string())
        .bind(unix_now())
        .execute(pool)
        .await
        .map_err(|_| CardError::Unavailable)?;
        self.lookup_charge(reference).await?.ok_or(CardError::Unavailable)
    }

    async fn lookup_charge(&self, reference: &str) -> Result<Option<Charge>, CardError> {
        let row = sqlx::query("SELECT charge_id FROM sandbox_charges WHERE reference = $1")
            .bind(reference)
            .fetch_optional(self.store.pool())
            .await
            .map_err(|_| CardError::Unavailable)?;
        row.map(|r| r.try_get("charge_id").map(|charge_id| Charge { charge_id }))
            .transpose()
            .map_err(|_| CardError::Unavailable)
    }
}

impl CardProcessor for Sandbox {
    fn charge<'a>(&'a self, card_id: &'a str, usd: Decimal, reference: &'a str) -> ChargeFuture<'a> {
        Box::pin(async move {
            let (wait_before, wait_after, then_error) = match test_card(card_id)? {
                TestCard::Refuses if card_id == "pm_card_chargeDeclinedInsufficientFunds" => {
                    return Err(CardError::InsufficientFunds);
                }
                TestCard::Refuses => return Err(CardError::Declined("generic_decline".into())),
                TestCard::Charges { wait_before, wait_after, then_error } => (wait_before, wait_after, then_error),
            };
            if usd <= Decimal::ZERO {
                return Err(CardError::Declined("the amount must be positive".into()));
            }
            tokio::time::sleep(Duration::from_secs(wait_before)).await;
            let charge = self.charge_once(card_id, usd, reference).await?;
            tokio::time::sleep(Duration::from_secs(wait_after)).await;
            if then_error { Err(CardError::Unavailable) } else { Ok(charge) }
        })
    }

    fn lookup<'a>(&'a self, reference: &'a str) -> LookupFuture<'a> {
        Box::pin(self.lookup_charge(reference))
    }

    fn refund<'a>(&'a self, charge: &'a Charge) -> RefundFuture<'a> {
        Box::pin(async move {
            let done =
                sqlx::query("UPDATE sandbox_charges SET refunded_at = COALESCE(refunded_at, $1) WHERE charge_id = $2")
                    .bind(unix_now())
                    .bind(&charge.charge_id)
                    .execute(self.store.pool())
                    .await
                    .map_err(|_| CardError::Unavailable)?;
            if done.rows_affected() == 1 { Ok(()) } else { Err(CardError::UnknownCard(charge.charge_id.clone())) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_are_read_like_stripes() {
        assert_eq!(
            test_card("pm_card_visa"),
            Ok(TestCard::Charges { wait_before: 0, wait_after: 0, then_error: false })
        );
        assert_eq!(
            test_card("pm_card_visa_slow_35"),
            Ok(TestCard::Charges { wait_before: 0, wait_after: 35, then_error: false })
        );
        assert_eq!(
            test_card("pm_card_visa_queued_4"),
            Ok(TestCard::Charges { wait_before: 4, wait_after: 0, then_error: false })
        );
        assert_eq!(test_card("pm_card_chargeDeclined"), Ok(TestCard::Refuses));
        assert!(matches!(test_card("pm_card_visa_slow_9999"), Err(CardError::UnknownCard(_))));
        assert!(matches!(test_card("pm_nope"), Err(CardError::UnknownCard(_))));
        assert!(CardError::Declined("x".into()).is_refusal() && !CardError::Unavailable.is_refusal());
    }
}
