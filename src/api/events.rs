//! Live order status as Server-Sent Events: one event per recorded change (see `crate::live`),
//! a heartbeat comment while nothing changes, and resumption from the `Last-Event-ID` header.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures_util::{Stream, StreamExt};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, Team};
use crate::store::order_events::{self, OrderEvent};
use crate::store::{Store, orders};

const PAGE: i64 = 100;

type EventStream = Sse<KeepAliveStream<std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>>>;

/// The team's view of an order's changes.
#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/orders/{order_id}/events", tag = "payments",
    summary = "An order's changes as Server-Sent Events (each event's data is the order view)",
    params(("team_id" = String, Path, description = "The key's team"), ("order_id" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "An endless text/event-stream; heartbeat comments while nothing changes",
            content_type = "text/event-stream", body = String), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn team_order_events(
    State(state): State<AppState>,
    team: Team,
    ApiPath((team_id, order_id)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<EventStream, ApiError> {
    team.owns(&team_id)?;
    orders::get_order(state.store.pool(), &team_id, &order_id).await?.ok_or(ApiError::NotFound("order"))?;
    open(&state, order_id, &headers)
}

/// The checkout page's twin: the order id is the capability.
#[utoipa::path(
    get, path = "/pay/{order_id}/events", tag = "checkout",
    summary = "The checkout page's event stream: no key, the order id is the capability",
    params(("order_id" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "An endless text/event-stream", content_type = "text/event-stream", body = String),
        super::error::responses::Public
    )
)]
pub async fn public_order_events(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<EventStream, ApiError> {
    orders::get_any(state.store.pool(), &order_id).await?.ok_or(ApiError::NotFound("order"))?;
    open(&state, order_id, &headers)
}

fn open(state: &AppState, order_id: String, headers: &HeaderMap) -> Result<EventStream, ApiError> {
    let after = last_event_id(headers)?;
    let slot = state.streams.take(&order_id)?;
    // New events appear at most once per watcher poll; asking the database more often is waste.
    let every = Duration::from_millis(state.config.chain.poll_interval_ms.clamp(100, 2_000));
    let heartbeat = Duration::from_secs(state.config.server.heartbeat_secs);
    let stream = follow(state.store.clone(), order_id, after, every)
        .take_until(state.shutdown.clone().cancelled_owned())
        // The slot lives as long as the stream: the client leaving gives it back.
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(Box::pin(stream) as _).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
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

/// The order's events after `after`, then each new one as it is recorded, until the client leaves.
fn follow(
    store: Store,
    order_id: String,
    after: i64,
    every: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let start = (store, order_id, after, VecDeque::<OrderEvent>::new());
    futures_util::stream::unfold(start, move |(store, order_id, mut after, mut queue)| async move {
        loop {
            if let Some(e) = queue.pop_front() {
                after = e.seq;
                let event = Event::default().id(e.seq.to_string()).event(e.event).data(e.data);
                return Some((Ok(event), (store, order_id, after, queue)));
            }
            match order_events::after(store.pool(), &order_id, after, PAGE).await {
                Ok(page) if !page.is_empty() => queue.extend(page),
                Ok(_) => tokio::time::sleep(every).await,
                Err(e) => {
                    tracing::warn!(error = %e, order_id, "reading order events failed; retrying");
                    tokio::time::sleep(every).await;
                }
            }
        }
    })
}
