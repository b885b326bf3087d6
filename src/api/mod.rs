//! The HTTP API. Each area has its own module; `router` puts them together with the shared
//! middleware (request tracing, timeouts, panic catching that answers the JSON error model).

mod apps;
pub mod error;
mod extract;
mod health;
mod orders;
mod quotes;
mod types;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub rpc: alloy::providers::DynProvider,
    pub chain: Arc<crate::chain::status::ChainStatus>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .route("/v2alpha/{type}/acquire_pre_amount", post(quotes::acquire_pre_amount))
        .route("/v2alpha/app/v2/app", post(apps::create_app))
        .route("/v2alpha/teams/{team_id}/apps/{app_id}", get(apps::app_status))
        .route("/v2alpha/teams/{team_id}/eth_order/{app_id}", get(orders::eth_order))
        .route("/v2alpha/teams/{team_id}/orders/{order_id}", get(orders::order_status))
        .route("/v2alpha/create_extend_order", post(orders::create_extend_order))
        .fallback(error::not_found)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
