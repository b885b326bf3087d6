//! x402 version 1, the "exact" scheme on EVM: a program pays an order over HTTP. Asked without
//! `X-PAYMENT`, `GET /pay/{order_id}/x402` answers 402 with one payment requirement per chain of
//! the order whose token takes EIP-3009 authorizations (and whose chain names its
//! `x402_network`); asked again with the client's signed authorization in `X-PAYMENT`, paywatch
//! relays it as `POST /pay/{order_id}/authorization` would, waits for it to be mined, and answers
//! 200 with the order and `X-PAYMENT-RESPONSE`. A paid order answers 200 with nothing to pay.

use std::time::{Duration, Instant};

use alloy::primitives::Address;
use alloy::providers::Provider;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::ApiPath;
use crate::payments::LedgerError;
use crate::payments::gasless::{self, AuthorizationBody, SignedAuthorization};
use crate::payments::order_view::{self, OrderView};

/// How long a signed payment may take to land: the authorization's validity the client signs.
const TIMEOUT_SECS: u64 = 300;
/// How long the answer waits for the relayer's transaction to be mined.
const SETTLE_WAIT: Duration = Duration::from_secs(30);

/// The client's `X-PAYMENT` (base64 JSON).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PaymentHeader {
    x402_version: u64,
    scheme: String,
    network: String,
    payload: ExactPayload,
}

#[derive(Debug, Deserialize)]
struct ExactPayload {
    signature: String,
    authorization: AuthorizationBody,
}

/// One way to pay: (chain id, token, the requirement as x402 writes it).
type Requirement = (u64, Address, Value);

#[utoipa::path(
    get, path = "/pay/{order_id}/x402", operation_id = "pay_with_x402", tag = "checkout",
    summary = "Pay an order with x402 (version 1, scheme exact, EVM): 402 with the requirements, or pay with X-PAYMENT",
    params(("order_id" = String, Path), ("X-PAYMENT" = Option<String>, Header, description = "base64 JSON: the signed EIP-3009 authorization")),
    responses(
        (status = 200, description = "Paid (or paid before): the order; X-PAYMENT-RESPONSE names the transaction", body = OrderView),
        (status = 402, description = "Payment required: `accepts` lists what pays the order (empty when nothing can), `error` says why", body = Object),
        (status = 404, description = "No such order", body = super::error::ErrorBody),
        (status = 503, description = "The node or the database is unavailable", body = super::error::ErrorBody)
    )
)]
pub async fn pay_with_x402(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let heads = state.chains.heads_or_ask().await;
    let order = order_view::load(&state.store, &state.config, &heads, None, &order_id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    if order.status == "paid" {
        return Ok(axum::Json(order).into_response());
    }
    let resource = resource_url(&headers, &order_id);
    let accepts = requirements(&state, &order, &resource).await?;
    let Some(header) = headers.get("x-payment") else {
        let why = if order.options.is_empty() {
            format!("the order is {}: there is nothing to pay", order.status)
        } else if accepts.is_empty() {
            "no chain of this order takes x402 payments (a token with authorizations and an x402_network)".into()
        } else {
            "X-PAYMENT header is required".into()
        };
        return Ok(payment_required(&why, &accepts));
    };
    let payment = match decode(header) {
        Ok(p) => p,
        Err(why) => return Ok(payment_required(&why, &accepts)),
    };
    let Some((chain_id, token, _)) = accepts.iter().find(|(_, _, r)| r["network"] == payment.network.as_str()) else {
        return Ok(payment_required(&format!("network {:?} is not one this order takes", payment.network), &accepts));
    };
    let signed = SignedAuthorization {
        chain_id: *chain_id,
        token: *token,
        authorization: payment.payload.authorization,
        signature: payment.payload.signature,
    };
    let sent = match gasless::relay(&state.store, &state.config, &order, &signed).await {
        Ok(sent) => sent,
        Err(LedgerError::Unavailable(why)) => return Err(ApiError::Unavailable(why)),
        Err(LedgerError::Store(e)) => return Err(e.into()),
        Err(refused) => return Ok(payment_required(&refused.to_string(), &accepts)),
    };
    if let Some(false) = mined(&state, &sent).await {
        return Ok(payment_required("the chain refused the transfer", &accepts));
    }
    let settled = json!({
        "success": true,
        "transaction": sent.tx_hash,
        "network": payment.network,
        "payer": sent.payer,
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(settled.to_string());
    let order = order_view::load(&state.store, &state.config, &heads, None, &order_id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    let mut answer = axum::Json(order).into_response();
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        answer.headers_mut().insert("x-payment-response", value);
        answer.headers_mut().insert("access-control-expose-headers", HeaderValue::from_static("X-PAYMENT-RESPONSE"));
    }
    Ok(answer)
}

fn payment_required(why: &str, accepts: &[Requirement]) -> Response {
    let accepts: Vec<&Value> = accepts.iter().map(|(_, _, r)| r).collect();
    (StatusCode::PAYMENT_REQUIRED, axum::Json(json!({"x402Version": 1, "error": why, "accepts": accepts})))
        .into_response()
}

fn decode(header: &HeaderValue) -> Result<PaymentHeader, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(header.as_bytes())
        .map_err(|_| "X-PAYMENT is not base64".to_string())?;
    let payment: PaymentHeader =
        serde_json::from_slice(&bytes).map_err(|e| format!("X-PAYMENT is not an x402 payment: {e}"))?;
    if payment.x402_version != 1 || payment.scheme != "exact" {
        return Err("only x402Version 1 with the exact scheme is taken".into());
    }
    Ok(payment)
}

/// The URL the client asked (x402 names the resource it pays for).
fn resource_url(headers: &HeaderMap, order_id: &str) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()).unwrap_or("http");
    format!("{scheme}://{host}/pay/{order_id}/x402")
}

/// Every option of the order an x402 client can pay: its token takes authorizations and its
/// chain has an `x402_network`.
async fn requirements(state: &AppState, order: &OrderView, resource: &str) -> Result<Vec<Requirement>, ApiError> {
    let mut accepts = Vec::new();
    for option in &order.options {
        let Ok(token) = option.token.parse::<Address>() else { continue };
        let Some(network) = state.config.x402_network(option.chain_id, token) else { continue };
        let Some(chain) = state.config.chain_by_id(option.chain_id) else { continue };
        let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls())
            .map_err(|e| ApiError::Unavailable(crate::redact::error(&e)))?;
        let domain = gasless::domain(&state.config, &provider, option.chain_id, token).await.map_err(|e| match e {
            LedgerError::Store(e) => ApiError::from(e),
            other => ApiError::Unavailable(other.to_string()),
        })?;
        let requirement = json!({
            "scheme": "exact",
            "network": network,
            "maxAmountRequired": option.amount_base,
            "resource": resource,
            "description": format!("Order {} ({} USD)", order.order_id, order.usd),
            "mimeType": "application/json",
            "payTo": order.address,
            "maxTimeoutSeconds": TIMEOUT_SECS,
            "asset": option.token,
            "extra": {"name": domain.name, "version": domain.version},
        });
        accepts.push((option.chain_id, token, requirement));
    }
    Ok(accepts)
}

/// Whether the relayer's transaction was mined successfully (None: not within the wait; it
/// is recorded and followed, and the order shows it).
async fn mined(state: &AppState, sent: &crate::store::gasless::GaslessPayment) -> Option<bool> {
    let chain = state.config.chain_by_id(sent.chain_id as u64)?;
    let provider = crate::chain::rpc::provider(chain.config.rpc_http.urls()).ok()?;
    let hash = sent.tx_hash.parse().ok()?;
    let started = Instant::now();
    while started.elapsed() < SETTLE_WAIT {
        if let Ok(Some(receipt)) = provider.get_transaction_receipt(hash).await {
            return Some(receipt.status());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}
