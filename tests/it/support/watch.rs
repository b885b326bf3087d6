//! Waiting on the watcher through the API: processed blocks and readiness.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::TestApp;

/// Waits until the watcher has processed the current head.
pub async fn wait_processed(app: &TestApp, secs: u64) {
    wait_processed_to(app, app.head().await, secs).await
}

/// Waits until the watcher has processed `head`.
pub async fn wait_processed_to(app: &TestApp, head: u64, secs: u64) {
    let started = Instant::now();
    loop {
        let r: Value = app.http.get(format!("{}/healthz", app.base)).send().await.unwrap().json().await.unwrap();
        if r["processed_block"].as_u64().unwrap_or(0) >= head {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "watcher stuck below {head}: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn readyz(app: &TestApp) -> (u16, Value) {
    let r = app.http.get(format!("{}/readyz", app.base)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

pub async fn wait_ready(app: &TestApp, secs: u64) {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(app).await;
        if status == 200 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(secs), "never ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
