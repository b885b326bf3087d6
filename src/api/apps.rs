//! CreateApp (`POST /v2alpha/app/v2/app`) and app status
//! (`GET /v2alpha/teams/{team_id}/apps/{app_id}`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::cards::{pay_by_card, required_card};
use super::error::ApiError;
use super::extract::{ApiPath, Team, parse_json};
use super::idempotency::{Made, Once, run_once};
use super::types::{Period, pay_method as parse_pay_method, text_field};
use crate::payments::checkout::{self, OrderFor};
use crate::store::apps::{self, App, AppSpec};
use crate::store::card_charges::Purpose;
use crate::store::orders::OrderKind;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PrePayInfo {
    pub pay_method: String,
    #[schema(value_type = u32, minimum = 1, maximum = 12)]
    pub period: Period,
    #[serde(default)]
    pub card_id: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct CustomValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateAppRequest {
    pub pre_pay_info: PrePayInfo,
    pub name: String,
    pub cluster_id: String,
    #[serde(default)]
    pub namespace_name: String,
    #[serde(default)]
    pub team_id: Option<String>,
    pub chart_name: String,
    #[serde(default)]
    pub chart_repo: String,
    #[serde(default)]
    pub chart_ver: String,
    #[serde(default)]
    pub chart_desc: String,
    #[serde(default)]
    pub chart_icon_url: String,
    #[serde(default)]
    pub app_version: String,
    #[serde(default)]
    pub instance_type: String,
    #[serde(default)]
    pub enterprise: bool,
    #[serde(default)]
    pub custom_values: Vec<CustomValue>,
    pub cpu_limit: i64,
    pub mem_limit: i64,
    pub storage_limit: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreateAppResponse {
    pub app_id: String,
    pub order_id: String,
}

impl CreateAppRequest {
    fn validate(&self) -> Result<(), ApiError> {
        text_field("name", &self.name, 128, true)?;
        text_field("cluster_id", &self.cluster_id, 128, true)?;
        text_field("chart_name", &self.chart_name, 128, true)?;
        for (field, value) in [
            ("namespace_name", &self.namespace_name),
            ("chart_repo", &self.chart_repo),
            ("chart_ver", &self.chart_ver),
            ("app_version", &self.app_version),
            ("instance_type", &self.instance_type),
        ] {
            text_field(field, value, 128, false)?;
        }
        text_field("chart_desc", &self.chart_desc, 2000, false)?;
        text_field("chart_icon_url", &self.chart_icon_url, 2000, false)?;
        if self.custom_values.len() > 200 {
            return Err(ApiError::invalid("custom_values", "has more than 200 entries"));
        }
        for cv in &self.custom_values {
            text_field("custom_values.key", &cv.key, 256, true)?;
            text_field("custom_values.value", &cv.value, 4096, false)?;
        }
        Ok(())
    }

    fn spec(&self) -> AppSpec {
        AppSpec {
            name: self.name.clone(),
            cluster_id: self.cluster_id.clone(),
            namespace_name: self.namespace_name.clone(),
            chart_name: self.chart_name.clone(),
            chart_repo: self.chart_repo.clone(),
            chart_ver: self.chart_ver.clone(),
            chart_desc: self.chart_desc.clone(),
            chart_icon_url: self.chart_icon_url.clone(),
            app_version: self.app_version.clone(),
            instance_type: self.instance_type.clone(),
            enterprise: self.enterprise,
            custom_values: serde_json::to_string(&self.custom_values).unwrap_or_else(|_| "[]".into()),
            cpu_limit: self.cpu_limit,
            mem_limit: self.mem_limit,
            storage_limit: self.storage_limit,
        }
    }
}

/// CreateApp, at most once per Idempotency-Key.
#[utoipa::path(
    post, path = "/v2alpha/app/v2/app", tag = "apps",
    summary = "CreateApp: an app and its first order (card: charged at once; token: awaiting payment)",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry of the same request return the first answer")),
    request_body = CreateAppRequest,
    responses((status = 200, description = "The app and its order", body = CreateAppResponse), super::error::responses::TeamPayment),
    security(("team_key" = []))
)]
pub async fn create_app(State(state): State<AppState>, team: Team, headers: HeaderMap, body: Bytes) -> Response {
    let (state, team, body) = (&state, &team, &body);
    run_once(state, team, &headers, "create_app", body, move |once| async move {
        let req: CreateAppRequest = parse_json(body)?;
        create_app_once(state, &once, team, req).await
    })
    .await
}

/// Creates the app and its first order: a token order awaiting payment, or a card charge
/// that activates the app at once.
async fn create_app_once(
    state: &AppState,
    once: &Once,
    team: &Team,
    req: CreateAppRequest,
) -> Result<CreateAppResponse, ApiError> {
    team.may_act_for(req.team_id.as_deref())?;
    if let Some(Made { app_id: Some(app_id), order_id }) = once.done::<Made>() {
        return Ok(CreateAppResponse { app_id, order_id });
    }
    req.validate()?;
    let pay_method = parse_pay_method(&state.config, "pre_pay_info.pay_method", &req.pre_pay_info.pay_method)?;
    let spec = req.spec();
    let period = req.pre_pay_info.period.0;
    let quote = checkout::quote(
        &state.config,
        &state.prices,
        pay_method,
        &crate::payments::extension::resources_of(&spec, period),
    )
    .await?;
    let Some(token) = pay_method.token() else {
        let card_id = required_card("pre_pay_info.card_id", req.pre_pay_info.card_id.as_deref())?;
        let purpose = Purpose::NewApp { spec: Box::new(spec), period: period as i64 };
        let recorded = pay_by_card(state, once, team, &card_id, quote.usd, purpose).await?;
        let app_id =
            recorded.app_id.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("card CreateApp made no app")))?;
        return Ok(CreateAppResponse { app_id, order_id: recorded.order_id });
    };
    let mut tx = state.store.begin().await?;
    let app = apps::insert_app(&mut *tx, &team.team_id, &spec, pay_method).await?;
    let what = OrderFor {
        team_id: &team.team_id,
        app_id: Some(&app.app_id),
        kind: OrderKind::Create,
        period_months: period as i64,
    };
    let order =
        checkout::open_token_order(&mut tx, &state.config, what, token, quote, |id| state.chains.now_on(id)).await?;
    once.save_done(&mut tx, &Made { app_id: Some(app.app_id.clone()), order_id: order.order_id.clone() }).await?;
    tx.commit().await.map_err(crate::store::StoreError::from)?;
    Ok(CreateAppResponse { app_id: app.app_id, order_id: order.order_id })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppView {
    pub app_id: String,
    pub team_id: String,
    pub name: String,
    pub status: &'static str,
    pub pay_method: &'static str,
    pub cluster_id: String,
    pub chart_name: String,
    pub cpu_limit: i64,
    pub mem_limit: i64,
    pub storage_limit: i64,
    pub app_start_time: Option<i64>,
    pub app_end_time: Option<i64>,
    pub create_time: i64,
}

impl From<App> for AppView {
    fn from(a: App) -> Self {
        AppView {
            app_id: a.app_id,
            team_id: a.team_id,
            name: a.spec.name,
            status: a.status.as_str(),
            pay_method: a.pay_method.as_str(),
            cluster_id: a.spec.cluster_id,
            chart_name: a.spec.chart_name,
            cpu_limit: a.spec.cpu_limit,
            mem_limit: a.spec.mem_limit,
            storage_limit: a.spec.storage_limit,
            app_start_time: a.start_time,
            app_end_time: a.end_time,
            create_time: a.created_at,
        }
    }
}

#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/apps/{app_id}", tag = "apps",
    summary = "An app's status and paid-for time",
    params(("team_id" = String, Path, description = "The key's team"), ("app_id" = String, Path)),
    responses((status = 200, body = AppView), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn app_status(
    State(state): State<AppState>,
    team: Team,
    ApiPath((team_id, app_id)): ApiPath<(String, String)>,
) -> Result<Json<AppView>, ApiError> {
    team.owns(&team_id)?;
    let app = apps::get_app(state.store.pool(), &team_id, &app_id).await?.ok_or(ApiError::NotFound("app"))?;
    Ok(Json(app.into()))
}
