//! What the watcher knows, shared with the API (confirmations, readiness) without a lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ChainStatus {
    head: AtomicU64,
    processed: AtomicU64,
    leader: AtomicBool,
}

impl ChainStatus {
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }
    pub fn set_head(&self, n: u64) {
        self.head.fetch_max(n, Ordering::Relaxed);
    }
    /// The last block the watcher has committed.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
    pub fn set_processed(&self, n: u64) {
        self.processed.store(n, Ordering::Relaxed);
    }
    /// True while this process holds the watcher lease.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }
    pub fn set_leader(&self, v: bool) {
        self.leader.store(v, Ordering::Relaxed);
    }
}
