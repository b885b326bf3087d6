//! The thirty-payment run shared by the chain-truth and untrusted-RPC tests: orders paid whole,
//! in two transactions, or twice in one, each credited once whatever the RPC does.

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use paywatch::chain::contracts::MockUSDT;
use paywatch::chain::rpc;
use paywatch::devnet::anvil::accounts;
use paywatch::money::Token;
use paywatch::payments::calendar::add_months;
use paywatch::store::outbox;

use super::app::TestApp;
use super::watch::wait_processed_to;

/// How an order is paid in the 30-payment runs.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Whole,
    /// Half, then the rest in a second transaction.
    Partial,
    /// Half and the rest as two transfers in one transaction.
    TwoInOneTx,
}

struct Paying {
    app_id: String,
    order_id: String,
    transfers: i64,
}

/// Two transfers to `to` in one transaction (the mock tokens' multiTransfer).
async fn pay_twice_in_one_tx(app: &TestApp, token: Token, to: Address, first: U256, second: U256) {
    let payer =
        rpc::signing_provider(&app.chain.anvil.rpc_url(), accounts::PAYER_KEY.parse::<PrivateKeySigner>().unwrap())
            .unwrap();
    let address = app.chain.token(token);
    // Both mocks have this multiTransfer, returning nothing.
    let pending = MockUSDT::new(address, payer).multiTransfer(vec![to, to], vec![first, second]).send().await;
    assert!(pending.unwrap().get_receipt().await.unwrap().status(), "multiTransfer succeeded");
}

/// 30 payments of both tokens, partials and two transfers in one transaction among them: each
/// order credited exactly once. `mode` names the endpoint's behaviour in failure messages;
/// `lag` is how many blocks the node answering logs stays behind (the blocks mined after the
/// payments so that it has them).
pub async fn thirty_payments_on(app: TestApp, mode: &str, lag: u64) {
    let mut paying = Vec::new();
    for i in 0..30 {
        let (token, method) =
            if i % 2 == 0 { (Token::AnkrErc20, "ANKR_ERC20") } else { (Token::UsdtErc20, "USDT_ERC20") };
        let shape = match i % 5 {
            0 => Shape::Partial,
            1 => Shape::TwoInOneTx,
            _ => Shape::Whole,
        };
        let (app_id, order_id, address, owed) = app.create_crypto_app(method, 1).await;
        let half = owed / U256::from(2);
        let transfers = match shape {
            Shape::Whole => {
                app.pay(token, address, owed).await;
                1
            }
            Shape::Partial => {
                app.pay(token, address, half).await;
                app.pay(token, address, owed - half).await;
                2
            }
            Shape::TwoInOneTx => {
                pay_twice_in_one_tx(&app, token, address, half, owed - half).await;
                2
            }
        };
        paying.push(Paying { app_id, order_id, transfers });
    }
    app.mine(2 + lag).await;
    for p in &paying {
        app.wait_order(&p.order_id, 120, |o| {
            o["status"] == "paid" && o["payments"].as_array().unwrap().len() as i64 == p.transfers
        })
        .await;
    }
    // Settled: nothing more may arrive. Go past the depth and let the watcher catch up.
    app.mine(3).await;
    wait_processed_to(&app, app.head().await - lag, 120).await;
    let pool = app.db.store.pool();
    for p in &paying {
        let status = app.app_status(&p.app_id).await;
        let start = status["app_start_time"].as_i64().unwrap();
        assert_eq!(status["app_end_time"].as_i64().unwrap(), add_months(start, 1), "{mode:?}: {} one period", p.app_id);
        assert_eq!(
            crate::support::db::deposits_for_order(&app.db.store, &p.order_id).await,
            1,
            "{mode:?}: {} once",
            p.order_id
        );
        // A partial payment confirmed before its rest says so once; the rest is written once.
        let events = outbox::types_for_app(pool, &p.app_id).await.unwrap();
        let partial = events.iter().filter(|e| *e == "order.partially_paid").count();
        let settled: Vec<&String> = events.iter().filter(|e| *e != "order.partially_paid").collect();
        assert!(
            partial <= 1 && settled == ["order.paid", "app.activated"],
            "{mode:?}: {} events: {events:?}",
            p.app_id
        );
        let order = app.order(&p.order_id).await;
        assert_eq!(order["confirmed"], order["expected"], "{mode:?}: {order:#}");
        assert!(order["payments"].as_array().unwrap().iter().all(|t| t["block_time"].as_i64().is_some()));
    }
    let transfers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chain_transfers").fetch_one(pool).await.unwrap();
    assert_eq!(transfers, paying.iter().map(|p| p.transfers).sum::<i64>(), "{mode:?}: each transfer recorded once");
    app.stop().await;
}
