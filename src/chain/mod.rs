//! Everything that talks to the chain: contract bindings, deposit-address derivation, the RPC
//! connection and its failover, deployment, sweeping, the deposit index, the lease and the
//! status the watcher shares (the watcher itself is `crate::watcher`).

pub use paywatch_core::{completeness, one_node, pace};

pub mod contracts;
pub mod deploy;
pub mod deposit_address;
pub mod deposit_index;
pub mod failover;
pub mod leader;
pub mod range;
pub mod rpc;
pub mod status;
pub mod sweep;
pub mod wake;
