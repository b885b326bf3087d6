//! Card payments and extensions: the card side of CreateApp, ExtendAppAfterCreatingOrder
//! (`do_extend_app`) and ExtendApp. The money rules live in `payments::card_payment`; these
//! handlers read the request, quote, and answer.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, Team, parse_json};
use super::idempotency::{Made, Once, run_once};
use super::types::Period;
use super::types::pay_method as parse_pay_method;
use crate::money::PayMethod;
use crate::payments::card_payment::{self, CardPayError, CardPayment, Recorded};
use crate::payments::cards::CardError;
use crate::payments::checkout::{self, Quote};
use crate::payments::extension::{self, ExtendError};
use crate::store::apps::App;
use crate::store::card_charges::Purpose;
use crate::store::orders::{self, Order};

impl From<CardError> for ApiError {
    fn from(e: CardError) -> Self {
        match e {
            CardError::Declined(_) | CardError::InsufficientFunds => ApiError::PaymentFailed(e.to_string()),
            CardError::UnknownCard(_) => ApiError::invalid("card_id", e.to_string()),
            CardError::Unavailable => ApiError::Unavailable(e.to_string()),
        }
    }
}

pub fn required_card(field: &str, card_id: Option<&str>) -> Result<String, ApiError> {
    match card_id.map(str::trim) {
        Some(c) if !c.is_empty() && c.len() <= 255 => Ok(c.to_string()),
        _ => Err(ApiError::invalid(field, "is required to pay by CREDIT_CARD")),
    }
}

impl From<CardPayError> for ApiError {
    fn from(e: CardPayError) -> Self {
        match e {
            CardPayError::Card(card) => card.into(),
            CardPayError::OutOfStock => ApiError::Conflict("out of stock".into()),
            CardPayError::InProgress => ApiError::Conflict(e.to_string()),
            CardPayError::Unresolved | CardPayError::Refunded(_) => ApiError::Unavailable(e.to_string()),
            CardPayError::Checkout(c) => c.into(),
            CardPayError::Store(s) => s.into(),
            CardPayError::Task(t) => ApiError::Internal(anyhow::anyhow!(t)),
        }
    }
}

/// Pays `usd` by card for `purpose` (see `payments::card_payment`): under the call's
/// Idempotency-Key when it has one; without one, extensions and cart orders answer a recent
/// identical payment instead of charging again.
pub async fn pay_by_card(
    state: &AppState,
    once: &Once,
    team: &Team,
    card_id: &str,
    usd: rust_decimal::Decimal,
    purpose: Purpose,
) -> Result<Recorded, ApiError> {
    let dedupe_without_key = !matches!(purpose, Purpose::NewApp { .. });
    let payment = CardPayment {
        team_id: team.team_id.clone(),
        card_id: card_id.to_string(),
        usd,
        purpose,
        request_key: once.request_key(),
        dedupe_without_key,
    };
    Ok(card_payment::pay(&state.store, &state.cards, payment).await?)
}

impl From<ExtendError> for ApiError {
    fn from(e: ExtendError) -> Self {
        match e {
            ExtendError::NotFound => ApiError::NotFound("app"),
            ExtendError::NotExtendable(_) => ApiError::Conflict(e.to_string()),
            ExtendError::Checkout(c) => c.into(),
            ExtendError::Card(c) => c.into(),
            ExtendError::Store(s) => s.into(),
        }
    }
}

/// Opens a token extend order for `app` (paid to its own deposit address), saved under the
/// call's key in the same transaction.
pub async fn open_token_extension(
    state: &AppState,
    once: &Once,
    team: &Team,
    app: &App,
    token: crate::money::Token,
    quote: Quote,
    period: u32,
) -> Result<Order, ApiError> {
    let mut tx = state.store.begin().await?;
    let what = extension::extend_order_for(&team.team_id, app, period);
    let order =
        checkout::open_token_order(&mut tx, &state.config, what, token, quote, |id| state.chains.now_on(id)).await?;
    once.save_done(&mut tx, &Made { app_id: Some(app.app_id.clone()), order_id: order.order_id.clone() }).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(order)
}

/// The team's app, if it may be extended.
pub async fn extendable_app(state: &AppState, team: &Team, app_id: &str) -> Result<App, ApiError> {
    Ok(extension::extendable_app(&state.store, &team.team_id, app_id).await?)
}

async fn extend_by_card(
    state: &AppState,
    once: &Once,
    team: &Team,
    app: &App,
    period: u32,
    card_id: &str,
) -> Result<String, ApiError> {
    let with = extension::CardExtension {
        store: &state.store,
        cards: &state.cards,
        config: &state.config,
        prices: &state.prices,
        request_key: once.request_key(),
    };
    Ok(extension::by_card(with, &team.team_id, app, period, card_id).await?.order_id)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct DoExtendRequest {
    pub app_id: String,
    #[schema(value_type = u32, minimum = 1, maximum = 12)]
    pub period: Period,
    pub pay_method: String,
    #[serde(default)]
    pub card_id: Option<String>,
}

/// The seed's answer: `{"code": "<amount charged>", "message": "success"}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DoExtendResponse {
    pub code: String,
    pub message: &'static str,
    pub order_id: String,
}

pub async fn do_extend_app(
    state: &AppState,
    once: &Once,
    team: &Team,
    req: DoExtendRequest,
) -> Result<DoExtendResponse, ApiError> {
    if parse_pay_method(&state.config, "pay_method", &req.pay_method)? != PayMethod::CreditCard {
        return Err(ApiError::invalid(
            "pay_method",
            "must be CREDIT_CARD here; token extensions are paid to their order's address",
        ));
    }
    let card_id = required_card("card_id", req.card_id.as_deref())?;
    let app = extendable_app(state, team, &req.app_id).await?;
    let order_id = extend_by_card(state, once, team, &app, req.period.0, &card_id).await?;
    let order =
        orders::get_order(state.store.pool(), &team.team_id, &order_id).await?.ok_or(ApiError::NotFound("order"))?;
    Ok(DoExtendResponse { code: order.new.usd.normalize().to_string(), message: "success", order_id })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ExtendAppRequest {
    pub pay_method: String,
    pub app_id: String,
    #[serde(default)]
    pub card_id: Option<String>,
    /// Months; the app's first period when absent (the seed's body has none).
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 12)]
    #[serde(default)]
    pub period: Option<Period>,
}

/// ExtendApp's answer, in the seed's shape (`code` 0 is success).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExtendAppResponse {
    pub code: i64,
    pub message: String,
    pub order_id: String,
}

impl ExtendAppResponse {
    fn success(order_id: String) -> Self {
        ExtendAppResponse { code: 0, message: "success".into(), order_id }
    }
}

/// ExtendApp: a card extension is charged at once; a token one opens an extend order that
/// GetEthOrder then returns. Without an Idempotency-Key, the same card extension (app, period,
/// card) within 10 minutes of a successful one answers that one; to extend twice on purpose,
/// send each call with its own key.
#[utoipa::path(
    post, path = "/v2alpha/teams/{team_id}/extend_app", tag = "apps",
    summary = "ExtendApp: by card at once, or by token through a new extend order",
    params(
        ("team_id" = String, Path, description = "The key's team"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request return the first answer")
    ),
    request_body = ExtendAppRequest,
    responses((status = 200, body = ExtendAppResponse), super::error::responses::TeamPayment),
    security(("team_key" = []))
)]
pub async fn extend_app(
    State(state): State<AppState>,
    team: Team,
    ApiPath(team_id): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = team.owns(&team_id) {
        return e.into_response();
    }
    let (state, team, body) = (&state, &team, &body);
    run_once(state, team, &headers, "extend_app", body, move |once| async move {
        let req: ExtendAppRequest = parse_json(body)?;
        extend_app_once(state, &once, team, req).await
    })
    .await
}

async fn extend_app_once(
    state: &AppState,
    once: &Once,
    team: &Team,
    req: ExtendAppRequest,
) -> Result<ExtendAppResponse, ApiError> {
    if let Some(made) = once.done::<Made>() {
        return Ok(ExtendAppResponse::success(made.order_id));
    }
    let pay_method = parse_pay_method(&state.config, "pay_method", &req.pay_method)?;
    let app = extendable_app(state, team, &req.app_id).await?;
    let period = match req.period {
        Some(p) => p.0,
        None => extension::first_period(&state.store, &app).await?,
    };
    match pay_method.token() {
        None => {
            let card_id = required_card("card_id", req.card_id.as_deref())?;
            let order_id = extend_by_card(state, once, team, &app, period, &card_id).await?;
            Ok(ExtendAppResponse::success(order_id))
        }
        Some(token) => {
            let quote = extension::quote(&state.config, &state.prices, pay_method, &app, period).await?;
            let order = open_token_extension(state, once, team, &app, token, quote, period).await?;
            Ok(ExtendAppResponse::success(order.order_id))
        }
    }
}

#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/extend_app", operation_id = "extend_app_get", tag = "apps",
    summary = "ExtendApp sent as GET with a JSON body, as the seed does; same as the POST",
    params(
        ("team_id" = String, Path, description = "The key's team"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request return the first answer")
    ),
    request_body = ExtendAppRequest,
    responses((status = 200, body = ExtendAppResponse), super::error::responses::TeamPayment),
    security(("team_key" = []))
)]
pub async fn extend_app_get(
    state: State<AppState>,
    team: Team,
    team_id: ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    extend_app(state, team, team_id, headers, body).await
}
