//! Caps on open event streams: a global one and one per order, so a busy sale (or a client
//! that opens streams in a loop) cannot exhaust the server. A stream holds its slot for as
//! long as it is open; the slot is given back when the client leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::ApiError;

#[derive(Debug)]
pub struct StreamLimits {
    max_total: usize,
    max_per_order: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_order: HashMap<String, usize>,
}

/// An open stream's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<StreamLimits>,
    order_id: String,
}

impl StreamLimits {
    pub fn new(max_total: usize, max_per_order: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_order, open: Mutex::default() })
    }

    /// A slot for a stream of `order_id`, or a 503 saying which cap was reached.
    pub fn take(self: &Arc<Self>, order_id: &str) -> Result<Slot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            return Err(ApiError::Unavailable(format!(
                "too many open event streams ({}); poll the order instead or retry later",
                self.max_total
            )));
        }
        let for_order = open.per_order.entry(order_id.to_string()).or_default();
        if *for_order >= self.max_per_order {
            return Err(ApiError::Unavailable(format!(
                "this order already has {} open event streams; close one or poll the order",
                self.max_per_order
            )));
        }
        *for_order += 1;
        open.total += 1;
        Ok(Slot { limits: self.clone(), order_id: order_id.to_string() })
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
        if let Some(n) = open.per_order.get_mut(&self.order_id) {
            *n -= 1;
            if *n == 0 {
                open.per_order.remove(&self.order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_order_and_in_total_and_given_back() {
        let limits = StreamLimits::new(3, 2);
        let a1 = limits.take("a").unwrap();
        let _a2 = limits.take("a").unwrap();
        assert!(limits.take("a").is_err(), "two per order");
        let _b1 = limits.take("b").unwrap();
        assert!(limits.take("c").is_err(), "three in total");
        drop(a1);
        assert_eq!(limits.open(), 2);
        assert!(limits.take("a").is_ok(), "a slot given back is free again");
    }
}
