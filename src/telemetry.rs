//! Prometheus metrics. Counters and histograms are recorded where things happen (the watcher,
//! crediting, webhook delivery, the HTTP layer); gauges that describe state (chain head, lag,
//! orders by status, price age) are read when `/metrics` is scraped, so they are never stale.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const LOGS_SCANNED: &str = "paywatch_logs_scanned_total";
pub const TRANSFERS_MATCHED: &str = "paywatch_transfers_matched_total";
/// getLogs answers not believed: the node that answered did not have the range's last block.
pub const UNTRUSTED_ANSWERS: &str = "paywatch_untrusted_log_answers_total";
/// Logs refused: `removed: true`, or not in their block's `logsBloom`.
pub const REFUSED_LOGS: &str = "paywatch_refused_logs_total";
/// Transfer logs to a deposit address that lack the ERC20 shape, skipped.
pub const MALFORMED_LOGS: &str = "paywatch_malformed_transfer_logs_total";
pub const PAYMENTS_CREDITED: &str = "paywatch_payments_credited_total";
/// Credited payments a reorg deeper than the confirmations took back.
pub const PAYMENTS_REVERSED: &str = "paywatch_payments_reversed_total";
pub const WEBHOOK_DELIVERIES: &str = "paywatch_webhook_deliveries_total";
pub const WEBHOOK_FAILURES: &str = "paywatch_webhook_failures_total";
pub const WEBHOOK_ENDPOINT_DISABLED: &str = "paywatch_webhook_endpoint_disabled";
pub const WEBHOOK_PASSES_HELD: &str = "paywatch_webhook_passes_held_total";
pub const CARD_REFUNDS: &str = "paywatch_card_refunds_total";
/// Deposit addresses whose transfer reverted inside a sweep.
pub const SWEEP_FAILURES: &str = "paywatch_sweep_address_failures_total";
/// Deposit addresses that failed to sweep several times in a row (gauge, as of the last run).
pub const SWEEP_STUCK: &str = "paywatch_sweep_stuck_addresses";
/// Deposit addresses whose balance differed from the ledger at the last reconciliation.
pub const RECONCILIATION_DIFFERENCES: &str = "paywatch_reconciliation_differences";
/// Sweeps whose receipt moved another amount than the ledger expected.
pub const SWEEP_MISMATCHES: &str = "paywatch_sweep_mismatches_total";
pub const HTTP_REQUESTS: &str = "paywatch_http_requests_total";
/// The relayer's balance of each chain's coin (whole coins), by chain id.
pub const RELAYER_BALANCE: &str = "paywatch_relayer_balance";
pub const HTTP_DURATION: &str = "paywatch_http_request_duration_seconds";

const HTTP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide recorder, installed on first use (metrics are global to a process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), HTTP_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, and then ours still renders what it has.
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics shows only state gauges");
        }
        register_descriptions();
        handle
    })
}

fn register_descriptions() {
    metrics::describe_counter!(LOGS_SCANNED, "ERC20 Transfer logs read from the node");
    metrics::describe_counter!(TRANSFERS_MATCHED, "Transfers to a deposit address, recorded");
    metrics::describe_counter!(
        UNTRUSTED_ANSWERS,
        "getLogs answers that did not prove every block asked (a block whose bloom may hold a transfer without its logs)"
    );
    metrics::describe_counter!(REFUSED_LOGS, "Logs refused: removed, or not in their block's bloom");
    metrics::describe_counter!(PAYMENTS_CREDITED, "Orders paid in full, by pay method");
    metrics::describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by result");
    metrics::describe_counter!(WEBHOOK_FAILURES, "Webhook events given up after their last attempt");
    metrics::describe_gauge!(
        WEBHOOK_ENDPOINT_DISABLED,
        "1 while the webhook endpoint is disabled (it answered 410 Gone)"
    );
    metrics::describe_counter!(
        WEBHOOK_PASSES_HELD,
        "Delivery passes that sent nothing because the endpoint is disabled"
    );
    metrics::describe_counter!(CARD_REFUNDS, "Card charges given back because their order could not be recorded");
    metrics::describe_counter!(SWEEP_FAILURES, "Deposit addresses whose transfer reverted inside a sweep");
    metrics::describe_gauge!(SWEEP_STUCK, "Deposit addresses that failed to sweep 3 times in a row");
    metrics::describe_counter!(SWEEP_MISMATCHES, "Sweeps that moved another amount than the ledger expected");
    metrics::describe_gauge!(
        RECONCILIATION_DIFFERENCES,
        "Deposit addresses whose balance differed from the ledger at the last reconciliation"
    );
    metrics::describe_counter!(MALFORMED_LOGS, "Transfer logs to a deposit address without the ERC20 shape, skipped");
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests, by route, method and status");
    metrics::describe_gauge!(
        RELAYER_BALANCE,
        "The gasless payments' relayer's balance of the chain's coin (whole coins), by chain id"
    );
    metrics::describe_histogram!(HTTP_DURATION, metrics::Unit::Seconds, "HTTP request latency, by route and method");
}

/// Route layer: counts each request and its latency under its route template, not its path,
/// so ids do not explode the label set.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| route_label(p.as_str())).unwrap_or_default();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    response
}

/// `/teams/{team_id}` becomes `/teams/:team_id`: braces inside label values trip up some
/// exposition parsers, and the colon form is what dashboards commonly show.
fn route_label(template: &str) -> String {
    template.replace('{', ":").replace('}', "")
}

pub fn payments_credited(method: &'static str, orders: usize) {
    metrics::counter!(PAYMENTS_CREDITED, "method" => method).increment(orders as u64);
}
