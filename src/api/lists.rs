//! GetDepositList and PaymentList: every credited payment (card charge or paid token order),
//! as the seeds show them.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiPath, ApiQuery, Team};
use crate::payments::calendar::whole_days;
use crate::store::{deposits, unix_now};

pub const MAX_PAGE_SIZE: i64 = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DepositItem {
    pub app_id: String,
    pub deposit_time: i64,
    pub app_end_time: i64,
    pub usd: String,
    pub amount: String,
    pub project_name: String,
    pub chart_name: String,
    pub icon_url: String,
    pub pay_method: String,
    pub address: String,
    pub create_time: i64,
    pub app_run_time: i64,
    pub app_total_time: i64,
    pub transaction_hash: String,
    pub card_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DepositList {
    pub deposit_list: Vec<DepositItem>,
    pub page: i64,
    /// The page size asked for; without `page`/`page_size`, the whole list's length.
    pub page_size: i64,
    /// Deposits in the whole list.
    pub total: i64,
    /// More deposits follow this page.
    pub has_more: bool,
}

fn normalized(text: &str) -> String {
    Decimal::from_str(text).map(|d| d.normalize().to_string()).unwrap_or_else(|_| text.to_string())
}

impl From<deposits::DepositRow> for DepositItem {
    fn from(d: deposits::DepositRow) -> Self {
        let now = unix_now();
        let start = d.app_start_time.unwrap_or(d.deposit_time);
        let end_after = d.app_end_time.unwrap_or(d.deposit_time);
        let running_until = d.app_current_end.map_or(now, |end| end.min(now));
        DepositItem {
            app_id: d.app_id.unwrap_or_default(),
            deposit_time: d.deposit_time,
            app_end_time: end_after,
            usd: normalized(&d.usd),
            amount: normalized(&d.amount),
            project_name: d.app_name.unwrap_or_default(),
            chart_name: d.chart_name.unwrap_or_default(),
            icon_url: d.icon_url.unwrap_or_default(),
            pay_method: d.pay_method,
            address: d.address.unwrap_or_default(),
            create_time: d.app_created_at.unwrap_or(d.deposit_time),
            app_run_time: whole_days(start, running_until),
            app_total_time: whole_days(start, end_after),
            transaction_hash: d.transaction_hash.unwrap_or_default(),
            card_id: d.card_id.unwrap_or_default(),
        }
    }
}

#[utoipa::path(
    get, path = "/v2alpha/teams/{team_id}/deposit_list", tag = "lists",
    summary = "The team's deposits, newest first: all of them (as the seed), or a page with page/page_size",
    params(("team_id" = String, Path, description = "The key's team"), Page),
    responses((status = 200, body = DepositList), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn deposit_list(
    State(state): State<AppState>,
    team: Team,
    ApiPath(team_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<DepositList>, ApiError> {
    team.owns(&team_id)?;
    let total = deposits::count_for_team(state.store.pool(), &team_id).await?;
    if q.page.is_none() && q.page_size.is_none() {
        // The seed answers the whole list when no page is asked for.
        let rows = deposits::list_for_team(state.store.pool(), &team_id, None, 0).await?;
        let deposit_list: Vec<DepositItem> = rows.into_iter().map(Into::into).collect();
        return Ok(Json(DepositList {
            page: 1,
            page_size: deposit_list.len() as i64,
            total,
            has_more: false,
            deposit_list,
        }));
    }
    let page = q.page.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(50);
    if page < 1 {
        return Err(ApiError::invalid("page", "must be 1 or more"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let offset = (page - 1).checked_mul(page_size).ok_or_else(|| ApiError::invalid("page", "is too large"))?;
    let rows = deposits::list_for_team(state.store.pool(), &team_id, Some(page_size), offset).await?;
    let has_more = offset + (rows.len() as i64) < total;
    Ok(Json(DepositList { deposit_list: rows.into_iter().map(Into::into).collect(), page, page_size, total, has_more }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentItem {
    pub app_id: String,
    pub app_name: String,
    pub chart_name: String,
    pub pay_method: String,
    pub usd: String,
    pub amount: String,
    pub billing_time: i64,
    pub icon_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentMonth {
    pub period: String,
    pub total_usd: String,
    pub app_list: Vec<PaymentItem>,
}

/// The first day of the UTC month of `ts`, as `"2020-09-01"`.
fn month_of(ts: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp(ts).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!("{:04}-{:02}-01", dt.year(), dt.month() as u8)
}

#[utoipa::path(
    get, path = "/v2alpha/{team_id}/pre_payment_list", tag = "lists",
    summary = "The team's payments grouped by UTC month, with exact totals",
    params(("team_id" = String, Path, description = "The key's team")),
    responses((status = 200, body = Vec<PaymentMonth>), super::error::responses::TeamRead),
    security(("team_key" = []))
)]
pub async fn payment_list(
    State(state): State<AppState>,
    team: Team,
    ApiPath(team_id): ApiPath<String>,
) -> Result<Json<Vec<PaymentMonth>>, ApiError> {
    team.owns(&team_id)?;
    let rows = deposits::list_for_team(state.store.pool(), &team_id, None, 0).await?;
    // Rows come newest first; months keep that order.
    let mut months: BTreeMap<String, (Decimal, Vec<PaymentItem>)> = BTreeMap::new();
    for d in rows {
        let usd =
            Decimal::from_str(&d.usd).map_err(|_| ApiError::Internal(anyhow::anyhow!("stored usd {:?}", d.usd)))?;
        let entry = months.entry(month_of(d.deposit_time)).or_default();
        entry.0 += usd;
        entry.1.push(PaymentItem {
            app_id: d.app_id.unwrap_or_default(),
            app_name: d.app_name.unwrap_or_default(),
            chart_name: d.chart_name.unwrap_or_default(),
            pay_method: d.pay_method,
            usd: usd.normalize().to_string(),
            amount: normalized(&d.amount),
            billing_time: d.deposit_time,
            icon_url: d.icon_url.unwrap_or_default(),
        });
    }
    let list = months
        .into_iter()
        .rev()
        .map(|(period, (total, app_list))| PaymentMonth { period, total_usd: total.normalize().to_string(), app_list })
        .collect();
    Ok(Json(list))
}
