//! A JSON-RPC proxy in front of a node that counts what passes: HTTP requests, and calls by
//! method (the calls inside a batch too), and how long the node took to answer them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use serde_json::Value;

#[derive(Default)]
pub struct Counts {
    pub by_method: BTreeMap<String, u64>,
    pub requests: u64,
    /// The node's answering time summed over requests (overlapping requests each count whole).
    pub waited: Duration,
}

pub struct Proxy {
    upstream: String,
    http: reqwest::Client,
    counts: Mutex<Counts>,
}

impl Proxy {
    /// A proxy to `upstream` listening on a local port; returns it, its URL and its server task
    /// (abort it to stop the proxy).
    pub async fn spawn(upstream: String) -> anyhow::Result<(Arc<Proxy>, String, tokio::task::JoinHandle<()>)> {
        let proxy = Arc::new(Proxy { upstream, http: reqwest::Client::new(), counts: Mutex::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((proxy, url, task))
    }

    /// What passed since the last take, and the counts started again.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

async fn forward(State(p): State<Arc<Proxy>>, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    let calls = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(items)) => items,
        Ok(one) => vec![one],
        Err(_) => Vec::new(),
    };
    {
        let mut counts = p.counts.lock().unwrap();
        counts.requests += 1;
        for c in calls {
            *counts.by_method.entry(c["method"].as_str().unwrap_or("?").to_string()).or_default() += 1;
        }
    }
    let started = Instant::now();
    let answer = p.http.post(&p.upstream).header("content-type", "application/json").body(body).send().await;
    let response = match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            (axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY), bytes)
                .into_response()
        }
        Err(_) => axum::http::StatusCode::BAD_GATEWAY.into_response(),
    };
    p.counts.lock().unwrap().waited += started.elapsed();
    response
}
