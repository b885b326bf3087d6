//! Liveness and readiness. `/healthz` answers while the process serves; `/readyz` also needs
//! the database and the RPC node.

use alloy::providers::Provider;
use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, ErrorBody};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always "ok" while the process serves.
    pub status: &'static str,
    /// "active" while this process holds the watcher lease, else "standby".
    pub watcher: &'static str,
    pub processed_block: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ready {
    pub status: &'static str,
    pub chain_head: u64,
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    summary = "Liveness, with the watcher's role and progress",
    responses((status = 200, body = Health))
)]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let watcher = if state.chain.is_leader() { "active" } else { "standby" };
    Json(Health { status: "ok", watcher, processed_block: state.chain.processed() })
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    summary = "Readiness: the database and the RPC node answer, and the watcher can go on",
    responses((status = 200, body = Ready), (status = 503, description = "A price, the database or the node is unavailable", body = ErrorBody))
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.store.ping().await.map_err(|_| ApiError::Unavailable("database unreachable".into()))?;
    if let Some(problem) = state.chain.problem() {
        return Err(ApiError::Unavailable(problem));
    }
    let head = state.rpc.get_block_number().await.map_err(|_| ApiError::Unavailable("rpc unreachable".into()))?;
    Ok(Json(Ready { status: "ready", chain_head: head }))
}
