//! The operator's console, `/console`: server-rendered pages (maud) behind the admin token,
//! signed in once for a session cookie (`session`), every form with a CSRF token, a strict
//! Content-Security-Policy and only paywatch's own assets. Pages read through the same store
//! functions the admin API uses and act through the same handlers' logic.

mod chart;
mod encoding;
mod funds;
mod layout;
mod orders;
mod overview;
mod session;
mod sweeps;
mod teams;
mod webhooks;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;
use super::client_addr::ClientAddr;
use super::error::ApiError;
use layout::page;
pub use session::Operator;

/// Scripts, styles and images from paywatch only; no inline script; forms post here only.
fn console_csp() -> String {
    crate::api::page::Csp { scripts: true, images: true, connect: true, forms: true }.header_value()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview::page))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/orders", get(orders::list))
        .route("/console/orders/{order_id}", get(orders::detail))
        .route("/console/webhooks", get(webhooks::page))
        .route("/console/webhooks/{event_id}/redeliver", post(webhooks::redeliver))
        .route("/console/webhooks/enable", post(webhooks::enable))
        .route("/console/sweeps", get(sweeps::page))
        .route("/console/sweeps/run", post(sweeps::run))
        .route("/console/teams", get(teams::page).post(teams::create))
        .route("/console/teams/{team_id}/keys", post(teams::issue_key))
        .route("/console/teams/{team_id}/keys/{key_id}/revoke", post(teams::revoke_key))
        .route("/console/funds", get(funds::page))
        .route("/console/funds/{fund_id}/apply", post(funds::apply))
        .route("/console/funds/{fund_id}/refunded", post(funds::refunded))
        .route("/console/funds/{fund_id}/refund", post(funds::refund))
        .route("/console/refunds/{refund_id}/approve", post(funds::approve))
        .route("/console/exports/{name}", get(funds::export))
        .route("/console/assets/console.css", get(style))
        .route("/console/assets/console.js", get(script))
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&console_csp()).expect("a CSP is a header value"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(CACHE_CONTROL, HeaderValue::from_static("no-store")))
}

const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

async fn style() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8"), (CACHE_CONTROL, "public, max-age=300")], STYLE).into_response()
}

async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8"), (CACHE_CONTROL, "public, max-age=300")], SCRIPT).into_response()
}

/// A form posted by a signed-in operator with the session's CSRF token; `T` is read from the
/// other fields. No session: see-other to sign-in. No or a wrong token: 403.
pub struct Posted<T> {
    pub operator: Operator,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let operator = Operator::from_request_parts(&mut parts, state).await?;
        let req = Request::from_parts(parts, body);
        let Form(mut fields) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|e| layout::error_page(Some(&operator), ApiError::BadRequest(e.body_text())))?;
        let given = fields.remove("csrf").unwrap_or_default();
        if !operator.csrf_matches(&given) {
            let body = html! { p class="error" role="alert" { "This form is out of date or was not sent by the console (no valid CSRF token). Reload the page and try again." } };
            return Err((StatusCode::FORBIDDEN, page(Some(&operator), "", "Refused", body)).into_response());
        }
        let value = serde_json::to_value(&fields).expect("strings serialize");
        let form = serde_json::from_value(value)
            .map_err(|e| layout::error_page(Some(&operator), ApiError::BadRequest(format!("the form: {e}"))))?;
        Ok(Posted { operator, form })
    }
}

/// Where an action returns to: a console path only.
fn back_to(back: Option<&str>) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, session::safe_next(back).to_string())]).into_response()
}

#[derive(Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

/// The pre-session CSRF cookie the sign-in form echoes (a login form another site posts has
/// no such cookie).
const SIGN_IN_COOKIE: &str = "paywatch_sign_in";

async fn sign_in_page(State(state): State<AppState>, Query(q): Query<SignInQuery>) -> Response {
    sign_in_form(&state, q.next.as_deref(), None, StatusCode::OK)
}

fn sign_in_form(state: &AppState, next: Option<&str>, problem: Option<&str>, status: StatusCode) -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let disabled = state.config.auth.admin_token.is_none();
    let body = html! {
        @if disabled {
            p class="error" role="alert" { "The console is off: no [auth] admin_token is configured." }
        } @else {
            @if let Some(p) = problem { p class="error" role="alert" id="sign-in-error" { (p) } }
            form method="post" action="/console/sign-in" class="sign-in" {
                input type="hidden" name="nonce" value=(nonce);
                input type="hidden" name="next" value=(session::safe_next(next));
                label for="token" { "Admin token" }
                input type="password" id="token" name="token" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        }
    };
    let cookie = format!("{SIGN_IN_COOKIE}={nonce}; Path=/console/sign-in; HttpOnly; SameSite=Strict; Max-Age=600");
    (status, [(SET_COOKIE, cookie)], page(None, "", "Sign in", body)).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    #[serde(default)]
    token: String,
    #[serde(default)]
    nonce: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if let Err(wait) = state.auth_throttle.check(client) {
        let message = format!("Too many wrong tokens from this address; try again in {} s.", wait.as_secs().max(1));
        let mut page = sign_in_form(&state, form.next.as_deref(), Some(&message), StatusCode::TOO_MANY_REQUESTS);
        page.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
        return page;
    }
    let echoed = session::cookie_value(&headers, SIGN_IN_COOKIE).is_some_and(|c| !c.is_empty() && c == form.nonce);
    if !echoed {
        return sign_in_form(
            &state,
            form.next.as_deref(),
            Some("The sign-in form expired; try again."),
            StatusCode::FORBIDDEN,
        );
    }
    let Some(token) = state.config.auth.admin_token.as_ref().filter(|_| session::token_matches(&state, &form.token))
    else {
        tracing::warn!(%client, "console sign-in refused: wrong admin token");
        state.auth_throttle.failed(client);
        return sign_in_form(
            &state,
            form.next.as_deref(),
            Some("That is not the admin token."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let value = session::new_session(token.expose_secret(), crate::store::unix_now());
    let cookie = session::set_cookie(&headers, &value, session::SESSION_SECS);
    let target = session::safe_next(form.next.as_deref()).to_string();
    (StatusCode::SEE_OTHER, [(SET_COOKIE, cookie), (LOCATION, HeaderValue::from_str(&target).expect("a path"))])
        .into_response()
}

async fn sign_out(headers: HeaderMap, posted: Posted<HashMap<String, String>>) -> Response {
    let _ = posted.operator;
    let cookie = session::set_cookie(&headers, "", 0);
    (StatusCode::SEE_OTHER, [(SET_COOKIE, cookie), (LOCATION, HeaderValue::from_static(session::SIGN_IN))])
        .into_response()
}

/// The hidden `back` field every action form carries.
#[derive(Deserialize)]
struct Back {
    back: Option<String>,
}
