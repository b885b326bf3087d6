//! The product catalog: goods specifications (seed 000) with their display prices, and the
//! hosting product configuration (seed 002): products, generated host names and passwords,
//! and the pricing of a selection.

pub mod cart;
pub mod config_view;
pub mod goods;
pub mod import;
pub mod products;
pub mod secrets;
