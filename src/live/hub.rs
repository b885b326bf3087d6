//! Fan-out of recorded order events to open streams: one reader per process asks the database
//! for every order's new events (one query per poll, however many streams are open) and hands
//! each to the order's broadcast channel. A stream reads the database itself only when it opens
//! (and when it fell behind its channel); after that it only receives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::store::order_events::{self, OrderEvent};

/// Events a stream may fall behind by before it re-reads the database.
const CHANNEL_DEPTH: usize = 64;
/// Events read per query.
const PAGE: i64 = 500;

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<OrderEvent>>>,
    /// Rung by the recorder after it appends, so its own process reads at once.
    appended: Notify,
}

/// A stream's place on an order's channel; the channel goes when its last subscriber leaves.
pub struct Subscription {
    hub: Arc<Hub>,
    order_id: String,
    pub receiver: broadcast::Receiver<OrderEvent>,
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn subscribe(self: &Arc<Self>, order_id: &str) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let receiver =
            channels.entry(order_id.to_string()).or_insert_with(|| broadcast::channel(CHANNEL_DEPTH).0).subscribe();
        Subscription { hub: self.clone(), order_id: order_id.to_string(), receiver }
    }

    /// Events were appended: read them now rather than at the next poll.
    pub fn appended(&self) {
        self.appended.notify_one();
    }

    /// Orders with at least one open stream (tests and metrics).
    pub fn orders_followed(&self) -> usize {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn publish(&self, order_id: &str, event: OrderEvent) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(order_id) {
            // No receiver left is not an error: the last one is leaving and removes the channel.
            let _ = tx.send(event);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut channels = self.hub.channels.lock().unwrap_or_else(|e| e.into_inner());
        // Under the lock no one subscribes meanwhile; this receiver still counts itself.
        if channels.get(&self.order_id).is_some_and(|tx| tx.receiver_count() <= 1) {
            channels.remove(&self.order_id);
        }
    }
}

/// Reads new events every `every` (or at once when this process's recorder appended) and fans
/// them out, until shutdown. Starts after the newest event: a stream reads older ones itself.
pub async fn run(hub: Arc<Hub>, store: Store, every: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let more = match after {
            None => match order_events::max_seq(store.pool()).await {
                Ok(seq) => {
                    after = Some(seq);
                    false
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the newest order event failed; retrying");
                    false
                }
            },
            Some(seq) => match order_events::after_all(store.pool(), seq, PAGE).await {
                Ok(events) => {
                    let full = events.len() as i64 == PAGE;
                    for (order_id, event) in events {
                        after = Some(event.seq);
                        hub.publish(&order_id, event);
                    }
                    full
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading order events failed; retrying");
                    false
                }
            },
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
            _ = hub.appended.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> OrderEvent {
        OrderEvent { seq, event: "seen".into(), data: "{}".into() }
    }

    #[tokio::test]
    async fn events_reach_every_subscriber_of_their_order_and_channels_go_with_the_last() {
        let hub = Hub::new();
        let mut a1 = hub.subscribe("a");
        let mut a2 = hub.subscribe("a");
        let mut b = hub.subscribe("b");
        hub.publish("a", event(1));
        assert_eq!(a1.receiver.recv().await.unwrap().seq, 1);
        assert_eq!(a2.receiver.recv().await.unwrap().seq, 1);
        assert!(b.receiver.try_recv().is_err(), "b's stream gets only b's events");
        assert_eq!(hub.orders_followed(), 2);
        drop(a1);
        assert_eq!(hub.orders_followed(), 2, "a still has a subscriber");
        drop(a2);
        drop(b);
        assert_eq!(hub.orders_followed(), 0);
    }
}
