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
use crate::money::format_base_units;
use crate::payments::checkout::{self, payment_uri};
use crate::store::apps;
use crate::store::orders::{self, Order};
use crate::store::transfers;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

#[derive(Debug, Serialize)]
pub struct PaymentView {
    pub tx_hash: String,
    pub log_index: u64,
    pub block_number: u64,
    pub from: String,
    pub token: String,
    pub amount: String,
    pub state: String,
    pub confirmations: u64,
    /// False for a transfer of another token: recorded and shown, never credited.
    pub counted: bool,
}

#[derive(Debug, Serialize)]
pub struct OrderView {
    pub order_id: String,
    pub app_id: Option<String>,
    pub kind: &'static str,
    pub pay_method: &'static str,
    pub status: &'static str,
    pub period: i64,
    pub usd: String,
    pub expected: String,
    pub seen: String,
    pub confirmed: String,
    pub overpaid: String,
    pub late: bool,
    pub address: Option<String>,
    pub token: Option<String>,
    pub chain_id: Option<u64>,
    pub confirmations_required: Option<String>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub payment_uri: Option<String>,
    pub payments: Vec<PaymentView>,
}

/// The order as a frontend shows it, with each payment's depth below the current head. The
/// order and its transfers are read from one snapshot, so the sums and the payments agree.
pub async fn order_view(state: &AppState, team_id: &str, order_id: &str) -> Result<Option<OrderView>, ApiError> {
    let mut snapshot = state.store.begin_read().await?;
    let Some(order) = orders::get_order(&mut *snapshot, team_id, order_id).await? else {
        return Ok(None);
    };
    let rows = transfers::for_order(&mut *snapshot, &order.order_id).await?;
    snapshot.rollback().await.map_err(crate::store::StoreError::from)?; // read-only: nothing to keep
    Ok(Some(build_view(state, order, rows).await))
}

async fn build_view(state: &AppState, order: Order, rows: Vec<(transfers::Transfer, String)>) -> OrderView {
    let decimals =
        order.new.pay_method.token().and_then(|t| state.config.tokens.get(&t)).map(|t| t.decimals).unwrap_or(0);
    let mut head = state.chain.head();
    if head == 0 && !rows.is_empty() {
        head = state.rpc.get_block_number().await.unwrap_or(0);
    }
    let crypto = order.new.crypto.as_ref();
    let payments = rows
        .into_iter()
        .map(|(t, st)| PaymentView {
            tx_hash: format!("{:#x}", t.tx_hash),
            log_index: t.log_index,
            block_number: t.block_number,
            from: orders::address_text(&t.from),
            token: orders::address_text(&t.token),
            amount: format_base_units(t.amount_base, decimals_of(state, &t.token).unwrap_or(decimals)),
            state: st,
            confirmations: (head + 1).saturating_sub(t.block_number),
            counted: crypto.is_some_and(|c| c.token_address == t.token),
        })
        .collect();
    let confirmations_required = crypto.map(|_| match state.config.chain.confirmations {
        crate::config::Confirmations::Blocks(n) => n.to_string(),
        crate::config::Confirmations::Finalized => "finalized".to_string(),
    });
    OrderView {
        order_id: order.order_id.clone(),
        app_id: order.new.app_id.clone(),
        kind: order.new.kind.as_str(),
        pay_method: order.new.pay_method.as_str(),
        status: order.progress.status.as_str(),
        period: order.new.period_months,
        usd: order.new.usd.normalize().to_string(),
        expected: order.new.amount.normalize().to_string(),
        seen: format_base_units(order.progress.seen_base, decimals),
        confirmed: format_base_units(order.progress.confirmed_base, decimals),
        overpaid: format_base_units(order.progress.overpaid_base, decimals),
        late: order.progress.late,
        address: crypto.map(|c| orders::address_text(&c.deposit_address)),
        token: crypto.map(|c| orders::address_text(&c.token_address)),
        chain_id: crypto.map(|c| c.chain_id),
        confirmations_required,
        expires_at: order.new.expires_at,
        paid_at: order.progress.paid_at,
        created_at: order.created_at,
        payment_uri: crypto.map(|c| payment_uri(c.token_address, c.chain_id, c.deposit_address, c.amount_base)),
        payments,
    }
}

fn decimals_of(state: &AppState, token: &alloy::primitives::Address) -> Option<u8> {
    state.config.tokens.values().find(|t| &t.address == token).map(|t| t.decimals)
}

pub async fn order_status(
    State(state): State<AppState>,
    team: Team,
    Path((team_id, order_id)): Path<(String, String)>,
) -> Result<Json<OrderView>, ApiError> {
    team.owns(&team_id)?;
    let view = order_view(&state, &team_id, &order_id).await?.ok_or(ApiError::NotFound("order"))?;
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
