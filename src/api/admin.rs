//! The operator's API, behind the admin token (compared in constant time): teams and keys.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
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
        let super::client_addr::ClientAddr(client) = super::client_addr::ClientAddr::of(parts, state);
        // A client past its free wrong tries waits, whatever it sends now.
        state.auth_throttle.check(client).map_err(|wait| ApiError::TooManyAttempts(wait.as_secs().max(1)))?;
        if bool::from(given.trim().as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
            Ok(Admin)
        } else {
            state.auth_throttle.failed(client);
            Err(ApiError::Unauthorized)
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
    pub name: String,
}

/// A key as issued: the only time the secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IssuedKeyView {
    pub team_id: String,
    pub api_key: String,
    pub key_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RevokedKey {
    pub revoked: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookDeliveries {
    pub deliveries: Vec<crate::store::outbox::Delivery>,
    /// Set while the endpoint is disabled (it answered 410 Gone); events wait until re-enabled.
    pub endpoint_disabled: Option<crate::store::webhook_endpoint::Disabled>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointEnabled {
    /// False when it was not disabled.
    pub was_disabled: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueuedEvent {
    pub queued: String,
}

/// Creates a team and its first key; the key is shown this once.
#[utoipa::path(
    post, path = "/admin/teams", tag = "admin",
    summary = "Create a team and its first API key (shown this once)",
    request_body = NewTeam,
    responses((status = 200, body = IssuedKeyView), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn create_team(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<NewTeam>,
) -> Result<Json<IssuedKeyView>, ApiError> {
    Ok(Json(new_team(&state, &req.name).await?))
}

/// A team and its first key (the API and the console).
pub async fn new_team(state: &AppState, name: &str) -> Result<IssuedKeyView, ApiError> {
    let (team, key) = teams::create_with_key(&state.store, name).await.map_err(|e| match e {
        teams::NewTeamError::Name => ApiError::invalid("name", e.to_string()),
        teams::NewTeamError::Store(s) => s.into(),
    })?;
    Ok(IssuedKeyView { team_id: team.team_id, api_key: key.api_key, key_id: key.key_id })
}

/// Issues another key for a team (rotation: issue, switch, revoke the old one).
#[utoipa::path(
    post, path = "/admin/teams/{team_id}/keys", tag = "admin",
    summary = "Issue another key for a team (rotation)",
    params(("team_id" = String, Path)),
    responses((status = 200, body = IssuedKeyView), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn issue_key(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(team_id): ApiPath<String>,
) -> Result<Json<IssuedKeyView>, ApiError> {
    Ok(Json(another_key(&state, &team_id).await?))
}

/// Another key for an existing team.
pub async fn another_key(state: &AppState, team_id: &str) -> Result<IssuedKeyView, ApiError> {
    teams::get_team(state.store.pool(), team_id).await?.ok_or(ApiError::NotFound("team"))?;
    let key = teams::issue_key(state.store.pool(), team_id).await?;
    Ok(IssuedKeyView { team_id: team_id.to_string(), api_key: key.api_key, key_id: key.key_id })
}

#[utoipa::path(
    delete, path = "/admin/teams/{team_id}/keys/{key_id}", tag = "admin",
    summary = "Revoke a key",
    params(("team_id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = RevokedKey), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    _: Admin,
    ApiPath((team_id, key_id)): ApiPath<(String, String)>,
) -> Result<Json<RevokedKey>, ApiError> {
    revoke(&state, &team_id, &key_id).await?;
    Ok(Json(RevokedKey { revoked: key_id }))
}

/// Revokes a live key; this process's key cache forgets at once.
pub async fn revoke(state: &AppState, team_id: &str, key_id: &str) -> Result<(), ApiError> {
    if !teams::revoke_key(state.store.pool(), team_id, key_id).await? {
        return Err(ApiError::NotFound("key"));
    }
    state.keys.forget_all();
    Ok(())
}

/// The newest webhook events with their delivery state.
#[utoipa::path(
    get, path = "/admin/webhooks", tag = "admin",
    summary = "The newest webhook events with their delivery state",
    responses((status = 200, body = WebhookDeliveries), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn webhook_deliveries(State(state): State<AppState>, _: Admin) -> Result<Json<WebhookDeliveries>, ApiError> {
    let list = crate::store::outbox::list(state.store.pool(), crate::store::outbox::Which::All, 200).await?;
    Ok(Json(WebhookDeliveries { deliveries: list, endpoint_disabled: endpoint_disabled(&state).await? }))
}

/// Why the configured endpoint is disabled, if it is.
pub async fn endpoint_disabled(state: &AppState) -> Result<Option<crate::store::webhook_endpoint::Disabled>, ApiError> {
    let Some(hooks) = &state.config.webhooks else { return Ok(None) };
    Ok(crate::store::webhook_endpoint::disabled(state.store.pool(), &hooks.url).await?)
}

/// Re-enables the endpoint a 410 disabled: the waiting events go out, oldest first.
#[utoipa::path(
    post, path = "/admin/webhooks/endpoint/enable", tag = "admin",
    summary = "Re-enable the webhook endpoint after it answered 410 Gone",
    responses((status = 200, body = EndpointEnabled), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn enable_endpoint(State(state): State<AppState>, _: Admin) -> Result<Json<EndpointEnabled>, ApiError> {
    Ok(Json(EndpointEnabled { was_disabled: enable(&state).await? }))
}

/// Re-enables the configured endpoint (the API and the console).
pub async fn enable(state: &AppState) -> Result<bool, ApiError> {
    let Some(hooks) = &state.config.webhooks else {
        return Err(ApiError::Conflict("no [webhooks] endpoint is configured".into()));
    };
    Ok(crate::store::webhook_endpoint::enable(state.store.pool(), &hooks.url).await?)
}

/// Queues an event for delivery again.
#[utoipa::path(
    post, path = "/admin/webhooks/{event_id}/redeliver", tag = "admin",
    summary = "Queue a webhook event for delivery again",
    params(("event_id" = String, Path)),
    responses((status = 200, body = QueuedEvent), super::error::responses::Admin),
    security(("admin_token" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Json<QueuedEvent>, ApiError> {
    queue_again(&state, &event_id).await?;
    Ok(Json(QueuedEvent { queued: event_id }))
}

/// Queues a webhook event for delivery again.
pub async fn queue_again(state: &AppState, event_id: &str) -> Result<(), ApiError> {
    if !crate::store::outbox::redeliver(state.store.pool(), event_id, crate::store::unix_now()).await? {
        return Err(ApiError::NotFound("event"));
    }
    Ok(())
}
