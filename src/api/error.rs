//! The one error model of the API: `{"code": ..., "message": "..."}` with a fitting status.
//! Internal causes are logged, never sent to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or query could not be read.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no key, or a key that is not valid.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// 402: a card charge failed.
    #[error("{0}")]
    PaymentFailed(String),
    /// 403: the key's team may not act on what the body names.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing for this key.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 408: the request ran past `[server] request_timeout_s`.
    #[error(
        "the request took longer than {0} s; a payment it started is still recorded, and a retry with the same Idempotency-Key answers it"
    )]
    Timeout(u64),
    /// 409: the request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// 422: a field is invalid; the message names it.
    #[error("{field}: {problem}")]
    Invalid { field: String, problem: String },
    /// 503: a dependency (price, database, node) is unavailable right now.
    #[error("{0}")]
    Unavailable(String),
    /// 503 with `Retry-After`: the database is busy; the same request shortly will do.
    #[error("the database is busy; retry in a moment")]
    Busy,
    /// 429 with `Retry-After`: too many wrong admin tokens from this client; the seconds to wait.
    #[error("too many wrong admin tokens from this address; retry in {0} s")]
    TooManyAttempts(u64),
    /// 500: a bug or an unexpected failure; logged, not described.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error model of every JSON endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// bad_request, unauthorized, payment_failed, forbidden, not_found, timeout, conflict,
    /// invalid, unavailable or internal.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        ApiError::Invalid { field: field.into(), problem: problem.into() }
    }

    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::PaymentFailed(_) => (StatusCode::PAYMENT_REQUIRED, "payment_failed"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Unavailable(_) | ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
        let mut response = (status, Json(ErrorBody { code, message: self.to_string() })).into_response();
        let retry_after = match self {
            ApiError::Busy => Some(1),
            ApiError::TooManyAttempts(secs) => Some(secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    /// A unique-constraint refusal is a conflict; a pool that cannot hand out a connection is
    /// an unavailable database; anything else is internal.
    fn from(e: StoreError) -> Self {
        if e.is_unique_violation() {
            return ApiError::Conflict("that already exists".into());
        }
        if e.is_busy() {
            tracing::warn!(error = %e, "the database was busy; the client is asked to retry");
            return ApiError::Busy;
        }
        match e {
            StoreError::Sqlx(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed) => {
                ApiError::Unavailable("the database is unavailable".into())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::payments::checkout::CheckoutError> for ApiError {
    fn from(e: crate::payments::checkout::CheckoutError) -> Self {
        use crate::payments::checkout::CheckoutError as E;
        match e {
            E::Pricing(p) => ApiError::invalid(p.field(), p.to_string()),
            E::Price(p) => ApiError::Unavailable(p.to_string()),
            E::NoDepositFactory | E::TokenNotConfigured(_) => ApiError::Unavailable(e.to_string()),
            E::Amount(_) | E::NothingToPay => ApiError::invalid("amount", e.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// The error answers of the OpenAPI document, one set per kind of route, so each route names
/// its kind instead of repeating the list. Every one carries the `ErrorBody` model.
pub mod responses {
    use std::collections::BTreeMap;

    use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

    type Answer = (u16, &'static str);

    const BAD_REQUEST: Answer = (400, "The body or query could not be read");
    const NO_KEY: Answer = (401, "Missing or invalid key");
    const NO_ADMIN: Answer = (401, "Missing or invalid admin token");
    const DECLINED: Answer = (402, "The card was declined");
    const OTHER_TEAM: Answer = (403, "The body names another team");
    const NOT_FOUND_FOR_KEY: Answer = (404, "Not found for this key");
    const NOT_FOUND: Answer = (404, "No such thing");
    const TIMEOUT: Answer = (
        408,
        "The request ran past the server's request timeout; a payment it started is still recorded \
         (retry with the same Idempotency-Key to learn it)",
    );
    const CONFLICT: Answer = (
        409,
        "Conflicts with the current state (out of stock, an app that cannot be extended), an Idempotency-Key \
         in use, or the same payment in progress",
    );
    const SETTLED: Answer = (409, "Conflicts with the current state (already settled, not open)");
    const INVALID: Answer =
        (422, "A field is invalid (or an Idempotency-Key was used with another body); the message names it");
    const UNAVAILABLE: Answer = (
        503,
        "A price, the database, the node or the card processor is unavailable (a busy database says when to retry)",
    );
    const DB_UNAVAILABLE: Answer = (503, "The database or the node is unavailable");
    const TOO_MANY_ATTEMPTS: Answer =
        (429, "Too many wrong admin tokens from this address; `Retry-After` says when to try again");

    fn answers(list: &[Answer]) -> BTreeMap<String, RefOr<Response>> {
        list.iter()
            .map(|(status, description)| {
                let body = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
                let response = ResponseBuilder::new().description(*description).content("application/json", body);
                (status.to_string(), RefOr::T(response.build()))
            })
            .collect()
    }

    macro_rules! kind {
        ($(#[$doc:meta])* $name:ident = $list:expr) => {
            $(#[$doc])*
            pub struct $name;
            impl utoipa::IntoResponses for $name {
                fn responses() -> BTreeMap<String, RefOr<Response>> {
                    answers(&$list)
                }
            }
        };
    }

    kind!(/// A route behind a team key that reads.
        TeamRead = [BAD_REQUEST, NO_KEY, NOT_FOUND_FOR_KEY, INVALID, DB_UNAVAILABLE]);
    kind!(/// A route behind a team key that opens orders (paid by token).
        TeamWrite = [BAD_REQUEST, NO_KEY, NOT_FOUND_FOR_KEY, TIMEOUT, CONFLICT, INVALID, UNAVAILABLE]);
    kind!(/// A route behind a team key that may charge a card.
        TeamPayment = [BAD_REQUEST, NO_KEY, DECLINED, OTHER_TEAM, NOT_FOUND_FOR_KEY, TIMEOUT, CONFLICT, INVALID, UNAVAILABLE]);
    kind!(/// An operator's route behind the admin token.
        Admin = [BAD_REQUEST, NO_ADMIN, NOT_FOUND, SETTLED, INVALID, TOO_MANY_ATTEMPTS, DB_UNAVAILABLE]);
    kind!(/// A public route (no key).
        Public = [BAD_REQUEST, NOT_FOUND, INVALID, UNAVAILABLE]);
    kind!(/// A public route that pays an order (no key: the order id is the capability).
        PublicPayment = [BAD_REQUEST, NOT_FOUND, SETTLED, INVALID, UNAVAILABLE]);
}
