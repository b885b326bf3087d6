//! The console's sign-in session. The admin token is asked for once; the answer is a cookie
//! holding an expiry, a nonce and an HMAC over both keyed by the admin token, so nothing is
//! stored server-side, a session ends by itself, and restarting with a new token ends every
//! session at once. Each form carries a CSRF token derived from the session (a forged form
//! from another site has neither the cookie, which is SameSite=Strict, nor the token).

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::AppState;
use crate::store::unix_now;

pub const COOKIE_NAME: &str = "paywatch_console";
/// How long a sign-in lasts.
pub const SESSION_SECS: i64 = 8 * 3600;
pub const SIGN_IN: &str = "/console/sign-in";

type HmacSha256 = Hmac<Sha256>;

/// The key sessions are signed with: derived from the admin token (never the token itself).
fn key(admin_token: &str) -> [u8; 32] {
    Sha256::new().chain_update(b"paywatch console session\0").chain_update(admin_token.as_bytes()).finalize().into()
}

fn mac_hex(key: &[u8; 32], parts: &[&str]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p.as_bytes());
        mac.update(b"|");
    }
    hex::encode(mac.finalize().into_bytes())
}

/// True when `given` is the admin token (constant time).
pub fn token_matches(state: &AppState, given: &str) -> bool {
    state
        .config
        .auth
        .admin_token
        .as_ref()
        .is_some_and(|t| bool::from(given.trim().as_bytes().ct_eq(t.expose_secret().as_bytes())))
}

/// A new session cookie's value, valid until `now + SESSION_SECS`.
pub fn new_session(admin_token: &str, now: i64) -> String {
    let mut nonce = [0u8; 16];
    rand::rng().fill_bytes(&mut nonce);
    let expires = (now + SESSION_SECS).to_string();
    let nonce = hex::encode(nonce);
    let mac = mac_hex(&key(admin_token), &["session", &expires, &nonce]);
    format!("{expires}.{nonce}.{mac}")
}

/// The session's CSRF token (the same for every form of one session).
pub fn csrf_for(admin_token: &str, session: &str) -> String {
    mac_hex(&key(admin_token), &["csrf", session])[..32].to_string()
}

/// True when `session` was signed with this admin token and has not expired at `now`.
pub fn session_valid(admin_token: &str, session: &str, now: i64) -> bool {
    let mut parts = session.splitn(3, '.');
    let (Some(expires), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let expected = mac_hex(&key(admin_token), &["session", expires, nonce]);
    let signed = bool::from(expected.as_bytes().ct_eq(mac.as_bytes()));
    signed && expires.parse::<i64>().is_ok_and(|e| e > now)
}

/// The value of the session cookie in a request, if any.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `Secure` when the console is reached over TLS (a terminating proxy says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The Set-Cookie header for `value` (an empty value with Max-Age=0 ends the session).
pub fn set_cookie(headers: &HeaderMap, value: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// A signed-in operator; carries the CSRF token the page's forms need.
pub struct Operator {
    pub csrf: String,
}

impl Operator {
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(self.csrf.as_bytes().ct_eq(given.as_bytes()))
    }
}

/// See-other to the sign-in page, remembering where the operator was going.
pub fn to_sign_in(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console");
    let target = format!("{SIGN_IN}?next={}", super::encoding::encode(next));
    (StatusCode::SEE_OTHER, [(LOCATION, target)]).into_response()
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = state.config.auth.admin_token.as_ref() else {
            return Err(to_sign_in(parts));
        };
        match cookie_value(&parts.headers, COOKIE_NAME) {
            Some(session) if session_valid(token.expose_secret(), session, unix_now()) => {
                Ok(Operator { csrf: csrf_for(token.expose_secret(), session) })
            }
            _ => Err(to_sign_in(parts)),
        }
    }
}

/// Where to go after signing in: only a console path (never another site).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        // Visible ASCII only: it goes into a Location header, which must not fail to build.
        Some(n)
            if n.starts_with("/console")
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/console",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_under_its_token() {
        let s = new_session("token-a", 1000);
        assert!(session_valid("token-a", &s, 1000));
        assert!(!session_valid("token-a", &s, 1000 + SESSION_SECS), "expired");
        assert!(!session_valid("token-b", &s, 1000), "a new admin token ends old sessions");
        let (expires, rest) = s.split_once('.').unwrap();
        let longer = format!("{}.{rest}", expires.parse::<i64>().unwrap() + 1000);
        assert!(!session_valid("token-a", &longer, 1000), "the expiry is signed");
        assert_ne!(csrf_for("token-a", &s), csrf_for("token-a", &new_session("token-a", 1000)));
    }

    #[test]
    fn next_stays_on_the_console() {
        assert_eq!(safe_next(Some("/console/orders?status=paid")), "/console/orders?status=paid");
        assert_eq!(safe_next(Some("https://evil.example/console")), "/console");
        assert_eq!(safe_next(Some("//evil.example")), "/console");
        assert_eq!(safe_next(None), "/console");
        assert_eq!(safe_next(Some("/console\nSet-Cookie: x")), "/console", "no control characters");
        assert_eq!(safe_next(Some("/console/é")), "/console");
    }
}
