//! Webhook delivery to a real local HTTP server: signatures, retries, no retry on 4xx,
//! order per app, and events that outlive a SIGKILL.

use std::time::Duration;

use paywatch::devnet::anvil::free_port;
use paywatch::store::{outbox, unix_now};
use paywatch::webhooks::sign;
use serde_json::{Value, json};

use crate::support::app::{Options, spawn_app};
use crate::support::browser::{find, signed_in};
use crate::support::process::ServeProcess;
use crate::support::webhook_receiver::{Receiver, SECRET, webhook_config};

#[tokio::test]
async fn deliveries_are_signed_retried_after_a_500_and_in_order_per_app() {
    let (receiver, url) = Receiver::start(&[500], 200).await;
    let app = spawn_app(Options { extra_config: webhook_config(&url), ..Default::default() }).await;
    let (app_id, _) = app.create_card_app(1).await;
    let (status, _) = app
        .post(
            "/v2alpha/after_create_extend_order/do_extend_app",
            &json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"}),
        )
        .await;
    assert_eq!(status, 200);
    let delivered = receiver.wait_delivered(4).await;

    for r in receiver.seen() {
        let key = sign::standard_key(SECRET).unwrap();
        assert_eq!(r.webhook_id, r.event_id, "webhook-id is the event's id");
        assert!(
            sign::verify_standard(&key, &r.webhook_id, &r.timestamp, &r.signature, r.body.as_bytes(), unix_now(), 300),
            "signature of {}",
            r.event_id
        );
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["id"], r.event_id, "the body names its event");
        assert_eq!(body["data"]["app_id"], app_id.as_str());
        assert!(body["created_at"].is_i64() && body["data"]["team_id"] == app.team_id.as_str());
    }
    let all = receiver.seen();
    assert_eq!(all[0].answered, 500);
    assert_eq!(all[1].event_id, all[0].event_id, "the retry carries the same event id");
    assert_eq!(all[1].body, all[0].body);
    let types: Vec<String> = delivered
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["order.paid", "app.activated", "order.paid", "app.extended"], "each app's events in order");
    let attempts = outbox::attempts(app.db.store.pool(), &all[0].event_id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.1).collect::<Vec<_>>(), [Some(500), Some(200)], "every attempt recorded");
    app.stop().await;
}

#[tokio::test]
async fn a_400_is_not_retried_and_can_be_redelivered_by_the_admin() {
    let (receiver, url) = Receiver::start(&[400], 200).await;
    let app = spawn_app(Options { extra_config: webhook_config(&url), ..Default::default() }).await;
    app.create_card_app(1).await;
    receiver.wait_delivered(1).await; // app.activated goes on: a failed event does not block its app
    // Given up (no retry scheduled) is the outbox's decision, recorded: wait for it.
    let failed = wait_failed(&app, 1).await;
    let first = receiver.seen()[0].clone();
    assert_eq!(failed[0]["event_id"], first.event_id.as_str());
    assert_eq!(failed[0]["attempts"], 1, "given up on its first attempt: {failed:?}");
    assert_eq!(first.answered, 400);
    assert_eq!(receiver.seen().iter().filter(|r| r.event_id == first.event_id).count(), 1, "no retry after a 400");

    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(crate::support::app::ADMIN_TOKEN);
    let list: Value =
        admin(app.http.get(format!("{}/admin/webhooks", app.base))).send().await.unwrap().json().await.unwrap();
    let failed: Vec<&Value> =
        list["deliveries"].as_array().unwrap().iter().filter(|d| d["state"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["event_id"], first.event_id.as_str());
    let r =
        admin(app.http.post(format!("{}/admin/webhooks/{}/redeliver", app.base, first.event_id))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let delivered = receiver.wait_delivered(2).await;
    assert!(delivered.iter().any(|r| r.event_id == first.event_id), "redelivered");
    app.stop().await;
}

#[tokio::test]
async fn events_written_before_a_sigkill_are_delivered_after_restart() {
    let (receiver, url) = Receiver::start(&[], 503).await;
    let mut app = spawn_app(Options { extra_config: webhook_config(&url), ..Default::default() }).await;
    app.stop_server().await;
    let port = free_port().unwrap();
    let server = ServeProcess::start(&app.config_path, port).await;
    app.base = server.base.clone();
    let (app_id, _) = app.create_card_app(1).await;
    // An attempt has failed with 503 before the kill.
    let started = std::time::Instant::now();
    while !receiver.seen().iter().any(|r| r.answered == 503) {
        assert!(started.elapsed() < Duration::from_secs(30), "no attempt reached the receiver");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9().await;
    assert!(receiver.seen().iter().all(|r| r.answered == 503), "nothing was delivered before the kill");
    *receiver.fallback.lock().unwrap() = 200;
    let server = ServeProcess::start(&app.config_path, port).await;
    let delivered = receiver.wait_delivered(2).await;
    let types: Vec<String> = delivered
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["order.paid", "app.activated"]);
    assert!(
        delivered.iter().all(|r| serde_json::from_str::<Value>(&r.body).unwrap()["data"]["app_id"] == app_id.as_str())
    );
    server.kill9().await;
    app.stop().await;
}

async fn deliveries(app: &crate::support::app::TestApp) -> Vec<Value> {
    let r = app
        .http
        .get(format!("{}/admin/webhooks", app.base))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    list["deliveries"].as_array().unwrap().clone()
}

/// Waits until `n` deliveries are given up; returns those.
async fn wait_failed(app: &crate::support::app::TestApp, n: usize) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let failed: Vec<Value> = deliveries(app).await.into_iter().filter(|d| d["state"] == "failed").collect();
        if failed.len() >= n {
            return failed;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not given up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_all_failed(app: &crate::support::app::TestApp, n: usize) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let list = deliveries(app).await;
        if list.len() >= n && list.iter().all(|d| d["state"] == "failed") {
            return list;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not all given up: {list:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A redelivered event has its max_attempts again: a transient failure on redelivery is
/// retried, not given up at once.
#[tokio::test]
async fn a_redelivered_event_is_retried_after_a_transient_failure() {
    let (receiver, url) = Receiver::start(&[], 503).await;
    let config = webhook_config(&url).replace("max_attempts = 5", "max_attempts = 2");
    let app = spawn_app(Options { extra_config: config, ..Default::default() }).await;
    app.create_card_app(1).await;
    let failed = wait_all_failed(&app, 2).await;
    let event_id = failed[0]["event_id"].as_str().unwrap().to_string();
    let tries = |id: &str| receiver.seen().iter().filter(|r| r.event_id == id).count();
    assert_eq!(tries(&event_id), 2, "given up after max_attempts");

    // Redelivered: the first try fails again (503), the retry succeeds.
    *receiver.fallback.lock().unwrap() = 200;
    receiver.push_script(&[503]);
    let r = app
        .http
        .post(format!("{}/admin/webhooks/{event_id}/redeliver", app.base))
        .bearer_auth(crate::support::app::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].event_id, event_id, "delivered on its second try after the redelivery");
    assert_eq!(tries(&event_id), 4);
    app.stop().await;
}

/// A webhook URL may carry a secret: an unreachable one is shown as scheme and host only.
#[tokio::test]
async fn an_unreachable_webhook_url_is_never_shown_whole() {
    let port = free_port().unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/sk_live_secret_path?token=tok_secret");
    let config = webhook_config(&url).replace("max_attempts = 5", "max_attempts = 1");
    let app = spawn_app(Options { extra_config: config, ..Default::default() }).await;
    app.create_card_app(1).await;
    let failed = wait_all_failed(&app, 1).await;
    for d in &failed {
        let error = d["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("network"), "{d}");
        assert!(!error.contains("secret") && !error.contains("/hooks"), "the URL's path leaked: {error}");
    }
    app.stop().await;
}

/// SIGTERM ends `serve` within the request timeout plus 5 s even while a delivery pass is
/// stuck on a receiver that accepts and never answers (the webhook timeout is 60 s here).
#[tokio::test]
async fn sigterm_ends_serve_promptly_during_a_stuck_delivery() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // never answered, never closed
            let _ = accepted_tx.send(());
        }
    });
    let config = webhook_config(&url).replace("max_attempts = 5", "max_attempts = 5\ntimeout_ms = 60000");
    let mut app = spawn_app(Options {
        extra_config: config,
        config_edits: vec![("heartbeat_secs = 5", "heartbeat_secs = 5\nrequest_timeout_s = 2")],
        ..Default::default()
    })
    .await;
    app.stop_server().await;
    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    app.create_card_app(1).await;
    tokio::time::timeout(Duration::from_secs(30), accepted.recv()).await.expect("a delivery reached the receiver");
    let took = server.sigterm().await;
    assert!(took < Duration::from_secs(2 + 5), "serve took {took:?} to end after SIGTERM");
    app.stop().await;
}

/// A lost watcher lease stops deliveries at once: the attempt stuck on a receiver that never
/// answers (webhook timeout 60 s) is dropped as soon as the lease's session is gone.
#[tokio::test]
async fn a_lost_watcher_lease_drops_a_stuck_delivery_at_once() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = accepted_tx.send(());
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                // Read the request and never answer; report when the client hangs up.
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = closed_tx.send(());
            });
        }
    });
    let config = webhook_config(&url).replace("max_attempts = 5", "max_attempts = 5\ntimeout_ms = 60000");
    let app = spawn_app(Options { backend: "postgres", extra_config: config, ..Default::default() }).await;
    app.create_card_app(1).await;
    tokio::time::timeout(Duration::from_secs(30), accepted.recv()).await.expect("a delivery reached the receiver");
    // End the session that holds the watcher's advisory lock.
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
    .fetch_all(app.db.store.pool())
    .await
    .unwrap();
    assert_eq!(ended, vec![true], "one lease session ended");
    let dropped = tokio::time::timeout(Duration::from_secs(10), closed.recv()).await;
    assert!(dropped.is_ok(), "the stuck delivery was not dropped within 10 s of losing the lease");
    app.stop().await;
}

/// Standard Webhooks (issue 29): a receiver verifying with the `standardwebhooks` library (PyPI,
/// a real client) accepts every delivery, refuses a tampered body, an old timestamp and another
/// secret; while a secret is rotated out, each delivery is signed with both and either verifies.
#[tokio::test]
async fn the_standard_webhooks_library_verifies_deliveries_with_either_secret_during_a_rotation() {
    const OLD: &str = "whsec_b2xkIHNlY3JldCBiZWluZyByb3RhdGVkIG91dCEh";
    let (receiver, url) = Receiver::start(&[], 200).await;
    let config = webhook_config(&url) + &format!("previous_secrets = [\"{OLD}\"]\n");
    let app = spawn_app(Options { extra_config: config, ..Default::default() }).await;
    app.create_card_app(1).await;
    let delivered = receiver.wait_delivered(2).await;
    let cases: Vec<Value> = delivered
        .iter()
        .map(|r| {
            let headers =
                json!({"webhook-id": r.webhook_id, "webhook-timestamp": r.timestamp, "webhook-signature": r.signature});
            json!({"headers": headers, "body": r.body})
        })
        .collect();
    assert!(
        cases.iter().all(|c| c["headers"]["webhook-signature"].as_str().unwrap().split(' ').count() == 2),
        "{cases:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deliveries.json");
    std::fs::write(&path, serde_json::to_string(&cases).unwrap()).unwrap();
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/.venv/bin/python");
    assert!(std::path::Path::new(python).exists(), "{python} is needed: run `make pytools`");
    let script = r#"
import base64, json, sys, time
from standardwebhooks import Webhook, WebhookVerificationError
cases = json.load(open(sys.argv[1]))
new, old = sys.argv[2], sys.argv[3]
def refused(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
        return "accepted"
    except WebhookVerificationError as e:
        return str(e)
out = {name: sum(1 for c in cases if Webhook(s).verify(c["body"], c["headers"]) is not None) for name, s in (("new", new), ("old", old))}
c = cases[0]
out["tampered"] = refused(new, c["body"].replace("}", " }", 1), c["headers"])
stale = dict(c["headers"], **{"webhook-timestamp": str(int(time.time()) - 3600)})
out["old_timestamp"] = refused(new, c["body"], stale)
out["other_secret"] = refused("whsec_" + base64.b64encode(b"a secret nobody configured here").decode(), c["body"], c["headers"])
print(json.dumps(out))
"#;
    let run = std::process::Command::new(python)
        .args(["-c", script, path.to_str().unwrap(), SECRET, OLD])
        .output()
        .expect("python runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let out: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        (out["new"].as_u64(), out["old"].as_u64()),
        (Some(cases.len() as u64), Some(cases.len() as u64)),
        "{out}"
    );
    assert_eq!(out["tampered"], "No matching signature found", "{out}");
    assert_eq!(out["old_timestamp"], "Message timestamp too old", "{out}");
    assert_eq!(out["other_secret"], "No matching signature found", "{out}");
    app.stop().await;
}

/// The deprecated scheme, one release behind a switch: `Paywatch-Signature` as before.
#[tokio::test]
async fn the_deprecated_paywatch_signature_is_sent_when_configured() {
    let (receiver, url) = Receiver::start(&[], 200).await;
    let config = webhook_config(&url) + "signature_scheme = \"paywatch\"\n";
    let app = spawn_app(Options { extra_config: config, ..Default::default() }).await;
    app.create_card_app(1).await;
    for r in receiver.wait_delivered(2).await {
        assert!(r.webhook_id.is_empty(), "no Standard Webhooks headers in the old scheme");
        assert!(sign::verify(SECRET.as_bytes(), &r.signature, r.body.as_bytes(), unix_now(), 300), "{}", r.signature);
    }
    app.stop().await;
}

/// Delivery passes held back because the endpoint is disabled (this process's counter).
async fn held_passes(app: &crate::support::app::TestApp) -> f64 {
    let scrape = crate::support::metrics::scrape(app).await;
    scrape
        .samples
        .iter()
        .find(|s| s.metric == "paywatch_webhook_passes_held_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .unwrap_or(0.0)
}

/// A receiver answering 410 Gone disables the endpoint (Standard Webhooks): nothing more is
/// sent while the delivery loop runs and holds back, the events wait, the console says so, and
/// once re-enabled there every event arrives, in order per app, none lost.
#[tokio::test]
async fn a_410_disables_the_endpoint_until_the_console_re_enables_it() {
    let (receiver, url) = Receiver::start(&[410], 200).await;
    let app = spawn_app(Options { extra_config: webhook_config(&url), ..Default::default() }).await;
    let (app_id, _) = app.create_card_app(1).await;
    let started = std::time::Instant::now();
    let disabled = loop {
        let (status, body) = admin_get(&app, "/admin/webhooks").await;
        assert_eq!(status, 200, "{body}");
        if !body["endpoint_disabled"].is_null() {
            break body["endpoint_disabled"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the 410 never disabled the endpoint: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(disabled["reason"].as_str().unwrap().contains("410"), "{disabled}");
    assert_eq!(receiver.seen().len(), 1, "one request, answered 410");

    // More events while it is disabled; the loop runs (its held passes grow) and sends nothing.
    let extend = json!({"app_id": app_id, "period": 1, "pay_method": "CREDIT_CARD", "card_id": "pm_card_visa"});
    assert_eq!(app.post("/v2alpha/after_create_extend_order/do_extend_app", &extend).await.0, 200);
    let held = held_passes(&app).await;
    let started = std::time::Instant::now();
    while held_passes(&app).await < held + 5.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the delivery loop stopped running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.seen().len(), 1, "nothing is sent while the endpoint is disabled");

    // The console shows it and re-enables it.
    let browser = crate::support::browser::Browser::start(1280, 900).await;
    signed_in(&browser, &app).await;
    browser.client.goto(&format!("{}/console/webhooks", app.base)).await.unwrap();
    let alert = find(&browser, "#endpoint-disabled").await;
    assert!(alert.text().await.unwrap().contains("410 Gone"));
    crate::support::browser::accessible(&browser, "webhooks with the endpoint disabled").await;
    find(&browser, "#endpoint-disabled button").await.click().await.unwrap();
    let delivered = receiver.wait_delivered(4).await;
    let types: Vec<String> = delivered
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.body).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, ["order.paid", "app.activated", "order.paid", "app.extended"], "in order, none lost");
    assert!(admin_get(&app, "/admin/webhooks").await.1["endpoint_disabled"].is_null());
    browser.close().await;
    app.stop().await;
}

async fn admin_get(app: &crate::support::app::TestApp, path: &str) -> (u16, Value) {
    let r =
        app.http.get(format!("{}{path}", app.base)).bearer_auth(crate::support::app::ADMIN_TOKEN).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}
