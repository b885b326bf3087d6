//! paywatch: a self-hosted payment watcher for ERC20 tokens. See docs/ARCHITECTURE.md for the map.

pub mod api;
pub mod catalog;
pub mod chain;
pub mod cli;
pub mod config;
pub mod devnet;
pub mod jobs;
pub mod live;
pub mod money;
pub mod overview;
pub mod payments;
pub mod redact;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod watcher;
pub mod webhooks;
