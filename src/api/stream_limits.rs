//! Caps on open event streams: a global one, one per order and one per client address, so a
//! busy sale (or a client that opens streams in a loop) cannot exhaust the server. A stream holds its slot for as
//! long as it is open; the slot is given back when the client leaves.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::error::ApiError;

#[derive(Debug)]
pub struct StreamLimits {
    max_total: usize,
    max_per_order: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_order: HashMap<String, usize>,
    per_client: HashMap<IpAddr, usize>,
}

/// An open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<StreamLimits>,
    order_id: String,
    client: IpAddr,
}

impl StreamLimits {
    pub fn new(max_total: usize, max_per_order: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_order, max_per_client, open: Mutex::default() })
    }

    /// A slot for a stream of `order_id` opened by `client`, or a 503 saying which cap was reached.
    pub fn take(self: &Arc<Self>, order_id: &str, client: IpAddr) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(ApiError::Unavailable(format!(
                "too many open event streams ({}); poll the order instead or retry later",
                self.max_total
            )));
        }
        if open.per_order.get(order_id).copied().unwrap_or(0) >= self.max_per_order {
            return Err(ApiError::Unavailable(format!(
                "this order already has {} open event streams; close one or poll the order",
                self.max_per_order
            )));
        }
        if open.per_client.get(&client).copied().unwrap_or(0) >= self.max_per_client {
            return Err(ApiError::Unavailable(format!(
                "this client already has {} open event streams; close some or poll the orders",
                self.max_per_client
            )));
        }
        *open.per_order.entry(order_id.to_string()).or_default() += 1;
        *open.per_client.entry(client).or_default() += 1;
        open.total += 1;
        Ok(Slot { limits: self.clone(), order_id: order_id.to_string(), client })
    }

    /// Open streams now (tests and metrics).
    pub fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        release(&mut open.per_order, &self.order_id);
        release(&mut open.per_client, &self.client);
    }
}

/// One slot fewer under `key`; a key with none left is dropped, so the maps follow open streams.
fn release<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_order_per_client_and_in_total_and_given_back() {
        let (one, two): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let limits = StreamLimits::new(4, 2, 3);
        let a1 = limits.take("a", one).unwrap();
        let _a2 = limits.take("a", one).unwrap();
        assert!(limits.take("a", two).is_err(), "two per order");
        let _b1 = limits.take("b", one).unwrap();
        assert!(limits.take("c", one).is_err(), "three per client");
        let _c1 = limits.take("c", two).unwrap();
        assert!(limits.take("d", two).is_err(), "four in total");
        drop(a1);
        assert_eq!(limits.open(), 3);
        assert!(limits.take("a", one).is_ok(), "a slot given back is free again");
    }
}
