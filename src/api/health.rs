//! Liveness and readiness. `/healthz` answers while the process serves; `/readyz` also needs
//! the database and the RPC node.

use alloy::providers::Provider;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let watcher = if state.chain.is_leader() { "active" } else { "standby" };
    Json(json!({"status": "ok", "watcher": watcher, "processed_block": state.chain.processed()}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.store.ping().await.map_err(|_| ApiError::Unavailable("database unreachable".into()))?;
    let head = state.rpc.get_block_number().await.map_err(|_| ApiError::Unavailable("rpc unreachable".into()))?;
    Ok(Json(json!({"status": "ready", "chain_head": head})))
}
