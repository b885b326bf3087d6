//! Card processors behind one trait. The built-in `sandbox` answers like Stripe's test
//! payment methods, so flows can be tested end to end without a network.

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("card declined: {0}")]
    Declined(String),
    #[error("card declined: insufficient funds")]
    InsufficientFunds,
    #[error("unknown card_id {0:?}")]
    UnknownCard(String),
    #[error("the card processor is unavailable")]
    Unavailable,
}

/// A successful charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub charge_id: String,
}

pub type ChargeFuture<'a> = Pin<Box<dyn Future<Output = Result<Charge, CardError>> + Send + 'a>>;
pub type RefundFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CardError>> + Send + 'a>>;

pub trait CardProcessor: Send + Sync {
    /// Charges `usd` to `card_id`; `reference` (the order id) makes retries safe at processors
    /// that deduplicate.
    fn charge<'a>(&'a self, card_id: &'a str, usd: Decimal, reference: &'a str) -> ChargeFuture<'a>;

    /// Gives a whole charge back (when what it paid for could not be recorded).
    fn refund<'a>(&'a self, charge: &'a Charge) -> RefundFuture<'a>;
}

/// Stripe-like test cards: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined,
/// `pm_card_chargeDeclinedInsufficientFunds` fails for funds, anything else is unknown.
#[derive(Debug, Default)]
pub struct Sandbox;

impl CardProcessor for Sandbox {
    fn charge<'a>(&'a self, card_id: &'a str, usd: Decimal, reference: &'a str) -> ChargeFuture<'a> {
        Box::pin(async move {
            match card_id {
                "pm_card_visa" if usd > Decimal::ZERO => Ok(Charge { charge_id: format!("ch_sandbox_{reference}") }),
                "pm_card_visa" => Err(CardError::Declined("the amount must be positive".into())),
                "pm_card_chargeDeclined" => Err(CardError::Declined("generic_decline".into())),
                "pm_card_chargeDeclinedInsufficientFunds" => Err(CardError::InsufficientFunds),
                other => Err(CardError::UnknownCard(other.to_string())),
            }
        })
    }

    fn refund<'a>(&'a self, charge: &'a Charge) -> RefundFuture<'a> {
        Box::pin(async move {
            if charge.charge_id.starts_with("ch_sandbox_") {
                Ok(())
            } else {
                Err(CardError::UnknownCard(charge.charge_id.clone()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sandbox_answers_like_stripe_test_cards() {
        let s = Sandbox;
        assert!(s.charge("pm_card_visa", Decimal::ONE, "o1").await.is_ok());
        assert_eq!(
            s.charge("pm_card_chargeDeclined", Decimal::ONE, "o").await,
            Err(CardError::Declined("generic_decline".into()))
        );
        assert_eq!(
            s.charge("pm_card_chargeDeclinedInsufficientFunds", Decimal::ONE, "o").await,
            Err(CardError::InsufficientFunds)
        );
        assert!(matches!(s.charge("pm_nope", Decimal::ONE, "o").await, Err(CardError::UnknownCard(_))));
        let charge = s.charge("pm_card_visa", Decimal::ONE, "o2").await.unwrap();
        assert_eq!(s.refund(&charge).await, Ok(()));
        assert!(s.refund(&Charge { charge_id: "ch_elsewhere".into() }).await.is_err());
    }
}
