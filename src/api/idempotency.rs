//! `Idempotency-Key` on the calls that create orders or charge cards: the same key and body
//! answer the same and do nothing new; the same key with another body is a 422. The claim is
//! one insert on (team, key), so among concurrent calls exactly one does the work; the others
//! wait for its answer.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use super::extract::Team;
use crate::store::idempotency::{self, Claim};

const HEADER: &str = "idempotency-key";
const WAIT_STEP: Duration = Duration::from_millis(50);
const WAIT_MAX: Duration = Duration::from_secs(15);

/// Runs `work` at most once per (team, key); without the header it just runs.
pub async fn run_once<F, Fut, T>(
    state: &AppState,
    team: &Team,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
    work: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
    T: Serialize,
{
    let work =
        || async { work().await.and_then(|v| serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into()))) };
    let Some(key) = headers.get(HEADER) else {
        return respond(work().await);
    };
    let key = match key.to_str().map(str::trim) {
        Ok(k) if !k.is_empty() && k.len() <= 255 => k.to_string(),
        _ => return ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible characters").into_response(),
    };
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    let request_hash = hex::encode(hasher.finalize());
    let pool = state.store.pool();
    let mut waited = Duration::ZERO;
    loop {
        let claim = match idempotency::claim(pool, &team.team_id, &key, &request_hash).await {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match claim {
            Claim::Fresh => {
                let result = work().await;
                let stored = match &result {
                    Ok(v) => idempotency::complete(pool, &team.team_id, &key, 200, &v.to_string()).await,
                    // A failed call may be retried with the same key.
                    Err(_) => idempotency::release(pool, &team.team_id, &key).await,
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, "idempotency record not saved");
                }
                return respond(result);
            }
            Claim::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            }
            Claim::Mismatch => {
                return ApiError::invalid("Idempotency-Key", "was already used with a different request")
                    .into_response();
            }
            Claim::InFlight if waited < WAIT_MAX => {
                tokio::time::sleep(WAIT_STEP).await;
                waited += WAIT_STEP;
            }
            Claim::InFlight => {
                return ApiError::Conflict("a request with this Idempotency-Key is still in progress".into())
                    .into_response();
            }
        }
    }
}

fn respond(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
