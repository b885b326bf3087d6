//! Extractors that answer in the API's error model: the caller's team from its bearer key,
//! JSON bodies and query strings whose rejections become 400/422 with the serde message.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;

/// The team whose API key came with the request.
#[derive(Debug, Clone)]
pub struct Team {
    pub team_id: String,
}

impl Team {
    /// A path's team id must be the key's own; another team's is "not found".
    pub fn owns(&self, team_id: &str) -> Result<(), ApiError> {
        if self.team_id == team_id { Ok(()) } else { Err(ApiError::NotFound("team")) }
    }

    /// A body's team id, when given, must be the key's own.
    pub fn may_act_for(&self, team_id: Option<&str>) -> Result<(), ApiError> {
        match team_id {
            Some(t) if !t.is_empty() && t != self.team_id => {
                Err(ApiError::Forbidden("team_id is not the API key's team".into()))
            }
            _ => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Team {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let team_id = state.keys.owner(&state.store, key).await?.ok_or(ApiError::Unauthorized)?;
        Ok(Team { team_id })
    }
}

/// `Json<T>` whose failures are `{"code","message"}`: 400 for unreadable JSON, 422 for a
/// body of the wrong shape (serde's message names the field).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::invalid("body", e.body_text())),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Parses a raw JSON body with the same answers as `ApiJson` (for handlers that also need
/// the bytes, such as idempotent ones).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid("body", e.to_string()),
        _ => ApiError::BadRequest(format!("malformed JSON: {e}")),
    })
}

/// `Path<T>` with the same error model: a segment that is not a `T` (or not UTF-8) is a 400.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// `Query<T>` with the same error model.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => Err(ApiError::invalid("query", e.body_text())),
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}
