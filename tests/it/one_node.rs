//! An endpoint its operator declares to keep every call of a batch on one node (`rpc_batches =
//! "one_node"`): the watcher believes a range on one batch of its two end headers and its logs
//! (`one_node::verify_tied`). Every payment is still credited once (behind a node lagging on
//! every call, a payment mined again lower after a reorg), a payment between a range's ends
//! takes its block's time, and a catch-up reads two headers a range instead of one a block.

use paywatch::devnet::anvil::free_port;
use paywatch::money::Token;

use crate::support::app::{Options, spawn_app};
use crate::support::process::ServeProcess;
use crate::support::rpc_proxy::Mode;
use crate::support::thirty_payments::thirty_payments_on;
use crate::support::watch::wait_processed;

/// The config edit that declares the test chain's endpoint one node.
const ONE_NODE: (&str, &str) = ("[chain]\n", "[chain]\nrpc_batches = \"one_node\"\n");

async fn thirty_payments_behind_one_lagging_node(backend: &'static str) {
    let app = spawn_app(Options {
        backend,
        confirmations: 2,
        proxy: Some(Mode::LaggingNode { lag: 3 }),
        poll_interval_ms: 200,
        config_edits: vec![ONE_NODE],
        ..Default::default()
    })
    .await;
    thirty_payments_on(app, &format!("one node lagging 3 blocks on {backend}"), 3).await;
}

on_both_backends!(behind_one_node_lagging_on_every_call_each_payment_is_credited_once => thirty_payments_behind_one_lagging_node);

async fn mined_again_lower(backend: &'static str) {
    crate::chain_truth::a_payment_mined_again_lower_after_a_reorg_with(backend, vec![ONE_NODE]).await
}

on_both_backends!(a_payment_mined_again_lower_after_a_reorg_is_credited_once_on_one_node => mined_again_lower);

/// Three payments 100 blocks apart, made while paywatch is down, then `paywatch serve` catching
/// up through a counting proxy: every order paid once, each transfer stamped with its own
/// block's time (the block lies between the range's two headers when tied), and the header-only
/// batches counted: one per 50 blocks when not tied, at most the payments' own blocks' when tied.
async fn catch_up(tied: bool) -> u64 {
    let edits = if tied { vec![ONE_NODE] } else { vec![] };
    let mut app = spawn_app(Options {
        proxy: Some(Mode::Honest),
        poll_interval_ms: 200,
        config_edits: edits,
        ..Default::default()
    })
    .await;
    wait_processed(&app, 30).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(app.create_crypto_app("USDT_ERC20", 1).await);
    }
    app.stop_server().await;
    let start = app.head().await;
    for (_, _, address, owed) in &orders {
        app.mine(100).await;
        app.pay(Token::UsdtErc20, *address, *owed).await;
    }
    app.mine(100).await;
    let blocks = app.head().await - start;
    let proxy = app.proxy.take().unwrap();
    let before = proxy.header_batches();
    let server = ServeProcess::start(&app.config_path, free_port().unwrap()).await;
    app.base = server.base.clone();
    wait_processed(&app, 60).await;
    for (_, order_id, _, _) in &orders {
        app.wait_order(order_id, 30, |o| o["status"] == "paid").await;
        assert_eq!(crate::support::db::deposits_for_order(&app.db.store, order_id).await, 1, "{order_id} once");
        let (block, time): (i64, Option<i64>) =
            sqlx::query_as("SELECT block_number, block_time FROM chain_transfers WHERE order_id = $1")
                .bind(order_id)
                .fetch_one(app.db.store.pool())
                .await
                .unwrap();
        let header = alloy::providers::Provider::get_block_by_number(&app.chain.deployer, (block as u64).into())
            .await
            .unwrap()
            .expect("the payment's block");
        assert_eq!(time, Some(header.header.timestamp as i64), "tied {tied}: the transfer carries its block's time");
        assert!(block as u64 > start + 1 && (block as u64) < start + blocks, "the payment lies between the ends");
    }
    let batches = proxy.header_batches() - before;
    drop(server);
    drop(proxy);
    app.stop().await;
    assert!(blocks >= 300, "{blocks} blocks caught up");
    batches
}

#[tokio::test]
async fn a_catch_up_on_one_node_reads_two_headers_a_range_not_one_a_block() {
    let any = catch_up(false).await;
    let tied = catch_up(true).await;
    assert!(any >= 300 / 50, "routing-proof: every header of the range, in batches of 50 ({any} batches)");
    // Tied, the range's two end headers ride with its eth_getLogs; the one header-only batch
    // left is the three payments' own blocks, read for their times.
    assert!(tied <= 1, "one node: {tied} header batches for {any} when every header is read");
}
