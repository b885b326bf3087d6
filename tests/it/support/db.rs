//! Fresh databases for tests: a SQLite file in a temp folder, or a new PostgreSQL database
//! on the server named by PAYWATCH_TEST_POSTGRES (default: the local trust-auth server).

use std::str::FromStr;

use alloy::primitives::{Address, B256, U256};
use paywatch::money::PayMethod;
use paywatch::store::apps::AppSpec;
use paywatch::store::orders::{CryptoTerms, NewOrder, OrderKind};
use paywatch::store::{Store, teams};
use rust_decimal::Decimal;

pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn postgres_admin_url() -> String {
    std::env::var("PAYWATCH_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.to_string())
}

pub struct TestDb {
    pub store: Store,
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("nested/folder/paywatch.db").display());
        let store = Store::connect(&url).await.expect("SQLite file opens");
        store.migrate().await.expect("SQLite migrations apply");
        Self { store, url, cleanup: Cleanup::Sqlite(dir) }
    }

    pub async fn postgres() -> Self {
        let admin_url = postgres_admin_url();
        let admin = Store::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin_url} ({e}); `make test` starts it"));
        let name = format!("paywatch_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(admin.pool())
            .await
            .expect("test database can be created");
        admin.close().await;
        let url = replace_db_name(&admin_url, &name);
        let store = Store::connect(&url).await.expect("fresh PostgreSQL database opens");
        store.migrate().await.expect("PostgreSQL migrations apply");
        Self { store, url, cleanup: Cleanup::Postgres { admin_url, name } }
    }

    pub async fn by_backend(backend: &str) -> Self {
        match backend {
            "sqlite" => Self::sqlite().await,
            "postgres" => Self::postgres().await,
            other => panic!("unknown backend {other}"),
        }
    }

    /// Drops a PostgreSQL test database (a SQLite folder goes with the value).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup
            && let Ok(admin) = Store::connect(admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(admin.pool())
                .await;
            admin.close().await;
        }
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map(|(b, q)| (b, Some(q))).unwrap_or((url, None));
    let prefix = match base.rfind('/') {
        Some(i) if i > "postgres://".len() => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

/// Deposit rows of an order (one at most, by the unique order id).
pub async fn deposits_for_order(store: &paywatch::store::Store, order_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM deposits WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// A team for store-level tests.
pub async fn team(store: &Store) -> String {
    teams::create_team(store.pool(), "acme").await.unwrap().team_id
}

/// An app's spec as the seed's example has it.
pub fn spec() -> AppSpec {
    AppSpec {
        name: "xyh421--boinc-5".into(),
        cluster_id: "cls-a91a7dbc-1a23-42f6-a66f-876094349f03".into(),
        chart_name: "boinc".into(),
        custom_values: r#"[{"key":"ankrCustomValues.ncpu","value":"1"}]"#.into(),
        cpu_limit: 1000,
        mem_limit: 2000,
        storage_limit: 20000,
        ..Default::default()
    }
}

/// A 3-month ANKR order of `team_id`'s app at `deposit` (salt `salt`).
pub fn crypto_order(team_id: &str, app_id: &str, deposit: Address, salt: u8) -> NewOrder {
    NewOrder {
        team_id: team_id.into(),
        app_id: Some(app_id.into()),
        kind: OrderKind::Create,
        pay_method: PayMethod::AnkrErc20,
        period_months: 3,
        usd: Decimal::from_str("33.30").unwrap(),
        amount: Decimal::from_str("123456789.123456789123456789").unwrap(),
        crypto: Some(CryptoTerms {
            amount_base: U256::from_str("123456789123456789123456789").unwrap(),
            token_price_usd: Decimal::from_str("0.025").unwrap(),
            token_address: Address::repeat_byte(0xaa),
            chain_id: 31337,
            salt: B256::repeat_byte(salt),
            deposit_address: deposit,
        }),
        card_id: None,
        expires_at: 1_900_000_000,
    }
}
