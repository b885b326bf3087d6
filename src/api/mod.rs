//! The HTTP API. Each area has its own module; `router` puts them together with the shared
//! middleware (request tracing, timeouts, panic catching that answers the JSON error model).

pub(crate) mod admin;
pub(crate) mod apps;
pub mod auth_throttle;
mod cards;
mod cart;
mod catalog;
mod checkout_page;
pub mod client_addr;
mod console;
pub mod error;
mod events;
pub(crate) mod exports;
mod extract;
pub(crate) mod funds;
mod gasless;
mod health;
mod idempotency;
pub mod key_cache;
mod lists;
mod metrics;
mod openapi;
mod orders;
mod page;
mod quotes;
pub(crate) mod refunds;
pub mod serve;
pub mod stream_limits;
mod types;
mod x402;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub rpc: alloy::providers::DynProvider,
    /// The first chain's watcher status (its lease also carries the jobs).
    pub chain: Arc<crate::chain::status::ChainStatus>,
    /// Every chain: heads for confirmations, readiness per chain.
    pub chains: Arc<crate::chain::status::Chains>,
    pub cards: Arc<dyn crate::payments::cards::CardProcessor>,
    pub prices: Arc<crate::payments::prices::PriceBook>,
    /// Caps on open event streams.
    pub streams: Arc<stream_limits::StreamLimits>,
    /// API keys verified in the last second.
    pub keys: Arc<key_cache::KeyCache>,
    /// Recorded order events fanned out to this process's open streams.
    pub hub: Arc<crate::live::hub::Hub>,
    /// Cancelled at shutdown: long-lived responses (event streams) end with it, so a graceful
    /// shutdown does not wait on clients that never hang up.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// `[server] trusted_proxies`, parsed (`client_addr`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// `[server] forwarded_header`: the one header those proxies write.
    pub forwarded_header: crate::config::ForwardedHeader,
    /// Wrong admin tokens per client address (`auth_throttle`).
    pub auth_throttle: Arc<auth_throttle::AuthThrottle>,
}

/// Every route, each registered with its OpenAPI annotation (see `openapi`).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::docs))
        .routes(routes!(openapi::docs_script))
        .routes(routes!(checkout_page::page))
        .routes(routes!(checkout_page::script))
        .routes(routes!(checkout_page::style))
        .routes(routes!(gasless::pay_with_authorization))
        .routes(routes!(x402::pay_with_x402))
        .routes(routes!(events::public_order_events))
        .routes(routes!(quotes::acquire_pre_amount))
        .routes(routes!(apps::create_app))
        .routes(routes!(apps::app_status))
        .routes(routes!(orders::eth_order))
        .routes(routes!(orders::order_status))
        .routes(routes!(events::team_order_events))
        .routes(routes!(orders::create_extend_order))
        .routes(routes!(orders::do_extend_app))
        .routes(routes!(cards::extend_app, cards::extend_app_get))
        .routes(routes!(lists::deposit_list))
        .routes(routes!(lists::payment_list))
        .routes(routes!(catalog::update_sp))
        .routes(routes!(catalog::get_goods, catalog::post_goods))
        .routes(routes!(cart::products_config))
        .routes(routes!(cart::cart_price))
        .routes(routes!(cart::cart_order))
        .routes(routes!(cart::save_first_group))
        .routes(routes!(cart::save_group))
        .routes(routes!(cart::save_product))
        .routes(routes!(cart::import_catalog))
        .routes(routes!(cart::save_cycle))
        .routes(routes!(cart::save_option))
        .routes(routes!(cart::save_field))
        .routes(routes!(admin::create_team))
        .routes(routes!(admin::webhook_deliveries))
        .routes(routes!(admin::redeliver))
        .routes(routes!(admin::enable_endpoint))
        .routes(routes!(admin::issue_key))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(funds::list_funds))
        .routes(routes!(funds::apply_fund))
        .routes(routes!(funds::refunded_fund))
        .routes(routes!(funds::list_sweeps))
        .routes(routes!(funds::reconciliation))
        .routes(routes!(exports::payments_csv))
        .routes(routes!(exports::stray_funds_csv))
        .routes(routes!(exports::refunds_csv))
        .routes(routes!(refunds::create))
        .routes(routes!(refunds::list))
        .routes(routes!(refunds::get))
        .routes(routes!(refunds::approve))
        .routes(routes!(refunds::cancel))
        .routes(routes!(refunds::reject))
        .routes(routes!(refunds::sent))
        .routes(routes!(refunds::page, refunds::claim_json))
}

pub fn router(state: AppState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    let routes = routes.merge(console::routes()).merge(refunds::form_routes());
    let timeout = Duration::from_secs(state.config.server.request_timeout_s);
    routes
        .route_layer(axum::middleware::from_fn(crate::telemetry::track_http))
        .fallback(error::not_found)
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(move |req, next| time_limit(timeout, req, next)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Answers 408 in the JSON error model once a request runs past the limit (the handler's
/// future is dropped; card payments run in tasks of their own and are still recorded).
async fn time_limit(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::Timeout(limit.as_secs()).into_response(),
    }
}
