//! The payment rules, free of I/O where they can be: pricing, token prices, order state
//! transitions and calendar arithmetic; `credit` applies them to the store in one transaction.
//!
//! The ledger: this module is the only writer of an order's status, its stray funds and its
//! refunds (`credit::settle`, `funds`, `refunds`, `expiry`, `checkout`), each change in one
//! transaction under the order's row lock; handlers and jobs call it, the store only reads
//! and writes rows. tests/it/architecture.rs holds every other module to that.

pub use paywatch_core::{order_money, order_state};

pub mod calendar;
pub mod card_payment;
pub mod cards;
pub mod checkout;
pub mod credit;
pub mod expiry;
pub mod extension;
pub mod funds;
pub mod gasless;
pub mod order_view;
pub mod prices;
pub mod pricing;
pub mod refunds;
pub mod reversal;
pub mod stray;

use crate::store::StoreError;

/// Why a change to the books was refused (the API maps each to its status).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {problem}")]
    Invalid { field: &'static str, problem: String },
    /// A configured limit refuses it.
    #[error("{0}")]
    Limit(String),
    #[error("no price to value the refund: {0}")]
    Price(String),
    /// A dependency (a chain's RPC) cannot answer now; the same request may work later.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        LedgerError::Store(e.into())
    }
}

pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> LedgerError {
    LedgerError::Invalid { field, problem: problem.into() }
}
