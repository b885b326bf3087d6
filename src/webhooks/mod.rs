//! Webhook delivery from the outbox. Events are written in the transaction that causes them;
//! this task sends them, signed, oldest first and in order per app, retrying with
//! exponential backoff and jitter on network errors, timeouts, 408, 429 and 5xx (honouring
//! Retry-After), never on other 4xx, and recording every attempt. Only the watcher-lease
//! holder delivers, so processes sharing a database do not send twice. A receiver answering
//! 410 Gone disables the endpoint (Standard Webhooks' convention): nothing more is sent until
//! an operator re-enables it, and the events wait in the outbox, in order.

pub mod sign;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::chain::status::ChainStatus;
use crate::config::WebhooksConfig;
use crate::store::outbox::{self, AttemptResult, PendingEvent};
use crate::store::webhook_endpoint;
use crate::store::{Store, StoreResult, unix_now};

const BATCH: i64 = 50;
const MAX_BACKOFF_MS: u64 = 3_600_000;

pub async fn run(
    store: Store,
    config: Arc<crate::config::Config>,
    status: Arc<ChainStatus>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(hooks) = config.webhooks.as_ref() else {
        shutdown.cancelled().await;
        return Ok(());
    };
    let client = reqwest::Client::builder().timeout(Duration::from_millis(hooks.timeout_ms)).build()?;
    let tick = Duration::from_millis(hooks.poll_interval_ms);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
        if !status.is_leader() {
            continue;
        }
        // A pass can be 50 slow receivers long: shutdown and a lost lease end it at once. An
        // attempt cut off is not recorded and is made again (receivers deduplicate on id).
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = status.leadership_lost() => {}
            result = deliver_due(&store, &client, hooks) => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "webhook delivery pass failed; next pass retries");
                }
            }
        }
    }
}

/// Sends every event due now; returns how many were attempted.
pub async fn deliver_due(store: &Store, client: &reqwest::Client, hooks: &WebhooksConfig) -> StoreResult<usize> {
    if let Some(off) = webhook_endpoint::disabled(store.pool(), &hooks.url).await? {
        metrics::gauge!(crate::telemetry::WEBHOOK_ENDPOINT_DISABLED).set(1.0);
        metrics::counter!(crate::telemetry::WEBHOOK_PASSES_HELD).increment(1);
        tracing::debug!(since = off.disabled_at, "webhook endpoint disabled; events wait");
        return Ok(0);
    }
    metrics::gauge!(crate::telemetry::WEBHOOK_ENDPOINT_DISABLED).set(0.0);
    let due = outbox::due(store.pool(), unix_now(), BATCH).await?;
    for (sent, event) in due.iter().enumerate() {
        if deliver(store, client, hooks, event).await? == Endpoint::Gone {
            return Ok(sent + 1);
        }
    }
    Ok(due.len())
}

/// What an attempt said of the endpoint itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Live,
    /// It answered 410 Gone: disabled now.
    Gone,
}

async fn deliver(
    store: &Store,
    client: &reqwest::Client,
    hooks: &WebhooksConfig,
    event: &PendingEvent,
) -> StoreResult<Endpoint> {
    let attempt = event.attempts + 1;
    // A redelivered event gets its max_attempts again.
    let this_round = attempt - event.attempts_before_redelivery;
    let now = unix_now();
    let started = Instant::now();
    let mut request =
        client.post(&hooks.url).header("content-type", "application/json").header("Paywatch-Event-Id", &event.event_id);
    request = match hooks.signature_scheme.as_str() {
        "paywatch" => request.header(
            "Paywatch-Signature",
            sign::signature(hooks.secret.expose_secret().as_bytes(), now, event.payload.as_bytes()),
        ),
        // Checked when the config loaded.
        _ => {
            let keys = hooks.signing_keys().unwrap_or_default();
            request.header("webhook-id", &event.event_id).header("webhook-timestamp", now.to_string()).header(
                "webhook-signature",
                sign::standard_signature(&keys, &event.event_id, now, event.payload.as_bytes()),
            )
        }
    };
    let response = request.body(event.payload.clone()).send().await;
    let duration_ms = started.elapsed().as_millis() as i64;
    let (status_code, error, retry_after) = match &response {
        Ok(r) => {
            let retry_after =
                r.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
            let error = (!r.status().is_success()).then(|| format!("HTTP {}", r.status().as_u16()));
            (Some(r.status().as_u16()), error, retry_after)
        }
        // reqwest names the URL in its errors; the URL may carry a secret, so keep scheme and host.
        Err(e) if e.is_timeout() => (None, Some("timeout".to_string()), None),
        Err(e) => (None, Some(format!("network: {}", crate::chain::rpc::describe(&format!("{e:#}")))), None),
    };
    let gone = status_code == Some(410);
    let result = match status_code {
        Some(code) if (200..300).contains(&code) => AttemptResult::Delivered,
        // The event waits, pending, for the endpoint to be re-enabled.
        _ if gone => AttemptResult::RetryAt(now),
        Some(code) if !retryable(code) => AttemptResult::GiveUp,
        _ if this_round >= i64::from(hooks.max_attempts) => AttemptResult::GiveUp,
        _ => AttemptResult::RetryAt(now + backoff_secs(hooks.retry_base_ms, this_round, retry_after)),
    };
    let result_label = match result {
        AttemptResult::Delivered => "delivered",
        AttemptResult::RetryAt(_) => "retry",
        AttemptResult::GiveUp => "given_up",
    };
    metrics::counter!(crate::telemetry::WEBHOOK_DELIVERIES, "result" => result_label).increment(1);
    if let AttemptResult::GiveUp = result {
        metrics::counter!(crate::telemetry::WEBHOOK_FAILURES).increment(1);
        tracing::warn!(event_id = event.event_id, attempt, error = ?error, "webhook given up; redeliver from the admin API");
    }
    let mut tx = store.begin().await?;
    let record = outbox::Attempt {
        event_id: &event.event_id,
        attempt,
        at: now,
        status_code,
        error: error.as_deref(),
        duration_ms,
    };
    outbox::record_attempt(&mut tx, &record, result).await?;
    if gone {
        webhook_endpoint::disable(&mut *tx, &hooks.url, "the receiver answered 410 Gone").await?;
        tracing::error!(
            event_id = event.event_id,
            "webhook receiver answered 410 Gone: endpoint disabled until re-enabled"
        );
    }
    tx.commit().await?;
    Ok(if gone { Endpoint::Gone } else { Endpoint::Live })
}

/// Network errors and timeouts (no status), 408, 429 and 5xx are worth another try.
fn retryable(code: u16) -> bool {
    code == 408 || code == 429 || code >= 500
}

/// base × 2^(attempt−1), ±25% jitter, at least Retry-After, capped at an hour; in whole
/// seconds (rounded up) because the outbox schedules in unix seconds.
fn backoff_secs(base_ms: u64, attempt: i64, retry_after_secs: Option<u64>) -> i64 {
    let exp = base_ms.saturating_mul(1u64 << (attempt - 1).clamp(0, 30) as u32).min(MAX_BACKOFF_MS);
    let jittered = (exp as f64 * rand::rng().random_range(0.75..1.25)) as u64;
    let ms = jittered.max(retry_after_secs.unwrap_or(0).saturating_mul(1000)).min(MAX_BACKOFF_MS);
    ms.div_ceil(1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_honours_retry_after_and_is_capped() {
        for _ in 0..100 {
            assert!((1..=2).contains(&backoff_secs(1000, 1, None)));
            assert!((6..=10).contains(&backoff_secs(1000, 4, None)));
        }
        assert_eq!(backoff_secs(1000, 1, Some(120)), 120);
        for _ in 0..100 {
            let capped = backoff_secs(1000, 40, None);
            assert!((2700..=3600).contains(&capped), "never past an hour, jittered below it: {capped}");
        }
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for code in [408, 429, 500, 502, 503] {
            assert!(retryable(code), "{code}");
        }
        for code in [400, 401, 404, 410, 422] {
            assert!(!retryable(code), "{code}");
        }
    }
}
