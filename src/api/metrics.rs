//! `GET /metrics`: the Prometheus text exposition. State gauges are read at scrape time.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::config::PriceConfig;
use crate::store::{orders, unix_now};

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, content_type = "text/plain", body = String), (status = 503, description = "A price, the database or the node is unavailable", body = ErrorBody))
)]
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let handle = crate::telemetry::handle();
    for c in state.chains.iter() {
        let (head, processed) = (c.status.head(), c.status.processed());
        let chain = c.name.clone();
        metrics::gauge!("paywatch_chain_head_block", "chain" => chain.clone()).set(head as f64);
        metrics::gauge!("paywatch_processed_block", "chain" => chain.clone()).set(processed as f64);
        metrics::gauge!("paywatch_chain_lag_blocks", "chain" => chain.clone())
            .set(head.saturating_sub(processed) as f64);
        metrics::gauge!("paywatch_watcher_active", "chain" => chain).set(if c.status.is_leader() { 1.0 } else { 0.0 });
    }
    for (status, count) in orders::count_by_status(state.store.pool()).await? {
        metrics::gauge!("paywatch_orders", "status" => status).set(count as f64);
    }
    let now = unix_now();
    for (token, price) in &state.config.prices {
        if let PriceConfig::Chainlink { feed, .. } = price
            && let Some(age) = state.prices.feed_age(*feed, now).await
        {
            metrics::gauge!("paywatch_price_age_seconds", "token" => token.as_str()).set(age as f64);
        }
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()))
}
