//! Everything that talks to the chain: contract bindings, deposit-address derivation, the RPC
//! connection, deployment, sweeping, and the watcher with its parts.

pub mod completeness;
pub mod contracts;
pub mod deploy;
pub mod deposit_address;
pub mod deposit_index;
pub mod failover;
pub mod leader;
pub mod progress;
pub mod range;
pub mod rpc;
pub mod status;
pub mod sweep;
pub mod wake;
pub mod watcher;
