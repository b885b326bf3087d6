//! Gasless payments over HTTP: the payer's signed EIP-3009 authorization for an order, relayed
//! by paywatch (`payments::gasless`). Public like the checkout page: the order id is the
//! capability, and the signature is the payer's consent.

use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::payments::gasless::{self, AuthorizationBody, SignedAuthorization};
use crate::payments::order_view;
use crate::store::gasless::GaslessPayment;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AuthorizationRequest {
    /// The chain of the pay option (one of the order's `options`).
    pub chain_id: u64,
    /// The token contract of that option.
    pub token: String,
    /// The `TransferWithAuthorization` the payer signed (EIP-712, the token's domain).
    pub authorization: AuthorizationBody,
    /// The payer's signature: 65 bytes (r, s, v) from an EOA, or a contract wallet's (EIP-1271).
    pub signature: String,
}

#[utoipa::path(
    post, path = "/pay/{order_id}/authorization", operation_id = "pay_with_authorization", tag = "checkout",
    summary = "Pay without gas: a signed EIP-3009 transfer to the order's deposit address, sent by the relayer",
    description = "Checked before anything is sent (the order's option, its deposit address, at most what remains, \
                   valid by the chain's clock until at most the order's expiry plus its late window, the signature, \
                   the nonce, the payer's balance, the call simulated); recorded before its broadcast, so the same \
                   authorization again (or from another process) answers the same transaction. The watcher credits \
                   the Transfer like any other payment.",
    params(("order_id" = String, Path)), request_body = AuthorizationRequest,
    responses((status = 200, body = GaslessPayment), super::error::responses::PublicPayment)
)]
pub async fn pay_with_authorization(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    ApiJson(body): ApiJson<AuthorizationRequest>,
) -> Result<axum::Json<GaslessPayment>, ApiError> {
    let token = body.token.trim().parse().map_err(|_| ApiError::invalid("token", "must be 0x and 40 hex digits"))?;
    let heads = state.chains.heads_or_ask().await;
    let order = order_view::load(&state.store, &state.config, &heads, None, &order_id)
        .await?
        .ok_or(ApiError::NotFound("order"))?;
    let signed = SignedAuthorization {
        chain_id: body.chain_id,
        token,
        authorization: body.authorization,
        signature: body.signature,
    };
    Ok(axum::Json(gasless::relay(&state.store, &state.config, &order, &signed).await?))
}
