//! Live order status as Server-Sent Events: one event per recorded change (see `crate::live`),
//! a heartbeat comment while nothing changes, and resumption from the `Last-Event-ID` header.
//! A stream reads the database when it opens; after that the process's hub (`live::hub`)
//! hands it each new event, so open streams cost the database nothing while they wait.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;

use super::AppState;
use super::client_addr::ClientAddr;
use super::error::ApiError;
use super::extract::{ApiPath, Team};
use crate::chain::status::Chains;
use crate::live::hub::Subscription;
use crate::payments::order_view::OrderView;
use crate::store::order_events::{self, OrderEvent};
use crate::store::{Store, orders};

const PAGE: i64 = 100;
/// Wait before reading the database again after a failed read.
const RETRY: Duration = Duration::from_secs(1);

/// The team's view of an order's changes.
#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/orders/{order_id}/events", tag = "payments",
    summary = "An order's changes as Server-Sent Events (each event's data is the order view)",
    params(("team_id" = String, Path, description = "The key's team"), ("order_id" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "An endless text/event-stream; heartbeat comments while nothing changes",
            content_type = "text/event-stream", body = String),
        (status = 204, description = "The order's final event was sent already: nothing more will come (EventSource stops reconnecting)"),
        super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn team_order_events(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    team: Team,
    ApiPath((team_id, order_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    team.owns(&team_id)?;
    orders::get_order(state.store.pool(), &team_id, &order_id).await?.ok_or(ApiError::NotFound("order"))?;
    open(&state, order_id, client, &headers).await
}

/// The checkout page's twin: the order id is the capability.
#[utoipa::path(
    get, path = "/pay/{order_id}/events", tag = "checkout",
    summary = "The checkout page's event stream: no key, the order id is the capability",
    params(("order_id" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "A text/event-stream, ending after the order's final event", content_type = "text/event-stream", body = String),
        (status = 204, description = "The order's final event was sent already: nothing more will come"),
        super::error::responses::Public
    )
)]
pub async fn public_order_events(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiPath(order_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    orders::get_any(state.store.pool(), &order_id).await?.ok_or(ApiError::NotFound("order"))?;
    open(&state, order_id, client, &headers).await
}

async fn open(state: &AppState, order_id: String, client: IpAddr, headers: &HeaderMap) -> Result<Response, ApiError> {
    let after = last_event_id(headers)?;
    let slot = state.streams.take(&order_id, client)?;
    let ends = Finality::new(state);
    // Joined before anything is read, so no event recorded meanwhile is missed.
    let subscription = state.hub.subscribe(&order_id);
    let mut replay = VecDeque::new();
    replay.extend(order_events::after(state.store.pool(), &order_id, after, PAGE).await?);
    if replay.is_empty() && after > 0 {
        let last = order_events::latest_data(state.store.pool(), &order_id).await?;
        if last.is_some_and(|data| ends.is_final(&data)) {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    }
    let heartbeat = Duration::from_secs(state.config.server.heartbeat_secs);
    let more = replay.len() as i64 == PAGE;
    let follow =
        Follow { store: state.store.clone(), subscription, order_id, after, queue: replay, replay: more, ends };
    let stream = follow
        .into_stream()
        .take_until(state.shutdown.clone().cancelled_owned())
        // The slot lives as long as the stream: the client leaving gives it back.
        .map(move |event| {
            let _held = &slot;
            event
        });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> = Box::pin(stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")).into_response())
}

/// When an order's stream has nothing more to say: paid with every payment settled, or expired
/// past its late window (by the chain's clock). The stream ends after that event.
#[derive(Clone)]
struct Finality {
    config: Arc<crate::config::Config>,
    late_window_secs: i64,
    chains: Arc<Chains>,
}

impl Finality {
    fn new(state: &AppState) -> Self {
        Self {
            config: state.config.clone(),
            late_window_secs: state.config.orders.late_window_secs(),
            chains: state.chains.clone(),
        }
    }

    fn is_final(&self, data: &str) -> bool {
        let Ok(view) = serde_json::from_str::<OrderView>(data) else {
            return false;
        };
        let closed = match view.status.as_str() {
            "paid" => true,
            // Closed for good once every chain's clock passed the late window.
            "expired" => {
                self.chains.iter().all(|c| view.expires_at + self.late_window_secs < c.status.processed_time())
            }
            _ => false,
        };
        closed
            && view.payments.iter().all(|p| p.confirmations >= crate::live::confirmation_cap(&self.config, p.chain_id))
    }
}

/// An open stream: events to send (read at the start, or received), then the hub's channel.
/// What arrives twice (read and received) is sent once, by `seq`.
struct Follow {
    store: Store,
    subscription: Subscription,
    order_id: String,
    /// The last event sent (or the client's `Last-Event-ID`).
    after: i64,
    queue: VecDeque<OrderEvent>,
    /// Fell behind the channel: read the database before receiving again.
    replay: bool,
    ends: Finality,
}

impl Follow {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send {
        futures_util::stream::unfold(Some(self), |f| async move {
            let mut f = f?;
            let e = f.next_event().await?;
            let last = f.queue.is_empty() && !f.replay && f.ends.is_final(&e.data);
            let event = Event::default().id(e.seq.to_string()).event(e.event).data(e.data);
            Some((Ok(event), (!last).then_some(f)))
        })
    }

    async fn next_event(&mut self) -> Option<OrderEvent> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                if e.seq > self.after {
                    self.after = e.seq;
                    return Some(e);
                }
                continue;
            }
            if self.replay {
                match order_events::after(self.store.pool(), &self.order_id, self.after, PAGE).await {
                    Ok(page) => {
                        self.replay = page.len() as i64 == PAGE;
                        self.queue.extend(page);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, order_id = self.order_id, "reading order events failed; retrying");
                        tokio::time::sleep(RETRY).await;
                    }
                }
                continue;
            }
            match self.subscription.receiver.recv().await {
                Ok(e) => self.queue.push_back(e),
                Err(broadcast::error::RecvError::Lagged(_)) => self.replay = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn last_event_id(headers: &HeaderMap) -> Result<i64, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(0);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| ApiError::BadRequest("Last-Event-ID must be an event id this stream sent".into()))
}
