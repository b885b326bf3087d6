//! GetEthOrder, order status, and CreateExtendOrder.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Team, parse_json};
use super::idempotency::{Made, Once, run_once};
use super::types::Period;
use super::types::pay_method as parse_pay_method;
use crate::config::payment_link::payment_uri;
use crate::payments::extension;
use crate::payments::order_view::{self, OrderView};
use crate::store::apps;
use crate::store::orders;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/orders/{order_id}", tag = "payments",
    summary = "An order with its payments and their confirmations",
    params(("team_id" = String, Path, description = "The key's team"), ("order_id" = String, Path)),
    responses((status = 200, body = OrderView), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn order_status(
    State(state): State<AppState>,
    team: Team,
    ApiPath((team_id, order_id)): ApiPath<(String, String)>,
) -> Result<Json<OrderView>, ApiError> {
    team.owns(&team_id)?;
    let heads = state.chains.heads_or_ask().await;
    let view = order_view::load(&state.store, &state.config, &heads, Some(&team_id), &order_id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EthOrderQuery {
    pub pay_method: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EthOrderResponse {
    pub address: String,
    pub value: String,
    pub order_id: String,
    pub token: String,
    pub chain_id: u64,
    pub expires_at: i64,
    pub status: &'static str,
    /// Only while the order is open: a closed order must not be paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_uri: Option<String>,
    /// While the order is open: every configured (chain, token) of its asset that can pay it,
    /// at the same address.
    pub options: Vec<crate::payments::order_view::PayOption>,
}

/// The app's open token order for `pay_method` (its first order or an extension); with none
/// open, its newest order with that order's status and no `payment_uri`.
#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/eth_order/{app_id}", tag = "payments",
    summary = "GetEthOrder: the app's open token order for a pay method (else its newest, without payment_uri)",
    params(("team_id" = String, Path, description = "The key's team"), ("app_id" = String, Path), EthOrderQuery),
    responses((status = 200, body = EthOrderResponse), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn eth_order(
    State(state): State<AppState>,
    team: Team,
    ApiPath((team_id, app_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<EthOrderQuery>,
) -> Result<Json<EthOrderResponse>, ApiError> {
    team.owns(&team_id)?;
    let pay_method = parse_pay_method(&state.config, "pay_method", &q.pay_method)?;
    if pay_method.token().is_none() {
        return Err(ApiError::invalid("pay_method", format!("must be one of {}", state.config.token_names())));
    }
    // One query on the hot path: an order found is the team's app's; only a miss asks which.
    let Some(order) = orders::current_for_app(state.store.pool(), &team_id, &app_id, pay_method).await? else {
        apps::get_app(state.store.pool(), &team_id, &app_id).await?.ok_or(ApiError::NotFound("app"))?;
        return Err(ApiError::NotFound("token order for this app and pay_method"));
    };
    let c = order.new.crypto.as_ref().ok_or(ApiError::NotFound("token order"))?;
    // After a partial payment the request asks for what remains, as the options do.
    let remaining = c.amount_base.saturating_sub(order.progress.confirmed_base);
    Ok(Json(EthOrderResponse {
        address: crate::store::columns::address_text(&c.deposit_address),
        value: order.new.amount.normalize().to_string(),
        order_id: order.order_id.clone(),
        token: crate::store::columns::address_text(&c.token_address),
        chain_id: c.chain_id,
        expires_at: order.new.expires_at,
        status: order.progress.status.as_str(),
        payment_uri: order.progress.status.is_open().then(|| {
            let asked = crate::payments::order_view::asked_base(c, remaining);
            payment_uri(c.token_address, c.chain_id, c.deposit_address, asked)
        }),
        options: if order.progress.status.is_open() {
            crate::payments::order_view::pay_options(&state.config, c, remaining)
        } else {
            Vec::new()
        },
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ExtendOrderRequest {
    pub app_id: String,
    #[schema(value_type = u32, minimum = 1, maximum = 12)]
    pub period: Period,
    pub pay_method: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExtendOrderResponse {
    pub amount: String,
    pub usd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// CreateExtendOrder, at most once per Idempotency-Key.
#[utoipa::path(
    post, path = "/v2alpha/create_extend_order", tag = "apps",
    summary = "CreateExtendOrder: quote an extension; a token pay method also opens its order",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request return the first answer")),
    request_body = ExtendOrderRequest,
    responses((status = 200, body = ExtendOrderResponse), super::error::responses::TeamWrite),
    security(("team_key" = []))
)]
pub async fn create_extend_order(
    State(state): State<AppState>,
    team: Team,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (state, team, body) = (&state, &team, &body);
    run_once(state, team, &headers, "create_extend_order", body, move |once| async move {
        let req: ExtendOrderRequest = parse_json(body)?;
        create_extend_order_once(state, &once, team, req).await
    })
    .await
}

/// ExtendAppAfterCreatingOrder (card), at most once per Idempotency-Key.
#[utoipa::path(
    post, path = "/v2alpha/after_create_extend_order/do_extend_app", tag = "apps",
    summary = "ExtendAppAfterCreatingOrder: charge the card and extend the app",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request return the first answer")),
    request_body = super::cards::DoExtendRequest,
    responses((status = 200, body = super::cards::DoExtendResponse), super::error::responses::TeamPayment),
    security(("team_key" = []))
)]
pub async fn do_extend_app(State(state): State<AppState>, team: Team, headers: HeaderMap, body: Bytes) -> Response {
    let (state, team, body) = (&state, &team, &body);
    run_once(state, team, &headers, "do_extend_app", body, move |once| async move {
        let req: super::cards::DoExtendRequest = parse_json(body)?;
        super::cards::do_extend_app(state, &once, team, req).await
    })
    .await
}

/// Quotes an extension; for a token pay method also opens the extend order to pay.
async fn create_extend_order_once(
    state: &AppState,
    once: &Once,
    team: &Team,
    req: ExtendOrderRequest,
) -> Result<ExtendOrderResponse, ApiError> {
    if let Some(made) = once.done::<Made>() {
        let order = orders::get_order(state.store.pool(), &team.team_id, &made.order_id)
            .await?
            .ok_or(ApiError::NotFound("order"))?;
        return Ok(extend_order_response(&order));
    }
    let pay_method = parse_pay_method(&state.config, "pay_method", &req.pay_method)?;
    let app = super::cards::extendable_app(state, team, &req.app_id).await?;
    let period = req.period.0;
    let quote = extension::quote(&state.config, &state.prices, pay_method, &app, period).await?;
    let Some(token) = pay_method.token() else {
        return Ok(ExtendOrderResponse {
            amount: quote.amount.normalize().to_string(),
            usd: quote.usd.normalize().to_string(),
            order_id: None,
            address: None,
        });
    };
    let order = super::cards::open_token_extension(state, once, team, &app, token, quote, period).await?;
    Ok(extend_order_response(&order))
}

fn extend_order_response(order: &orders::Order) -> ExtendOrderResponse {
    ExtendOrderResponse {
        amount: order.new.amount.normalize().to_string(),
        usd: order.new.usd.normalize().to_string(),
        address: order.new.crypto.as_ref().map(|c| crate::store::columns::address_text(&c.deposit_address)),
        order_id: Some(order.order_id.clone()),
    }
}
