//! The HTTP API. Each area has its own module; `router` puts them together with the shared
//! middleware (request tracing, timeouts, panic catching that answers the JSON error model).

mod admin;
mod apps;
mod cards;
mod catalog;
mod checkout_page;
pub mod error;
mod events;
mod extract;
mod health;
mod idempotency;
mod lists;
mod metrics;
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
    pub cards: Arc<dyn crate::payments::cards::CardProcessor>,
    pub prices: Arc<crate::payments::prices::PriceBook>,
    /// Cancelled at shutdown: long-lived responses (event streams) end with it, so a graceful
    /// shutdown does not wait on clients that never hang up.
    pub shutdown: tokio_util::sync::CancellationToken,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(checkout_page::routes())
        .route("/v2alpha/{type}/acquire_pre_amount", post(quotes::acquire_pre_amount))
        .route("/v2alpha/app/v2/app", post(apps::create_app))
        .route("/v2alpha/teams/{team_id}/apps/{app_id}", get(apps::app_status))
        .route("/v2alpha/teams/{team_id}/eth_order/{app_id}", get(orders::eth_order))
        .route("/v2alpha/teams/{team_id}/orders/{order_id}", get(orders::order_status))
        .route("/v2alpha/teams/{team_id}/orders/{order_id}/events", get(events::team_order_events))
        .route("/pay/{order_id}/events", get(events::public_order_events))
        .route("/v2alpha/create_extend_order", post(orders::create_extend_order))
        .route("/v2alpha/after_create_extend_order/do_extend_app", post(orders::do_extend_app))
        .route("/v2alpha/teams/{team_id}/extend_app", get(cards::extend_app).post(cards::extend_app))
        .route("/v2alpha/teams/{team_id}/deposit_list", get(lists::deposit_list))
        .route("/v2alpha/{team_id}/pre_payment_list", get(lists::payment_list))
        .route("/goods-specification/update-sp", post(catalog::update_sp))
        .route("/goods-specifications", post(catalog::post_goods).get(catalog::get_goods))
        .route("/admin/teams", post(admin::create_team))
        .route("/admin/webhooks", get(admin::webhook_deliveries))
        .route("/admin/webhooks/{event_id}/redeliver", post(admin::redeliver))
        .route("/admin/teams/{team_id}/keys", post(admin::issue_key))
        .route("/admin/teams/{team_id}/keys/{key_id}", axum::routing::delete(admin::revoke_key))
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn(crate::telemetry::track_http))
        .fallback(error::not_found)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
