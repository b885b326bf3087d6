//! The chain watcher, above `chain` (the RPC connection, contracts, status) and `payments` (the
//! books it commits to): `step` is one step (plan → fetch → verify → match → commit),
//! `reader` its RPC calls, `matching` logs to transfers, `reorg` the walk-back, `window` a tied
//! endpoint's unlinked head poll (recorded as seen only), `supervisor` the loop around steps,
//! `progress` the catch-up log line, `ahead` the next range read while catching up, `commit`
//! what every writing path shares (matching, one transaction). The trust rule and the pace are
//! pure, in `paywatch-core` (`chain::completeness`, `chain::one_node`, `chain::pace`).

mod ahead;
mod commit;
pub mod matching;
pub mod progress;
pub mod reader;
pub mod reorg;
pub mod step;
pub mod supervisor;
mod window;

pub use step::{UNSAFE_ZONE, Watcher};
