//! Cost that follows open business, not history: the deposit index keeps open orders in memory,
//! finds old ones through its filter and the database, and starts from its saved filter; the order-event recorder reads what
//! changed (counted with PostgreSQL's own statistics), never the settled history.

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256, keccak256};
use paywatch::chain::deposit_index::DepositIndex;
use paywatch::config::Config;
use paywatch::live::Recorder;
use paywatch::live::hub::Hub;
use paywatch::store::orders::{self, insert_order};
use paywatch::store::transfers::{self, Transfer};
use paywatch::store::{Store, apps, order_events};

use crate::support::db::TestDb;
use crate::support::db::{crypto_order, spec, team};
use crate::support::write_file;

/// Orders settled long ago, each with a confirmed transfer and its final event recorded.
const HISTORY: u64 = 10_000;
const TOKEN: Address = Address::repeat_byte(0xaa);
/// Expired this long before "now" (chain seconds), far past the late window.
const LONG_AGO: i64 = 1_700_000_000;
const NOW: i64 = 1_800_000_000;

fn address(i: u64) -> Address {
    Address::from_word(keccak256(i.to_be_bytes()))
}

fn transfer(order_id: &str, to: Address, i: u64, block: u64) -> Transfer {
    Transfer {
        chain_id: 31337,
        tx_hash: keccak256((i + 1_000_000).to_be_bytes()),
        log_index: 0,
        block_number: block,
        block_hash: B256::repeat_byte(0x10),
        token: TOKEN,
        from: Address::repeat_byte(0x01),
        to,
        amount_base: U256::from(1_000u64),
        order_id: Some(order_id.to_string()),
        block_time: Some(LONG_AGO),
    }
}

/// An order paying into `address(i)`, expiring at `expires_at`; with a transfer when `paid`.
async fn order(
    tx: &mut paywatch::store::Tx,
    team_id: &str,
    app_id: &str,
    i: u64,
    expires_at: i64,
    paid: bool,
) -> String {
    let mut new = crypto_order(team_id, app_id, address(i), 0);
    let crypto = new.crypto.as_mut().unwrap();
    crypto.salt = keccak256(i.to_le_bytes());
    crypto.token_address = TOKEN;
    new.expires_at = expires_at;
    let id = orders::new_order_id();
    insert_order(&mut **tx, &id, &new).await.unwrap();
    if paid {
        transfers::insert_seen(&mut **tx, &transfer(&id, address(i), i, 10)).await.unwrap();
    }
    id
}

/// `HISTORY` settled orders, recorded to the end (no change pending), and statistics fresh.
async fn settled_history(store: &Store) -> (String, String) {
    let team_id = team(store).await;
    let app = apps::insert_app(store.pool(), &team_id, &spec(), paywatch::money::PayMethod::AnkrErc20).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for i in 0..HISTORY {
        order(&mut tx, &team_id, &app.app_id, i, LONG_AGO, true).await;
    }
    for sql in [
        "UPDATE chain_transfers SET state = 'confirmed'",
        "UPDATE orders SET status = 'paid', paid_at = 1700000000",
        "INSERT INTO order_events (order_id, event, data, created_at) SELECT order_id, 'paid', '{}', 0 FROM orders",
        "DELETE FROM order_changes",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    (team_id, app.app_id)
}

fn config(dir: &std::path::Path, db_url: &str) -> Arc<Config> {
    let text = format!(
        r#"
[database]
url = "{db_url}"
[chain]
chain_id = 31337
rpc_http = "http://127.0.0.1:1"
confirmations = 3
[tokens.ANKR_ERC20]
address = "{TOKEN}"
decimals = 18
[auth]
admin_token = "a-very-secret-admin-token-value"
"#
    );
    Arc::new(Config::load(&write_file(dir, "paywatch.toml", &text)).unwrap())
}

/// Rows PostgreSQL read from the order tables so far: heap tuples read by sequential scans
/// plus index entries returned. `store` has one connection, whose statistics are flushed first.
async fn rows_read(store: &Store) -> i64 {
    sqlx::query("SELECT pg_stat_force_next_flush()").execute(store.pool()).await.unwrap();
    let tables = "('orders', 'chain_transfers', 'order_events', 'order_changes')";
    let sql = format!(
        "SELECT (SELECT COALESCE(SUM(seq_tup_read), 0) FROM pg_stat_user_tables WHERE relname IN {tables})::BIGINT \
         + (SELECT COALESCE(SUM(idx_tup_read), 0) FROM pg_stat_user_indexes WHERE relname IN {tables})::BIGINT"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(store.pool()).await.unwrap()
}

#[tokio::test]
async fn the_recorder_reads_what_changed_never_the_settled_history() {
    let db = TestDb::postgres().await;
    let dir = tempfile::tempdir().unwrap();
    let (team_id, app_id) = settled_history(&db.store).await;
    // History settled long ago has been vacuumed (dead index entries of once-seen transfers gone)
    // and analyzed, as autovacuum does on a live database.
    sqlx::query("VACUUM ANALYZE").execute(db.store.pool()).await.unwrap();
    // An open order with a payment seen (block 100): the only change waiting.
    let mut tx = db.store.begin().await.unwrap();
    let open = order(&mut tx, &team_id, &app_id, HISTORY, NOW + 3600, false).await;
    transfers::insert_seen(&mut *tx, &transfer(&open, address(HISTORY), HISTORY, 100)).await.unwrap();
    tx.commit().await.unwrap();

    let counted = Store::connect_with(&db.url, Some(1)).await.unwrap();
    let mut recorder = Recorder::new(counted.clone(), config(dir.path(), &db.url), Hub::new());
    let before = rows_read(&counted).await;
    let first = recorder.pass(&heads(100)).await.unwrap();
    let same_head = recorder.pass(&heads(100)).await.unwrap();
    let deeper = recorder.pass(&heads(101)).await.unwrap();
    let settled_head = recorder.pass(&heads(110)).await.unwrap();
    let after_settled = recorder.pass(&heads(111)).await.unwrap();
    let read = rows_read(&counted).await - before;

    assert_eq!(first.appended, 1, "the open order's first view");
    assert_eq!(same_head.appended, 0, "nothing changed: nothing appended");
    assert_eq!(deeper.appended, 1, "one more block: one more confirmation");
    assert_eq!(settled_head.appended, 1, "the payment reached the required depth");
    assert_eq!(after_settled.appended, 0, "past the required depth more blocks are no news");
    let events: Vec<String> =
        order_events::after(db.store.pool(), &open, 0, 100).await.unwrap().into_iter().map(|e| e.event).collect();
    assert_eq!(events, ["awaiting_payment", "confirmations", "confirmations"], "each change once");
    let history_events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM order_events WHERE order_id <> $1")
        .bind(&open)
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(history_events as u64, HISTORY, "settled orders got no new event");
    assert!(
        read < 200,
        "five passes read {read} rows of the order tables; with {HISTORY} settled orders and transfers \
         the recorder must read what changed, not history"
    );
    counted.close().await;
    db.cleanup().await;
}

async fn the_index_finds_new_orders_and_old_addresses(backend: &str) {
    let db = TestDb::by_backend(backend).await;
    let store = &db.store;
    let (team_id, app_id) = settled_history(store).await;
    let mut index = DepositIndex::new(3600);
    index.refresh(store, NOW).await.unwrap();
    assert_eq!(index.live_len(), 0, "settled orders long past their late window stay out of memory");

    // An old order's address: not in the map, found through the filter and the database.
    let old = orders::find_by_deposit_address(store.pool(), &address(7)).await.unwrap().unwrap().order_id;
    assert_eq!(index.lookup(store, &address(7)).await.unwrap(), Some(old));
    assert_eq!(index.lookup(store, &address(HISTORY + 99)).await.unwrap(), None, "an unknown address");

    // An order created after the index loaded is found after the next refresh, from the map.
    let mut tx = store.begin().await.unwrap();
    let new = order(&mut tx, &team_id, &app_id, HISTORY + 1, NOW + 3600, false).await;
    tx.commit().await.unwrap();
    index.refresh(store, NOW).await.unwrap();
    assert_eq!(index.live_len(), 1, "the open order is held in memory");
    assert_eq!(index.lookup(store, &address(HISTORY + 1)).await.unwrap(), Some(new.clone()));

    // The first load saved the filter: a restart reads it and only the orders after it.
    let saved = paywatch::store::deposit_filter::load(store.pool()).await.unwrap().expect("the filter was saved");
    assert!(saved.read_upto >= HISTORY as i64, "it covers the history: {}", saved.read_upto);
    let mut restarted = DepositIndex::new(3600);
    restarted.refresh(store, NOW).await.unwrap();
    let old_again = restarted.lookup(store, &address(7)).await.unwrap();
    assert!(old_again.is_some(), "an old address, from the saved filter");
    assert_eq!(restarted.lookup(store, &address(HISTORY + 1)).await.unwrap(), Some(new));
    // Proof that a start does not read every order: one made after the save, with the saved
    // point moved past it (as if it were covered), is not found by a fresh start.
    let mut tx = store.begin().await.unwrap();
    order(&mut tx, &team_id, &app_id, HISTORY + 2, NOW + 3600, false).await;
    tx.commit().await.unwrap();
    sqlx::query("UPDATE deposit_filter SET read_upto = (SELECT MAX(seq) FROM orders)")
        .execute(store.pool())
        .await
        .unwrap();
    let mut fresh = DepositIndex::new(3600);
    fresh.refresh(store, NOW).await.unwrap();
    assert_eq!(
        fresh.lookup(store, &address(HISTORY + 2)).await.unwrap(),
        None,
        "a start reads only past the saved point"
    );
    db.cleanup().await;
}

on_both_backends!(the_index_finds_new_orders_and_old_addresses);

/// The test chain's head at `n`.
fn heads(n: u64) -> paywatch::chain::status::Heads {
    paywatch::chain::status::Heads::from([(paywatch::devnet::CHAIN_ID, n)])
}
