//! A real local HTTP server that receives webhooks: it answers from a script and records
//! every request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};

/// A Standard Webhooks secret (`whsec_` + base64 of 32 bytes).
pub const SECRET: &str = "whsec_dGVzdCBzZWNyZXQgZm9yIHBheXdhdGNoIHdlYmhvb2tzIQ==";

#[derive(Debug, Clone)]
pub struct Received {
    pub event_id: String,
    /// `webhook-signature` (Standard Webhooks), else the deprecated `Paywatch-Signature`.
    pub signature: String,
    pub timestamp: String,
    pub webhook_id: String,
    pub body: String,
    pub answered: u16,
}

/// A receiver that answers from a script (then `fallback`) and records every request.
#[derive(Clone, Default)]
pub struct Receiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    pub fallback: Arc<Mutex<u16>>,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub async fn start(script: &[u16], fallback: u16) -> (Self, String) {
        let r = Receiver::default();
        *r.script.lock().unwrap() = script.iter().copied().collect();
        *r.fallback.lock().unwrap() = fallback;
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let code = state.script.lock().unwrap().pop_front().unwrap_or(*state.fallback.lock().unwrap());
                    let header =
                        |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
                    state.seen.lock().unwrap().push(Received {
                        event_id: header("paywatch-event-id"),
                        signature: match header("webhook-signature") {
                            standard if !standard.is_empty() => standard,
                            _ => header("paywatch-signature"),
                        },
                        timestamp: header("webhook-timestamp"),
                        webhook_id: header("webhook-id"),
                        body,
                        answered: code,
                    });
                    StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    /// Answers these codes next, before the rest of the script.
    pub fn push_script(&self, codes: &[u16]) {
        let mut script = self.script.lock().unwrap();
        for code in codes.iter().rev() {
            script.push_front(*code);
        }
    }

    pub fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests were answered 2xx.
    pub async fn wait_delivered(&self, n: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let ok: Vec<_> = self.seen().into_iter().filter(|r| r.answered < 300).collect();
            if ok.len() >= n {
                return ok;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "only {} of {n} delivered: {:#?}",
                ok.len(),
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `[webhooks]` section pointing at `url`, retrying fast.
pub fn webhook_config(url: &str) -> String {
    format!(
        "[webhooks]\nurl = \"{url}\"\nsecret = \"{SECRET}\"\nretry_base_ms = 50\npoll_interval_ms = 50\nmax_attempts = 5\n"
    )
}
