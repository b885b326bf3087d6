//! Everything that talks to the chain: contract bindings, deposit-address derivation, the RPC
//! connection, contract deployment, sweeping, and the watcher.

pub mod contracts;
pub mod deploy;
pub mod deposit_address;
pub mod rpc;
pub mod sweep;
pub mod watcher;
