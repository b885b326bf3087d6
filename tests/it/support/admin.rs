//! The admin API as tests call it: stray funds, and a Safe that sends refunds.

use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use alloy::signers::local::PrivateKeySigner;
use paywatch::money::Token;
use serde_json::Value;

use super::app::{ADMIN_TOKEN as ADMIN, TestApp};
use super::chain::Mined;

/// An admin API call with the test token; the status and the JSON answer (null when none).
pub async fn admin(app: &TestApp, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(ADMIN);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `GET /admin/funds{query}`: the stray funds listed.
pub async fn funds(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, body) = admin(app, reqwest::Method::GET, &format!("/admin/funds{query}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["funds"].as_array().unwrap().clone()
}

/// The operator's Safe, played by a key of the test's own: gas and 100 of each token.
pub async fn fund_safe(app: &TestApp, safe: &PrivateKeySigner) {
    app.chain.deployer.anvil_set_balance(safe.address(), U256::from(10u64).pow(U256::from(19u64))).await.unwrap();
    paywatch::devnet::fund(&app.chain.deployer, &app.chain.deployment, safe.address(), 100).await.unwrap();
}

/// `safe` sends `amount` USDT to `to`; its hash. `doomed`: the Safe is blacklisted first and the
/// transfer left pending with automine off (its gas fixed: an estimate would refuse it), so it
/// is recorded while pending and reverts once mined; the caller turns automine back on.
pub async fn safe_sends(
    app: &TestApp,
    safe: &PrivateKeySigner,
    to: Address,
    amount: U256,
    doomed: bool,
) -> alloy::primitives::B256 {
    let token = app.chain.token(Token::UsdtErc20);
    let data = paywatch::chain::contracts::IERC20::transferCall { to, value: amount };
    let mut request = alloy::rpc::types::TransactionRequest::default()
        .to(token)
        .input(alloy::primitives::Bytes::from(alloy::sol_types::SolCall::abi_encode(&data)).into());
    if doomed {
        let payer = paywatch::chain::contracts::MockUSDT::new(token, app.payer.clone());
        payer.addBlackList(safe.address()).mined().await;
        app.chain.deployer.anvil_set_auto_mine(false).await.unwrap();
        request = request.gas_limit(200_000);
    }
    let signer = paywatch::chain::rpc::signing_provider(&app.chain.anvil.rpc_url(), safe.clone()).unwrap();
    let pending = signer.send_transaction(request).await.unwrap();
    let hash = *pending.tx_hash();
    if !doomed {
        pending.get_receipt().await.unwrap();
    }
    hash
}
