//! Liveness and readiness. `/healthz` answers while the process serves; `/readyz` also needs
//! the database, and the watcher's view of the chain: its head known (read by the watcher, or
//! on standby from the database) and no problem reported. It asks the node nothing itself, so
//! polling it costs no RPC calls; the watcher marks the RPC failing after repeated failures.

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
    if !state.chain.is_verified() {
        return Err(ApiError::Unavailable("the RPC node has not answered yet".into()));
    }
    match state.chain.head() {
        0 => Err(ApiError::Unavailable("the chain's head is not known yet (the watcher has not read it)".into())),
        head => Ok(Json(Ready { status: "ready", chain_head: head })),
    }
}
