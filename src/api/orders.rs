//! GetEthOrder, order status, and CreateExtendOrder.

use alloy::providers::Provider;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::apps::{parse_pay_method, resources_of};
use super::error::ApiError;
use super::extract::{ApiQuery, Team, parse_json};
use super::idempotency::run_once;
use super::types::Period;
use crate::payments::checkout::{self, payment_uri};
use crate::payments::order_view::{self, OrderView};
use crate::store::apps;
use crate::store::orders;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

/// The head the watcher last saw; asked of the node before the watcher's first step.
pub async fn current_head(state: &AppState) -> u64 {
    match state.chain.head() {
        0 => state.rpc.get_block_number().await.unwrap_or(0),
        head => head,
    }
}

pub async fn order_status(
    State(state): State<AppState>,
    team: Team,
    Path((team_id, order_id)): Path<(String, String)>,
) -> Result<Json<OrderView>, ApiError> {
    team.owns(&team_id)?;
    let head = current_head(&state).await;
    let view = order_view::load(&state.store, &state.config, head, Some(&team_id), &order_id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
pub struct EthOrderQuery {
    pub pay_method: String,
}

#[derive(Debug, Serialize)]
pub struct EthOrderResponse {
    pub address: String,
    pub value: String,
    pub order_id: String,
    pub token: String,
    pub chain_id: u64,
    pub expires_at: i64,
    pub status: &'static str,
    pub payment_uri: String,
}

/// The app's newest token order for `pay_method`: its first order, or its latest extension.
pub async fn eth_order(
    State(state): State<AppState>,
    team: Team,
    Path((team_id, app_id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<EthOrderQuery>,
) -> Result<Json<EthOrderResponse>, ApiError> {
    team.owns(&team_id)?;
    let pay_method = parse_pay_method("pay_method", &q.pay_method)?;
    if pay_method.token().is_none() {
        return Err(ApiError::invalid("pay_method", "must be ANKR_ERC20 or USDT_ERC20"));
    }
    apps::get_app(state.store.pool(), &team_id, &app_id).await?.ok_or(ApiError::NotFound("app"))?;
    let order = orders::latest_for_app(state.store.pool(), &team_id, &app_id, pay_method)
        .await?
        .ok_or(ApiError::NotFound("token order for this app and pay_method"))?;
    let c = order.new.crypto.as_ref().ok_or(ApiError::NotFound("token order"))?;
    Ok(Json(EthOrderResponse {
        address: orders::address_text(&c.deposit_address),
        value: order.new.amount.normalize().to_string(),
        order_id: order.order_id.clone(),
        token: orders::address_text(&c.token_address),
        chain_id: c.chain_id,
        expires_at: order.new.expires_at,
        status: order.progress.status.as_str(),
        payment_uri: payment_uri(c.token_address, c.chain_id, c.deposit_address, c.amount_base),
    }))
}

#[derive(Debug, Deserialize)]
pub struct ExtendOrderRequest {
    pub app_id: String,
    pub period: Period,
    pub pay_method: String,
}

#[derive(Debug, Serialize)]
pub struct ExtendOrderResponse {
    pub amount: String,
    pub usd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// CreateExtendOrder, at most once per Idempotency-Key.
pub async fn create_extend_order(
    State(state): State<AppState>,
    team: Team,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_once(&state, &team, &headers, "create_extend_order", &body, || async {
        let req: ExtendOrderRequest = parse_json(&body)?;
        create_extend_order_once(&state, &team, req).await
    })
    .await
}

/// ExtendAppAfterCreatingOrder (card), at most once per Idempotency-Key.
pub async fn do_extend_app(State(state): State<AppState>, team: Team, headers: HeaderMap, body: Bytes) -> Response {
    run_once(&state, &team, &headers, "do_extend_app", &body, || async {
        let req: super::cards::DoExtendRequest = parse_json(&body)?;
        super::cards::do_extend_app(&state, &team, req).await
    })
    .await
}

/// Quotes an extension; for a token pay method also opens the extend order to pay.
async fn create_extend_order_once(
    state: &AppState,
    team: &Team,
    req: ExtendOrderRequest,
) -> Result<ExtendOrderResponse, ApiError> {
    let pay_method = parse_pay_method("pay_method", &req.pay_method)?;
    let app = super::cards::extendable_app(state, team, &req.app_id).await?;
    let period = req.period.0;
    let quote = checkout::quote(&state.config, &state.prices, pay_method, &resources_of(&app.spec, period)).await?;
    let Some(token) = pay_method.token() else {
        return Ok(ExtendOrderResponse {
            amount: quote.amount.normalize().to_string(),
            usd: quote.usd.normalize().to_string(),
            order_id: None,
            address: None,
        });
    };
    let order = super::cards::open_token_extension(state, team, &app, token, quote, period).await?;
    Ok(ExtendOrderResponse {
        amount: quote.amount.normalize().to_string(),
        usd: quote.usd.normalize().to_string(),
        address: order.new.crypto.as_ref().map(|c| orders::address_text(&c.deposit_address)),
        order_id: Some(order.order_id),
    })
}
