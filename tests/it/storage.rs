//! The storage suite: the same tests, unchanged, on SQLite and on PostgreSQL.

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use paywatch::money::PayMethod;
use paywatch::store::apps::{AppStatus, get_app, insert_app, set_lifetime};
use paywatch::store::catalog::{GoodsSpecification, SpecCell, SpecPicture};
use paywatch::store::idempotency::{self, Claim};
use paywatch::store::orders::{OrderStatus, find_by_deposit_address, get_order, insert_order};
use paywatch::store::transfers::{self, Transfer};
use paywatch::store::{Store, catalog, cursor, orders, teams};
use rust_decimal::Decimal;

use crate::support::db::{TestDb, crypto_order, spec, team};

on_both_backends!(
    store:
    migrations_apply_again_without_change,
    a_key_finds_its_team_until_it_is_revoked,
    apps_and_orders_keep_exact_money_and_large_base_units,
    another_teams_app_and_order_are_not_found,
    a_transfer_is_recorded_once_per_tx_hash_and_log_index,
    a_deposit_address_belongs_to_one_order_only,
    the_cursor_and_recent_block_hashes_persist,
    idempotency_keys_replay_and_refuse_a_different_body,
    a_goods_specification_is_replaced_whole,
    a_failed_transaction_leaves_nothing_behind,
    retention_compacts_history_and_keeps_the_last_view_of_every_order,
    the_console_order_pages_walk_each_filtered_order_once_newest_first,
    the_console_search_finds_an_order_by_each_of_its_keys,
    a_dropped_sweep_sent_again_as_the_same_transaction_is_counted_once,
    the_payments_export_walks_each_payment_of_its_period_once_in_pages,
);

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

async fn migrations_apply_again_without_change(store: &Store) {
    store.migrate().await.expect("a second migrate is a no-op");
    store.ping().await.unwrap();
}

async fn a_key_finds_its_team_until_it_is_revoked(store: &Store) {
    let team = teams::create_team(store.pool(), "acme").await.unwrap();
    let key = teams::issue_key(store.pool(), &team.team_id).await.unwrap();
    let owner = teams::find_key_owner(store.pool(), &key.api_key).await.unwrap().expect("key resolves");
    assert_eq!(owner.team_id, team.team_id);
    assert!(teams::find_key_owner(store.pool(), "pw_not_a_key").await.unwrap().is_none());
    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE key_hash = $1")
        .bind(&key.api_key)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 0, "the plain key must never be stored");
    assert!(teams::revoke_key(store.pool(), &team.team_id, &key.key_id).await.unwrap());
    assert!(teams::find_key_owner(store.pool(), &key.api_key).await.unwrap().is_none());
    assert!(!teams::revoke_key(store.pool(), &team.team_id, &key.key_id).await.unwrap(), "revoking twice is a no-op");
}

async fn apps_and_orders_keep_exact_money_and_large_base_units(store: &Store) {
    let team_id = team(store).await;
    let app = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    let deposit = Address::repeat_byte(0x42);
    let order = insert_order(store.pool(), &orders::new_order_id(), &crypto_order(&team_id, &app.app_id, deposit, 1))
        .await
        .unwrap();

    let got = get_order(store.pool(), &team_id, &order.order_id).await.unwrap().expect("order found");
    assert_eq!(got.new.usd, d("33.30"));
    assert_eq!(got.new.amount, d("123456789.123456789123456789"));
    assert_eq!(got.new.crypto, order.new.crypto);
    assert_eq!(got.progress.status, OrderStatus::AwaitingPayment);
    assert_eq!(got.progress.confirmed_base, U256::ZERO);
    let by_address = find_by_deposit_address(store.pool(), &deposit).await.unwrap().expect("found by address");
    assert_eq!(by_address.order_id, order.order_id);

    let stored = get_app(store.pool(), &team_id, &app.app_id).await.unwrap().expect("app found");
    assert_eq!(stored.status, AppStatus::PendingPayment);
    assert_eq!(stored.spec.custom_values, spec().custom_values);
    set_lifetime(store.pool(), &app.app_id, AppStatus::Active, Some(100), Some(200)).await.unwrap();
    let active = get_app(store.pool(), &team_id, &app.app_id).await.unwrap().unwrap();
    assert_eq!((active.status, active.start_time, active.end_time), (AppStatus::Active, Some(100), Some(200)));
}

async fn another_teams_app_and_order_are_not_found(store: &Store) {
    let a = team(store).await;
    let b = team(store).await;
    let app = insert_app(store.pool(), &a, &spec(), PayMethod::UsdtErc20).await.unwrap();
    let order =
        insert_order(store.pool(), &orders::new_order_id(), &crypto_order(&a, &app.app_id, Address::repeat_byte(7), 7))
            .await
            .unwrap();
    assert!(get_app(store.pool(), &b, &app.app_id).await.unwrap().is_none());
    assert!(get_order(store.pool(), &b, &order.order_id).await.unwrap().is_none());
}

async fn a_transfer_is_recorded_once_per_tx_hash_and_log_index(store: &Store) {
    let team_id = team(store).await;
    let app = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    let order = insert_order(
        store.pool(),
        &orders::new_order_id(),
        &crypto_order(&team_id, &app.app_id, Address::repeat_byte(9), 9),
    )
    .await
    .unwrap();
    let transfer = |log_index| Transfer {
        chain_id: 31337,
        tx_hash: B256::repeat_byte(0xee),
        log_index,
        block_number: 10,
        block_hash: B256::repeat_byte(0x10),
        token: Address::repeat_byte(0xaa),
        from: Address::repeat_byte(0x01),
        to: Address::repeat_byte(9),
        amount_base: U256::MAX,
        order_id: Some(order.order_id.clone()),
        block_time: Some(1_700_000_000),
    };
    assert!(transfers::insert_seen(store.pool(), &transfer(0)).await.unwrap());
    assert!(!transfers::insert_seen(store.pool(), &transfer(0)).await.unwrap(), "a replayed log is ignored");
    assert!(transfers::insert_seen(store.pool(), &transfer(1)).await.unwrap(), "a second log of the same tx counts");
    let rows = transfers::for_order(store.pool(), &order.order_id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, transfer(0));
    assert_eq!(rows[0].1, "seen");
    assert_eq!(rows[1].0.amount_base, U256::MAX, "uint256 amounts survive storage");
}

async fn a_deposit_address_belongs_to_one_order_only(store: &Store) {
    let team_id = team(store).await;
    let app = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    let deposit = Address::repeat_byte(0x33);
    insert_order(store.pool(), &orders::new_order_id(), &crypto_order(&team_id, &app.app_id, deposit, 3))
        .await
        .unwrap();
    let err = insert_order(store.pool(), &orders::new_order_id(), &crypto_order(&team_id, &app.app_id, deposit, 4))
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "expected a unique violation, got {err}");
}

async fn the_cursor_and_recent_block_hashes_persist(store: &Store) {
    assert_eq!(cursor::get(store.pool(), 1).await.unwrap(), None);
    let c = cursor::Cursor { block_number: 18_000_000, block_hash: B256::repeat_byte(0xab), block_time: 1_700_000_000 };
    cursor::set(store.pool(), 1, c).await.unwrap();
    let next =
        cursor::Cursor { block_number: 18_000_001, block_hash: B256::repeat_byte(0xcd), block_time: 1_700_000_012 };
    cursor::set(store.pool(), 1, next).await.unwrap();
    assert_eq!(cursor::get(store.pool(), 1).await.unwrap(), Some(next));
    assert_eq!(cursor::get(store.pool(), 2).await.unwrap(), None, "cursors are per chain");
    assert_eq!(
        cursor::chain_time(store.pool(), &[1]).await.unwrap(),
        1_700_000_012,
        "the chain's clock is the cursor's block time"
    );

    for n in 1..=5u64 {
        cursor::record_block(store.pool(), 1, n, B256::with_last_byte(n as u8), B256::with_last_byte(n as u8 - 1))
            .await
            .unwrap();
    }
    assert_eq!(cursor::block_hash(store.pool(), 1, 3).await.unwrap(), Some(B256::with_last_byte(3)));
    let pruned = cursor::prune_blocks(store.pool(), 1, 4, 2).await.unwrap();
    assert_eq!(pruned, 2, "block 5 (above 4) and block 1 (below 2) go");
    assert_eq!(cursor::block_hash(store.pool(), 1, 5).await.unwrap(), None);
    assert_eq!(cursor::block_hash(store.pool(), 1, 2).await.unwrap(), Some(B256::with_last_byte(2)));
}

async fn idempotency_keys_replay_and_refuse_a_different_body(store: &Store) {
    let team_id = team(store).await;
    let other = team(store).await;
    let db = store.pool();
    let fresh = Claim::Fresh { done: None };
    let claim = |team: String, key: &'static str, hash: &'static str, now: i64| async move {
        idempotency::claim(db, &team, key, hash, now, 30).await.unwrap()
    };
    let t = team_id.clone();
    assert_eq!(claim(t.clone(), "k1", "hash-a", 1000).await, fresh);
    assert_eq!(claim(t.clone(), "k1", "hash-a", 1010).await, Claim::InFlight, "leased for 30 s");
    assert_eq!(claim(other.clone(), "k1", "hash-a", 1000).await, fresh, "keys are per team");
    idempotency::complete(db, &team_id, "k1", 200, r#"{"app_id":"x"}"#).await.unwrap();
    assert_eq!(
        claim(t.clone(), "k1", "hash-a", 1010).await,
        Claim::Replay { status: 200, body: r#"{"app_id":"x"}"#.into() }
    );
    assert_eq!(claim(t.clone(), "k1", "hash-b", 1010).await, Claim::Mismatch);
    assert_eq!(claim(t.clone(), "k2", "h", 1000).await, fresh);
    idempotency::release(db, &team_id, "k2").await.unwrap();
    assert_eq!(claim(t.clone(), "k2", "h", 1000).await, fresh, "a released key can be used again");

    // A claim whose request died: in flight until its lease runs out, then one retry takes it
    // over and learns what the first run saved.
    assert_eq!(claim(t.clone(), "k3", "h", 1000).await, fresh);
    idempotency::save_done(db, &team_id, "k3", r#"{"order_id":"o1"}"#).await.unwrap();
    assert_eq!(claim(t.clone(), "k3", "h", 1029).await, Claim::InFlight);
    assert_eq!(claim(t.clone(), "k3", "h", 1031).await, Claim::Fresh { done: Some(r#"{"order_id":"o1"}"#.into()) });
    assert_eq!(claim(t.clone(), "k3", "h", 1032).await, Claim::InFlight, "the takeover holds a new lease");

    // Issue 26, item 11: a call that failed after its work committed (what it made is saved)
    // releases its key without forgetting what was made: the retry answers it, at once.
    assert_eq!(claim(t.clone(), "k4", "h", 1000).await, fresh);
    idempotency::save_done(db, &team_id, "k4", r#"{"order_id":"o4"}"#).await.unwrap();
    idempotency::release(db, &team_id, "k4").await.unwrap();
    assert_eq!(
        claim(t.clone(), "k4", "h", 1001).await,
        Claim::Fresh { done: Some(r#"{"order_id":"o4"}"#.into()) },
        "the retry learns what the failed call made"
    );
}

async fn a_goods_specification_is_replaced_whole(store: &Store) {
    let cell = |m: &str, s: &str, c: &str| SpecCell {
        main_specification: m.into(),
        second_specification: s.into(),
        purchasing_cost: d(c),
    };
    let first = GoodsSpecification {
        goods_id: 1,
        main_specification_name: "颜色1".into(),
        second_specification_name: "鞋码1".into(),
        cells: vec![cell("蓝色", "37", "23"), cell("蓝色", "38", "24.5"), cell("绿色", "42", "21")],
        pics: vec![SpecPicture { main_specification: "蓝色".into(), image_url: "https://example.com/b".into() }],
    };
    let mut tx = store.begin().await.unwrap();
    catalog::replace_goods_specification(&mut tx, &first).await.unwrap();
    tx.commit().await.unwrap();
    let mut second = first.clone();
    second.main_specification_name = "颜色".into();
    second.cells.truncate(1);
    let mut tx = store.begin().await.unwrap();
    catalog::replace_goods_specification(&mut tx, &second).await.unwrap();
    let got = catalog::get_goods_specification(&mut tx, 1).await.unwrap().expect("stored");
    tx.commit().await.unwrap();
    assert_eq!(got, second);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(catalog::get_goods_specification(&mut tx, 2).await.unwrap(), None);
}

/// A sweep a reorg dropped, sent again with the same nonce, calldata and fees: the same hash.
/// Its receipt must fill one set of rows, not the dropped one too (found by the soak on the
/// second chain: the ledger said twice what the address had received was swept).
async fn a_dropped_sweep_sent_again_as_the_same_transaction_is_counted_once(store: &Store) {
    use paywatch::store::sweeps::{self, SweepState};
    let (hash, token, address, amount) =
        (B256::repeat_byte(7), Address::repeat_byte(1), Address::repeat_byte(2), U256::from(500u64));
    let send = || async {
        let mut tx = store.begin().await.unwrap();
        sweeps::record_sent(&mut tx, 1, &hash, &token, &[(address, amount)]).await.unwrap();
        tx.commit().await.unwrap();
    };
    send().await;
    assert_eq!(sweeps::drop_transaction(store.pool(), &hash).await.unwrap(), 1);
    send().await;
    let block = Some((9, B256::repeat_byte(9)));
    sweeps::record_outcome(store.pool(), &hash, &address, SweepState::Confirmed, amount, block, None).await.unwrap();
    let (_, swept) = sweeps::ledger(store.pool(), 1, &address, &token, None).await.unwrap();
    assert_eq!(swept, amount, "moved once by the ledger");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sweeps").fetch_one(store.pool()).await.unwrap();
    assert_eq!(rows, 1);
}

/// The export's keyset pages: payments sharing a second are each read once, in order, and the
/// period's ends are kept (from included, to excluded).
async fn the_payments_export_walks_each_payment_of_its_period_once_in_pages(store: &Store) {
    use paywatch::store::deposits::{self, NewDeposit};
    use paywatch::store::exports;
    let team_id = team(store).await;
    let mut inserted = Vec::new();
    for i in 0..7u8 {
        let app = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
        let order_id = orders::new_order_id();
        insert_order(store.pool(), &order_id, &crypto_order(&team_id, &app.app_id, Address::repeat_byte(i + 1), i + 1))
            .await
            .unwrap();
        // Three payments in one second, two at its ends.
        let at = [1_000, 1_000, 1_000, 999, 1_001, 1_002, 1_003][i as usize];
        let deposit = NewDeposit {
            team_id: team_id.clone(),
            app_id: Some(app.app_id.clone()),
            order_id: order_id.clone(),
            pay_method: "ANKR_ERC20".into(),
            usd: "33.3".into(),
            amount: "1".into(),
            expected_amount: "1".into(),
            address: None,
            transaction_hash: None,
            card_id: None,
            app_end_time: None,
            deposit_time: at,
            app_before: None,
        };
        deposits::insert(store.pool(), &deposit).await.unwrap();
        inserted.push((at, order_id));
    }
    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = exports::payments(store.pool(), 1_000, 1_003, after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some((last.paid_at, last.deposit_id.clone()));
        read.extend(page.iter().map(|p| (p.paid_at, p.order_id.clone())));
    }
    let mut expected: Vec<_> = inserted.into_iter().filter(|(at, _)| (1_000..1_003).contains(at)).collect();
    expected.sort_by_key(|(at, _)| *at);
    assert_eq!(read.len(), expected.len(), "{read:?}");
    let mut unique = read.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), read.len(), "each once: {read:?}");
    assert!(read.windows(2).all(|w| w[0].0 <= w[1].0), "in time order: {read:?}");
    assert_eq!(read.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [1_000, 1_000, 1_000, 1_001, 1_002]);
}

async fn a_failed_transaction_leaves_nothing_behind(store: &Store) {
    let team_id = team(store).await;
    let mut tx = store.begin().await.unwrap();
    let app = insert_app(&mut *tx, &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    insert_order(&mut *tx, &orders::new_order_id(), &crypto_order(&team_id, &app.app_id, Address::repeat_byte(5), 5))
        .await
        .unwrap();
    // The same deposit address again fails, and the caller rolls the whole thing back.
    assert!(
        insert_order(
            &mut *tx,
            &orders::new_order_id(),
            &crypto_order(&team_id, &app.app_id, Address::repeat_byte(5), 6)
        )
        .await
        .is_err()
    );
    tx.rollback().await.unwrap();
    assert!(get_app(store.pool(), &team_id, &app.app_id).await.unwrap().is_none());
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(store.pool()).await.unwrap();
    assert_eq!(orders, 0);
}

#[tokio::test]
async fn a_sqlite_database_and_its_folder_are_created_when_missing() {
    let db = TestDb::sqlite().await; // its URL points into folders that did not exist
    let path = db.url.trim_start_matches("sqlite://").to_string();
    assert!(std::path::Path::new(&path).is_file(), "{path} exists");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(db.store.pool()).await.unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(db.store.pool()).await.unwrap();
    assert_eq!(fk, 1);
    db.cleanup().await;
}

async fn retention_compacts_history_and_keeps_the_last_view_of_every_order(store: &Store) {
    use paywatch::store::{order_events, outbox};
    let team_id = team(store).await;
    let db = store.pool();
    let app = paywatch::store::apps::insert_app(db, &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    let paid = orders::new_order_id();
    let open = orders::new_order_id();
    insert_order(db, &paid, &crypto_order(&team_id, &app.app_id, Address::repeat_byte(0x31), 0x31)).await.unwrap();
    insert_order(db, &open, &crypto_order(&team_id, &app.app_id, Address::repeat_byte(0x32), 0x32)).await.unwrap();
    sqlx::query("UPDATE orders SET status = 'paid' WHERE order_id = $1").bind(&paid).execute(db).await.unwrap();
    for order in [&paid, &open] {
        for (i, event) in ["awaiting_payment", "seen", "confirmations"].iter().enumerate() {
            order_events::append(db, order, event, &format!("{{\"view\":{i}}}")).await.unwrap();
        }
    }
    sqlx::query("UPDATE order_events SET created_at = 1000").execute(db).await.unwrap();
    let delivered_old = outbox::emit(db, "order.paid", None, serde_json::json!({})).await.unwrap();
    let failed_old = outbox::emit(db, "order.paid", None, serde_json::json!({})).await.unwrap();
    let delivered_new = outbox::emit(db, "order.paid", None, serde_json::json!({})).await.unwrap();
    sqlx::query(
        "INSERT INTO webhook_attempts (event_id, attempt, attempted_at, status_code, duration_ms) VALUES ($1, 1, 1000, 200, 5)",
    )
    .bind(&delivered_old)
    .execute(db)
    .await
    .unwrap();
    for (event, column, at) in [
        (&delivered_old, "delivered_at", 1000),
        (&failed_old, "failed_at", 1000),
        (&delivered_new, "delivered_at", 9000),
    ] {
        let sql = format!("UPDATE webhook_outbox SET {column} = $1 WHERE event_id = $2");
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at as i64).bind(event).execute(db).await.unwrap();
    }

    let (events, views) = paywatch::jobs::compact(store, 5000).await.unwrap();
    assert_eq!((events, views), (1, 2), "one delivered event, two superseded views of the paid order");
    let left = |order: String| async move {
        order_events::after(db, &order, 0, 100).await.unwrap().into_iter().map(|e| e.event).collect::<Vec<_>>()
    };
    assert_eq!(left(paid.clone()).await, ["confirmations"], "a settled order keeps its last view");
    assert_eq!(left(open.clone()).await.len(), 3, "an open order keeps its history");
    let kept: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM webhook_outbox ORDER BY seq").fetch_all(db).await.unwrap();
    assert_eq!(kept, [failed_old, delivered_new], "given-up and recent events stay");
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_attempts").fetch_one(db).await.unwrap();
    assert_eq!(attempts, 0, "the compacted event's attempts go with it");
    assert_eq!(paywatch::jobs::compact(store, 5000).await.unwrap(), (0, 0), "and a second run finds nothing");
}

/// 24 orders of two teams, three pay methods and four statuses, created at four shared seconds
/// (so pages split inside one second): any filter, walked in pages of 4, yields exactly the
/// matching orders, newest first by (created_at, order_id), each once.
async fn the_console_order_pages_walk_each_filtered_order_once_newest_first(store: &Store) {
    use paywatch::store::order_search::{After, OrderFilter, page};
    let teams = [team(store).await, team(store).await];
    let statuses = ["awaiting_payment", "partially_paid", "paid", "expired"];
    let methods = [PayMethod::AnkrErc20, PayMethod::UsdtErc20, PayMethod::CreditCard];
    let mut all = Vec::new();
    for i in 0..24u8 {
        let team_id = &teams[usize::from(i % 2)];
        let app = insert_app(store.pool(), team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
        let mut new = crypto_order(team_id, &app.app_id, Address::repeat_byte(0x80 + i), 0x80 + i);
        new.pay_method = methods[usize::from(i % 3)];
        if new.pay_method == PayMethod::CreditCard {
            new.crypto = None;
        }
        let order = insert_order(store.pool(), &orders::new_order_id(), &new).await.unwrap();
        let (status, created_at) = (statuses[usize::from(i / 2 % 4)], 1_000 + i64::from(i % 4) * 100);
        sqlx::query("UPDATE orders SET status = $1, created_at = $2 WHERE order_id = $3")
            .bind(status)
            .bind(created_at)
            .bind(&order.order_id)
            .execute(store.pool())
            .await
            .unwrap();
        all.push((created_at, order.order_id, team_id.clone(), new.pay_method.as_str().to_string(), status));
    }
    all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let some = |s: &str| Some(s.to_string());
    let filters = [
        OrderFilter::default(),
        OrderFilter { status: some("paid"), ..Default::default() },
        OrderFilter { team_id: Some(teams[1].clone()), ..Default::default() },
        OrderFilter { pay_method: some("CREDIT_CARD"), ..Default::default() },
        OrderFilter { status: some("expired"), team_id: Some(teams[0].clone()), ..Default::default() },
        OrderFilter { created_from: Some(1_100), created_before: Some(1_300), ..Default::default() },
        OrderFilter { team_id: Some(teams[0].clone()), created_before: Some(1_200), ..Default::default() },
        OrderFilter {
            pay_method: some("USDT_ERC20"),
            status: some("awaiting_payment"),
            created_from: Some(1_000),
            created_before: Some(1_400),
            ..Default::default()
        },
        OrderFilter { status: some("paid"), created_from: Some(1_400), ..Default::default() },
    ];
    for filter in filters {
        let expected: Vec<&String> = all
            .iter()
            .filter(|(at, _, team, method, status)| {
                filter.status.as_deref().is_none_or(|s| s == *status)
                    && filter.team_id.as_ref().is_none_or(|t| t == team)
                    && filter.pay_method.as_ref().is_none_or(|m| m == method)
                    && filter.created_from.is_none_or(|from| *at >= from)
                    && filter.created_before.is_none_or(|before| *at < before)
            })
            .map(|o| &o.1)
            .collect();
        let mut walked = Vec::new();
        let mut after: Option<After> = None;
        loop {
            let (rows, next) =
                page(store.pool(), &OrderFilter { after: after.clone(), ..filter.clone() }, 4).await.unwrap();
            assert!(rows.len() <= 4);
            walked.extend(rows.into_iter().map(|r| r.order_id));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
            assert!(walked.len() <= all.len(), "the pages of {filter:?} do not end");
        }
        assert_eq!(walked.iter().collect::<Vec<_>>(), expected, "pages of {filter:?}");
    }
}

async fn the_console_search_finds_an_order_by_each_of_its_keys(store: &Store) {
    use paywatch::store::order_search::search;
    let team_id = team(store).await;
    let app = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    let deposit = Address::repeat_byte(0xab);
    let order =
        insert_order(store.pool(), &orders::new_order_id(), &crypto_order(&team_id, &app.app_id, deposit, 0xab))
            .await
            .unwrap();
    let other = insert_app(store.pool(), &team_id, &spec(), PayMethod::AnkrErc20).await.unwrap();
    insert_order(
        store.pool(),
        &orders::new_order_id(),
        &crypto_order(&team_id, &other.app_id, Address::repeat_byte(0xac), 0xac),
    )
    .await
    .unwrap();
    let tx = B256::repeat_byte(0xcd);
    let transfer = Transfer {
        chain_id: 31337,
        tx_hash: tx,
        log_index: 0,
        block_number: 10,
        block_hash: B256::repeat_byte(0x10),
        token: Address::repeat_byte(0xaa),
        from: Address::repeat_byte(0x01),
        to: deposit,
        amount_base: U256::from(1u8),
        order_id: Some(order.order_id.clone()),
        block_time: Some(1_700_000_000),
    };
    assert!(transfers::insert_seen(store.pool(), &transfer).await.unwrap());
    for term in [
        order.order_id.clone(),
        app.app_id.clone(),
        format!("{deposit:#x}").to_uppercase().replace("0X", "0x"),
        format!(" {tx:#x} "),
    ] {
        let found: Vec<String> =
            search(store.pool(), &term, 50).await.unwrap().into_iter().map(|r| r.order_id).collect();
        assert_eq!(found, vec![order.order_id.clone()], "search for {term:?}");
    }
    assert!(search(store.pool(), &format!("{:#x}", B256::repeat_byte(0xce)), 50).await.unwrap().is_empty());
}
