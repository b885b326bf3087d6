//! `POST /v2alpha/{type}/acquire_pre_amount`: what deploying would cost.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, Team};
use super::types::{Period, text_field};
use crate::money::PayMethod;
use crate::payments::checkout;
use crate::payments::pricing::Resources;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct QuoteRequest {
    #[serde(default)]
    pub cluster_id: String,
    #[serde(default)]
    pub chart_name: String,
    pub cpu_limit: i64,
    pub mem_limit: i64,
    pub storage_limit: i64,
    #[schema(value_type = u32, minimum = 1, maximum = 12)]
    pub period: Period,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QuoteResponse {
    pub amount: String,
    pub usd: String,
}

/// `USD` quotes card payments; the token names quote token payments.
pub fn parse_quote_type(config: &crate::config::Config, t: &str) -> Result<PayMethod, ApiError> {
    match (t, PayMethod::known(t)) {
        ("USD", _) => Ok(PayMethod::CreditCard),
        (_, Ok(PayMethod::Token(token))) if config.knows_token(token) => Ok(PayMethod::Token(token)),
        _ => Err(ApiError::invalid("type", format!("must be one of USD, {}", config.token_names()))),
    }
}

#[utoipa::path(
    post, path = "/v2alpha/{type}/acquire_pre_amount", tag = "payments",
    summary = "Quote an app's price for a pay method and period",
    params(("type" = String, Path, description = "USD or a configured pay method (ANKR_ERC20, USDT_ERC20, ...)")),
    request_body = QuoteRequest,
    responses((status = 200, description = "The amount to pay and its USD value", body = QuoteResponse), super::error::responses::TeamWrite),
    security(("team_key" = []))
)]
pub async fn acquire_pre_amount(
    State(state): State<AppState>,
    _team: Team,
    ApiPath(kind): ApiPath<String>,
    ApiJson(req): ApiJson<QuoteRequest>,
) -> Result<Json<QuoteResponse>, ApiError> {
    let pay_method = parse_quote_type(&state.config, &kind)?;
    text_field("cluster_id", &req.cluster_id, 128, false)?;
    text_field("chart_name", &req.chart_name, 128, false)?;
    let resources = Resources {
        cluster_id: &req.cluster_id,
        chart_name: &req.chart_name,
        cpu_limit: req.cpu_limit,
        mem_limit: req.mem_limit,
        storage_limit: req.storage_limit,
        period: req.period.0,
    };
    let quote = checkout::quote(&state.config, &state.prices, pay_method, &resources).await?;
    Ok(Json(QuoteResponse { amount: quote.amount.normalize().to_string(), usd: quote.usd.normalize().to_string() }))
}
