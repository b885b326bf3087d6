//! The payment rules, free of I/O where they can be: pricing, token prices, order state
//! transitions and calendar arithmetic; `credit` applies them to the store in one transaction.

pub mod calendar;
pub mod card_payment;
pub mod cards;
pub mod checkout;
pub mod credit;
pub mod extension;
pub mod order_money;
pub mod order_state;
pub mod order_view;
pub mod payment_link;
pub mod prices;
pub mod pricing;
pub mod refunds;
pub mod reversal;
pub mod stray;
