//! The operator's view of money at deposit addresses that credits no order, and of sweeps:
//! `GET /admin/funds` (filter by status, token, team), `POST /admin/funds/{id}/apply` (credit it
//! to another open order of the same team and token), `POST /admin/funds/{id}/refunded` (record
//! the refund transaction), `GET /admin/sweeps` (the sweep ledger, e.g. `?state=failed`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::admin::Admin;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::chain::rpc::describe;
use crate::jobs::reconcile::{self, Reconciliation};
use crate::payments::credit::Rules;
use crate::payments::funds as ledger;
use crate::store::stray_funds::{self, Filter, Fund};
use crate::store::sweeps::{self, SweepRow};

/// A filter that must be one of `allowed` when given.
fn one_of(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => {
            Err(ApiError::invalid(field, format!("must be one of {}", allowed.join(", "))))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FundsQuery {
    /// unattributed, applied or refunded.
    pub status: Option<String>,
    /// The token contract address.
    pub token: Option<String>,
    pub team_id: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FundList {
    pub funds: Vec<Fund>,
}

#[utoipa::path(
    get, path = "/admin/funds", tag = "admin",
    summary = "Money at deposit addresses that credits no order (late, partial on an expired order, wrong token, overpaid)",
    params(FundsQuery),
    responses((status = 200, body = FundList), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn list_funds(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<FundsQuery>,
) -> Result<Json<FundList>, ApiError> {
    one_of("status", q.status.as_deref(), &["unattributed", "applied", "refunded"])?;
    let token = match &q.token {
        Some(t) => Some(crate::store::columns::address_text(
            &t.parse::<alloy::primitives::Address>().map_err(|_| ApiError::invalid("token", "must be an address"))?,
        )),
        None => None,
    };
    let filter = Filter { status: q.status, token, team_id: q.team_id };
    Ok(Json(FundList { funds: stray_funds::list(state.store.pool(), &filter, 1000).await? }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ApplyFund {
    /// An open order of the same team, paid in the same token.
    pub order_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppliedFund {
    pub fund: Fund,
    /// The order's status after the funds were counted in it.
    pub order_status: &'static str,
}

#[utoipa::path(
    post, path = "/admin/funds/{fund_id}/apply", tag = "admin",
    summary = "Credit stray funds to an open order of the same team and token (it pays, or partly pays, it)",
    params(("fund_id" = String, Path)),
    request_body = ApplyFund,
    responses((status = 200, body = AppliedFund), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn apply_fund(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(fund_id): ApiPath<String>,
    ApiJson(req): ApiJson<ApplyFund>,
) -> Result<Json<AppliedFund>, ApiError> {
    Ok(Json(apply_to_order(&state, &fund_id, &req.order_id).await?))
}

/// Counts stray funds in another open order of the same team and token (the API and the console).
pub async fn apply_to_order(state: &AppState, fund_id: &str, order_id: &str) -> Result<AppliedFund, ApiError> {
    let rules = Rules::from_config(&state.config);
    let (fund, status) = ledger::apply(&state.store, &rules, &state.config.chain_ids(), fund_id, order_id).await?;
    Ok(AppliedFund { fund, order_status: status.as_str() })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefundedFund {
    /// The transaction that sent the funds back (0x + 64 hex digits).
    pub tx_hash: String,
}

#[utoipa::path(
    post, path = "/admin/funds/{fund_id}/refunded", tag = "admin",
    summary = "Record the transaction that refunded stray funds",
    params(("fund_id" = String, Path)),
    request_body = RefundedFund,
    responses((status = 200, body = Fund), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn refunded_fund(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(fund_id): ApiPath<String>,
    ApiJson(req): ApiJson<RefundedFund>,
) -> Result<Json<Fund>, ApiError> {
    Ok(Json(mark_refunded(&state, &fund_id, &req.tx_hash).await?))
}

/// Records the transaction that sent stray funds back (the API and the console).
pub async fn mark_refunded(state: &AppState, fund_id: &str, tx_hash: &str) -> Result<Fund, ApiError> {
    Ok(ledger::mark_refunded(&state.store, &state.config, &state.prices, fund_id, tx_hash).await?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepsQuery {
    /// pending, confirmed, failed or dropped.
    pub state: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SweepList {
    pub sweeps: Vec<SweepRow>,
}

#[utoipa::path(
    get, path = "/admin/sweeps", tag = "admin",
    summary = "The sweep ledger, newest first: per deposit address and token, what each sweep moved",
    params(SweepsQuery),
    responses((status = 200, body = SweepList), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn list_sweeps(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<SweepsQuery>,
) -> Result<Json<SweepList>, ApiError> {
    one_of("state", q.state.as_deref(), &["pending", "confirmed", "failed", "dropped"])?;
    Ok(Json(SweepList { sweeps: sweeps::list(state.store.pool(), q.state.as_deref(), 1000).await? }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReconciliationQuery {
    /// Run a reconciliation now instead of answering the latest (the daily job's).
    #[serde(default)]
    pub fresh: bool,
}

#[utoipa::path(
    get, path = "/admin/reconciliation", tag = "admin",
    summary = "The latest reconciliation of deposit balances against the ledger (or a fresh one)",
    params(ReconciliationQuery),
    responses((status = 200, body = Reconciliation), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn reconciliation(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ReconciliationQuery>,
) -> Result<Json<Reconciliation>, ApiError> {
    if q.fresh {
        let chains: Vec<_> = state.chains.iter().map(|c| (c.chain_id, c.rpc.clone())).collect();
        let r = reconcile::reconcile_all(&state.store, &chains)
            .await
            .map_err(|e| ApiError::Unavailable(format!("reconciliation failed: {}", describe(&format!("{e:#}")))))?;
        return Ok(Json(r));
    }
    Ok(Json(reconcile::latest(&state.store).await?.ok_or(ApiError::NotFound("reconciliation"))?))
}
