//! The operator's API, behind the admin token (compared in constant time): teams and keys.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use super::extract::ApiJson;
use crate::store::teams;

/// Present when the request carries the configured admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let expected = state.config.auth.admin_token.as_ref().ok_or(ApiError::Unauthorized)?;
        let given = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if bool::from(given.trim().as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct NewTeam {
    pub name: String,
}

/// Creates a team and its first key; the key is shown this once.
pub async fn create_team(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<NewTeam>,
) -> Result<Json<Value>, ApiError> {
    super::types::text_field("name", &req.name, 200, true)?;
    let (team, key) = crate::cli::create_team(&state.store, &req.name).await.map_err(ApiError::Internal)?;
    Ok(Json(json!({"team_id": team.team_id, "api_key": key.api_key, "key_id": key.key_id})))
}

/// Issues another key for a team (rotation: issue, switch, revoke the old one).
pub async fn issue_key(
    State(state): State<AppState>,
    _: Admin,
    Path(team_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    teams::get_team(state.store.pool(), &team_id).await?.ok_or(ApiError::NotFound("team"))?;
    let key = teams::issue_key(state.store.pool(), &team_id).await?;
    Ok(Json(json!({"team_id": team_id, "api_key": key.api_key, "key_id": key.key_id})))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    _: Admin,
    Path((team_id, key_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    if !teams::revoke_key(state.store.pool(), &team_id, &key_id).await? {
        return Err(ApiError::NotFound("key"));
    }
    Ok(Json(json!({"revoked": key_id})))
}

/// The newest webhook events with their delivery state.
pub async fn webhook_deliveries(State(state): State<AppState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let list = crate::store::outbox::list(state.store.pool(), 200).await?;
    Ok(Json(json!({"deliveries": list})))
}

/// Queues an event for delivery again.
pub async fn redeliver(
    State(state): State<AppState>,
    _: Admin,
    Path(event_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !crate::store::outbox::redeliver(state.store.pool(), &event_id, crate::store::unix_now()).await? {
        return Err(ApiError::NotFound("event"));
    }
    Ok(Json(json!({"queued": event_id})))
}
