//! Catching up, a step reads the next range while it commits its own (`watcher::ahead`). That
//! answer is older than the step that uses it: a reorg in between must end as any reorg does,
//! every payment credited once, at its canonical height.

use std::sync::Arc;

use alloy::providers::Provider;
use alloy::providers::ext::AnvilApi;
use paywatch::chain::rpc;
use paywatch::chain::status::ChainStatus;
use paywatch::config::Config;
use paywatch::store::cursor;
use paywatch::watcher::Watcher;

use crate::chain_truth::signed_payer_usdt_transfer;
use crate::support::app::{Options, spawn_app};
use crate::support::watch::wait_processed;

/// The watcher 1,016 blocks behind, a payment at c+1,012 (in its second range). The first step
/// commits c+1..c+1,000 and reads c+1,001..c+1,016 ahead. Then the chain is reorganised 6
/// blocks deep (shallower than the 12 confirmations): the same transaction is mined again at
/// c+1,011 and the chain grows past the old head. The second step takes the answer it read
/// ahead (it links to its cursor, c+1,000, untouched): the payment recorded as seen at c+1,012
/// on the old fork, nothing credited, as a step whose fetch raced the reorg would. The next
/// steps find the fork gone, walk back, and credit the payment once, at c+1,011.
async fn an_answer_read_ahead_across_a_reorg_ends_credited_once_at_the_canonical_height(backend: &'static str) {
    let mut app = spawn_app(Options { backend, confirmations: 12, ..Default::default() }).await;
    let (_, order_id, address, owed) = app.create_crypto_app("USDT_ERC20", 1).await;
    wait_processed(&app, 20).await;
    app.stop_server().await;
    let config = Config::load(&app.config_path).unwrap();
    let chain_id = paywatch::devnet::CHAIN_ID;
    let store = app.db.store.clone();
    let c =
        cursor::get(store.pool(), chain_id).await.unwrap().expect("the server's watcher left a cursor").block_number;
    let node = &app.chain.deployer;
    app.mine(c + 1_011 - app.head().await).await;
    // The payment as raw signed bytes, so the reorg can mine the very same transaction.
    let raw = signed_payer_usdt_transfer(&app, address, owed).await;
    let hash = *node.send_raw_transaction(&raw).await.unwrap().tx_hash();
    app.mine(4).await;
    assert_eq!(app.head().await, c + 1_016);
    assert_eq!(mined_at(node, hash).await, c + 1_012, "the payment first at c+1,012");

    let provider = rpc::http_provider(&app.chain.anvil.rpc_url()).unwrap();
    let mut watcher = Watcher::new(&config, store.clone(), provider, Arc::new(ChainStatus::default()));
    assert_eq!(watcher.step_once().await.unwrap(), Ok(false), "the first range, more to do");
    assert_eq!(cursor_at(&store, chain_id).await, c + 1_000);

    node.anvil_rollback(Some(6)).await.unwrap();
    assert_eq!(app.head().await, c + 1_010);
    assert_eq!(*node.send_raw_transaction(&raw).await.unwrap().tx_hash(), hash, "the same transaction");
    if app.head().await == c + 1_010 {
        app.mine(1).await;
    }
    assert_eq!(mined_at(node, hash).await, c + 1_011, "mined again one block lower");
    app.mine(6).await;

    assert_eq!(watcher.step_once().await.unwrap(), Ok(false), "the range read ahead, more to do");
    assert_eq!(
        transfer_rows(&store, &order_id).await,
        vec![((c + 1_012) as i64, "seen".to_string())],
        "the second step took the answer read before the reorg (the old fork's c+1,012), and credited nothing"
    );
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps < 50, "the watcher never caught up");
        if watcher.step_once().await.unwrap() == Ok(true) {
            break;
        }
    }
    app.mine(12).await;
    while watcher.step_once().await.unwrap() != Ok(true) {}
    assert_eq!(
        transfer_rows(&store, &order_id).await,
        vec![((c + 1_011) as i64, "confirmed".to_string())],
        "one row, at the canonical height, credited"
    );
    assert_eq!(crate::support::db::deposits_for_order(&store, &order_id).await, 1);
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE order_id = $1")
        .bind(&order_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(status, "paid");
    app.stop().await;
}

on_both_backends!(an_answer_read_ahead_across_a_reorg_ends_credited_once => an_answer_read_ahead_across_a_reorg_ends_credited_once_at_the_canonical_height);

async fn mined_at(node: &alloy::providers::DynProvider, hash: alloy::primitives::TxHash) -> u64 {
    node.get_transaction_receipt(hash).await.unwrap().expect("mined").block_number.unwrap()
}

async fn cursor_at(store: &paywatch::store::Store, chain_id: u64) -> u64 {
    cursor::get(store.pool(), chain_id).await.unwrap().unwrap().block_number
}

async fn transfer_rows(store: &paywatch::store::Store, order_id: &str) -> Vec<(i64, String)> {
    sqlx::query_as("SELECT block_number, state FROM chain_transfers WHERE order_id = $1")
        .bind(order_id)
        .fetch_all(store.pool())
        .await
        .unwrap()
}
