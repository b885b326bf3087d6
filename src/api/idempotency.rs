//! `Idempotency-Key` on the calls that create orders or charge cards: the same key and body
//! answer the same and do nothing new; the same key with another body is a 422. The claim is
//! one insert on (team, key), so among concurrent calls exactly one does the work; the others
//! wait for its answer. A claim is leased (the request timeout plus 5 s): if its request died,
//! a retry after the lease runs the work again, which finds what the first run did (its card
//! intent, or the `done` record the work wrote in its own transaction) instead of redoing it.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use super::extract::Team;
use crate::store::idempotency::{self, Claim};
use crate::store::{StoreResult, Tx, unix_now};

const HEADER: &str = "idempotency-key";
const WAIT_STEP: Duration = Duration::from_millis(50);

/// What a call created: saved under its key, answered again from it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Made {
    pub app_id: Option<String>,
    pub order_id: String,
}

impl From<crate::payments::card_payment::Recorded> for Made {
    fn from(r: crate::payments::card_payment::Recorded) -> Self {
        Made { app_id: r.app_id, order_id: r.order_id }
    }
}

/// The key a call runs under, handed to its work.
#[derive(Debug, Clone)]
pub struct Once {
    team_id: String,
    route: &'static str,
    key: Option<String>,
    done: Option<Value>,
}

impl Once {
    /// A call without a key.
    pub fn without_key(team_id: &str, route: &'static str) -> Self {
        Once { team_id: team_id.to_string(), route, key: None, done: None }
    }

    /// Ties a card payment to this key, so a retry continues it (team, route and key, hashed).
    pub fn request_key(&self) -> Option<String> {
        self.key.as_ref().map(|k| hex::encode(Sha256::digest(format!("{}\n{}\n{k}", self.team_id, self.route))))
    }

    /// What an earlier run under this key created and saved with `save_done`.
    pub fn done<T: DeserializeOwned>(&self) -> Option<T> {
        self.done.clone().and_then(|v| serde_json::from_value(v).ok())
    }

    /// Saves what this work created, inside the work's transaction (nothing without a key).
    pub async fn save_done<T: Serialize>(&self, tx: &mut Tx, done: &T) -> StoreResult<()> {
        let Some(key) = &self.key else { return Ok(()) };
        let text = serde_json::to_string(done).map_err(|e| crate::store::StoreError::Corrupt(e.to_string()))?;
        idempotency::save_done(&mut **tx, &self.team_id, key, &text).await
    }
}

/// Runs `work` at most once per (team, key); without the header it just runs.
pub async fn run_once<F, Fut, T>(
    state: &AppState,
    team: &Team,
    headers: &HeaderMap,
    route: &'static str,
    body: &[u8],
    work: F,
) -> Response
where
    F: FnOnce(Once) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
    T: Serialize,
{
    let work = |once| async {
        work(once).await.and_then(|v| serde_json::to_value(v).map_err(|e| ApiError::Internal(e.into())))
    };
    let Some(key) = headers.get(HEADER) else {
        return respond(work(Once::without_key(&team.team_id, route)).await);
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
    let lease = state.config.server.idempotency_lease_secs();
    // Wait for a concurrent twin for at most half the request timeout, then say so (409).
    let wait_max = Duration::from_secs(state.config.server.request_timeout_s) / 2;
    let mut waited = Duration::ZERO;
    loop {
        let claim = match idempotency::claim(pool, &team.team_id, &key, &request_hash, unix_now(), lease).await {
            Ok(c) => c,
            Err(e) => return ApiError::from(e).into_response(),
        };
        match claim {
            Claim::Fresh { done } => {
                let done = done.and_then(|d| serde_json::from_str(&d).ok());
                let once = Once { team_id: team.team_id.clone(), route, key: Some(key.clone()), done };
                let result = work(once).await;
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
            Claim::InFlight if waited < wait_max => {
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
